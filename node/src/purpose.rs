//! Why a disclosure is made and on what legal basis: the two facts every referral, consent and
//! policy rule is keyed on.

use serde::{Deserialize, Serialize};

/// Why a referral is being shared; the policy decides per purpose what may go.
///
/// Its one name table is derived (strum, the same case as serde): `threat-assessment`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
    strum::Display,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Purpose {
    /// An affiliate asks a core team to assess a person of concern.
    ThreatAssessment,
    /// Teams coordinate an existing management plan.
    ThreatManagement,
    /// A core team asks a partner for advice.
    Consultation,
}

/// The legal basis on which a disclosure is made.
///
/// Its one name table is derived (strum, the same case as serde): `serious-imminent-threat`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
    strum::Display,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum LegalBasis {
    /// The subject or a guardian consented; the consent record is named.
    Consent,
    /// HIPAA 45 CFR 164.512(j); requires a written justification.
    SeriousImminentThreat,
    /// FERPA 34 CFR 99.36; requires a written justification.
    HealthSafetyEmergency,
    /// Between criminal-justice agencies.
    LawEnforcement,
    /// No direct identifiers are disclosed.
    DeIdentified,
}

impl Purpose {
    /// The stable name used in the policy, the console and the CLI.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        name.parse().ok()
    }
}

impl LegalBasis {
    /// The stable name used in the policy, the console and the CLI.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        name.parse().ok()
    }

    /// The exceptions to consent, which the law only allows with a written justification.
    pub fn needs_justification(self) -> bool {
        matches!(
            self,
            Self::SeriousImminentThreat | Self::HealthSafetyEmergency
        )
    }
}

/// The shortest justification accepted for an exception basis: about a sentence.
pub const MIN_JUSTIFICATION_CHARS: usize = 20;
