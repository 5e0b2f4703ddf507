#!/usr/bin/env bash
# The CUDA device check in two halves:
#
#   scripts/check-cuda.sh --pack [ARCH]
#       On the build machine, after scripts/build-cuda.sh ARCH (default 90): packs the stripped
#       sail, sail-convert and sail-gen and the shared llama.cpp libraries they load ($ORIGIN
#       rpath) as .cuda-pack/bin.tar.xz (ignored by git; xz because libggml-cuda.so alone is
#       ~40 MB stripped and ~19 MB compressed), writes .cuda-pack/MANIFEST.txt, and checks that
#       the pack plus the tracked files stay under the GPU machine's 64 MiB transfer limit. The
#       device side unpacks it with python3's tarfile (no xz binary needed).
#       The golden cases and assets/SAIL-VL2-2B the check reads are tracked files: they travel
#       with the working tree, not in the pack. libcudart/libcublas(Lt).so.13 are not packed
#       (cuBLAS alone is ~600 MB): the GPU machine's CUDA 13 install provides them.
#
#   scripts/check-cuda.sh [--dry-run] [--skip-2b] [--out DIR] [...]
#       On the GPU machine, from the repository root with $OUT set (device tool: carry
#       [".cuda-pack"]): runs scripts/check-cuda.py (python3 standard library only; see its
#       --help), which writes $OUT/cuda-check.json and $OUT/cuda-check.log and prints a table.
#       --dry-run does every step with --backend cpu in place of cuda, on any machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PACK=.cuda-pack
LIMIT=$((64 * 1024 * 1024))

if [ "${1:-}" = "--pack" ]; then
  ARCH="${2:-90}"
  R="${SAIL_CUDA_TARGET_DIR:-$HOME/.cache/sail/target-cuda-sm$ARCH}/release"
  for b in sail sail-convert sail-gen; do
    [ -x "$R/$b" ] || { echo "check-cuda: $R/$b missing: run scripts/build-cuda.sh $ARCH first" >&2; exit 1; }
  done
  # the shared libraries the binaries load, as the build placed them beside the binaries
  mapfile -t LIBS < <(ldd "$R/sail" | awk -v r="$R/" 'index($3, r) == 1 { print $3 }' | sort -u)
  [ ${#LIBS[@]} -gt 0 ] || { echo "check-cuda: $R/sail loads no library from $R: not a shared (scripts/build-cuda.sh) build" >&2; exit 1; }
  ls "$R"/libggml-cuda.so >/dev/null 2>&1 || { echo "check-cuda: no libggml-cuda.so in $R: not a CUDA build" >&2; exit 1; }
  grep -qx '/.cuda-pack/' .gitignore 2>/dev/null || { echo "check-cuda: .gitignore must list /.cuda-pack/" >&2; exit 1; }
  rm -rf "$PACK"
  STAGE=$(mktemp -d)
  trap 'rm -rf "$STAGE"' EXIT
  mkdir -p "$STAGE/bin" "$PACK"
  # libggml-cuda comes in through ldd when the binaries link it; otherwise (loaded as a backend
  # module) it is added by its file name
  printf '%s\n' "${LIBS[@]}" | grep -q '/libggml-cuda\.so' || LIBS+=("$R/libggml-cuda.so")
  for f in "$R/sail" "$R/sail-convert" "$R/sail-gen" "${LIBS[@]}"; do
    cp -L "$f" "$STAGE/bin/"
  done
  strip --strip-unneeded "$STAGE"/bin/*
  XZ_OPT="-6 -T2" tar -C "$STAGE" -cJf "$PACK/bin.tar.xz" bin
  pack_bytes=$(stat -c %s "$PACK/bin.tar.xz")
  tree_bytes=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | awk '/\ttotal$/ { s += $1 } END { print s }')
  untracked=$(git ls-files -z --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | awk '/\ttotal$/ { s += $1 } END { print s + 0 }')
  total=$((pack_bytes + tree_bytes + untracked))
  {
    echo "commit: $(git rev-parse HEAD)$(git diff --quiet HEAD -- . ':!.cuda-pack' || echo ' (+ uncommitted changes)')"
    echo "packed: $(date -u +%FT%TZ) from $R"
    [ -f "$R/../build-cuda.txt" ] && sed 's/^/build: /' "$R/../build-cuda.txt" | tail -12
    echo "pack_bytes: $pack_bytes (bin.tar.xz; $(du -cb "$STAGE"/bin/* | tail -1 | cut -f1) stripped); tracked files: $tree_bytes; untracked: $untracked; travels: $total of $LIMIT"
    (cd "$STAGE/bin" && sha256sum -- * | awk '{ printf "sha256: %s %s\n", $2, $1 }')
    (cd "$STAGE/bin" && stat -c 'size: %n %s' -- *)
  } > "$PACK/MANIFEST.txt"
  cat "$PACK/MANIFEST.txt"
  if [ "$total" -gt "$LIMIT" ]; then
    echo "check-cuda: the working tree plus the pack is $total bytes, over the 64 MiB a device call may carry" >&2
    exit 1
  fi
  echo "check-cuda: packed $(du -sh "$PACK" | cut -f1) into $PACK; device call: carry [\"$PACK\"], command 'bash scripts/check-cuda.sh'" >&2
  exit 0
fi

[ -f "$PACK/bin.tar.xz" ] || { echo "check-cuda: $PACK/bin.tar.xz missing: run scripts/check-cuda.sh --pack on the build machine and carry $PACK" >&2; exit 1; }
command -v python3 >/dev/null || { echo "check-cuda: python3 is needed" >&2; exit 1; }
exec python3 scripts/check-cuda.py --pack "$PACK" "$@"
