//! A case in motion, as staff handle it: asking for information and answering it, sending new
//! information, recording management plans and reassessments, reading a case's timeline with
//! its merged content, and listing the reassessments due.
//!
//! Every message is about a referral this node holds, and goes to that referral's other team.
//! It is validated, checked against the case's rules ([`crate::case_message::check`]) and the
//! node's role, filtered like a referral ([`filter::filter_case_message`]), and handed to the
//! store in one write with its disclosure entry and its queued delivery; a dry run stops after
//! the filter and shows what would go, and why.

use std::collections::{BTreeSet, HashMap};

use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{Actor, App, AppError, Held};
use crate::case_message::{
    self, CaseBody, CaseMessage, CaseMessageKind, CaseRefusal, InformationKind, Intervention, Plan,
    PlanDraft,
};
use crate::category::DataCategory;
use crate::consent::{Consent, Grantor};
use crate::filter::{self, FieldDecision};
use crate::lifecycle::Side;
use crate::policy::Exchange;
use crate::referral::{LevelOfConcern, Referral, ReferralContent};
use crate::store::{CaseMessageSummary, Direction, DueReassessment, StoredCaseMessage, Unseen};
use crate::trust::Role;
use tatmx_certs::TeamIdentity;

/// How far ahead "coming due" looks when the caller does not say, in days.
pub const DEFAULT_DUE_WINDOW_DAYS: u32 = 14;
/// The furthest "coming due" may look, in days.
pub const MAX_DUE_WINDOW_DAYS: u32 = 366;

/// A case message as staff write it.
#[derive(Debug, Clone)]
pub enum CaseDraft {
    /// Ask the referral's sender for information.
    Ask {
        /// The question; free text (NARRATIVE).
        question: String,
        /// The categories wanted.
        wanted: BTreeSet<DataCategory>,
    },
    /// Answer, or add to, a referral this team sent.
    Answer {
        /// The information request answered, if any.
        answers: Option<Uuid>,
        /// The case data.
        content: ReferralContent,
    },
    /// Report something new.
    Inform {
        /// What it is.
        kind: InformationKind,
        /// Whether it comes first in the other team's inbox.
        urgent: bool,
        /// What happened; free text (NARRATIVE).
        text: String,
        /// Case data that goes with it.
        content: ReferralContent,
    },
    /// The core team's management plan.
    Plan(PlanDraft),
    /// The core team's reassessment.
    Reassess {
        /// The new level of concern.
        level_of_concern: Option<LevelOfConcern>,
        /// The plan from now on.
        plan: PlanDraft,
    },
}

/// What sending a case message shows staff: exactly what leaves (or, for a dry run, would),
/// every decision behind it, and the team it goes to.
#[derive(Debug, Clone)]
pub struct CaseDisclosed {
    /// Exactly what goes, with the manifest of what was withheld.
    pub outgoing: CaseMessage,
    /// One decision per category the message carried.
    pub decisions: Vec<FieldDecision>,
    /// The other team of the referral.
    pub recipient: TeamIdentity,
    /// Whether nothing was stored or sent.
    pub dry_run: bool,
}

/// One section of a case's merged content, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentPart {
    /// Its category.
    pub category: DataCategory,
    /// The case message that brought it; `None` for the referral itself.
    pub message_id: Option<Uuid>,
    /// When its author sent it.
    pub at: OffsetDateTime,
}

/// A case as staff read it: the referral with its status timeline, every case message in
/// order, and the content merged from all of them.
#[derive(Debug, Clone)]
pub struct CaseRecord {
    /// The referral and its status timeline.
    pub held: Held,
    /// Every case message, oldest first.
    pub messages: Vec<StoredCaseMessage>,
    /// The referral's content with each later section laid over it.
    pub merged: ReferralContent,
    /// Where each section of `merged` came from.
    pub parts: Vec<ContentPart>,
}

/// What the inbox adds for case messages.
#[derive(Debug, Clone, Default)]
pub struct CaseInbox {
    /// Per referral: received messages staff have not read, and whether one is urgent.
    pub unseen: HashMap<Uuid, Unseen>,
    /// Received messages: unread urgent ones first, then the newest.
    pub messages: Vec<CaseMessageSummary>,
}

