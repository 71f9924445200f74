//! The Federation API: what other nodes may ask of this one.
//!
//! Every handler starts by turning the connection's verified certificate into a
//! [`VerifiedPeer`] through [`Trust::authorize`]; there is no other way to learn who is calling,
//! and a message body's claim about its sender is only compared against it, never believed.
//! A message is acknowledged only after it is committed to disk.

use std::sync::Arc;

use tatmx_certs::FederationId;
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::federation_server::Federation;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::convert;
use crate::filter;
use crate::outbox::Outbox;
use crate::policy::{Exchange, Policy};
use crate::referral::{ReferralStatus, StatusUpdate};
use crate::retention::RetentionSettings;
use crate::store::{Inbound, Store, StoreError};
use crate::tls::PeerCertificate;
use crate::trust::{Trust, TrustError, VerifiedPeer};

/// The peer-facing gRPC service.
#[derive(Debug, Clone)]
pub struct FederationService {
    /// Decides who may call.
    trust: Trust,
    /// Where received messages go.
    store: Store,
    /// Wakes delivery of acknowledgements back to senders.
    outbox: Outbox,
    /// Decides what this node may hold.
    policy: Arc<Policy>,
    /// How long what it holds is kept.
    retention: RetentionSettings,
}

impl FederationService {
    /// Builds the service over the node's shared state.
    pub fn new(
        trust: Trust,
        store: Store,
        outbox: Outbox,
        policy: Arc<Policy>,
        retention: RetentionSettings,
    ) -> Self {
        Self {
            trust,
            store,
            outbox,
            policy,
            retention,
        }
    }

    /// Wakes delivery to every peer that has new messages.
    fn notify_all(&self, peers: &[tatmx_certs::TeamIdentity]) {
        for peer in peers {
            self.outbox.notify(peer);
        }
    }

    /// Who is calling, as proven by the connection's certificate and recognised as a peer.
    fn caller<T>(
        &self,
        request: &Request<T>,
        method: &'static str,
    ) -> Result<VerifiedPeer, Status> {
        let certificate = request.extensions().get::<Arc<PeerCertificate>>();
        self.trust
            .authorize(certificate.map(Arc::as_ref))
            .map_err(|e| {
                tracing::warn!(method, serial = certificate.map(|c| c.serial_hex()), error = %e, "federation call refused");
                match e {
                    TrustError::NoCertificate | TrustError::NoIdentity => {
                        Status::unauthenticated(e.to_string())
                    }
                    _ => Status::permission_denied(e.to_string()),
                }
            })
    }

    fn receipt(message_id: Uuid, duplicate: bool) -> Response<pb::DeliveryReceipt> {
        Response::new(pb::DeliveryReceipt {
            message_id: message_id.to_string(),
            received_at: Some(convert::timestamp_to_proto(OffsetDateTime::now_utc())),
            duplicate,
        })
    }
}

/// Maps a store failure to a status that tells the caller whether to retry, without detail.
pub(crate) fn store_status(error: &StoreError) -> Status {
    if error.is_busy() {
        Status::unavailable("the node's store is busy; retry later")
    } else {
        tracing::error!(error = %error, "store operation failed");
        Status::internal("the node could not store the message; nothing was saved")
    }
}

