//! The Agency API: the agency's own staff and systems talking to their node.
//!
//! It listens only on a Unix socket with mode 0600, so the operating system decides who may
//! use it. Submitting a referral validates it, stores it and queues its delivery in one
//! transaction, then returns; delivery happens in the background, and its progress is visible
//! in the outbox.

use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::agency_server::Agency;
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::audit;
use crate::consent::Consent;
use crate::convert;
use crate::federation::store_status;
use crate::filter::{self, CaseKey, Disclosure, FieldDecision, Outcome};
use crate::lifecycle::{Side, TransitionError};
use crate::outbox::Outbox;
use crate::policy::{Exchange, Policy};
use crate::referral::{ConsultationDetails, NO_REDISCLOSURE, NewReferral, Referral, StatusUpdate};
use crate::store::{
    DeliveryState, Direction, MessageKind, OutboxEntry, Store, StoredReferral, Submission,
    Submitted,
};
use crate::trust::{Trust, TrustError};

/// How many rows a list returns when the caller does not say.
const DEFAULT_LIMIT: u32 = 100;
/// The most rows one list call returns.
const MAX_LIMIT: u32 = 1000;

/// The staff-facing gRPC service.
#[derive(Debug, Clone)]
pub struct AgencyService {
    /// Resolves recipients to known peers.
    trust: Trust,
    /// Referrals and the outbox.
    store: Store,
    /// Wakes delivery once a referral is queued.
    outbox: Outbox,
    /// The law as code.
    policy: Arc<Policy>,
    /// Keys case handles.
    case_key: Arc<CaseKey>,
}

impl AgencyService {
    /// Builds the service over the node's shared state.
    pub fn new(
        trust: Trust,
        store: Store,
        outbox: Outbox,
        policy: Arc<Policy>,
        case_key: Arc<CaseKey>,
    ) -> Self {
        Self {
            trust,
            store,
            outbox,
            policy,
            case_key,
        }
    }

