#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (AddressSanitizer and
# UndefinedBehaviorSanitizer on) and runs each for SECONDS (default 30),
# starting from its corpus in tests/fuzz/corpus/<target>. New inputs the
# fuzzer finds go to a scratch directory, not into the repository; a crash is
# saved in build-fuzz/findings/ and fails the script.
#   tools/run_fuzzers.sh [SECONDS] [TARGET...]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-30}
shift || true
build="$repo/build-fuzz"
cmake -S "$repo" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSARUS_FUZZ=ON -DSARUS_BUILD_TESTS=OFF >/dev/null
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    for source in "$repo"/tests/fuzz/fuzz_*.cpp; do
        targets+=("$(basename "$source" .cpp)")
    done
fi
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" >/dev/null
mkdir -p "$build/findings"
scratch=$(mktemp -d /tmp/sarus-fuzz-corpus.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
status=0
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    echo "=== $target: ${seconds} s"
    if ! "$build/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$build/findings/$target-" "$scratch/$target" "$repo/tests/fuzz/corpus/$target" \
            > "$build/$target.log" 2>&1; then
        echo "$target FAILED: see $build/$target.log and $build/findings/" >&2
        tail -n 30 "$build/$target.log" >&2
        status=1
    else
        grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$build/$target.log" | tr '\n' ' '
        echo
    fi
done
exit $status
