#!/usr/bin/env bash
# Builds the Dropbear SSH server and client that the SSH hook puts into
# containers, as Sarus ships them in <prefix>/dropbear: statically linked
# against musl, so that they run in any image (glibc or musl based, with or
# without a shell or libraries), and installs them into DESTDIR/bin.
#   tools/build_dropbear.sh DESTDIR
# Installs DESTDIR/bin/{dropbear,dbclient,dropbearkey} (three programs, not
# a multi-call binary: each works under any name it is copied to).
# The source is Debian bookworm's dropbear source package; fetching and
# caching are described in tools/debian_source_build.sh.
# Needs: musl-tools, dpkg-dev (dpkg-source), debian-archive-keyring, make.
set -euo pipefail

destdir=${1:?usage: build_dropbear.sh DESTDIR}
script=$(readlink -f "$0")
package=dropbear
source "$(dirname "$script")/debian_source_build.sh"

command -v musl-gcc >/dev/null || die "musl-gcc not found (tools/install_dependencies.sh installs musl-tools)"
source_build_init

install_from() {
    install -d -m 0755 "$destdir/bin"
    for prog in dropbear dbclient dropbearkey; do
        install -m 0755 "$1/bin/$prog" "$destdir/bin/$prog"
    done
    log "installed $(sed -n 's/^debian_version=//p' "$1/BUILDINFO") into $destdir/bin (from $1)"
}

if source_build_cached; then
    install_from "$cached"
    exit 0
fi

# --- fetch, configure, build -------------------------------------------------
source_build_fetch
[[ -f $src/svr-runopts.c ]] || die "no dropbear source in $src"

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
done
# Static, or it would not run in an image without (the same) libc.
require_static "$out/bin/dropbear" "$out/bin/dbclient" "$out/bin/dropbearkey"
"$out/bin/dropbear" -V 2>&1 | grep -q "v${version%%-*}" || die "built dropbear does not report version ${version%%-*}"
cp "$src/localoptions.h" "$out/localoptions.h"
source_build_store "$out" <<EOF
compiler=$(musl-gcc --version | head -n1)
configure=${configure_flags[*]}
EOF
install_from "$cached"
