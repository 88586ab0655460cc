#!/usr/bin/env bash
# Makes a cluster CA and one certificate per node for weir's mutual TLS
# between cluster nodes (weir serve --cluster-tls-cert/--cluster-tls-key/
# --cluster-tls-ca). Every node certificate carries the DNS name
# `weir-cluster`, which nodes check each other for; membership is proven
# by the CA's signature. Keep ca.key offline: whoever holds it can add
# nodes.
#
#   scripts/cluster-certs.sh DIR NODE...     e.g. scripts/cluster-certs.sh certs a b c
#
# writes DIR/ca.pem, DIR/ca.key and DIR/<node>.pem, DIR/<node>.key
# (ECDSA P-256, valid 10 years). An existing CA in DIR is reused.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 DIR NODE..." >&2
  exit 2
fi
dir=$1
shift
mkdir -p "$dir"
cd "$dir"
if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -keyout ca.key -out ca.pem -subj "/CN=weir cluster CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
for node in "$@"; do
  ext=$(mktemp)
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:weir-cluster\n' >"$ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$node.key" -out "$node.csr" \
    -subj "/CN=weir node $node" 2>/dev/null
  openssl x509 -req -in "$node.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile "$ext" -out "$node.pem" 2>/dev/null
  rm -f "$node.csr" "$ext"
done
chmod 600 ./*.key
echo "cluster certificates in $dir: ca.pem and $*"
