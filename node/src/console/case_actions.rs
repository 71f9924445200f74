//! What a user can do on a case now, and doing it: exactly the actions the lifecycle, the
//! case's state and the user's role allow ([`offered`]), each as a form; every form that
//! carries words to the other team shows, as the user types, what will reach that team and
//! why, then a "Check and send" step with that preview once more, and sends only on "Confirm
//! and send". A refused form comes back with the text kept and each problem, in words, next
//! to its field. The server asks [`offered`] again for every request, whatever the browser
//! sends, and the use case behind it checks once more.

use std::collections::BTreeSet;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::Console;
use super::case;
use super::disclosure;
use super::page::{self, Fields};
use super::referral::{team_name, team_title};
use super::session::Staff;
use super::words;
use crate::app::{AppError, CaseDraft, CaseRecord, Forward, StatusChange};
use crate::case_message::{
    self, CaseMessageKind, CaseRefusal, InformationKind, InterventionCode, MAX_TEXT_CHARS,
    PlanDraft,
};
use crate::category::DataCategory;
use crate::lifecycle::{self, Side, TransitionError};
use crate::referral::{
    AssessmentOutcome, Behavior, LevelOfConcern, Narrative, ObservedBehavior, ReasonCode,
    ReferralContent, ReferralStatus, StatusUpdate,
};
use crate::staff::Capability;
use crate::store::Direction;
use crate::trust::Role;

/// Something a user can do on a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The recipient takes the case on.
    Accept,
    /// The recipient turns it down, with a coded reason.
    Decline,
    /// The recipient asks the sender a question.
    Ask,
    /// The recipient starts its assessment.
    Assess,
    /// The recipient finishes its assessment, with the outcome.
    Complete,
    /// A partner answers a consultation with its advice.
    Advise,
    /// The core team records its plan to manage the risk.
    Plan,
    /// The core team reassesses the risk.
    Reassess,
    /// Either team shares something new.
    Inform,
    /// The sender answers a question.
    Answer,
    /// The recipient closes the case.
    Close,
    /// The sender withdraws the referral, with a coded reason.
    Cancel,
    /// The recipient passes the referral on to another team.
    Forward,
    /// The core team asks partners for advice, de-identified.
    Consult,
}

impl Action {
    /// Every action, in the order the page offers them.
    const ALL: [Self; 14] = [
        Self::Answer,
        Self::Accept,
        Self::Ask,
        Self::Assess,
        Self::Inform,
        Self::Plan,
        Self::Reassess,
        Self::Complete,
        Self::Advise,
        Self::Forward,
        Self::Consult,
        Self::Close,
        Self::Decline,
        Self::Cancel,
    ];

    /// Its name in addresses and element ids: `/referrals/{id}/ask`, `#ask-form`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Decline => "decline",
            Self::Ask => "ask",
            Self::Assess => "assess",
            Self::Complete => "complete",
            Self::Advise => "advise",
            Self::Plan => "plan",
            Self::Reassess => "reassess",
            Self::Inform => "inform",
            Self::Answer => "answer",
            Self::Close => "close",
            Self::Cancel => "cancel",
            Self::Forward => "forward",
            Self::Consult => "consult",
        }
    }

    fn of_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.slug() == slug)
    }

    /// The status a one-click action sets; `None` for an action with a form.
    fn one_click(self) -> Option<ReferralStatus> {
        match self {
            Self::Accept => Some(ReferralStatus::Accepted),
            Self::Assess => Some(ReferralStatus::InAssessment),
            Self::Close => Some(ReferralStatus::Closed),
            _ => None,
        }
    }

    /// Whether only a chair may do it; a case worker writes to the other team (asks,
    /// answers, shares new information) but decides nothing.
    fn decides(self) -> bool {
        !matches!(self, Self::Ask | Self::Answer | Self::Inform)
    }

    /// The form's heading, and what the page calls doing it.
    fn heading(self) -> &'static str {
        match self {
            Self::Accept => "Accept the referral",
            Self::Decline => "Decline the referral",
            Self::Ask => "Ask them for information",
            Self::Assess => "Start the assessment",
            Self::Complete => "Finish the assessment",
            Self::Advise => "Answer with your advice",
            Self::Plan => "Record the plan to manage the risk",
            Self::Reassess => "Reassess the risk",
            Self::Inform => "Share new information",
            Self::Answer => "Answer their question",
            Self::Close => "Close the case",
            Self::Cancel => "Withdraw the referral",
            Self::Forward => "Pass the referral on to another team",
            Self::Consult => "Ask partner teams for advice",
        }
    }

    /// The word the case page turns into its confirmation, after `?done=`.
    fn done(self) -> &'static str {
        match self {
            Self::Accept => "accepted",
            Self::Decline => "declined",
            Self::Ask => "asked",
            Self::Assess => "assessing",
            Self::Complete => "completed",
            Self::Advise => "advised",
            Self::Plan => "planned",
            Self::Reassess => "reassessed",
            Self::Inform => "informed",
            Self::Answer => "answered",
            Self::Close => "closed",
            Self::Cancel => "cancelled",
            Self::Forward => "forwarded",
            Self::Consult => "consulted",
        }
    }
}

/// The confirmation a `?done=` word stands for, naming the other team; `None` for a word no
/// action gives.
pub fn done_notice(done: &str, other: &str) -> Option<String> {
    if done == "referral-sent" {
        return Some(format!(
            "Your referral was sent to {other}. Its status, and everything your teams send each other about it, will show here."
        ));
    }
    let action = Action::ALL.into_iter().find(|a| a.done() == done)?;
    Some(match action {
        Action::Accept => format!("You accepted the referral. {other} is told."),
        Action::Decline => format!("You declined the referral. {other} is told why."),
        Action::Ask => {
            format!("Your question was sent to {other}. You will see their answer here.")
        }
        Action::Assess => format!("The assessment has started. {other} is told."),
        Action::Complete => format!("The assessment is finished. {other} is told the outcome."),
        Action::Advise => format!("Your advice was sent to {other}."),
        Action::Plan => format!("The plan was saved and sent to {other}."),
        Action::Reassess => format!("The reassessment was saved and sent to {other}."),
        Action::Inform => format!("The new information was sent to {other}."),
        Action::Answer => format!("Your answer was sent to {other}."),
        Action::Close => format!("The case is closed. {other} is told."),
        Action::Cancel => format!("You withdrew the referral. {other} is told why."),
        Action::Forward => {
            format!("The referral was passed on. {other} is told where it went.")
        }
        Action::Consult => {
            "Your question was sent to the partner teams. Their answers appear under Consultations."
                .to_owned()
        }
    })
}

