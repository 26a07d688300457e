//! Fuzz target `image_hash`: see `redline_e2e::fuzz::image_hash` (tests/src/fuzz.rs) for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| redline_fuzz::run("image_hash", data));
