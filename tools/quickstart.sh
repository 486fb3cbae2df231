#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a working sarus in userns mode:
# installs the dependencies, builds and installs sarus into PREFIX (default
# /opt/sarus), prepares the host, makes a small busybox image locally from
# Debian's busybox-static package, imports it and runs a container from it.
#   sudo tools/quickstart.sh [PREFIX]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-/opt/sarus}

step() { printf '\n=== %s\n' "$*"; }

step "Installing dependencies (Debian packages)"
# build and runtime packages only: the test suite's (a registry, Slurm, munge)
# would start services sarus does not need; make_images.py downloads
# busybox-static with apt-get download
"$repo/tools/install_dependencies.sh"

step "Building and installing sarus into $prefix"
"$repo/tools/build_and_install.sh" "$prefix"
"$prefix/configure_installation.sh" --mode userns "$prefix"

step "Preparing the host for unprivileged containers"
"$repo/tools/prepare_host.sh"

step "Making a small test image from Debian's busybox-static"
images_dir=/var/tmp/sarus-quickstart-images
/usr/bin/python3 "$repo/tests/images/make_images.py" "$images_dir" >/dev/null
ls -l "$images_dir/busybox.oci.tar"

export PATH="$prefix/bin:$PATH"
step "sarus load $images_dir/busybox.oci.tar busybox"
sarus load "$images_dir/busybox.oci.tar" busybox

step "sarus images"
sarus images

step "sarus run load/library/busybox cat /etc/os-release"
sarus run load/library/busybox cat /etc/os-release

printf '\nsarus is installed in %s. Add it to your PATH:\n  export PATH=%s/bin:$PATH\n' "$prefix" "$prefix"
