//! Fuzz target `proof_verify`: see `redline_e2e::fuzz::proof_verify` (tests/src/fuzz.rs) for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| redline_fuzz::run("proof_verify", data));
