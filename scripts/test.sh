#!/usr/bin/env bash
# Runs every test of the workspace (unit, integration, replay cases) and
# checks that the benchmarks still compile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
mkdir -p "$CARGO_TARGET_DIR"
if [ "$(du -sm "$CARGO_TARGET_DIR" | cut -f1)" -gt 30000 ]; then rm -rf "$CARGO_TARGET_DIR"; fi
export CARGO_TERM_COLOR=never
cargo build --locked --workspace --all-targets
timeout 45m cargo test --locked --workspace
cargo bench --locked --no-run
