#!/usr/bin/env bash
# Runs the whole test suite: unit tests (GoogleTest through CTest) and the
# integration tests (pytest), which drive an installed sarus as the
# unprivileged users created by tests/integration/setup_host.sh.
#   sudo tools/run_tests.sh [PYTEST ARGS...]
# SARUS_PREFIX (default /opt/sarus-test) is where the tested sarus is installed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export SARUS_PREFIX=${SARUS_PREFIX:-/opt/sarus-test}

if [[ $(id -u) -ne 0 ]]; then
    echo "run_tests.sh: run as root: it installs packages and creates the test users" >&2
    exit 1
fi

"$repo/tools/install_dependencies.sh" --tests
"$repo/tests/integration/setup_host.sh"

# A fresh prefix each time, so the installed sarus.json is the shipped one.
rm -rf "$SARUS_PREFIX"
"$repo/tools/build_and_install.sh" "$SARUS_PREFIX"
chmod 755 "$SARUS_PREFIX"

echo "=== unit tests"
(cd "$repo/build" && ctest --output-on-failure)

echo "=== integration tests"
cd "$repo/tests/integration"
/usr/bin/python3 -m pytest -p no:cacheprovider -q -rs "$@"
