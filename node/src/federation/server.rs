//! The Federation API, server side: what other nodes may ask of this one.
//!
//! Every handler starts by turning the connection's verified certificate into a
//! [`VerifiedPeer`] through [`Trust::authorize`]; there is no other way to learn who is calling,
//! and a message body's claim about its sender is only compared against it, never believed.
//! A message is acknowledged only after it is committed to disk, with a receipt signed by this
//! node over the message's digest; the sender's own signature over the message is checked
//! first and kept with it ([`super::evidence`]). Those checks are the steps to a [`Received`],
//! the only form in which the store takes a received message. Every refusal carries a stable
//! reason code ([`crate::refusal`]) and is written to the audit log.

use std::sync::Arc;

use prost::Message;
use tatmx_certs::FederationId;
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::federation_server::Federation;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::SENT_AT_HEADER;
use super::evidence::{self, EvidenceError};
use super::witness::Witness;
use crate::audit;
use crate::case_message::{CaseMessage, CaseMessageKind, CaseRefusal};
use crate::convert;
use crate::filter;
use crate::outbox::Outbox;
use crate::policy::{Exchange, Policy};
use crate::received::{Receivable, ReceiveError, Received, SenderChecked};
use crate::referral::{Referral, ReferralStatus, StatusUpdate};
use crate::refusal::{Reason, refuse, refuse_with};
use crate::retention::RetentionSettings;
use crate::retraction::{Retraction, RetractionAck};
use crate::store::{Applied, Inbound, MessageProof, Store, StoreError};
use crate::trust::PeerCertificate;
use crate::trust::{Trust, TrustError, VerifiedPeer};

/// The most two nodes' clocks may differ. Beyond it, certificate validity, receipts and audit
/// times stop meaning what they say, so a call is refused with a message that names the cause.
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

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
    /// Checks the audit checkpoints peers show.
    witness: Witness,
}

impl FederationService {
    /// Builds the service over the node's shared state.
    pub fn new(
        trust: Trust,
        store: Store,
        outbox: Outbox,
        policy: Arc<Policy>,
        retention: RetentionSettings,
        witness: Witness,
    ) -> Self {
        Self {
            trust,
            store,
            outbox,
            policy,
            retention,
            witness,
        }
    }

    /// Wakes delivery to every peer that has new messages.
    fn notify_all(&self, peers: &[tatmx_certs::TeamIdentity]) {
        for peer in peers {
            self.outbox.notify(peer);
        }
    }

    /// The node's store, for the handlers of protocol version 2.
    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// Who is calling, as proven by the connection's certificate and recognised as a peer.
    pub(super) fn caller<T>(
        &self,
        request: &Request<T>,
        method: &'static str,
    ) -> Result<(VerifiedPeer, Arc<PeerCertificate>), Status> {
        let certificate = request.extensions().get::<Arc<PeerCertificate>>();
        let peer = self
            .trust
            .authorize(certificate.map(Arc::as_ref))
            .map_err(|e| {
                tracing::warn!(method, serial = certificate.map(|c| c.serial_hex()), error = %e, "federation call refused");
                crate::metrics::Refusal::of_trust(&e).attach(refuse(trust_reason(&e), e.to_string()))
            })?;
        let certificate = certificate
            .cloned()
            .ok_or_else(|| refuse(Reason::NotAuthenticated, "no client certificate"))?;
        check_clock(request)?;
        Ok((peer, certificate))
    }

    /// Checks the sender's signature over a message and signs this node's receipt for it: the
    /// evidence both sides keep, with the message as the store takes it.
    fn evidence<M: Receivable>(
        &self,
        peer: &VerifiedPeer,
        certificate: &PeerCertificate,
        message: SenderChecked<M>,
        signature: Option<pb::MessageSignature>,
    ) -> Result<Received<M>, Status> {
        let state = self.trust.state();
        let verified =
            evidence::verify_message(&state, peer, certificate.der(), message, signature)
                .map_err(|e| evidence_status(&e))?;
        let received_at = self.store.clock().now();
        evidence::sign_receipt(&state, peer, verified, received_at).map_err(|e| evidence_status(&e))
    }

