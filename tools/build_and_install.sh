#!/usr/bin/env bash
# Configures, builds and installs sarus into PREFIX (default /opt/sarus).
#   tools/build_and_install.sh [PREFIX]
# BUILD_DIR (default <repo>/build) and JOBS (default: number of CPUs) may be set.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-/opt/sarus}
build_dir=${BUILD_DIR:-$repo/build}
jobs=${JOBS:-$(nproc)}

cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build "$build_dir" -j "$jobs"
cmake --install "$build_dir" >/dev/null
echo "Installed sarus into $prefix"
