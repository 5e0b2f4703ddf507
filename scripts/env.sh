# Sourced by the scripts: one cargo target folder outside the checkout, so that a fresh clone
# (CI, a second worktree) reuses the llama.cpp build instead of spending minutes on it again.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sail/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
