//! The Federation API as this node calls it: every outbound call to a peer.
//!
//! [`PeerClient::deliver`] is where a referral, a status update, a case message, a retraction or
//! a retraction's acknowledgement is sent: signed, stamped with the time, and counted only once the peer's
//! receipt checks out. A refusal is sorted into worth-retrying or not by its reason code
//! ([`crate::refusal`]) and gRPC code, and a transport failure by the type of its error, never
//! by message text. [`PeerClient::audit_consistency`] serves the witness and
//! [`PeerClient::directory`] the directory refresh. What to send when, and what to record, is
//! the callers' business (`outbox`, `witness`, `refresh`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};

use prost::Message;
use tatmx_certs::{FederationId, TeamIdentity};
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::federation_client::FederationClient;
use time::OffsetDateTime;
use tonic::transport::{Channel, Endpoint};

use super::SENT_AT_HEADER;
use super::evidence;
use crate::config::DeliverySettings;
use crate::refusal::{self, Reason};
use crate::signing;
use crate::store::{DueMessage, MessageKind, MessageProof};
use crate::trust::{Trust, TrustError};

/// One peer's Federation API over one long-lived HTTP/2 channel.
#[derive(Debug, Clone)]
pub struct PeerClient {
    /// The team this client reaches, and whose receipts it accepts.
    peer: TeamIdentity,
    /// Where its channel dials.
    endpoint: http::Uri,
    /// This node's trust: its own signing identity, and the anchors receipts must chain to.
    trust: Trust,
    /// The generated client over the channel.
    inner: FederationClient<Channel>,
    /// Protocol version 2's client over the same channel.
    inner_v2: tatmx_proto::v2::federation_client::FederationClient<Channel>,
    /// The protocol version agreed with the peer in `Hello`; 0 until then. Shared by the
    /// clones of this client, and forgotten when the peer stops serving it.
    version: Arc<AtomicU32>,
}

/// What became of a batch the peer answered with a receipt that checks out.
#[derive(Debug)]
pub struct BatchDelivered {
    /// One result per message, in the batch's order.
    pub results: Vec<Result<Delivered, DeliveryError>>,
    /// The peer's latest audit tree head, for the witness.
    pub tree_head: Option<tatmx_proto::v2::SignedTreeHead>,
}

/// A message the peer acknowledged with a receipt that checks out.
#[derive(Debug)]
pub struct Delivered {
    /// The peer had it already: a redelivery after a lost acknowledgement.
    pub duplicate: bool,
    /// The evidence of both sides, to store with the message.
    pub proof: MessageProof,
    /// The peer's latest audit checkpoint, for the witness.
    pub checkpoint: Option<pb::SignedCheckpoint>,
}

/// Why a delivery did not succeed, sorted by whether sending the same message again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryError {
    /// Worth retrying: the peer was unreachable, slow, busy, or does not (yet) trust this node.
    Transient {
        /// What went wrong, for the outbox's `last_error` and the peer's health.
        reason: String,
        /// The failure concerns certificates, so this node's view of the federation may be out
        /// of date: a directory refresh may heal it.
        certificates: bool,
    },
    /// The peer refused the message itself; sending it again gets the same answer.
    Permanent {
        /// What went wrong.
        reason: String,
    },
}

impl DeliveryError {
    fn transient(reason: impl Into<String>) -> Self {
        DeliveryError::Transient {
            reason: reason.into(),
            certificates: false,
        }
    }

    /// What went wrong, for people.
    pub fn reason(&self) -> &str {
        match self {
            DeliveryError::Transient { reason, .. } | DeliveryError::Permanent { reason } => reason,
        }
    }
}

impl PeerClient {
    /// A client for `peer` at `endpoint`. It connects lazily and reconnects by itself, so a
    /// peer that is down costs nothing until it comes back; each connection uses the trust
    /// current when it is made.
    pub fn new(
        trust: &Trust,
        peer: &TeamIdentity,
        endpoint: &http::Uri,
        settings: &DeliverySettings,
    ) -> Self {
        let channel = peer_channel(trust, peer, endpoint, settings);
        Self {
            peer: peer.clone(),
            endpoint: endpoint.clone(),
            trust: trust.clone(),
            inner: FederationClient::new(channel.clone()),
            inner_v2: tatmx_proto::v2::federation_client::FederationClient::new(channel),
            version: Arc::default(),
        }
    }

