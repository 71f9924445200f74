//! Passing a received referral on to another team: a core team sends on what it received, as
//! the law and the original sender's labels allow, and the original sender is told where its
//! referral went.
//!
//! A forward is a new disclosure made from the received one. Categories their sender labelled
//! NO_REDISCLOSURE never leave again; the consent scope the original sender attached stands in
//! for the consent, which stays at the original sender's node.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Actor, App, AppError, Disclosed};
use crate::consent::{Consent, Grantor};
use crate::filter;
use crate::referral::{
    Hop, LegalBasis, NO_REDISCLOSURE, NewReferral, Purpose, Referral, ReferralStatus, StatusUpdate,
};
use crate::store::{Direction, Submission};

/// A forward asked for by staff.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The received referral to pass on.
    pub referral_id: Uuid,
    /// The team it goes to, as a team id or identity URI.
    pub recipient: String,
    /// Why; the original purpose when `None`.
    pub purpose: Option<Purpose>,
    /// On what basis; the original basis when `None`.
    pub legal_basis: Option<LegalBasis>,
    /// A justification; the original one when `None`.
    pub justification: Option<String>,
}

impl App {
    /// Forwards a received referral, or with `dry_run` shows what a forward would send.
    pub async fn forward(
        &self,
        forward: Forward,
        dry_run: bool,
        actor: &Actor,
    ) -> Result<Disclosed, AppError> {
        let (stored, _) = self.held(forward.referral_id).await?;
        if stored.direction != Direction::Inbound {
            return Err(AppError::Precondition(
                "only a referral this team received can be forwarded".into(),
            ));
        }
        let original = stored.referral;
        let (content, level_of_concern, kept_back) = without_no_redisclosure(&original);
        let draft = NewReferral {
            recipient: forward.recipient,
            purpose: forward.purpose.unwrap_or(original.purpose),
            level_of_concern,
            legal_basis: forward.legal_basis.unwrap_or(original.legal_basis),
            justification: forward
                .justification
                .filter(|j| !j.trim().is_empty())
                .or(original.justification.clone()),
            consent_ref: original.consent_ref.clone(),
            // The original's consent travels with it (`given_consent`), about its own subject.
            subject_ref: None,
            content,
            case_ref: None,
            reidentify: false,
        };
        // Without an attached scope, nothing is disclosed on consent.
        let scope_consent = original.consent_scope.as_ref().map(|scope| Consent {
            id: Uuid::nil(),
            subject: String::new(),
            grantor: Grantor::Subject,
            provision: scope.provision.clone(),
            valid_from: OffsetDateTime::UNIX_EPOCH,
            valid_until: scope.valid_until,
            revoked_at: None,
            recorded_at: self.now(),
        });
        let mut provenance = original.provenance.clone();
        provenance.push(Hop {
            team: original.sender.clone(),
            at: original.created_at,
        });
        let (mut disclosure, _) = self
            .prepare(draft, None, Some(scope_consent), provenance)
            .await?;
        for category in kept_back {
            disclosure.withhold_no_redisclosure(category);
        }
        if dry_run {
            return Ok(Disclosed::of(disclosure, true));
        }
        // The original sender is told where its referral went, in the same transaction as the
        // forward, so a crash cannot leave one without the other.
        let notice = StatusUpdate {
            id: Uuid::now_v7(),
            referral_id: original.id,
            author: original.recipient.clone(),
            status: ReferralStatus::Forwarded,
            at: self.now(),
            reason: None,
            reason_code: None,
            outcome: None,
            withheld: Vec::new(),
            forwarded_to: Some(disclosure.outgoing().recipient.clone()),
        };
        let still_peer = self.trust.state().peer(&original.sender).is_some();
        Self::refuse_if_empty(&disclosure, None)?;
        let submission = Submission {
            forwarded_from: Some(original.id),
            subject: None,
            actor,
            idempotency: None,
            references: None,
        };
        self.store
            .forward(
                &disclosure,
                &submission,
                still_peer.then_some((&notice, &original.sender)),
            )
            .await??;
        self.queued(&disclosure);
        if still_peer {
            self.outbox.notify(&original.sender);
        }
        tracing::info!(
            referral_id = %original.id,
            forward_id = %disclosure.outgoing().id,
            to = %disclosure.outgoing().recipient,
            "referral forwarded"
        );
        Ok(Disclosed::of(disclosure, false))
    }
}

/// The received referral's content and level of concern without every category its sender
/// labelled NO_REDISCLOSURE, and the categories so kept back.
fn without_no_redisclosure(
    original: &Referral,
) -> (
    crate::referral::ReferralContent,
    Option<crate::referral::LevelOfConcern>,
    Vec<crate::category::DataCategory>,
) {
    let mut shell = original.clone();
    let mut kept_back = Vec::new();
    for category in original.categories() {
        if original.labels_of(category).contains(&NO_REDISCLOSURE) {
            filter::remove(&mut shell, category);
            kept_back.push(category);
        }
    }
    (shell.content, shell.level_of_concern, kept_back)
}