    /// The signed receipt for a message, with this node's latest audit checkpoint.
    async fn receipt(
        &self,
        proof: &MessageProof,
        duplicate: bool,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        let checkpoint = self
            .store
            .latest_checkpoint()
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(evidence::receipt(
            proof,
            duplicate,
            checkpoint.as_ref().map(convert::checkpoint_to_proto),
        )))
    }

    /// Writes a refused call to the audit log: which peer (as its certificate claims, even if
    /// it is not trusted), which method, and the status it got.
    pub(super) async fn audited<T>(
        &self,
        claimed: Option<String>,
        method: &str,
        result: Result<T, Status>,
    ) -> Result<T, Status> {
        if let Err(status) = &result {
            crate::metrics::get()
                .inbound_rejected
                .get_or_create(&vec![
                    ("method", method.to_owned()),
                    ("code", format!("{:?}", status.code())),
                    (
                        "reason",
                        crate::metrics::Refusal::of(status).as_str().to_owned(),
                    ),
                ])
                .inc();
            let record = audit::inbound_rejected(
                claimed.as_deref(),
                method,
                status.code(),
                status.message(),
            );
            if let Err(e) = self.store.record_audit(&record).await {
                tracing::error!(error = %e, method, "recording a refused call failed");
            }
        }
        result
    }

    async fn deliver(
        &self,
        request: Request<pb::DeliverReferralRequest>,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        let (peer, certificate) = self.caller(&request, "DeliverReferral")?;
        let message = request.into_inner();
        self.witness.observe(peer.identity(), message.checkpoint);
        let wire = message
            .referral
            .ok_or_else(|| refuse(Reason::InvalidMessage, "referral: is required"))?;
        let referral = sent_as::<Referral>(wire.encode_to_vec(), &peer)?;
        let received = self.evidence(&peer, &certificate, referral, message.signature)?;
        let referral = received.message();
        let state = self.trust.state();
        let Some(local) = state.own_identity_in(&referral.sender.federation) else {
            return Err(refuse(
                Reason::NotAMember,
                format!(
                    "this node is not a member of {}",
                    referral.sender.federation
                ),
            ));
        };
        if &referral.recipient != local {
            return Err(refuse(
                Reason::WrongRecipient,
                format!(
                    "referral.recipient {} is not this node's team, {local}",
                    referral.recipient
                ),
            ));
        }
        // The receiver enforces too: nothing is kept that this node may not hold.
        let sender_peer = state
            .peer(peer.identity())
            .map(|entry| entry.peer.clone())
            .ok_or_else(|| refuse(Reason::UnknownPeer, "the caller is no longer a peer"))?;
        if referral.consultation.is_some() && sender_peer.role != crate::trust::Role::Core {
            return Err(refuse(
                Reason::RoleRefused,
                "only a core team asks for consultations, and your team is not one",
            ));
        }
        let exchange = Exchange {
            sender: filter::party_of_peer(&sender_peer),
            recipient: filter::local_party(&state.local, local),
            purpose: referral.purpose,
            basis: referral.legal_basis,
            justified: filter::justified(referral.justification.as_deref()),
            reidentify: false,
        };
        if let Err(refusal) = filter::check_inbound(&self.policy, &exchange, referral) {
            tracing::warn!(
                referral_id = %referral.id,
                from = %peer.identity(),
                category = %refusal.category,
                rules = ?refusal.rules,
                "inbound referral refused by this node's hold policy"
            );
            return Err(crate::metrics::Refusal::PolicyDenied
                .attach(refuse(Reason::PolicyRefused, refusal.to_string())));
        }
        let ack = StatusUpdate {
            id: Uuid::now_v7(),
            referral_id: referral.id,
            author: local.clone(),
            status: ReferralStatus::Received,
            at: self.store.clock().now(),
            reason: None,
            reason_code: None,
            outcome: None,
            withheld: Vec::new(),
            forwarded_to: None,
        };
        let period = time::Duration::try_from(self.retention.period(referral.purpose))
            .unwrap_or(time::Duration::MAX);
        let retain_until = self.store.clock().now().saturating_add(period);
        match self
            .store
            .receive_referral(&received, &ack, retain_until)
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
                self.receipt(received.proof(), false).await
            }
            Ok(Inbound::Duplicate) => {
                tracing::info!(referral_id = %referral.id, from = %peer.identity(), "duplicate referral acknowledged again");
                self.receipt(received.proof(), true).await
            }
            Ok(Inbound::Conflict) => {
                tracing::warn!(referral_id = %referral.id, from = %peer.identity(), "message id reused with different content");
                Err(replayed(referral.id))
            }
            Ok(Inbound::UnknownReferral) => Err(unexpected()),
            Err(e) => Err(store_status(&e)),
        }
    }

    async fn status(
        &self,
        request: Request<pb::UpdateStatusRequest>,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        let (peer, certificate) = self.caller(&request, "UpdateStatus")?;
        let message = request.into_inner();
        self.witness.observe(peer.identity(), message.checkpoint);
        let wire = message
            .update
            .ok_or_else(|| refuse(Reason::InvalidMessage, "update: is required"))?;
        let update = sent_as::<StatusUpdate>(wire.encode_to_vec(), &peer)?;
        let received = self.evidence(&peer, &certificate, update, message.signature)?;
        let update = received.message();
        match self.store.receive_status_update(&received).await {
            Ok(Ok(Inbound::Stored)) => {
                tracing::info!(
                    referral_id = %update.referral_id,
                    from = %peer.identity(),
                    status = %update.status,
                    "status update received"
                );
                self.receipt(received.proof(), false).await
            }
            Ok(Ok(Inbound::Duplicate)) => self.receipt(received.proof(), true).await,
            Ok(Ok(Inbound::Conflict)) => Err(replayed(update.id)),
            Ok(Ok(Inbound::UnknownReferral)) => Err(refuse_with(
                Reason::UnknownReferral,
                format!(
                    "no referral {} is shared between your team and this one",
                    update.referral_id
                ),
                [("referral_id", update.referral_id.to_string())],
            )),
            Ok(Err(refused)) => {
                tracing::warn!(
                    referral_id = %update.referral_id,
                    from = %peer.identity(),
                    status = %update.status,
                    error = %refused,
                    "status update refused by the lifecycle"
                );
                Err(refuse(Reason::TransitionRefused, refused.to_string()))
            }
            Err(e) => Err(store_status(&e)),
        }
    }

    async fn case_message(
        &self,
        request: Request<pb::DeliverCaseMessageRequest>,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        let (peer, certificate) = self.caller(&request, "DeliverCaseMessage")?;
        let message = request.into_inner();
        self.witness.observe(peer.identity(), message.checkpoint);
        let wire = message
            .message
            .ok_or_else(|| refuse(Reason::InvalidMessage, "message: is required"))?;
        let checked = sent_as::<CaseMessage>(wire.encode_to_vec(), &peer)?;
        let received = self.evidence(&peer, &certificate, checked, message.signature)?;
        let case = received.message();
        let unknown = || {
            refuse_with(
                Reason::UnknownReferral,
                format!(
                    "no referral {} is shared between your team and this one",
                    case.referral_id
                ),
                [("referral_id", case.referral_id.to_string())],
            )
        };
        let state = self.trust.state();
        let sender_peer = state
            .peer(peer.identity())
            .map(|entry| entry.peer.clone())
            .ok_or_else(|| refuse(Reason::UnknownPeer, "the caller is no longer a peer"))?;
        let kind = case.kind();
        if matches!(
            kind,
            CaseMessageKind::ManagementPlan | CaseMessageKind::Reassessment
        ) && sender_peer.role != crate::trust::Role::Core
        {
            return Err(refuse(
                Reason::RoleRefused,
                CaseRefusal::NotCore { kind }.to_string(),
            ));
        }
        // The receiver enforces too: nothing is kept that this node may not hold, judged on
        // the purpose and basis of the referral the message belongs to.
        let Some((held, _)) = self
            .store
            .referral(case.referral_id)
            .await
            .map_err(|e| store_status(&e))?
        else {
            return Err(unknown());
        };
        let Some(local) = state.own_identity_in(&peer.identity().federation) else {
            return Err(refuse(
                Reason::NotAMember,
                format!(
                    "this node is not a member of {}",
                    peer.identity().federation
                ),
            ));
        };
        let exchange = Exchange {
            sender: filter::party_of_peer(&sender_peer),
            recipient: filter::local_party(&state.local, local),
            purpose: held.referral.purpose,
            basis: held.referral.legal_basis,
            justified: filter::justified(held.referral.justification.as_deref()),
            reidentify: false,
        };
        if let Err(refusal) = filter::check_inbound_case(&self.policy, &exchange, case) {
            tracing::warn!(
                referral_id = %case.referral_id,
                from = %peer.identity(),
                category = %refusal.category,
                rules = ?refusal.rules,
                "inbound case message refused by this node's hold policy"
            );
            return Err(crate::metrics::Refusal::PolicyDenied
                .attach(refuse(Reason::PolicyRefused, refusal.to_string())));
        }
        match self.store.receive_case_message(&received).await {
            Ok(Ok(Inbound::Stored)) => {
                let categories: Vec<&str> = case.categories().iter().map(|c| c.as_str()).collect();
                tracing::info!(
                    referral_id = %case.referral_id,
                    message_id = %case.id,
                    from = %peer.identity(),
                    kind = kind.as_str(),
                    urgent = case.urgent(),
                    categories = ?categories,
                    "case message received"
                );
                self.receipt(received.proof(), false).await
            }
            Ok(Ok(Inbound::Duplicate)) => self.receipt(received.proof(), true).await,
            Ok(Ok(Inbound::Conflict)) => Err(replayed(case.id)),
            Ok(Ok(Inbound::UnknownReferral)) => Err(unknown()),
            Ok(Err(refused)) => {
                tracing::warn!(
                    referral_id = %case.referral_id,
                    from = %peer.identity(),
                    kind = kind.as_str(),
                    error = %refused,
                    "case message refused by the case's rules"
                );
                Err(match refused {
                    CaseRefusal::NotShared(_) => unknown(),
                    CaseRefusal::NotCore { .. } => refuse(Reason::RoleRefused, refused.to_string()),
                    _ => refuse(Reason::TransitionRefused, refused.to_string()),
                })
            }
            Err(e) => Err(store_status(&e)),
        }
    }

    async fn retraction(
        &self,
        request: Request<pb::RetractRequest>,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        let (peer, certificate) = self.caller(&request, "Retract")?;
        let message = request.into_inner();
        self.witness.observe(peer.identity(), message.checkpoint);
        let wire = message
            .retraction
            .ok_or_else(|| refuse(Reason::InvalidMessage, "retraction: is required"))?;
        let retraction = sent_as::<Retraction>(wire.encode_to_vec(), &peer)?;
        let received = self.evidence(&peer, &certificate, retraction, message.signature)?;
        let retraction = received.message();
        let state = self.trust.state();
        let Some(local) = state.own_identity_in(&peer.identity().federation) else {
            return Err(refuse(
                Reason::NotAMember,
                format!(
                    "this node is not a member of {}",
                    peer.identity().federation
                ),
            ));
        };
        let applied = self
            .store
            .receive_retraction(&received, local)
            .await
            .map_err(|e| store_status(&e))?;
        if applied.outcome == Inbound::Stored {
            tracing::info!(
                retraction_id = %retraction.retraction_id,
                referral_id = %retraction.referral_id,
                from = %peer.identity(),
                onward = applied.notify.len().saturating_sub(1),
                "retraction applied; the referral is purged"
            );
        }
        self.answer(&applied, received.proof(), unexpected).await
    }

    /// The answer to a retraction or acknowledgement once the store has applied it.
    async fn answer(
        &self,
        applied: &Applied,
        proof: &MessageProof,
        unknown: impl FnOnce() -> Status,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        match applied.outcome {
            Inbound::Stored => {
                self.notify_all(&applied.notify);
                self.receipt(proof, false).await
            }
            Inbound::Duplicate => self.receipt(proof, true).await,
            Inbound::Conflict => Err(replayed(proof.message_id)),
            Inbound::UnknownReferral => Err(unknown()),
        }
    }

    async fn retraction_ack(
        &self,
        request: Request<pb::AcknowledgeRetractionRequest>,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        let (peer, certificate) = self.caller(&request, "AcknowledgeRetraction")?;
        let message = request.into_inner();
        self.witness.observe(peer.identity(), message.checkpoint);
        let wire = message
            .ack
            .ok_or_else(|| refuse(Reason::InvalidMessage, "ack: is required"))?;
        let ack = sent_as::<RetractionAck>(wire.encode_to_vec(), &peer)?;
        let received = self.evidence(&peer, &certificate, ack, message.signature)?;
        let ack = received.message();
        let applied = self
            .store
            .receive_retraction_ack(&received)
            .await
            .map_err(|e| store_status(&e))?;
        if applied.outcome == Inbound::Stored {
            tracing::info!(
                retraction_id = %ack.retraction_id,
                referral_id = %ack.purged.referral_id,
                holder = %ack.purged.team,
                from = %peer.identity(),
                held = ack.held,
                onward = ack.downstream.len(),
                "retraction acknowledged"
            );
        }
        self.answer(&applied, received.proof(), || {
            refuse_with(
                Reason::UnknownRetraction,
                format!(
                    "no copy {} under retraction {} was reported to this node by your team",
                    ack.purged.referral_id, ack.retraction_id
                ),
                [
                    ("referral_id", ack.purged.referral_id.to_string()),
                    ("retraction_id", ack.retraction_id.to_string()),
                ],
            )
        })
        .await
    }
}

