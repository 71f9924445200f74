//! How long a received referral is kept, and the background job that purges it afterwards.
//!
//! A received referral's deadline is fixed when it arrives: the time of receipt plus the period
//! configured for its purpose. The job purges expired referrals the same way a retraction does
//! (crypto-shredding, then a tombstone), together with any forward this node made from them,
//! since those are sealed under the same key. It does not ask other teams to purge: each node
//! applies its own schedule to its own copy.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::referral::Purpose;
use crate::store::Store;

/// One year, as the schedules count it.
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// The retention schedule, per purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// A referral for threat assessment. Default three years.
    pub threat_assessment: Duration,
    /// A referral coordinating threat management. Default three years.
    pub threat_management: Duration,
    /// A partner's copy of a consultation request. Default one year: the advice is given within
    /// weeks, and the copy is de-identified but still a case narrative.
    pub consultation: Duration,
    /// How often the job looks for expired referrals. Default one hour.
    pub sweep_interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            threat_assessment: 3 * YEAR,
            threat_management: 3 * YEAR,
            consultation: YEAR,
            sweep_interval: Duration::from_secs(3600),
        }
    }
}

impl RetentionSettings {
    /// How long a referral received for `purpose` is kept.
    pub fn period(&self, purpose: Purpose) -> Duration {
        match purpose {
            Purpose::ThreatAssessment => self.threat_assessment,
            Purpose::ThreatManagement => self.threat_management,
            Purpose::Consultation => self.consultation,
        }
    }
}

/// Purges expired referrals every `sweep_interval` until the node stops.
pub async fn run(store: Store, settings: RetentionSettings, shutdown: CancellationToken) {
    loop {
        match store.purge_expired(time::OffsetDateTime::now_utc()).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "retention purged expired referrals"),
            Err(e) => tracing::error!(error = %e, "retention purge failed; will try again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.sweep_interval) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
