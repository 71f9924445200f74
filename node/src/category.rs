//! Data categories: the label every piece of case data carries (ARCHITECTURE.md §3).
//!
//! The category decides which law protects a field, and so whether it may leave the node. It is
//! fixed by the section of the referral a field sits in.

use serde::{Deserialize, Serialize};

/// One category of case data.
///
/// Its one name table is derived (strum, the same case as serde): `MENTAL_HEALTH` in the store,
/// logs, the CLI and the console alike.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
    strum::Display,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
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
        self.into()
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        name.parse().ok()
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

    #[test]
    fn the_name_table_is_the_serde_names_and_all_lists_every_category() {
        use strum::IntoEnumIterator;
        assert_eq!(DataCategory::iter().collect::<Vec<_>>(), DataCategory::ALL);
        for c in DataCategory::ALL {
            assert_eq!(serde_json::to_value(c).ok(), Some(c.as_str().into()));
            assert_eq!(c.to_string(), c.as_str());
        }
        assert_eq!(DataCategory::MentalHealth.as_str(), "MENTAL_HEALTH");
        assert_eq!(DataCategory::EducationRecord.as_str(), "EDUCATION_RECORD");
    }
}
