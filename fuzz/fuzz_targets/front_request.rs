//! Fuzz target `front_request`: the checks live in `comet::fuzzing::front_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| comet::fuzzing::front_request(data));
