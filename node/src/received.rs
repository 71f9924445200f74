//! A message another node delivered, once the receiver's checks have run: [`Received`], the
//! proof type the store's `receive_*` methods take.
//!
//! As rustls proves that a handshake's signature was checked with a type only its verifier
//! makes, a [`Received`] proves what a receiver must check before it keeps a message. It has
//! private fields, and the only way to one is through three steps, each a method here and each
//! the only way to the next type:
//!
//! 1. [`SenderChecked::decode`] decodes the message from the exact bytes that came over the
//!    wire, and refuses it unless the sender it names is the team that called (the sender
//!    check).
//! 2. [`SenderChecked::verify_signature`] refuses it unless a signature over those same bytes,
//!    in this kind's context ([`signing::message_payload`]), verifies with a certificate that
//!    names that team (the signature check).
//! 3. [`SignatureChecked::receipt`] signs this node's receipt over the bytes' digest, and
//!    yields the [`Received`], which carries the message, its sender and the [`MessageProof`]
//!    both are kept in.
//!
//! So a store that holds a `Received<M>` knows that its message is exactly the bytes its
//! claimed sender signed, with a key whose certificate names that sender, and that its proof
//! is the proof of those bytes. No code can hand it a message with a sender or a proof of its
//! choosing, or skip a check on the way.
//!
//! Trust is the one part this module takes on another's word: the store imports this module,
//! and [`crate::trust`] imports the store, so nothing here can name trust's types. The caller's
//! identity given to step 1 and the certificate given to step 2 are the ones `trust` vouched
//! for: the identity of a [`crate::trust::VerifiedPeer`], and the connection's own certificate
//! or one that [`crate::trust::TrustState::check_presented`] chained to an anchor. The
//! Federation server's evidence (`federation::evidence`) is the one caller, and does exactly
//! that.

use sha2::{Digest, Sha256};
use tatmx_certs::{CertificateSummary, TeamIdentity};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::case_message::CaseMessage;
use crate::merkle;
use crate::referral::{Referral, StatusUpdate};
use crate::retraction::{Retraction, RetractionAck};
use crate::signing::{self, BatchLink, MessageKind, MessageProof, NodeSigner, SignatureError};
use crate::wire::{self, WireError};

/// A kind of message nodes deliver to each other, which a [`Received`] can carry. Sealed: only
/// the five federation messages are one, so no other type can name a sender of its choosing.
pub trait Receivable: sealed::Sealed {
    /// The kind its sender's signature names.
    const KIND: MessageKind;

    /// The message's id.
    fn id(&self) -> Uuid;

    /// The team the message says sent it.
    fn sender(&self) -> &TeamIdentity;
}

mod sealed {
    use super::WireError;

    /// What only this module may say about a receivable message.
    pub trait Sealed: Sized {
        /// The field that names the sender, as refusals name it.
        const SENDER_FIELD: &'static str;

        /// The message from its canonical bytes.
        fn decode(bytes: &[u8]) -> Result<Self, WireError>;
    }
}

/// Why a message was refused before its signature was looked at. The texts name identities
/// and fields, never the message's content.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The bytes are not a valid message of their kind.
    #[error(transparent)]
    Invalid(#[from] WireError),
    /// The message names another sender than the team that called.
    #[error("{field} {claimed} is not the identity of your certificate, {caller}")]
    SenderMismatch {
        /// The field that names the sender.
        field: &'static str,
        /// Whom the message names.
        claimed: TeamIdentity,
        /// Who called.
        caller: TeamIdentity,
    },
}

/// Why a message's signature does not prove that its sender sent it.
#[derive(Debug, thiserror::Error)]
pub enum SignatureRefused {
    /// The signing certificate is another team's than the sender's.
    #[error("signature.certificate: is for {signer}, not for your team, {sender}")]
    SignerMismatch {
        /// Whom the signing certificate names.
        signer: TeamIdentity,
        /// The sender, the team that called.
        sender: TeamIdentity,
    },
    /// The certificate names no team, or the signature does not verify over the bytes.
    #[error("signature: {0}")]
    Signature(SignatureError),
}

/// A message decoded from the exact bytes that came, whose claimed sender is the team that
/// called. Its signature is not yet checked; only [`Self::decode`] makes one.
pub struct SenderChecked<M> {
    /// The message, decoded from `wire`.
    message: M,
    /// The bytes as they came, which the sender signed.
    wire: Vec<u8>,
}