/// Refuses a call whose sender's clock is more than [`MAX_CLOCK_SKEW`] away from this node's.
/// A call without the header (an older client) is not checked.
fn check_clock<T>(request: &Request<T>) -> Result<(), Status> {
    let Some(value) = request.metadata().get(SENT_AT_HEADER) else {
        return Ok(());
    };
    let sent_ms: i64 = value
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            refuse(
                Reason::InvalidMessage,
                format!("{SENT_AT_HEADER}: is not a number"),
            )
        })?;
    let skew_ms = evidence::millis(OffsetDateTime::now_utc()).saturating_sub(sent_ms);
    let skew = time::Duration::milliseconds(skew_ms);
    if skew.abs() > MAX_CLOCK_SKEW {
        let seconds = skew.whole_seconds();
        return Err(crate::metrics::Refusal::ClockSkew.attach(refuse(
            Reason::ClockSkew,
            format!(
                "clock skew: your node's clock is {} s {} this node's, more than the {} s allowed; \
             fix the time (NTP) on one of them",
                seconds.abs(),
                if seconds > 0 { "behind" } else { "ahead of" },
                MAX_CLOCK_SKEW.whole_seconds()
            ),
        )));
    }
    Ok(())
}

/// Decodes a message from the bytes that came, and refuses it if they are not a valid message
/// or if its body names a sender other than the caller's certificate: the body's claim is
/// compared, never believed. The first step to a [`Received`].
fn sent_as<M: Receivable>(wire: Vec<u8>, peer: &VerifiedPeer) -> Result<SenderChecked<M>, Status> {
    SenderChecked::decode(wire, peer.identity()).map_err(|e| match &e {
        ReceiveError::Invalid(invalid) => {
            if let crate::wire::WireError::Invalid(conversion) = invalid {
                tracing::warn!(peer = %peer.identity(), kind = M::KIND.as_str(), field = %conversion.field, "inbound message invalid");
            }
            refuse(Reason::InvalidMessage, e.to_string())
        }
        ReceiveError::SenderMismatch { field, .. } => {
            tracing::warn!(peer = %peer.identity(), field, "envelope sender differs from certificate");
            refuse(Reason::SenderMismatch, e.to_string())
        }
    })
}

