//! The evidence both ends of a delivery keep: the sender's signature over the message, and
//! the receiver's signed receipt for it.
//!
//! The sender signs ([`sign_message`]); the receiver checks that signature against the caller
//! ([`verify_message`]) and signs a receipt over the message's digest ([`sign_receipt`]); the
//! sender counts the message delivered only once that receipt checks out ([`check_receipt`]).
//! Each side stores the pair as a [`MessageProof`], so either can later prove what was sent and
//! received. The key and payload formats are [`crate::signing`]'s; this module is how the
//! protocol uses them. On the receiver's side it is where trust meets [`crate::received`]: it
//! picks the signing certificate trust vouches for, and the steps there make the
//! [`Received`] the store takes.

use sha2::{Digest, Sha256};
use tatmx_certs::{FederationId, TeamIdentity};
use tatmx_proto::v1 as pb;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::convert;
use crate::received::{Receivable, Received, SenderChecked, SignatureChecked, SignatureRefused};
use crate::signing::{self, NodeSigner, SignatureError};
use crate::store::{MessageKind, MessageProof};
use crate::trust::{TrustState, VerifiedPeer};

/// Why a message's signature was refused, or a receipt could not be signed. The texts name
/// the field at fault and never the message's content.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The message came without a signature.
    #[error("signature: {}", SignatureError::Missing)]
    Unsigned,
    /// The signature does not verify, or uses a scheme protocol v1 does not have.
    #[error("signature: {0}")]
    Signature(SignatureError),
    /// The signature names a signing certificate that does not chain to a trusted anchor.
    #[error("signature.certificate: is not trusted: {0}")]
    SignerUntrusted(String),
    /// The signing certificate is another team's than the caller's.
    #[error("signature.certificate: is for {signer}, not for your team, {caller}")]
    SignerMismatch {
        /// Whom the signing certificate names.
        signer: TeamIdentity,
        /// Who called.
        caller: TeamIdentity,
    },
    /// This node has no identity in the federation, so it has nothing to sign with there.
    #[error("this node is not a member of {0}")]
    NotAMember(FederationId),
    /// This node's key failed to sign.
    #[error("signing failed: {0}")]
    Signing(SignatureError),
}

/// Why a peer's receipt does not count as proof of delivery.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The digest is not that of the bytes sent.
    #[error("the peer's receipt names another digest than the message sent")]
    Digest,
    /// No time of receipt.
    #[error("the peer's receipt has no time")]
    Time,
    /// No signature at all.
    #[error("the peer's receipt is not signed")]
    Unsigned,
    /// The signature does not verify.
    #[error("the peer's receipt signature {0}")]
    Signature(SignatureError),
    /// The signing certificate does not chain to a trusted anchor.
    #[error("the peer's receipt certificate is not trusted: {0}")]
    CertificateUntrusted(String),
    /// The signing certificate is another team's.
    #[error("the peer's receipt is signed by another team")]
    OtherTeam,
    /// A batch receipt without exactly one known outcome per message sent.
    #[error("the peer's receipt does not give one outcome per message sent")]
    Outcomes,
}

impl ReceiptError {
    /// Whether this node's view of the federation (CA, revocations) may be what is out of
    /// date, so that a directory refresh may help.
    pub fn concerns_certificates(&self) -> bool {
        matches!(self, ReceiptError::CertificateUntrusted(_))
    }
}

/// The signing identity this node uses in `federation`.
pub fn own_signer<'a>(
    state: &'a TrustState,
    federation: &FederationId,
) -> Result<&'a NodeSigner, EvidenceError> {
    state
        .identities
        .get(federation)
        .map(|identity| identity.signer())
        .ok_or_else(|| EvidenceError::NotAMember(federation.clone()))
}

/// The sender's side: signs a stored message's canonical bytes for the wire.
pub fn sign_message(
    signer: &NodeSigner,
    kind: MessageKind,
    body: &[u8],
) -> Result<pb::MessageSignature, EvidenceError> {
    let value = signer
        .sign(&signing::message_payload(kind.as_str(), body))
        .map_err(EvidenceError::Signing)?;
    Ok(pb::MessageSignature {
        scheme: signing::SCHEME_ECDSA_P256_SHA256,
        value,
        certificate: signer.certificate().to_vec(),
    })
}

/// The receiver's side: checks the signature over the bytes `message` was decoded from against
/// the caller. Usually the connection's own certificate signed; after a rotation on the
/// sender's side a newer one may, and then it must prove the same team and chain to an anchor.
pub fn verify_message<M: Receivable>(
    state: &TrustState,
    caller: &VerifiedPeer,
    connection_certificate: &[u8],
    message: SenderChecked<M>,
    signature: Option<pb::MessageSignature>,
) -> Result<SignatureChecked<M>, EvidenceError> {
    let signature = signature.ok_or(EvidenceError::Unsigned)?;
    let signer = signing_certificate(state, caller, connection_certificate, signature.certificate)?;
    message
        .verify_signature(signer, signature.scheme, signature.value)
        .map_err(EvidenceError::from)
}

