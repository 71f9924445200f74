//! The one place where wire types and domain types meet.
//!
//! Everything that arrives from the network or the Agency API passes through a `from_proto`
//! function here and comes out validated or not at all. Errors name the field and the rule, never
//! the value, because values are case data.

use tatmx_certs::TeamIdentity;
use tatmx_proto::v1 as pb;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::category::DataCategory;
use crate::consent::{Consent, Grantor, Provision, ProvisionKind, Recipient};
use crate::referral::{
    AssessmentOutcome, Behavior, ConsentScope, ConsultationDetails, CriminalHistory,
    EducationRecord, ExternalId, Hop, LegalBasis, LevelOfConcern, MentalHealth, Narrative,
    NewReferral, ObservedBehavior, Purpose, Referral, ReferralContent, ReferralStatus,
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

// ---- content ----

fn level_to_proto(level: &LevelOfConcern) -> pb::LevelOfConcern {
    pb::LevelOfConcern {
        scheme: level.scheme.clone(),
        value: level.value.clone(),
    }
}

fn level_from_proto(level: Option<pb::LevelOfConcern>) -> Option<LevelOfConcern> {
    level
        .filter(|l| !(l.scheme.is_empty() && l.value.is_empty()))
        .map(|l| LevelOfConcern {
            scheme: l.scheme,
            value: l.value,
        })
}

/// Domain content to wire.
pub fn content_to_proto(content: &ReferralContent) -> pb::ReferralContent {
    pb::ReferralContent {
        identity: content.identity.as_ref().map(|i| pb::SubjectIdentity {
            full_name: i.full_name.clone(),
            date_of_birth: i.date_of_birth.clone(),
            identifiers: i
                .identifiers
                .iter()
                .map(|x| pb::ExternalId {
                    system: x.system.clone(),
                    value: x.value.clone(),
                })
                .collect(),
        }),
        contact: content.contact.as_ref().map(|c| pb::SubjectContact {
            address: c.address.clone(),
            phone: c.phone.clone(),
            email: c.email.clone(),
        }),
        behavior: content.behavior.as_ref().map(|b| pb::Behavior {
            observations: b
                .observations
                .iter()
                .map(|o| pb::ObservedBehavior {
                    code: o.code.clone(),
                    observed_on: o.observed_on.clone(),
                })
                .collect(),
        }),
        threat: content.threat.as_ref().map(|t| pb::ThreatDetails {
            threat_type: t.threat_type.clone(),
            target_type: t.target_type.clone(),
            weapons_access: t.weapons_access,
            grievance_code: t.grievance_code.clone(),
        }),
        narrative: content.narrative.as_ref().map(|n| pb::Narrative {
            text: n.text.clone(),
        }),
        mental_health: content.mental_health.as_ref().map(|m| pb::MentalHealth {
            diagnoses: m.diagnoses.clone(),
            treatment: m.treatment.clone(),
        }),
        substance_use: content.substance_use.as_ref().map(|s| pb::SubstanceUse {
            treatment_record: s.treatment_record.clone(),
        }),
        education_record: content
            .education_record
            .as_ref()
            .map(|e| pb::EducationRecord {
                school: e.school.clone(),
                grade: e.grade.clone(),
                iep_or_504: e.iep_or_504,
                discipline: e.discipline.clone(),
            }),
        criminal_history: content
            .criminal_history
            .as_ref()
            .map(|c| pb::CriminalHistory {
                arrests: c.arrests.clone(),
                protective_orders: c.protective_orders.clone(),
                firearm_records: c.firearm_records.clone(),
            }),
        reporter: content.reporter.as_ref().map(|r| pb::ReporterIdentity {
            name: r.name.clone(),
            relationship: r.relationship.clone(),
            contact: r.contact.clone(),
        }),
        third_parties: content
            .third_parties
            .iter()
            .map(|t| pb::ThirdParty {
                name: t.name.clone(),
                role: t.role.clone(),
            })
            .collect(),
    }
}

/// Wire content to domain. Every section maps one to one; the domain checks its rules later.
pub fn content_from_proto(content: Option<pb::ReferralContent>) -> ReferralContent {
    let Some(c) = content else {
        return ReferralContent::default();
    };
    ReferralContent {
        identity: c.identity.map(|i| SubjectIdentity {
            full_name: i.full_name,
            date_of_birth: i.date_of_birth,
            identifiers: i
                .identifiers
                .into_iter()
                .map(|x| ExternalId {
                    system: x.system,
                    value: x.value,
                })
                .collect(),
        }),
        contact: c.contact.map(|x| SubjectContact {
            address: x.address,
            phone: x.phone,
            email: x.email,
        }),
        behavior: c.behavior.map(|b| Behavior {
            observations: b
                .observations
                .into_iter()
                .map(|o| ObservedBehavior {
                    code: o.code,
                    observed_on: o.observed_on,
                })
                .collect(),
        }),
        threat: c.threat.map(|t| ThreatDetails {
            threat_type: t.threat_type,
            target_type: t.target_type,
            weapons_access: t.weapons_access,
            grievance_code: t.grievance_code,
        }),
        narrative: c.narrative.map(|n| Narrative { text: n.text }),
        mental_health: c.mental_health.map(|m| MentalHealth {
            diagnoses: m.diagnoses,
            treatment: m.treatment,
        }),
        substance_use: c.substance_use.map(|s| SubstanceUse {
            treatment_record: s.treatment_record,
        }),
        education_record: c.education_record.map(|e| EducationRecord {
            school: e.school,
            grade: e.grade,
            iep_or_504: e.iep_or_504,
            discipline: e.discipline,
        }),
        criminal_history: c.criminal_history.map(|x| CriminalHistory {
            arrests: x.arrests,
            protective_orders: x.protective_orders,
            firearm_records: x.firearm_records,
        }),
        reporter: c.reporter.map(|r| ReporterIdentity {
            name: r.name,
            relationship: r.relationship,
            contact: r.contact,
        }),
        third_parties: c
            .third_parties
            .into_iter()
            .map(|t| ThirdParty {
                name: t.name,
                role: t.role,
            })
            .collect(),
    }
}

// ---- messages ----

/// Domain referral to wire.
pub fn referral_to_proto(referral: &Referral) -> pb::Referral {
    pb::Referral {
        id: referral.id.to_string(),
        sender: referral.sender.uri(),
        recipient: referral.recipient.uri(),
        created_at: Some(timestamp_to_proto(referral.created_at)),
        purpose: purpose_to_proto(referral.purpose).into(),
        level_of_concern: referral.level_of_concern.as_ref().map(level_to_proto),
        legal_basis: basis_to_proto(referral.legal_basis).into(),
        justification: referral.justification.clone().unwrap_or_default(),
        consent_ref: referral.consent_ref.clone().unwrap_or_default(),
        content: Some(content_to_proto(&referral.content)),
        labels: referral
            .labels
            .iter()
            .map(|(category, labels)| pb::CategoryLabels {
                category: category_to_proto(*category).into(),
                labels: labels.clone(),
            })
            .collect(),
        withheld: referral.withheld.iter().map(withheld_to_proto).collect(),
        case_handle: referral.case_handle.clone().unwrap_or_default(),
        consultation: referral
            .consultation
            .as_ref()
            .map(|c| pb::ConsultationDetails {
                consultation_id: c.id.to_string(),
                question: c.question.clone(),
                due: c.due.map(timestamp_to_proto),
            }),
        provenance: referral
            .provenance
            .iter()
            .map(|h| pb::Hop {
                team: h.team.uri(),
                at: Some(timestamp_to_proto(h.at)),
            })
            .collect(),
        consent_scope: referral
            .consent_scope
            .as_ref()
            .map(|s| provision_to_proto(&s.provision)),
        consent_valid_until: referral
            .consent_scope
            .as_ref()
            .and_then(|s| s.valid_until)
            .map(timestamp_to_proto),
    }
}

fn consultation_from_proto(
    c: Option<pb::ConsultationDetails>,
) -> Result<Option<ConsultationDetails>, ConversionError> {
    c.map(|c| {
        Ok(ConsultationDetails {
            id: message_id_from_proto(&c.consultation_id, "referral.consultation.consultation_id")?,
            question: c.question,
            due: c
                .due
                .map(|d| timestamp_from_proto(Some(d), "referral.consultation.due"))
                .transpose()?,
        })
    })
    .transpose()
}

/// Domain manifest entry to wire.
pub fn withheld_to_proto(w: &Withheld) -> pb::WithheldCategory {
    pb::WithheldCategory {
        category: category_to_proto(w.category).into(),
        reasons: w.reasons.clone(),
        rules: w.rules.clone(),
        pseudonymized: w.pseudonymized,
    }
}

fn labels_from_proto(
    labels: Vec<pb::CategoryLabels>,
) -> Result<std::collections::BTreeMap<DataCategory, Vec<String>>, ConversionError> {
    labels
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let category = category_from_proto(l.category).ok_or_else(|| {
                invalid(
                    &format!("referral.labels[{i}].category"),
                    "unknown category",
                )
            })?;
            Ok((category, l.labels))
        })
        .collect()
}

