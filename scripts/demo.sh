#!/usr/bin/env bash
# The main job, end to end with no download: builds sail, generates a tiny SAIL-VL2 checkpoint
# with RANDOM weights in the exact Hugging Face layout, and converts it to the two GGUF files
# with sail-convert (--q4_k), then asks `sail run` about the bundled picture assets/sample.png.
# The weights are random, so the answer is gibberish: the demo shows the pipeline working
# (tiling, SAIL-ViT, image rows into llama.cpp, streaming), not a model. Outputs go to ./demo/
# (override with SAIL_DEMO_DIR). For the real model see the README.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
cargo build --release -p sail-convert -p sail-gen -p sail-cli
BIN="$CARGO_TARGET_DIR/release"
OUT="${SAIL_DEMO_DIR:-demo}"
mkdir -p "$OUT"
echo "== 1. a tiny random SAIL-VL2 checkpoint (random weights: the output is not meaningful text)"
"$BIN/sail-gen" ckpt --preset tiny --dtype bfloat16 --seed 0 --out "$OUT/tiny-ckpt" >/dev/null
ls -l "$OUT/tiny-ckpt"
echo "== 2. sail-convert $OUT/tiny-ckpt -o $OUT/sail-tiny.gguf --q4_k"
"$BIN/sail-convert" "$OUT/tiny-ckpt" -o "$OUT/sail-tiny.gguf" --q4_k
ls -l "$OUT"/sail-tiny*.gguf
echo "== 3. sail run -m $OUT/sail-tiny.gguf --image assets/sample.png -p \"Describe this image.\" (RANDOM WEIGHTS: expect gibberish)"
"$BIN/sail" run -m "$OUT/sail-tiny.gguf" --image assets/sample.png -p "Describe this image." -n 24 --temp 0
echo "== 4. the same, as JSON"
"$BIN/sail" run -m "$OUT/sail-tiny.gguf" --image assets/sample.png -p "Describe this image." -n 8 --temp 0 --json
