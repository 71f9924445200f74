//! The one place where wire types and domain types meet.
//!
//! Everything that arrives from the network or the Agency API passes through a `from_proto`
//! function here and comes out validated or not at all. Errors name the field and the rule, never
//! the value, because values are case data.
//!
//! Only the edges that speak protobuf use it: the Agency and Admin services, the federation
//! protocol, and [`crate::wire`], which gives the store a message's canonical bytes.
//!
//! # Layout
//! - this file: errors, ids, times, enums and audit checkpoints;
//! - [`referral`]: referral content, referrals, new referrals, status updates, outcomes;
//! - [`consent`]: consents, retractions, their acknowledgements and tombstones;
//! - [`case_message`]: case messages (questions, answers, new information, plans,
//!   reassessments) and the staff's drafts of them.
//! - [`tree_head`]: the audit log's signed tree heads (protocol version 2), and the inclusion
//!   proof of one entry.

use tatmx_certs::TeamIdentity;
use tatmx_proto::v1 as pb;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::category::DataCategory;
use crate::consent::{Consent, Grantor, Provision, ProvisionKind, Recipient};
use crate::referral::{
    AssessmentOutcome, Behavior, ConsentScope, ConsultationDetails, CriminalHistory,
    EducationRecord, ExternalId, Hop, LegalBasis, LevelOfConcern, MentalHealth, Narrative,
    NewReferral, ObservedBehavior, Purpose, ReasonCode, Referral, ReferralContent, ReferralStatus,
    ReporterIdentity, StatusUpdate, SubjectContact, SubjectIdentity, SubstanceUse, ThirdParty,
    ThreatDetails, Withheld,
};
use crate::retraction::{
    Copy, PurgeCause, Retraction, RetractionAck, RetractionCause, RetractionProgress, Tombstone,
};
use crate::team::{Discipline, Role};

/// A wire message could not become a domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ConversionError {
    /// The offending field, as a path such as `referral.sender`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

fn invalid(field: &str, problem: impl Into<String>) -> ConversionError {
    ConversionError {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, ConversionError> {
    value.ok_or_else(|| invalid(field, "is required"))
}

fn non_empty(value: String) -> Option<String> {
    (!value.trim().is_empty()).then_some(value)
}

// ---- identifiers and times ----

/// Parses a message id; tatmx ids are UUIDv7 so that they sort by creation time.
pub fn message_id_from_proto(value: &str, field: &str) -> Result<Uuid, ConversionError> {
    let id = Uuid::parse_str(value).map_err(|_| invalid(field, "is not a UUID"))?;
    if id.get_version_num() != 7 {
        return Err(invalid(field, "must be a version 7 UUID"));
    }
    Ok(id)
}

/// Parses a team identity URI.
pub fn identity_from_proto(value: &str, field: &str) -> Result<TeamIdentity, ConversionError> {
    TeamIdentity::parse_uri(value).map_err(|_| {
        invalid(
            field,
            "is not a spiffe://<federation>/team/<team-id> identity",
        )
    })
}

/// A wire timestamp from a domain time.
pub fn timestamp_to_proto(at: OffsetDateTime) -> prost_types::Timestamp {
    let nanos = at.unix_timestamp_nanos();
    prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        // Always in 0..1e9, so the cast cannot truncate.
        nanos: nanos.rem_euclid(1_000_000_000) as i32,
    }
}

/// A domain time from a wire timestamp, refusing values outside the representable range.
pub fn timestamp_from_proto(
    ts: Option<prost_types::Timestamp>,
    field: &str,
) -> Result<OffsetDateTime, ConversionError> {
    let ts = required(ts, field)?;
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(invalid(field, "has nanoseconds out of range"));
    }
    let nanos = i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| invalid(field, "is out of range"))
}

// ---- enums ----

/// Wire purpose to domain.
pub fn purpose_from_proto(value: i32, field: &str) -> Result<Purpose, ConversionError> {
    match pb::Purpose::try_from(value) {
        Ok(pb::Purpose::ThreatAssessment) => Ok(Purpose::ThreatAssessment),
        Ok(pb::Purpose::ThreatManagement) => Ok(Purpose::ThreatManagement),
        Ok(pb::Purpose::Consultation) => Ok(Purpose::Consultation),
        Ok(pb::Purpose::Unspecified) => Err(invalid(field, "is required")),
        Err(_) => Err(invalid(field, format!("unknown purpose {value}"))),
    }
}

