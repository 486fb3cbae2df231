#!/usr/bin/env bash
# Builds the benchmarks' large image: Debian bookworm (minbase) with python3
# and numpy from Debian's repositories, saved as a docker-archive (one plain
# layer) and an OCI archive (one gzip layer). About 300 MB unpacked.
#   sudo bench/make_python_image.sh OUTDIR
# Skips the work when OUTDIR/python-numpy.docker.tar already exists.
set -euo pipefail
out=${1:?usage: make_python_image.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
. "$here/../tests/images/own_directory.sh"
own_directory "$out"
if [[ -f $out/python-numpy.docker.tar && -f $out/python-numpy.oci.tar ]]; then
    echo "make_python_image: $out/python-numpy.{docker,oci}.tar exist"
    exit 0
fi
command -v debootstrap >/dev/null || apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
rootfs=$(mktemp -d /var/tmp/sarus-python-rootfs-XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "make_python_image: debootstrap bookworm with python3-numpy into $rootfs (a few minutes)"
debootstrap --variant=minbase --include=python3,python3-numpy bookworm "$rootfs" "$mirror" >/dev/null
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
echo "make_python_image: unpacked size $(du -sh "$rootfs" | cut -f1)"
/usr/bin/python3 "$here/rootfs_to_archives.py" "$rootfs" "$out/python-numpy"
ls -l "$out"/python-numpy.*
