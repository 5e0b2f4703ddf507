#!/usr/bin/env bash
# Maintainers only: regenerates sail's golden cases (tests/golden/*) with the team's independent
# reference harness (reference.py, gen_ckpt.py, gen_image.py; transformers-based), which is not
# part of this repository. Needs that harness and its torch venv (~4 GB). Neither the tests nor
# CI run this: they only read the committed outputs (case.json, last_logits.npy,
# vision_embeds.npy), whose inputs they regenerate bit-exactly with `sail-gen`.
#   usage: SAIL_REFERENCE=/path/to/reference [ONLY="case1 case2"] tests/golden/make_golden.sh [PYTHON]
set -euo pipefail
PY=${1:-/tmp/refenv/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)
REF=$(cd "${SAIL_REFERENCE:?set SAIL_REFERENCE to the reference harness folder}" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# name | gen_ckpt.py argv | image "W H SEED" or - | prompt
CASES=(
  "moe-text-sharded|--variant moe --num-experts 4 --top-k 2 --dtype bfloat16 --shards 2 --vocab-size 151936 --seed 7|-|Write a short poem about rivers."
  "moe-portrait-sharded|--variant moe --num-experts 4 --top-k 2 --dtype bfloat16 --shards 2 --vocab-size 151936 --seed 7|90 200 5|Is this a portrait?"
  "dense-text-sharded|--variant dense --dtype bfloat16 --shards 3 --seed 21|-|Name three colours of the rainbow."
  "dense-k256-text|--variant dense --llm-hidden 256 --llm-intermediate 512 --llm-heads 4 --llm-kv-heads 2 --llm-head-dim 64 --dtype float32 --seed 3|-|Explain quantization in one sentence."
  "moe-k256-text|--variant moe --llm-hidden 256 --moe-intermediate 256 --llm-heads 4 --llm-kv-heads 2 --llm-head-dim 64 --num-experts 4 --top-k 2 --dtype float32 --seed 5|-|Explain quantization in one sentence."
  # vision parity: select_layer -2 (raw output of the second-to-last block), grids 1x1 .. 3x3+thumbnail
  "vis-sl2-1x1|--variant dense --dtype float32 --select-layer -2 --vit-layers 3 --seed 31|50 60 1|Describe."
  "vis-sl2-3x1|--variant dense --dtype float32 --select-layer -2 --vit-layers 3 --seed 31|300 100 2|Describe."
  "vis-sl2-1x4|--variant dense --dtype float32 --select-layer -2 --vit-layers 3 --seed 31|97 403 3|Describe."
  "vis-sl2-3x3|--variant dense --dtype float32 --select-layer -2 --vit-layers 3 --seed 31|333 329 4|Describe."
  "vis-sl1-5x2|--variant dense --dtype float32 --select-layer -1 --vit-layers 2 --seed 32|517 211 6|Describe."
)
# cases whose logits the tests do not use (vision parity only): keep the repository small
VISION_ONLY="vis-sl2-1x1 vis-sl2-3x1 vis-sl2-1x4 vis-sl2-3x3 vis-sl1-5x2"
for c in "${CASES[@]}"; do
  IFS='|' read -r name argv image prompt <<<"$c"
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
  ck="$WORK/$name-ckpt"; out="$WORK/$name-out"
  # shellcheck disable=SC2086
  python3 "$REF/gen_ckpt.py" --out "$ck" $argv >"$WORK/$name-gen.json"
  img_args=()
  if [ "$image" != "-" ]; then
    read -r w h s <<<"$image"
    python3 "$REF/gen_image.py" --width "$w" --height "$h" --seed "$s" --out "$WORK/$name.png" >/dev/null
    img_args=(--image "$WORK/$name.png" --dynamic)
  fi
  "$PY" "$REF/reference.py" --ckpt "$ck" "${img_args[@]}" --prompt "$prompt" --max-new-tokens 16 --impl both --out "$out" >/dev/null
  mkdir -p "$HERE/$name"
  [[ " $VISION_ONLY " == *" $name "* ]] || cp "$out/last_logits.npy" "$HERE/$name/"
  [ -f "$out/vision_embeds.npy" ] && cp "$out/vision_embeds.npy" "$HERE/$name/"
  python3 - "$name" "$argv" "$image" "$prompt" "$WORK/$name-gen.json" "$out/result.json" "$HERE/$name/case.json" <<'PYEOF'
import json, sys
name, argv, image, prompt, genf, resf, dst = sys.argv[1:]
gen, res = json.load(open(genf)), json.load(open(resf))
img = None
if image != "-":
    w, h, s = map(int, image.split())
    img = {"width": w, "height": h, "seed": s}
ids = res["prompt"]["input_ids"]
case = {
    "name": name, "schema": 1,
    "generator": {"argv": argv.split(), "sha256": gen["sha256"], "weight_files": gen["weight_files"]},
    "image": img, "prompt": prompt, "system_prompt": "default", "template": "univl-chat",
    "preprocess": res["image"],
    "n_tokens": 16, "ignore_eos": True,
    "expected": {
        "input_ids": ids, "prompt_tokens": len(ids),
        "image_tokens": res["prompt"]["num_img_context_tokens"],
        "tiles": (res["image"] or {}).get("num_tiles", 0),
        "generated_ids": res["greedy"]["generated_ids"],
        "step_top1_margins": res["greedy"]["step_top1_margins"],
        "last_logits_argmax": res["last_logits"]["argmax"],
        "moe_min_router_margin": res.get("moe_min_router_margin"),
        "files": {**({"vision_embeds": "vision_embeds.npy"} if res["vision_embeds"] else {})},
    },
    "reference": {"harness": "reference/reference.py --impl both" + (" --dynamic" if img else ""),
                  "versions": res["versions"], "cross_check_hf_vs_own": res.get("cross_check")},
}
json.dump(case, open(dst, "w"), indent=1)
PYEOF
  echo "golden $name: $(python3 -c "import json;d=json.load(open('$HERE/$name/case.json'));print(d['expected']['prompt_tokens'],'prompt tokens',d['expected']['image_tokens'],'image tokens')")"
done
