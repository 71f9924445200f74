//! The `tatmx` command's tests: the binary run as an admin would run it, against real nodes
//! where a command needs one. One module per area, linked as one test binary.

mod audit_cli;
mod bench_quick;
mod case_cli;
mod cli;
mod doctor;
mod lists;
mod manual;
mod policy_cli;
mod trust_cli;
mod user;