impl From<SignatureRefused> for EvidenceError {
    fn from(refused: SignatureRefused) -> Self {
        match refused {
            SignatureRefused::SignerMismatch { signer, sender } => EvidenceError::SignerMismatch {
                signer,
                caller: sender,
            },
            SignatureRefused::Signature(e) => EvidenceError::Signature(e),
        }
    }
}

/// The certificate a sender signed with: the connection's own, unless it presents another
/// (after a rotation on its side), which must then prove the same team and chain to an anchor.
pub fn signing_certificate(
    state: &TrustState,
    caller: &VerifiedPeer,
    connection_certificate: &[u8],
    presented: Vec<u8>,
) -> Result<Vec<u8>, EvidenceError> {
    if presented.is_empty() || presented.as_slice() == connection_certificate {
        return Ok(connection_certificate.to_vec());
    }
    let signer = state
        .check_presented(
            &presented,
            rustls_pki_types::UnixTime::now(),
            webpki::KeyUsage::client_auth(),
        )
        .map_err(|e| EvidenceError::SignerUntrusted(e.to_string()))?;
    if &signer != caller.identity() {
        return Err(EvidenceError::SignerMismatch {
            signer,
            caller: caller.identity().clone(),
        });
    }
    Ok(presented)
}

/// The receiver's side: signs a receipt for a message whose signature verified, and returns
/// it as [`Received`], with the evidence this node keeps.
pub fn sign_receipt<M: Receivable>(
    state: &TrustState,
    caller: &VerifiedPeer,
    message: SignatureChecked<M>,
    received_at: OffsetDateTime,
) -> Result<Received<M>, EvidenceError> {
    let own = own_signer(state, &caller.identity().federation)?;
    message
        .receipt(own, received_at)
        .map_err(EvidenceError::Signing)
}

/// The receipt as it goes back to the sender, with this node's latest audit checkpoint.
pub fn receipt(
    proof: &MessageProof,
    duplicate: bool,
    checkpoint: Option<pb::SignedCheckpoint>,
) -> pb::DeliveryReceipt {
    pb::DeliveryReceipt {
        message_id: proof.message_id.to_string(),
        received_at: proof.received_at.map(convert::timestamp_to_proto),
        duplicate,
        digest: proof.digest.clone(),
        signature: proof
            .receipt_signature
            .clone()
            .map(|value| pb::MessageSignature {
                scheme: signing::SCHEME_ECDSA_P256_SHA256,
                value,
                certificate: Vec::new(),
            }),
        signer_certificate: proof.receipt_certificate.clone().unwrap_or_default(),
        checkpoint,
    }
}

/// The sender's side: a receipt counts only if it names the digest of exactly what was sent
/// and is signed by a certificate of `peer` that chains to a trusted anchor. Returns the
/// evidence of both sides, to store with the delivered message.
pub fn check_receipt(
    state: &TrustState,
    peer: &TeamIdentity,
    message_id: Uuid,
    kind: MessageKind,
    body: &[u8],
    sent: &pb::MessageSignature,
    receipt: &pb::DeliveryReceipt,
) -> Result<MessageProof, ReceiptError> {
    let digest = Sha256::digest(body).to_vec();
    if receipt.digest != digest {
        return Err(ReceiptError::Digest);
    }
    let received_at = convert::timestamp_from_proto(receipt.received_at, "received_at")
        .map_err(|_| ReceiptError::Time)?;
    let receipt_signature = receipt.signature.clone().ok_or(ReceiptError::Unsigned)?;
    signing::verify(
        &receipt.signer_certificate,
        receipt_signature.scheme,
        &signing::receipt_payload(&receipt.message_id, &receipt.digest, millis(received_at)),
        &receipt_signature.value,
    )
    .map_err(ReceiptError::Signature)?;
    let signer = state
        .check_presented(
            &receipt.signer_certificate,
            rustls_pki_types::UnixTime::now(),
            webpki::KeyUsage::server_auth(),
        )
        .map_err(|e| ReceiptError::CertificateUntrusted(e.to_string()))?;
    if &signer != peer {
        return Err(ReceiptError::OtherTeam);
    }
    Ok(MessageProof {
        message_id,
        kind: kind.as_str(),
        peer: peer.uri(),
        digest,
        signature: sent.value.clone(),
        sender_certificate: sent.certificate.clone(),
        receipt_signature: Some(receipt_signature.value),
        receipt_certificate: Some(receipt.signer_certificate.clone()),
        received_at: Some(received_at),
        batch: None,
    })
}

/// Unix milliseconds, as the signed payloads and the clock header carry time.
pub(crate) use crate::signing::millis;

/// What a sender made of a batch before sending it: enough to check the receipt and to build
/// each message's proof.
#[derive(Debug)]
pub struct SentBatch {
    /// This node's identity URI, as the batch payload names the sender.
    pub sender: String,
    /// The peer's identity URI, as the batch payload names the recipient.
    pub recipient: String,
    /// When it was signed, Unix milliseconds.
    pub sent_at_ms: i64,
    /// Each message's digest, in the batch's order.
    pub digests: Vec<[u8; 32]>,
    /// The leaf hashes of those digests.
    pub leaves: Vec<crate::merkle::Hash>,
    /// The Merkle root the signature covers.
    pub root: crate::merkle::Hash,
    /// This node's signature over the batch payload.
    pub signature: Vec<u8>,
    /// The certificate of the key that signed, DER.
    pub certificate: Vec<u8>,
}

