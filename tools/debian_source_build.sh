# Sourced by the tools/build_*.sh scripts that build a program sarus ships
# (a static Dropbear, a lean crun) from Debian bookworm's source package,
# with Debian's patches (security fixes among them).
#
# The source comes from `apt-get source` through a private apt configuration:
# the system's sources and package lists are neither read nor changed, so no
# deb-src line needs to be configured. Builds are cached in
# $SARUS_BUILD_CACHE (default /var/cache/sarus-build, or ~/.cache/sarus-build
# when that is not writable) under <package>-<Debian version>-<hash of the
# build script and this file>: a new Debian version or a changed script builds
# again, anything else reuses the cached result. Without network access the
# newest cached build of the same scripts is used, with a warning.
#
# The calling script sets `package` and `script` (its own path), then calls,
# in order: source_build_init, source_build_cached (true: the cached build in
# $cached is up to date), source_build_fetch (unpacks into $src, a scratch
# directory $work removed on exit), and source_build_store OUT (records
# BUILDINFO lines read from stdin and moves OUT into the cache as $cached).

suite=bookworm
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

log() { echo "$(basename "$script"): $*" >&2; }
die() { log "$*"; exit 1; }

source_build_init() {
    for tool in dpkg-source make strip; do
        command -v "$tool" >/dev/null || die "$tool not found (tools/install_dependencies.sh installs dpkg-dev)"
    done
    [[ -r $keyring ]] || die "$keyring not found (package debian-archive-keyring)"
    script_hash=$(cat "$script" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)
    jobs=${JOBS:-$(nproc)}

    cache=${SARUS_BUILD_CACHE:-/var/cache/sarus-build}
    if ! mkdir -p "$cache" 2>/dev/null || [[ ! -w $cache ]]; then
        cache=${XDG_CACHE_HOME:-$HOME/.cache}/sarus-build
        mkdir -p "$cache"
    fi
    # One build at a time per package and cache (another run waits, then
    # finds the result).
    exec 9>"$cache/$package.lock"
    flock 9

    # Private apt state kept in the cache: a repeated update only
    # revalidates the index (If-Modified-Since), it does not download it again.
    aptdir=$cache/apt
    mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
    # As root, apt's download methods run as _apt, as for the system's apt:
    # network code never runs as root.
    sandbox_user=$(id -un)
    if [[ $(id -u) -eq 0 ]] && id _apt >/dev/null 2>&1; then
        sandbox_user=_apt
        chown _apt "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
    fi
    echo "deb-src [signed-by=$keyring] http://deb.debian.org/debian $suite main" > "$aptdir/sources.list"
    apt_opts=(
        -o "Dir::Etc::SourceList=$aptdir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir/cache"
        -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
        -o "APT::Sandbox::User=$sandbox_user"
    )
    # apt's update of the shared lists is not safe for two packages at once.
    version=
    if flock "$aptdir/sources.list" apt-get -qq "${apt_opts[@]}" update >"$aptdir/update-$package.log" 2>&1; then
        version=$(apt-cache "${apt_opts[@]}" showsrc "$package" 2>/dev/null |
                  awk '$1 == "Version:" { print $2 }' | sort -V | tail -n1)
    fi
    if [[ -z $version ]]; then
        cached=$(ls -d "$cache/$package"-*-"$script_hash" 2>/dev/null | sort -V | tail -n1 || true)
        if [[ -n $cached && -f $cached/BUILDINFO ]]; then
            log "warning: cannot ask deb.debian.org for $package's version (see $aptdir/update-$package.log); using the cached $cached"
        else
            cat "$aptdir/update-$package.log" >&2 || true
            die "cannot find Debian $suite's $package source package and no cached build exists"
        fi
    else
        cached=$cache/$package-$version-$script_hash
    fi
}

source_build_cached() {
    [[ -f $cached/BUILDINFO ]]
}

source_build_fetch() {
    work=$(mktemp -d "$cache/tmp.$package.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    build_start=$(date +%s.%N)
    log "building $package $version (Debian $suite) in $work"
    # The download methods write into a directory of their own; root builds
    # only from its own copy of what they fetched, whose .dsc is checked
    # against the signed index again (dpkg-source then checks the tarballs
    # against the .dsc).
    mkdir "$work/download" "$work/source"
    [[ $sandbox_user != _apt ]] || chown _apt "$work/download"
    (cd "$work/download" && apt-get -qq "${apt_opts[@]}" source --download-only "$package=$version" \
        >"$work/apt-source.log" 2>&1) ||
        { cat "$work/apt-source.log" >&2; die "apt-get source $package=$version failed"; }
    find "$work/download" -maxdepth 1 -type f -exec cp -- {} "$work/source/" \;
    dsc=$(find "$work/source" -maxdepth 1 -name "*.dsc" | head -n1)
    [[ -n $dsc ]] || die "apt-get source fetched no .dsc for $package $version"
    expected=$(apt-cache "${apt_opts[@]}" showsrc "$package" 2>/dev/null | awk -v version="$version" -v dsc="$(basename "$dsc")" '
        /^$/ { ours = 0; sums = 0 }
        /^Version: / { ours = ($2 == version) }
        /^[^ ]/ { sums = /^Checksums-Sha256:/; next }
        ours && sums && $3 == dsc { print $1 }' | head -n1)
    [[ -n $expected && $(sha256sum "$dsc" | cut -d' ' -f1) == "$expected" ]] ||
        die "$(basename "$dsc") does not match Debian's signed index"
    (cd "$work/source" && dpkg-source -x "$(basename "$dsc")" >>"$work/apt-source.log" 2>&1) ||
        { cat "$work/apt-source.log" >&2; die "dpkg-source -x $(basename "$dsc") failed"; }
    src=$(find "$work/source" -mindepth 1 -maxdepth 1 -type d -name "$package-*" | head -n1)
    [[ -n $src ]] || die "no unpacked $package source in $work/source"
}

# Fails unless every program named is statically linked.
require_static() {
    local program
    for program in "$@"; do
        if readelf -l "$program" | grep -q 'INTERP\|Requesting program interpreter' ||
           readelf -d "$program" 2>/dev/null | grep -q NEEDED; then
            die "$(basename "$program") is dynamically linked"
        fi
    done
}

source_build_store() {
    local out=$1
    local end
    end=$(date +%s.%N)
    {
        echo "debian_version=$version"
        echo "suite=$suite"
        echo "script_sha256=$(sha256sum "$script" | cut -d' ' -f1)"
        cat
        echo "build_seconds=$(awk -v a="$build_start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')"
        (cd "$out/bin" && sha256sum -- * | sed 's/^/sha256 /')
    } > "$out/BUILDINFO"
    rm -rf "$cached"
    mv "$out" "$cached"
    log "built in $(sed -n 's/^build_seconds=//p' "$cached/BUILDINFO") s, cached in $cached"
}