/// The reassessments due, by the node's clock.
#[derive(Debug, Clone)]
pub struct DueList {
    /// Today, by the node's clock (UTC).
    pub today: Date,
    /// Past their date, most overdue first.
    pub overdue: Vec<DueReassessment>,
    /// Due from today to the end of the window, soonest first.
    pub coming_due: Vec<DueReassessment>,
}

impl App {
    /// Sends a case message on a referral this node holds to that referral's other team, or
    /// with `dry_run` shows what would go and stores nothing.
    pub async fn send_case_message(
        &self,
        referral_id: Uuid,
        draft: CaseDraft,
        dry_run: bool,
        actor: &Actor,
    ) -> Result<CaseDisclosed, AppError> {
        self.send_case_message_as(referral_id, Uuid::now_v7(), draft, dry_run, actor)
            .await
    }

    /// Sends a case message under the id `message_id`, which the caller chose when staff
    /// opened the form (a UUIDv7): a form sent twice (a double click, a retried request, the
    /// back button) sends one message, and the second answer is what the first one sent. The
    /// id is the message's primary key, so two sends racing each other store one message.
    pub async fn send_case_message_once(
        &self,
        referral_id: Uuid,
        message_id: Uuid,
        draft: CaseDraft,
        actor: &Actor,
    ) -> Result<CaseDisclosed, AppError> {
        if message_id.get_version_num() != 7 {
            return Err(AppError::invalid("message_id", "is not a UUIDv7"));
        }
        if let Some(earlier) = self.sent_earlier(referral_id, message_id).await? {
            return Ok(earlier);
        }
        match self
            .send_case_message_as(referral_id, message_id, draft, false, actor)
            .await
        {
            Err(AppError::Store(e)) => match self.sent_earlier(referral_id, message_id).await? {
                Some(earlier) => {
                    tracing::info!(referral_id = %referral_id, message_id = %message_id, "a repeated case message answered from the first one");
                    Ok(earlier)
                }
                None => Err(AppError::Store(e)),
            },
            sent => sent,
        }
    }

    /// The message this team already sent on `referral_id` under `message_id`, as it was
    /// disclosed, if there is one.
    async fn sent_earlier(
        &self,
        referral_id: Uuid,
        message_id: Uuid,
    ) -> Result<Option<CaseDisclosed>, AppError> {
        let (stored, _) = self.held(referral_id).await?;
        let recipient = match stored.direction {
            Direction::Outbound => stored.referral.recipient,
            Direction::Inbound => stored.referral.sender,
        };
        Ok(self
            .store
            .case_messages(referral_id)
            .await?
            .into_iter()
            .find(|m| m.message.id == message_id && m.direction == Direction::Outbound)
            .map(|m| {
                // The stored record is this team's own, in full; what left is it without
                // every category the filter did not disclose.
                let mut outgoing = m.message;
                for d in &m.decisions {
                    if d.outcome != filter::Outcome::Disclose {
                        outgoing.remove(d.category);
                    }
                }
                CaseDisclosed {
                    outgoing,
                    decisions: m.decisions,
                    recipient,
                    dry_run: false,
                }
            }))
    }

