#!/usr/bin/env bash
# Installs the Debian packages weir's build and tests need, only when missing.
#   libclang-dev   : bindgen (librocksdb-sys)
#   librocksdb-dev : Debian's RocksDB, linked via ROCKSDB_LIB_DIR (.cargo/config.toml)
#   mosquitto      : MQTT broker for integration tests and benchmarks
#   libsqlite3-dev : SQLite linked by rusqlite (Debian's library, no bundled C build)
#   postgresql     : server binaries (/usr/lib/postgresql/*/bin) the SQL tests start in a temp dir
#   openssl        : scripts/cluster-certs.sh (certificates for the cluster TLS tests)
set -euo pipefail
pkgs=(libclang-dev librocksdb-dev mosquitto mosquitto-clients libsqlite3-dev postgresql openssl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi
# Python packages for the AI tests: the eKuiper plugin SDK (with pynng),
# numpy and scikit-learn for the sample plugin, skl2onnx and onnxruntime to
# make and check the test models. Installed only when an import fails.
py="${WEIR_PYTHON:-python3}"
if ! "$py" -c 'import ekuiper, pynng, numpy, sklearn, skl2onnx, onnxruntime' 2>/dev/null; then
  "$py" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    ekuiper pynng numpy scikit-learn skl2onnx onnxruntime onnx
fi
# A build cache outside the clone: later runs only rebuild workspace crates.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/weir/target}"