/// The sender's side of protocol version 2: digests `messages` (kind and exact bytes each),
/// and signs the batch they make for `peer` at `sent_at_ms`.
pub fn sign_batch(
    signer: &NodeSigner,
    sender: &TeamIdentity,
    peer: &TeamIdentity,
    sent_at_ms: i64,
    messages: &[(MessageKind, &[u8])],
) -> Result<SentBatch, EvidenceError> {
    let digests: Vec<[u8; 32]> = messages
        .iter()
        .map(|(kind, body)| signing::message_digest(kind.number(), body))
        .collect();
    let leaves: Vec<crate::merkle::Hash> = digests
        .iter()
        .map(|d| crate::merkle::leaf_hash(d))
        .collect();
    let root = crate::merkle::range_hash(&leaves);
    let (sender, recipient) = (sender.uri(), peer.uri());
    let signature = signer
        .sign(&signing::batch_payload(
            &sender, &recipient, sent_at_ms, &root,
        ))
        .map_err(EvidenceError::Signing)?;
    Ok(SentBatch {
        sender,
        recipient,
        sent_at_ms,
        digests,
        leaves,
        root,
        signature,
        certificate: signer.certificate().to_vec(),
    })
}

/// A batch receipt that checked out: the outcome bytes it signs and the evidence it is.
#[derive(Debug)]
pub struct CheckedReceipt {
    /// One byte per message, as signed: 1 accepted, 2 duplicate, 3 refused.
    pub outcomes: Vec<u8>,
    /// When the peer says it received the batch.
    pub received_at: OffsetDateTime,
    /// The peer's signature over the receipt.
    pub signature: Vec<u8>,
    /// The certificate that signed it, DER; it names the peer and chains to an anchor.
    pub certificate: Vec<u8>,
}

/// The sender's side of protocol version 2: a batch receipt counts only if it names the root
/// of exactly what was sent, lists one outcome per message, and is signed over those by a
/// certificate of `peer` that chains to a trusted anchor.
pub fn check_batch_receipt(
    state: &TrustState,
    peer: &TeamIdentity,
    sent: &SentBatch,
    receipt: &tatmx_proto::v2::BatchReceipt,
) -> Result<CheckedReceipt, ReceiptError> {
    if receipt.root != sent.root {
        return Err(ReceiptError::Digest);
    }
    if receipt.results.len() != sent.digests.len() {
        return Err(ReceiptError::Outcomes);
    }
    let mut outcomes = Vec::with_capacity(receipt.results.len());
    for result in &receipt.results {
        match u8::try_from(result.outcome) {
            Ok(outcome @ 1..=3) => outcomes.push(outcome),
            _ => return Err(ReceiptError::Outcomes),
        }
    }
    let signature = receipt.signature.as_ref().ok_or(ReceiptError::Unsigned)?;
    signing::verify(
        &signature.certificate,
        signature.scheme,
        &signing::batch_receipt_payload(
            &sent.recipient,
            &sent.sender,
            receipt.received_at_ms,
            &sent.root,
            &outcomes,
        ),
        &signature.value,
    )
    .map_err(ReceiptError::Signature)?;
    let signer = state
        .check_presented(
            &signature.certificate,
            rustls_pki_types::UnixTime::now(),
            webpki::KeyUsage::server_auth(),
        )
        .map_err(|e| ReceiptError::CertificateUntrusted(e.to_string()))?;
    if &signer != peer {
        return Err(ReceiptError::OtherTeam);
    }
    let received_at =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(receipt.received_at_ms) * 1_000_000)
            .map_err(|_| ReceiptError::Time)?;
    Ok(CheckedReceipt {
        outcomes,
        received_at,
        signature: signature.value.clone(),
        certificate: signature.certificate.clone(),
    })
}

/// The evidence a sender keeps of message `index` of a batch whose receipt checked out.
pub fn batch_proof(
    sent: &SentBatch,
    receipt: &CheckedReceipt,
    index: usize,
    message_id: Uuid,
    kind: MessageKind,
) -> MessageProof {
    MessageProof {
        message_id,
        kind: kind.as_str(),
        peer: sent.recipient.clone(),
        digest: sent.digests[index].to_vec(),
        signature: sent.signature.clone(),
        sender_certificate: sent.certificate.clone(),
        receipt_signature: Some(receipt.signature.clone()),
        receipt_certificate: Some(receipt.certificate.clone()),
        received_at: Some(receipt.received_at),
        batch: Some(signing::BatchLink {
            root: sent.root,
            index: index as u32,
            size: sent.digests.len() as u32,
            path: crate::merkle::inclusion_proof(&sent.leaves, index as u64),
            sent_at_ms: sent.sent_at_ms,
            sender: sent.sender.clone(),
            recipient: sent.recipient.clone(),
            outcomes: Some(receipt.outcomes.clone()),
        }),
    }
}
