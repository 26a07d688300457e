//! Fuzz target `config_parse`: see `redline_e2e::fuzz::config_parse` (tests/src/fuzz.rs) for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| redline_fuzz::run("config_parse", data));
