//! Referrals as staff handle them: preview what would leave, submit, read, list the inbox, and
//! move a referral through its lifecycle.
//!
//! Submitting resolves the recipient, validates the draft, runs the filter and hands the store
//! the filtered referral with its decisions in one write; a dry run stops after the filter.

use uuid::Uuid;

use super::{Actor, App, AppError};
use crate::audit;
use crate::consent::Consent;
use crate::filter::{self, Disclosure, FieldDecision};
use crate::lifecycle::Side;
use crate::policy::Exchange;
use crate::referral::{
    AssessmentOutcome, ConsultationDetails, Hop, NewReferral, ReasonCode, Referral, ReferralStatus,
    StatusUpdate,
};
use crate::store::{Direction, StatusEvent, StoredReferral, Submission, Submitted};

/// The longest idempotency key a client may send.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

/// What a submission or forward shows staff: exactly what leaves (or, for a dry run, would
/// leave) and every decision of the filter behind it.
#[derive(Debug, Clone)]
pub struct Disclosed {
    /// The referral as it leaves.
    pub referral: Referral,
    /// One decision per category the draft carried.
    pub decisions: Vec<FieldDecision>,
    /// Whether nothing was stored or sent.
    pub dry_run: bool,
}

impl Disclosed {
    pub(super) fn of(disclosure: Disclosure, dry_run: bool) -> Self {
        let (referral, decisions) = disclosure.into_parts();
        Self {
            referral,
            decisions,
            dry_run,
        }
    }
}

/// A client's idempotency key, with the digest of the draft it came with, so that a retry of
/// the same draft can be told apart from another draft under a reused key.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The key, trimmed; empty means none.
    pub key: String,
    /// The digest of the draft exactly as the client sent it.
    pub draft_digest: String,
}

/// A status change asked for by staff.
#[derive(Debug, Clone)]
pub struct StatusChange {
    /// The referral.
    pub referral_id: Uuid,
    /// The status it should reach.
    pub status: ReferralStatus,
    /// Why, as a code; required to decline or cancel. It always reaches the other team.
    pub reason_code: Option<ReasonCode>,
    /// Why, in free text beside the code; it passes the filter as NARRATIVE.
    pub reason: Option<String>,
    /// A completed assessment's outcome; it passes the filter as ASSESSMENT.
    pub outcome: Option<AssessmentOutcome>,
}

/// A referral with its timeline.
pub type Held = (StoredReferral, Vec<StatusEvent>);

/// A status change staff asked for, filtered for the other team, with what deciding whether
/// it may be made needs.
struct StatusDraft {
    /// The update as it would leave.
    update: StatusUpdate,
    /// This team's side of the referral.
    side: Side,
    /// The other team.
    other: tatmx_certs::TeamIdentity,
    /// The referral's status as stored when the draft was made.
    current: ReferralStatus,
    /// Whether the referral is a consultation request.
    consultation: bool,
}

impl App {
    /// What submitting `draft` would send, and why; stores nothing.
    pub async fn preview(&self, draft: NewReferral) -> Result<Disclosed, AppError> {
        let (disclosure, _) = self.prepare(draft, None, None, Vec::new()).await?;
        Ok(Disclosed::of(disclosure, true))
    }

    /// Filters `draft` for its recipient, stores it and queues it, in one transaction. A
    /// retried submission with the same idempotency key and draft answers with what the first
    /// one stored, and stores nothing.
    pub async fn submit(
        &self,
        draft: NewReferral,
        idempotency: Option<Idempotency>,
        actor: &Actor,
    ) -> Result<Disclosed, AppError> {
        let idempotency = idempotency.filter(|i| !i.key.trim().is_empty());
        if let Some(i) = &idempotency
            && i.key.trim().len() > MAX_IDEMPOTENCY_KEY
        {
            return Err(AppError::invalid(
                "idempotency_key",
                format!("at most {MAX_IDEMPOTENCY_KEY} characters"),
            ));
        }
        // The team's own case number and reference for the person stay here, sealed.
        let references =
            self.indexed_references(draft.case_ref.as_deref(), draft.subject_ref.as_deref())?;
        let (disclosure, subject) = self.prepare(draft, None, None, Vec::new()).await?;
        let submitted = self
            .commit(
                &disclosure,
                &Submission {
                    forwarded_from: None,
                    subject: subject.as_deref(),
                    actor,
                    idempotency: idempotency
                        .as_ref()
                        .map(|i| (i.key.trim(), i.draft_digest.as_str())),
                    references: Some(&references),
                },
            )
            .await?;
        if let Submitted::Earlier(id) = submitted {
            // The first call's answer: what was stored then, with its decisions.
            let (stored, _) = self.held(id).await?;
            return Ok(Disclosed {
                referral: stored.referral,
                decisions: stored.decisions,
                dry_run: false,
            });
        }
        Ok(Disclosed::of(disclosure, false))
    }