fn withheld_from_proto(
    withheld: Vec<pb::WithheldCategory>,
) -> Result<Vec<Withheld>, ConversionError> {
    withheld
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            Ok(Withheld {
                category: category_from_proto(w.category).ok_or_else(|| {
                    invalid(
                        &format!("referral.withheld[{i}].category"),
                        "unknown category",
                    )
                })?,
                reasons: w.reasons,
                rules: w.rules,
                pseudonymized: w.pseudonymized,
            })
        })
        .collect()
}

/// Wire referral to domain: every field parsed, then the referral rules checked.
pub fn referral_from_proto(r: pb::Referral) -> Result<Referral, ConversionError> {
    let sender_identity = identity_from_proto(&r.sender, "referral.sender")?;
    let sender_federation = sender_identity.federation.clone();
    let referral = Referral {
        id: message_id_from_proto(&r.id, "referral.id")?,
        sender: sender_identity,
        recipient: identity_from_proto(&r.recipient, "referral.recipient")?,
        created_at: timestamp_from_proto(r.created_at, "referral.created_at")?,
        purpose: purpose_from_proto(r.purpose, "referral.purpose")?,
        level_of_concern: level_from_proto(r.level_of_concern),
        legal_basis: basis_from_proto(r.legal_basis, "referral.legal_basis")?,
        justification: non_empty(r.justification),
        consent_ref: non_empty(r.consent_ref),
        content: content_from_proto(r.content),
        labels: labels_from_proto(r.labels)?,
        withheld: withheld_from_proto(r.withheld)?,
        case_handle: non_empty(r.case_handle),
        consultation: consultation_from_proto(r.consultation)?,
        provenance: r
            .provenance
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                Ok(Hop {
                    team: identity_from_proto(&h.team, &format!("referral.provenance[{i}].team"))?,
                    at: timestamp_from_proto(h.at, &format!("referral.provenance[{i}].at"))?,
                })
            })
            .collect::<Result<_, ConversionError>>()?,
        consent_scope: match r.consent_scope {
            Some(provision) => {
                let federation = sender_federation.clone();
                Some(ConsentScope {
                    provision: provision_from_proto(
                        provision,
                        "referral.consent_scope",
                        &federation,
                        0,
                    )?,
                    valid_until: r
                        .consent_valid_until
                        .map(|t| timestamp_from_proto(Some(t), "referral.consent_valid_until"))
                        .transpose()?,
                })
            }
            None => None,
        },
    };
    referral
        .validate()
        .map_err(|e| invalid("referral", e.to_string()))?;
    Ok(referral)
}

