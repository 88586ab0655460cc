#!/usr/bin/env bash
# The weir demo from a fresh clone: installs the Debian packages the build
# needs when missing (scripts/setup.sh), builds in release mode and runs
# `weir demo`. Arguments go to the demo: --duration SECS, --rate PER_SEC,
# --furnaces N, --quiet, --api ADDR (see `weir demo --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
exec cargo run --release --bin weir -- demo "$@"