    /// A referral with its timeline, for staff to read. Reading a received referral is on
    /// record before anything is shown.
    pub async fn read(&self, id: Uuid, actor: &Actor) -> Result<Held, AppError> {
        let held = self.held(id).await?;
        if held.0.direction == Direction::Inbound {
            self.record_read(&held.0.referral, actor).await?;
        }
        Ok(held)
    }

    /// Puts a read of received case data on the audit log, before anything is shown.
    pub(super) async fn record_read(
        &self,
        referral: &Referral,
        actor: &Actor,
    ) -> Result<(), AppError> {
        self.store
            .record_audit(&audit::case_read(referral, actor))
            .await?;
        tracing::info!(referral_id = %referral.id, "received case data read by staff");
        Ok(())
    }

    /// The newest received referrals, at most `limit`; the read is on record.
    pub async fn inbox(&self, limit: u32, actor: &Actor) -> Result<Vec<StoredReferral>, AppError> {
        let stored = self.store.inbox(super::list_limit(limit)).await?;
        self.store
            .record_audit(&audit::inbox_read(stored.len(), actor))
            .await?;
        Ok(stored)
    }

    /// The inbox with its case messages, read as one snapshot so the two agree: the received
    /// referrals (unread urgent cases first), what is unread on each, and the received case
    /// messages; at most `limit` of each. The read is on record.
    pub async fn inbox_with_case_messages(
        &self,
        limit: u32,
        actor: &Actor,
    ) -> Result<(Vec<StoredReferral>, super::case::CaseInbox), AppError> {
        let snapshot = self.store.inbox_snapshot(super::list_limit(limit)).await?;
        self.store
            .record_audit(&audit::inbox_read(snapshot.referrals.len(), actor))
            .await?;
        Ok((
            snapshot.referrals,
            super::case::CaseInbox {
                unseen: snapshot.unseen,
                messages: snapshot.messages,
            },
        ))
    }

    /// Moves a referral to a new status on this team's side, and queues the update for the
    /// other team. The update passes the filter like any disclosure: its reason is free text
    /// (NARRATIVE) and its outcome an assessment (ASSESSMENT). Returns the referral as it now
    /// stands; seeing one's own change is not a new read.
    pub async fn change_status(
        &self,
        change: StatusChange,
        actor: &Actor,
    ) -> Result<Held, AppError> {
        let id = change.referral_id;
        let StatusDraft {
            update,
            side,
            other,
            ..
        } = self.filtered_status_update(change).await?;
        self.store
            .change_status(&update, side, &other, actor)
            .await??;
        tracing::info!(referral_id = %id, status = %update.status, to = %other, "status changed and queued for the other party");
        self.outbox.notify(&other);
        self.held(id).await
    }

    /// What [`Self::change_status`] would send the other team: the update as it would leave,
    /// with what the filter would keep back and why. Refused as the change itself would be
    /// (the lifecycle is checked against the status as stored); changes and sends nothing.
    pub async fn preview_status_change(
        &self,
        change: StatusChange,
    ) -> Result<StatusUpdate, AppError> {
        let draft = self.filtered_status_update(change).await?;
        crate::lifecycle::check(draft.current, &draft.update, draft.side, draft.consultation)?;
        Ok(draft.update)
    }

