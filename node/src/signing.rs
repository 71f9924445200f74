//! Signatures by a node's key: over every message or batch it sends, every receipt it gives,
//! and every checkpoint or tree head of its audit log.
//!
//! The key is the node's TLS key (ECDSA P-256), so a signature proves the same identity the
//! connection did, and anyone holding the federation CA can check it later, offline, from the
//! certificate stored beside it. Every signed payload starts with the protocol version
//! (`tatmx/v1 ` or `tatmx/v2 `) and a context name: the key also signs TLS handshakes, and the
//! prefix keeps a signature made for one use from ever being valid for another.
//! docs/PROTOCOL.md gives every layout, and `proto/vectors/v2.json` examples of each.
//!
//! The evidence kept of each message, the [`MessageProof`], and the [`MessageKind`] every
//! signature names live here too: they are what these signatures are made over and kept in,
//! and the store, the Federation server and [`crate::received`] all share them.

use std::sync::Arc;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use rustls::SignatureScheme;
use rustls::sign::SigningKey;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use uuid::Uuid;
use x509_parser::prelude::{FromDer, X509Certificate};

/// ECDSA P-256 with SHA-256, ASN.1 DER: the only scheme of protocol v1.
pub const SCHEME_ECDSA_P256_SHA256: u32 = 1;

/// Why a signature could not be made or did not verify. Never carries message content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The node's key cannot make ECDSA P-256 signatures.
    #[error("the node key cannot sign with ECDSA P-256, which protocol v1 requires")]
    UnsupportedKey,
    /// The signer failed.
    #[error("signing failed")]
    Failed,
    /// No signature came with the message.
    #[error("is required: every message is signed by its sender")]
    Missing,
    /// A scheme other than the one protocol v1 uses.
    #[error("scheme {0} is not supported; protocol v1 uses 1 (ECDSA P-256 SHA-256)")]
    Scheme(u32),
    /// The certificate could not be read.
    #[error("the signer's certificate cannot be read")]
    Certificate,
    /// The signature does not match the bytes and the certificate.
    #[error("does not verify over the message with the signer's certificate")]
    Invalid,
}

/// The kinds of message nodes exchange: what an outbox entry carries, and the kind a message
/// signature names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A referral, for `Federation.DeliverReferral`.
    Referral,
    /// A status update, for `Federation.UpdateStatus`.
    StatusUpdate,
    /// A request to purge, for `Federation.Retract`.
    Retraction,
    /// A purge report, for `Federation.AcknowledgeRetraction`.
    RetractionAck,
    /// A message about a shared referral, for `Federation.DeliverCaseMessage`.
    CaseMessage,
}

impl MessageKind {
    /// The stored name; also the kind a message signature names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Referral => "referral",
            Self::StatusUpdate => "status-update",
            Self::Retraction => "retraction",
            Self::RetractionAck => "retraction-ack",
            Self::CaseMessage => "case-message",
        }
    }

    /// The kind's number in protocol version 2 (`tatmx.v2.MessageKind`).
    pub fn number(self) -> u32 {
        match self {
            Self::Referral => 1,
            Self::StatusUpdate => 2,
            Self::Retraction => 3,
            Self::RetractionAck => 4,
            Self::CaseMessage => 5,
        }
    }

    /// The kind with this number in protocol version 2; `None` for a kind this build does not
    /// know.
    pub fn from_number(number: u32) -> Option<Self> {
        match number {
            1 => Some(Self::Referral),
            2 => Some(Self::StatusUpdate),
            3 => Some(Self::Retraction),
            4 => Some(Self::RetractionAck),
            5 => Some(Self::CaseMessage),
            _ => None,
        }
    }

    /// The kind with this stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "referral" => Some(Self::Referral),
            "status-update" => Some(Self::StatusUpdate),
            "retraction" => Some(Self::Retraction),
            "retraction-ack" => Some(Self::RetractionAck),
            "case-message" => Some(Self::CaseMessage),
            _ => None,
        }
    }
}