/// Domain purpose to wire.
pub fn purpose_to_proto(purpose: Purpose) -> pb::Purpose {
    match purpose {
        Purpose::ThreatAssessment => pb::Purpose::ThreatAssessment,
        Purpose::ThreatManagement => pb::Purpose::ThreatManagement,
        Purpose::Consultation => pb::Purpose::Consultation,
    }
}

/// Wire legal basis to domain.
pub fn basis_from_proto(value: i32, field: &str) -> Result<LegalBasis, ConversionError> {
    match pb::LegalBasis::try_from(value) {
        Ok(pb::LegalBasis::Consent) => Ok(LegalBasis::Consent),
        Ok(pb::LegalBasis::SeriousImminentThreat) => Ok(LegalBasis::SeriousImminentThreat),
        Ok(pb::LegalBasis::HealthSafetyEmergency) => Ok(LegalBasis::HealthSafetyEmergency),
        Ok(pb::LegalBasis::LawEnforcement) => Ok(LegalBasis::LawEnforcement),
        Ok(pb::LegalBasis::DeIdentified) => Ok(LegalBasis::DeIdentified),
        Ok(pb::LegalBasis::Unspecified) => Err(invalid(field, "is required")),
        Err(_) => Err(invalid(field, format!("unknown legal basis {value}"))),
    }
}

/// Domain legal basis to wire.
pub fn basis_to_proto(basis: LegalBasis) -> pb::LegalBasis {
    match basis {
        LegalBasis::Consent => pb::LegalBasis::Consent,
        LegalBasis::SeriousImminentThreat => pb::LegalBasis::SeriousImminentThreat,
        LegalBasis::HealthSafetyEmergency => pb::LegalBasis::HealthSafetyEmergency,
        LegalBasis::LawEnforcement => pb::LegalBasis::LawEnforcement,
        LegalBasis::DeIdentified => pb::LegalBasis::DeIdentified,
    }
}

/// Wire status to domain.
pub fn status_from_proto(value: i32, field: &str) -> Result<ReferralStatus, ConversionError> {
    use pb::ReferralStatus as P;
    match P::try_from(value) {
        Ok(P::Sent) => Ok(ReferralStatus::Sent),
        Ok(P::Received) => Ok(ReferralStatus::Received),
        Ok(P::Accepted) => Ok(ReferralStatus::Accepted),
        Ok(P::Declined) => Ok(ReferralStatus::Declined),
        Ok(P::InfoRequested) => Ok(ReferralStatus::InfoRequested),
        Ok(P::InAssessment) => Ok(ReferralStatus::InAssessment),
        Ok(P::Completed) => Ok(ReferralStatus::Completed),
        Ok(P::Closed) => Ok(ReferralStatus::Closed),
        Ok(P::Cancelled) => Ok(ReferralStatus::Cancelled),
        Ok(P::Forwarded) => Ok(ReferralStatus::Forwarded),
        Ok(P::UnderManagement) => Ok(ReferralStatus::UnderManagement),
        Ok(P::Unspecified) => Err(invalid(field, "is required")),
        Err(_) => Err(invalid(field, format!("unknown status {value}"))),
    }
}

/// Domain status to wire.
pub fn status_to_proto(status: ReferralStatus) -> pb::ReferralStatus {
    use pb::ReferralStatus as P;
    match status {
        ReferralStatus::Sent => P::Sent,
        ReferralStatus::Received => P::Received,
        ReferralStatus::Accepted => P::Accepted,
        ReferralStatus::Declined => P::Declined,
        ReferralStatus::InfoRequested => P::InfoRequested,
        ReferralStatus::InAssessment => P::InAssessment,
        ReferralStatus::Completed => P::Completed,
        ReferralStatus::Closed => P::Closed,
        ReferralStatus::Cancelled => P::Cancelled,
        ReferralStatus::Forwarded => P::Forwarded,
        ReferralStatus::UnderManagement => P::UnderManagement,
    }
}