/// Domain new referral to wire, for clients of the Agency API.
pub fn new_referral_to_proto(r: &NewReferral) -> pb::NewReferral {
    pb::NewReferral {
        recipient: r.recipient.clone(),
        purpose: purpose_to_proto(r.purpose).into(),
        level_of_concern: r.level_of_concern.as_ref().map(level_to_proto),
        legal_basis: basis_to_proto(r.legal_basis).into(),
        justification: r.justification.clone().unwrap_or_default(),
        consent_ref: r.consent_ref.clone().unwrap_or_default(),
        content: Some(content_to_proto(&r.content)),
        case_ref: r.case_ref.clone().unwrap_or_default(),
        reidentify: r.reidentify,
    }
}

/// Wire new referral to domain. The referral rules are checked once the node has built the
/// full [`Referral`].
pub fn new_referral_from_proto(r: pb::NewReferral) -> Result<NewReferral, ConversionError> {
    if r.recipient.trim().is_empty() {
        return Err(invalid("referral.recipient", "is required"));
    }
    Ok(NewReferral {
        recipient: r.recipient,
        purpose: purpose_from_proto(r.purpose, "referral.purpose")?,
        level_of_concern: level_from_proto(r.level_of_concern),
        legal_basis: basis_from_proto(r.legal_basis, "referral.legal_basis")?,
        justification: non_empty(r.justification),
        consent_ref: non_empty(r.consent_ref),
        content: content_from_proto(r.content),
        case_ref: non_empty(r.case_ref),
        reidentify: r.reidentify,
    })
}

