#!/usr/bin/env bash
# Runs the whole test suite: unit tests (GoogleTest through CTest) and the
# integration tests (pytest), which drive an installed sarus as the
# unprivileged users created by tests/integration/setup_host.sh.
#   sudo tools/run_tests.sh [PYTEST ARGS...]
# SARUS_PREFIX (default /opt/sarus-test) and SARUS_SUID_PREFIX (default
# /opt/sarus-suid) are where the tested userns and suid installations go.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export SARUS_PREFIX=${SARUS_PREFIX:-/opt/sarus-test}
export SARUS_SUID_PREFIX=${SARUS_SUID_PREFIX:-/opt/sarus-suid}

if [[ $(id -u) -ne 0 ]]; then
    echo "run_tests.sh: run as root: it installs packages and creates the test users" >&2
    exit 1
fi

"$repo/tools/install_dependencies.sh" --tests
"$repo/tests/integration/setup_host.sh"

# Fresh prefixes each time, so the installed sarus.json is the shipped one:
# one unprivileged installation in userns mode, one root-owned SUID
# installation configured by configure_installation.sh as an admin would.
rm -rf "$SARUS_PREFIX" "$SARUS_SUID_PREFIX"
"$repo/tools/build_and_install.sh" "$SARUS_PREFIX"
chmod 755 "$SARUS_PREFIX"
"$SARUS_PREFIX/configure_installation.sh" --mode userns "$SARUS_PREFIX"
cmake --install "$repo/build" --prefix "$SARUS_SUID_PREFIX" >/dev/null
"$SARUS_SUID_PREFIX/configure_installation.sh" --mode suid "$SARUS_SUID_PREFIX"

# Whatever the run leaves in /tmp or /var/tmp fails it, except the image
# caches and the per-user state directories that sarus, podman and the
# tests keep on purpose.
kept='^/(var/)?tmp/(sarus-[0-9]+|sarus-oci-[0-9]+|sarus-ranks-[0-9]+|containers-user-[0-9]+|podman-run-[0-9]+|pytest-of-root|'\
'sarus-build\.lock|sarus-(test|bench|quickstart)-images|sarus-test-debs)$'
temp_entries() { find /tmp /var/tmp -mindepth 1 -maxdepth 1 | sort; }
before=$(temp_entries)

echo "=== unit tests"
"$repo/tools/run_ctest.sh" "$repo/build"

echo "=== unit tests under AddressSanitizer and UndefinedBehaviorSanitizer"
"$repo/tools/run_sanitizers.sh"

echo "=== fuzzing the parsers root relies on (${SARUS_FUZZ_SECONDS:-30} s per target)"
"$repo/tools/run_fuzzers.sh" "${SARUS_FUZZ_SECONDS:-30}"

# The integration tests that need Slurm (test_slurm.py...) start a cluster of
# their own once, tests/integration/slurm_cluster.py: slurmctld on this host
# and three slurmd in their own namespaces on a private bridge (10.77.0.0/24),
# state in /var/lib/sarus-test-slurm, /etc/slurm and systemd untouched; it is
# stopped at the end of the session. By hand: slurm_cluster.py start|stop.
echo "=== integration tests"
cd "$repo/tests/integration"
status=0
/usr/bin/python3 -m pytest -p no:cacheprovider -q -rs "$@" || status=$?

left=$(comm -13 <(echo "$before") <(temp_entries) | grep -Ev "$kept" || true)
if [[ -n $left ]]; then
    echo "run_tests.sh: the run left these behind:" >&2
    echo "$left" >&2
    status=1
fi
exit $status
