//! The Agency API: the agency's own staff and systems talking to their node.
//!
//! It listens only on a Unix socket with mode 0600, so the operating system decides who may
//! use it. Submitting a referral validates it, stores it and queues its delivery in one
//! transaction, then returns; delivery happens in the background, and its progress is visible
//! in the outbox.

use tatmx_proto::v1 as pb;
use tatmx_proto::v1::agency_server::Agency;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::convert;
use crate::federation::store_status;
use crate::outbox::Outbox;
use crate::referral::Referral;
use crate::store::{DeliveryState, Direction, MessageKind, OutboxEntry, Store, StoredReferral};
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
}

impl AgencyService {
    /// Builds the service over the node's shared state.
    pub fn new(trust: Trust, store: Store, outbox: Outbox) -> Self {
        Self {
            trust,
            store,
            outbox,
        }
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
        }
        .into(),
        referral_id: entry.referral_id.to_string(),
        peer: entry.peer.clone(),
        state: match entry.state {
            DeliveryState::Pending => pb::DeliveryState::Pending,
            DeliveryState::Delivered => pb::DeliveryState::Delivered,
            DeliveryState::Rejected => pb::DeliveryState::Rejected,
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
        let request = request.into_inner();
        let draft = request
            .referral
            .ok_or_else(|| Status::invalid_argument("referral: is required"))?;
        let draft = convert::new_referral_from_proto(draft)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
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
        let referral = Referral {
            id: Uuid::now_v7(),
            sender,
            recipient: recipient.identity.clone(),
            created_at: OffsetDateTime::now_utc(),
            purpose: draft.purpose,
            level_of_concern: draft.level_of_concern,
            legal_basis: draft.legal_basis,
            justification: draft.justification,
            consent_ref: draft.consent_ref,
            content: draft.content,
        };
        referral
            .validate()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let categories_disclosed = categories(&referral);
        if !request.dry_run {
            self.store
                .submit_referral(&referral)
                .await
                .map_err(|e| store_status(&e))?;
            let names: Vec<&str> = referral.categories().iter().map(|c| c.as_str()).collect();
            tracing::info!(
                referral_id = %referral.id,
                recipient = %referral.recipient,
                categories = ?names,
                "referral queued for delivery"
            );
            self.outbox.notify(&referral.recipient);
        }
        Ok(Response::new(pb::SubmitReferralResponse {
            referral_id: referral.id.to_string(),
            dry_run: request.dry_run,
            outgoing: Some(convert::referral_to_proto(&referral)),
            categories_disclosed,
        }))
    }

    async fn list_inbox(
        &self,
        request: Request<pb::ListInboxRequest>,
    ) -> Result<Response<pb::ListInboxResponse>, Status> {
        let stored = self
            .store
            .inbox(limit(request.into_inner().limit))
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
        let text = request.into_inner().referral_id;
        let id = Uuid::parse_str(&text)
            .map_err(|_| Status::invalid_argument("referral_id: is not a UUID"))?;
        let (stored, events) = self
            .store
            .referral(id)
            .await
            .map_err(|e| store_status(&e))?
            .ok_or_else(|| Status::not_found(format!("no referral {id} on this node")))?;
        tracing::info!(referral_id = %id, "referral read through the Agency API");
        Ok(Response::new(pb::ReferralRecord {
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
                })
                .collect(),
            categories: categories(&stored.referral),
        }))
    }

    async fn list_outbox(
        &self,
        request: Request<pb::ListOutboxRequest>,
    ) -> Result<Response<pb::ListOutboxResponse>, Status> {
        let entries = self
            .store
            .outbox(limit(request.into_inner().limit))
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(pb::ListOutboxResponse {
            entries: entries.iter().map(outbox_entry).collect(),
        }))
    }
}