/// What deciding which actions are open needs to know about a case, its team and the user.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The referral.
    pub id: Uuid,
    /// This team's side of it.
    pub side: Side,
    /// Where it stands.
    pub status: ReferralStatus,
    /// Whether it is a consultation's copy, which a partner answers with advice.
    pub consultation: bool,
    /// Whether this node's team is a core team, which manages cases and consults partners.
    pub core: bool,
    /// Whether the user may decide (a chair).
    pub decides: bool,
    /// Whether the user may write to the other team (a case worker or a chair).
    pub writes: bool,
    /// The oldest question the other team asked this one that has no answer yet.
    pub question: Option<Uuid>,
    /// Whether a plan to manage the risk was recorded.
    pub planned: bool,
    /// The teams the referral could be passed on to, as identity URIs.
    pub forward_to: Vec<String>,
    /// The partner teams that could be consulted, as identity URIs.
    pub partners: Vec<String>,
    /// This team's identity, for the lifecycle's questions.
    pub me: tatmx_certs::TeamIdentity,
    /// The other team, as an identity URI.
    pub other: String,
}

impl Facts {
    /// The facts of a case as `staff` reads it at this node.
    pub fn of(console: &Console, staff: &Staff, record: &CaseRecord) -> Self {
        let (stored, _) = &record.held;
        let referral = &stored.referral;
        let inbound = stored.direction == Direction::Inbound;
        let state = console.trust().state();
        let answered: BTreeSet<Uuid> = record
            .messages
            .iter()
            .filter(|m| m.direction == Direction::Outbound)
            .filter_map(|m| match &m.message.body {
                case_message::CaseBody::Supplement { answers, .. } => *answers,
                _ => None,
            })
            .collect();
        let question = record
            .messages
            .iter()
            .filter(|m| {
                m.direction == Direction::Inbound
                    && m.message.kind() == CaseMessageKind::InformationRequest
                    && !answered.contains(&m.message.id)
            })
            .map(|m| m.message.id)
            .next();
        let peers = state.peers();
        Self {
            id: referral.id,
            side: if inbound {
                Side::Recipient
            } else {
                Side::Sender
            },
            status: stored.status,
            consultation: referral.consultation.is_some(),
            core: state.local.role == Role::Core,
            decides: staff.role.may(Capability::DecideReferrals),
            writes: staff.role.may(Capability::CreateReferrals),
            question,
            planned: record.messages.iter().any(|m| {
                matches!(
                    m.message.kind(),
                    CaseMessageKind::ManagementPlan | CaseMessageKind::Reassessment
                )
            }),
            forward_to: peers
                .iter()
                .filter(|p| !p.blocked && p.peer.identity != referral.sender)
                .map(|p| p.peer.identity.uri())
                .collect(),
            partners: peers
                .iter()
                .filter(|p| !p.blocked && p.peer.role == Role::Partner)
                .map(|p| p.peer.identity.uri())
                .collect(),
            me: state.local.identity.clone(),
            other: if inbound {
                referral.sender.uri()
            } else {
                referral.recipient.uri()
            },
        }
    }

    /// Whether this side may move the case to `next` now, by the lifecycle's own rule, asked
    /// with a reason and an outcome given, so a form can then ask for them.
    fn may_move(&self, next: ReferralStatus) -> bool {
        let probe = StatusUpdate {
            id: Uuid::nil(),
            referral_id: self.id,
            author: self.me.clone(),
            status: next,
            // The lifecycle's rules do not depend on the time.
            at: OffsetDateTime::UNIX_EPOCH,
            reason: Some("probe".into()),
            reason_code: Some(ReasonCode::Other),
            outcome: Some(AssessmentOutcome {
                level_of_concern: None,
                management_plan: false,
                advice: String::new(),
                recommendations: Vec::new(),
            }),
            withheld: Vec::new(),
            forwarded_to: None,
        };
        lifecycle::check(self.status, &probe, self.side, self.consultation).is_ok()
    }

    /// Whether this side may send a case message of `kind` now.
    fn may_send(&self, kind: CaseMessageKind) -> bool {
        case_message::check(kind, self.side, self.status, self.consultation, self.id).is_ok()
    }
}

/// Exactly the actions open to this user on this case now, in the order the page shows them.
pub fn offered(f: &Facts) -> Vec<Action> {
    use ReferralStatus as S;
    let recipient = f.side == Side::Recipient;
    let open = !matches!(f.status, S::Declined | S::Cancelled | S::Closed);
    Action::ALL
        .into_iter()
        .filter(|a| if a.decides() { f.decides } else { f.writes })
        .filter(|a| match a {
            Action::Accept => f.may_move(S::Accepted),
            Action::Decline => f.may_move(S::Declined),
            Action::Assess => !f.consultation && f.may_move(S::InAssessment),
            Action::Complete => !f.consultation && f.may_move(S::Completed),
            Action::Advise => f.consultation && f.may_move(S::Completed),
            Action::Close => f.may_move(S::Closed),
            Action::Cancel => f.may_move(S::Cancelled),
            Action::Ask => f.may_send(CaseMessageKind::InformationRequest),
            Action::Answer => f.question.is_some() && f.may_send(CaseMessageKind::Supplement),
            Action::Inform => f.may_send(CaseMessageKind::NewInformation),
            Action::Plan => f.core && !f.planned && f.may_send(CaseMessageKind::ManagementPlan),
            Action::Reassess => f.core && f.planned && f.may_send(CaseMessageKind::Reassessment),
            Action::Forward => {
                recipient
                    && open
                    && !f.consultation
                    && !f.forward_to.is_empty()
                    && f.may_move(S::Forwarded)
            }
            Action::Consult => {
                recipient && open && !f.consultation && f.core && !f.partners.is_empty()
            }
        })
        .collect()
}

