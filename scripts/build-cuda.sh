#!/usr/bin/env bash
# Builds `sail`, `sail-convert` and `sail-gen` with ggml's CUDA backend for ONE GPU architecture:
#   scripts/build-cuda.sh [ARCH]      ARCH = CMAKE_CUDA_ARCHITECTURES value:
#                                     87 (Jetson Orin), 89 (Ada, RTX 40xx), 90 (Hopper; default)
# Each architecture keeps its own target folder (~/.cache/sail/target-cuda-smARCH): a changed
# CMake setting never reaches an existing llama.cpp build tree (its build script configures
# once), so switching architectures in one folder would silently keep the old kernels.
#
# Not part of CI: the ~150 CUDA objects take the better part of an hour on 2 cores.
#
# The toolkit comes from scripts/setup-cuda.sh (CUDA 13.0 wheels; see there why the llama.cpp
# libraries are shared here), or from an installed toolkit named by SAIL_CUDA_HOME (e.g.
# JetPack's /usr/local/cuda on a Jetson, whose driver may be older than the wheels' CUDA 13).
# On aarch64 (a build on the Jetson itself) RUSTFLAGS also get `-C target-cpu=native`, the one
# setting that makes llama-cpp-sys-2 compile ggml's CPU code for the board's CPU (dotprod, fp16)
# instead of plain armv8-a. What this build sets, and why:
# - LLAMA_BUILD_SHARED_LIBS=1: libllama/libggml*.so (libggml-cuda.so holds the kernels) next to
#   the binaries, linked to libcudart.so.13 / libcublas.so.13 / libcublasLt.so.13.
# - GGML_CUDA_NO_VMM=ON: ggml-cuda then needs no libcuda.so (the driver) at link time, and the
#   binaries start on a machine without an NVIDIA driver (ggml-cuda finds no device and the CPU
#   backend runs, as in `scripts/check-cuda.sh --dry-run`). ggml uses its cudaMalloc pool
#   instead of the virtual-memory one.
# - rpath $ORIGIN (DT_RPATH, which also covers the libraries' own dependencies) on the binaries
#   and the libraries, so a folder holding both runs from anywhere.
# - CMAKE_CUDA_ARCHITECTURES=ARCH-real: machine code for that GPU only, no PTX (smaller; the
#   CUDA objects are compiled once instead of for ggml's default list of 5+ architectures).
#
# Writes the wall time and the sizes to $CARGO_TARGET_DIR/build-cuda.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH="${1:-90}"
case "$ARCH" in
  *[!0-9a-z-]* | "") echo "build-cuda: ARCH must look like 87, 89 or 90 (got '$ARCH')" >&2; exit 2 ;;
esac
if [ -n "${SAIL_CUDA_HOME:-}" ]; then
  [ -x "$SAIL_CUDA_HOME/bin/nvcc" ] || { echo "build-cuda: no $SAIL_CUDA_HOME/bin/nvcc (SAIL_CUDA_HOME)" >&2; exit 1; }
  export CUDA_PATH="$SAIL_CUDA_HOME" CUDAToolkit_ROOT="$SAIL_CUDA_HOME" CMAKE_CUDA_COMPILER="$SAIL_CUDA_HOME/bin/nvcc"
  export PATH="$SAIL_CUDA_HOME/bin:$PATH" SAIL_CUDA_LIB="$SAIL_CUDA_HOME/lib64"
else
  eval "$(scripts/setup-cuda.sh)"
fi
export CARGO_TARGET_DIR="${SAIL_CUDA_TARGET_DIR:-$HOME/.cache/sail/target-cuda-sm$ARCH}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CMAKE_CUDA_ARCHITECTURES="${ARCH}-real"
export GGML_CUDA_NO_VMM=ON
export LLAMA_BUILD_SHARED_LIBS=1
export CMAKE_INSTALL_RPATH='$ORIGIN'
export RUSTFLAGS="-C link-arg=-Wl,--disable-new-dtags,-rpath,\$ORIGIN -C link-arg=-Wl,-rpath-link,$SAIL_CUDA_LIB"
if [ "$(uname -m)" = aarch64 ]; then RUSTFLAGS="$RUSTFLAGS -C target-cpu=native"; fi
start=$(date +%s)
echo "build-cuda: sm_$ARCH into $CARGO_TARGET_DIR (started $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
nice -n 19 cargo build --release -p sail-cli -p sail-convert -p sail-gen --features sail-cli/cuda
end=$(date +%s)
R="$CARGO_TARGET_DIR/release"
# llama-cpp-sys-2 places only the unversioned symlinks (libggml.so -> libggml.so.0) beside the
# binaries; the binaries load the .so.0 names, so copy the real files from its install folder.
OUTLIB=$(ls -td "$CARGO_TARGET_DIR"/release/build/llama-cpp-sys-2-*/out/lib 2>/dev/null | while read -r d; do
  [ -e "$d/libggml-cuda.so" ] && { echo "$d"; break; }; done)
[ -n "$OUTLIB" ] || { echo "build-cuda: no llama-cpp-sys-2 install folder with libggml-cuda.so under $CARGO_TARGET_DIR" >&2; exit 1; }
cp -P "$OUTLIB"/lib*.so.* "$R"/
missing=$(ldd "$R/sail" | awk '/not found/ && $1 ~ /^lib(ggml|llama)/ { print $1 }')
[ -z "$missing" ] || { echo "build-cuda: $R/sail still cannot find: $missing" >&2; exit 1; }
{
  echo "arch: sm_$ARCH"
  echo "toolkit: $("$CUDA_PATH/bin/nvcc" --version | tail -2 | head -1)"
  echo "wall_s: $((end - start)) (nice -n 19, $(nproc) cores shared with other jobs; load at end $(cut -d' ' -f1-3 /proc/loadavg))"
  echo "sizes (bytes, unstripped):"
  for f in sail sail-convert sail-gen $(cd "$R" && ls lib*.so); do
    printf '  %-22s %s\n' "$f" "$(stat -L -c %s "$R/$f")"
  done
} | tee -a "$CARGO_TARGET_DIR/build-cuda.txt" >&2
