#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. setup (cmake, clang, numpy/Pillow for the Pillow parity test);
#   2. every crate's tests, CPU build, release profile (one profile: llama.cpp is built once);
#   3. the Vulkan feature: built with Debian 13's headers (scripts/setup-vulkan.sh) in its own
#      target folder, its parity cases run on Mesa's lavapipe (CPU Vulkan).
# SAIL_SKIP_VULKAN=1 skips step 3 (it costs a second llama.cpp build, ~16 min cold).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
cargo test --release --workspace "$@"
if [ "${SAIL_SKIP_VULKAN:-0}" != "1" ]; then
  eval "$(scripts/setup-vulkan.sh)"
  CARGO_TARGET_DIR="$SAIL_VULKAN_TARGET_DIR" cargo test --release -p sail-runtime --features vulkan --test vulkan "$@"
fi
