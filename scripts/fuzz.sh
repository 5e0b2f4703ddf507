#!/usr/bin/env bash
# Long fuzz runs (not part of CI; CI runs fuzz/tests/smoke.rs, about a minute in all).
#
#   scripts/fuzz.sh TARGET [SECONDS]       TARGET: gguf | hf | image | prompt | graph
#
# gguf, hf, image, prompt: coverage-guided libFuzzer on stable Rust. fuzz/libfuzzer is built
# with sanitizer-coverage flags (what cargo-fuzz passes on nightly) and an explicit --target,
# so the flags never reach build scripts, in its own target folder (SAIL_FUZZ_TARGET_DIR,
# default ~/.cache/sail/target-fuzz): those targets are plain Rust, so llama.cpp is never built
# there. New inputs go to fuzz/work/TARGET (ignored by git), crashes to fuzz/findings/.
# graph: needs ggml, so it runs in the normal release build through sail-fuzz's in-process
# runner (random structural mutations, not coverage-guided).
#
# Runs niced; a finding exits non-zero and names the input. Reproduce a finding with
#   cargo run --release -p sail-fuzz -- replay TARGET FILE
# and turn it into a regression test next to the code it broke.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh gguf|hf|image|prompt|graph [SECONDS]}
seconds=${2:-600}
mkdir -p fuzz/findings
if [ "$target" = graph ]; then
  . scripts/env.sh
  cargo build --release -p sail-fuzz
  exec nice -n 15 "${CARGO_TARGET_DIR:-$HOME/.cache/sail/target}/release/sail-fuzz" run graph --seconds "$seconds" --findings fuzz/findings
fi
host=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=${SAIL_FUZZ_TARGET_DIR:-$HOME/.cache/sail/target-fuzz}
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
(cd fuzz/libfuzzer && nice -n 15 cargo build --release --target "$host" --bin "$target")
mkdir -p "fuzz/work/$target"
exec nice -n 15 "$CARGO_TARGET_DIR/$host/release/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 \
  -print_final_stats=1 -artifact_prefix=fuzz/findings/ "fuzz/work/$target" "fuzz/corpus/$target"