/// A message id used again for different content: a replay, not a redelivery.
fn replayed(message_id: Uuid) -> Status {
    refuse_with(
        Reason::ConflictingContent,
        format!("message id {message_id} was already received with different content"),
        [("message_id", message_id.to_string())],
    )
}

/// A store outcome that the call cannot have: a defect of this node, not of the message.
fn unexpected() -> Status {
    refuse(Reason::Internal, "unexpected store outcome")
}

/// The reason for a refusal decided by the trust state.
fn trust_reason(error: &TrustError) -> Reason {
    match error {
        TrustError::NoCertificate | TrustError::NoIdentity => Reason::NotAuthenticated,
        TrustError::ForeignFederation(_) | TrustError::Certificate { .. } => {
            Reason::CertificateUntrusted
        }
        TrustError::Revoked { .. } => Reason::CertificateRevoked,
        TrustError::NotPinned(_) => Reason::CertificateNotPinned,
        TrustError::UnknownPeer(_) | TrustError::InvalidRecipient(_) => Reason::UnknownPeer,
        TrustError::Blocked(_) => Reason::PeerBlocked,
    }
}

/// Maps a refused signature, or a receipt this node could not sign, to its refusal.
fn evidence_status(error: &EvidenceError) -> Status {
    let reason = match error {
        EvidenceError::Unsigned | EvidenceError::Signature(_) => Reason::BadSignature,
        EvidenceError::SignerUntrusted(_) => Reason::SignerUntrusted,
        EvidenceError::SignerMismatch { .. } => Reason::SenderMismatch,
        EvidenceError::NotAMember(_) => Reason::NotAMember,
        EvidenceError::Signing(e) => {
            tracing::error!(error = %e, "signing a receipt failed");
            return refuse(
                Reason::Internal,
                "this node could not sign a receipt; nothing was saved",
            );
        }
    };
    refuse(reason, error.to_string())
}