    /// Builds the update staff asked for on this team's side of a referral, filtered for the
    /// other team.
    async fn filtered_status_update(&self, change: StatusChange) -> Result<StatusDraft, AppError> {
        let id = change.referral_id;
        let (stored, _) = self.held(id).await?;
        let referral = &stored.referral;
        let (side, author, other) = match stored.direction {
            Direction::Outbound => (Side::Sender, &referral.sender, &referral.recipient),
            Direction::Inbound => (Side::Recipient, &referral.recipient, &referral.sender),
        };
        let state = self.trust.state();
        let other_peer = state
            .peer(other)
            .map(|entry| entry.peer.clone())
            .ok_or_else(|| {
                AppError::Precondition(format!("{other} is no longer a peer of this node"))
            })?;
        let mut update = StatusUpdate {
            id: Uuid::now_v7(),
            referral_id: id,
            author: author.clone(),
            status: change.status,
            at: self.now(),
            reason: change.reason.filter(|reason| !reason.trim().is_empty()),
            reason_code: change.reason_code,
            outcome: change.outcome,
            withheld: Vec::new(),
            forwarded_to: None,
        };
        let exchange = Exchange {
            sender: filter::local_party(&state.local, author),
            recipient: filter::party_of_peer(&other_peer),
            purpose: referral.purpose,
            basis: referral.legal_basis,
            justified: filter::justified(referral.justification.as_deref()),
            reidentify: false,
        };
        filter::filter_status_update(&self.policy, &exchange, &mut update);
        Ok(StatusDraft {
            update,
            side,
            other: other.clone(),
            current: stored.status,
            consultation: referral.consultation.is_some(),
        })
    }

    /// A referral on this node with its timeline; a purged one is reported as purged, with
    /// when and why, so staff are not left wondering whether it ever existed.
    pub(super) async fn held(&self, id: Uuid) -> Result<Held, AppError> {
        if let Some(found) = self.store.referral(id).await? {
            return Ok(found);
        }
        Err(match self.store.tombstone(id).await? {
            Some(t) => AppError::Purged(Box::new(t)),
            None => AppError::NoSuchReferral(id),
        })
    }

    /// Validates a draft for its recipient and runs the filter; stores nothing. A forward
    /// passes the consent its original sender attached (`given_consent`) instead of naming
    /// one on file here. Returns the disclosure and the agency's own reference for the
    /// subject, for its accounting of disclosures.
    pub(super) async fn prepare(
        &self,
        draft: NewReferral,
        consultation: Option<ConsultationDetails>,
        given_consent: Option<Option<Consent>>,
        provenance: Vec<Hop>,
    ) -> Result<(Disclosure, Option<String>), AppError> {
        let state = self.trust.state();
        let recipient = state.resolve_recipient(&draft.recipient)?;
        // The sender is this node's identity in the recipient's federation: anchors are never
        // merged, so that is the only identity the recipient can verify.
        let sender = state
            .own_identity_in(&recipient.identity.federation)
            .cloned()
            .ok_or_else(|| {
                AppError::Precondition(format!(
                    "this node is not a member of {}",
                    recipient.identity.federation
                ))
            })?;
        let draft_referral = Referral {
            id: Uuid::now_v7(),
            sender: sender.clone(),
            recipient: recipient.identity.clone(),
            created_at: self.now(),
            purpose: draft.purpose,
            level_of_concern: draft.level_of_concern,
            legal_basis: draft.legal_basis,
            justification: draft.justification,
            consent_ref: draft.consent_ref,
            content: draft.content,
            labels: Default::default(),
            withheld: Vec::new(),
            case_handle: None,
            consultation,
            provenance,
            consent_scope: None,
        };
        draft_referral.validate()?;
        let consent = match given_consent {
            // A forward's consent is the original's, about the referral's own subject.
            Some(consent) => consent,
            None => {
                let consent = self
                    .named_consent(draft_referral.consent_ref.as_deref())
                    .await?;
                if let Some(consent) = &consent {
                    check_subject(consent, draft.subject_ref.as_deref())?;
                }
                consent
            }
        };
        let exchange = Exchange {
            sender: filter::local_party(&state.local, &sender),
            recipient: filter::party_of_peer(recipient),
            purpose: draft_referral.purpose,
            basis: draft_referral.legal_basis,
            justified: filter::justified(draft_referral.justification.as_deref()),
            reidentify: draft.reidentify,
        };
        let subject = draft
            .subject_ref
            .clone()
            .or_else(|| draft.case_ref.clone())
            .or_else(|| consent.as_ref().map(|c| c.subject.clone()))
            .filter(|s| !s.is_empty());
        let disclosure = filter::filter_outbound(
            &self.policy,
            &exchange,
            recipient,
            consent.as_ref(),
            &self.case_key,
            draft.case_ref.as_deref(),
            draft_referral,
        );
        Ok((disclosure, subject))
    }

