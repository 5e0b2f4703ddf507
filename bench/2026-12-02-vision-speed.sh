#!/usr/bin/env bash
# The runs behind bench/2026-12-02-vision-speed.md, in the order they ran (one sequence, so
# "before" and "after" share the machine's state). Rerun on a quiet machine with:
#
#   M=/path/to/models [V=/path/to/more-vision-files] OLD=/path/to/sail-before NEW=/path/to/sail \
#     OUT=/tmp/vision-speed bench/2026-12-02-vision-speed.sh [speed|types|rounds|batched|threads|errors ...]
#   (default: all of them)
#
# M holds the 2B random checkpoint converted with `sail-convert --q4_k`: sail-2b-q4k.gguf with
# sail-2b-q4k.mmproj.gguf (vision f16), and sail-2b-q4k-v8.gguf with its mmproj (--vision-type
# q8_0); V (default M) holds sail-2b-q4k-v{q6_k,q5_k,q4_k,f32}.mmproj.gguf (--vision-type q6_k …;
# their language files are not needed: every run loads sail-2b-q4k.gguf with --mmproj). Make them:
#   sail-gen ckpt --preset 2b --out 2b-ckpt
#   sail-convert 2b-ckpt -o sail-2b-q4k.gguf --q4_k [--vision-type T]
# OLD is `sail` built from the commit before this work (72a107d), NEW the one after. Every run
# logs the load average first (uptime) and writes its JSON to $OUT.
set -euo pipefail
: "${M:?models folder}" "${NEW:?new sail binary}" "${OUT:?output folder}"
T=${THREADS:-2}
V=${V:-$M}
LLM=$M/sail-2b-q4k.gguf
mm() { # vision type → its vision file
  case $1 in f16) echo "$M/sail-2b-q4k.mmproj.gguf" ;; q8_0) echo "$M/sail-2b-q4k-v8.mmproj.gguf" ;; *) echo "$V/sail-2b-q4k-v$1.mmproj.gguf" ;; esac
}
mkdir -p "$OUT"
log() { printf '%s | %s | %s\n' "$(date +%T)" "$(uptime | sed 's/.*load average/load average/')" "$*" | tee -a "$OUT/runs.log"; }
run() { # name, binary, args...
  local name=$1 bin=$2
  shift 2
  log "$name: $(basename "$bin") $*"
  "$bin" "$@" --json >"$OUT/$name.json" 2>"$OUT/$name.err" || { log "$name FAILED (see $name.err)"; return 0; }
}
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(speed types rounds batched threads errors)
for step in "${steps[@]}"; do
  case $step in
  speed) # before (old binary; new binary with the old graph) and after, f16 and q8_0 vision
    for v in f16 q8_0; do
      run "$v-old" "${OLD:?old sail binary}" bench -m "$LLM" --mmproj "$(mm $v)" -t "$T" --tiles 3 --prompt-tokens 16 --gen-tokens 4
      run "$v-products" "$NEW" bench -m "$LLM" --mmproj "$(mm $v)" -t "$T" --tiles 3 --no-text --profile --attention products
      run "$v-fused" "$NEW" bench -m "$LLM" --mmproj "$(mm $v)" -t "$T" --tiles 3 --no-text --profile
    done ;;
  types) # K-quant vision files
    for v in q6_k q5_k q4_k; do
      run "$v-fused" "$NEW" bench -m "$LLM" --mmproj "$(mm $v)" -t "$T" --tiles 3 --no-text
    done ;;
  rounds) # every vision type, interleaved, twice (types compared under the same drift of load)
    for r in 1 2; do
      for v in f16 q8_0 q6_k q5_k q4_k; do
        run "$v-round$r" "$NEW" bench -m "$LLM" --mmproj "$(mm $v)" -t "$T" --tiles 3 --yardstick-reps 3 --no-text
      done
    done ;;
  batched) # the timed tiles once more, batched to the default 1 GiB activation budget
    for v in f16 q8_0; do
      run "$v-batched" "$NEW" bench -m "$LLM" --mmproj "$(mm $v)" -t "$T" --tiles 3 --yardstick-reps 3 --no-text --batched
    done ;;
  threads) # 1 → 2 threads, in the order 1 2 2 1 for each type (a drift of load shows as a gap)
    for v in f16 q8_0; do
      for t in 1 2 2 1; do
        i=$((${i:-0} + 1))
        run "$v-t$t-$i" "$NEW" bench -m "$LLM" --mmproj "$(mm $v)" -t "$t" --tiles 3 --yardstick-reps 3 --no-text
      done
    done ;;
  errors) # projector rows of one 448² tile for each vision type, against the f32 file's
    img=$OUT/tile.png
    [ -f "$img" ] || "${GEN:-$(dirname "$NEW")/sail-gen}" image --width 448 --height 448 --seed 1 --out "$img" >/dev/null
    for t in f32 f16 q8_0 q6_k q5_k q4_k; do
      log "errors: $t"
      "$NEW" run -m "$LLM" --mmproj "$(mm $t)" -t "$T" --image "$img" -p "." -n 1 --embeddings-out "$OUT/emb-$t.npy" >/dev/null 2>"$OUT/emb-$t.err"
    done
    python3 - "$OUT" <<'EOF' | tee "$OUT/errors.txt"
import sys, numpy as np
out = sys.argv[1]
ref = np.load(f"{out}/emb-f32.npy").astype(np.float64)
for t in ["f16", "q8_0", "q6_k", "q5_k", "q4_k"]:
    e = np.load(f"{out}/emb-{t}.npy").astype(np.float64)
    d = e - ref
    print(f"{t}: max rel {np.abs(d).max() / np.abs(ref).max():.3e}, NMSE {(d * d).sum() / (ref * ref).sum():.3e}")
EOF
    ;;
  *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
