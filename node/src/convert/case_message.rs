//! Case messages on the wire: questions, supplements, new information, management plans and
//! reassessments, and the parts of staff's drafts of them that come in through the Agency API.

use std::collections::BTreeSet;

use super::referral::{
    labels_from_proto, level_from_proto, level_to_proto, withheld_from_proto, withheld_to_proto,
};
use super::*;
use crate::case_message::{
    CaseBody, CaseMessage, CaseMessageKind, InformationKind, Intervention, InterventionCode, Plan,
    PlanDraft, format_date, parse_date,
};

/// Domain kind of new information to wire.
pub fn information_kind_to_proto(kind: InformationKind) -> pb::InformationKind {
    match kind {
        InformationKind::TripwireReport => pb::InformationKind::TripwireReport,
        InformationKind::PrecipitatingEvent => pb::InformationKind::PrecipitatingEvent,
        InformationKind::ProtectiveFactor => pb::InformationKind::ProtectiveFactor,
    }
}

/// Wire kind of new information to domain.
pub fn information_kind_from_proto(
    value: i32,
    field: &str,
) -> Result<InformationKind, ConversionError> {
    match pb::InformationKind::try_from(value) {
        Ok(pb::InformationKind::TripwireReport) => Ok(InformationKind::TripwireReport),
        Ok(pb::InformationKind::PrecipitatingEvent) => Ok(InformationKind::PrecipitatingEvent),
        Ok(pb::InformationKind::ProtectiveFactor) => Ok(InformationKind::ProtectiveFactor),
        Ok(pb::InformationKind::Unspecified) => Err(invalid(
            field,
            "is required: tripwire-report, precipitating-event or protective-factor",
        )),
        Err(_) => Err(invalid(field, format!("unknown kind {value}"))),
    }
}

/// Domain case message kind to the Agency API's enum.
pub fn case_kind_to_proto(kind: CaseMessageKind) -> pb::CaseMessageKind {
    match kind {
        CaseMessageKind::InformationRequest => pb::CaseMessageKind::InformationRequest,
        CaseMessageKind::Supplement => pb::CaseMessageKind::Supplement,
        CaseMessageKind::NewInformation => pb::CaseMessageKind::NewInformation,
        CaseMessageKind::ManagementPlan => pb::CaseMessageKind::ManagementPlan,
        CaseMessageKind::Reassessment => pb::CaseMessageKind::Reassessment,
    }
}

/// Wire categories to a set, refusing unknown values by position.
pub fn categories_from_proto(
    values: &[i32],
    field: &str,
) -> Result<BTreeSet<DataCategory>, ConversionError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            category_from_proto(*v)
                .ok_or_else(|| invalid(&format!("{field}[{i}]"), "unknown category"))
        })
        .collect()
}

fn plan_to_proto(plan: &Plan) -> pb::ManagementPlan {
    pb::ManagementPlan {
        interventions: plan
            .interventions
            .iter()
            .map(|i| pb::Intervention {
                code: i.code.as_str().to_owned(),
                responsible_team: i.responsible.uri(),
            })
            .collect(),
        next_reassessment: format_date(plan.next_reassessment),
    }
}

fn code_from_proto(code: &str, field: &str) -> Result<InterventionCode, ConversionError> {
    InterventionCode::parse(code).ok_or_else(|| {
        invalid(
            field,
            format!(
                "not an intervention code; use one of {}",
                InterventionCode::names()
            ),
        )
    })
}

fn date_from_proto(text: &str, field: &str) -> Result<time::Date, ConversionError> {
    if text.trim().is_empty() {
        return Err(invalid(field, "is required (YYYY-MM-DD)"));
    }
    parse_date(text).ok_or_else(|| invalid(field, "not a date in the form YYYY-MM-DD"))
}

fn plan_from_proto(plan: pb::ManagementPlan, field: &str) -> Result<Plan, ConversionError> {
    Ok(Plan {
        interventions: plan
            .interventions
            .into_iter()
            .enumerate()
            .map(|(i, x)| {
                let at = format!("{field}.interventions[{i}]");
                Ok(Intervention {
                    code: code_from_proto(&x.code, &format!("{at}.code"))?,
                    responsible: identity_from_proto(
                        &x.responsible_team,
                        &format!("{at}.responsible_team"),
                    )?,
                })
            })
            .collect::<Result<_, ConversionError>>()?,
        next_reassessment: date_from_proto(
            &plan.next_reassessment,
            &format!("{field}.next_reassessment"),
        )?,
    })
}

/// A plan as staff write it through the Agency API: codes checked, dates parsed, teams as
/// written (a team id or URI, which the node resolves).
pub fn plan_draft_from_proto(
    plan: Option<pb::ManagementPlan>,
    field: &str,
) -> Result<PlanDraft, ConversionError> {
    let plan = required(plan, field)?;
    Ok(PlanDraft {
        interventions: plan
            .interventions
            .into_iter()
            .enumerate()
            .map(|(i, x)| {
                let at = format!("{field}.interventions[{i}]");
                if x.responsible_team.trim().is_empty() {
                    return Err(invalid(&format!("{at}.responsible_team"), "is required"));
                }
                Ok((
                    code_from_proto(&x.code, &format!("{at}.code"))?,
                    x.responsible_team,
                ))
            })
            .collect::<Result<_, ConversionError>>()?,
        next_reassessment: date_from_proto(
            &plan.next_reassessment,
            &format!("{field}.next_reassessment"),
        )?,
    })
}