    /// Sends (or previews) a case message with the id `id`.
    async fn send_case_message_as(
        &self,
        referral_id: Uuid,
        id: Uuid,
        draft: CaseDraft,
        dry_run: bool,
        actor: &Actor,
    ) -> Result<CaseDisclosed, AppError> {
        let (stored, _) = self.held(referral_id).await?;
        let referral = &stored.referral;
        let (side, author, other) = match stored.direction {
            Direction::Outbound => (Side::Sender, &referral.sender, &referral.recipient),
            Direction::Inbound => (Side::Recipient, &referral.recipient, &referral.sender),
        };
        let state = self.trust.state();
        let body = self.body_of(draft)?;
        let kind = body.kind();
        if matches!(
            kind,
            CaseMessageKind::ManagementPlan | CaseMessageKind::Reassessment
        ) && state.local.role != Role::Core
        {
            return Err(CaseRefusal::NotCore { kind }.into());
        }
        let now = self.now();
        let written = CaseMessage {
            id,
            referral_id,
            author: author.clone(),
            at: now,
            body,
            labels: Default::default(),
            withheld: Vec::new(),
        };
        written.validate_draft(now.date())?;
        if let Some(content) = written.body.content() {
            content.validate()?;
        }
        case_message::check(
            kind,
            side,
            stored.status,
            referral.consultation.is_some(),
            referral_id,
        )?;
        if let CaseBody::Supplement {
            answers: Some(question),
            ..
        } = &written.body
        {
            let asked = self
                .store
                .case_messages(referral_id)
                .await?
                .iter()
                .any(|m| {
                    m.message.id == *question
                        && m.direction == Direction::Inbound
                        && m.message.kind() == CaseMessageKind::InformationRequest
                });
            if !asked {
                return Err(CaseRefusal::UnknownRequest(*question).into());
            }
        }
        let other_peer = state
            .peer(other)
            .map(|entry| entry.peer.clone())
            .ok_or_else(|| {
                AppError::Precondition(format!("{other} is no longer a peer of this node"))
            })?;
        let exchange = Exchange {
            sender: filter::local_party(&state.local, author),
            recipient: filter::party_of_peer(&other_peer),
            purpose: referral.purpose,
            basis: referral.legal_basis,
            justified: filter::justified(referral.justification.as_deref()),
            reidentify: false,
        };
        let consent = self.case_consent(&stored.direction, referral).await?;
        let disclosure = filter::filter_case_message(
            &self.policy,
            &exchange,
            &other_peer,
            consent.as_ref(),
            written,
        );
        let outgoing = disclosure.outgoing();
        if kind == CaseMessageKind::Supplement && outgoing.categories().is_empty() {
            return Err(AppError::Precondition(format!(
                "the policy withholds every category of this supplement for {other}, so nothing \
                 would be sent; preview it to see why"
            )));
        }
        let shown = CaseDisclosed {
            outgoing: outgoing.clone(),
            decisions: disclosure.decisions().to_vec(),
            recipient: other.clone(),
            dry_run,
        };
        if dry_run {
            return Ok(shown);
        }
        self.store
            .send_case_message(&disclosure, referral, actor)
            .await??;
        let sent: Vec<&str> = outgoing.categories().iter().map(|c| c.as_str()).collect();
        let withheld: Vec<&str> = outgoing
            .withheld
            .iter()
            .map(|w| w.category.as_str())
            .collect();
        tracing::info!(
            referral_id = %referral_id,
            message_id = %outgoing.id,
            kind = kind.as_str(),
            urgent = outgoing.urgent(),
            to = %other,
            categories = ?sent,
            withheld = ?withheld,
            "case message filtered and queued for delivery"
        );
        self.outbox.notify(other);
        Ok(shown)
    }

    /// A referral with its status timeline, every case message and the merged content, for
    /// staff to read. Reading received case data is on record before anything is shown, and
    /// marks the case's received messages as seen.
    pub async fn read_case(&self, id: Uuid, actor: &Actor) -> Result<CaseRecord, AppError> {
        let held = self.held(id).await?;
        let messages = self.store.case_messages(id).await?;
        let received = messages.iter().any(|m| m.direction == Direction::Inbound);
        if held.0.direction == Direction::Inbound || received {
            self.record_read(&held.0.referral, actor).await?;
        }
        if messages
            .iter()
            .any(|m| m.direction == Direction::Inbound && !m.seen)
        {
            self.store.mark_case_seen(id, self.now()).await?;
        }
        let (merged, parts) = merge(&held.0.referral, messages.iter().map(|m| &m.message));
        Ok(CaseRecord {
            held,
            messages,
            merged,
            parts,
        })
    }

    /// The reassessments overdue, and those coming due within `within_days` (0 means
    /// [`DEFAULT_DUE_WINDOW_DAYS`]), by each open case's latest plan.
    pub async fn due_reassessments(&self, within_days: u32) -> Result<DueList, AppError> {
        let days = match within_days {
            0 => DEFAULT_DUE_WINDOW_DAYS,
            n => n.min(MAX_DUE_WINDOW_DAYS),
        };
        let today = self.now().date();
        let until = today.saturating_add(time::Duration::days(i64::from(days)));
        let (overdue, coming_due) = self
            .store
            .due_reassessments(until)
            .await?
            .into_iter()
            .partition(|d| d.next_reassessment < today);
        Ok(DueList {
            today,
            overdue,
            coming_due,
        })
    }