/// The identity a call's certificate claims, trusted or not, for the audit of refusals.
fn claimed<T>(request: &Request<T>) -> Option<String> {
    request
        .extensions()
        .get::<Arc<PeerCertificate>>()
        .map(|c| c.identity().uri())
}

/// Maps a store failure to a status that tells the caller whether to retry, without detail.
pub(crate) fn store_status(error: &StoreError) -> Status {
    if error.is_busy() {
        refuse(Reason::StoreBusy, "the node's store is busy; retry later")
    } else if error.is_full() {
        tracing::error!(error = %error, "the store's disk is full");
        refuse(
            Reason::StoreFull,
            "the node's disk is full; nothing was saved; retry once an admin has freed space",
        )
    } else {
        tracing::error!(error = %error, "store operation failed");
        refuse(
            Reason::StoreFailed,
            "the node could not store the message; nothing was saved",
        )
    }
}

#[tonic::async_trait]
impl Federation for FederationService {
    async fn hello(
        &self,
        request: Request<pb::HelloRequest>,
    ) -> Result<Response<pb::HelloResponse>, Status> {
        let who = claimed(&request);
        let result = self.caller(&request, "Hello").and_then(|(peer, _)| {
            let Some(agreed) = crate::version::agree(&request.get_ref().protocol_versions) else {
                return Err(refuse(
                    Reason::NoCommonVersion,
                    format!(
                        "protocol_versions: this node speaks {:?} and your node none of them",
                        tatmx_proto::PROTOCOL_VERSIONS
                    ),
                ));
            };
            tracing::info!(peer = %peer.identity(), version = agreed, "hello");
            let state = self.trust.state();
            let local = &state.local;
            // Answer with the identity of the caller's federation, which is the one it verified.
            let identity = state
                .own_identity_in(&peer.identity().federation)
                .unwrap_or(&local.identity);
            Ok(Response::new(pb::HelloResponse {
                identity: identity.uri(),
                role: convert::role_to_proto(local.role).into(),
                protocol_version: agreed,
                software_version: env!("CARGO_PKG_VERSION").to_owned(),
                protocol_versions: tatmx_proto::PROTOCOL_VERSIONS.to_vec(),
            }))
        });
        self.audited(who, "Hello", result).await
    }