    /// Validates a draft for its recipient and runs the filter; stores nothing.
    async fn prepare(
        &self,
        draft: NewReferral,
        consultation: Option<ConsultationDetails>,
        given_consent: Option<Option<Consent>>,
        provenance: Vec<crate::referral::Hop>,
    ) -> Result<(Disclosure, Option<String>), Status> {
        let state = self.trust.state();
        let recipient = state
            .resolve_recipient(&draft.recipient)
            .map_err(|e| match e {
                TrustError::UnknownPeer(_) | TrustError::Blocked(_) => {
                    Status::failed_precondition(e.to_string())
                }
                _ => Status::invalid_argument(e.to_string()),
            })?;
        // The sender is this node's identity in the recipient's federation: anchors are never
        // merged, so that is the only identity the recipient can verify.
        let sender = state
            .own_identity_in(&recipient.identity.federation)
            .cloned()
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "this node is not a member of {}",
                    recipient.identity.federation
                ))
            })?;
        let draft_referral = Referral {
            id: Uuid::now_v7(),
            sender: sender.clone(),
            recipient: recipient.identity.clone(),
            created_at: OffsetDateTime::now_utc(),
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
        draft_referral
            .validate()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let consent = match given_consent {
            Some(consent) => consent,
            None => {
                self.named_consent(draft_referral.consent_ref.as_deref())
                    .await?
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
        // The agency's own reference for the subject, for its accounting of disclosures.
        let subject = draft
            .case_ref
            .clone()
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

    /// Stores a filtered referral with its decisions and queues it, in one transaction. A
    /// forward names the received referral it was made from. Returns the referral that stands
    /// for this submission: the new one, or the one an earlier call with the same idempotency
    /// key stored.
    async fn commit(
        &self,
        disclosure: &Disclosure,
        submission: &Submission<'_>,
    ) -> Result<Submitted, Status> {
        let outgoing = &disclosure.outgoing;
        if outgoing.categories().is_empty() && outgoing.case_handle.is_none() {
            return Err(Status::failed_precondition(
                "the policy withholds every category for this recipient, so nothing would be sent; preview it with dry_run to see why",
            ));
        }
        let submitted = self
            .store
            .submit_referral(outgoing, &disclosure.decisions, submission)
            .await
            .map_err(|e| store_status(&e))?;
        match submitted {
            Submitted::New => {}
            Submitted::Earlier(id) => {
                tracing::info!(referral_id = %id, "a retried submission answered from the first one");
                return Ok(submitted);
            }
            Submitted::KeyReused => {
                return Err(Status::already_exists(
                    "idempotency_key: was used before for a different draft; nothing was sent",
                ));
            }
        }
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
        Ok(submitted)
    }

    /// The wire view of one consultation: every partner's answer, and who has not answered.
    fn consultation_view(
        id: Uuid,
        copies: &[(StoredReferral, Vec<crate::store::StatusEvent>)],
    ) -> pb::Consultation {
        use crate::referral::ReferralStatus as S;
        let details = copies
            .iter()
            .find_map(|(stored, _)| stored.referral.consultation.clone());
        let answers: Vec<pb::ConsultationAnswer> = copies
            .iter()
            .map(|(stored, events)| pb::ConsultationAnswer {
                partner: stored.referral.recipient.uri(),
                referral_id: stored.referral.id.to_string(),
                status: convert::status_to_proto(stored.status).into(),
                answer: events
                    .iter()
                    .rev()
                    .find(|e| e.status == S::Completed)
                    .and_then(|e| e.outcome.as_ref())
                    .map(convert::outcome_to_proto),
                decline_reason: events
                    .iter()
                    .rev()
                    .find(|e| e.status == S::Declined)
                    .and_then(|e| e.reason.clone())
                    .unwrap_or_default(),
            })
            .collect();
        let awaiting = copies
            .iter()
            .filter(|(stored, _)| {
                !matches!(
                    stored.status,
                    S::Completed | S::Declined | S::Closed | S::Cancelled
                )
            })
            .map(|(stored, _)| stored.referral.recipient.uri())
            .collect();
        pb::Consultation {
            consultation_id: id.to_string(),
            question: details
                .as_ref()
                .map(|d| d.question.clone())
                .unwrap_or_default(),
            due: details.and_then(|d| d.due).map(convert::timestamp_to_proto),
            answers,
            awaiting,
        }
    }

    /// One consultation this node asked for.
    async fn consultation(&self, id: Uuid) -> Result<pb::Consultation, Status> {
        let found = self
            .store
            .consultations(Some(id))
            .await
            .map_err(|e| store_status(&e))?;
        let (id, copies) = found
            .into_iter()
            .next()
            .ok_or_else(|| Status::not_found(format!("no consultation {id} on this node")))?;
        Ok(Self::consultation_view(id, &copies))
    }

    /// A referral on this node with its timeline; a purged one is reported as purged, with
    /// when and why, so staff are not left wondering whether it ever existed.
    async fn held(
        &self,
        id: Uuid,
    ) -> Result<(StoredReferral, Vec<crate::store::StatusEvent>), Status> {
        if let Some(found) = self
            .store
            .referral(id)
            .await
            .map_err(|e| store_status(&e))?
        {
            return Ok(found);
        }
        let tombstone = self
            .store
            .tombstone(id)
            .await
            .map_err(|e| store_status(&e))?;
        Err(match tombstone {
            Some(t) => Status::not_found(format!(
                "referral {id} was purged at {} ({}); only its tombstone remains",
                t.purged_at,
                t.cause.as_str()
            )),
            None => Status::not_found(format!("no referral {id} on this node")),
        })
    }

    /// The consent a draft names, which must be on file here.
    async fn named_consent(&self, consent_ref: Option<&str>) -> Result<Option<Consent>, Status> {
        let Some(text) = consent_ref else {
            return Ok(None);
        };
        let id = Uuid::parse_str(text).map_err(|_| {
            Status::invalid_argument("consent_ref: is not a consent id recorded on this node")
        })?;
        let federation = self.trust.state().local.identity.federation.clone();
        let consent = self
            .store
            .consent(id, &federation)
            .await
            .map_err(|e| store_status(&e))?
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "consent_ref: no consent {id} is recorded on this node"
                ))
            })?;
        Ok(Some(consent))
    }
}

