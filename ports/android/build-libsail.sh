#!/usr/bin/env bash
# Builds libsail (ports/capi) for Android arm64-v8a with cargo-ndk and puts the archive, the
# shared library and sail.h where the Gradle module's CMakeLists.txt looks for them
# (ports/android/sail/prebuilt/). NOT RUN in sail's own environment: no Android NDK can be
# installed there (see README.md); this is the recipe, written against llama-cpp-sys-2's
# build.rs and cargo-ndk's documented behaviour.
#
# Why the environment below:
# - cargo-ndk points cc/cargo at the NDK's clang but does not export the NDK path or the API
#   level under the names llama-cpp-sys-2's build.rs reads (ANDROID_NDK / ANDROID_NDK_ROOT /
#   NDK_ROOT, ANDROID_API_LEVEL / ANDROID_PLATFORM); without them build.rs panics with
#   "Android NDK not found" or configures llama.cpp for API 28 while Rust links for another.
# - One cargo target folder per ggml arch: build.rs configures llama.cpp once per folder.
#
# Environment: ANDROID_NDK_HOME (required), ANDROID_API_LEVEL (default 28, = the app's minSdk),
# GGML_CPU_ARM_ARCH (optional, e.g. armv8.2-a+dotprod: faster quantized kernels, but the
# library then crashes with SIGILL on phones without the extension; default armv8-a).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${ANDROID_NDK_HOME:?set ANDROID_NDK_HOME to an Android NDK (r23 or later; r28+ aligns to 16 KB pages by default)}"
API="${ANDROID_API_LEVEL:-28}"
export ANDROID_NDK_ROOT="$ANDROID_NDK_HOME" ANDROID_API_LEVEL="$API"
ARCH_TAG="${GGML_CPU_ARM_ARCH:+-${GGML_CPU_ARM_ARCH//[^A-Za-z0-9.-]/_}}"
export CARGO_TARGET_DIR="${SAIL_ANDROID_TARGET_DIR:-$HOME/.cache/sail/target-android$ARCH_TAG}"

rustup target list --installed | grep -qx aarch64-linux-android || rustup target add aarch64-linux-android
command -v cargo-ndk >/dev/null || cargo install --locked cargo-ndk

cargo ndk -t arm64-v8a -P "$API" build --release -p sail-capi
# The system libraries a C/C++ link of libsail.a needs on this target (log, android, c++_shared, dl, m, ...):
cargo ndk -t arm64-v8a -P "$API" rustc --release -p sail-capi --lib --crate-type staticlib -- --print native-static-libs 2>&1 \
  | grep -i 'native-static-libs' || true

OUT=ports/android/sail/prebuilt
BIN="$CARGO_TARGET_DIR/aarch64-linux-android/release"
mkdir -p "$OUT/arm64-v8a" "$OUT/include"
cp "$BIN/libsail_capi.a" "$OUT/arm64-v8a/libsail.a"
cp "$BIN/libsail_capi.so" "$OUT/arm64-v8a/libsail.so"
cp ports/capi/include/sail.h "$OUT/include/"
# line tables from the workspace's release profile: not needed in an app
"$ANDROID_NDK_HOME"/toolchains/llvm/prebuilt/*/bin/llvm-strip --strip-debug "$OUT/arm64-v8a/libsail.a" "$OUT/arm64-v8a/libsail.so"
ls -l "$OUT/arm64-v8a"
