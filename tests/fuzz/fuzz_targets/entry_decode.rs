//! Fuzz target `entry_decode`: see `redline_e2e::fuzz::entry_decode` (tests/src/fuzz.rs) for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| redline_fuzz::run("entry_decode", data));
