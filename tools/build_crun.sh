#!/usr/bin/env bash
# Builds the crun that sarus starts containers with: Debian bookworm's crun
# (same version and patches as /usr/bin/crun, and one fix below), linked statically and
# without what sarus never uses (systemd cgroup manager, CRIU, libgcrypt,
# dlopen of Wasm or libkrun handlers). Debian's crun loads 11 shared
# libraries on every start, about 6 ms on the test VM, more than its own
# work for `crun --version`; a sarus start runs crun once.
#   tools/build_crun.sh DESTDIR
# Installs DESTDIR/crun. Seccomp and capabilities stay in (sarus.json's
# seccomp profile, the runtime's capability drop). Fetching and caching are
# described in tools/debian_source_build.sh.
# Needs: dpkg-dev, debian-archive-keyring, make, libseccomp-dev, libcap-dev,
# libyajl-dev (headers only: crun's own yajl copy is linked), libtool, python3.
set -euo pipefail

destdir=${1:?usage: build_crun.sh DESTDIR}
script=$(readlink -f "$0")
package=crun
source "$(dirname "$script")/debian_source_build.sh"

for library in libseccomp.a libcap.a; do
    [[ -n $(find /usr/lib -name "$library" -print -quit) ]] ||
        die "$library not found (tools/install_dependencies.sh installs libseccomp-dev and libcap-dev)"
done
source_build_init

install_from() {
    install -d -m 0755 "$destdir"
    install -m 0755 "$1/bin/crun" "$destdir/crun"
    log "installed crun $(sed -n 's/^debian_version=//p' "$1/BUILDINFO") into $destdir (from $1)"
}

if source_build_cached; then
    install_from "$cached"
    exit 0
fi

source_build_fetch
[[ -f $src/src/crun.c ]] || die "no crun source in $src"

# A hook may end without reading the container state on its stdin; crun 1.8
# then failed the container now and then ("writing to pipe: Broken pipe"),
# as the hook won or lost the race with crun's write. Later crun releases
# ignore EPIPE there too. Also dropped: the SIGPIPE that write raised, which
# crun, whose signals are blocked, would otherwise forward to the container.
patch --quiet -p1 -d "$src" <<'PATCH' || die "cannot apply the hook stdin patch to crun $version"
--- a/src/libcrun/utils.c
+++ b/src/libcrun/utils.c
@@ -1568,7 +1568,18 @@
   close_and_reset (&pipe_r);
 
   ret = TEMP_FAILURE_RETRY (write (pipe_w, stdin, stdin_len));
-  if (UNLIKELY (ret < 0))
+  if (UNLIKELY (ret < 0 && errno == EPIPE))
+    {
+      /* sarus: the hook ended without reading the state, which it may do:
+         its exit status decides. The write raised a SIGPIPE, blocked here;
+         drop it, or it would be forwarded to the container.  */
+      sigset_t sigpipe;
+      struct timespec now = { 0, 0 };
+      sigemptyset (&sigpipe);
+      sigaddset (&sigpipe, SIGPIPE);
+      sigtimedwait (&sigpipe, NULL, &now);
+    }
+  else if (UNLIKELY (ret < 0))
     {
       ret = crun_make_error (err, errno, "writing to pipe");
       goto restore_sig_mask_and_exit;
PATCH

configure_flags=(
    --disable-systemd --disable-criu --disable-dl --disable-shared --enable-embedded-yajl
)
# libgcrypt is picked up whenever it is installed (configure has no switch
# for it) and does not link statically without libgpg-error: leave it out.
(cd "$src" && ac_cv_search_gcry_check_version=no ./configure "${configure_flags[@]}" \
    >"$work/configure.log" 2>&1) ||
    { tail -n 40 "$work/configure.log" >&2; die "configure failed"; }
(cd "$src" && make -j "$jobs" LDFLAGS=-all-static >"$work/make.log" 2>&1) ||
    { tail -n 40 "$work/make.log" >&2; die "make failed"; }

out=$work/out
mkdir -p "$out/bin"
strip --strip-all -o "$out/bin/crun" "$src/crun"
chmod 0755 "$out/bin/crun"
require_static "$out/bin/crun"
features=$("$out/bin/crun" --version)
grep -q "^crun version ${version%%-*}" <<<"$features" || die "built crun does not report version ${version%%-*}"
grep -q "+SECCOMP" <<<"$features" && grep -q "+CAP" <<<"$features" ||
    die "built crun lacks seccomp or capabilities: $features"
source_build_store "$out" <<EOF
compiler=$(gcc --version | head -n1)
configure=${configure_flags[*]}
features=$(tail -n1 <<<"$features")
EOF
install_from "$cached"
