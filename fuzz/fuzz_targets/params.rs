//! Fuzz target `params`: the checks live in `comet::fuzzing::params`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| comet::fuzzing::params(data));