    /// A client for `peer` if it is admitted now (a peer, not blocked), at its endpoint.
    pub fn admitted(
        trust: &Trust,
        peer: &TeamIdentity,
        settings: &DeliverySettings,
    ) -> Result<Self, TrustError> {
        let endpoint = trust.state().admit(peer)?.peer.endpoint.clone();
        Ok(Self::new(trust, peer, &endpoint, settings))
    }

    /// Where this client's channel dials.
    pub fn endpoint(&self) -> &http::Uri {
        &self.endpoint
    }

    /// The protocol version this node and the peer both speak, asked with `Hello` the first
    /// time and remembered.
    pub async fn version(&self) -> Result<u32, DeliveryError> {
        let known = self.version.load(Ordering::Relaxed);
        if known != 0 {
            return Ok(known);
        }
        let answer = self
            .inner
            .clone()
            .hello(stamped(pb::HelloRequest {
                protocol_version: tatmx_proto::PROTOCOL_VERSION,
                protocol_versions: tatmx_proto::PROTOCOL_VERSIONS.to_vec(),
            }))
            .await
            .map_err(|status| classify(&status))?
            .into_inner();
        // A version 1 node lists nothing, and answers with the one version it speaks.
        let announced = if answer.protocol_versions.is_empty() {
            vec![answer.protocol_version.max(1)]
        } else {
            answer.protocol_versions
        };
        let agreed = crate::version::agree(&announced).ok_or_else(|| {
            DeliveryError::transient(format!(
                "the peer speaks protocol versions {announced:?}, none of which this node speaks"
            ))
        })?;
        tracing::debug!(peer = %self.peer, version = agreed, "protocol version agreed");
        self.version.store(agreed, Ordering::Relaxed);
        Ok(agreed)
    }

    /// Forgets the agreed version, so the next delivery asks again: the peer stopped serving
    /// it (downgraded, say).
    pub fn forget_version(&self) {
        self.version.store(0, Ordering::Relaxed);
    }

    /// Signs and sends queued messages as one batch (protocol version 2); returns once the
    /// peer has answered with a receipt that verifies, with each message's result. An error
    /// is the whole batch's: nothing in it counts as delivered.
    pub async fn deliver_batch(
        &self,
        messages: &[&DueMessage],
        tree_head: Option<tatmx_proto::v2::SignedTreeHead>,
    ) -> Result<BatchDelivered, DeliveryError> {
        use tatmx_proto::v2 as pb2;
        let state = self.trust.state();
        let federation = &self.peer.federation;
        let not_member = || DeliveryError::Permanent {
            reason: format!("this node is not a member of {federation}"),
        };
        let sender = state.own_identity_in(federation).ok_or_else(not_member)?;
        let signer = evidence::own_signer(&state, federation).map_err(|_| not_member())?;
        let parts: Vec<(MessageKind, &[u8])> = messages
            .iter()
            .map(|m| (m.kind, m.body.as_slice()))
            .collect();
        let sent_at_ms = evidence::millis(OffsetDateTime::now_utc());
        let sent = evidence::sign_batch(signer, sender, &self.peer, sent_at_ms, &parts)
            .map_err(|e| DeliveryError::transient(e.to_string()))?;
        let batch = pb2::Batch {
            messages: messages
                .iter()
                .map(|m| pb2::Envelope {
                    kind: m.kind.number() as i32,
                    payload: m.body.clone(),
                })
                .collect(),
            sent_at_ms,
            signature: Some(pb2::Signature {
                scheme: signing::SCHEME_ECDSA_P256_SHA256,
                value: sent.signature.clone(),
                certificate_sha256: Sha256::digest(&sent.certificate).to_vec(),
                // Always sent: the key may have been rotated since the channel connected.
                certificate: sent.certificate.clone(),
            }),
            tree_head,
        };
        let receipt = self
            .inner_v2
            .clone()
            .deliver(stamped(batch))
            .await
            .map_err(|status| {
                if status.code() == tonic::Code::Unimplemented {
                    self.forget_version();
                }
                classify(&status)
            })?
            .into_inner();
        let checked =
            evidence::check_batch_receipt(&state, &self.peer, &sent, &receipt).map_err(|e| {
                DeliveryError::Transient {
                    reason: e.to_string(),
                    certificates: e.concerns_certificates(),
                }
            })?;
        let results = messages
            .iter()
            .zip(&receipt.results)
            .enumerate()
            .map(|(index, (message, result))| match checked.outcomes[index] {
                outcome @ (1 | 2) => Ok(Delivered {
                    duplicate: outcome == 2,
                    proof: evidence::batch_proof(
                        &sent,
                        &checked,
                        index,
                        message.message_id,
                        message.kind,
                    ),
                    checkpoint: None,
                }),
                _ => Err(refused_in_batch(result)),
            })
            .collect();
        Ok(BatchDelivered {
            results,
            tree_head: receipt.tree_head,
        })
    }

