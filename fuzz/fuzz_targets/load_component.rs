#![no_main]
//! Fuzz target `load_component`: see `tta_host_fuzz::load_component`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tta_host_fuzz::load_component(data));