/// Domain status update to wire.
pub fn status_update_to_proto(u: &StatusUpdate) -> pb::StatusUpdate {
    pb::StatusUpdate {
        id: u.id.to_string(),
        referral_id: u.referral_id.to_string(),
        author: u.author.uri(),
        status: status_to_proto(u.status).into(),
        at: Some(timestamp_to_proto(u.at)),
        reason: u.reason.clone().unwrap_or_default(),
        outcome: u.outcome.as_ref().map(outcome_to_proto),
        withheld: u.withheld.iter().map(withheld_to_proto).collect(),
        forwarded_to: u
            .forwarded_to
            .as_ref()
            .map(TeamIdentity::uri)
            .unwrap_or_default(),
    }
}

/// Domain outcome to wire.
pub fn outcome_to_proto(o: &AssessmentOutcome) -> pb::AssessmentOutcome {
    pb::AssessmentOutcome {
        level_of_concern: o.level_of_concern.as_ref().map(level_to_proto),
        management_plan: o.management_plan,
        advice: o.advice.clone(),
        recommendations: o.recommendations.clone(),
    }
}

/// Wire outcome to domain.
pub fn outcome_from_proto(o: pb::AssessmentOutcome) -> AssessmentOutcome {
    AssessmentOutcome {
        level_of_concern: level_from_proto(o.level_of_concern),
        management_plan: o.management_plan,
        advice: o.advice,
        recommendations: o.recommendations,
    }
}

/// Wire status update to domain.
pub fn status_update_from_proto(u: pb::StatusUpdate) -> Result<StatusUpdate, ConversionError> {
    Ok(StatusUpdate {
        id: message_id_from_proto(&u.id, "update.id")?,
        referral_id: message_id_from_proto(&u.referral_id, "update.referral_id")?,
        author: identity_from_proto(&u.author, "update.author")?,
        status: status_from_proto(u.status, "update.status")?,
        at: timestamp_from_proto(u.at, "update.at")?,
        reason: non_empty(u.reason),
        outcome: u.outcome.map(outcome_from_proto),
        withheld: withheld_from_proto(u.withheld)?,
        forwarded_to: if u.forwarded_to.is_empty() {
            None
        } else {
            Some(identity_from_proto(&u.forwarded_to, "update.forwarded_to")?)
        },
    })
}

// ---- consent ----

/// Domain consent to wire.
pub fn consent_to_proto(c: &Consent) -> pb::Consent {
    let (grantor, grantor_name) = match &c.grantor {
        Grantor::Subject => (pb::Grantor::Self_, String::new()),
        Grantor::Guardian { name } => (pb::Grantor::Guardian, name.clone()),
    };
    pb::Consent {
        id: c.id.to_string(),
        subject: c.subject.clone(),
        grantor: grantor.into(),
        grantor_name,
        provision: Some(provision_to_proto(&c.provision)),
        valid_from: Some(timestamp_to_proto(c.valid_from)),
        valid_until: c.valid_until.map(timestamp_to_proto),
        revoked_at: c.revoked_at.map(timestamp_to_proto),
        recorded_at: Some(timestamp_to_proto(c.recorded_at)),
    }
}

fn provision_to_proto(p: &Provision) -> pb::Provision {
    pb::Provision {
        r#type: match p.kind {
            ProvisionKind::Permit => pb::ProvisionType::Permit,
            ProvisionKind::Deny => pb::ProvisionType::Deny,
        }
        .into(),
        categories: p
            .categories
            .iter()
            .map(|c| category_to_proto(*c).into())
            .collect(),
        recipient_teams: p
            .recipients
            .iter()
            .filter_map(|r| match r {
                Recipient::Team(team) => Some(team.uri()),
                Recipient::Discipline(_) => None,
            })
            .collect(),
        recipient_disciplines: p
            .recipients
            .iter()
            .filter_map(|r| match r {
                Recipient::Discipline(d) => Some(d.as_str().to_owned()),
                Recipient::Team(_) => None,
            })
            .collect(),
        purposes: p
            .purposes
            .iter()
            .map(|purpose| purpose_to_proto(*purpose).into())
            .collect(),
        provisions: p.provisions.iter().map(provision_to_proto).collect(),
    }
}