impl<M: Receivable> SenderChecked<M> {
    /// Decodes a message from `wire`, the bytes as they came, and checks that the sender it
    /// names is `caller`, the team the connection authenticated: the body's claim is compared,
    /// never believed. Decoding from the bytes themselves, rather than taking a message beside
    /// them, is what binds the message to what its sender signed.
    pub fn decode(wire: Vec<u8>, caller: &TeamIdentity) -> Result<Self, ReceiveError> {
        let message = M::decode(&wire)?;
        if message.sender() != caller {
            return Err(ReceiveError::SenderMismatch {
                field: M::SENDER_FIELD,
                claimed: message.sender().clone(),
                caller: caller.clone(),
            });
        }
        Ok(Self { message, wire })
    }

    /// Checks the sender's signature: `signature` (in `scheme`) must verify over the bytes
    /// this message was decoded from, in its kind's context, with `certificate` (DER), and
    /// `certificate` must name the sender. That the certificate chains to a trusted anchor is
    /// trust's to have checked (see the module's documentation).
    pub fn verify_signature(
        self,
        certificate: Vec<u8>,
        scheme: u32,
        signature: Vec<u8>,
    ) -> Result<SignatureChecked<M>, SignatureRefused> {
        let signer = CertificateSummary::from_der(&certificate)
            .ok()
            .and_then(|summary| summary.identity)
            .ok_or(SignatureRefused::Signature(SignatureError::Certificate))?;
        if &signer != self.message.sender() {
            return Err(SignatureRefused::SignerMismatch {
                signer,
                sender: self.message.sender().clone(),
            });
        }
        signing::verify(
            &certificate,
            scheme,
            &signing::message_payload(M::KIND.as_str(), &self.wire),
            &signature,
        )
        .map_err(SignatureRefused::Signature)?;
        Ok(SignatureChecked {
            message: self.message,
            wire: self.wire,
            certificate,
            signature,
        })
    }
}

impl<M: Receivable> SenderChecked<M> {
    /// The signature check of protocol version 2: the message is the one at `index` of a
    /// batch whose signature verified, if the digest the sender signed at that place is the
    /// digest of exactly these bytes in this kind. The receipt is the batch's, signed once
    /// for all its messages after they are committed, so the proof keeps the sender's side and
    /// the message's place in the batch.
    pub fn in_batch(
        self,
        batch: &VerifiedBatch,
        index: usize,
        received_at: OffsetDateTime,
    ) -> Result<Received<M>, SignatureRefused> {
        let digest = signing::message_digest(M::KIND.number(), &self.wire);
        if batch.digests.get(index) != Some(&digest) || self.message.sender() != &batch.sender {
            return Err(SignatureRefused::Signature(SignatureError::Invalid));
        }
        let proof = MessageProof {
            message_id: self.message.id(),
            kind: M::KIND.as_str(),
            peer: batch.sender.uri(),
            digest: digest.to_vec(),
            signature: batch.signature.clone(),
            sender_certificate: batch.certificate.clone(),
            receipt_signature: None,
            receipt_certificate: None,
            received_at: Some(received_at),
            batch: Some(BatchLink {
                root: batch.root,
                index: index as u32,
                size: batch.digests.len() as u32,
                path: merkle::inclusion_proof(&batch.leaves, index as u64),
                sent_at_ms: batch.sent_at_ms,
                sender: batch.sender.uri(),
                recipient: batch.recipient.clone(),
                outcomes: None,
            }),
        };
        Ok(Received {
            message: self.message,
            wire: self.wire,
            proof,
        })
    }
}

/// A batch of messages whose sender's signature verified over the Merkle root of their
/// digests (protocol version 2). Only [`VerifiedBatch::verify`] makes one.
///
/// # Invariant
/// `signature` verifies with `certificate`, which names `sender`, over the batch payload of
/// `sender`, `recipient`, `sent_at_ms` and `root`; `root` is the RFC 9162 tree hash over the
/// leaf hashes of `digests`, which are the digests of the batch's payloads in its order.
pub struct VerifiedBatch {
    sender: TeamIdentity,
    recipient: String,
    sent_at_ms: i64,
    digests: Vec<[u8; 32]>,
    leaves: Vec<merkle::Hash>,
    root: merkle::Hash,
    certificate: Vec<u8>,
    signature: Vec<u8>,
}

