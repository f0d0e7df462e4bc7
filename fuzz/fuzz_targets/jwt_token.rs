//! Fuzz target `jwt_token`: the checks live in `comet::fuzzing::jwt_token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| comet::fuzzing::jwt_token(data));
