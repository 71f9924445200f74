//! Data categories: the label every piece of case data carries (ARCHITECTURE.md §3).
//!
//! The category decides which law protects a field, and so whether it may leave the node. It is
//! fixed by the section of the referral a field sits in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One category of case data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DataCategory {
    /// Subject name, date of birth, identifiers.
    Identity,
    /// Address, phone, email.
    Contact,
    /// Coded concerning behaviours and mobilization indicators.
    Behavior,
    /// Threat type, target type, weapons access, grievance.
    Threat,
    /// Free text; treated as identifying.
    Narrative,
    /// Diagnoses and treatment (HIPAA).
    MentalHealth,
    /// Substance-use treatment records (42 CFR Part 2).
    SubstanceUse,
    /// School, grade, IEP/504, discipline (FERPA).
    EducationRecord,
    /// Arrests, protective orders, firearm records (CJIS).
    CriminalHistory,
    /// Who reported the concern.
    ReporterIdentity,
    /// Named targets and witnesses.
    ThirdParty,
    /// Level of concern and management-plan summary.
    Assessment,
}

impl DataCategory {
    /// Every category, in protocol order.
    pub const ALL: [DataCategory; 12] = [
        Self::Identity,
        Self::Contact,
        Self::Behavior,
        Self::Threat,
        Self::Narrative,
        Self::MentalHealth,
        Self::SubstanceUse,
        Self::EducationRecord,
        Self::CriminalHistory,
        Self::ReporterIdentity,
        Self::ThirdParty,
        Self::Assessment,
    ];

    /// The stable name used in the store, logs and CLI output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "IDENTITY",
            Self::Contact => "CONTACT",
            Self::Behavior => "BEHAVIOR",
            Self::Threat => "THREAT",
            Self::Narrative => "NARRATIVE",
            Self::MentalHealth => "MENTAL_HEALTH",
            Self::SubstanceUse => "SUBSTANCE_USE",
            Self::EducationRecord => "EDUCATION_RECORD",
            Self::CriminalHistory => "CRIMINAL_HISTORY",
            Self::ReporterIdentity => "REPORTER_IDENTITY",
            Self::ThirdParty => "THIRD_PARTY",
            Self::Assessment => "ASSESSMENT",
        }
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for DataCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in DataCategory::ALL {
            assert_eq!(DataCategory::parse(c.as_str()), Some(c));
        }
        assert_eq!(DataCategory::parse("SECRET"), None);
    }
}
