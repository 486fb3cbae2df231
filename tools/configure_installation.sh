#!/usr/bin/env bash
# Finalizes a sarus installation, as Sarus' configure_installation.sh does.
#   sudo configure_installation.sh [--mode suid|userns] [--reset-config] [PREFIX]
# PREFIX defaults to the directory holding this script (it is installed at
# the top of the prefix). Idempotent: an existing etc/sarus.json is kept, so
# the site's settings survive an upgrade (`cmake --install` clears the SUID
# bit: run this again after every upgrade); --reset-config makes a new one
# from the template and keeps the old one as etc/sarus.json.bak-<time>.
#   suid   (default): root-owned prefix, sarus SUID root, runc/crun as root
#   userns: no privilege at all; the SUID bit is removed. Run it as the
#           prefix's owner (root for a root-owned prefix).
set -euo pipefail

fail() {
    echo "configure_installation.sh: $*" >&2
    exit 1
}

mode=suid
reset_config=0
prefix_arg=
while [[ $# -gt 0 ]]; do
    case $1 in
        --mode) [[ $# -ge 2 ]] || fail "--mode needs suid or userns"; mode=$2; shift 2 ;;
        --mode=*) mode=${1#--mode=}; shift ;;
        --reset-config) reset_config=1; shift ;;
        -*) fail "unknown option '$1'" ;;
        *) [[ -z $prefix_arg ]] || fail "one PREFIX only ('$prefix_arg' and '$1')"; prefix_arg=$1; shift ;;
    esac
done
[[ $mode == suid || $mode == userns ]] || fail "unknown mode '$mode'"
# The real directory: chown -R does not follow a symlink given to it, and
# what is made root's must be what gets the SUID bit.
prefix=$(cd "${prefix_arg:-$(dirname "$0")}" && pwd -P)
if [[ ! -x $prefix/bin/sarus || ! -d $prefix/etc/templates ]]; then
    fail "$prefix is not a sarus installation (no bin/sarus or etc/templates)"
fi

owner_of() { stat -c %u "$1"; }

# Root writes into the prefix by path below: no one else may own or be able
# to change a directory on the way, or they could lead those writes anywhere.
check_directories_of_root_only() {
    local dir=$1
    while :; do
        [[ $(owner_of "$dir") -eq 0 ]] || fail "$dir belongs to uid $(owner_of "$dir"), not root: a $mode installation must be root's along its whole path"
        # as the SUID sarus checks them on every call: sticky is not enough
        if [[ $(( 0$(stat -c %a "$dir") & 022 )) -ne 0 ]]; then
            fail "$dir is writable by group or others"
        fi
        [[ $dir == / ]] && break
        dir=$(dirname "$dir")
    done
}

if [[ $mode == suid ]]; then
    [[ $(id -u) -eq 0 ]] || fail "must run as root for a suid installation"
    check_directories_of_root_only "$(dirname "$prefix")"
    echo "Making $prefix root-owned and not writable by group or others"
    chown -R root:root "$prefix"
    chmod -R go-w "$prefix"
    not_roots=$(find "$prefix" \( ! -user root -o ! -group root -o -perm /022 \) ! -type l -print -quit)
    [[ -z $not_roots ]] || fail "$not_roots is still not root's alone: not setting the SUID bit"
    echo "Setting sarus as SUID root"
    chmod 4755 "$prefix/bin/sarus"
    echo "Successfully set sarus as SUID root"
else
    if [[ $(id -u) -ne $(owner_of "$prefix") ]]; then
        fail "$prefix belongs to uid $(owner_of "$prefix"): run this as its owner (a userns installation needs no root)"
    fi
    if [[ $(id -u) -eq 0 ]]; then
        check_directories_of_root_only "$prefix"
        not_roots=$(find "$prefix" ! -user root ! -type l -print -quit)
        [[ -z $not_roots ]] || fail "$not_roots belongs to another user in root's installation"
    fi
    chmod u-s "$prefix/bin/sarus"
fi

# Written next to its final name, then renamed over it: nothing is written
# through a symlink found there.
write_file() {
    local target=$1 mode=$2 tmp
    tmp=$(mktemp "$target.XXXXXX")
    cat > "$tmp"
    chmod "$mode" "$tmp"
    mv -fT "$tmp" "$target"
}

