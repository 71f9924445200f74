//! The tatmx fuzz targets as plain functions: each takes the bytes an attacker or a careless
//! admin could hand the node and runs them through one parser of outside input, panicking only
//! when the node breaks a promise.
//!
//! Two drivers call them. `fuzz/` wraps each in `fuzz_target!` for cargo-fuzz (nightly,
//! libFuzzer, coverage-guided, for long runs); `tests/smoke.rs` here runs each on its seeds and
//! then for a bounded time on random mutations of them, on stable Rust, in every
//! `cargo test --workspace`. Keeping the bodies here means both run the same code.
//!
//! # Layout
//! - [`inbound_referral`], [`filter`], [`directory`], [`crl`], [`config`], [`policy`]: the
//!   targets, one module each, named as in `fuzz/fuzz_targets/` and `fuzz/corpus/`.
//! - [`TARGETS`]: every target by name, for drivers that run them all.
//! - `setup`: what the targets share ([`test_ca`], [`anchors`], [`default_policy`],
//!   [`outbound`]), built once per process.
//!
//! Inputs are never unwrapped: an input the node refuses ends the run quietly. The `expect`s and
//! `assert`s in the targets are the checks themselves, on values the node has already accepted.

#![forbid(unsafe_code)]

mod config;
mod crl;
mod directory;
mod filter;
mod inbound_referral;
mod policy;
mod setup;

pub use config::config;
pub use crl::crl;
pub use directory::directory;
pub use filter::filter;
pub use inbound_referral::inbound_referral;
pub use policy::policy;
pub use setup::{FEDERATION, Outbound, anchors, default_policy, identity, outbound, test_ca};

/// One fuzz target: the name of its `fuzz/fuzz_targets/` file and `fuzz/corpus/` directory,
/// and the function that runs one input.
pub type Target = (&'static str, fn(&[u8]));

/// Every target. A new one must be added here as well as in `fuzz/`; the smoke test checks
/// that the two lists agree, so that no target goes untested in CI.
pub const TARGETS: [Target; 6] = [
    ("inbound_referral", inbound_referral),
    ("filter", filter),
    ("directory", directory),
    ("crl", crl),
    ("config", config),
    ("policy", policy),
];