    /// Signs and sends one queued message; returns once the peer has acknowledged it with a
    /// receipt that verifies.
    pub async fn deliver(
        &self,
        message: &DueMessage,
        checkpoint: Option<pb::SignedCheckpoint>,
    ) -> Result<Delivered, DeliveryError> {
        let state = self.trust.state();
        let signature = evidence::own_signer(&state, &self.peer.federation)
            .map_err(|e| DeliveryError::Permanent {
                reason: e.to_string(),
            })
            .and_then(|signer| {
                evidence::sign_message(signer, message.kind, &message.body)
                    .map_err(|e| DeliveryError::transient(e.to_string()))
            })?;
        let corrupt = |e: prost::DecodeError| DeliveryError::Permanent {
            reason: format!("stored body unreadable: {e}"),
        };
        let body = message.body.as_slice();
        let wire_signature = Some(signature.clone());
        let mut client = self.inner.clone();
        let receipt = match message.kind {
            MessageKind::Referral => {
                let referral = pb::Referral::decode(body).map_err(corrupt)?;
                client
                    .deliver_referral(stamped(pb::DeliverReferralRequest {
                        referral: Some(referral),
                        signature: wire_signature,
                        checkpoint,
                    }))
                    .await
            }
            MessageKind::StatusUpdate => {
                let update = pb::StatusUpdate::decode(body).map_err(corrupt)?;
                client
                    .update_status(stamped(pb::UpdateStatusRequest {
                        update: Some(update),
                        signature: wire_signature,
                        checkpoint,
                    }))
                    .await
            }
            MessageKind::Retraction => {
                let retraction = pb::Retraction::decode(body).map_err(corrupt)?;
                client
                    .retract(stamped(pb::RetractRequest {
                        retraction: Some(retraction),
                        signature: wire_signature,
                        checkpoint,
                    }))
                    .await
            }
            MessageKind::RetractionAck => {
                let ack = pb::RetractionAck::decode(body).map_err(corrupt)?;
                client
                    .acknowledge_retraction(stamped(pb::AcknowledgeRetractionRequest {
                        ack: Some(ack),
                        signature: wire_signature,
                        checkpoint,
                    }))
                    .await
            }
            MessageKind::CaseMessage => {
                let case_message = pb::CaseMessage::decode(body).map_err(corrupt)?;
                client
                    .deliver_case_message(stamped(pb::DeliverCaseMessageRequest {
                        message: Some(case_message),
                        signature: wire_signature,
                        checkpoint,
                    }))
                    .await
            }
        }
        .map_err(|status| classify(&status))?
        .into_inner();
        if receipt.message_id != message.message_id.to_string() {
            return Err(DeliveryError::transient(
                "the peer acknowledged a different message id",
            ));
        }
        let proof = evidence::check_receipt(
            &state,
            &self.peer,
            message.message_id,
            message.kind,
            body,
            &signature,
            &receipt,
        )
        .map_err(|e| DeliveryError::Transient {
            reason: e.to_string(),
            certificates: e.concerns_certificates(),
        })?;
        Ok(Delivered {
            duplicate: receipt.duplicate,
            proof,
            checkpoint: receipt.checkpoint,
        })
    }