echo "Creating cached passwd and group databases"
getent passwd | write_file "$prefix/etc/passwd" 644
getent group | write_file "$prefix/etc/group" 644

mkdir -p "$prefix/var/OCIBundleDir"
chmod 755 "$prefix/var" "$prefix/var/OCIBundleDir"

config=$prefix/etc/sarus.json
# crun starts containers about 15 ms faster than runc; both work. The
# static crun that tools/build_crun.sh makes starts faster than Debian's.
first_existing() {
    for candidate in "$@"; do
        [[ -x $candidate ]] && { echo "$candidate"; return; }
    done
    echo "$1"
}
runtime=$(first_existing /usr/bin/crun /usr/bin/runc /usr/sbin/runc)
crun=/usr/bin/crun
if [[ -x $prefix/libexec/sarus/crun ]]; then
    runtime=$prefix/libexec/sarus/crun
    crun=$runtime
fi
init=$(first_existing /usr/bin/tini-static /usr/bin/tini)

# What `cmake --install` wrote (the userns template with the prefix filled
# in, under the name it was given) is replaced as if there were none.
as_installed() {
    local named
    for named in "$prefix" "${prefix_arg:+$(cd "$prefix_arg" && pwd)}"; do
        [[ -n $named ]] && sed -e "s|@PREFIX@|$named|g" "$prefix/etc/templates/sarus.userns.json" | cmp -s - "$config" && return 0
    done
    return 1
}

# The string value of a top-level key of the kept sarus.json ("" when it has
# none), whatever the file's layout.
config_value() {
    { grep -o "\"$1\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" "$config" || true; } | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/'
}

if [[ -f $config && $reset_config -eq 0 ]] && ! as_installed; then
    configured=$(config_value mode)
    if [[ -z $configured && $mode != userns ]]; then
        fail "$config has no \"mode\" (a Sarus 1.7 file?), which sarus reads as userns: add \"mode\": \"$mode\" to keep it, or rerun with --reset-config for a new one"
    fi
    configured=${configured:-userns}  # sarus's default
    if [[ $configured == "$mode" ]]; then
        runtime_key=$([[ $mode == suid ]] && echo runcPath || echo crunPath)
        kept_runtime=$(config_value "$runtime_key")
        if [[ -n $kept_runtime && ! -x $kept_runtime ]]; then
            fail "$config names the runtime $kept_runtime ($runtime_key), which is gone: rerun with --reset-config, or set $runtime_key"
        fi
        if ! grep -q '"containersPolicy"' "$config" && [[ ! -e /etc/containers/policy.json ]]; then
            echo "configure_installation.sh: WARNING: $config has no containersPolicy and this host no" \
                 "/etc/containers/policy.json: pull and load will refuse every image; add" \
                 "\"containersPolicy\": {\"path\": \"$prefix/etc/policy.json\"} (or rerun with --reset-config)" >&2
        fi
        echo "Kept the existing $config ($mode mode, runtime ${kept_runtime:-default}; --reset-config makes a new one from the template)"
        echo "To execute sarus commands run first:"
        echo "export PATH=$prefix/bin:\${PATH}"
        exit 0
    fi
    echo "$config is for $configured mode: making a new one for $mode mode"
fi
if [[ -f $config ]] && ! as_installed; then
    backup=$config.bak-$(date +%Y%m%d-%H%M%S)
    cp --remove-destination -p "$config" "$backup"
    echo "Backed up the existing configuration to $backup"
fi
echo "Configuring $config ($mode mode)"
sed -e "s|@PREFIX@|$prefix|g" \
    -e "s|\"runcPath\": \"[^\"]*\"|\"runcPath\": \"$runtime\"|" \
    -e "s|\"initPath\": \"[^\"]*\"|\"initPath\": \"$init\"|" \
    -e "s|\"crunPath\": \"[^\"]*\"|\"crunPath\": \"$crun\"|" \
    "$prefix/etc/templates/sarus.$mode.json" | write_file "$config" 644
echo "Successfully configured $config (runtime $runtime)"
echo "To execute sarus commands run first:"
echo "export PATH=$prefix/bin:\${PATH}"
