#!/usr/bin/env bash
# Runs tests under ThreadSanitizer:
#
#     scripts/tsan.sh [swift test arguments, e.g. --filter PublishTests]
#     scripts/tsan.sh --unit [swift test arguments]
#
# Without --unit: the unit and integration tests, against real nats-server processes as
# scripts/test.sh starts them, in .build-tsan (a build of every target); without arguments all
# but the fault, failover and timing suites (they measure or kill processes on deadlines that
# TSan's slowdown would miss).
# With --unit: the unit tests alone (MESSAGE_STORE_UNIT_TESTS_ONLY=1 leaves only them and what
# they build on in the package, about half the build), in .build-tsan-unit. scripts/test.sh, so
# CI, runs this.
#
# A TSan report fails the run; tests that fail under TSan's slowdown (5-15 times slower: missed
# deadlines) are listed but do not, as the same tests have already passed without it.
#
# Synchronization.Mutex on Linux locks with futex system calls that TSan does not see, so every
# access a Mutex guards is reported as a race; scripts/tsan/MutexCounter.swift shows it (two
# threads, one Mutex-guarded counter, a report), and this script runs it first to say whether
# the toolchain still does. The unit tests produce no such report today, so
# scripts/tsan/suppressions.txt has no entries yet; it is where they go if one appears.
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=.build-tsan
unit=false
if [[ ${1:-} == --unit ]]; then
    shift
    unit=true
    scratch=.build-tsan-unit
    export MESSAGE_STORE_UNIT_TESTS_ONLY=1
fi
mkdir -p "$scratch"
suppressions="$PWD/scripts/tsan/suppressions.txt"

# The reproduction: does TSan report a Mutex-guarded counter?
swiftc -sanitize=thread -O scripts/tsan/MutexCounter.swift -o "$scratch/MutexCounter"
if TSAN_OPTIONS=exitcode=66 "$scratch/MutexCounter" >"$scratch/MutexCounter.log" 2>&1; then
    echo "tsan: Mutex reproduction: no report (this toolchain's TSan sees Mutex; the suppressions may be unneeded)"
else
    echo "tsan: Mutex reproduction: TSan reports a Mutex-guarded counter ($(grep -c 'WARNING: ThreadSanitizer' "$scratch/MutexCounter.log") warning(s), see $scratch/MutexCounter.log); using $suppressions"
fi

if [[ $unit == true ]]; then
    scripts/setup.sh
else
    scripts/setup.sh --interop
    if [[ -z "${NATS_SERVER_BIN:-}" && -x /usr/sbin/nats-server ]]; then
        export NATS_SERVER_BIN=/usr/sbin/nats-server
    fi
    [[ -x .build/interop-venv/bin/python ]] && export MESSAGE_STORE_PYTHON="$PWD/.build/interop-venv/bin/python"
fi

MESSAGE_STORE_TEST_PID_DIR=$(mktemp -d)
export MESSAGE_STORE_TEST_PID_DIR
cleanup() {
    for file in "$MESSAGE_STORE_TEST_PID_DIR"/*; do
        [[ -e $file ]] && kill -9 "$(basename "$file")" 2>/dev/null || true
    done
    rm -rf "$MESSAGE_STORE_TEST_PID_DIR"
}
trap cleanup EXIT

start=$SECONDS
swift build --build-tests --sanitize=thread --scratch-path "$scratch"
echo "tsan: built in $((SECONDS - start)) s"
symbolizer="$(dirname "$(command -v swift)")/llvm-symbolizer"
[[ -x $symbolizer ]] && export TSAN_SYMBOLIZER_PATH=$symbolizer
# Reports go to files, so that a report, not a test missing a deadline under TSan's slowdown
# (5-15 times slower), decides the outcome.
reports="$scratch/reports"
rm -rf "$reports"
mkdir -p "$reports"
export TSAN_OPTIONS="suppressions=$suppressions:halt_on_error=0:history_size=4:log_path=$reports/tsan"
start=$SECONDS
status=0
if [[ $# -gt 0 || $unit == true ]]; then
    swift test --skip-build --sanitize=thread --scratch-path "$scratch" "$@" || status=$?
else
    swift test --skip-build --sanitize=thread --scratch-path "$scratch" \
        --skip FaultTests --skip FailoverTests --skip TimingTests || status=$?
fi
if compgen -G "$reports/tsan*" >/dev/null; then
    cat "$reports"/tsan* >&2
    echo "tsan: $(cat "$reports"/tsan* | grep -c 'WARNING: ThreadSanitizer') report(s), in $reports" >&2
    exit 1
fi
if [[ $status -ne 0 ]]; then
    echo "tsan: no reports in $((SECONDS - start)) s; some tests failed under TSan (deadlines it slows down; see above)"
else
    echo "tsan: no reports, every test passed, in $((SECONDS - start)) s"
fi