impl VerifiedBatch {
    /// Checks a batch before any of its messages is decoded: `messages` are each message's
    /// kind number and exact bytes as they came from `caller` (the team the connection
    /// authenticated), addressed to `recipient` (this node's identity in the caller's
    /// federation). `certificate` must name `caller`; that it chains to a trusted anchor is
    /// trust's to have checked, as for [`SenderChecked::verify_signature`].
    pub fn verify(
        caller: &TeamIdentity,
        recipient: &TeamIdentity,
        sent_at_ms: i64,
        messages: &[(u32, &[u8])],
        certificate: Vec<u8>,
        scheme: u32,
        signature: Vec<u8>,
    ) -> Result<Self, SignatureRefused> {
        let signer = CertificateSummary::from_der(&certificate)
            .ok()
            .and_then(|summary| summary.identity)
            .ok_or(SignatureRefused::Signature(SignatureError::Certificate))?;
        if &signer != caller {
            return Err(SignatureRefused::SignerMismatch {
                signer,
                sender: caller.clone(),
            });
        }
        let digests: Vec<[u8; 32]> = messages
            .iter()
            .map(|(kind, payload)| signing::message_digest(*kind, payload))
            .collect();
        let leaves: Vec<merkle::Hash> = digests.iter().map(|d| merkle::leaf_hash(d)).collect();
        let root = merkle::range_hash(&leaves);
        let (sender, recipient) = (caller.uri(), recipient.uri());
        signing::verify(
            &certificate,
            scheme,
            &signing::batch_payload(&sender, &recipient, sent_at_ms, &root),
            &signature,
        )
        .map_err(SignatureRefused::Signature)?;
        Ok(Self {
            sender: caller.clone(),
            recipient,
            sent_at_ms,
            digests,
            leaves,
            root,
            certificate,
            signature,
        })
    }

    /// The Merkle root of the batch, which the receipt signs.
    pub fn root(&self) -> &merkle::Hash {
        &self.root
    }

    /// How many messages the batch carries.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether the batch carries no message (never, once verified by a server that refuses
    /// empty batches).
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

/// A message whose sender and signature were checked, waiting for this node's receipt. Only
/// [`SenderChecked::verify_signature`] makes one.
pub struct SignatureChecked<M> {
    /// The message, decoded from `wire`.
    message: M,
    /// The bytes the sender signed.
    wire: Vec<u8>,
    /// The certificate whose key signed, DER; it names the sender.
    certificate: Vec<u8>,
    /// The sender's signature over `wire`.
    signature: Vec<u8>,
}

impl<M: Receivable> SignatureChecked<M> {
    /// Signs this node's receipt over the digest of the bytes received, as `receiver` (this
    /// node's key in the sender's federation) at `received_at`, and keeps it with the sender's
    /// signature.
    pub fn receipt(
        self,
        receiver: &NodeSigner,
        received_at: OffsetDateTime,
    ) -> Result<Received<M>, SignatureError> {
        let digest = Sha256::digest(&self.wire).to_vec();
        let message_id = self.message.id();
        let receipt_signature = receiver.sign(&signing::receipt_payload(
            &message_id.to_string(),
            &digest,
            signing::millis(received_at),
        ))?;
        let proof = MessageProof {
            message_id,
            kind: M::KIND.as_str(),
            peer: self.message.sender().uri(),
            digest,
            signature: self.signature,
            sender_certificate: self.certificate,
            receipt_signature: Some(receipt_signature),
            receipt_certificate: Some(receiver.certificate().to_vec()),
            received_at: Some(received_at),
            batch: None,
        };
        Ok(Received {
            message: self.message,
            wire: self.wire,
            proof,
        })
    }
}

/// A message another node delivered, which passed the sender check and the signature check
/// and has this node's receipt.
///
/// # Invariant
/// The message was decoded from exactly the bytes its sender's signature covers; the sender
/// it names is the team that called, and the certificate that signed names that team too; the
/// proof holds that signature and this node's receipt over those bytes' digest. Its fields are
/// private and [`SignatureChecked::receipt`] is its only constructor, so the compiler shows
/// that every message the store receives went through these checks.
pub struct Received<M> {
    /// The message.
    message: M,
    /// The bytes it was decoded from: what its sender signed, and what the store keeps.
    wire: Vec<u8>,
    /// The sender's signature and this node's receipt.
    proof: MessageProof,
}

impl<M: Receivable> Received<M> {
    /// The message.
    pub fn message(&self) -> &M {
        &self.message
    }

