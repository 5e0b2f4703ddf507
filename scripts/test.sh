#!/usr/bin/env bash
# The whole test suite, as CI runs it: setup, then every crate's tests in the release profile
# (one profile, so llama.cpp is built once).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
cargo test --release --workspace "$@"