/// The evidence of one message: the sender's signature, and the receiver's receipt.
///
/// A plain record, as stored and read back. That a received message's record was checked is
/// not this type's promise but [`crate::received::Received`]'s, which carries one.
#[derive(Debug, Clone)]
pub struct MessageProof {
    /// The message.
    pub message_id: Uuid,
    /// Its kind, as stored in the outbox.
    pub kind: &'static str,
    /// The other node, as an identity URI.
    pub peer: String,
    /// SHA-256 of the canonical encoding.
    pub digest: Vec<u8>,
    /// The sender's signature over [`message_payload`].
    pub signature: Vec<u8>,
    /// The sender's certificate, DER.
    pub sender_certificate: Vec<u8>,
    /// The receiver's signature over [`receipt_payload`].
    pub receipt_signature: Option<Vec<u8>>,
    /// The receiver's certificate, DER.
    pub receipt_certificate: Option<Vec<u8>>,
    /// When the receiver says it received it.
    pub received_at: Option<OffsetDateTime>,
    /// Protocol version 2: the batch the message travelled in. Then `signature` is the
    /// sender's over the batch ([`batch_payload`]) and `receipt_signature` the receiver's over
    /// the batch's receipt ([`batch_receipt_payload`]); without it, both are version 1's, over
    /// this message alone.
    pub batch: Option<BatchLink>,
}

/// Where a message sits in the batch it travelled in, and what of the batch its proof needs:
/// enough to recompute the batch root from the message's digest and check both signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchLink {
    /// The RFC 9162 root over the batch's message digests.
    pub root: [u8; 32],
    /// The message's place in the batch, from 0.
    pub index: u32,
    /// How many messages the batch carried.
    pub size: u32,
    /// The message's inclusion proof in the batch tree.
    pub path: Vec<[u8; 32]>,
    /// When the sender signed the batch, Unix milliseconds.
    pub sent_at_ms: i64,
    /// The sender's identity URI, as the batch payload names it.
    pub sender: String,
    /// The receiver's identity URI, as the batch payload names it.
    pub recipient: String,
    /// One outcome byte per message of the batch, as the receipt signs them; the sender's
    /// proof has them, the receiver's does not (it signs the receipt after committing).
    pub outcomes: Option<Vec<u8>>,
}

/// What a node signs with.
#[derive(Clone)]
pub struct NodeSigner {
    /// The private key, as rustls loaded it.
    key: Arc<dyn SigningKey>,
    /// The certificate of that key, DER.
    certificate: CertificateDer<'static>,
}

impl std::fmt::Debug for NodeSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSigner").finish_non_exhaustive()
    }
}

impl NodeSigner {
    /// A signer over `key`; refused unless the key can make ECDSA P-256 signatures.
    pub fn new(
        key: Arc<dyn SigningKey>,
        certificate: CertificateDer<'static>,
    ) -> Result<Self, SignatureError> {
        key.choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
            .ok_or(SignatureError::UnsupportedKey)?;
        Ok(Self { key, certificate })
    }

    /// Signs `payload` (built by one of the `*_payload` functions).
    pub fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignatureError> {
        self.key
            .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
            .ok_or(SignatureError::UnsupportedKey)?
            .sign(payload)
            .map_err(|_| SignatureError::Failed)
    }

    /// The signer's certificate, DER.
    pub fn certificate(&self) -> &[u8] {
        self.certificate.as_ref()
    }
}

/// Checks `signature` over `payload` with the public key of `certificate` (DER).
pub fn verify(
    certificate: &[u8],
    scheme: u32,
    payload: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    if scheme != SCHEME_ECDSA_P256_SHA256 {
        return Err(SignatureError::Scheme(scheme));
    }
    let (_, parsed) =
        X509Certificate::from_der(certificate).map_err(|_| SignatureError::Certificate)?;
    UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_ASN1,
        &parsed.public_key().subject_public_key.data,
    )
    .verify(payload, signature)
    .map_err(|_| SignatureError::Invalid)
}

fn payload(context: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    out.extend_from_slice(b"tatmx/v1 ");
    out.extend_from_slice(context.as_bytes());
    for part in parts {
        out.push(0);
        out.extend_from_slice(part);
    }
    out
}

/// What a sender signs: the message's kind and its canonical encoding.
pub fn message_payload(kind: &str, body: &[u8]) -> Vec<u8> {
    payload("message", &[kind.as_bytes(), body])
}

/// What a receiver signs: that it received the message with this id and digest, at this time.
pub fn receipt_payload(message_id: &str, digest: &[u8], received_at_ms: i64) -> Vec<u8> {
    payload(
        "receipt",
        &[message_id.as_bytes(), digest, &received_at_ms.to_be_bytes()],
    )
}

