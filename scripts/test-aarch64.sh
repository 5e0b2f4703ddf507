#!/usr/bin/env bash
# ARM64 Linux, checked on an x86-64 machine: cross-builds sail and sail-convert for
# aarch64-unknown-linux-gnu (and libsail from ports/capi, best effort), prints ggml's CPU
# feature line, then runs the end-to-end CLI tests (runtime/tests/cli_run.rs) under user-mode
# QEMU. Those tests compare against the same golden reference outputs as the x86 run, with the
# same tolerances, so passing them means the NEON build agrees with x86 within those bounds.
#
# QEMU runs the code at well under 1 GFLOP/s: this is a correctness check, not a benchmark.
#
# Default: the portable build (ggml pinned to armv8-a by llama-cpp-sys-2: NEON, no dotprod).
# SAIL_AARCH64_ARCH=armv8.2-a+dotprod+i8mm (or another -march value) builds ggml's CPU kernels for
# that architecture instead (see scripts/cmake/ggml-cpu-arm-arch.cmake) in a target folder of its
# own, and runs everything under `qemu -cpu max` (QEMU_CPU overrides): such binaries stop with
# SIGILL on CPUs that lack one of the extensions. (ggml's feature line reports DOTPROD and
# MATMUL_INT8 from the compile flags alone, not from the CPU: only running the kernels tells.)
#
# Extra arguments go to `cargo test` (e.g. a test-name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
eval "$(scripts/setup-aarch64.sh)"
T=aarch64-unknown-linux-gnu
ARCH="${SAIL_AARCH64_ARCH:-}"
if [ -z "$ARCH" ]; then
  export CARGO_TARGET_DIR="${SAIL_AARCH64_TARGET_DIR:-$HOME/.cache/sail/target-aarch64}"
else
  # build.rs configures llama.cpp once per target folder (notes §1): one folder per arch value.
  export CARGO_TARGET_DIR="${SAIL_AARCH64_TARGET_DIR:-$HOME/.cache/sail/target-aarch64-${ARCH//[^A-Za-z0-9.-]/_}}"
  export SAIL_AARCH64_ARCH="$ARCH"
  export CMAKE_PROJECT_INCLUDE="$PWD/scripts/cmake/ggml-cpu-arm-arch.cmake"
  export QEMU_CPU="${QEMU_CPU:-max}"
fi
RUNNER="$CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER"
# The test binary runs under QEMU; it starts `sail` through the same runner (no binfmt_misc here).
export SAIL_BIN_RUNNER="$RUNNER"
PKGS=(-p sail-runtime -p sail-convert)
BIN="$CARGO_TARGET_DIR/$T/release"
echo "== aarch64: target folder $CARGO_TARGET_DIR, ggml arch ${ARCH:-armv8-a (default)}, qemu cpu ${QEMU_CPU:-default}"

t0=$SECONDS
cargo test --release --target "$T" "${PKGS[@]}" --no-run
echo "== aarch64: sail + sail-convert + tests built in $((SECONDS - t0)) s"
if [ -f ports/capi/Cargo.toml ]; then
  t0=$SECONDS
  if cargo build --release --target "$T" -p sail-capi; then
    echo "== aarch64: libsail (sail-capi) built in $((SECONDS - t0)) s: $(ls "$BIN"/libsail_capi.a "$BIN"/libsail_capi.so 2>/dev/null | tr '\n' ' ')"
  else
    echo "== aarch64: libsail (ports/capi) did not build; continuing (optional)" >&2
  fi
fi

echo "== aarch64: ggml CPU features under qemu (cpu ${QEMU_CPU:-default})"
$RUNNER "$BIN/sail" info --devices | grep -i 'cpu features'

t0=$SECONDS
LOG="${TMPDIR:-/tmp}/sail-aarch64-cli_run.log"
set +e
cargo test --release --target "$T" "${PKGS[@]}" --test cli_run "$@" -- --nocapture 2>&1 \
  | tee "$LOG" | grep -E 'NMSE|^test |test result|panicked|FAILED|error'
rc=${PIPESTATUS[0]}
set -e
echo "== aarch64: cli_run under qemu: exit $rc in $((SECONDS - t0)) s (full log: $LOG)"
exit "$rc"