/// Domain category to wire.
pub fn category_to_proto(category: DataCategory) -> pb::DataCategory {
    use pb::DataCategory as P;
    match category {
        DataCategory::Identity => P::Identity,
        DataCategory::Contact => P::Contact,
        DataCategory::Behavior => P::Behavior,
        DataCategory::Threat => P::Threat,
        DataCategory::Narrative => P::Narrative,
        DataCategory::MentalHealth => P::MentalHealth,
        DataCategory::SubstanceUse => P::SubstanceUse,
        DataCategory::EducationRecord => P::EducationRecord,
        DataCategory::CriminalHistory => P::CriminalHistory,
        DataCategory::ReporterIdentity => P::ReporterIdentity,
        DataCategory::ThirdParty => P::ThirdParty,
        DataCategory::Assessment => P::Assessment,
    }
}

/// Wire category to domain; `None` for unspecified or unknown values.
pub fn category_from_proto(value: i32) -> Option<DataCategory> {
    use pb::DataCategory as P;
    Some(match P::try_from(value).ok()? {
        P::Unspecified => return None,
        P::Identity => DataCategory::Identity,
        P::Contact => DataCategory::Contact,
        P::Behavior => DataCategory::Behavior,
        P::Threat => DataCategory::Threat,
        P::Narrative => DataCategory::Narrative,
        P::MentalHealth => DataCategory::MentalHealth,
        P::SubstanceUse => DataCategory::SubstanceUse,
        P::EducationRecord => DataCategory::EducationRecord,
        P::CriminalHistory => DataCategory::CriminalHistory,
        P::ReporterIdentity => DataCategory::ReporterIdentity,
        P::ThirdParty => DataCategory::ThirdParty,
        P::Assessment => DataCategory::Assessment,
    })
}

/// Domain role to wire.
pub fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Core => pb::Role::Core,
        Role::Affiliate => pb::Role::Affiliate,
        Role::Partner => pb::Role::Partner,
    }
}

/// Wire role to domain.
pub fn role_from_proto(value: i32) -> Option<Role> {
    match pb::Role::try_from(value).ok()? {
        pb::Role::Core => Some(Role::Core),
        pb::Role::Affiliate => Some(Role::Affiliate),
        pb::Role::Partner => Some(Role::Partner),
        pb::Role::Unspecified => None,
    }
}

// ---- audit ----

/// A signed checkpoint to wire.
pub fn checkpoint_to_proto(c: &crate::audit::Checkpoint) -> pb::SignedCheckpoint {
    pb::SignedCheckpoint {
        team: c.team.clone(),
        seq: c.seq,
        head_hash: c.head_hash.clone(),
        at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(c.at_ms) * 1_000_000)
            .ok()
            .map(timestamp_to_proto),
        signature: Some(pb::MessageSignature {
            scheme: c.scheme,
            value: c.signature.clone(),
            certificate: Vec::new(),
        }),
        signer_certificate: c.certificate.clone(),
    }
}

/// A wire checkpoint as shown; whether it holds is for its signature and its witness to say.
pub fn checkpoint_from_proto(c: pb::SignedCheckpoint) -> crate::audit::Checkpoint {
    let at_ms =
        c.at.map(|t| t.seconds.saturating_mul(1000) + i64::from(t.nanos / 1_000_000))
            .unwrap_or_default();
    let signature = c.signature.unwrap_or_default();
    crate::audit::Checkpoint {
        team: c.team,
        seq: c.seq,
        head_hash: c.head_hash,
        at_ms,
        scheme: signature.scheme,
        signature: signature.value,
        certificate: c.signer_certificate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_to_the_nanosecond() {
        let now = OffsetDateTime::now_utc();
        let back = timestamp_from_proto(Some(timestamp_to_proto(now)), "t").unwrap();
        assert_eq!(now, back);
    }

    #[test]
    fn unknown_enum_values_are_refused_by_name() {
        let err = purpose_from_proto(99, "referral.purpose").unwrap_err();
        assert_eq!(err.field, "referral.purpose");
        assert!(basis_from_proto(0, "b").is_err());
    }

    #[test]
    fn only_uuid_v7_ids_are_accepted() {
        assert!(message_id_from_proto(&Uuid::now_v7().to_string(), "id").is_ok());
        assert!(message_id_from_proto(&Uuid::nil().to_string(), "id").is_err());
        assert!(message_id_from_proto("nonsense", "id").is_err());
    }
}

mod case_message;
mod consent;
mod referral;
mod tree_head;

pub use case_message::*;
pub use consent::*;
pub use referral::*;
pub use tree_head::*;