    /// The team that sent it: the one that called, that the message names, and whose
    /// certificate signed it.
    pub fn sender(&self) -> &TeamIdentity {
        self.message.sender()
    }

    /// The evidence kept with it: the sender's signature and this node's receipt.
    pub fn proof(&self) -> &MessageProof {
        &self.proof
    }

    /// The bytes the message was decoded from, exactly as its sender signed them. The store
    /// keeps these, so a newer sender's fields that this build does not know survive.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }
}

// By hand, so that a message's content never reaches a log through `{:?}`.
impl<M: Receivable> std::fmt::Debug for Received<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received")
            .field("kind", &M::KIND)
            .field("id", &self.message.id())
            .field("sender", self.message.sender())
            .finish_non_exhaustive()
    }
}

impl<M: Receivable> std::fmt::Debug for SenderChecked<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderChecked")
            .field("kind", &M::KIND)
            .field("id", &self.message.id())
            .finish_non_exhaustive()
    }
}

impl<M: Receivable> std::fmt::Debug for SignatureChecked<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureChecked")
            .field("kind", &M::KIND)
            .field("id", &self.message.id())
            .finish_non_exhaustive()
    }
}

impl Receivable for Referral {
    const KIND: MessageKind = MessageKind::Referral;

    fn id(&self) -> Uuid {
        self.id
    }

    fn sender(&self) -> &TeamIdentity {
        &self.sender
    }
}

impl sealed::Sealed for Referral {
    const SENDER_FIELD: &'static str = "referral.sender";

    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        wire::decode_referral(bytes)
    }
}

impl Receivable for StatusUpdate {
    const KIND: MessageKind = MessageKind::StatusUpdate;

    fn id(&self) -> Uuid {
        self.id
    }

    fn sender(&self) -> &TeamIdentity {
        &self.author
    }
}

impl sealed::Sealed for StatusUpdate {
    const SENDER_FIELD: &'static str = "update.author";

    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        wire::decode_status_update(bytes)
    }
}

impl Receivable for Retraction {
    const KIND: MessageKind = MessageKind::Retraction;

    fn id(&self) -> Uuid {
        self.id
    }

    fn sender(&self) -> &TeamIdentity {
        &self.author
    }
}

impl sealed::Sealed for Retraction {
    const SENDER_FIELD: &'static str = "retraction.author";

    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        wire::decode_retraction(bytes)
    }
}

impl Receivable for RetractionAck {
    const KIND: MessageKind = MessageKind::RetractionAck;

    fn id(&self) -> Uuid {
        self.id
    }

    fn sender(&self) -> &TeamIdentity {
        &self.author
    }
}

impl sealed::Sealed for RetractionAck {
    const SENDER_FIELD: &'static str = "ack.author";

    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        wire::decode_retraction_ack(bytes)
    }
}

impl Receivable for CaseMessage {
    const KIND: MessageKind = MessageKind::CaseMessage;

    fn id(&self) -> Uuid {
        self.id
    }

    fn sender(&self) -> &TeamIdentity {
        &self.author
    }
}

impl sealed::Sealed for CaseMessage {
    const SENDER_FIELD: &'static str = "message.author";

    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        wire::decode_case_message(bytes)
    }
}

#[cfg(test)]
mod tests {
    use tatmx_certs::{CertificateAuthority, FederationId, NodeKey};

    use super::*;
    use crate::referral::ReferralStatus;
    use crate::tls::Credentials;

    /// A node of `team` in a test federation, with a certificate its CA issued.
    fn node(ca: &CertificateAuthority, team: &str) -> Credentials {
        let identity = TeamIdentity::new(
            ca.federation().clone(),
            tatmx_certs::TeamId::new(team).unwrap(),
        );
        let key = NodeKey::generate(&identity).unwrap();
        let issued = ca.sign_csr(&key.csr_pem, identity.team.clone(), 1).unwrap();
        Credentials::from_pem(&issued.cert_pem, &key.key_pem, &identity, team).unwrap()
    }

