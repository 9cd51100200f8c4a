#!/usr/bin/env bash
# Fuzzes what the library reads from peers, each target for a bounded time:
#
#     scripts/fuzz.sh [seconds-per-target] [target ...]
#
# The targets (the package in Fuzz/, built with libFuzzer and AddressSanitizer in Fuzz/.build):
# FuzzEnvelope (Envelope.decodeHead/decodeData), FuzzDispatch (the worker's dispatch decoder:
# FastJSONDecoder, the JSONDecoder fallback, duplicate keys), FuzzPublishAck (PublishAckReply.parse)
# and FuzzReplySubject (JetStreamReplySubject.parse). Each starts from its seeds in
# Fuzz/Corpus/<target>; what it finds on the way goes to a temporary directory, never into the
# repository. A crash, broken invariant, leak, timeout or out-of-memory fails the run with the
# input's path and a dump of its bytes (reproduce with `Fuzz/.build/<configuration>/<target> <input>`).
#
# FUZZ_CONFIGURATION=release (the default) builds optimised targets (about twice the inputs a
# second; the first build takes about 8 CPU-minutes); debug builds in about a third of that,
# which is what scripts/test.sh uses for its short run.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(FuzzEnvelope FuzzDispatch FuzzPublishAck FuzzReplySubject)

# Coverage and address checks in every Swift module, the library's included; -enable-testing
# because the targets call internal API. These flags stay in Fuzz/.build.
configuration=${FUZZ_CONFIGURATION:-release}
build=(swift build -c "$configuration" --package-path Fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing)
echo "fuzz: building ${targets[*]}"
start=$SECONDS
for target in "${targets[@]}"; do
    "${build[@]}" --product "$target"
done
echo "fuzz: built in $((SECONDS - start)) s"
bin="$("${build[@]}" --show-bin-path)"

symbolizer="$(dirname "$(command -v swift)")/llvm-symbolizer"
[[ -x $symbolizer ]] && export ASAN_SYMBOLIZER_PATH=$symbolizer
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1
# Swift's backtracer reads memory in ways AddressSanitizer reports; libFuzzer prints the stack.
export SWIFT_BACKTRACE=enable=no

work=$(mktemp -d "${TMPDIR:-/tmp}/message-store-fuzz.XXXXXX")
failed=0
for target in "${targets[@]}"; do
    mkdir -p "$work/$target/corpus"
    log="$work/$target/log"
    # New inputs go to the first directory (temporary); the seeds are only read.
    status=0
    "$bin/$target" "$work/$target/corpus" "Fuzz/Corpus/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -artifact_prefix="$work/$target/" -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [[ $status -eq 0 ]]; then
        echo "fuzz: $target: ${runs:-?} inputs in $seconds s, ${coverage:-cov: ?}, $(ls "$work/$target/corpus" | wc -l) new corpus entries, no failures"
        continue
    fi
    failed=1
    echo "fuzz: $target FAILED (exit $status); log: $log" >&2
    grep -E 'ERROR: |==ERROR|invariant broken|Fatal error|SUMMARY' "$log" | head -20 >&2 || true
    for artifact in "$work/$target"/crash-* "$work/$target"/leak-* "$work/$target"/timeout-* "$work/$target"/oom-* \
        "$work/$target"/slow-unit-*; do
        [[ -e $artifact ]] || continue
        echo "fuzz: failing input: $artifact ($(wc -c <"$artifact") bytes)" >&2
        xxd "$artifact" | head -64 >&2
    done
done
if [[ $failed -ne 0 ]]; then
    echo "fuzz: failures; inputs and logs kept in $work" >&2
    exit 1
fi
rm -rf "$work"
echo "fuzz: all targets passed"
