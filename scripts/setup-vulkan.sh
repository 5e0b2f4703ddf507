#!/usr/bin/env bash
# Prepares a Vulkan build of sail on Debian 12 without replacing the system's packages.
#
# ggml-vulkan needs Vulkan-Hpp with VK_EXT_layer_settings (Vulkan headers ≥ ~1.3.26x) and the
# SPIRV-Headers CMake package; Debian 12 ships 1.3.239. We fetch Debian 13's header-only
# packages (libvulkan-dev, spirv-headers) with apt-get download into ~/.cache/sail/vulkan and
# unpack them there (dpkg -x, not installed); the build sees them through CXXFLAGS -isystem and
# CMAKE_PREFIX_PATH. Run time uses Debian 12's loader and Mesa (lavapipe = CPU Vulkan for tests).
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
echo "export CXXFLAGS=\"-isystem $PREFIX/usr/include \${CXXFLAGS:-}\""
echo "export CMAKE_PREFIX_PATH=\"$PREFIX/usr\""
