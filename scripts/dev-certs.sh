#!/usr/bin/env bash
# Makes a private certificate authority and certificates for a TLS NATS server on this machine
# (docker compose --profile tls, or nats-server --tls …), with openssl. Nothing here is a
# secret worth keeping: the files are for development only and stay out of git (dev-certs/).
#
#   scripts/dev-certs.sh [DIRECTORY]        default: dev-certs/
#
# Writes ca.pem (trust it: --tlsca / NATS_CA / tls.trustedCertificates), server.pem and
# server-key.pem (for localhost, 127.0.0.1 and the compose service nats-tls), and client.pem and
# client-key.pem (mutual TLS: --tlscert/--tlskey). Run again to make new ones.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-dev-certs}
mkdir -p "$dir"
command -v openssl >/dev/null || { echo "dev-certs: openssl is needed (apt-get install openssl)" >&2; exit 1; }

key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
cat >"$dir/ca.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = swift-message-store development CA
[ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
CNF
openssl req -x509 -new "${key[@]}" -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" -days 30 \
    -config "$dir/ca.cnf" -extensions ext 2>/dev/null

leaf() { # name usage subject-alternative-names
    local name=$1 usage=$2 names=$3
    {
        echo "basicConstraints = CA:FALSE"
        echo "keyUsage = critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage = $usage"
        [[ -n $names ]] && echo "subjectAltName = $names"
    } >"$dir/$name.ext"
    openssl req -new "${key[@]}" -keyout "$dir/$name-key.pem" -out "$dir/$name.csr" -subj "/CN=$name" 2>/dev/null
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
        -days 30 -out "$dir/$name.pem" -extfile "$dir/$name.ext" 2>/dev/null
    rm -f "$dir/$name.csr" "$dir/$name.ext"
}
leaf server serverAuth "DNS:localhost,DNS:nats-tls,IP:127.0.0.1"
leaf client clientAuth ""
rm -f "$dir/ca.cnf" "$dir/ca.srl"
# The server in the container reads its key as another user.
chmod 644 "$dir"/*.pem
echo "dev-certs: wrote $dir/{ca,server,server-key,client,client-key}.pem"
