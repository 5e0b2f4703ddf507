#!/usr/bin/env bash
# Decode speed of one model locally vs with every language layer on a `sail rpc-server` over
# loopback, alternated (local, rpc, local, rpc, ...) so machine-load drift shows; plus the bytes
# per decoded token the RPC connection carried (kernel TCP counters, from `sail bench`).
#   bench/rpc-loopback.sh MODEL.gguf [ROUNDS] [THREADS] [PROMPT_TOKENS] [GEN_TOKENS]
set -euo pipefail
model=$1 rounds=${2:-3} threads=${3:-2} prompt=${4:-64} gen=${5:-32}
sail=${SAIL:-${CARGO_TARGET_DIR:-$HOME/.cache/sail/target}/release/sail}
out=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$sail" rpc-server --port "$port" -t "$threads" >"$out/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
common=(bench -m "$model" --no-vision -t "$threads" --prompt-tokens "$prompt" --gen-tokens "$gen" --json)
for r in $(seq "$rounds"); do
    "$sail" "${common[@]}" >"$out/local-$r.json"
    "$sail" "${common[@]}" --rpc "127.0.0.1:$port" >"$out/rpc-$r.json"
done
python3 - "$out" "$rounds" <<'PY'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
print("| round | local decode tok/s (sail; llama.cpp alone) | RPC decode tok/s (sail; llama.cpp alone) | ratio RPC/local (llama.cpp alone) | B sent / token | B received / token | prefill B sent, received | load: B sent, ms local / RPC |")
print("|---|---|---|---|---|---|---|---|")
for r in range(1, rounds + 1):
    l = json.load(open(f"{out}/local-{r}.json")); p = json.load(open(f"{out}/rpc-{r}.json"))
    la, pa = l["llama_cpp"]["decode_tok_s"], p["llama_cpp"]["decode_tok_s"]
    t = p["rpc"]
    print(f"| {r} | {l['sail']['decode_tok_s']:.2f}; {la:.2f} | {p['sail']['decode_tok_s']:.2f}; {pa:.2f} | {pa / la:.2f} | "
          f"{t['decode_bytes_sent_per_token']:.0f} | {t['decode_bytes_received_per_token']:.0f} | {t['prefill_bytes_sent']}, {t['prefill_bytes_received']} | "
          f"{t['load_bytes_sent']}, {l['load_ms']:.0f} / {p['load_ms']:.0f} |")
print(f"\nmodel: {l['description']}; prompt {l['llama_cpp']['prompt_tokens']} tokens")
PY
