//! Trust as its admin reads it: what needs acting on before it breaks delivery.
//!
//! The node logs these at start-up and after each directory refresh; the Admin API and the
//! console's trust page show them.

use time::OffsetDateTime;

use crate::trust::TrustState;

/// How many days before expiry a certificate is worth a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// What an admin should act on, in plain words.
pub fn warnings(state: &TrustState) -> Vec<String> {
    let now = OffsetDateTime::now_utc();
    let mut warnings = Vec::new();
    for credentials in state.identities.all() {
        let days = (credentials.not_after() - now).whole_days();
        if days < EXPIRY_WARNING_DAYS {
            warnings.push(format!(
                "this node's certificate for {} expires in {days} days ({}); run `tatmx cert renew`",
                credentials.identity().federation,
                credentials.not_after().date()
            ));
        }
    }
    for anchor in state.anchors() {
        let days = (anchor.not_after - now).whole_days();
        if days < EXPIRY_WARNING_DAYS {
            warnings.push(format!(
                "trust anchor {} of {} expires in {days} days; plan the CA rotation",
                &anchor.fingerprint[..16],
                anchor.federation
            ));
        }
    }
    for directory in state.directories() {
        let age = now - directory.issued_at;
        let max_age =
            time::Duration::try_from(state.max_directory_age).unwrap_or(time::Duration::MAX);
        if !state.is_stale(directory) && age > max_age * 3 / 4 {
            warnings.push(format!(
                "the directory of {} (sequence {}) becomes stale in {} hours; import a newer one",
                directory.federation,
                directory.sequence,
                (max_age - age).whole_hours()
            ));
        }
        if state.is_stale(directory) {
            warnings.push(format!(
                "the directory of {} (sequence {}) was issued {} days ago and is stale; import a newer one",
                directory.federation,
                directory.sequence,
                (now - directory.issued_at).whole_days()
            ));
        }
    }
    for crl in state.crls() {
        if crl.next_update.is_some_and(|next| next < now) {
            warnings.push(format!(
                "the CRL of {} (number {}) is past its next update; import a newer one",
                crl.federation, crl.crl_number
            ));
        }
    }
    warnings
}
