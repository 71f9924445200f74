//! The Federation API, protocol version 2, server side: batches of signed bytes, answered with
//! one signed receipt, and Merkle consistency proofs of the audit log.
//!
//! Served beside version 1 on the same port; two nodes agree on the version with
//! `tatmx.v1.Federation.Hello` ([`crate::version`]). The checks are version 1's, message by
//! message, through the same handlers of [`super::server`]: what changes is how messages
//! travel and how their evidence is kept (docs/PROTOCOL.md).

use sha2::{Digest, Sha256};
use tatmx_proto::v2 as pb2;
use tatmx_proto::v2::federation_server::Federation;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use super::evidence::{self, EvidenceError};
use super::server::{FederationService, check_skew, claimed, evidence_status, sent_as};
use crate::case_message::CaseMessage;
use crate::received::{Receivable, VerifiedBatch};
use crate::referral::{Referral, StatusUpdate};
use crate::refusal::{self, Reason, refuse};
use crate::retraction::{Retraction, RetractionAck};
use crate::signing::{self, MessageKind};
use crate::trust::VerifiedPeer;

/// The most messages one batch may carry.
pub const MAX_BATCH_MESSAGES: usize = 256;

/// The most payload bytes a sender puts in one batch of several messages. A message larger
/// than this travels in a batch of its own, up to the node's largest message.
pub const BATCH_BYTES: usize = 1 << 20;

/// The largest batch a node with messages of at most `max_message_bytes` accepts: a batch of
/// one largest message, or of many smaller ones up to [`BATCH_BYTES`], with room for the
/// envelopes, signature and tree head around them.
pub fn max_batch_bytes(max_message_bytes: usize) -> usize {
    max_message_bytes.max(BATCH_BYTES).saturating_add(64 * 1024)
}

/// The peer-facing gRPC service of protocol version 2.
#[derive(Debug, Clone)]
pub struct FederationV2 {
    /// Version 1's service, whose checks and state every message goes through.
    inner: FederationService,
}

impl FederationV2 {
    /// Serves version 2 over the same state as `inner`.
    pub fn new(inner: FederationService) -> Self {
        Self { inner }
    }
}

/// What became of one message of a batch, as the receipt lists it.
enum Settled {
    Accepted,
    Duplicate,
    Refused(Status),
}

impl Settled {
    fn of(result: Result<bool, Status>) -> Self {
        match result {
            Ok(false) => Settled::Accepted,
            Ok(true) => Settled::Duplicate,
            Err(status) => Settled::Refused(status),
        }
    }

    /// The outcome byte the receipt signs.
    fn byte(&self) -> u8 {
        match self {
            Settled::Accepted => 1,
            Settled::Duplicate => 2,
            Settled::Refused(_) => 3,
        }
    }

    fn result(&self) -> pb2::MessageResult {
        match self {
            Settled::Accepted => pb2::MessageResult {
                outcome: pb2::Outcome::Accepted.into(),
                ..Default::default()
            },
            Settled::Duplicate => pb2::MessageResult {
                outcome: pb2::Outcome::Duplicate.into(),
                ..Default::default()
            },
            Settled::Refused(status) => pb2::MessageResult {
                outcome: pb2::Outcome::Refused.into(),
                reason: refusal::reason(status)
                    .unwrap_or(Reason::Internal)
                    .as_str()
                    .to_owned(),
                message: status.message().to_owned(),
            },
        }
    }
}

