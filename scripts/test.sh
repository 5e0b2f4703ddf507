#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   1. setup (cmake, clang, numpy/Pillow for the Pillow parity test, the openai client for the
#      server tests);
#   2. formatting and lints (cargo fmt --check, clippy -D warnings: cheap, no extra build);
#   3. every crate's tests in ONE build of llama.cpp. By default that build has the Vulkan
#      backend as well as the CPU one (Debian 13's Vulkan headers via scripts/setup-vulkan.sh,
#      its own target folder), so the same run also checks parity on Mesa's lavapipe (CPU
#      Vulkan). SAIL_SKIP_VULKAN=1 uses the plain CPU build instead — the one scripts/demo.sh
#      makes, so after the demo nothing is compiled twice.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
features=()
if [ "${SAIL_SKIP_VULKAN:-0}" != "1" ]; then
  eval "$(scripts/setup-vulkan.sh)"
  export CARGO_TARGET_DIR="$SAIL_VULKAN_TARGET_DIR"
  features=(--features sail-cli/vulkan)
fi
step() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }
step "cargo fmt --check"
cargo fmt --all --check
step "cargo clippy -D warnings"
cargo clippy --release --workspace --all-targets "${features[@]}" -- -D warnings
step "cargo test"
cargo test --release --workspace "${features[@]}" "$@"
