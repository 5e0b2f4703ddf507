#!/usr/bin/env bash
# Prepares a Vulkan build of sail on Debian 12 without replacing the system's packages.
#
# ggml-vulkan needs Vulkan-Hpp with VK_EXT_layer_settings (Vulkan headers ≥ ~1.3.26x) and the
# SPIRV-Headers CMake package; Debian 12 ships 1.3.239. We fetch Debian 13's header-only
# packages (libvulkan-dev, spirv-headers) with apt-get download into ~/.cache/sail/vulkan and
# unpack them there (dpkg -x, not installed); the build sees them through CXXFLAGS -isystem and
# CMAKE_PREFIX_PATH. Run time uses Debian 12's loader and Mesa (lavapipe = CPU Vulkan for tests).
# Debian 12's lavapipe (Mesa 22.3) crashes inside its worker threads on some of ggml-vulkan's
# matmul pipelines (seen at a 161-token prefill); bookworm-backports' Mesa 25.0 runs them. Its
# lavapipe driver is unpacked into the same prefix and selected with VK_ICD_FILENAMES, again
# without replacing the system's driver.
# Debian 12's glslc lacks a few extensions (int8 dot product, coopmat, bf16): those shader
# variants are compiled out, which only matters for speed on real GPUs.
#
# Prints the environment to use; `eval "$(scripts/setup-vulkan.sh)"` applies it.
set -euo pipefail
PREFIX="${SAIL_VULKAN_PREFIX:-$HOME/.cache/sail/vulkan}"
need=()
for p in glslc libvulkan1 mesa-vulkan-drivers vulkan-tools libvulkan-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup-vulkan: installing ${need[*]}" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
if [ ! -f "$PREFIX/usr/include/vulkan/vulkan.hpp" ] || [ ! -d "$PREFIX/usr/share/cmake/SPIRV-Headers" ]; then
  echo "setup-vulkan: fetching Debian 13 Vulkan and SPIR-V headers into $PREFIX" >&2
  A="$PREFIX/apt"
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$PREFIX/debs"
  echo "deb http://deb.debian.org/debian trixie main" > "$A/sources.list"
  OPT=(-o Dir::Etc::SourceList="$A/sources.list" -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$A/lists" -o Dir::Cache="$A/cache")
  apt-get "${OPT[@]}" update -qq >&2
  (cd "$PREFIX/debs" && apt-get "${OPT[@]}" download libvulkan-dev spirv-headers >&2)
  for d in "$PREFIX"/debs/*.deb; do dpkg -x "$d" "$PREFIX"; done
fi
LVP_JSON="$PREFIX/lvp_icd.json"
if [ ! -f "$LVP_JSON" ]; then
  echo "setup-vulkan: fetching bookworm-backports' Mesa lavapipe into $PREFIX/mesa" >&2
  B="$PREFIX/apt-bpo"
  mkdir -p "$B/lists/partial" "$B/cache/archives/partial" "$PREFIX/debs-bpo"
  echo "deb http://deb.debian.org/debian bookworm-backports main" > "$B/sources.list"
  BOPT=(-o Dir::Etc::SourceList="$B/sources.list" -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$B/lists" -o Dir::Cache="$B/cache")
  apt-get "${BOPT[@]}" update -qq >&2
  (cd "$PREFIX/debs-bpo" && apt-get "${BOPT[@]}" download mesa-vulkan-drivers >&2)
  dpkg -x "$PREFIX"/debs-bpo/mesa-vulkan-drivers_*.deb "$PREFIX/mesa"
  sed "s|\"libvulkan_lvp.so\"|\"$PREFIX/mesa/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so\"|" \
    "$PREFIX/mesa/usr/share/vulkan/icd.d/lvp_icd.json" > "$LVP_JSON"
fi
echo "export VK_ICD_FILENAMES=\"$LVP_JSON\""
echo "export CXXFLAGS=\"-isystem $PREFIX/usr/include \${CXXFLAGS:-}\""
echo "export CMAKE_PREFIX_PATH=\"$PREFIX/usr\""
