//! The Federation API as this node calls it: every outbound call to a peer.
//!
//! [`PeerClient::deliver`] is where a referral, a status update, a case message, a retraction or
//! a retraction's acknowledgement is sent: signed, stamped with the time, and counted only once the peer's
//! receipt checks out. A refusal is sorted into worth-retrying or not by its reason code
//! ([`crate::refusal`]) and gRPC code, and a transport failure by the type of its error, never
//! by message text. [`PeerClient::audit_consistency`] serves the witness and
//! [`PeerClient::directory`] the directory refresh. What to send when, and what to record, is
//! the callers' business (`outbox`, `witness`, `refresh`).

use std::time::Duration;

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
    /// Protocol version 2's generated client, over the same channel.
    v2: tatmx_proto::v2::federation_client::FederationClient<Channel>,
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
            v2: tatmx_proto::v2::federation_client::FederationClient::new(channel),
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
            .v2
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
    let retry = match reason {
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
