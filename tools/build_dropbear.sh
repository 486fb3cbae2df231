#!/usr/bin/env bash
# Builds the Dropbear SSH server and client that the SSH hook puts into
# containers, as Sarus ships them in <prefix>/dropbear: statically linked
# against musl, so that they run in any image (glibc or musl based, with or
# without a shell or libraries), and installs them into DESTDIR/bin.
#   tools/build_dropbear.sh DESTDIR
# Installs DESTDIR/bin/{dropbear,dbclient,dropbearkey} (three programs, not
# a multi-call binary: each works under any name it is copied to).
#
# The source is Debian bookworm's dropbear source package, with Debian's
# patches (security fixes among them), fetched with `apt-get source` through
# a private apt configuration: the system's sources and package lists are
# neither read nor changed, so no deb-src line needs to be configured.
#
# Builds are cached in $SARUS_BUILD_CACHE (default /var/cache/sarus-build,
# or ~/.cache/sarus-build when that is not writable) under
# dropbear-<Debian version>-<hash of this script>: a new Debian version or a
# change of this script (e.g. of localoptions.h below) builds again,
# anything else copies the cached binaries. Without network access the
# newest cached build of this script is used, with a warning.
# Needs: musl-tools, dpkg-dev (dpkg-source), debian-archive-keyring, make.
set -euo pipefail

destdir=${1:?usage: build_dropbear.sh DESTDIR}
script=$(readlink -f "$0")
script_hash=$(sha256sum "$script" | cut -c1-12)
jobs=${JOBS:-$(nproc)}
suite=bookworm
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

log() { echo "build_dropbear.sh: $*" >&2; }
die() { log "$*"; exit 1; }

for tool in musl-gcc dpkg-source make strip; do
    command -v "$tool" >/dev/null || die "$tool not found (tools/install_dependencies.sh installs musl-tools and dpkg-dev)"
done
[[ -r $keyring ]] || die "$keyring not found (package debian-archive-keyring)"

cache=${SARUS_BUILD_CACHE:-/var/cache/sarus-build}
if ! mkdir -p "$cache" 2>/dev/null || [[ ! -w $cache ]]; then
    cache=${XDG_CACHE_HOME:-$HOME/.cache}/sarus-build
    mkdir -p "$cache"
fi

# One build at a time per cache (another run waits, then finds the result).
exec 9>"$cache/dropbear.lock"
flock 9

# --- which version does bookworm have now? -----------------------------------
# Private apt state kept in the cache: a repeated update only revalidates
# the index (If-Modified-Since), it does not download it again.
aptdir=$cache/apt
mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
echo "deb-src [signed-by=$keyring] http://deb.debian.org/debian $suite main" > "$aptdir/sources.list"
apt_opts=(
    -o "Dir::Etc::SourceList=$aptdir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir/cache"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
    -o "APT::Sandbox::User=$(id -un)"
)
version=
if apt-get -qq "${apt_opts[@]}" update >"$aptdir/update.log" 2>&1; then
    version=$(apt-cache "${apt_opts[@]}" showsrc dropbear 2>/dev/null |
              awk '$1 == "Version:" { print $2 }' | sort -V | tail -n1)
fi
if [[ -z $version ]]; then
    cached=$(ls -d "$cache"/dropbear-*-"$script_hash" 2>/dev/null | sort -V | tail -n1 || true)
    if [[ -n $cached && -f $cached/BUILDINFO ]]; then
        log "warning: cannot ask deb.debian.org for dropbear's version (see $aptdir/update.log); using the cached $cached"
    else
        cat "$aptdir/update.log" >&2 || true
        die "cannot find Debian $suite's dropbear source package and no cached build exists"
    fi
else
    cached=$cache/dropbear-$version-$script_hash
fi

install_from() {
    install -d -m 0755 "$destdir/bin"
    for prog in dropbear dbclient dropbearkey; do
        install -m 0755 "$1/bin/$prog" "$destdir/bin/$prog"
    done
    log "installed $(sed -n 's/^debian_version=//p' "$1/BUILDINFO") into $destdir/bin (from $1)"
}

if [[ -f $cached/BUILDINFO ]]; then
    install_from "$cached"
    exit 0
fi