/// A referral with its timeline, as staff see it.
fn referral_record(
    stored: &StoredReferral,
    events: &[crate::store::StatusEvent],
) -> pb::ReferralRecord {
    pb::ReferralRecord {
        referral: Some(convert::referral_to_proto(&stored.referral)),
        direction: match stored.direction {
            Direction::Outbound => pb::Direction::Outbound,
            Direction::Inbound => pb::Direction::Inbound,
        }
        .into(),
        status: convert::status_to_proto(stored.status).into(),
        timeline: events
            .iter()
            .map(|e| pb::StatusEvent {
                status: convert::status_to_proto(e.status).into(),
                at: Some(convert::timestamp_to_proto(e.at)),
                actor: e.actor.clone(),
                reason: e.reason.clone().unwrap_or_default(),
                outcome: e.outcome.as_ref().map(convert::outcome_to_proto),
                forwarded_to: e.forwarded_to.clone().unwrap_or_default(),
            })
            .collect(),
        categories: categories(&stored.referral),
        decisions: stored.decisions.iter().map(decision_to_proto).collect(),
        retain_until: stored.retain_until.map(convert::timestamp_to_proto),
    }
}

fn consent_id(text: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(text).map_err(|_| Status::invalid_argument("consent_id: is not a UUID"))
}

/// What a submission or forward tells staff: exactly what goes, and every decision.
fn submission(disclosure: &Disclosure, dry_run: bool) -> pb::SubmitReferralResponse {
    let outgoing = &disclosure.outgoing;
    pb::SubmitReferralResponse {
        referral_id: outgoing.id.to_string(),
        dry_run,
        categories_disclosed: categories(outgoing),
        outgoing: Some(convert::referral_to_proto(outgoing)),
        decisions: disclosure.decisions.iter().map(decision_to_proto).collect(),
    }
}

/// A filter decision on the wire.
pub fn decision_to_proto(d: &FieldDecision) -> pb::FieldDecision {
    pb::FieldDecision {
        category: convert::category_to_proto(d.category).into(),
        outcome: match d.outcome {
            Outcome::Disclose => pb::DisclosureOutcome::Disclose,
            Outcome::Withhold => pb::DisclosureOutcome::Withhold,
            Outcome::Pseudonymize => pb::DisclosureOutcome::Pseudonymize,
        }
        .into(),
        rules: d.rules.clone(),
        reasons: d.reasons.clone(),
        labels: d.labels.clone(),
    }
}

