//! Emailing staff about what is new: a background job that turns notifications into mails for
//! the staff who asked for them ([`crate::store::Store::make_mails`]), sends each through the
//! agency's SMTP relay ([`mail`]), and marks it sent in the store, so that a restart sends
//! nothing twice. A relay that does not answer, or says "try later", is tried again with a
//! growing pause; a mail it refuses for good is given up. Only ids and counts are logged:
//! never an address, a name or anything of a case.
//!
//! # Layout
//! - this file: the job.
//! - [`mail`]: what an email says, and the relay it goes through.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::staff::Capability;
use crate::store::Store;

pub mod mail;

pub use mail::{MailError, Relay};

/// Mails claimed at a time.
const BATCH: u32 = 20;
/// Attempts before a mail the relay keeps not taking is given up.
const MAX_ATTEMPTS: u32 = 8;
/// The pause after the first failed attempt; it doubles with each, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(60);
/// The longest pause between attempts.
const MAX_PAUSE: Duration = Duration::from_secs(3600);
/// How long a claimed mail is left to this job before another replica's may take it.
const LEASE: time::Duration = time::Duration::minutes(5);
/// Notifications older than this when the job first sees them (made while email was off)
/// are not emailed: news a day late is not news, and turning email on must not send a
/// backlog.
const MAX_BACKLOG: time::Duration = time::Duration::days(1);

/// Whose role lets them read cases, and so hear of them.
fn may_read(role: crate::staff::StaffRole) -> bool {
    role.may(Capability::ReadCases)
}

/// The pause before the next attempt, after `attempts` failed ones.
fn pause_after(attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(16));
    FIRST_PAUSE.saturating_mul(factor).min(MAX_PAUSE)
}

/// Sends what is due every `interval` until the node stops.
pub async fn run(store: Store, relay: Relay, interval: Duration, shutdown: CancellationToken) {
    loop {
        send_due(&store, &relay).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One round: new notifications become mails, and every mail due is sent.
async fn send_due(store: &Store, relay: &Relay) {
    let not_before = store.clock().now() - MAX_BACKLOG;
    match store.make_mails(may_read, not_before).await {
        Ok(0) => {}
        Ok(made) => tracing::info!(made, "notification emails queued"),
        Err(e) => {
            tracing::error!(error = %e, "queuing notification emails failed; will try again");
            return;
        }
    }
    loop {
        let due = match store.claim_mails(may_read, LEASE, BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "claiming notification emails failed; will try again");
                return;
            }
        };
        let full = due.len() == BATCH as usize;
        for mail in due {
            let seq = mail.notification.seq;
            let attempts = mail.attempts + 1;
            let settled = match relay.send(&mail.notification, &mail.email).await {
                Ok(()) => {
                    tracing::info!(notification = seq, "notification emailed");
                    store.mail_sent(seq, &mail.username).await
                }
                Err(e) if e.is_permanent() || attempts >= MAX_ATTEMPTS => {
                    tracing::warn!(notification = seq, attempts, error = %e, "a notification email was given up");
                    store.mail_failed(seq, &mail.username, None).await
                }
                Err(e) => {
                    let pause = pause_after(attempts);
                    tracing::warn!(notification = seq, attempts, retry_in = ?pause, error = %e, "a notification email will be tried again");
                    let at = store.clock().now()
                        + time::Duration::try_from(pause).unwrap_or(time::Duration::HOUR);
                    store.mail_failed(seq, &mail.username, Some(at)).await
                }
            };
            if let Err(e) = settled {
                tracing::error!(error = %e, notification = seq, "recording a notification email failed");
            }
        }
        if !full {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_up_to_an_hour() {
        assert_eq!(pause_after(1), Duration::from_secs(60));
        assert_eq!(pause_after(2), Duration::from_secs(120));
        assert_eq!(pause_after(3), Duration::from_secs(240));
        assert_eq!(pause_after(20), MAX_PAUSE);
    }
}
