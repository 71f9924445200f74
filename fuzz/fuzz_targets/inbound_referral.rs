//! libFuzzer's entry to the `inbound_referral` target. The body, and what it checks beyond
//! "no panic", is `tatmx_fuzz_targets::inbound_referral` in
//! fuzz-targets/src/inbound_referral.rs; CI's stable smoke test runs the same function.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tatmx_fuzz_targets::inbound_referral(data));
