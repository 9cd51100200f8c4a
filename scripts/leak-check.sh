#!/usr/bin/env bash
# Runs the QuickStart demo built with AddressSanitizer + LeakSanitizer against a throwaway
# nats-server and fails if anything leaks or is used after free.
#
# (valgrind 3.19, Debian 12's, crashes inside its own scheduler on any Swift program that starts
# the concurrency thread pool, so LeakSanitizer does this job.)
set -euo pipefail
cd "$(dirname "$0")/.."

swift build --sanitize=address --scratch-path .build-asan --product QuickStart
bin="$(swift build --sanitize=address --scratch-path .build-asan --show-bin-path)/QuickStart"
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 NATS_URL="${NATS_URL:-}" scripts/demo.sh --binary "$bin"
echo "leak-check: no leaks or memory errors"