    /// The body of a draft, with the teams its plan names resolved.
    fn body_of(&self, draft: CaseDraft) -> Result<CaseBody, AppError> {
        let text = |t: String| Some(t).filter(|t| !t.trim().is_empty());
        Ok(match draft {
            CaseDraft::Ask { question, wanted } => CaseBody::InformationRequest {
                question: text(question),
                wanted,
            },
            CaseDraft::Answer { answers, content } => CaseBody::Supplement { answers, content },
            CaseDraft::Inform {
                kind,
                urgent,
                text: t,
                content,
            } => CaseBody::NewInformation {
                kind,
                urgent,
                text: text(t),
                content,
            },
            CaseDraft::Plan(plan) => CaseBody::ManagementPlan {
                plan: Some(self.plan_of(plan)?),
            },
            CaseDraft::Reassess {
                level_of_concern,
                plan,
            } => CaseBody::Reassessment {
                level_of_concern,
                plan: Some(self.plan_of(plan)?),
            },
        })
    }

    fn plan_of(&self, draft: PlanDraft) -> Result<Plan, AppError> {
        let state = self.trust.state();
        Ok(Plan {
            interventions: draft
                .interventions
                .into_iter()
                .enumerate()
                .map(|(i, (code, team))| {
                    let responsible = state.identity_of(&team).map_err(|_| {
                        AppError::invalid(
                            &format!("plan.interventions[{i}].responsible_team"),
                            "is not a team id or a team identity URI",
                        )
                    })?;
                    Ok(Intervention { code, responsible })
                })
                .collect::<Result<_, AppError>>()?,
            next_reassessment: draft.next_reassessment,
        })
    }

    /// The consent a case message is filtered against: the consent on file when this node
    /// made the referral itself, else the scope its original sender attached (as a forward
    /// is filtered), which stands in for a consent kept at another node. Either way it is the
    /// referral's own consent, whose subject was bound to the referral when it was submitted:
    /// a case message names no consent of its own, so it cannot carry another subject's.
    async fn case_consent(
        &self,
        direction: &Direction,
        referral: &Referral,
    ) -> Result<Option<Consent>, AppError> {
        if *direction == Direction::Outbound && referral.provenance.is_empty() {
            let Some(id) = referral
                .consent_ref
                .as_deref()
                .and_then(|c| Uuid::parse_str(c).ok())
            else {
                return Ok(None);
            };
            let federation = self.trust.state().local.identity.federation.clone();
            return Ok(self.store.consent(id, &federation).await?);
        }
        Ok(referral.consent_scope.as_ref().map(|scope| Consent {
            id: Uuid::nil(),
            subject: String::new(),
            grantor: Grantor::Subject,
            provision: scope.provision.clone(),
            valid_from: OffsetDateTime::UNIX_EPOCH,
            valid_until: scope.valid_until,
            revoked_at: None,
            recorded_at: self.now(),
        }))
    }
}

/// The referral's content with each content-bearing case message laid over it in order, and
/// where each section of the result came from: for each category, the newest section wins,
/// and every earlier one stays in the timeline.
pub fn merge<'a>(
    referral: &Referral,
    messages: impl IntoIterator<Item = &'a CaseMessage>,
) -> (ReferralContent, Vec<ContentPart>) {
    let mut merged = referral.content.clone();
    let mut from: HashMap<DataCategory, (Option<Uuid>, OffsetDateTime)> = merged
        .categories()
        .into_iter()
        .map(|c| (c, (None, referral.created_at)))
        .collect();
    for message in messages {
        let Some(content) = message.body.content() else {
            continue;
        };
        merged.overlay(content);
        for category in content.categories() {
            from.insert(category, (Some(message.id), message.at));
        }
    }
    let parts = merged
        .categories()
        .into_iter()
        .filter_map(|category| {
            from.get(&category).map(|(message_id, at)| ContentPart {
                category,
                message_id: *message_id,
                at: *at,
            })
        })
        .collect();
    (merged, parts)
}
