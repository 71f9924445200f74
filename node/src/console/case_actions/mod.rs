//! What a user can do on a case now, and doing it: exactly the actions the lifecycle, the
//! case's state and the user's role allow ([`offered`]), each as a form; every form that
//! carries words to the other team shows, as the user types, what will reach that team and
//! why, then a "Check and send" step with that preview once more, and sends only on "Confirm
//! and send". A refused form comes back with the text kept and each problem, in words, next
//! to its field. The server asks [`offered`] again for every request, whatever the browser
//! sends, and the use case behind it checks once more.
//!
//! # Layout
//! - this file: the actions, which are open now ([`offered`]), and what a form needs to know;
//! - [`draft`]: a form's fields turned into what the use case takes, with each problem named
//!   by its field;
//! - [`send`]: the handlers: the live preview, "Check and send", and sending;
//! - [`forms`]: drawing each action's form.

mod draft;
mod forms;
mod send;

pub use forms::forms;
pub use send::{act, change_status, preview};

use std::collections::BTreeSet;

use time::OffsetDateTime;
use uuid::Uuid;

use super::Console;
use super::page::Fields;
use super::session::Staff;
use crate::app::CaseRecord;
use crate::case_message::{self, CaseMessageKind};
use crate::lifecycle::{self, Side};
use crate::referral::{AssessmentOutcome, ReasonCode, ReferralStatus, StatusUpdate};
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

/// The direction a case has from this side: the recipient received it.
fn direction(side: Side) -> Direction {
    match side {
        Side::Recipient => Direction::Inbound,
        Side::Sender => Direction::Outbound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A case as the action forms see it, with every party and option present.
    pub(super) fn facts(side: Side, status: ReferralStatus) -> Facts {
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
}
