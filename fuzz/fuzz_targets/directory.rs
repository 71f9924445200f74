//! libFuzzer's entry to the `directory` target. The body, and what it checks beyond "no
//! panic", is `tatmx_fuzz_targets::directory` in fuzz-targets/src/directory.rs; CI's stable smoke
//! test runs the same function.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tatmx_fuzz_targets::directory(data));