/// Wire provision to domain; bare team ids are taken in `federation`. Nesting is bounded so a
/// hostile record cannot exhaust the stack.
fn provision_from_proto(
    p: pb::Provision,
    field: &str,
    federation: &tatmx_certs::FederationId,
    depth: usize,
) -> Result<Provision, ConversionError> {
    if depth > 8 {
        return Err(invalid(field, "provisions are nested more than 8 deep"));
    }
    let kind = match pb::ProvisionType::try_from(p.r#type) {
        Ok(pb::ProvisionType::Permit) => ProvisionKind::Permit,
        Ok(pb::ProvisionType::Deny) => ProvisionKind::Deny,
        _ => return Err(invalid(&format!("{field}.type"), "must be permit or deny")),
    };
    let categories = p
        .categories
        .iter()
        .map(|c| {
            category_from_proto(*c)
                .ok_or_else(|| invalid(&format!("{field}.categories"), "unknown category"))
        })
        .collect::<Result<_, _>>()?;
    let mut recipients = Vec::new();
    for team in &p.recipient_teams {
        let identity = if team.starts_with("spiffe://") {
            tatmx_certs::TeamIdentity::parse_uri(team).ok()
        } else {
            tatmx_certs::TeamId::new(team.clone())
                .ok()
                .map(|t| tatmx_certs::TeamIdentity::new(federation.clone(), t))
        };
        recipients.push(Recipient::Team(identity.ok_or_else(|| {
            invalid(
                &format!("{field}.recipient_teams"),
                "not a team id or identity",
            )
        })?));
    }
    for discipline in &p.recipient_disciplines {
        recipients.push(Recipient::Discipline(
            Discipline::parse(discipline).ok_or_else(|| {
                invalid(
                    &format!("{field}.recipient_disciplines"),
                    "unknown discipline",
                )
            })?,
        ));
    }
    let purposes = p
        .purposes
        .iter()
        .map(|purpose| purpose_from_proto(*purpose, &format!("{field}.purposes")))
        .collect::<Result<_, _>>()?;
    let provisions = p
        .provisions
        .into_iter()
        .enumerate()
        .map(|(i, nested)| {
            provision_from_proto(
                nested,
                &format!("{field}.provisions[{i}]"),
                federation,
                depth + 1,
            )
        })
        .collect::<Result<_, _>>()?;
    Ok(Provision {
        kind,
        categories,
        recipients,
        purposes,
        provisions,
    })
}

/// Wire consent to domain, as recorded through the Agency API (bare team ids are in
/// `federation`).
pub fn consent_from_proto(
    c: pb::Consent,
    federation: &tatmx_certs::FederationId,
) -> Result<Consent, ConversionError> {
    let grantor = match pb::Grantor::try_from(c.grantor) {
        Ok(pb::Grantor::Self_) => Grantor::Subject,
        Ok(pb::Grantor::Guardian) => Grantor::Guardian {
            name: c.grantor_name,
        },
        _ => return Err(invalid("consent.grantor", "must be self or guardian")),
    };
    let provision = provision_from_proto(
        required(c.provision, "consent.provision")?,
        "consent.provision",
        federation,
        0,
    )?;
    Ok(Consent {
        id: if c.id.is_empty() {
            Uuid::now_v7()
        } else {
            message_id_from_proto(&c.id, "consent.id")?
        },
        subject: c.subject,
        grantor,
        provision,
        valid_from: match c.valid_from {
            Some(ts) => timestamp_from_proto(Some(ts), "consent.valid_from")?,
            None => OffsetDateTime::now_utc(),
        },
        valid_until: c
            .valid_until
            .map(|ts| timestamp_from_proto(Some(ts), "consent.valid_until"))
            .transpose()?,
        revoked_at: c
            .revoked_at
            .map(|ts| timestamp_from_proto(Some(ts), "consent.revoked_at"))
            .transpose()?,
        recorded_at: match c.recorded_at {
            Some(ts) => timestamp_from_proto(Some(ts), "consent.recorded_at")?,
            None => OffsetDateTime::now_utc(),
        },
    })
}

// ---- retraction ----

/// Domain retraction to wire.
pub fn retraction_to_proto(r: &Retraction) -> pb::Retraction {
    pb::Retraction {
        id: r.id.to_string(),
        retraction_id: r.retraction_id.to_string(),
        referral_id: r.referral_id.to_string(),
        author: r.author.uri(),
        cause: match r.cause {
            RetractionCause::ConsentRevoked => pb::RetractionCause::ConsentRevoked,
        }
        .into(),
        at: Some(timestamp_to_proto(r.at)),
    }
}

