//! libFuzzer's entry to the `config` target. The body, and what it checks beyond "no
//! panic", is `tatmx_fuzz_targets::config` in fuzz-targets/src/config.rs; CI's stable smoke
//! test runs the same function.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tatmx_fuzz_targets::config(data));