    async fn deliver_referral(
        &self,
        request: Request<pb::DeliverReferralRequest>,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        let who = claimed(&request);
        let result = self.deliver(request).await;
        self.audited(who, "DeliverReferral", result).await
    }

    async fn update_status(
        &self,
        request: Request<pb::UpdateStatusRequest>,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        let who = claimed(&request);
        let result = self.status(request).await;
        self.audited(who, "UpdateStatus", result).await
    }

    async fn deliver_case_message(
        &self,
        request: Request<pb::DeliverCaseMessageRequest>,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        let who = claimed(&request);
        let result = self.case_message(request).await;
        self.audited(who, "DeliverCaseMessage", result).await
    }

    async fn get_directory(
        &self,
        request: Request<pb::GetDirectoryRequest>,
    ) -> Result<Response<pb::GetDirectoryResponse>, Status> {
        let who = claimed(&request);
        let result = (|| {
            let (peer, _) = self.caller(&request, "GetDirectory")?;
            let federation = FederationId::new(request.get_ref().federation.clone())
                .map_err(|e| refuse(Reason::InvalidMessage, format!("federation: {e}")))?;
            let document = self
                .trust
                .state()
                .directory(&federation)
                .map(|d| d.document.clone())
                .unwrap_or_default();
            tracing::debug!(peer = %peer.identity(), %federation, "directory requested");
            Ok(Response::new(pb::GetDirectoryResponse { document }))
        })();
        self.audited(who, "GetDirectory", result).await
    }