/// Wire retraction to domain; an unknown cause is refused.
pub fn retraction_from_proto(r: pb::Retraction) -> Result<Retraction, ConversionError> {
    Ok(Retraction {
        id: message_id_from_proto(&r.id, "retraction.id")?,
        retraction_id: message_id_from_proto(&r.retraction_id, "retraction.retraction_id")?,
        referral_id: message_id_from_proto(&r.referral_id, "retraction.referral_id")?,
        author: identity_from_proto(&r.author, "retraction.author")?,
        cause: match pb::RetractionCause::try_from(r.cause) {
            Ok(pb::RetractionCause::ConsentRevoked) => RetractionCause::ConsentRevoked,
            _ => return Err(invalid("retraction.cause", "is not a known cause")),
        },
        at: timestamp_from_proto(r.at, "retraction.at")?,
    })
}

fn copy_to_proto(c: &Copy) -> pb::RetractionTarget {
    pb::RetractionTarget {
        team: c.team.uri(),
        referral_id: c.referral_id.to_string(),
    }
}

fn copy_from_proto(c: Option<pb::RetractionTarget>, field: &str) -> Result<Copy, ConversionError> {
    let c = c.ok_or_else(|| invalid(field, "is required"))?;
    Ok(Copy {
        team: identity_from_proto(&c.team, &format!("{field}.team"))?,
        referral_id: message_id_from_proto(&c.referral_id, &format!("{field}.referral_id"))?,
    })
}

/// Domain acknowledgement to wire.
pub fn retraction_ack_to_proto(a: &RetractionAck) -> pb::RetractionAck {
    pb::RetractionAck {
        id: a.id.to_string(),
        retraction_id: a.retraction_id.to_string(),
        purged: Some(copy_to_proto(&a.purged)),
        held: a.held,
        purged_at: Some(timestamp_to_proto(a.purged_at)),
        downstream: a.downstream.iter().map(copy_to_proto).collect(),
        author: a.author.uri(),
    }
}

/// Wire acknowledgement to domain.
pub fn retraction_ack_from_proto(a: pb::RetractionAck) -> Result<RetractionAck, ConversionError> {
    Ok(RetractionAck {
        id: message_id_from_proto(&a.id, "ack.id")?,
        retraction_id: message_id_from_proto(&a.retraction_id, "ack.retraction_id")?,
        purged: copy_from_proto(a.purged, "ack.purged")?,
        held: a.held,
        purged_at: timestamp_from_proto(a.purged_at, "ack.purged_at")?,
        downstream: a
            .downstream
            .into_iter()
            .enumerate()
            .map(|(i, c)| copy_from_proto(Some(c), &format!("ack.downstream[{i}]")))
            .collect::<Result<_, _>>()?,
        author: identity_from_proto(&a.author, "ack.author")?,
    })
}

/// How far a retraction has got, for staff.
pub fn retraction_progress_to_proto(p: &RetractionProgress) -> pb::RetractionProgress {
    pb::RetractionProgress {
        retraction_id: p.id.to_string(),
        consent_id: p.consent_id.to_string(),
        started_at: Some(timestamp_to_proto(p.started_at)),
        targets: p
            .targets
            .iter()
            .map(|t| pb::RetractionTargetProgress {
                target: Some(copy_to_proto(&t.copy)),
                reported_by: t.reported_by.clone(),
                acknowledged: t.acknowledged_at.is_some(),
                held: t.held,
                purged_at: t.purged_at.map(timestamp_to_proto),
            })
            .collect(),
        complete: p.complete(),
    }
}

/// A tombstone, for staff and counsel.
pub fn tombstone_to_proto(t: &Tombstone) -> pb::Tombstone {
    pb::Tombstone {
        referral_id: t.referral_id.to_string(),
        direction: if t.inbound {
            pb::Direction::Inbound
        } else {
            pb::Direction::Outbound
        }
        .into(),
        sender: t.sender.clone(),
        recipient: t.recipient.clone(),
        purpose: t
            .purpose
            .map(purpose_to_proto)
            .unwrap_or(pb::Purpose::Unspecified)
            .into(),
        categories: t
            .categories
            .iter()
            .map(|c| category_to_proto(*c).into())
            .collect(),
        recorded_at: Some(timestamp_to_proto(t.recorded_at)),
        purged_at: Some(timestamp_to_proto(t.purged_at)),
        cause: match t.cause {
            PurgeCause::ConsentRevoked => pb::PurgeCause::ConsentRevoked,
            PurgeCause::Retention => pb::PurgeCause::Retention,
        }
        .into(),
        retraction_id: t.retraction_id.map(|r| r.to_string()).unwrap_or_default(),
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