# --- fetch, configure, build -------------------------------------------------
work=$(mktemp -d "$cache/tmp.dropbear.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s.%N)
log "building dropbear $version (Debian $suite) in $work"
(cd "$work" && apt-get -qq "${apt_opts[@]}" source "dropbear=$version" >apt-source.log 2>&1) ||
    { cat "$work/apt-source.log" >&2; die "apt-get source dropbear=$version failed"; }
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'dropbear-*' | head -n1)
[[ -n $src && -f $src/svr-runopts.c ]] || die "no unpacked dropbear source in $work"

# Compile-time options. The server runs in the container as the user (not
# root) with -E -r KEY -p PORT -P PIDFILE and public-key logins only; the
# client is the container's ssh for MPI launchers. See default_options.h.
cat > "$src/localoptions.h" <<'EOF'
/* sarus: tools/build_dropbear.sh */
/* public key authentication only: no password, PAM or askpass code at all */
#define DROPBEAR_SVR_PASSWORD_AUTH 0
#define DROPBEAR_SVR_PAM_AUTH 0
#define DROPBEAR_CLI_PASSWORD_AUTH 0
#define DROPBEAR_USE_PASSWORD_ENV 0
#define DROPBEAR_CLI_ASKPASS_HELPER 0
/* no X11, agent or U2F: nothing in a container provides them */
#define DROPBEAR_X11FWD 0
#define DROPBEAR_SVR_AGENTFWD 0
#define DROPBEAR_CLI_AGENTFWD 0
#define DROPBEAR_SK_KEYS 0
/* no sftp-server exists at a fixed path in arbitrary images */
#define DROPBEAR_SFTPSERVER 0
/* a login shell does not print the image's /etc/motd into job output */
#define DO_MOTD 0
/* the client's default identity, as the SSH hook installs it */
#define DROPBEAR_DEFAULT_CLI_AUTHKEY "~/.ssh/id_dropbear"
/* the server clears the environment (unless -e): the PATH a command gets.
 * /usr/local/bin is where images put MPI (orted, hydra_pmi_proxy). */
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define DEFAULT_ROOT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* MPI launchers open many connections at once from one node: the defaults
 * (5 unauthenticated per address, 30 in all) make the excess ones be
 * closed before the key exchange ("Connection reset"). */
#define MAX_UNAUTH_PER_IP 64
#define MAX_UNAUTH_CLIENTS 128
EOF

configure_flags=(
    --enable-static --enable-bundled-libtom --disable-zlib --disable-pam --disable-shadow
    --disable-lastlog --disable-utmp --disable-utmpx --disable-wtmp --disable-wtmpx
    --disable-loginfunc --disable-pututline --disable-pututxline
)
(cd "$src" && CC=musl-gcc ./configure "${configure_flags[@]}" >"$work/configure.log" 2>&1) ||
    { tail -n 40 "$work/configure.log" >&2; die "configure failed (musl-gcc static)"; }
(cd "$src" && make -j "$jobs" PROGRAMS="dropbear dbclient dropbearkey" >"$work/make.log" 2>&1) ||
    { tail -n 40 "$work/make.log" >&2; die "make failed"; }

out=$work/out
mkdir -p "$out/bin"
for prog in dropbear dbclient dropbearkey; do
    strip --strip-all -o "$out/bin/$prog" "$src/$prog"
    chmod 0755 "$out/bin/$prog"
    # Static, or it would not run in an image without (the same) libc.
    if readelf -l "$out/bin/$prog" | grep -q 'INTERP\|Requesting program interpreter' ||
       readelf -d "$out/bin/$prog" 2>/dev/null | grep -q NEEDED; then
        die "$prog is dynamically linked"
    fi
done
"$out/bin/dropbear" -V 2>&1 | grep -q "v${version%%-*}" || die "built dropbear does not report version ${version%%-*}"
cp "$src/localoptions.h" "$out/localoptions.h"
end=$(date +%s.%N)
{
    echo "debian_version=$version"
    echo "suite=$suite"
    echo "script_sha256=$(sha256sum "$script" | cut -d' ' -f1)"
    echo "compiler=$(musl-gcc --version | head -n1)"
    echo "configure=${configure_flags[*]}"
    echo "build_seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')"
    (cd "$out/bin" && sha256sum dropbear dbclient dropbearkey | sed 's/^/sha256 /')
} > "$out/BUILDINFO"
rm -rf "$cached"
mv "$out" "$cached"
log "built in $(sed -n 's/^build_seconds=//p' "$cached/BUILDINFO") s, cached in $cached"
install_from "$cached"
