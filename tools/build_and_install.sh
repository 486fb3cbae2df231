#!/usr/bin/env bash
# Configures, builds and installs sarus into PREFIX (default /opt/sarus).
#   tools/build_and_install.sh [PREFIX]
# BUILD_DIR (default <repo>/build), JOBS (default: number of CPUs) and
# SARUS_WITH_DROPBEAR (default 1; 0: no <prefix>/dropbear) may be set.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-/opt/sarus}
build_dir=${BUILD_DIR:-$repo/build}
jobs=${JOBS:-$(nproc)}

cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build "$build_dir" -j "$jobs"
# The SSH hook's static Dropbear, installed by CMake into <prefix>/dropbear
# (cached: only a new Debian version or a changed script builds it again).
# SARUS_WITH_DROPBEAR=0 skips it (and removes an earlier build's copy).
if [[ ${SARUS_WITH_DROPBEAR:-1} != 0 ]]; then
    JOBS=$jobs "$repo/tools/build_dropbear.sh" "$build_dir/dropbear"
else
    rm -rf "$build_dir/dropbear"
fi
cmake --install "$build_dir" >/dev/null
echo "Installed sarus into $prefix"
