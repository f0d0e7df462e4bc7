//! Fuzz target `config`: the checks live in `comet::fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| comet::fuzzing::config(data));
