#!/usr/bin/env bash
# Prepares a Debian 12 (x86-64) machine to cross-build sail for ARM64 Linux and to run the
# result under user-mode QEMU, so that the NEON code paths of ggml are tested without ARM
# hardware. Debian's cross gcc 12 brings an aarch64 sysroot with libstdc++ and libgomp, and
# clang (already needed for bindgen) finds its headers by itself. Idempotent: installs only
# what is missing.
#
# The runner goes through `qemu-aarch64-static -L <sysroot>` explicitly rather than relying on
# binfmt_misc: containers (this sandbox, most CI runners) usually have no binfmt handler
# registered, and then a bare aarch64 executable cannot be exec'd at all.
#
# Prints the environment to use; `eval "$(scripts/setup-aarch64.sh)"` applies it.
set -euo pipefail
TRIPLE=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu
if ! rustup target list --installed 2>/dev/null | grep -qx "$TRIPLE"; then
  echo "setup-aarch64: rustup target add $TRIPLE" >&2
  rustup target add "$TRIPLE" >&2
fi
need=()
for p in gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup-aarch64: installing ${need[*]}" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
echo "export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc"
echo "export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++"
echo "export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar"
echo "export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc"
echo "export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=\"qemu-aarch64-static -L $SYSROOT\""
