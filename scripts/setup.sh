#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build and test sail:
#   cmake, clang and libclang (llama-cpp-sys-2 builds llama.cpp with CMake and binds it with
#   bindgen), util-linux's unshare (disk-full test), and numpy + Pillow for the preprocessing
#   parity test against Pillow. Idempotent: installs only what is missing.
set -euo pipefail
need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v clang >/dev/null || need_apt+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 || need_apt+=(libclang-dev)
command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! python3 -c "import numpy, PIL" >/dev/null 2>&1; then
  echo "setup: installing numpy and Pillow for the preprocessing parity tests" >&2
  python3 -m pip install -q numpy pillow 2>/dev/null || python3 -m pip install -q --break-system-packages numpy pillow
fi
# the official openai client drives the `sail serve` tests (cli/tests/serve.rs)
if ! python3 -c "import openai" >/dev/null 2>&1; then
  echo "setup: installing the openai client for the sail serve tests" >&2
  export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
  python3 -m pip install -q openai 2>/dev/null || python3 -m pip install -q --break-system-packages openai
fi