    /// The leaf hashes of the peer's audit entries after `from` up to `to`, to check that its
    /// newer checkpoint extends the one held.
    pub async fn audit_consistency(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<Vec<u8>>, tonic::Status> {
        let answer = self
            .inner
            .clone()
            .get_audit_consistency(pb::GetAuditConsistencyRequest {
                from_seq: from,
                to_seq: to,
            })
            .await?;
        Ok(answer.into_inner().leaf_hashes)
    }

    /// The peer's signed tree head at `to_size` entries (0: its newest), with the RFC 9162
    /// proof that it extends the peer's tree of `from_size` entries (protocol version 2), for
    /// the witness to check.
    pub async fn audit_tree_consistency(
        &self,
        from_size: u64,
        to_size: u64,
    ) -> Result<tatmx_proto::v2::AuditConsistencyProof, tonic::Status> {
        let answer = self
            .inner_v2
            .clone()
            .get_audit_consistency(stamped(tatmx_proto::v2::AuditConsistencyRequest {
                from_size,
                to_size,
            }))
            .await?;
        Ok(answer.into_inner())
    }

    /// The peer's copy of `federation`'s signed directory; empty if it has none.
    pub async fn directory(&self, federation: &FederationId) -> Result<String, tonic::Status> {
        let answer = self
            .inner
            .clone()
            .get_directory(pb::GetDirectoryRequest {
                federation: federation.to_string(),
            })
            .await?;
        Ok(answer.into_inner().document)
    }
}

/// Sorts a message a batch receipt lists as refused by its reason code, as [`classify`] sorts a
/// refused call. A code this build does not know is retried: only the peer can say that the
/// message itself is wrong, and an unknown code says nothing this node can act on.
fn refused_in_batch(result: &tatmx_proto::v2::MessageResult) -> DeliveryError {
    let text = format!("{}: {}", result.reason, result.message);
    match result.reason.parse::<Reason>() {
        Ok(reason) if !reason.retry() => DeliveryError::Permanent { reason: text },
        Ok(reason) => DeliveryError::Transient {
            reason: text,
            certificates: reason.concerns_certificates(),
        },
        Err(_) => DeliveryError::transient(text),
    }
}

/// One long-lived HTTP/2 channel to a peer, over mutual TLS with the trust current at each
/// connection.
fn peer_channel(
    trust: &Trust,
    peer: &TeamIdentity,
    endpoint: &http::Uri,
    settings: &DeliverySettings,
) -> Channel {
    Endpoint::from(endpoint.clone())
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .connect_with_connector_lazy(crate::trust::handshake::connector(
            trust.states(),
            peer.clone(),
        ))
}

/// A request stamped with the time it is sent, so the peer can refuse a skewed clock by name.
fn stamped<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let now_ms = evidence::millis(OffsetDateTime::now_utc());
    if let Ok(value) = now_ms.to_string().parse() {
        request.metadata_mut().insert(SENT_AT_HEADER, value);
    }
    request
}

/// Sorts a failed call into retry-later or give-up: by the refusal's reason code when it has
/// one, else by its gRPC code; a transport failure (no answer from the peer at all) is always
/// worth retrying. The text is only for people.
pub fn classify(status: &tonic::Status) -> DeliveryError {
    use tonic::Code;
    let reason = refusal::reason(status);
    let tls = tls_error(status);
    let mut text = format!("{:?}: {}", status.code(), status.message());
    // The transport's own error (a refused TLS handshake, say) says more than "transport error".
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if reason == Some(Reason::ClockSkew) || tls.as_ref().is_some_and(not_valid_yet) {
        text.push_str(
            " (check both nodes' clocks: a certificate not valid yet usually means clock skew)",
        );
    }
    // A reply this node could not decode says nothing against the message sent.
    let reply_undecodable = std::error::Error::source(status)
        .is_some_and(|source| source.downcast_ref::<prost::DecodeError>().is_some());
    let retry = match reason {
        _ if reply_undecodable => true,
        Some(reason) => reason.retry(),
        // An older peer, or no answer at all. The message itself is wrong only if the peer
        // says so; sending it again then gets the same answer.
        None => !matches!(
            status.code(),
            Code::InvalidArgument
                | Code::AlreadyExists
                | Code::OutOfRange
                | Code::Unimplemented
                | Code::NotFound
                | Code::FailedPrecondition
        ),
    };
    if retry {
        DeliveryError::Transient {
            reason: text,
            certificates: reason.is_some_and(Reason::concerns_certificates)
                || tls.as_ref().is_some_and(concerns_certificates),
        }
    } else {
        DeliveryError::Permanent { reason: text }
    }
}

/// The TLS error under a failed call, if the connection failed in the handshake or was closed
/// by a TLS alert. rustls reports through `std::io::Error`, whose `source` skips the error it
/// wraps, so each link of the chain is also looked into.
pub fn tls_error(status: &tonic::Status) -> Option<rustls::Error> {
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return Some(tls.clone());
            }
            if let Some(alert) = alert_in_h2_text(io) {
                return Some(alert);
            }
        }
        source = cause.source();
    }
    None
}

/// The one transport failure read from text. h2 keeps only the kind and the text of an io
/// error, so a TLS alert that arrives after the handshake (as a TLS 1.3 server's refusal of a
/// client certificate does) reaches the caller as rustls's fixed wording, and not as a
/// `rustls::Error`. Only that wording is read, and only into an alert name rustls defines.
fn alert_in_h2_text(io: &std::io::Error) -> Option<rustls::Error> {
    if io.kind() != std::io::ErrorKind::InvalidData {
        return None;
    }
    let text = io.to_string();
    let name = text.strip_prefix("received fatal alert: ")?;
    (0..=u8::MAX)
        .map(rustls::AlertDescription::from)
        .find(|alert| format!("{alert:?}") == name)
        .map(rustls::Error::AlertReceived)
}

