#!/usr/bin/env bash
# Reruns the measurements of bench/2026-12-02-cache-memory.md on this machine:
#   1. repack vs --no-repack on text: load time (wall and CPU), decode speed, memory split;
#      interleaved A/B runs so a change in machine load hits both sides alike; then both
#      models in one process, prefill and decode alternating round by round (--repack-ab);
#   2. time to the first token with a multi-tile image: first question (miss), second question
#      in a new session (memory cache), third after clearing memory (--cache-dir), each mode.
# Every run writes `sail bench --json` (with the load average at its start and end) to OUTDIR;
# the summary at the end is printed from those files.
#
#   scripts/bench-cache-memory.sh MODEL.gguf IMAGE OUTDIR [THREADS] [ROUNDS]
#
# MODEL.mmproj.gguf must sit beside MODEL.gguf. Build first: cargo build --release -p sail-cli
# (SAIL=path/to/sail overrides the binary).
set -euo pipefail
MODEL=${1:?usage: $0 MODEL.gguf IMAGE OUTDIR [THREADS] [ROUNDS]}
IMAGE=${2:?usage: $0 MODEL.gguf IMAGE OUTDIR [THREADS] [ROUNDS]}
OUT=${3:?usage: $0 MODEL.gguf IMAGE OUTDIR [THREADS] [ROUNDS]}
T=${4:-2}
ROUNDS=${5:-3}
SAIL=${SAIL:-${CARGO_TARGET_DIR:-target}/release/sail}
mkdir -p "$OUT"
echo "warming the page cache" >&2
cat "$MODEL" "${MODEL%.gguf}.mmproj.gguf" >/dev/null

flag() { [ "$1" = no-repack ] && echo --no-repack || true; }

for i in $(seq "$ROUNDS"); do
  for r in repack no-repack; do
    echo "text $r round $i (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    # shellcheck disable=SC2046
    "$SAIL" bench -m "$MODEL" -t "$T" --no-vision --prompt-tokens 128 --gen-tokens 32 $(flag $r) --json >"$OUT/text-$r-$i.json"
  done
done

echo "repack A/B in one process (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
"$SAIL" bench -m "$MODEL" -t "$T" --no-vision --prompt-tokens 64 --gen-tokens 16 --repack-ab 9 --json >"$OUT/repack-ab.json"

for r in repack no-repack; do
  echo "image $r (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  rm -rf "$OUT/rows-$r"
  # shellcheck disable=SC2046
  "$SAIL" bench -m "$MODEL" -t "$T" --image "$IMAGE" --no-vision --prompt-tokens 32 --gen-tokens 8 --cache-dir "$OUT/rows-$r" \
    $(flag $r) --json >"$OUT/image-$r.json"
done

python3 - "$OUT" <<'EOF'
import glob, json, os, statistics, sys
out = sys.argv[1]
mib = lambda b: b / 1048576
def load(p):
    with open(p) as f:
        return json.load(f)
print(f"{'run':<22}{'load ms':>9}{'CPU ms':>8}{'decode t/s':>11}{'llama.cpp':>10}{'RSS MiB':>9}{'peak MiB':>9}{'mapped':>8}{'repacked':>9}  load avg")
for r in ("repack", "no-repack"):
    runs = sorted(glob.glob(os.path.join(out, f"text-{r}-*.json")))
    for p in runs:
        j = load(p); m = j["memory"]
        print(f"{os.path.basename(p):<22}{j['load_ms']:>9.0f}{j['load_cpu_ms']:>8.0f}{j['sail']['decode_tok_s']:>11.2f}"
              f"{j['llama_cpp']['decode_tok_s']:>10.2f}{mib(m['rss_bytes']):>9.0f}{mib(j['peak_rss_bytes']):>9.0f}"
              f"{mib(m['mapped_weights_bytes']):>8.0f}{mib(m['repacked_weights_bytes']):>9.0f}  {j['load_average']['start'][0]:.1f} -> {j['load_average']['end'][0]:.1f}")
p = os.path.join(out, "repack-ab.json")
if os.path.exists(p):
    a = load(p)["repack_ab"]
    print(f"\nrepack A/B, {a['rounds']} rounds of {a['prompt_tokens']} prompt + {a['gen_tokens']} tokens: median ratio repacked/--no-repack "
          f"prefill {a['median_prefill_ratio_repack_to_no_repack']:.2f}, decode {a['median_decode_ratio_repack_to_no_repack']:.2f}")
    for k in ("repack", "no_repack"):
        print(f"  {k:<9} prefill tok/s {[round(x, 1) for x in a[k]['prefill_tok_s']]}  decode tok/s {[round(x, 2) for x in a[k]['decode_tok_s']]}")
for r in ("repack", "no-repack"):
    p = os.path.join(out, f"image-{r}.json")
    if not os.path.exists(p):
        continue
    j = load(p); m = j["memory"]; f = j["first_token"]
    print(f"\nimage, {r}: load {j['load_ms']:.0f} ms ({j['load_cpu_ms']:.0f} ms CPU), load average {j['load_average']}")
    for k in ("first", "second", "from_disk"):
        q = f.get(k)
        if q:
            print(f"  {k:<9} {q['source']:<6} ttft {q['ttft_ms']:>9.0f} ms: read {q['read_ms']:.1f} key {q['key_ms']:.1f} lookup {q['lookup_ms']:.1f} "
                  f"decode {q['decode_ms']:.1f} tile {q['tile_ms']:.1f} encode {q['encode_ms']:.0f} prefill {q['prefill_ms']:.0f} other {q['other_ms']:.0f}"
                  f" ({q['tiles_encoded']}/{q['tiles']} tiles encoded)")
    print(f"  memory after the first question: RSS {mib(m['rss_bytes']):.0f} MiB = mapped {mib(m['mapped_weights_bytes']):.0f} + repacked "
          f"{mib(m['repacked_weights_bytes']):.0f} + KV {mib(m['kv_cache_bytes']):.0f} + LLM compute {mib(m['llm_compute_bytes']):.0f} + vision compute "
          f"{mib(m['vision_compute_bytes']):.0f} + image rows {mib(m['image_rows_bytes']):.0f} + other {mib(m['unattributed_bytes']):.0f}")
    print(f"  peak during the question {mib(m['question_peak_rss_bytes']):.0f} MiB = {m['question_peak_to_budget']:.3f} x budget "
          f"(files {mib(m['files_bytes']):.0f} + KV + compute = {mib(m['budget_bytes']):.0f} MiB)")
EOF
