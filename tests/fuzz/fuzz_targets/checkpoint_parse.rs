//! Fuzz target `checkpoint_parse`: see `redline_e2e::fuzz::checkpoint_parse` (tests/src/fuzz.rs) for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| redline_fuzz::run("checkpoint_parse", data));
