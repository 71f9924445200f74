//! A case form's fields turned into what the use case takes ([`Outgoing`]), or the problems,
//! each named by its field in words; and the use case's own refusals placed on the form's
//! fields the same way.

use std::collections::BTreeSet;

use time::Date;
use uuid::Uuid;

use crate::app::{AppError, CaseDraft, Forward, StatusChange};
use crate::case_message::{
    self, CaseRefusal, InformationKind, InterventionCode, MAX_TEXT_CHARS, PlanDraft,
};
use crate::category::DataCategory;
use crate::console::page::{self, Fields};
use crate::console::referral::{team_name, team_title};
use crate::console::words;
use crate::lifecycle::TransitionError;
use crate::referral::{
    AssessmentOutcome, Behavior, LevelOfConcern, Narrative, ObservedBehavior, ReasonCode,
    ReferralContent, ReferralStatus,
};

use super::*;

/// What a form asks the node to do, once read.
pub(super) enum Outgoing {
    /// A status change with a reason or an outcome.
    Status(StatusChange),
    /// A case message, under the id the form was drawn with (boxed: a draft with content
    /// is several times the size of the other variants).
    Message(Uuid, Box<CaseDraft>),
    /// A forward.
    Forward(Forward),
    /// A consultation.
    Consult {
        /// The partners, as identity URIs.
        partners: Vec<String>,
        /// The question.
        question: String,
    },
}

/// A text field's value, or the problem with its length.
fn limited(fields: &Fields, name: &'static str, problems: &mut Vec<Problem>) -> String {
    let text = fields.get(name).to_owned();
    let count = text.chars().count();
    if count > MAX_TEXT_CHARS {
        problems.push(Problem::at(
            name,
            format!("This is {count} characters long; the most is {MAX_TEXT_CHARS}. Shorten it, and keep the rest in your own records."),
        ));
    }
    text
}

/// The behaviours ticked on a form, each with the date given for it.
fn behaviours(fields: &Fields, problems: &mut Vec<Problem>) -> Option<Behavior> {
    let ticked = fields.all("behavior");
    if ticked.is_empty() {
        return None;
    }
    let on = fields.get("observed_on");
    if !on.is_empty() && case_message::parse_date(on).is_none() {
        problems.push(Problem::at(
            "observed_on",
            "Give the date as a date, such as 2026-11-20, or leave it empty.",
        ));
    }
    Some(Behavior {
        observations: ticked
            .into_iter()
            .map(|code| ObservedBehavior {
                code,
                observed_on: on.to_owned(),
            })
            .collect(),
    })
}

/// The plan on a plan or reassessment form: each ticked step with its team, and the date.
fn plan(fields: &Fields, facts: &Facts, today: Date, problems: &mut Vec<Problem>) -> PlanDraft {
    let interventions: Vec<(InterventionCode, String)> = fields
        .all("intervention")
        .iter()
        .filter_map(|code| InterventionCode::parse(code))
        .map(|code| {
            let team = fields.get(&format!("team-{}", code.as_str()));
            let team = if team.is_empty() {
                facts.me.uri()
            } else {
                team.to_owned()
            };
            (code, team)
        })
        .collect();
    if interventions.is_empty() {
        problems.push(Problem::at(
            "intervention",
            "Tick at least one step of the plan.",
        ));
    }
    let next = match case_message::parse_date(fields.get("next")) {
        Some(date) if date >= today => date,
        Some(_) => {
            problems.push(Problem::at(
                "next",
                "The next reassessment cannot be in the past: choose today or a later date.",
            ));
            today
        }
        None => {
            problems.push(Problem::at(
                "next",
                "Choose the date of the next reassessment.",
            ));
            today
        }
    };
    PlanDraft {
        interventions,
        next_reassessment: next,
    }
}

/// The level of concern on a form, required.
fn level(fields: &Fields, problems: &mut Vec<Problem>) -> LevelOfConcern {
    let scheme = fields.get("scheme");
    let value = fields.get("level");
    if scheme.is_empty() {
        problems.push(Problem::at(
            "scheme",
            "Name the scheme the level comes from, such as CSTAG.",
        ));
    }
    if value.is_empty() {
        problems.push(Problem::at("level", "Give the level of concern."));
    }
    LevelOfConcern {
        scheme: scheme.to_owned(),
        value: value.to_owned(),
    }
}

