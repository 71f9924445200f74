//! The end-to-end tests: real nodes on loopback, one module per area, compiled and linked as
//! one test binary (one link instead of one per file). Each test makes its own federation in
//! its own temporary directory, on ports reserved for it, so the tests run side by side.
//!
//! Run one area with its module name as the filter: `cargo test -p tatmx-tests --test e2e
//! console::`.

mod agency;
mod audit;
mod browser;
mod canaries;
mod case;
mod console;
mod console_cases;
mod console_conversation;
mod console_trustdesk;
mod consultations;
mod delivery;
mod dns_names;
mod faults;
mod federations;
mod forwarding;
mod hostile;
mod lifecycle;
mod lifecycle_canaries;
mod notifications;
mod observability;
mod policy;
mod protocol_v2;
mod refusals;
mod retraction;
mod stock_clients;
mod trust;
