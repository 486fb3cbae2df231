#!/usr/bin/env bash
# Configures, builds and installs sarus into PREFIX (default /opt/sarus).
#   tools/build_and_install.sh [PREFIX]
# BUILD_DIR (default <repo>/build), JOBS (default: number of CPUs) and
# SARUS_WITH_DROPBEAR (default 1; 0: no <prefix>/dropbear) and SARUS_WITH_CRUN
# (default 1; 0: no <prefix>/libexec/sarus/crun) may be set.
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
# A static crun without the libraries sarus does not use, installed by CMake
# as <prefix>/libexec/sarus/crun (cached like Dropbear). SARUS_WITH_CRUN=0
# skips it: sarus then uses the system's crun.
if [[ ${SARUS_WITH_CRUN:-1} != 0 ]]; then
    JOBS=$jobs "$repo/tools/build_crun.sh" "$build_dir/crun"
else
    rm -rf "$build_dir/crun"
fi
cmake --install "$build_dir" >/dev/null
# An earlier install's copies must not stay what the prefix runs (as root in
# suid mode) once they are turned off, e.g. to take a Debian security update.
if [[ ${SARUS_WITH_CRUN:-1} == 0 ]]; then
    rm -f "$prefix/libexec/sarus/crun"
fi
if [[ ${SARUS_WITH_DROPBEAR:-1} == 0 ]]; then
    rm -rf "$prefix/dropbear"
fi
echo "Installed sarus into $prefix"