/// The form's message id: the one it was drawn with, a UUIDv7.
fn message_id(fields: &Fields, problems: &mut Vec<Problem>) -> Uuid {
    match Uuid::parse_str(fields.get("key")) {
        Ok(id) if id.get_version_num() == 7 => id,
        _ => {
            problems.push(Problem::form(
                "This form is out of date. Reload the page and write it again.",
            ));
            Uuid::nil()
        }
    }
}

/// Reads a form into what it asks the node to do, or every problem found in it.
pub(super) fn outgoing(
    action: Action,
    fields: &Fields,
    facts: &Facts,
    today: Date,
) -> Result<Outgoing, Vec<Problem>> {
    let mut problems = Vec::new();
    let status = |status, reason_code, reason: String, outcome| {
        Outgoing::Status(StatusChange {
            referral_id: facts.id,
            status,
            reason_code,
            reason: Some(reason),
            outcome,
        })
    };
    let out = match action {
        Action::Decline | Action::Cancel => {
            let code = ReasonCode::parse(fields.get("reason_code"));
            if code.is_none() {
                problems.push(Problem::at("reason_code", "Choose why."));
            }
            let reason = limited(fields, "reason", &mut problems);
            let next = if action == Action::Decline {
                ReferralStatus::Declined
            } else {
                ReferralStatus::Cancelled
            };
            status(next, code, reason, None)
        }
        Action::Complete => {
            let level = level(fields, &mut problems);
            status(
                ReferralStatus::Completed,
                None,
                String::new(),
                Some(AssessmentOutcome {
                    level_of_concern: Some(level),
                    management_plan: fields.checked("management_plan"),
                    advice: String::new(),
                    recommendations: Vec::new(),
                }),
            )
        }
        Action::Advise => {
            let advice = limited(fields, "advice", &mut problems);
            if advice.is_empty() {
                problems.push(Problem::at("advice", "Write your advice."));
            }
            status(
                ReferralStatus::Completed,
                None,
                String::new(),
                Some(AssessmentOutcome {
                    level_of_concern: None,
                    management_plan: false,
                    advice,
                    recommendations: fields.lines("recommendations"),
                }),
            )
        }
        Action::Ask => {
            let question = limited(fields, "question", &mut problems);
            let wanted: BTreeSet<DataCategory> = fields
                .all("wanted")
                .iter()
                .filter_map(|c| DataCategory::parse(c))
                .collect();
            if question.is_empty() && wanted.is_empty() {
                problems.push(Problem::at(
                    "question",
                    "Write your question, tick the information you need, or both.",
                ));
            }
            Outgoing::Message(
                message_id(fields, &mut problems),
                Box::new(CaseDraft::Ask { question, wanted }),
            )
        }
        Action::Answer | Action::Inform => {
            let text = limited(fields, "text", &mut problems);
            let behavior = behaviours(fields, &mut problems);
            let id = message_id(fields, &mut problems);
            if action == Action::Answer {
                let content = ReferralContent {
                    narrative: (!text.is_empty()).then(|| Narrative { text: text.clone() }),
                    behavior,
                    ..Default::default()
                };
                if content.categories().is_empty() {
                    problems.push(Problem::at(
                        "text",
                        "Write your answer, tick a behaviour, or both.",
                    ));
                }
                let answers = Uuid::parse_str(fields.get("answers"))
                    .ok()
                    .or(facts.question);
                Outgoing::Message(id, Box::new(CaseDraft::Answer { answers, content }))
            } else {
                let kind = InformationKind::parse(fields.get("kind"));
                if kind.is_none() {
                    problems.push(Problem::at(
                        "kind",
                        "Choose what the new information is about.",
                    ));
                }
                let content = ReferralContent {
                    behavior,
                    ..Default::default()
                };
                if text.is_empty() && content.categories().is_empty() {
                    problems.push(Problem::at(
                        "text",
                        "Write what happened, tick a behaviour, or both.",
                    ));
                }
                Outgoing::Message(
                    id,
                    Box::new(CaseDraft::Inform {
                        kind: kind.unwrap_or(InformationKind::TripwireReport),
                        urgent: fields.checked("urgent"),
                        text,
                        content,
                    }),
                )
            }
        }
        Action::Plan => {
            let plan = plan(fields, facts, today, &mut problems);
            Outgoing::Message(
                message_id(fields, &mut problems),
                Box::new(CaseDraft::Plan(plan)),
            )
        }
        Action::Reassess => {
            let level = level(fields, &mut problems);
            let plan = plan(fields, facts, today, &mut problems);
            Outgoing::Message(
                message_id(fields, &mut problems),
                Box::new(CaseDraft::Reassess {
                    level_of_concern: Some(level),
                    plan,
                }),
            )
        }
        Action::Forward => {
            let recipient = fields.get("recipient");
            if recipient.is_empty() {
                problems.push(Problem::at("recipient", "Choose a team."));
            } else if !facts.forward_to.iter().any(|t| t == recipient) {
                problems.push(Problem::at(
                    "recipient",
                    "That team is not one this referral can be passed on to. Choose one from the list.",
                ));
            }
            let justification = limited(fields, "justification", &mut problems);
            Outgoing::Forward(Forward {
                referral_id: facts.id,
                recipient: recipient.to_owned(),
                purpose: None,
                legal_basis: None,
                justification: Some(justification).filter(|j| !j.is_empty()),
            })
        }
        Action::Consult => {
            let partners = fields.all("partner");
            if partners.is_empty() {
                problems.push(Problem::at("partner", "Tick at least one partner team."));
            } else if partners.iter().any(|p| !facts.partners.contains(p)) {
                problems.push(Problem::at(
                    "partner",
                    "Choose partner teams from the list.",
                ));
            }
            let question = limited(fields, "question", &mut problems);
            if question.is_empty() {
                problems.push(Problem::at("question", "Write your question."));
            }
            Outgoing::Consult { partners, question }
        }
        Action::Accept | Action::Assess | Action::Close => {
            return Err(vec![Problem::form(
                "This is done with its button on the case page.",
            )]);
        }
    };
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// A use case's refusal of a form, as problems next to its fields; `None` when it is not
/// about the form (the case is gone, the store failed), which is shown as a page.
pub(super) fn problems_of(action: Action, error: &AppError, facts: &Facts) -> Option<Vec<Problem>> {
    let now = |status| {
        format!(
            "This cannot be done now: the case reads “{}”. The page shows where it stands.",
            words::status(status, direction(facts.side))
        )
    };
    Some(match error {
        AppError::Invalid(message) => message
            .split("; ")
            .map(|problem| {
                let (field, _) = problem.split_once(':').unwrap_or(("", problem));
                field_problem(action, field.trim())
            })
            .collect(),
        AppError::Transition(TransitionError::NotFromHere { current, .. }) => {
            vec![Problem::form(now(*current))]
        }
        AppError::Transition(TransitionError::Missing(m)) if m.starts_with("reason_code") => {
            vec![Problem::at("reason_code", "Choose why.")]
        }
        AppError::Transition(TransitionError::Missing(_)) => {
            vec![Problem::at("level", "Give the level of concern.")]
        }
        AppError::Transition(TransitionError::WrongParty { .. })
        | AppError::Case(CaseRefusal::WrongParty { .. }) => vec![Problem::form(
            "Only the other team of this case can do this.",
        )],
        AppError::Case(CaseRefusal::NotCore { .. }) => vec![Problem::form(
            "Only a core team records plans and reassessments.",
        )],
        AppError::Case(CaseRefusal::Ended { state, .. })
        | AppError::Case(CaseRefusal::NotYet { state, .. }) => vec![Problem::form(now(*state))],
        AppError::Case(CaseRefusal::Consultation(_)) => vec![Problem::form(
            "A request for advice is answered with your advice; nothing else can be sent on it.",
        )],
        AppError::Case(CaseRefusal::UnknownRequest(_)) => vec![Problem::form(
            "That question was not asked on this case. Reload the page and answer the question shown.",
        )],
        AppError::Precondition(message) if message.contains("withholds every") => {
            vec![Problem::form(format!(
                "The law and your team's policy let none of this reach {}, so nothing would be sent. The preview shows why.",
                team_name(&facts.other)
            ))]
        }
        AppError::Precondition(message) if message.contains("no longer a peer") => {
            vec![Problem::form(format!(
                "{} is no longer a team this node works with, so nothing can be sent to it. Ask your node's admin.",
                team_title(&facts.other)
            ))]
        }
        AppError::Precondition(message) => vec![Problem::form(page::sentence(message))],
        AppError::IdempotencyKeyReused => vec![Problem::form(
            "This form is out of date. Reload the page and write it again.",
        )],
        _ => return None,
    })
}

/// A field the App named, as the form's field and a sentence.
fn field_problem(action: Action, field: &str) -> Problem {
    let text_field = match action {
        Action::Ask | Action::Consult => "question",
        Action::Advise => "advice",
        Action::Decline | Action::Cancel => "reason",
        Action::Forward => "justification",
        _ => "text",
    };
    if field.contains("observed_on") {
        return Problem::at(
            "observed_on",
            "Give the date as a date, such as 2026-11-20, or leave it empty.",
        );
    }
    if field.contains("responsible_team") {
        return Problem::at(
            "intervention",
            "A team chosen for a step is not one this node knows. Choose from the list.",
        );
    }
    match field {
        "question" | "text" | "content.narrative.text" | "content" => Problem::at(
            text_field,
            format!("Write it in at most {MAX_TEXT_CHARS} characters."),
        ),
        "interventions" | "plan" => {
            Problem::at("intervention", "Tick at least one step of the plan.")
        }
        "next_reassessment" => Problem::at(
            "next",
            "Choose the date of the next reassessment, today or later.",
        ),
        "level_of_concern" => Problem::at("level", "Give the level of concern and its scheme."),
        "referral.recipient" | "recipient" => Problem::at("recipient", "Choose a team."),
        "partners" => Problem::at("partner", "Tick at least one partner team."),
        "wanted" => Problem::at("wanted", "Tick fewer kinds of information."),
        "justification" => Problem::at(
            "justification",
            "Say in a sentence or two why the team needs it now.",
        ),
        _ => Problem::form(
            "Something in the form could not be used. Check it and try again; if it keeps happening, tell your node's admin.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::facts;
    use super::*;

    #[test]
    fn a_form_s_problems_name_its_fields_in_words() {
        let f = facts(Side::Recipient, ReferralStatus::Received);
        let today = time::macros::date!(2026 - 12 - 03);
        let fields = Fields::parse(b"reason=x");
        let Err(problems) = outgoing(Action::Decline, &fields, &f, today) else {
            panic!("a decline without a reason was taken");
        };
        assert_eq!(problems, vec![Problem::at("reason_code", "Choose why.")]);
        let long = format!(
            "key={}&question={}",
            Uuid::now_v7(),
            "a".repeat(MAX_TEXT_CHARS + 1)
        );
        let Err(problems) = outgoing(Action::Ask, &Fields::parse(long.as_bytes()), &f, today)
        else {
            panic!("an over-long question was taken");
        };
        assert_eq!(problems[0].field, Some("question"));
        assert!(problems[0].text.contains("4000"), "{problems:?}");
        let Err(problems) = outgoing(
            Action::Plan,
            &Fields::parse(format!("key={}&next=2026-12-01", Uuid::now_v7()).as_bytes()),
            &f,
            today,
        ) else {
            panic!("a plan without steps, in the past, was taken");
        };
        let named: Vec<_> = problems.iter().map(|p| p.field).collect();
        assert_eq!(named, [Some("intervention"), Some("next")]);
        // The App's own field paths become the form's fields, never shown as paths.
        let p = field_problem(
            Action::Inform,
            "content.behavior.observations[0].observed_on",
        );
        assert_eq!(p.field, Some("observed_on"));
        assert!(!p.text.contains("content."));
    }
}