    fn federation() -> CertificateAuthority {
        CertificateAuthority::create(FederationId::new("county-mdt.example").unwrap(), 1).unwrap()
    }

    fn update(author: &TeamIdentity) -> StatusUpdate {
        StatusUpdate {
            id: Uuid::now_v7(),
            referral_id: Uuid::now_v7(),
            author: author.clone(),
            status: ReferralStatus::Received,
            at: OffsetDateTime::now_utc(),
            reason: None,
            reason_code: None,
            outcome: None,
            withheld: Vec::new(),
            forwarded_to: None,
        }
    }

    fn signed(by: &Credentials, bytes: &[u8]) -> Vec<u8> {
        by.signer()
            .sign(&signing::message_payload(
                MessageKind::StatusUpdate.as_str(),
                bytes,
            ))
            .unwrap()
    }

    #[test]
    fn a_message_signed_by_its_sender_is_received_with_its_proof() {
        let ca = federation();
        let (school, county) = (node(&ca, "school"), node(&ca, "county"));
        let sent = update(school.identity());
        let bytes = wire::encode_status_update(&sent);
        let signature = signed(&school, &bytes);
        let received = SenderChecked::<StatusUpdate>::decode(bytes.clone(), school.identity())
            .unwrap()
            .verify_signature(
                school.signer().certificate().to_vec(),
                signing::SCHEME_ECDSA_P256_SHA256,
                signature.clone(),
            )
            .unwrap()
            .receipt(county.signer(), OffsetDateTime::now_utc())
            .unwrap();
        assert_eq!(received.message(), &sent);
        assert_eq!(received.sender(), school.identity());
        let proof = received.proof();
        assert_eq!(proof.message_id, sent.id);
        assert_eq!(proof.kind, "status-update");
        assert_eq!(proof.peer, school.identity().uri());
        assert_eq!(proof.digest, Sha256::digest(&bytes).to_vec());
        assert_eq!(proof.signature, signature);
        // The receipt verifies with this node's certificate, over what the sender signed.
        let receipt = signing::receipt_payload(
            &sent.id.to_string(),
            &proof.digest,
            signing::millis(proof.received_at.unwrap()),
        );
        signing::verify(
            county.signer().certificate(),
            signing::SCHEME_ECDSA_P256_SHA256,
            &receipt,
            proof.receipt_signature.as_ref().unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn a_message_naming_another_sender_than_the_caller_is_refused() {
        let ca = federation();
        let (school, county) = (node(&ca, "school"), node(&ca, "county"));
        let bytes = wire::encode_status_update(&update(county.identity()));
        let refused = SenderChecked::<StatusUpdate>::decode(bytes, school.identity()).unwrap_err();
        assert!(matches!(
            refused,
            ReceiveError::SenderMismatch {
                field: "update.author",
                ..
            }
        ));
    }

    #[test]
    fn a_signature_over_other_bytes_or_by_another_team_is_refused() {
        let ca = federation();
        let (school, county) = (node(&ca, "school"), node(&ca, "county"));
        let bytes = wire::encode_status_update(&update(school.identity()));
        let other = wire::encode_status_update(&update(school.identity()));
        let checked = || SenderChecked::<StatusUpdate>::decode(bytes.clone(), school.identity());

        // Signed, but over another message.
        let refused = checked()
            .unwrap()
            .verify_signature(
                school.signer().certificate().to_vec(),
                signing::SCHEME_ECDSA_P256_SHA256,
                signed(&school, &other),
            )
            .unwrap_err();
        assert!(matches!(
            refused,
            SignatureRefused::Signature(SignatureError::Invalid)
        ));

        // Signed over these bytes, but by another team's key and certificate.
        let refused = checked()
            .unwrap()
            .verify_signature(
                county.signer().certificate().to_vec(),
                signing::SCHEME_ECDSA_P256_SHA256,
                signed(&county, &bytes),
            )
            .unwrap_err();
        assert!(matches!(refused, SignatureRefused::SignerMismatch { .. }));

        // The sender's certificate, with another team's signature.
        let refused = checked()
            .unwrap()
            .verify_signature(
                school.signer().certificate().to_vec(),
                signing::SCHEME_ECDSA_P256_SHA256,
                signed(&county, &bytes),
            )
            .unwrap_err();
        assert!(matches!(
            refused,
            SignatureRefused::Signature(SignatureError::Invalid)
        ));
    }
}
