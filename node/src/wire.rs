//! The canonical bytes of each domain message: what is signed, stored and sent.
//!
//! A message's canonical bytes are the protobuf encoding of its wire form ([`crate::convert`]).
//! They are digested for replay checks and signed in message proofs, so the encoding here must
//! never change for a message that already exists: a referral stored last year must encode to
//! the same bytes today. The store keeps messages in this form and reads them back through the
//! `decode_*` functions, so it never sees a protobuf type.

use prost::Message;
use tatmx_certs::FederationId;
use tatmx_proto::v1 as pb;

use crate::case_message::CaseMessage;
use crate::consent::Consent;
use crate::convert::{self, ConversionError};
use crate::referral::{AssessmentOutcome, Referral, StatusUpdate};
use crate::retraction::{Retraction, RetractionAck};

/// Stored or received bytes that are not a valid message.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The bytes are not the protobuf encoding of the message.
    #[error(transparent)]
    Decode(#[from] prost::DecodeError),
    /// The bytes decode, but a field breaks a rule of the domain type.
    #[error(transparent)]
    Invalid(#[from] ConversionError),
}

/// The canonical bytes of a referral.
pub fn encode_referral(referral: &Referral) -> Vec<u8> {
    convert::referral_to_proto(referral).encode_to_vec()
}

/// A referral from its canonical bytes.
pub fn decode_referral(bytes: &[u8]) -> Result<Referral, WireError> {
    Ok(convert::referral_from_proto(pb::Referral::decode(bytes)?)?)
}

/// The canonical bytes of a status update.
pub fn encode_status_update(update: &StatusUpdate) -> Vec<u8> {
    convert::status_update_to_proto(update).encode_to_vec()
}

/// A status update from its canonical bytes.
pub fn decode_status_update(bytes: &[u8]) -> Result<StatusUpdate, WireError> {
    Ok(convert::status_update_from_proto(
        pb::StatusUpdate::decode(bytes)?,
    )?)
}

/// The canonical bytes of a case message.
pub fn encode_case_message(message: &CaseMessage) -> Vec<u8> {
    convert::case_message_to_proto(message).encode_to_vec()
}

/// A case message from its canonical bytes.
pub fn decode_case_message(bytes: &[u8]) -> Result<CaseMessage, WireError> {
    Ok(convert::case_message_from_proto(pb::CaseMessage::decode(
        bytes,
    )?)?)
}

/// The canonical bytes of a retraction.
pub fn encode_retraction(retraction: &Retraction) -> Vec<u8> {
    convert::retraction_to_proto(retraction).encode_to_vec()
}

/// A retraction from its canonical bytes.
pub fn decode_retraction(bytes: &[u8]) -> Result<Retraction, WireError> {
    Ok(convert::retraction_from_proto(pb::Retraction::decode(
        bytes,
    )?)?)
}

/// The canonical bytes of a retraction's acknowledgement.
pub fn encode_retraction_ack(ack: &RetractionAck) -> Vec<u8> {
    convert::retraction_ack_to_proto(ack).encode_to_vec()
}

/// A retraction's acknowledgement from its canonical bytes.
pub fn decode_retraction_ack(bytes: &[u8]) -> Result<RetractionAck, WireError> {
    Ok(convert::retraction_ack_from_proto(
        pb::RetractionAck::decode(bytes)?,
    )?)
}

/// The canonical bytes of a consent record.
pub fn encode_consent(consent: &Consent) -> Vec<u8> {
    convert::consent_to_proto(consent).encode_to_vec()
}

/// A consent record from its canonical bytes. Its recipients may be bare team ids, which are
/// read as teams of `federation`.
pub fn decode_consent(bytes: &[u8], federation: &FederationId) -> Result<Consent, WireError> {
    Ok(convert::consent_from_proto(
        pb::Consent::decode(bytes)?,
        federation,
    )?)
}

/// The canonical bytes of an assessment's outcome.
pub fn encode_outcome(outcome: &AssessmentOutcome) -> Vec<u8> {
    convert::outcome_to_proto(outcome).encode_to_vec()
}

/// An assessment's outcome from its canonical bytes.
pub fn decode_outcome(bytes: &[u8]) -> Result<AssessmentOutcome, WireError> {
    Ok(convert::outcome_from_proto(pb::AssessmentOutcome::decode(
        bytes,
    )?))
}

#[cfg(test)]
mod tests {
    use tatmx_certs::TeamIdentity;
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;
    use crate::referral::ReferralStatus;

    fn team(name: &str) -> TeamIdentity {
        TeamIdentity::parse_uri(&format!("spiffe://example.org/team/{name}")).unwrap()
    }

    /// Whole seconds: the wire keeps nanoseconds, but a round number reads better in a failure.
    fn at() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    #[test]
    fn a_status_update_comes_back_as_it_went() {
        let update = StatusUpdate {
            id: Uuid::now_v7(),
            referral_id: Uuid::now_v7(),
            author: team("north"),
            status: ReferralStatus::Received,
            at: at(),
            reason: Some("seen".into()),
            reason_code: None,
            outcome: None,
            withheld: Vec::new(),
            forwarded_to: Some(team("south")),
        };
        let bytes = encode_status_update(&update);
        let back = decode_status_update(&bytes).unwrap();
        assert_eq!(encode_status_update(&back), bytes);
        assert_eq!(back.referral_id, update.referral_id);
        assert_eq!(back.forwarded_to, update.forwarded_to);
    }

    #[test]
    fn bytes_that_are_not_a_message_are_refused_by_name() {
        // A field tag of 0 is never valid protobuf.
        let garbage = [0u8, 1, 2, 3];
        assert!(matches!(
            decode_retraction(&garbage),
            Err(WireError::Decode(_))
        ));
        // An empty message decodes, but its ids are missing.
        assert!(matches!(
            decode_retraction_ack(&[]),
            Err(WireError::Invalid(_))
        ));
    }
}