#[tonic::async_trait]
impl Federation for FederationService {
    async fn hello(
        &self,
        request: Request<pb::HelloRequest>,
    ) -> Result<Response<pb::HelloResponse>, Status> {
        let peer = self.caller(&request, "Hello")?;
        tracing::info!(peer = %peer.identity(), "hello");
        let state = self.trust.state();
        let local = &state.local;
        // Answer with the identity of the caller's federation, which is the one it verified.
        let identity = state
            .own_identity_in(&peer.identity().federation)
            .unwrap_or(&local.identity);
        Ok(Response::new(pb::HelloResponse {
            identity: identity.uri(),
            role: convert::role_to_proto(local.role).into(),
            protocol_version: tatmx_proto::PROTOCOL_VERSION,
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    async fn deliver_referral(
        &self,
        request: Request<pb::DeliverReferralRequest>,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        let peer = self.caller(&request, "DeliverReferral")?;
        let wire = request
            .into_inner()
            .referral
            .ok_or_else(|| Status::invalid_argument("referral: is required"))?;
        let referral = convert::referral_from_proto(wire).map_err(|e| {
            tracing::warn!(peer = %peer.identity(), field = %e.field, "inbound referral invalid");
            Status::invalid_argument(e.to_string())
        })?;
        if &referral.sender != peer.identity() {
            tracing::warn!(peer = %peer.identity(), referral_id = %referral.id, "envelope sender differs from certificate");
            return Err(Status::permission_denied(format!(
                "referral.sender {} is not the identity of your certificate, {}",
                referral.sender,
                peer.identity()
            )));
        }
        let state = self.trust.state();
        let Some(local) = state.own_identity_in(&referral.sender.federation) else {
            return Err(Status::invalid_argument(format!(
                "this node is not a member of {}",
                referral.sender.federation
            )));
        };
        if &referral.recipient != local {
            return Err(Status::invalid_argument(format!(
                "referral.recipient {} is not this node's team, {local}",
                referral.recipient
            )));
        }
        // The receiver enforces too: nothing is kept that this node may not hold.
        let sender_peer = state
            .peer(peer.identity())
            .map(|entry| entry.peer.clone())
            .ok_or_else(|| Status::permission_denied("the caller is no longer a peer"))?;
        let exchange = Exchange {
            sender: filter::party_of_peer(&sender_peer),
            recipient: filter::local_party(&state.local, local),
            purpose: referral.purpose,
            basis: referral.legal_basis,
            justified: filter::justified(referral.justification.as_deref()),
            reidentify: false,
        };
        if let Err(refusal) = filter::check_inbound(&self.policy, &exchange, &referral) {
            tracing::warn!(
                referral_id = %referral.id,
                from = %peer.identity(),
                category = %refusal.category,
                rules = ?refusal.rules,
                "inbound referral refused by this node's hold policy"
            );
            return Err(Status::failed_precondition(refusal.to_string()));
        }
        let ack = StatusUpdate {
            id: Uuid::now_v7(),
            referral_id: referral.id,
            author: local.clone(),
            status: ReferralStatus::Received,
            at: OffsetDateTime::now_utc(),
            reason: None,
            outcome: None,
            withheld: Vec::new(),
            forwarded_to: None,
        };
        let period = time::Duration::try_from(self.retention.period(referral.purpose))
            .unwrap_or(time::Duration::MAX);
        let retain_until = OffsetDateTime::now_utc().saturating_add(period);
        match self
            .store
            .receive_referral(&referral, &ack, retain_until)
            .await
        {
            Ok(Inbound::Stored) => {
                let categories: Vec<&str> =
                    referral.categories().iter().map(|c| c.as_str()).collect();
                tracing::info!(
                    referral_id = %referral.id,
                    from = %peer.identity(),
                    categories = ?categories,
                    "referral received"
                );
                self.outbox.notify(&referral.sender);
                Ok(Self::receipt(referral.id, false))
            }
            Ok(Inbound::Duplicate) => {
                tracing::info!(referral_id = %referral.id, from = %peer.identity(), "duplicate referral acknowledged again");
                Ok(Self::receipt(referral.id, true))
            }
            Ok(Inbound::Conflict) => {
                tracing::warn!(referral_id = %referral.id, from = %peer.identity(), "message id reused with different content");
                Err(Status::already_exists(format!(
                    "message id {} was already received with different content",
                    referral.id
                )))
            }
            Ok(Inbound::UnknownReferral) => Err(Status::internal("unexpected store outcome")),
            Err(e) => Err(store_status(&e)),
        }
    }

    async fn update_status(
        &self,
        request: Request<pb::UpdateStatusRequest>,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        let peer = self.caller(&request, "UpdateStatus")?;
        let wire = request
            .into_inner()
            .update
            .ok_or_else(|| Status::invalid_argument("update: is required"))?;
        let update = convert::status_update_from_proto(wire)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if &update.author != peer.identity() {
            return Err(Status::permission_denied(format!(
                "update.author {} is not the identity of your certificate, {}",
                update.author,
                peer.identity()
            )));
        }
        match self
            .store
            .receive_status_update(&update, peer.identity())
            .await
        {
            Ok(Ok(Inbound::Stored)) => {
                tracing::info!(
                    referral_id = %update.referral_id,
                    from = %peer.identity(),
                    status = %update.status,
                    "status update received"
                );
                Ok(Self::receipt(update.id, false))
            }
            Ok(Ok(Inbound::Duplicate)) => Ok(Self::receipt(update.id, true)),
            Ok(Ok(Inbound::Conflict)) => Err(Status::already_exists(format!(
                "message id {} was already received with different content",
                update.id
            ))),
            Ok(Ok(Inbound::UnknownReferral)) => Err(Status::not_found(format!(
                "no referral {} is shared between your team and this one",
                update.referral_id
            ))),
            Ok(Err(refused)) => {
                tracing::warn!(
                    referral_id = %update.referral_id,
                    from = %peer.identity(),
                    status = %update.status,
                    error = %refused,
                    "status update refused by the lifecycle"
                );
                Err(Status::failed_precondition(refused.to_string()))
            }
            Err(e) => Err(store_status(&e)),
        }
    }

    async fn get_directory(
        &self,
        request: Request<pb::GetDirectoryRequest>,
    ) -> Result<Response<pb::GetDirectoryResponse>, Status> {
        let peer = self.caller(&request, "GetDirectory")?;
        let federation = FederationId::new(request.into_inner().federation)
            .map_err(|e| Status::invalid_argument(format!("federation: {e}")))?;
        let document = self
            .trust
            .state()
            .directory(&federation)
            .map(|d| d.document.clone())
            .unwrap_or_default();
        tracing::debug!(peer = %peer.identity(), %federation, "directory requested");
        Ok(Response::new(pb::GetDirectoryResponse { document }))
    }

    async fn retract(
        &self,
        request: Request<pb::RetractRequest>,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        let peer = self.caller(&request, "Retract")?;
        let wire = request
            .into_inner()
            .retraction
            .ok_or_else(|| Status::invalid_argument("retraction: is required"))?;
        let retraction = convert::retraction_from_proto(wire)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if &retraction.author != peer.identity() {
            return Err(Status::permission_denied(format!(
                "retraction.author {} is not the identity of your certificate, {}",
                retraction.author,
                peer.identity()
            )));
        }
        let state = self.trust.state();
        let Some(local) = state.own_identity_in(&peer.identity().federation) else {
            return Err(Status::invalid_argument(format!(
                "this node is not a member of {}",
                peer.identity().federation
            )));
        };
        let applied = self
            .store
            .receive_retraction(&retraction, peer.identity(), local)
            .await
            .map_err(|e| store_status(&e))?;
        match applied.outcome {
            Inbound::Stored => {
                tracing::info!(
                    retraction_id = %retraction.retraction_id,
                    referral_id = %retraction.referral_id,
                    from = %peer.identity(),
                    onward = applied.notify.len().saturating_sub(1),
                    "retraction applied; the referral is purged"
                );
                self.notify_all(&applied.notify);
                Ok(Self::receipt(retraction.id, false))
            }
            Inbound::Duplicate => Ok(Self::receipt(retraction.id, true)),
            Inbound::Conflict => Err(Status::already_exists(format!(
                "message id {} was already received with different content",
                retraction.id
            ))),
            Inbound::UnknownReferral => Err(Status::internal("unexpected store outcome")),
        }
    }

    async fn acknowledge_retraction(
        &self,
        request: Request<pb::AcknowledgeRetractionRequest>,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        let peer = self.caller(&request, "AcknowledgeRetraction")?;
        let wire = request
            .into_inner()
            .ack
            .ok_or_else(|| Status::invalid_argument("ack: is required"))?;
        let ack = convert::retraction_ack_from_proto(wire)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if &ack.author != peer.identity() {
            return Err(Status::permission_denied(format!(
                "ack.author {} is not the identity of your certificate, {}",
                ack.author,
                peer.identity()
            )));
        }
        let applied = self
            .store
            .receive_retraction_ack(&ack, peer.identity())
            .await
            .map_err(|e| store_status(&e))?;
        match applied.outcome {
            Inbound::Stored => {
                tracing::info!(
                    retraction_id = %ack.retraction_id,
                    referral_id = %ack.purged.referral_id,
                    holder = %ack.purged.team,
                    from = %peer.identity(),
                    held = ack.held,
                    onward = ack.downstream.len(),
                    "retraction acknowledged"
                );
                self.notify_all(&applied.notify);
                Ok(Self::receipt(ack.id, false))
            }
            Inbound::Duplicate => Ok(Self::receipt(ack.id, true)),
            Inbound::Conflict => Err(Status::already_exists(format!(
                "message id {} was already received with different content",
                ack.id
            ))),
            Inbound::UnknownReferral => Err(Status::not_found(format!(
                "no copy {} under retraction {} was reported to this node by your team",
                ack.purged.referral_id, ack.retraction_id
            ))),
        }
    }
}