    /// Refuses a disclosure that would carry nothing: every category withheld and no case
    /// handle. `to` names the recipient where several are being prepared together.
    pub(super) fn refuse_if_empty(
        disclosure: &Disclosure,
        to: Option<&str>,
    ) -> Result<(), AppError> {
        let outgoing = disclosure.outgoing();
        if outgoing.categories().is_empty() && outgoing.case_handle.is_none() {
            return Err(AppError::Precondition(match to {
                None => "the policy withholds every category for this recipient, so nothing would be sent; preview it to see why".to_owned(),
                Some(team) => format!(
                    "the policy withholds every category for {team}, so nothing would be sent to it and nothing was sent to any team; preview it to see why"
                ),
            }));
        }
        Ok(())
    }

    /// Stores a filtered referral with its decisions and queues it, in one transaction.
    /// Returns what the store did: stored it now, or found an earlier submission with the same
    /// idempotency key and draft.
    pub(super) async fn commit(
        &self,
        disclosure: &Disclosure,
        submission: &Submission<'_>,
    ) -> Result<Submitted, AppError> {
        Self::refuse_if_empty(disclosure, None)?;
        let submitted = self.store.submit_referral(disclosure, submission).await?;
        match submitted {
            Submitted::New => {}
            Submitted::Earlier(id) => {
                tracing::info!(referral_id = %id, "a retried submission answered from the first one");
                return Ok(submitted);
            }
            Submitted::KeyReused => return Err(AppError::IdempotencyKeyReused),
        }
        self.queued(disclosure);
        Ok(submitted)
    }

    /// Logs a disclosure the store has just queued (ids, categories and the basis, never
    /// content) and wakes delivery to its recipient.
    pub(super) fn queued(&self, disclosure: &Disclosure) {
        let outgoing = disclosure.outgoing();
        let sent: Vec<&str> = outgoing.categories().iter().map(|c| c.as_str()).collect();
        let withheld: Vec<&str> = outgoing
            .withheld
            .iter()
            .map(|w| w.category.as_str())
            .collect();
        tracing::info!(
            referral_id = %outgoing.id,
            recipient = %outgoing.recipient,
            categories = ?sent,
            withheld = ?withheld,
            basis = ?outgoing.legal_basis,
            "referral filtered and queued for delivery"
        );
        self.outbox.notify(&outgoing.recipient);
    }

    /// The consent a draft names, which must be on file here.
    async fn named_consent(&self, consent_ref: Option<&str>) -> Result<Option<Consent>, AppError> {
        let Some(text) = consent_ref else {
            return Ok(None);
        };
        let id = Uuid::parse_str(text).map_err(|_| {
            AppError::invalid("consent_ref", "is not a consent id recorded on this node")
        })?;
        let federation = self.trust.state().local.identity.federation.clone();
        let consent = self.store.consent(id, &federation).await?.ok_or_else(|| {
            AppError::invalid(
                "consent_ref",
                format!("no consent {id} is recorded on this node"),
            )
        })?;
        Ok(Some(consent))
    }
}

/// A consent is a basis only for a referral about its own subject: the draft must carry the
/// agency's reference for the subject, and it must be the one the consent was given for.
/// The refusal names the consent, never either subject.
fn check_subject(consent: &Consent, subject_ref: Option<&str>) -> Result<(), AppError> {
    let Some(subject_ref) = subject_ref.map(str::trim).filter(|s| !s.is_empty()) else {
        return Err(AppError::invalid(
            "subject_ref",
            "is required when a consent is named: give this agency's reference for the subject, as the consent names it",
        ));
    };
    if subject_ref != consent.subject.trim() {
        return Err(AppError::Precondition(format!(
            "consent {} was given for another subject than this referral's subject reference; \
             nothing was sent. Check that the consent and the subject reference are for the same person",
            consent.id
        )));
    }
    Ok(())
}