/// Whether a TLS failure is about a certificate: this node refused the peer's, or the peer
/// sent an alert refusing this node's.
fn concerns_certificates(error: &rustls::Error) -> bool {
    use rustls::AlertDescription as Alert;
    match error {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => true,
        rustls::Error::AlertReceived(alert) => matches!(
            alert,
            Alert::BadCertificate
                | Alert::UnsupportedCertificate
                | Alert::CertificateRevoked
                | Alert::CertificateExpired
                | Alert::CertificateUnknown
                | Alert::UnknownCA
                | Alert::CertificateRequired
        ),
        _ => false,
    }
}

/// Whether this node found the peer's certificate not valid yet: usually a clock is off.
fn not_valid_yet(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidYet
                | rustls::CertificateError::NotValidYetContext { .. }
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_this_node_cannot_decode_is_retried_and_a_refusal_of_the_bytes_sent_is_not() {
        use prost::Message as _;
        use tonic_types::StatusExt as _;
        let error = prost_types::Timestamp::decode(&[0xff, 0xff, 0xff][..]).unwrap_err();
        // Made here, by the codec reading the peer's reply.
        let local = tatmx_proto::codec::undecodable(&error);
        assert!(matches!(classify(&local), DeliveryError::Transient { .. }));
        // The same refusal as the peer sends it: no source, so the message itself was refused.
        let remote = tonic::Status::with_error_details(
            local.code(),
            local.message(),
            tonic_types::ErrorDetails::with_error_info(
                "INVALID_MESSAGE",
                crate::refusal::DOMAIN,
                std::collections::HashMap::new(),
            ),
        );
        assert!(matches!(classify(&remote), DeliveryError::Permanent { .. }));
    }

    fn retried(error: &DeliveryError) -> bool {
        matches!(error, DeliveryError::Transient { .. })
    }

    #[test]
    fn without_a_code_the_grpc_code_decides() {
        assert!(retried(&classify(&tonic::Status::unavailable("down"))));
        assert!(retried(&classify(&tonic::Status::permission_denied(
            "not yet a peer"
        ))));
        assert!(!retried(&classify(&tonic::Status::invalid_argument("bad"))));
        // An old peer's English text is not read: "clock skew" without the code is a
        // precondition like any other.
        assert!(!retried(&classify(&tonic::Status::failed_precondition(
            "clock skew: your node's clock is 600 s behind"
        ))));
    }

    #[test]
    fn the_code_decides_whatever_the_message_says() {
        // A misleading text, a code that says otherwise: the code wins.
        let skew = refusal::refuse(Reason::ClockSkew, "the message is invalid");
        assert!(retried(&classify(&skew)));
        assert!(
            classify(&skew)
                .reason()
                .contains("check both nodes' clocks")
        );
        let policy = refusal::refuse(Reason::PolicyRefused, "clock skew: certificate NotValidYet");
        let classified = classify(&policy);
        assert!(!retried(&classified));
        assert!(!classified.reason().contains("check both nodes' clocks"));
        // Every code is sorted exactly as it says.
        for reason in Reason::ALL {
            let classified = classify(&refusal::refuse(reason, "certificate"));
            assert_eq!(retried(&classified), reason.retry(), "{reason}");
            if let DeliveryError::Transient { certificates, .. } = classified {
                assert_eq!(certificates, reason.concerns_certificates(), "{reason}");
            }
        }
    }

    #[test]
    fn the_text_people_read_is_kept() {
        let status = refusal::refuse(Reason::InvalidMessage, "referral: is required");
        assert_eq!(
            classify(&status).reason(),
            "InvalidArgument: referral: is required"
        );
    }

    #[test]
    fn a_tls_failure_is_recognised_by_its_type() {
        let refused = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRevoked),
        );
        let status = tonic::Status::from_error(Box::new(refused));
        let classified = classify(&status);
        assert!(
            matches!(
                classified,
                DeliveryError::Transient {
                    certificates: true,
                    ..
                }
            ),
            "{classified:?}"
        );
        let early = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidYet),
        );
        let classified = classify(&tonic::Status::from_error(Box::new(early)));
        assert!(classified.reason().contains("check both nodes' clocks"));
        let down = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let classified = classify(&tonic::Status::from_error(Box::new(down)));
        assert!(
            matches!(
                classified,
                DeliveryError::Transient {
                    certificates: false,
                    ..
                }
            ),
            "{classified:?}"
        );
    }
}
