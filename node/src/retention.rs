//! How long a received referral is kept; [`crate::jobs::retention`] purges it afterwards.
//!
//! A received referral's deadline is fixed when it arrives: the time of receipt plus the period
//! configured for its purpose. The job purges expired referrals the same way a retraction does
//! (crypto-shredding, then a tombstone), together with any forward this node made from them,
//! since those are sealed under the same key. It does not ask other teams to purge: each node
//! applies its own schedule to its own copy.

use std::time::Duration;

use crate::referral::Purpose;

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