/// Unix milliseconds, as the signed payloads and the clock header carry time.
pub fn millis(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// What a node signs of its audit chain: its head after entry `seq`, at a time.
pub fn checkpoint_payload(team: &str, seq: u64, head_hash: &[u8], at_ms: i64) -> Vec<u8> {
    payload(
        "checkpoint",
        &[
            team.as_bytes(),
            &seq.to_be_bytes(),
            head_hash,
            &at_ms.to_be_bytes(),
        ],
    )
}

/// Protocol version 2's framing of every signed or digested byte string: `tatmx/v2 `, the
/// context name, a zero byte, then each part as its length (4 bytes, big-endian) and its
/// bytes. The lengths make the framing unambiguous whatever bytes a part holds, which version
/// 1's zero separators were not for binary parts; docs/PROTOCOL.md gives the layouts.
pub fn frame_v2(context: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + parts.iter().map(|p| p.len() + 4).sum::<usize>());
    out.extend_from_slice(b"tatmx/v2 ");
    out.extend_from_slice(context.as_bytes());
    out.push(0);
    for part in parts {
        // Parts are at most a message (bounded far below 4 GiB by the transport).
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// A message's digest in protocol version 2: SHA-256 over its kind's number (as
/// `tatmx.v2.MessageKind` numbers it, 4 bytes big-endian) and its exact bytes. It is the
/// message's leaf in its batch's Merkle tree, and the digest its proofs name. A kind this
/// build does not know still has a digest, so a batch carrying one still verifies and only
/// that message is refused.
pub fn message_digest(kind: u32, payload: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(frame_v2("message", &[&kind.to_be_bytes(), payload])).into()
}

/// What a sender signs of a batch: who sends it to whom, when, and the Merkle root of its
/// messages' digests.
pub fn batch_payload(sender: &str, recipient: &str, sent_at_ms: i64, root: &[u8]) -> Vec<u8> {
    frame_v2(
        "batch",
        &[
            sender.as_bytes(),
            recipient.as_bytes(),
            &sent_at_ms.to_be_bytes(),
            root,
        ],
    )
}

/// What a receiver signs of a batch: that it received the batch with this root from `sender`
/// at this time, with one outcome byte per message in the batch's order (1 accepted, 2
/// duplicate, 3 refused).
pub fn batch_receipt_payload(
    receiver: &str,
    sender: &str,
    received_at_ms: i64,
    root: &[u8],
    outcomes: &[u8],
) -> Vec<u8> {
    frame_v2(
        "receipt",
        &[
            receiver.as_bytes(),
            sender.as_bytes(),
            &received_at_ms.to_be_bytes(),
            root,
            outcomes,
        ],
    )
}

/// What a node signs of its audit log in protocol version 2: the Merkle tree head after
/// `tree_size` entries, at a time.
pub fn tree_head_payload(team: &str, tree_size: u64, root: &[u8], at_ms: i64) -> Vec<u8> {
    frame_v2(
        "tree-head",
        &[
            team.as_bytes(),
            &tree_size.to_be_bytes(),
            root,
            &at_ms.to_be_bytes(),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> NodeSigner {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["node.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let loaded = crate::tls::provider()
            .key_provider
            .load_private_key(der)
            .unwrap();
        NodeSigner::new(loaded, cert.der().clone()).unwrap()
    }

    #[test]
    fn a_signature_verifies_only_for_its_payload_and_context() {
        let signer = signer();
        let body = message_payload("referral", b"canonical bytes");
        let signature = signer.sign(&body).unwrap();
        verify(signer.certificate(), 1, &body, &signature).unwrap();
        assert_eq!(
            verify(
                signer.certificate(),
                1,
                &message_payload("referral", b"canonical bytez"),
                &signature
            ),
            Err(SignatureError::Invalid)
        );
        // The same bytes as a receipt are another statement.
        assert_eq!(
            verify(
                signer.certificate(),
                1,
                &payload("receipt", &[b"referral", b"canonical bytes"]),
                &signature
            ),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(signer.certificate(), 2, &body, &signature),
            Err(SignatureError::Scheme(2))
        );
        let other = super::tests::signer();
        assert_eq!(
            verify(other.certificate(), 1, &body, &signature),
            Err(SignatureError::Invalid)
        );
    }
}