/// A problem with a form, in words, and the field it is about (`None`: the form as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The form field's name.
    pub field: Option<&'static str>,
    /// What is wrong and what to do, as a sentence.
    pub text: String,
}

impl Problem {
    fn at(field: &'static str, text: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            text: text.into(),
        }
    }

    fn form(text: impl Into<String>) -> Self {
        Self {
            field: None,
            text: text.into(),
        }
    }
}

/// A form being written: drawn again with its fields and problems after "Change it" or a
/// refusal.
pub struct Editing<'a> {
    /// Which form.
    pub action: Action,
    /// What the user had written.
    pub fields: &'a Fields,
    /// What was wrong with it.
    pub problems: &'a [Problem],
}

/// What a form asks the node to do, once read.
enum Outgoing {
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
fn outgoing(
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
fn problems_of(action: Action, error: &AppError, facts: &Facts) -> Option<Vec<Problem>> {
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

fn direction(side: Side) -> Direction {
    match side {
        Side::Recipient => Direction::Inbound,
        Side::Sender => Direction::Outbound,
    }
}

/// The "what will reach them, and why" preview of what a form would send.
async fn preview_of(
    console: &Console,
    staff: &Staff,
    facts: &Facts,
    outgoing: &Outgoing,
) -> Result<Markup, AppError> {
    let app = console.app();
    let other = team_name(&facts.other);
    let other_id = page::team(&facts.other).to_owned();
    Ok(match outgoing {
        Outgoing::Status(change) => {
            let update = app.preview_status_change(change.clone()).await?;
            status_preview(&update, &other)
        }
        Outgoing::Message(_, draft) => {
            let disclosed = app
                .send_case_message(facts.id, (**draft).clone(), true, &page::actor(staff))
                .await?;
            html! {
                p { (team_title(&facts.other)) " will read that your team " (words::case_message(disclosed.outgoing.kind())) "." }
                @if let CaseDraft::Ask { wanted, .. } = &**draft {
                    @if !wanted.is_empty() { p { "The kinds of information you ask for always reach them." } }
                }
                @if let CaseDraft::Inform { urgent, .. } = &**draft {
                    p { "What it is about" @if *urgent { ", and that it is urgent," } " always reaches them." }
                }
                (disclosure::decisions(None, &disclosed.decisions, &other_id))
            }
        }
        Outgoing::Forward(forward) => {
            let disclosed = app
                .forward(forward.clone(), true, &page::actor(staff))
                .await?;
            let to = page::team(&forward.recipient).to_owned();
            html! {
                p { (other) " is told the referral was passed on, and to which team." }
                (disclosure::decisions(None, &disclosed.decisions, &to))
            }
        }
        Outgoing::Consult { partners, .. } => {
            let previews = app.preview_consultation(facts.id, partners).await?;
            html! {
                p { "Each partner receives the case without the person's identity (a case handle stands in for it), and your question." }
                @for (partner, disclosed) in &previews {
                    @let id = page::team(partner).to_owned();
                    p.partner-name { strong { (words::team(&id)) } }
                    (disclosure::decisions(None, &disclosed.decisions, &id))
                }
            }
        }
    })
}

/// What a status change would tell the other team: the coded reason always, the words and the
/// outcome as far as the law and the policy allow.
fn status_preview(update: &StatusUpdate, other: &str) -> Markup {
    let kept = |category| update.withheld.iter().find(|w| w.category == category);
    html! {
        ul.preview-lines {
            li { (other) " is told: " (words::status_change(update.status)) "." }
            @if let Some(code) = update.reason_code {
                li { "Why, as they will read it: " strong { (words::reason(code)) } ". This always reaches them." }
            }
            @match (kept(DataCategory::Narrative), &update.reason) {
                (Some(w), _) => { (disclosure::kept_back("Your own words are kept back: ", w)) }
                (None, Some(_)) => { li data-category="NARRATIVE" { "Your own words reach them." } }
                (None, None) => {}
            }
            @match (kept(DataCategory::Assessment), &update.outcome) {
                (Some(w), _) => { (disclosure::kept_back("The outcome is kept back: ", w)) }
                (None, Some(_)) => { li data-category="ASSESSMENT" { "The outcome reaches them." } }
                (None, None) => {}
            }
        }
    }
}

/// Does what the form asks; returns the `?done=` word.
async fn send(
    console: &Console,
    staff: &Staff,
    facts: &Facts,
    action: Action,
    outgoing: Outgoing,
) -> Result<(), AppError> {
    let app = console.app();
    let actor = page::actor(staff);
    match outgoing {
        Outgoing::Status(change) => {
            app.change_status(change, &actor).await?;
        }
        Outgoing::Message(id, draft) => {
            app.send_case_message_once(facts.id, id, *draft, &actor)
                .await?;
            // A question before the case is taken on also says, in the case's status, that
            // the team waits for the answer. The question is sent whatever happens to this.
            if action == Action::Ask && facts.may_move(ReferralStatus::InfoRequested) {
                let waiting = StatusChange {
                    referral_id: facts.id,
                    status: ReferralStatus::InfoRequested,
                    reason_code: None,
                    reason: None,
                    outcome: None,
                };
                if let Err(e) = app.change_status(waiting, &actor).await {
                    tracing::warn!(referral_id = %facts.id, error = %e, "the question was sent, but the status did not change");
                }
            }
        }
        Outgoing::Forward(forward) => {
            app.forward(forward, false, &actor).await?;
        }
        Outgoing::Consult { partners, question } => {
            app.consult_on(facts.id, partners, question, &actor).await?;
        }
    }
    Ok(())
}

/// Whether the case's timeline shows this referral already passed on to `recipient`: a
/// forward sent again (the back button, a retried request) is not sent twice.
fn already_forwarded(record: &CaseRecord, recipient: &str) -> bool {
    record.held.1.iter().any(|e| {
        e.status == ReferralStatus::Forwarded && e.forwarded_to.as_deref() == Some(recipient)
    })
}

/// Loads the case for an action request, and refuses what this user may not do on it now.
async fn load(
    console: &Console,
    staff: &Staff,
    id: &str,
    action: Action,
) -> Result<(CaseRecord, Facts), Response> {
    if !staff.role.may(if action.decides() {
        Capability::DecideReferrals
    } else {
        Capability::CreateReferrals
    }) {
        return Err(page::forbidden(
            console,
            staff,
            &action.heading().to_lowercase(),
        ));
    }
    let read = match page::id(id, "referral_id") {
        Ok(id) => console.app().read_case(id, &page::actor(staff)).await,
        Err(e) => Err(e),
    };
    let record = read.map_err(|e| page::refused(console, staff, &e))?;
    let facts = Facts::of(console, staff, &record);
    if !offered(&facts).contains(&action) {
        let status = words::status(facts.status, direction(facts.side));
        return Err(page::error_page(
            console,
            staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!(
                "“{}” is not something you can do on this case now: it reads “{status}”. Nothing was sent. Go back to the case to see what you can do.",
                action.heading()
            ),
        ));
    }
    Ok((record, facts))
}

/// `POST /referrals/{id}/status`: the one-click actions (accept, start the assessment,
/// close); a status that needs words (decline, withdraw, finish) goes to its own form's
/// check step, so nothing with words is sent without its preview.
pub async fn change_status(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::DecideReferrals) {
        return page::forbidden(&console, &staff, "change a referral's status");
    }
    let fields = Fields::parse(&body);
    let action = match ReferralStatus::parse(fields.get("status")) {
        Some(ReferralStatus::Accepted) => Action::Accept,
        Some(ReferralStatus::InAssessment) => Action::Assess,
        Some(ReferralStatus::Closed) => Action::Close,
        Some(ReferralStatus::Declined) => Action::Decline,
        Some(ReferralStatus::Cancelled) => Action::Cancel,
        Some(ReferralStatus::Completed) => Action::Complete,
        _ => {
            return page::error_page(
                &console,
                &staff,
                StatusCode::UNPROCESSABLE_ENTITY,
                "That is not something a case can become from this page. Go back to the case and use one of its buttons.",
            );
        }
    };
    let Some(next) = action.one_click() else {
        return step(&console, &staff, &id, action, &fields, Step::Check).await;
    };
    let key = fields.get("key").to_owned();
    let turn = console.once().turn(&format!("{id}/{key}")).await;
    if let Some(earlier) = turn.earlier().filter(|_| !key.is_empty()) {
        return Redirect::to(earlier).into_response();
    }
    let (record, facts) = match load(&console, &staff, &id, action).await {
        Ok(loaded) => loaded,
        Err(refused) => {
            // The same click again, after the first one did it: answered as the first was.
            if let Ok(referral_id) = page::id(&id, "referral_id")
                && let Ok((stored, _)) = console.app().read(referral_id, &page::actor(&staff)).await
                && stored.status == next
                && fields.get("from") != next.as_str()
                && !fields.get("from").is_empty()
            {
                return Redirect::to(&format!("/referrals/{id}?done={}", action.done()))
                    .into_response();
            }
            return refused;
        }
    };
    let change = StatusChange {
        referral_id: facts.id,
        status: next,
        reason_code: None,
        reason: None,
        outcome: None,
    };
    match console
        .app()
        .change_status(change, &page::actor(&staff))
        .await
    {
        Ok(_) => {
            let location = format!(
                "/referrals/{}?done={}",
                record.held.0.referral.id,
                action.done()
            );
            turn.done(&location);
            Redirect::to(&location).into_response()
        }
        Err(e) => page::refused(&console, &staff, &e),
    }
}

/// Which step of a form a request is: the live preview, the check, going back to change it,
/// or the confirmed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Check,
    Change,
    Send,
}

/// `POST /referrals/{id}/{action}`: a form's check, change or send step.
pub async fn act(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path((id, slug)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(action) = Action::of_slug(&slug).filter(|a| a.one_click().is_none()) else {
        return page::not_found().await;
    };
    let fields = Fields::parse(&body);
    let step_of = match fields.get("step") {
        "send" => Step::Send,
        "change" => Step::Change,
        // Anything else only checks: nothing leaves without its confirmation.
        _ => Step::Check,
    };
    step(&console, &staff, &id, action, &fields, step_of).await
}

async fn step(
    console: &Console,
    staff: &Staff,
    id: &str,
    action: Action,
    fields: &Fields,
    step: Step,
) -> Response {
    let key = format!("{id}/{}", fields.get("key"));
    // Held from before the case is read until the answer is known, so a second identical
    // request waits for the first and answers as it did.
    let turn = if step == Step::Send {
        let turn = console.once().turn(&key).await;
        if let Some(earlier) = turn.earlier().filter(|_| !fields.get("key").is_empty()) {
            return Redirect::to(earlier).into_response();
        }
        Some(turn)
    } else {
        None
    };
    let (record, facts) = match load(console, staff, id, action).await {
        Ok(loaded) => loaded,
        Err(refused) => return refused,
    };
    let today = console.app().now().date();
    let again = |problems: Vec<Problem>, status: StatusCode| {
        let editing = Editing {
            action,
            fields,
            problems: &problems,
        };
        (
            status,
            case::render(console, staff, &record, None, Some(&editing)),
        )
            .into_response()
    };
    if step == Step::Change {
        return again(Vec::new(), StatusCode::OK);
    }
    let outgoing = match outgoing(action, fields, &facts, today) {
        Ok(outgoing) => outgoing,
        Err(problems) => return again(problems, StatusCode::UNPROCESSABLE_ENTITY),
    };
    if step == Step::Check {
        return match preview_of(console, staff, &facts, &outgoing).await {
            Ok(preview) => {
                confirmation(console, staff, &facts, action, fields, preview).into_response()
            }
            Err(e) => match problems_of(action, &e, &facts) {
                Some(problems) => again(problems, StatusCode::UNPROCESSABLE_ENTITY),
                None => page::refused(console, staff, &e),
            },
        };
    }
    let location = format!("/referrals/{}?done={}", facts.id, action.done());
    if let Outgoing::Forward(f) = &outgoing
        && already_forwarded(&record, &f.recipient)
    {
        return Redirect::to(&location).into_response();
    }
    match send(console, staff, &facts, action, outgoing).await {
        Ok(()) => {
            if let Some(turn) = turn {
                turn.done(&location);
            }
            tracing::info!(referral_id = %facts.id, action = action.slug(), "console action done");
            Redirect::to(&location).into_response()
        }
        Err(e) => match problems_of(action, &e, &facts) {
            Some(problems) => again(problems, StatusCode::UNPROCESSABLE_ENTITY),
            None => page::refused(console, staff, &e),
        },
    }
}

/// `POST /referrals/{id}/preview/{action}`: the live preview beside a form, as a fragment for
/// htmx. Stores and sends nothing.
pub async fn preview(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path((id, slug)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(action) = Action::of_slug(&slug).filter(|a| a.one_click().is_none()) else {
        return page::not_found().await;
    };
    // The case is read as for the page that holds the form; that read is on the audit log.
    let (_, facts) = match load(&console, &staff, &id, action).await {
        Ok(loaded) => loaded,
        Err(refused) => return refused,
    };
    let fields = Fields::parse(&body);
    let today = console.app().now().date();
    let not_ready = |problems: &[Problem]| {
        html! {
            div.notice.warn role="status" {
                p { "Not ready to send yet:" }
                ul { @for p in problems { li { (p.text) } } }
            }
        }
        .into_response()
    };
    let outgoing = match outgoing(action, &fields, &facts, today) {
        Ok(outgoing) => outgoing,
        Err(problems) => return not_ready(&problems),
    };
    match preview_of(&console, &staff, &facts, &outgoing).await {
        Ok(markup) => markup.into_response(),
        Err(e) => match problems_of(action, &e, &facts) {
            Some(problems) => not_ready(&problems),
            None => page::refused(&console, &staff, &e),
        },
    }
}

/// The "Check and send" page: what will reach the other team and why, what the user wrote,
/// and the buttons to send it or to change it.
fn confirmation(
    console: &Console,
    staff: &Staff,
    facts: &Facts,
    action: Action,
    fields: &Fields,
    preview: Markup,
) -> Markup {
    let other = team_name(&facts.other);
    let path = format!("/referrals/{}/{}", facts.id, action.slug());
    let body = html! {
        p { "Nothing has been sent yet. Check what will reach " strong { (other) } ", then confirm." }
        section.card aria-labelledby="confirm-preview-heading" {
            h2 id="confirm-preview-heading" { "What will reach them, and why" }
            div id="confirm-preview" { (preview) }
        }
        section.card aria-labelledby="confirm-text-heading" {
            h2 id="confirm-text-heading" { "What you wrote" }
            (written(action, fields))
        }
        form method="post" action=(path) id="confirm-form" {
            (page::csrf_field(staff))
            @for (name, value) in fields.pairs() {
                @if name != "csrf" && name != "step" {
                    input type="hidden" name=(name) value=(value);
                }
            }
            p.buttons {
                button type="submit" name="step" value="send" id="confirm-send" { "Confirm and send" }
                " "
                button.secondary type="submit" name="step" value="change" id="change-it" { "Change it" }
            }
        }
    };
    page::layout(
        console,
        staff,
        &format!("Check and send: {}", action.heading().to_lowercase()),
        "/cases",
        body,
    )
}

/// What the user wrote and chose on a form, in words, for the check step.
fn written(action: Action, fields: &Fields) -> Markup {
    let text = |name: &str| fields.get(name).to_owned();
    html! {
        dl.facts id="confirm-written" {
            @if let Some(code) = ReasonCode::parse(fields.get("reason_code")) {
                dt { "Why" } dd { (words::reason(code)) }
            }
            @if let Some(kind) = InformationKind::parse(fields.get("kind")) {
                dt { "About" } dd { (words::information(kind)) }
                dt { "Urgent" } dd { @if fields.checked("urgent") { "Yes: it comes first in their list" } @else { "No" } }
            }
            @if matches!(action, Action::Complete | Action::Reassess) {
                dt { "Level of concern" } dd { (text("scheme")) ": " (text("level")) }
            }
            @if action == Action::Complete {
                dt { "A plan is in place" } dd { @if fields.checked("management_plan") { "Yes" } @else { "No" } }
            }
            @if action == Action::Forward {
                dt { "To" } dd { (words::team(page::team(fields.get("recipient")))) }
            }
            @let partners = fields.all("partner");
            @if !partners.is_empty() {
                dt { "Partners" } dd { (partners.iter().map(|p| words::team(page::team(p))).collect::<Vec<_>>().join(", ")) }
            }
            @let wanted: Vec<&str> = fields.all("wanted").iter().filter_map(|c| DataCategory::parse(c)).map(words::category).collect();
            @if !wanted.is_empty() {
                dt { "Information you ask for" } dd { ul { @for w in &wanted { li { (w) } } } }
            }
            @let behaviours: Vec<String> = fields.all("behavior");
            @if !behaviours.is_empty() {
                dt { "Behaviours" }
                dd { ul { @for b in &behaviours { li { (words::behavior(b).map_or(b.as_str(), |w| w.name)) } } } }
                @if !fields.get("observed_on").is_empty() { dt { "Seen on" } dd { (text("observed_on")) } }
            }
            @let steps: Vec<InterventionCode> = fields.all("intervention").iter().filter_map(|c| InterventionCode::parse(c)).collect();
            @if !steps.is_empty() {
                dt { "Steps of the plan" }
                dd { ul { @for s in &steps {
                    @let team = fields.get(&format!("team-{}", s.as_str()));
                    li { (words::intervention(*s)) @if !team.is_empty() { ", by " (words::team(page::team(team))) } }
                } } }
                dt { "Next reassessment" } dd { (text("next")) }
            }
            @for name in ["question", "text", "reason", "advice", "justification"] {
                @if !fields.get(name).is_empty() {
                    dt { "Your words" } dd.text { (text(name)) }
                }
            }
            @let recommendations = fields.lines("recommendations");
            @if !recommendations.is_empty() {
                dt { "Recommendations" } dd { (recommendations.join(", ")) }
            }
        }
    }
}

/// The forms of every action offered, with the one being written filled in.
pub fn forms(
    console: &Console,
    staff: &Staff,
    record: &CaseRecord,
    facts: &Facts,
    editing: Option<&Editing<'_>>,
) -> Markup {
    let offered = offered(facts);
    if offered.is_empty() {
        return html! {
            p id="no-actions" {
                @if !facts.decides && matches!(facts.status, ReferralStatus::Sent | ReferralStatus::Received) && facts.side == Side::Recipient {
                    "Your role (" (words::role(staff.role)) ") reads cases and writes to the other team; a chair accepts, declines, completes, forwards and consults."
                } @else {
                    "There is nothing to do on this case now."
                }
            }
        };
    }
    let empty = Fields::default();
    let form_of = |action: Action| -> (&Fields, &[Problem]) {
        match editing {
            Some(e) if e.action == action => (e.fields, e.problems),
            _ => (&empty, &[]),
        }
    };
    let one_click: Vec<Action> = offered
        .iter()
        .copied()
        .filter(|a| a.one_click().is_some())
        .collect();
    html! {
        @if !one_click.is_empty() {
            div.actions id="actions" {
                @for action in &one_click {
                    @if let Some(next) = action.one_click() {
                        form method="post" action=(format!("/referrals/{}/status", facts.id)) {
                            (page::csrf_field(staff))
                            input type="hidden" name="status" value=(next.as_str());
                            input type="hidden" name="from" value=(facts.status.as_str());
                            input type="hidden" name="key" value=(Uuid::now_v7().to_string());
                            @let id = match action { Action::Accept => "action-accept", Action::Assess => "action-assess", _ => "action-close" };
                            button type="submit" id=(id) { (action.heading()) }
                        }
                    }
                }
            }
        }
        @if !facts.decides && facts.side == Side::Recipient && matches!(facts.status, ReferralStatus::Sent | ReferralStatus::Received) {
            p.hint id="no-actions" { "Your role (" (words::role(staff.role)) ") writes to the other team; a chair accepts, declines, completes, forwards and consults." }
        }
        @for action in offered.iter().copied().filter(|a| a.one_click().is_none()) {
            @let (fields, problems) = form_of(action);
            (form(console, staff, record, facts, action, fields, problems, editing.is_some_and(|e| e.action == action)))
        }
    }
}

/// One action's form: its fields, the live preview before the button (so it comes first on
/// a narrow screen too), and the "Check and send" button.
#[allow(clippy::too_many_arguments)]
fn form(
    console: &Console,
    staff: &Staff,
    record: &CaseRecord,
    facts: &Facts,
    action: Action,
    fields: &Fields,
    problems: &[Problem],
    open: bool,
) -> Markup {
    let slug = action.slug();
    let key = match fields.get("key") {
        "" => Uuid::now_v7().to_string(),
        key => key.to_owned(),
    };
    let general: Vec<&Problem> = problems.iter().filter(|p| p.field.is_none()).collect();
    let f = FormCtx {
        slug,
        fields,
        problems,
    };
    let other = team_name(&facts.other);
    let state = console.trust().state();
    html! {
        details.card.action-form id=(format!("{slug}-form")) open[open] {
            summary { h3 { (action.heading()) } }
            form method="post" action=(format!("/referrals/{}/{slug}", facts.id))
                hx-post=(format!("/referrals/{}/preview/{slug}", facts.id))
                hx-trigger="change, input delay:600ms"
                hx-target=(format!("#{slug}-preview")) hx-swap="innerHTML" {
                (page::csrf_field(staff))
                input type="hidden" name="key" value=(key);
                @if !general.is_empty() {
                    div.notice.error role="alert" id=(format!("{slug}-problem")) {
                        @for p in &general { p { (p.text) } }
                    }
                }
                @match action {
                    Action::Decline | Action::Cancel => {
                        (f.select("reason_code", "Why (they always see this)", "Choose a reason",
                            &ReasonCode::all().map(|c| (c.as_str().to_owned(), words::reason(c))).collect::<Vec<_>>()))
                        (f.area("reason", "In your own words (optional)", Some("They see these words only as far as the law and your policy allow; the preview says whether they do.")))
                    }
                    Action::Complete => {
                        (f.text("scheme", "Scheme the level comes from", "CSTAG"))
                        (f.text("level", "Level of concern", ""))
                        (f.check("management_plan", "A plan to manage the risk is in place"))
                    }
                    Action::Advise => {
                        (f.area("advice", "Your advice", None))
                        (f.area("recommendations", "Recommendations (optional)", Some("One per line.")))
                    }
                    Action::Ask => {
                        (f.area("question", "Your question", None))
                        (f.choices("wanted", "The information you need (optional)",
                            &DataCategory::ALL.iter().filter(|c| **c != DataCategory::Assessment)
                                .map(|c| (c.as_str().to_owned(), words::category(*c).to_owned(), None)).collect::<Vec<_>>(), false))
                    }
                    Action::Answer => {
                        @if let Some(question) = facts.question.and_then(|q| record.messages.iter().find(|m| m.message.id == q)) {
                            input type="hidden" name="answers" value=(question.message.id);
                            blockquote.question {
                                p { (team_title(&facts.other)) " asked on " (page::datetime(question.message.at)) ":" }
                                @if let case_message::CaseBody::InformationRequest { question: text, wanted } = &question.message.body {
                                    @if let Some(text) = text { p.text { (text) } }
                                    @if !wanted.is_empty() {
                                        p { "They need: " (wanted.iter().map(|c| words::category_short(*c)).collect::<Vec<_>>().join(", ")) "." }
                                    }
                                }
                            }
                        }
                        (f.area("text", "Your answer", None))
                        (f.behaviours())
                    }
                    Action::Inform => {
                        (f.choices("kind", "What is it about?",
                            &<InformationKind as strum::IntoEnumIterator>::iter()
                                .map(|k| (k.as_str().to_owned(), words::information(k).to_owned(), None)).collect::<Vec<_>>(), true))
                        (f.check("urgent", "Urgent: put it first in their list"))
                        (f.area("text", "What happened", None))
                        (f.behaviours())
                    }
                    Action::Plan | Action::Reassess => {
                        @if action == Action::Reassess {
                            (f.text("scheme", "Scheme the level comes from", "CSTAG"))
                            (f.text("level", "New level of concern", ""))
                        }
                        (f.plan(&state.local.identity.uri(), &facts.other, &facts.forward_to))
                        (f.date("next", "Next reassessment"))
                    }
                    Action::Forward => {
                        p.hint { "It is filtered again against the consent the sender attached; what the sender marked as not to be passed on stays here." }
                        (f.select("recipient", "Team", "Choose a team",
                            &facts.forward_to.iter().map(|t| (t.clone(), words::team(page::team(t)))).collect::<Vec<_>>()))
                        (f.area("justification", "Why they need it (optional)", Some("The original reason goes with it; add one if this team's need is different.")))
                    }
                    Action::Consult => {
                        (f.choices("partner", "Partner teams",
                            &facts.partners.iter().map(|t| (t.clone(), words::team(page::team(t)), None)).collect::<Vec<_>>(), false))
                        (f.area("question", "Your question", None))
                    }
                    Action::Accept | Action::Assess | Action::Close => {}
                }
                section.preview aria-labelledby=(format!("{slug}-preview-heading")) {
                    h4 id=(format!("{slug}-preview-heading")) {
                        @if action == Action::Consult { "What will reach the partners, and why" }
                        @else if action == Action::Forward { "What will reach the team, and why" }
                        @else { "What will reach " (other) ", and why" }
                    }
                    div id=(format!("{slug}-preview")) aria-live="polite" {
                        p.hint { "As you write, this shows what the law and your policy let reach them." }
                    }
                }
                p { button type="submit" name="step" value="check" id=(format!("{slug}-check")) { "Check and send" } }
            }
        }
    }
}

/// What every field of one form needs: the form's slug (for element ids), its values, and
/// its problems.
struct FormCtx<'a> {
    slug: &'static str,
    fields: &'a Fields,
    problems: &'a [Problem],
}

impl FormCtx<'_> {
    fn id(&self, name: &str) -> String {
        format!("{}-{name}", self.slug)
    }

    /// The field's problems, as the element after its label, and the id that names them.
    fn problem(&self, name: &str) -> Option<(String, Markup)> {
        let texts: Vec<&str> = self
            .problems
            .iter()
            .filter(|p| p.field == Some(name))
            .map(|p| p.text.as_str())
            .collect();
        if texts.is_empty() {
            return None;
        }
        let id = format!("{}-problem", self.id(name));
        let markup = html! { p.field-problem id=(id) { @for t in &texts { (t) " " } } };
        Some((id, markup))
    }

    fn described(&self, name: &str, hint: Option<&str>) -> (Option<String>, bool, Markup) {
        let hint_id = hint.map(|_| format!("{}-hint", self.id(name)));
        let problem = self.problem(name);
        let mut ids: Vec<String> = Vec::new();
        if let Some(h) = &hint_id {
            ids.push(h.clone());
        }
        if let Some((id, _)) = &problem {
            ids.push(id.clone());
        }
        let markup = html! {
            @if let (Some(id), Some(hint)) = (&hint_id, hint) { p.hint id=(id) { (hint) } }
            @if let Some((_, m)) = &problem { (m) }
        };
        (
            (!ids.is_empty()).then(|| ids.join(" ")),
            problem.is_some(),
            markup,
        )
    }

    fn text(&self, name: &str, label: &str, default: &str) -> Markup {
        let (describedby, invalid, notes) = self.described(name, None);
        let value = match self.fields.get(name) {
            "" => default,
            value => value,
        };
        html! {
            label for=(self.id(name)) { (label) }
            (notes)
            input type="text" id=(self.id(name)) name=(name) value=(value)
                aria-describedby=[describedby] aria-invalid=[invalid.then_some("true")];
        }
    }

    fn date(&self, name: &str, label: &str) -> Markup {
        let (describedby, invalid, notes) = self.described(name, None);
        html! {
            label for=(self.id(name)) { (label) }
            (notes)
            input type="date" id=(self.id(name)) name=(name) value=(self.fields.get(name))
                aria-describedby=[describedby] aria-invalid=[invalid.then_some("true")];
        }
    }

    /// A textarea with its limit and a live counter (`assets/limits.js`).
    fn area(&self, name: &str, label: &str, hint: Option<&str>) -> Markup {
        let limit_hint = match hint {
            Some(h) => format!("{h} At most {MAX_TEXT_CHARS} characters."),
            None => format!("At most {MAX_TEXT_CHARS} characters."),
        };
        let (describedby, invalid, notes) = self.described(name, Some(&limit_hint));
        let counter = format!("{}-count", self.id(name));
        // The counter describes the field, so a screen reader reads it with the field rather
        // than announcing every keystroke.
        let describedby = match describedby {
            Some(ids) => format!("{ids} {counter}"),
            None => counter.clone(),
        };
        let value = self.fields.get(name);
        html! {
            label for=(self.id(name)) { (label) }
            (notes)
            textarea id=(self.id(name)) name=(name) data-limit=(MAX_TEXT_CHARS) data-counter=(counter)
                aria-describedby=(describedby) aria-invalid=[invalid.then_some("true")] { (value) }
            p.counter id=(counter) { (value.chars().count()) " of " (MAX_TEXT_CHARS) " characters" }
        }
    }

    fn check(&self, name: &str, label: &str) -> Markup {
        html! {
            p { input type="checkbox" id=(self.id(name)) name=(name) value="yes" checked[self.fields.checked(name)];
                label.inline for=(self.id(name)) { (label) } }
        }
    }

    fn select(
        &self,
        name: &str,
        label: &str,
        prompt: &str,
        options: &[(String, String)],
    ) -> Markup {
        let (describedby, invalid, notes) = self.described(name, None);
        let chosen = self.fields.get(name);
        html! {
            label for=(self.id(name)) { (label) }
            (notes)
            select id=(self.id(name)) name=(name)
                aria-describedby=[describedby] aria-invalid=[invalid.then_some("true")] {
                option value="" selected[chosen.is_empty()] { (prompt) }
                @for (value, text) in options {
                    option value=(value) selected[chosen == value] { (text) }
                }
            }
        }
    }

    /// A described list of choices: checkboxes, or radio buttons for one choice. Each option
    /// is `(value, words, meaning)`.
    fn choices(
        &self,
        name: &str,
        legend: &str,
        options: &[(String, String, Option<&str>)],
        one: bool,
    ) -> Markup {
        let (describedby, _, notes) = self.described(name, None);
        let chosen = self.fields.all(name);
        html! {
            fieldset.choices id=(self.id(name)) aria-describedby=[describedby] {
                legend { (legend) }
                (notes)
                @for (i, (value, text, meaning)) in options.iter().enumerate() {
                    @let id = format!("{}-{i}", self.id(name));
                    div.choice {
                        input type=(if one { "radio" } else { "checkbox" }) id=(id) name=(name) value=(value)
                            checked[chosen.contains(value)];
                        label.inline for=(id) {
                            (text)
                            @if let Some(m) = meaning { span.meaning { " " (m) } }
                        }
                    }
                }
            }
        }
    }

    /// The behaviours of concern, from the described list, and when they were seen.
    fn behaviours(&self) -> Markup {
        let options: Vec<(String, String, Option<&str>)> = words::BEHAVIORS
            .iter()
            .map(|b| (b.code.to_owned(), format!("{}:", b.name), Some(b.meaning)))
            .collect();
        html! {
            (self.choices("behavior", "Behaviours of concern (optional)", &options, false))
            (self.date("observed_on", "When they were seen (optional)"))
        }
    }

    /// The steps of a plan, from the described list, each with the team that does it.
    fn plan(&self, ours: &str, other: &str, others: &[String]) -> Markup {
        let (describedby, _, notes) = self.described("intervention", None);
        let chosen = self.fields.all("intervention");
        let mut teams = vec![ours.to_owned(), other.to_owned()];
        teams.extend(others.iter().filter(|t| *t != other && *t != ours).cloned());
        html! {
            fieldset.choices id=(self.id("intervention")) aria-describedby=[describedby] {
                legend { "Steps of the plan" }
                (notes)
                @for code in <InterventionCode as strum::IntoEnumIterator>::iter() {
                    @let id = format!("{}-intervention-{}", self.slug, code.as_str());
                    @let team_field = format!("team-{}", code.as_str());
                    @let team_id = format!("{}-team-{}", self.slug, code.as_str());
                    @let team_chosen = self.fields.get(&team_field);
                    div.choice.plan-step {
                        input type="checkbox" id=(id) name="intervention" value=(code.as_str())
                            checked[chosen.iter().any(|c| c == code.as_str())];
                        label.inline for=(id) { (words::intervention(code)) }
                        label.inline for=(team_id) { span.visually-hidden { (words::intervention(code)) ": " } "by" }
                        select id=(team_id) name=(team_field) {
                            @for (i, team) in teams.iter().enumerate() {
                                option value=(team) selected[team_chosen == team || (team_chosen.is_empty() && i == 0)] {
                                    (words::team(page::team(team))) @if i == 0 { " (your team)" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(side: Side, status: ReferralStatus) -> Facts {
        Facts {
            id: Uuid::now_v7(),
            side,
            status,
            consultation: false,
            core: true,
            decides: true,
            writes: true,
            question: None,
            planned: false,
            forward_to: vec!["spiffe://f.example/team/other".into()],
            partners: vec!["spiffe://f.example/team/partner".into()],
            me: tatmx_certs::TeamIdentity::parse_uri("spiffe://f.example/team/core").unwrap(),
            other: "spiffe://f.example/team/school".into(),
        }
    }

    #[test]
    fn a_new_referral_offers_its_recipient_s_chair_the_decisions_and_no_accept_after_accepting() {
        use Action as A;
        let new = facts(Side::Recipient, ReferralStatus::Received);
        let offered_new = offered(&new);
        for a in [
            A::Accept,
            A::Decline,
            A::Ask,
            A::Inform,
            A::Forward,
            A::Consult,
        ] {
            assert!(offered_new.contains(&a), "{a:?} not offered");
        }
        for a in [A::Complete, A::Plan, A::Close, A::Cancel, A::Answer] {
            assert!(!offered_new.contains(&a), "{a:?} offered");
        }
        let accepted = offered(&facts(Side::Recipient, ReferralStatus::Accepted));
        assert!(!accepted.contains(&A::Accept));
        assert!(accepted.contains(&A::Assess) && accepted.contains(&A::Plan));
    }

    #[test]
    fn a_case_worker_is_never_offered_a_decision() {
        for status in ReferralStatus::ALL {
            for side in [Side::Sender, Side::Recipient] {
                let mut f = facts(side, status);
                f.decides = false;
                f.question = Some(Uuid::now_v7());
                for a in offered(&f) {
                    assert!(!a.decides(), "{a:?} offered to a case worker at {status:?}");
                }
            }
        }
    }

    #[test]
    fn the_sender_answers_only_an_open_question_and_withdraws_only_before_the_end() {
        let mut f = facts(Side::Sender, ReferralStatus::InfoRequested);
        assert!(!offered(&f).contains(&Action::Answer));
        f.question = Some(Uuid::now_v7());
        let open = offered(&f);
        assert!(open.contains(&Action::Answer) && open.contains(&Action::Cancel));
        assert!(!open.contains(&Action::Accept) && !open.contains(&Action::Plan));
        f.status = ReferralStatus::Closed;
        assert!(offered(&f).is_empty());
    }

    #[test]
    fn a_plan_comes_first_and_reassessments_after_it() {
        let mut f = facts(Side::Recipient, ReferralStatus::UnderManagement);
        f.planned = true;
        let managed = offered(&f);
        assert!(managed.contains(&Action::Reassess) && !managed.contains(&Action::Plan));
        f.core = false;
        assert!(!offered(&f).contains(&Action::Reassess));
    }

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
