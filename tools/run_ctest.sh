#!/usr/bin/env bash
# Runs the GoogleTest programs of BUILD_DIR through CTest. GTEST_SKIP ends a
# test with exit code 0, so CTest counts a skipped test as passed: a skip
# fails the run here, as in the integration tests, unless
# SARUS_TESTS_ALLOW_SKIPS=1 (a subset run by hand on a host that lacks
# something).
#   tools/run_ctest.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: run_ctest.sh BUILD_DIR}
cd "$build"
ctest --output-on-failure
skipped=$(grep -h '^\[  SKIPPED \] [A-Za-z]' Testing/Temporary/LastTest.log | sort -u || true)
if [[ -n $skipped && ${SARUS_TESTS_ALLOW_SKIPS:-0} != 1 ]]; then
    echo "run_ctest.sh: a skip is not a pass (SARUS_TESTS_ALLOW_SKIPS=1 allows it):" >&2
    echo "$skipped" >&2
    exit 1
fi
