//! libFuzzer entry for `sail_fuzz::targets::prompt` (see scripts/fuzz.sh).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sail_fuzz::targets::prompt(data));