    async fn retract(
        &self,
        request: Request<pb::RetractRequest>,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        let who = claimed(&request);
        let result = self.retraction(request).await;
        self.audited(who, "Retract", result).await
    }

    async fn acknowledge_retraction(
        &self,
        request: Request<pb::AcknowledgeRetractionRequest>,
    ) -> Result<Response<pb::DeliveryReceipt>, Status> {
        let who = claimed(&request);
        let result = self.retraction_ack(request).await;
        self.audited(who, "AcknowledgeRetraction", result).await
    }

    async fn get_audit_consistency(
        &self,
        request: Request<pb::GetAuditConsistencyRequest>,
    ) -> Result<Response<pb::GetAuditConsistencyResponse>, Status> {
        let who = claimed(&request);
        let result = async {
            let (peer, _) = self.caller(&request, "GetAuditConsistency")?;
            let r = request.get_ref();
            if r.to_seq < r.from_seq || r.to_seq - r.from_seq > 100_000 {
                return Err(refuse(
                    Reason::AuditRangeInvalid,
                    "to_seq must be at or after from_seq, and at most 100000 entries later",
                ));
            }
            let leaves = self
                .store
                .leaf_hashes(r.from_seq, r.to_seq)
                .await
                .map_err(|e| store_status(&e))?
                .ok_or_else(|| {
                    refuse(Reason::AuditRangeMissing, format!(
                        "entries {} to {} are not all in this node's audit log",
                        r.from_seq + 1,
                        r.to_seq
                    ))
                })?;
            tracing::debug!(peer = %peer.identity(), from = r.from_seq, to = r.to_seq, "audit consistency proof given");
            Ok(Response::new(pb::GetAuditConsistencyResponse {
                leaf_hashes: leaves.iter().map(|l| l.to_vec()).collect(),
            }))
        }
        .await;
        self.audited(who, "GetAuditConsistency", result).await
    }
}
