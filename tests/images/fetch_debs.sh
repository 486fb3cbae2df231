#!/usr/bin/env bash
# Downloads amd64 .debs of one Debian suite without touching the host's apt
# setup, for building test images with another distribution's libraries.
#
#   fetch_debs.sh SUITE OUTDIR PACKAGE...
#
# e.g. fetch_debs.sh bullseye /var/tmp/sarus-test-debs/bullseye/debs libc6 libmpich12
#
# apt-get runs with a private configuration under /var/tmp/sarus-test-debs/SUITE
# (sources list, package lists, cache, empty dpkg status), selected with
# APT_CONFIG: apt reads that file *before* anything else, and it points
# Dir::Etc::parts and Dir::Etc::main away from /etc/apt, so neither the host's
# sources nor its apt.conf.d hooks (Post-Invoke...) nor its pinning apply.
#
# Authenticity: the suite's InRelease is checked against
# /usr/share/keyrings/debian-archive-keyring.gpg (signed-by in the private
# sources list; bookworm's debian-archive-keyring holds the bullseye,
# bookworm and trixie archive keys), and apt-get download checks each .deb's
# hash against that signed index. Nothing is ever allowed unauthenticated.
#
# Cache: a PACKAGE whose OUTDIR/PACKAGE_*_{amd64,all}.deb is already there is
# not downloaded again, and the package lists are only fetched when missing
# (or when a download fails because they went stale). Prints the path of each
# .deb, one a line, on stdout; progress goes to stderr.
set -euo pipefail

MIRROR=${SARUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

if [[ $# -lt 3 ]]; then
    echo "usage: $0 SUITE OUTDIR PACKAGE..." >&2
    exit 2
fi
suite=$1 outdir=$2
shift 2

. "$(dirname "$0")/own_directory.sh"
base=/var/tmp/sarus-test-debs/$suite
own_directory /var/tmp/sarus-test-debs
own_directory "$base"
mkdir -p "$base/etc/apt.conf.d" "$base/etc/preferences.d" "$base/lists/partial" \
         "$base/cache/archives/partial" "$base/download" "$outdir"
# apt-get downloads as the unprivileged _apt user when started as root: give
# it a private staging directory (OUTDIR may not be writable by it).
if [[ $(id -u) -eq 0 ]] && id _apt >/dev/null 2>&1; then
    chown _apt "$base/download"
fi
: >>"$base/status"
echo "deb [signed-by=$KEYRING] $MIRROR $suite main" >"$base/etc/sources.list"
# Check-Valid-Until off, as in the host's own apt setup: a mirror or proxy may
# serve a dated snapshot whose Release files have expired. The signature
# itself is still required and checked.
cat >"$base/apt.conf" <<EOF
Dir::Etc::main "/dev/null";
Dir::Etc::parts "$base/etc/apt.conf.d";
Dir::Etc::sourcelist "$base/etc/sources.list";
Dir::Etc::sourceparts "-";
Dir::Etc::preferences "/dev/null";
Dir::Etc::preferencesparts "$base/etc/preferences.d";
Dir::Etc::trusted "$base/etc/trusted.gpg";
Dir::Etc::trustedparts "$base/etc/trusted.gpg.d";
Dir::State "$base";
Dir::State::lists "$base/lists";
Dir::State::status "$base/status";
Dir::Cache "$base/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::GzipIndexes "true";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
Acquire::Check-Valid-Until "false";
EOF
export APT_CONFIG=$base/apt.conf

have_deb() {    # prints the cached .deb of $1, if any
    compgen -G "$outdir/${1}_*_amd64.deb" || compgen -G "$outdir/${1}_*_all.deb" || true
}

update() {
    echo "fetch_debs: apt-get update ($suite)" >&2
    apt-get -q update >&2
}

todo=()
for pkg in "$@"; do
    [[ -n $(have_deb "$pkg") ]] || todo+=("$pkg")
done
if [[ ${#todo[@]} -gt 0 ]]; then
    compgen -G "$base/lists/*_InRelease" >/dev/null || update
    echo "fetch_debs: apt-get download ${todo[*]} ($suite)" >&2
    if ! (cd "$base/download" && apt-get -q download "${todo[@]}" >&2); then
        update      # stale lists: the mirror moved on to newer versions
        (cd "$base/download" && apt-get -q download "${todo[@]}" >&2)
    fi
    for deb in "$base"/download/*.deb; do
        chmod 644 "$deb"
        mv -f "$deb" "$outdir/"
    done
fi
for pkg in "$@"; do
    deb=$(have_deb "$pkg" | tail -n 1)
    [[ -n $deb ]] || { echo "fetch_debs: no .deb for $pkg" >&2; exit 1; }
    echo "$deb"
done