/// A level of concern staff gave, if both its parts are there.
pub fn level_of_concern_from_proto(level: Option<pb::LevelOfConcern>) -> Option<LevelOfConcern> {
    level_from_proto(level)
}

/// Domain case message to wire.
pub fn case_message_to_proto(m: &CaseMessage) -> pb::CaseMessage {
    use pb::case_message::Body;
    let body = match &m.body {
        CaseBody::InformationRequest { question, wanted } => {
            Body::InformationRequest(pb::InformationRequest {
                question: question.clone().unwrap_or_default(),
                wanted: wanted
                    .iter()
                    .map(|c| category_to_proto(*c).into())
                    .collect(),
            })
        }
        CaseBody::Supplement { answers, content } => Body::Supplement(pb::Supplement {
            answers: answers.map(|a| a.to_string()).unwrap_or_default(),
            content: Some(content_to_proto(content)),
        }),
        CaseBody::NewInformation {
            kind,
            urgent,
            text,
            content,
        } => Body::NewInformation(pb::NewInformation {
            kind: information_kind_to_proto(*kind).into(),
            urgent: *urgent,
            text: text.clone().unwrap_or_default(),
            content: Some(content_to_proto(content)),
        }),
        CaseBody::ManagementPlan { plan } => Body::ManagementPlan(pb::ManagementPlanRecord {
            plan: plan.as_ref().map(plan_to_proto),
        }),
        CaseBody::Reassessment {
            level_of_concern,
            plan,
        } => Body::Reassessment(pb::Reassessment {
            level_of_concern: level_of_concern.as_ref().map(level_to_proto),
            plan: plan.as_ref().map(plan_to_proto),
        }),
    };
    pb::CaseMessage {
        id: m.id.to_string(),
        referral_id: m.referral_id.to_string(),
        author: m.author.uri(),
        at: Some(timestamp_to_proto(m.at)),
        body: Some(body),
        labels: m
            .labels
            .iter()
            .map(|(category, labels)| pb::CategoryLabels {
                category: category_to_proto(*category).into(),
                labels: labels.clone(),
            })
            .collect(),
        withheld: m.withheld.iter().map(withheld_to_proto).collect(),
    }
}

/// Wire case message to domain: every field parsed, then the case message rules checked.
pub fn case_message_from_proto(m: pb::CaseMessage) -> Result<CaseMessage, ConversionError> {
    use pb::case_message::Body;
    let body = match required(m.body, "message.body")? {
        Body::InformationRequest(r) => CaseBody::InformationRequest {
            question: non_empty(r.question),
            wanted: categories_from_proto(&r.wanted, "message.information_request.wanted")?,
        },
        Body::Supplement(s) => CaseBody::Supplement {
            answers: if s.answers.is_empty() {
                None
            } else {
                Some(message_id_from_proto(
                    &s.answers,
                    "message.supplement.answers",
                )?)
            },
            content: content_from_proto(s.content),
        },
        Body::NewInformation(n) => CaseBody::NewInformation {
            kind: information_kind_from_proto(n.kind, "message.new_information.kind")?,
            urgent: n.urgent,
            text: non_empty(n.text),
            content: content_from_proto(n.content),
        },
        Body::ManagementPlan(p) => CaseBody::ManagementPlan {
            plan: p
                .plan
                .map(|p| plan_from_proto(p, "message.management_plan.plan"))
                .transpose()?,
        },
        Body::Reassessment(r) => CaseBody::Reassessment {
            level_of_concern: level_from_proto(r.level_of_concern),
            plan: r
                .plan
                .map(|p| plan_from_proto(p, "message.reassessment.plan"))
                .transpose()?,
        },
    };
    let message = CaseMessage {
        id: message_id_from_proto(&m.id, "message.id")?,
        referral_id: message_id_from_proto(&m.referral_id, "message.referral_id")?,
        author: identity_from_proto(&m.author, "message.author")?,
        at: timestamp_from_proto(m.at, "message.at")?,
        body,
        labels: labels_from_proto(m.labels)?,
        withheld: withheld_from_proto(m.withheld)?,
    };
    message
        .validate()
        .map_err(|e| invalid("message", e.to_string()))?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case_message::CaseMessage;

    #[test]
    fn a_plan_comes_back_as_it_went_and_bad_codes_are_named() {
        let team = TeamIdentity::parse_uri("spiffe://f.example/team/school").unwrap();
        let message = CaseMessage {
            id: Uuid::now_v7(),
            referral_id: Uuid::now_v7(),
            author: team.clone(),
            at: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            body: CaseBody::Reassessment {
                level_of_concern: Some(LevelOfConcern {
                    scheme: "CSTAG".into(),
                    value: "low".into(),
                }),
                plan: Some(Plan {
                    interventions: vec![Intervention {
                        code: InterventionCode::CheckIns,
                        responsible: team,
                    }],
                    next_reassessment: parse_date("2027-01-15").unwrap(),
                }),
            },
            labels: Default::default(),
            withheld: Vec::new(),
        };
        let wire = case_message_to_proto(&message);
        assert_eq!(case_message_from_proto(wire.clone()).unwrap(), message);
        let mut bad = wire;
        if let Some(pb::case_message::Body::Reassessment(r)) = bad.body.as_mut()
            && let Some(plan) = r.plan.as_mut()
        {
            plan.interventions[0].code = "CANARY-free-text".into();
        }
        let err = case_message_from_proto(bad).unwrap_err();
        assert_eq!(err.field, "message.reassessment.plan.interventions[0].code");
        assert!(!err.to_string().contains("CANARY"));
    }
}