fn limit(requested: u32) -> u32 {
    match requested {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

fn categories(referral: &Referral) -> Vec<i32> {
    referral
        .categories()
        .into_iter()
        .map(|c| convert::category_to_proto(c).into())
        .collect()
}

fn inbox_item(stored: &StoredReferral) -> pb::InboxItem {
    let r = &stored.referral;
    pb::InboxItem {
        referral_id: r.id.to_string(),
        sender: r.sender.uri(),
        received_at: Some(convert::timestamp_to_proto(stored.recorded_at)),
        purpose: convert::purpose_to_proto(r.purpose).into(),
        level_of_concern: r.level_of_concern.as_ref().map(|l| pb::LevelOfConcern {
            scheme: l.scheme.clone(),
            value: l.value.clone(),
        }),
        status: convert::status_to_proto(stored.status).into(),
        categories: categories(r),
    }
}

fn outbox_entry(entry: &OutboxEntry) -> pb::OutboxEntry {
    pb::OutboxEntry {
        message_id: entry.message_id.to_string(),
        kind: match entry.kind {
            MessageKind::Referral => pb::MessageKind::Referral,
            MessageKind::StatusUpdate => pb::MessageKind::StatusUpdate,
            MessageKind::Retraction => pb::MessageKind::Retraction,
            MessageKind::RetractionAck => pb::MessageKind::RetractionAck,
        }
        .into(),
        referral_id: entry.referral_id.to_string(),
        peer: entry.peer.clone(),
        state: match entry.state {
            DeliveryState::Pending => pb::DeliveryState::Pending,
            DeliveryState::Delivered => pb::DeliveryState::Delivered,
            DeliveryState::Dead => pb::DeliveryState::Dead,
            DeliveryState::Cancelled => pb::DeliveryState::Cancelled,
        }
        .into(),
        attempts: entry.attempts,
        created_at: Some(convert::timestamp_to_proto(entry.created_at)),
        next_attempt_at: (entry.state == DeliveryState::Pending)
            .then(|| convert::timestamp_to_proto(entry.next_attempt_at)),
        delivered_at: entry.delivered_at.map(convert::timestamp_to_proto),
        last_error: entry.last_error.clone().unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl Agency for AgencyService {
    async fn submit_referral(
        &self,
        request: Request<pb::SubmitReferralRequest>,
    ) -> Result<Response<pb::SubmitReferralResponse>, Status> {
        let actor = audit::local_actor(&request);
        let request = request.into_inner();
        let draft = request
            .referral
            .ok_or_else(|| Status::invalid_argument("referral: is required"))?;
        // Exactly as the client sent it, so a retry with the same key can be told apart from
        // another draft under a reused key.
        let draft_digest = hex::encode(Sha256::digest(draft.encode_to_vec()));
        let draft = convert::new_referral_from_proto(draft)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (disclosure, subject) = self.prepare(draft, None, None, Vec::new()).await?;
        if request.dry_run {
            return Ok(Response::new(submission(&disclosure, true)));
        }
        let key = request.idempotency_key.trim();
        if key.len() > 200 {
            return Err(Status::invalid_argument(
                "idempotency_key: at most 200 characters",
            ));
        }
        let submitted = self
            .commit(
                &disclosure,
                &Submission {
                    forwarded_from: None,
                    subject: subject.as_deref(),
                    actor: &actor,
                    idempotency: (!key.is_empty()).then_some((key, draft_digest.as_str())),
                },
            )
            .await?;
        if let Submitted::Earlier(id) = submitted {
            // The first call's answer: what was stored then, with its decisions.
            let (stored, _) = self.held(id).await?;
            let earlier = Disclosure {
                outgoing: stored.referral,
                decisions: stored.decisions,
            };
            return Ok(Response::new(submission(&earlier, false)));
        }
        Ok(Response::new(submission(&disclosure, false)))
    }

    async fn list_inbox(
        &self,
        request: Request<pb::ListInboxRequest>,
    ) -> Result<Response<pb::ListInboxResponse>, Status> {
        let actor = audit::local_actor(&request);
        let stored = self
            .store
            .inbox(limit(request.into_inner().limit))
            .await
            .map_err(|e| store_status(&e))?;
        self.store
            .record_audit(&audit::inbox_read(stored.len(), &actor))
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(pb::ListInboxResponse {
            items: stored.iter().map(inbox_item).collect(),
        }))
    }

    async fn get_referral(
        &self,
        request: Request<pb::GetReferralRequest>,
    ) -> Result<Response<pb::ReferralRecord>, Status> {
        let actor = audit::local_actor(&request);
        let text = request.into_inner().referral_id;
        let id = Uuid::parse_str(&text)
            .map_err(|_| Status::invalid_argument("referral_id: is not a UUID"))?;
        let (stored, events) = self.held(id).await?;
        if stored.direction == Direction::Inbound {
            // Nothing is shown until the read is on record.
            self.store
                .record_audit(&audit::case_read(&stored.referral, &actor))
                .await
                .map_err(|e| store_status(&e))?;
            tracing::info!(referral_id = %id, "received referral read through the Agency API");
        }
        Ok(Response::new(referral_record(&stored, &events)))
    }

    async fn list_outbox(
        &self,
        request: Request<pb::ListOutboxRequest>,
    ) -> Result<Response<pb::ListOutboxResponse>, Status> {
        let request = request.into_inner();
        let limit = limit(request.limit);
        let entries = if request.dead_only {
            self.store.dead_letters(limit).await
        } else {
            self.store.outbox(limit).await
        }
        .map_err(|e| store_status(&e))?;
        Ok(Response::new(pb::ListOutboxResponse {
            entries: entries.iter().map(outbox_entry).collect(),
        }))
    }

    type WatchOutboxStream = ReceiverStream<Result<pb::OutboxEntry, Status>>;

    async fn watch_outbox(
        &self,
        _request: Request<pb::WatchOutboxRequest>,
    ) -> Result<Response<Self::WatchOutboxStream>, Status> {
        let mut settled = self.outbox.watch();
        let stopping = self.outbox.stopping();
        let (tx, rx) = mpsc::channel(64);
        // Ends when the caller goes away, the node stops, or the caller falls too far behind.
        tokio::spawn(async move {
            tokio::pin!(stopping);
            loop {
                let event = tokio::select! {
                    _ = &mut stopping => break,
                    _ = tx.closed() => break,
                    event = settled.recv() => event,
                };
                let item = match event {
                    Ok(entry) => Ok(outbox_entry(&entry)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        Err(Status::resource_exhausted(format!(
                            "this watcher fell {missed} messages behind; list the outbox, then watch again"
                        )))
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let last = item.is_err();
                if tx.send(item).await.is_err() || last {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn record_consent(
        &self,
        request: Request<pb::RecordConsentRequest>,
    ) -> Result<Response<pb::Consent>, Status> {
        let actor = audit::local_actor(&request);
        let wire = request
            .into_inner()
            .consent
            .ok_or_else(|| Status::invalid_argument("consent: is required"))?;
        let federation = self.trust.state().local.identity.federation.clone();
        let mut consent = convert::consent_from_proto(wire, &federation)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // The node assigns identity and time; a client cannot backdate a record.
        consent.id = Uuid::now_v7();
        consent.recorded_at = OffsetDateTime::now_utc();
        consent.revoked_at = None;
        consent
            .validate()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.store
            .put_consent(&consent, &actor)
            .await
            .map_err(|e| store_status(&e))?;
        tracing::info!(consent_id = %consent.id, "consent recorded");
        Ok(Response::new(convert::consent_to_proto(&consent)))
    }

    async fn list_consents(
        &self,
        request: Request<pb::ListConsentsRequest>,
    ) -> Result<Response<pb::ListConsentsResponse>, Status> {
        let federation = self.trust.state().local.identity.federation.clone();
        let consents = self
            .store
            .consents(limit(request.into_inner().limit), &federation)
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(pb::ListConsentsResponse {
            consents: consents.iter().map(convert::consent_to_proto).collect(),
        }))
    }

    async fn get_consent(
        &self,
        request: Request<pb::GetConsentRequest>,
    ) -> Result<Response<pb::Consent>, Status> {
        let id = consent_id(&request.into_inner().consent_id)?;
        let federation = self.trust.state().local.identity.federation.clone();
        let consent = self
            .store
            .consent(id, &federation)
            .await
            .map_err(|e| store_status(&e))?
            .ok_or_else(|| Status::not_found(format!("no consent {id} on this node")))?;
        Ok(Response::new(convert::consent_to_proto(&consent)))
    }

    async fn revoke_consent(
        &self,
        request: Request<pb::RevokeConsentRequest>,
    ) -> Result<Response<pb::Consent>, Status> {
        let actor = audit::local_actor(&request);
        let id = consent_id(&request.into_inner().consent_id)?;
        let federation = self.trust.state().local.identity.federation.clone();
        let (consent, notify) = self
            .store
            .revoke_consent(id, OffsetDateTime::now_utc(), &federation, &actor)
            .await
            .map_err(|e| store_status(&e))?
            .ok_or_else(|| Status::not_found(format!("no consent {id} on this node")))?;
        for peer in &notify {
            self.outbox.notify(peer);
        }
        tracing::info!(consent_id = %id, retracted = notify.len(), "consent revoked");
        Ok(Response::new(convert::consent_to_proto(&consent)))
    }

    async fn get_retraction(
        &self,
        request: Request<pb::GetRetractionRequest>,
    ) -> Result<Response<pb::RetractionProgress>, Status> {
        let id = consent_id(&request.into_inner().consent_id)?;
        let progress = self
            .store
            .retraction_progress(id)
            .await
            .map_err(|e| store_status(&e))?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "consent {id} has not been revoked on this node, so nothing is being retracted"
                ))
            })?;
        Ok(Response::new(convert::retraction_progress_to_proto(
            &progress,
        )))
    }

    async fn list_tombstones(
        &self,
        request: Request<pb::ListTombstonesRequest>,
    ) -> Result<Response<pb::ListTombstonesResponse>, Status> {
        let tombstones = self
            .store
            .tombstones(limit(request.into_inner().limit))
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(pb::ListTombstonesResponse {
            tombstones: tombstones.iter().map(convert::tombstone_to_proto).collect(),
        }))
    }

    async fn update_referral_status(
        &self,
        request: Request<pb::UpdateReferralStatusRequest>,
    ) -> Result<Response<pb::ReferralRecord>, Status> {
        let actor = audit::local_actor(&request);
        let r = request.into_inner();
        let id = Uuid::parse_str(&r.referral_id)
            .map_err(|_| Status::invalid_argument("referral_id: is not a UUID"))?;
        let status = convert::status_from_proto(r.status, "status")
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
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
                Status::failed_precondition(format!("{other} is no longer a peer of this node"))
            })?;
        let mut update = StatusUpdate {
            id: Uuid::now_v7(),
            referral_id: id,
            author: author.clone(),
            status,
            at: OffsetDateTime::now_utc(),
            reason: Some(r.reason).filter(|reason| !reason.trim().is_empty()),
            outcome: r.outcome.map(convert::outcome_from_proto),
            withheld: Vec::new(),
            forwarded_to: None,
        };
        // The update passes the filter like any disclosure: its reason is free text
        // (NARRATIVE) and its outcome an assessment (ASSESSMENT).
        let exchange = Exchange {
            sender: filter::local_party(&state.local, author),
            recipient: filter::party_of_peer(&other_peer),
            purpose: referral.purpose,
            basis: referral.legal_basis,
            justified: filter::justified(referral.justification.as_deref()),
            reidentify: false,
        };
        filter::filter_status_update(&self.policy, &exchange, &mut update);
        let change = self
            .store
            .change_status(&update, side, other, &actor)
            .await
            .map_err(|e| store_status(&e))?;
        change.map_err(|e| match e {
            TransitionError::WrongParty { .. } => Status::permission_denied(e.to_string()),
            TransitionError::NotFromHere { .. } => Status::failed_precondition(e.to_string()),
            TransitionError::Missing(_) => Status::invalid_argument(e.to_string()),
        })?;
        tracing::info!(referral_id = %id, status = %status, to = %other, "status changed and queued for the other party");
        self.outbox.notify(other);
        // The staff member who made the change sees the result; that is not a new read.
        let (stored, events) = self.held(id).await?;
        Ok(Response::new(referral_record(&stored, &events)))
    }

    async fn retry_message(
        &self,
        request: Request<pb::RetryMessageRequest>,
    ) -> Result<Response<pb::OutboxEntry>, Status> {
        let id = Uuid::parse_str(&request.into_inner().message_id)
            .map_err(|_| Status::invalid_argument("message_id: is not a UUID"))?;
        let peer = self
            .store
            .retry_dead(id)
            .await
            .map_err(|e| store_status(&e))?
            .ok_or_else(|| Status::not_found(format!("no dead letter {id} in the outbox")))?;
        if let Ok(peer) = tatmx_certs::TeamIdentity::parse_uri(&peer) {
            self.outbox.notify(&peer);
        }
        tracing::info!(message_id = %id, "dead letter queued again by staff");
        let entry = self
            .store
            .outbox_entry(id)
            .await
            .map_err(|e| store_status(&e))?
            .ok_or_else(|| Status::not_found(format!("no message {id} in the outbox")))?;
        Ok(Response::new(outbox_entry(&entry)))
    }

    async fn request_consultation(
        &self,
        request: Request<pb::RequestConsultationRequest>,
    ) -> Result<Response<pb::Consultation>, Status> {
        let actor = audit::local_actor(&request);
        let r = request.into_inner();
        if r.partners.is_empty() {
            return Err(Status::invalid_argument(
                "partners: name at least one partner team",
            ));
        }
        if self.trust.state().local.role != crate::trust::Role::Core {
            return Err(Status::failed_precondition(
                "only a core team asks partners for consultations; this node's team is not one",
            ));
        }
        if r.question.trim().is_empty() {
            return Err(Status::invalid_argument("question: is required"));
        }
        let due = r
            .due
            .map(|d| convert::timestamp_from_proto(Some(d), "due"))
            .transpose()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // The recipients are the partners; the draft's own recipient field is not used.
        let mut case = r
            .referral
            .map(|d| {
                convert::new_referral_from_proto(pb::NewReferral {
                    recipient: "-".into(),
                    ..d
                })
            })
            .transpose()
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .ok_or_else(|| {
                Status::invalid_argument("referral: the case to consult on is required")
            })?;
        // A consultation is a consultation, whatever the draft said.
        case.purpose = crate::referral::Purpose::Consultation;
        let details = ConsultationDetails {
            id: Uuid::now_v7(),
            question: r.question,
            due,
        };
        // Every partner's copy is prepared before any is stored, so one unknown partner
        // leaves nothing half-sent.
        let mut prepared = Vec::new();
        for partner in &r.partners {
            let draft = NewReferral {
                recipient: partner.clone(),
                ..case.clone()
            };
            prepared.push(
                self.prepare(draft, Some(details.clone()), None, Vec::new())
                    .await?,
            );
        }
        for (disclosure, subject) in &prepared {
            self.commit(
                disclosure,
                &Submission {
                    subject: subject.as_deref(),
                    actor: &actor,
                    ..Default::default()
                },
            )
            .await?;
        }
        tracing::info!(consultation_id = %details.id, partners = prepared.len(), "consultation fanned out");
        self.consultation(details.id).await.map(Response::new)
    }

    async fn list_consultations(
        &self,
        _request: Request<pb::ListConsultationsRequest>,
    ) -> Result<Response<pb::ListConsultationsResponse>, Status> {
        let all = self
            .store
            .consultations(None)
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(pb::ListConsultationsResponse {
            consultations: all
                .iter()
                .map(|(id, copies)| Self::consultation_view(*id, copies))
                .collect(),
        }))
    }

    async fn get_consultation(
        &self,
        request: Request<pb::GetConsultationRequest>,
    ) -> Result<Response<pb::Consultation>, Status> {
        let id = Uuid::parse_str(&request.into_inner().consultation_id)
            .map_err(|_| Status::invalid_argument("consultation_id: is not a UUID"))?;
        self.consultation(id).await.map(Response::new)
    }

    async fn forward_referral(
        &self,
        request: Request<pb::ForwardReferralRequest>,
    ) -> Result<Response<pb::SubmitReferralResponse>, Status> {
        let actor = audit::local_actor(&request);
        let r = request.into_inner();
        let id = Uuid::parse_str(&r.referral_id)
            .map_err(|_| Status::invalid_argument("referral_id: is not a UUID"))?;
        let (stored, _) = self.held(id).await?;
        if stored.direction != Direction::Inbound {
            return Err(Status::failed_precondition(
                "only a referral this team received can be forwarded",
            ));
        }
        let original = stored.referral;
        // Categories their sender labelled NO_REDISCLOSURE never leave again.
        let mut content = original.content.clone();
        let mut level_of_concern = original.level_of_concern.clone();
        let mut kept_back = Vec::new();
        for category in original.categories() {
            if original.labels_of(category).contains(&NO_REDISCLOSURE) {
                let mut shell = Referral {
                    content,
                    level_of_concern,
                    ..original.clone()
                };
                filter::remove(&mut shell, category);
                content = shell.content;
                level_of_concern = shell.level_of_concern;
                kept_back.push(category);
            }
        }
        let purpose = match r.purpose {
            0 => original.purpose,
            p => convert::purpose_from_proto(p, "purpose")
                .map_err(|e| Status::invalid_argument(e.to_string()))?,
        };
        let legal_basis = match r.legal_basis {
            0 => original.legal_basis,
            b => convert::basis_from_proto(b, "legal_basis")
                .map_err(|e| Status::invalid_argument(e.to_string()))?,
        };
        let draft = NewReferral {
            recipient: r.recipient,
            purpose,
            level_of_concern,
            legal_basis,
            justification: Some(r.justification)
                .filter(|j| !j.trim().is_empty())
                .or(original.justification.clone()),
            consent_ref: original.consent_ref.clone(),
            content,
            case_ref: None,
            reidentify: false,
        };
        // The consent scope the original sender attached stands in for the consent, which
        // stays at the original sender's node; without one, nothing is disclosed on consent.
        let scope_consent = original.consent_scope.as_ref().map(|scope| Consent {
            id: Uuid::nil(),
            subject: String::new(),
            grantor: crate::consent::Grantor::Subject,
            provision: scope.provision.clone(),
            valid_from: OffsetDateTime::UNIX_EPOCH,
            valid_until: scope.valid_until,
            revoked_at: None,
            recorded_at: OffsetDateTime::now_utc(),
        });
        let mut provenance = original.provenance.clone();
        provenance.push(crate::referral::Hop {
            team: original.sender.clone(),
            at: original.created_at,
        });
        let (mut disclosure, _) = self
            .prepare(draft, None, Some(scope_consent), provenance)
            .await?;
        for category in kept_back {
            let reason = "labelled NO_REDISCLOSURE by its sender: a recipient may never pass it on"
                .to_owned();
            disclosure
                .outgoing
                .withheld
                .push(crate::referral::Withheld {
                    category,
                    reasons: vec![reason.clone()],
                    rules: vec![filter::NO_REDISCLOSURE_RULE.to_owned()],
                    pseudonymized: false,
                });
            disclosure.decisions.push(FieldDecision {
                category,
                outcome: Outcome::Withhold,
                rules: vec![filter::NO_REDISCLOSURE_RULE.to_owned()],
                reasons: vec![reason],
                labels: vec![NO_REDISCLOSURE.to_owned()],
            });
        }
        if !r.dry_run {
            self.commit(
                &disclosure,
                &Submission {
                    forwarded_from: Some(original.id),
                    actor: &actor,
                    ..Default::default()
                },
            )
            .await?;
            // The original sender is told where its referral went.
            let state = self.trust.state();
            let update = StatusUpdate {
                id: Uuid::now_v7(),
                referral_id: original.id,
                author: original.recipient.clone(),
                status: crate::referral::ReferralStatus::Forwarded,
                at: OffsetDateTime::now_utc(),
                reason: None,
                outcome: None,
                withheld: Vec::new(),
                forwarded_to: Some(disclosure.outgoing.recipient.clone()),
            };
            if state.peer(&original.sender).is_some() {
                self.store
                    .change_status(&update, Side::Recipient, &original.sender, &actor)
                    .await
                    .map_err(|e| store_status(&e))?
                    .map_err(|e| Status::failed_precondition(e.to_string()))?;
                self.outbox.notify(&original.sender);
            }
            tracing::info!(
                referral_id = %original.id,
                forward_id = %disclosure.outgoing.id,
                to = %disclosure.outgoing.recipient,
                "referral forwarded"
            );
        }
        Ok(Response::new(submission(&disclosure, r.dry_run)))
    }
}
