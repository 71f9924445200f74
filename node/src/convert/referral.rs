//! Referrals and status updates on the wire: content by category, the manifest of what was
//! withheld, consultations, and assessment outcomes.

use super::*;

// ---- content ----

pub(super) fn level_to_proto(level: &LevelOfConcern) -> pb::LevelOfConcern {
    pb::LevelOfConcern {
        scheme: level.scheme.clone(),
        value: level.value.clone(),
    }
}

pub(super) fn level_from_proto(level: Option<pb::LevelOfConcern>) -> Option<LevelOfConcern> {
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

pub(super) fn labels_from_proto(
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

pub(super) fn withheld_from_proto(
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
        subject_ref: r.subject_ref.clone().unwrap_or_default(),
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
        subject_ref: non_empty(r.subject_ref),
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
        reason_code: u
            .reason_code
            .map_or(pb::ReasonCode::Unspecified, reason_code_to_proto)
            .into(),
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
        reason_code: reason_code_from_proto(u.reason_code, "update.reason_code")?,
        outcome: u.outcome.map(outcome_from_proto),
        withheld: withheld_from_proto(u.withheld)?,
        forwarded_to: if u.forwarded_to.is_empty() {
            None
        } else {
            Some(identity_from_proto(&u.forwarded_to, "update.forwarded_to")?)
        },
    })
}

/// Domain reason code to wire.
pub fn reason_code_to_proto(code: ReasonCode) -> pb::ReasonCode {
    use pb::ReasonCode as P;
    match code {
        ReasonCode::NotAThreatAssessmentMatter => P::NotAThreatAssessmentMatter,
        ReasonCode::OutsideJurisdiction => P::OutsideJurisdiction,
        ReasonCode::ReferredElsewhere => P::ReferredElsewhere,
        ReasonCode::InsufficientInformation => P::InsufficientInformation,
        ReasonCode::Duplicate => P::Duplicate,
        ReasonCode::Other => P::Other,
    }
}

/// Wire reason code to domain: unspecified is none; a number this node does not know is
/// refused, naming the field, rather than read as none.
pub fn reason_code_from_proto(
    value: i32,
    field: &str,
) -> Result<Option<ReasonCode>, ConversionError> {
    use pb::ReasonCode as P;
    Ok(Some(match P::try_from(value) {
        Ok(P::Unspecified) => return Ok(None),
        Ok(P::NotAThreatAssessmentMatter) => ReasonCode::NotAThreatAssessmentMatter,
        Ok(P::OutsideJurisdiction) => ReasonCode::OutsideJurisdiction,
        Ok(P::ReferredElsewhere) => ReasonCode::ReferredElsewhere,
        Ok(P::InsufficientInformation) => ReasonCode::InsufficientInformation,
        Ok(P::Duplicate) => ReasonCode::Duplicate,
        Ok(P::Other) => ReasonCode::Other,
        Err(_) => {
            return Err(ConversionError {
                field: field.to_owned(),
                problem: format!(
                    "unknown reason code {value}; the codes are {}",
                    ReasonCode::all()
                        .map(ReasonCode::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }))
}
