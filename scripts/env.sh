# Sourced by the scripts: one cargo target folder outside the checkout, so that a fresh clone
# (CI, a second worktree) reuses the llama.cpp build instead of spending minutes on it again.
# Each configuration (CPU, Vulkan, aarch64) keeps its own folder: switching features in one
# folder would rebuild llama.cpp every time.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sail/target}"
export SAIL_VULKAN_TARGET_DIR="${SAIL_VULKAN_TARGET_DIR:-$HOME/.cache/sail/target-vulkan}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
