//! Fuzz target `admin_params`: the checks live in `comet::fuzzing::admin_params`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| comet::fuzzing::admin_params(data));
