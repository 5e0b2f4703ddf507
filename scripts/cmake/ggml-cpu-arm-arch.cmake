# Opt-in ARM architecture for ggml's CPU kernels in an aarch64 Linux build (scripts/test-aarch64.sh).
#
# llama-cpp-sys-2's build.rs defines GGML_CPU_ARM_ARCH=armv8-a for every non-native aarch64 Linux
# build, after it forwards the GGML_* environment, so that variable cannot be overridden from
# outside; and ggml passes -march=${GGML_CPU_ARM_ARCH} as a target option, after CMAKE_C_FLAGS,
# so a -march in CFLAGS loses too. What build.rs does forward is every CMAKE_* variable, so
# CMAKE_PROJECT_INCLUDE=<this file> runs it after llama.cpp's project() call, before ggml reads
# the option: it replaces the cached armv8-a with $SAIL_AARCH64_ARCH. No patched crate, one ggml.
#
# The result only runs on CPUs that have every extension named: it is not a portable build.
if(NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  message(FATAL_ERROR "ggml-cpu-arm-arch.cmake is for aarch64 builds (CMAKE_SYSTEM_PROCESSOR=${CMAKE_SYSTEM_PROCESSOR})")
endif()
if("$ENV{SAIL_AARCH64_ARCH}" STREQUAL "")
  message(FATAL_ERROR "ggml-cpu-arm-arch.cmake needs SAIL_AARCH64_ARCH, e.g. armv8.2-a+dotprod+i8mm")
endif()
set(GGML_CPU_ARM_ARCH "$ENV{SAIL_AARCH64_ARCH}" CACHE STRING "ggml: CPU architecture for ARM (sail opt-in)" FORCE)
message(STATUS "sail: GGML_CPU_ARM_ARCH=${GGML_CPU_ARM_ARCH}")
