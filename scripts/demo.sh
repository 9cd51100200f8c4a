#!/usr/bin/env bash
# Sets up what the demo needs (scripts/setup.sh), builds the examples, and runs them in order so
# the output tells the story: publish commands, handle them in a worker, retry and dead-letter a
# failing message, then two workers seen through their traces, health and metrics. Without
# NATS_URL it starts a throwaway nats-server with JetStream on a free loopback port and stops it
# afterwards; nothing is left running.
#
# --binary PATH runs only that program instead (scripts/leak-check.sh passes a sanitized build).
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
if [[ "${1:-}" == "--binary" ]]; then
    binary=$2
else
    scripts/setup.sh
    echo "demo: building the examples (the first build takes a minute or two)"
    swift build --product PublishCommands >/dev/null
    swift build --product SubscriberWorker >/dev/null
    swift build --product RetryAndTermination >/dev/null
    swift build --product TracedWorker >/dev/null
    bin="$(swift build --show-bin-path)"
fi

if [[ -z "${NATS_URL:-}" ]]; then
    server_bin=/usr/sbin/nats-server
    [[ -x $server_bin ]] || server_bin=$(command -v nats-server)
    workdir=$(mktemp -d)
    "$server_bin" --jetstream --addr 127.0.0.1 --port -1 --store_dir "$workdir/store" \
        --log "$workdir/server.log" --pid "$workdir/server.pid" &
    server_pid=$!
    # The server exits by SIGTERM (status 143): keep that from becoming the script's status.
    trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -rf "$workdir"' EXIT
    port=""
    for _ in $(seq 1 200); do
        port=$(sed -n 's/.*Listening for client connections on 127.0.0.1:\([0-9]*\).*/\1/p' "$workdir/server.log" 2>/dev/null || true)
        grep -q "Server is ready" "$workdir/server.log" 2>/dev/null && [[ -n $port ]] && break
        sleep 0.05
    done
    [[ -n $port ]] || { echo "demo: nats-server did not start:" >&2; cat "$workdir/server.log" >&2; exit 1; }
    export NATS_URL="nats://127.0.0.1:$port"
    echo "demo: started a throwaway nats-server at $NATS_URL"
fi

if [[ -n $binary ]]; then
    "$binary"
    exit
fi

echo
echo "== 1. A service publishes typed commands (Examples/PublishCommands)"
"$bin/PublishCommands" 5
echo
echo "== 2. A durable worker handles them by type, then shuts down gracefully (Examples/SubscriberWorker)"
"$bin/SubscriberWorker" --exit-after 6
echo
echo "== 3. A failing message is retried, terminated and dead-lettered (Examples/RetryAndTermination)"
"$bin/RetryAndTermination"
echo
echo "== 4. Traces, health and metrics of two workers in a ServiceGroup (Examples/TracedWorker)"
"$bin/TracedWorker"
echo
echo "demo: done; the throwaway server is stopped (set NATS_URL to use your own server)"
