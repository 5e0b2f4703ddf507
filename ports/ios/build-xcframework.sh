#!/usr/bin/env bash
# Builds Sail.xcframework (static libsail + sail.h + module map) for the Swift package in this
# folder: iOS devices (arm64) and the simulator (arm64 + x86_64, merged with lipo).
# Needs macOS with Xcode (xcrun, lipo, xcodebuild) and CMake. NOT RUN in sail's environment:
# there is no Apple SDK on Linux (README.md says what this rests on).
#
# Why the environment below:
# - cmake-rs tells CMake CMAKE_SYSTEM_NAME=iOS for both the device and simulator triples, and
#   CMake then picks the device SDK; the simulator builds need CMAKE_OSX_SYSROOT=iphonesimulator
#   (llama-cpp-sys-2's build.rs forwards every CMAKE_* variable to CMake).
# - One deployment target for Rust (IPHONEOS_DEPLOYMENT_TARGET, read by rustc and cc) and for
#   llama.cpp (CMAKE_OSX_DEPLOYMENT_TARGET).
# - Metal: ggml's CMake turns GGML_METAL on for Apple targets, with the shader library embedded
#   (no .metallib to bundle); build.rs links Metal, MetalKit, Foundation, Accelerate and libc++,
#   which Package.swift repeats for the app's link. GGML_METAL=OFF in the environment drops it.
# - OpenMP: requested by ports/capi's features but absent from Apple's clang; ggml's CMake then
#   warns and uses its own thread pool.
set -euo pipefail
cd "$(dirname "$0")/../.."
IOS_MIN="${IOS_MIN:-15.0}"
OUT="${SAIL_XCFRAMEWORK_OUT:-ports/ios/Sail.xcframework}"
export CARGO_TARGET_DIR="${SAIL_IOS_TARGET_DIR:-$HOME/.cache/sail/target-ios}"
export IPHONEOS_DEPLOYMENT_TARGET="$IOS_MIN" CMAKE_OSX_DEPLOYMENT_TARGET="$IOS_MIN"

for t in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios; do
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done

build() { # triple sdk
  echo "== cargo build --release -p sail-capi --target $1 (SDK $2)"
  CMAKE_OSX_SYSROOT="$2" cargo build --release -p sail-capi --target "$1"
}
build aarch64-apple-ios iphoneos
build aarch64-apple-ios-sim iphonesimulator
build x86_64-apple-ios iphonesimulator

W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/headers" "$W/ios" "$W/sim"
cp ports/capi/include/sail.h ports/ios/include/module.modulemap "$W/headers/"
cp "$CARGO_TARGET_DIR/aarch64-apple-ios/release/libsail_capi.a" "$W/ios/libsail.a"
lipo -create \
  "$CARGO_TARGET_DIR/aarch64-apple-ios-sim/release/libsail_capi.a" \
  "$CARGO_TARGET_DIR/x86_64-apple-ios/release/libsail_capi.a" \
  -output "$W/sim/libsail.a"
# the workspace's release profile keeps line tables; an app does not need them
strip -S "$W/ios/libsail.a" "$W/sim/libsail.a"
rm -rf "$OUT"
xcodebuild -create-xcframework \
  -library "$W/ios/libsail.a" -headers "$W/headers" \
  -library "$W/sim/libsail.a" -headers "$W/headers" \
  -output "$OUT"
echo "wrote $OUT"
