#!/usr/bin/env bash
# The unit tests built with AddressSanitizer and UndefinedBehaviorSanitizer
# (any report fails the test that triggered it).
#   tools/run_sanitizers.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build="$repo/build-asan"
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DSARUS_SANITIZE=ON >/dev/null
# the test programs only: sarus, the hooks and the helpers are not run here
targets=()
for source in "$repo"/tests/unit/test_*.cpp "$repo"/hooks/tests/test_*.cpp; do
    targets+=("$(basename "$source" .cpp)")
done
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
"$repo/tools/run_ctest.sh" "$build"
