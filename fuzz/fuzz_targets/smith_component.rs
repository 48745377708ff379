#![no_main]
//! Fuzz target `smith_component`: see `tta_host_fuzz::smith_component`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tta_host_fuzz::smith_component(data));
