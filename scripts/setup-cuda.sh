#!/usr/bin/env bash
# Prepares a CUDA 13 toolkit for building sail's `cuda` feature, without installing anything
# into the system: NVIDIA's CUDA wheels from PyPI are unpacked with `pip install --target` into
# one folder (default ~/.cache/sail/cuda-13.0). Their files land under
# site/nvidia/cu13/{bin,include,lib,nvvm}, which is laid out like a toolkit root once `lib64`
# (what nvcc.profile names) points at `lib` and the unversioned .so links CMake's
# FindCUDAToolkit looks for exist.
#
# Why 13.0: the lent GPU machine's driver is CUDA 13.0 (580.x) and its image carries a 13.0
# runtime and cuBLAS; a newer minor toolkit would also work (minor-version compatibility) but
# matching it removes a variable. Why a shared (dynamic) llama.cpp build: the wheels ship
# libcudart_static.a and libculibos.a but no cublas_static/cublasLt_static archives, which
# llama-cpp-sys-2 names for a static Linux link; and a static cuBLAS would put hundreds of MB
# into every binary. So scripts/build-cuda.sh builds libllama/libggml* as shared libraries
# next to the binaries, and libcudart/libcublas(Lt) .so.13 are loaded from the machine that
# runs them (the CUDA toolkit or driver install there, or these wheels).
#
# Prints the environment to use; `eval "$(scripts/setup-cuda.sh)"` applies it.
set -euo pipefail
PREFIX="${SAIL_CUDA_PREFIX:-$HOME/.cache/sail/cuda-13.0}"
WHEELS=(
  nvidia-cuda-nvcc==13.0.88    # nvcc, ptxas, nvlink, fatbinary, cudafe++
  nvidia-nvvm==13.0.88         # cicc and libdevice (nvcc's device front end)
  nvidia-cuda-crt==13.0.88     # crt/ headers nvcc includes
  nvidia-cuda-runtime==13.0.96 # cudart headers, libcudart.so.13, libcudart_static.a (CMake's compiler check)
  nvidia-cuda-cccl==13.0.85    # CUB/Thrust/libcu++ headers
  nvidia-cuda-culibos==13.0.85
  nvidia-cublas==13.1.0.3      # cuBLAS headers and libcublas(Lt).so.13 to link against
)
ROOT="$PREFIX/site/nvidia/cu13"
STAMP="$PREFIX/.installed"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "${WHEELS[*]}" ]; then
  command -v python3 >/dev/null || { echo "setup-cuda: python3 (with pip) is needed to fetch the CUDA wheels" >&2; exit 1; }
  echo "setup-cuda: installing CUDA 13.0 wheels into $PREFIX/site (~600 MB download, ~850 MB unpacked)" >&2
  rm -rf "$PREFIX/site"
  mkdir -p "$PREFIX"
  python3 -m pip install -q --disable-pip-version-check --no-deps --no-compile --target "$PREFIX/site" "${WHEELS[@]}" >&2
  echo "${WHEELS[*]}" > "$STAMP"
fi
[ -x "$ROOT/bin/nvcc" ] || { echo "setup-cuda: $ROOT/bin/nvcc missing after install" >&2; exit 1; }
# nvcc.profile links with -L$(TOP)/lib64 and lib64/stubs; CMake's find_library wants libX.so.
ln -sfn lib "$ROOT/lib64"
mkdir -p "$ROOT/lib/stubs"
for l in cudart cublas cublasLt; do ln -sf "lib$l.so.13" "$ROOT/lib/lib$l.so"; done
if ! command -v cmake >/dev/null; then
  echo "setup-cuda: cmake is needed (scripts/setup.sh installs it)" >&2
  exit 1
fi
echo "export CUDA_PATH=\"$ROOT\""
echo "export CUDAToolkit_ROOT=\"$ROOT\""
echo "export CMAKE_CUDA_COMPILER=\"$ROOT/bin/nvcc\""
echo "export PATH=\"$ROOT/bin:\$PATH\""
echo "export SAIL_CUDA_LIB=\"$ROOT/lib\""
