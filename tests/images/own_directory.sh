# Sourced by the scripts that keep caches in /var/tmp as root. /var/tmp is
# everyone's: a directory another user made first, or may write to, could
# lead root's writes (and apt's configuration, which root's apt-get reads
# from there) anywhere.
#   own_directory DIR   creates DIR unless it is there; exits unless it is a
#                       directory of the caller's that nobody else may write to
own_directory() {
    mkdir -p "$1"
    local owner mode
    owner=$(stat -c %U "$1")
    mode=$(stat -c %a "$1")
    if [[ -L $1 || $(stat -c %u "$1") -ne $(id -u) || $(( 0$mode & 022 )) -ne 0 ]]; then
        echo "$(basename "$0"): $1 belongs to $owner or others may write to it (mode $mode): remove it and retry" >&2
        exit 1
    fi
}
