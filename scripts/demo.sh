#!/usr/bin/env bash
# Sets up what the demo needs (scripts/setup.sh) and runs it. Without NATS_URL it starts a
# throwaway nats-server with JetStream on a free loopback port and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

# --binary PATH runs another build of the demo (scripts/leak-check.sh passes a sanitized one).
binary=""
if [[ "${1:-}" == "--binary" ]]; then
    binary=$2
else
    scripts/setup.sh
    swift build --product QuickStart
    binary="$binary"
fi

if [[ -z "${NATS_URL:-}" ]]; then
    server_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
    workdir=$(mktemp -d)
    "$server_bin" --jetstream --addr 127.0.0.1 --port -1 --store_dir "$workdir/store" \
        --log "$workdir/server.log" --pid "$workdir/server.pid" &
    server_pid=$!
    trap 'kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; rm -rf "$workdir"' EXIT
    for _ in $(seq 1 200); do
        port=$(sed -n 's/.*Listening for client connections on 127.0.0.1:\([0-9]*\).*/\1/p' "$workdir/server.log" 2>/dev/null || true)
        grep -q "Server is ready" "$workdir/server.log" 2>/dev/null && [[ -n $port ]] && break
        sleep 0.05
    done
    [[ -n ${port:-} ]] || { echo "demo: nats-server did not start:" >&2; cat "$workdir/server.log" >&2; exit 1; }
    export NATS_URL="nats://127.0.0.1:$port"
    echo "demo: started a throwaway nats-server at $NATS_URL"
fi

"$binary"
