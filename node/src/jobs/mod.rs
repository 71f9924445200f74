//! The node's background jobs: work nobody starts by hand, each a loop that runs until the
//! node's shutdown signal.
//!
//! A job decides nothing itself: it asks the store to apply a rule the domain module owns
//! (the retention schedule, the audit log's checkpoints and retention) at the right time.
//!
//! # Layout
//! - [`retention`]: purging received referrals past their retention period.
//! - [`audit_checkpoints`]: signing the audit log's head, and removing entries past the audit
//!   retention period.

pub mod audit_checkpoints;
pub mod retention;
