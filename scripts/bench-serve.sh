#!/usr/bin/env bash
# Bench of `sail serve` itself (HTTP, queueing, sessions, prompt reuse), not of the model: a
# tiny random model (golden case small-dense, f32) makes the engine cheap, so the figures show
# the server's throughput, latency and memory. CLIENTS concurrent `openai` clients send
# REQUESTS chat completions each (text and base64 images, streamed and not, 16 tokens), after
# a warm-up round of the same load; prints requests/s, latency p50/p95 and the server's RSS
# before/after (drift < 5% expected: resident memory must stay flat under load).
# Usage: scripts/bench-serve.sh [CLIENTS] [REQUESTS] [PARALLEL]   (defaults 8 50 2)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
clients=${1:-8} requests=${2:-50} parallel=${3:-2}
cargo build --release -q --bin sail --bin sail-gen --bin sail-convert
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
argv=$(python3 -c 'import json; print(" ".join(json.load(open("tests/golden/small-dense/case.json"))["generator"]["argv"]))')
# shellcheck disable=SC2086
"$bin/sail-gen" ckpt $argv --out "$work/ckpt" >/dev/null
"$bin/sail-convert" "$work/ckpt" -o "$work/tiny.gguf" --f32 >/dev/null
"$bin/sail-gen" image --width 260 --height 180 --seed 11 --out "$work/img.png" >/dev/null
"$bin/sail" serve -m "$work/tiny.gguf" --port 0 --parallel "$parallel" --ctx 1024 2>"$work/log" &
pid=$!
for _ in $(seq 600); do
  grep -q "ready:" "$work/log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
  sleep 0.1
done
url="http://$(grep -o 'listening on http://[^ ]*' "$work/log" | cut -d/ -f3)"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); server: --parallel $parallel, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
python3 tests/python/serve_load.py --url "$url" --image "$work/img.png" --clients "$clients" --requests "$requests" --max-tokens 16 --pid "$pid"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
