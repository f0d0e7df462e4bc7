//! Fuzz target `cluster_wire`: the checks live in `comet::fuzzing::cluster_wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| comet::fuzzing::cluster_wire(data));
