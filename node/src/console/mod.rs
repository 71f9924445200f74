//! The staff console: the node's own web pages for school counsellors, clinicians, detectives
//! and MDT chairs, who will not write TOML files.
//!
//! It is a front end over the node's domain layer, not a second implementation: every page
//! calls the same Agency and Admin services the CLI uses, in-process, as the signed-in user.
//! Staff sign in with a password (argon2id) and a TOTP code; each role sees only its pages, and
//! the server refuses anything else whatever the browser sends.

pub mod credentials;
mod role;

pub use role::{Capability, StaffRole};
