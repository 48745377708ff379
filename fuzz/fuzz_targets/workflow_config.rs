#![no_main]
//! Fuzz target `workflow_config`: see `tta_host_fuzz::workflow_config`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tta_host_fuzz::workflow_config(data));
