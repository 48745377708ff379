#![no_main]
//! Fuzz target `http_api`: see `tta_host_fuzz::http_api`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tta_host_fuzz::http_api(data));