impl FederationV2 {
    async fn batch(
        &self,
        request: Request<pb2::Batch>,
        claimed: Option<&str>,
    ) -> Result<Response<pb2::BatchReceipt>, Status> {
        let inner = &self.inner;
        let (peer, certificate) = inner.caller(&request, "Deliver")?;
        let batch = request.into_inner();
        check_skew(batch.sent_at_ms)?;
        if batch.messages.is_empty() || batch.messages.len() > MAX_BATCH_MESSAGES {
            return Err(refuse(
                Reason::InvalidMessage,
                format!(
                    "messages: a batch carries 1 to {MAX_BATCH_MESSAGES} messages, not {}",
                    batch.messages.len()
                ),
            ));
        }
        let payload_bytes: usize = batch.messages.iter().map(|m| m.payload.len()).sum();
        if batch.messages.len() > 1 && payload_bytes > BATCH_BYTES {
            return Err(refuse(
                Reason::InvalidMessage,
                format!(
                    "messages: a batch of several messages carries at most {BATCH_BYTES} bytes \
                     of payloads, not {payload_bytes}"
                ),
            ));
        }
        let state = inner.trust.state();
        let federation = &peer.identity().federation;
        let Some(local) = state.own_identity_in(federation).cloned() else {
            return Err(refuse(
                Reason::NotAMember,
                format!("this node is not a member of {federation}"),
            ));
        };
        // The batch's signature is checked over the bytes as they came, before any is decoded.
        let signature = batch
            .signature
            .ok_or_else(|| evidence_status(&EvidenceError::Unsigned))?;
        let signer =
            evidence::signing_certificate(&state, &peer, certificate.der(), signature.certificate)
                .map_err(|e| evidence_status(&e))?;
        if signature.certificate_sha256 != Sha256::digest(&signer).as_slice() {
            return Err(refuse(
                Reason::BadSignature,
                "signature.certificate_sha256: is not the fingerprint of the signing certificate",
            ));
        }
        let parts: Vec<(u32, &[u8])> = batch
            .messages
            .iter()
            .map(|m| (m.kind as u32, m.payload.as_slice()))
            .collect();
        let verified = VerifiedBatch::verify(
            peer.identity(),
            &local,
            batch.sent_at_ms,
            &parts,
            signer,
            signature.scheme,
            signature.value,
        )
        .map_err(|refused| evidence_status(&refused.into()))?;
        inner
            .witness
            .observe_tree_head(peer.identity(), batch.tree_head);

        // Each message is applied on its own, side by side: their writes share the store's
        // group commit, and one refused message leaves the others alone.
        let received_at = inner.store.clock().now();
        let settling = batch
            .messages
            .into_iter()
            .enumerate()
            .map(|(index, envelope)| {
                let (peer, verified) = (&peer, &verified);
                async move {
                    let result = self
                        .settle(peer, verified, index, envelope, received_at)
                        .await;
                    if let Err(status) = &result {
                        tracing::info!(
                            peer = %peer.identity(),
                            index,
                            reason = refusal::reason(status).map(Reason::as_str),
                            "a message of a batch was refused"
                        );
                    }
                    Settled::of(result)
                }
            });
        let settled = futures_util::future::join_all(settling).await;
        for outcome in &settled {
            if let Settled::Refused(status) = outcome {
                let refused: Result<(), Status> = Err(status.clone());
                let _ = inner
                    .audited(claimed.map(str::to_owned), "Deliver", refused)
                    .await;
            }
        }

        let outcomes: Vec<u8> = settled.iter().map(Settled::byte).collect();
        let received_at_ms = signing::millis(received_at);
        let own = evidence::own_signer(&state, federation).map_err(|e| evidence_status(&e))?;
        let value = own
            .sign(&signing::batch_receipt_payload(
                &local.uri(),
                &peer.identity().uri(),
                received_at_ms,
                verified.root(),
                &outcomes,
            ))
            .map_err(|e| evidence_status(&EvidenceError::Signing(e)))?;
        let accepted = outcomes.iter().filter(|o| **o == 1).count();
        tracing::info!(
            peer = %peer.identity(),
            messages = outcomes.len(),
            accepted,
            duplicates = outcomes.iter().filter(|o| **o == 2).count(),
            refused = outcomes.iter().filter(|o| **o == 3).count(),
            "batch received"
        );
        Ok(Response::new(pb2::BatchReceipt {
            root: verified.root().to_vec(),
            received_at_ms,
            results: settled.iter().map(Settled::result).collect(),
            signature: Some(pb2::Signature {
                scheme: signing::SCHEME_ECDSA_P256_SHA256,
                value,
                certificate_sha256: Sha256::digest(own.certificate()).to_vec(),
                certificate: own.certificate().to_vec(),
            }),
            tree_head: inner.witness.own_tree_head().await,
        }))
    }

    /// Decodes one message of a verified batch from its bytes, and applies it through the
    /// checks of its kind: `Ok(true)` for a redelivery.
    async fn settle(
        &self,
        peer: &VerifiedPeer,
        batch: &VerifiedBatch,
        index: usize,
        envelope: pb2::Envelope,
        received_at: OffsetDateTime,
    ) -> Result<bool, Status> {
        let inner = &self.inner;
        let kind = MessageKind::from_number(envelope.kind as u32).ok_or_else(|| {
            refuse(
                Reason::InvalidMessage,
                format!(
                    "messages[{index}].kind: {} is not a kind this node knows",
                    envelope.kind
                ),
            )
        })?;
        let payload = envelope.payload;
        match kind {
            MessageKind::Referral => {
                let received = in_batch::<Referral>(payload, peer, batch, index, received_at)?;
                inner.accept_referral(peer, &received, false).await
            }
            MessageKind::StatusUpdate => {
                let received = in_batch::<StatusUpdate>(payload, peer, batch, index, received_at)?;
                inner.accept_status_update(peer, &received).await
            }
            MessageKind::CaseMessage => {
                let received = in_batch::<CaseMessage>(payload, peer, batch, index, received_at)?;
                inner.accept_case_message(peer, &received).await
            }
            MessageKind::Retraction => {
                let received = in_batch::<Retraction>(payload, peer, batch, index, received_at)?;
                inner.accept_retraction(peer, &received).await
            }
            MessageKind::RetractionAck => {
                let received = in_batch::<RetractionAck>(payload, peer, batch, index, received_at)?;
                inner.accept_retraction_ack(peer, &received).await
            }
        }
    }
}

/// The steps to a [`crate::received::Received`] for a message of a batch: decoded from its
/// bytes, its sender compared with the caller, and its digest found where the batch's
/// signature put it.
fn in_batch<M: Receivable>(
    payload: Vec<u8>,
    peer: &VerifiedPeer,
    batch: &VerifiedBatch,
    index: usize,
    received_at: OffsetDateTime,
) -> Result<crate::received::Received<M>, Status> {
    sent_as::<M>(payload, peer)?
        .in_batch(batch, index, received_at)
        .map_err(|refused| evidence_status(&refused.into()))
}

#[tonic::async_trait]
impl Federation for FederationV2 {
    async fn deliver(
        &self,
        request: Request<pb2::Batch>,
    ) -> Result<Response<pb2::BatchReceipt>, Status> {
        let who = claimed(&request);
        let result = self.batch(request, who.as_deref()).await;
        self.inner.audited(who, "Deliver", result).await
    }

    async fn get_audit_consistency(
        &self,
        request: Request<pb2::AuditConsistencyRequest>,
    ) -> Result<Response<pb2::AuditConsistencyProof>, Status> {
        super::consistency::get_audit_consistency(&self.inner, request).await
    }
}
