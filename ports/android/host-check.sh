#!/usr/bin/env bash
# Checks the Android binding (Sail.kt + sail_jni.c) on this x86-64 Linux machine, without an
# Android SDK or NDK: the JNI bridge is compiled with the host gcc against the JDK's jni.h and
# linked with the host libsail, Sail.kt is compiled with Debian's kotlinc (1.3, so Sail.kt keeps
# to Kotlin 1.3 syntax), and hostcheck/HostCheck.kt drives a tiny random SAIL-VL2 model through
# it, comparing the greedy token ids with `sail run --json` on the same model and picture.
#
# What this does not check: ART/CheckJNI, the NDK build, Gradle, packaging, ARM code paths.
# SAIL_SKIP_BUILD=1 uses the binaries already in the cargo target folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
need=()
command -v kotlinc >/dev/null || need+=(kotlin)
command -v javac >/dev/null || need+=(default-jdk-headless)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
JDK="${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")}"
[ -f "$JDK/include/jni.h" ] || { echo "host-check: no jni.h under $JDK/include" >&2; exit 1; }

if [ "${SAIL_SKIP_BUILD:-0}" != "1" ]; then
  cargo build --release -p sail-capi -p sail-gen -p sail-convert -p sail-runtime
fi
B="$CARGO_TARGET_DIR/release"
W="$(mktemp -d "${TMPDIR:-/tmp}/sail-android-host.XXXXXX")"
trap 'rm -rf "$W"' EXIT

cp "$B/libsail_capi.so" "$W/libsail.so" # its SONAME
gcc -std=c11 -O2 -Wall -Wextra -Wpedantic -Werror -shared -fPIC \
  -I "$JDK/include" -I "$JDK/include/linux" -I ports/capi/include \
  ports/android/sail/src/main/cpp/sail_jni.c -o "$W/libsail_jni.so" -L "$W" -lsail -Wl,-rpath,'$ORIGIN'
echo "host-check: sail_jni.c compiled (gcc -Wall -Wextra -Wpedantic -Werror)"

kotlinc -jvm-target 1.8 -include-runtime -d "$W/check.jar" \
  ports/android/sail/src/main/kotlin/dev/sail/Sail.kt ports/android/hostcheck/HostCheck.kt 2>&1 \
  | grep -v -e 'Xverify:none' -e '^$' || true
[ -f "$W/check.jar" ] || { echo "host-check: kotlinc failed" >&2; exit 1; }
echo "host-check: Sail.kt compiled ($(kotlinc -version 2>&1 | grep -o 'kotlinc-jvm [^ ]*'))"

"$B/sail-gen" ckpt --preset tiny --seed 0 --out "$W/ckpt" >/dev/null
"$B/sail-convert" "$W/ckpt" -o "$W/tiny.gguf" --f32 --quiet
IMG=assets/sample.png
PROMPT="Describe this image."
IDS=$("$B/sail" run -m "$W/tiny.gguf" --image "$IMG" -p "$PROMPT" --temp 0 --ignore-eos -n 8 -t 2 --json \
  | python3 -c 'import json,sys; print(",".join(str(t) for t in json.load(sys.stdin)["tokens"]))')
echo "host-check: sail run ids $IDS"
java -Djava.library.path="$W" -cp "$W/check.jar" HostCheckKt "$W/tiny.gguf" "$IMG" "$PROMPT" "$IDS"
