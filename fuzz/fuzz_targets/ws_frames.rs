//! Fuzz target `ws_frames`: the checks live in `comet::fuzzing::ws_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| comet::fuzzing::ws_frames(data));
