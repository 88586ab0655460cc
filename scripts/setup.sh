#!/usr/bin/env bash
# Installs the Debian packages weir's build and tests need, only when missing.
#   libclang-dev   : bindgen (librocksdb-sys)
#   librocksdb-dev : Debian's RocksDB, linked via ROCKSDB_LIB_DIR (.cargo/config.toml)
#   mosquitto      : MQTT broker for integration tests and benchmarks
#   libsqlite3-dev : SQLite linked by rusqlite (Debian's library, no bundled C build)
#   postgresql     : server binaries (/usr/lib/postgresql/*/bin) the SQL tests start in a temp dir
set -euo pipefail
pkgs=(libclang-dev librocksdb-dev mosquitto mosquitto-clients libsqlite3-dev postgresql)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi
# A build cache outside the clone: later runs only rebuild workspace crates.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/weir/target}"
