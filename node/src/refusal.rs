//! Refusals with a stable reason code: what a caller reads to decide what to do, instead of
//! the English message, which is for people and may change.
//!
//! Every refusal travels as a `tonic::Status` with the gRPC code of its [`Reason`] and, in its
//! details, a `google.rpc.ErrorInfo` whose `reason` is the code (`CLOCK_SKEW`, ...) and whose
//! `domain` is [`DOMAIN`]. Its metadata carries ids at most, never personal data. The codes
//! are part of the protocol: a code is never renamed or reused for another meaning, only added.
//! The table in `docs/REFUSALS.md` lists them, with which a sender retries.
//!
//! When a request field is at fault, the details also carry a `google.rpc.BadRequest` with one
//! `FieldViolation`: the field's path as the proto names it (`referral.recipient`) and what is
//! wrong with it, in words that never echo the field's value.
//!
//! This module depends on nothing in the node, so every service (the Federation API, the
//! Agency and Admin APIs, the codec that decodes their requests) refuses with the same codes.
//! The local APIs' codes live in the same [`Reason`] as the federation's, not in a sibling
//! enum: they share the domain `tatmx.org`, where a code must mean one thing, and a client
//! (a case system, or a node reading a peer's refusal) parses one closed set.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every tatmx refusal: whose codes these are.
pub const DOMAIN: &str = "tatmx.org";

/// Why a call was refused: a closed set of stable codes.
///
/// Each code has one gRPC [`Code`] ([`Reason::code`]) and one answer to "may the sender try
/// the same message again?" ([`Reason::retry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No verified client certificate, or one that names no team. Retried: the caller's
    /// credentials may be fixed.
    NotAuthenticated,
    /// The caller's certificate does not chain to an anchor of its federation, has expired, or
    /// belongs to a federation this node does not trust. Retried: a CA rotation or a directory
    /// update heals it.
    CertificateUntrusted,
    /// The caller's certificate is on its federation's revocation list. Retried: the team gets
    /// a new certificate, and the same message then goes through.
    CertificateRevoked,
    /// The caller's certificate is not the one the federation directory lists for its team.
    /// Retried: the directory catches up with a rotation.
    CertificateNotPinned,
    /// The caller's team is not a peer of this node. Retried: an admin may add it.
    UnknownPeer,
    /// An admin of this node blocked the caller's team. Retried: the block may be lifted.
    PeerBlocked,
    /// The message names, or is signed by, another team than the caller's certificate.
    /// Retried, as every refusal of who the caller is: trust may change on either side.
    SenderMismatch,
    /// The caller's team has a role that may not send this (only a core team asks for
    /// consultations). Retried: the federation directory may change the role.
    RoleRefused,
    /// The caller's clock is more than the allowed skew from this node's. Retried: it heals
    /// when a clock is fixed, not by changing the message.
    ClockSkew,
    /// The message or request is malformed: a required field missing, a value out of its
    /// domain, a header that is not a number. Not retried: the same bytes get the same answer.
    InvalidMessage,
    /// The sender's signature is missing, of an unsupported scheme, or does not verify over
    /// the message. Not retried.
    BadSignature,
    /// The signature names a signing certificate that does not chain to a trusted anchor.
    /// Not retried: the signature is part of the stored message.
    SignerUntrusted,
    /// This node is not a member of the federation the message belongs to. Not retried.
    NotAMember,
    /// The message is addressed to another team than this node's. Not retried.
    WrongRecipient,
    /// This node's policy may not hold what the message carries. Not retried.
    PolicyRefused,
    /// The lifecycle does not allow this status change now. Not retried.
    TransitionRefused,
    /// The message id was already received with different content: a replay, not a
    /// redelivery. Not retried.
    ConflictingContent,
    /// No referral with this id is shared between the caller's team and this node. Not
    /// retried.
    UnknownReferral,
    /// No copy under this retraction was reported to this node by the caller's team. Not
    /// retried.
    UnknownRetraction,
    /// An audit range asked for is reversed or too long. Not retried.
    AuditRangeInvalid,
    /// Part of an audit range asked for is not in this node's log. Not retried.
    AuditRangeMissing,
    /// This node's store is busy or locked. Retried.
    StoreBusy,
    /// This node's disk is full; nothing was saved. Retried once an admin has freed space.
    StoreFull,
    /// This node's store failed; nothing was saved. Retried.
    StoreFailed,
    /// Something failed inside this node (signing a receipt, say). Retried.
    Internal,
    /// The caller announced no protocol version this node speaks. Retried: one of the two
    /// nodes may be upgraded.
    NoCommonVersion,
    // The codes below are the Agency and Admin APIs' own: what this node's staff and case
    // systems are refused. "Retried" answers the same question for a case system resending
    // the same request.
    /// The recipient named is not a peer of this node. Retried: an admin may add it.
    UnknownRecipient,
    /// An admin of this node blocked the recipient named. Retried: the block may be lifted.
    RecipientBlocked,
    /// The request is well formed but the state of things does not allow it now: the policy
    /// withholds every category, the consent is for another subject, the referral is
    /// closed. Not retried: a person has to change something first.
    NotAllowedNow,
    /// This side of the referral may not make this status change or send this case message.
    /// Not retried.
    WrongParty,
    /// The referral was here and has been purged; only its tombstone is left. Not retried.
    ReferralPurged,
    /// Something else the request names (a consent, a consultation, an outbox message, a peer,
    /// an information request) is not on this node. Not retried.
    UnknownRecord,
    /// The idempotency key was used before for a different draft; nothing was sent. Not
    /// retried: the same key with the same draft gets the first answer, not this refusal.
    IdempotencyKeyReused,
    /// What the request would create exists already (an account of that name). Not retried.
    AlreadyExists,
    /// A watcher of the outbox fell too far behind; list the outbox, then watch again.
    /// Retried.
    WatcherBehind,
    /// A federation directory offered to this node is not signed by a key it trusts for that
    /// federation, or its signature does not verify. Not retried.
    DirectoryUntrusted,
}

impl Reason {
    /// Every code, for tables and tests.
    pub const ALL: [Reason; 36] = [
        Reason::NotAuthenticated,
        Reason::CertificateUntrusted,
        Reason::CertificateRevoked,
        Reason::CertificateNotPinned,
        Reason::UnknownPeer,
        Reason::PeerBlocked,
        Reason::SenderMismatch,
        Reason::RoleRefused,
        Reason::ClockSkew,
        Reason::InvalidMessage,
        Reason::BadSignature,
        Reason::SignerUntrusted,
        Reason::NotAMember,
        Reason::WrongRecipient,
        Reason::PolicyRefused,
        Reason::TransitionRefused,
        Reason::ConflictingContent,
        Reason::UnknownReferral,
        Reason::UnknownRetraction,
        Reason::AuditRangeInvalid,
        Reason::AuditRangeMissing,
        Reason::StoreBusy,
        Reason::StoreFull,
        Reason::StoreFailed,
        Reason::Internal,
        Reason::NoCommonVersion,
        Reason::UnknownRecipient,
        Reason::RecipientBlocked,
        Reason::NotAllowedNow,
        Reason::WrongParty,
        Reason::ReferralPurged,
        Reason::UnknownRecord,
        Reason::IdempotencyKeyReused,
        Reason::AlreadyExists,
        Reason::WatcherBehind,
        Reason::DirectoryUntrusted,
    ];

    /// The code on the wire, in `ErrorInfo.reason`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::NotAuthenticated => "NOT_AUTHENTICATED",
            Reason::CertificateUntrusted => "CERTIFICATE_UNTRUSTED",
            Reason::CertificateRevoked => "CERTIFICATE_REVOKED",
            Reason::CertificateNotPinned => "CERTIFICATE_NOT_PINNED",
            Reason::UnknownPeer => "UNKNOWN_PEER",
            Reason::PeerBlocked => "PEER_BLOCKED",
            Reason::SenderMismatch => "SENDER_MISMATCH",
            Reason::RoleRefused => "ROLE_REFUSED",
            Reason::ClockSkew => "CLOCK_SKEW",
            Reason::InvalidMessage => "INVALID_MESSAGE",
            Reason::BadSignature => "BAD_SIGNATURE",
            Reason::SignerUntrusted => "SIGNER_UNTRUSTED",
            Reason::NotAMember => "NOT_A_MEMBER",
            Reason::WrongRecipient => "WRONG_RECIPIENT",
            Reason::PolicyRefused => "POLICY_REFUSED",
            Reason::TransitionRefused => "TRANSITION_REFUSED",
            Reason::ConflictingContent => "CONFLICTING_CONTENT",
            Reason::UnknownReferral => "UNKNOWN_REFERRAL",
            Reason::UnknownRetraction => "UNKNOWN_RETRACTION",
            Reason::AuditRangeInvalid => "AUDIT_RANGE_INVALID",
            Reason::AuditRangeMissing => "AUDIT_RANGE_MISSING",
            Reason::StoreBusy => "STORE_BUSY",
            Reason::StoreFull => "STORE_FULL",
            Reason::StoreFailed => "STORE_FAILED",
            Reason::Internal => "INTERNAL",
            Reason::NoCommonVersion => "NO_COMMON_VERSION",
            Reason::UnknownRecipient => "UNKNOWN_RECIPIENT",
            Reason::RecipientBlocked => "RECIPIENT_BLOCKED",
            Reason::NotAllowedNow => "NOT_ALLOWED_NOW",
            Reason::WrongParty => "WRONG_PARTY",
            Reason::ReferralPurged => "REFERRAL_PURGED",
            Reason::UnknownRecord => "UNKNOWN_RECORD",
            Reason::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Reason::AlreadyExists => "ALREADY_EXISTS",
            Reason::WatcherBehind => "WATCHER_BEHIND",
            Reason::DirectoryUntrusted => "DIRECTORY_UNTRUSTED",
        }
    }

    /// The gRPC code a refusal with this reason carries, so that a client that reads no
    /// details still gets the right broad answer.
    pub const fn code(self) -> Code {
        match self {
            Reason::NotAuthenticated => Code::Unauthenticated,
            Reason::CertificateUntrusted
            | Reason::CertificateRevoked
            | Reason::CertificateNotPinned
            | Reason::UnknownPeer
            | Reason::PeerBlocked
            | Reason::SenderMismatch
            | Reason::RoleRefused
            | Reason::WrongParty
            | Reason::DirectoryUntrusted => Code::PermissionDenied,
            Reason::ClockSkew
            | Reason::UnknownRecipient
            | Reason::RecipientBlocked
            | Reason::NotAllowedNow
            | Reason::PolicyRefused
            | Reason::TransitionRefused
            | Reason::AuditRangeMissing
            | Reason::NoCommonVersion => Code::FailedPrecondition,
            Reason::InvalidMessage
            | Reason::BadSignature
            | Reason::SignerUntrusted
            | Reason::NotAMember
            | Reason::WrongRecipient => Code::InvalidArgument,
            Reason::ConflictingContent | Reason::IdempotencyKeyReused | Reason::AlreadyExists => {
                Code::AlreadyExists
            }
            Reason::UnknownReferral
            | Reason::UnknownRetraction
            | Reason::ReferralPurged
            | Reason::UnknownRecord => Code::NotFound,
            Reason::AuditRangeInvalid => Code::OutOfRange,
            Reason::StoreBusy => Code::Unavailable,
            Reason::StoreFull | Reason::WatcherBehind => Code::ResourceExhausted,
            Reason::StoreFailed | Reason::Internal => Code::Internal,
        }
    }

    /// Whether sending the same message again may succeed: the refusal is about who is
    /// calling, when, or the receiver's state, not about the message itself.
    pub const fn retry(self) -> bool {
        match self {
            Reason::NotAuthenticated
            | Reason::CertificateUntrusted
            | Reason::CertificateRevoked
            | Reason::CertificateNotPinned
            | Reason::UnknownPeer
            | Reason::PeerBlocked
            | Reason::SenderMismatch
            | Reason::RoleRefused
            | Reason::ClockSkew
            | Reason::StoreBusy
            | Reason::StoreFull
            | Reason::StoreFailed
            | Reason::Internal
            | Reason::NoCommonVersion
            | Reason::UnknownRecipient
            | Reason::RecipientBlocked
            | Reason::WatcherBehind => true,
            Reason::InvalidMessage
            | Reason::BadSignature
            | Reason::SignerUntrusted
            | Reason::NotAMember
            | Reason::WrongRecipient
            | Reason::PolicyRefused
            | Reason::TransitionRefused
            | Reason::ConflictingContent
            | Reason::UnknownReferral
            | Reason::UnknownRetraction
            | Reason::AuditRangeInvalid
            | Reason::AuditRangeMissing
            | Reason::NotAllowedNow
            | Reason::WrongParty
            | Reason::ReferralPurged
            | Reason::UnknownRecord
            | Reason::IdempotencyKeyReused
            | Reason::AlreadyExists
            | Reason::DirectoryUntrusted => false,
        }
    }

    /// Whether the refusal is about a certificate, so that the sender's view of the
    /// federation (CA, revocations, pinned certificates) may be out of date.
    pub const fn concerns_certificates(self) -> bool {
        matches!(
            self,
            Reason::CertificateUntrusted
                | Reason::CertificateRevoked
                | Reason::CertificateNotPinned
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code this node does not know: sent by a newer peer, or not a tatmx code at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a tatmx refusal code")]
pub struct UnknownReason(pub String);

impl FromStr for Reason {
    type Err = UnknownReason;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == code)
            .ok_or_else(|| UnknownReason(code.to_owned()))
    }
}

/// A refusal: the reason's gRPC code, `message` for people, and the reason in an `ErrorInfo`.
pub fn refuse(reason: Reason, message: impl Into<String>) -> Status {
    refuse_with(reason, message, [])
}

/// [`refuse`] with `ErrorInfo.metadata`: ids only (a message id, a referral id), never
/// personal data, since the caller may log it.
pub fn refuse_with<const N: usize>(
    reason: Reason,
    message: impl Into<String>,
    metadata: [(&'static str, String); N],
) -> Status {
    let metadata: HashMap<String, String> = metadata
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    Status::with_error_details(
        reason.code(),
        message,
        ErrorDetails::with_error_info(reason.as_str(), DOMAIN, metadata),
    )
}

/// [`refuse`] naming the request field at fault: a `BadRequest.FieldViolation` with the
/// field's path as the proto names it (`referral.recipient`) and `description`, which says
/// what is wrong and never echoes the field's value (it may be personal data).
pub fn refuse_field(
    reason: Reason,
    message: impl Into<String>,
    field: &str,
    description: &str,
) -> Status {
    let mut details = ErrorDetails::with_error_info(reason.as_str(), DOMAIN, HashMap::new());
    details.add_bad_request_violation(field, description);
    Status::with_error_details(reason.code(), message, details)
}

/// The field a refusal names as at fault, and what is wrong with it, if it names one.
pub fn field_at_fault(status: &Status) -> Option<(String, String)> {
    let violation = status
        .get_details_bad_request()?
        .field_violations
        .into_iter()
        .next()?;
    Some((violation.field, violation.description))
}

/// The reason a refusal carries, if it carries one of this domain that this node knows.
/// `None` for a status with no details (a transport failure, an older peer): the caller then
/// goes by the gRPC code alone, never by the message text.
pub fn reason(status: &Status) -> Option<Reason> {
    let info = status.get_details_error_info()?;
    if info.domain != DOMAIN {
        return None;
    }
    info.reason.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_survives_the_round_trip_through_a_status() {
        for reason in Reason::ALL {
            let status = refuse(reason, "for people");
            assert_eq!(status.code(), reason.code(), "{reason}");
            assert_eq!(status.message(), "for people");
            assert_eq!(super::reason(&status), Some(reason));
            // What the wire carries: the status rebuilt from its code, message and details.
            let received = Status::with_details(
                status.code(),
                status.message(),
                status.details().to_vec().into(),
            );
            assert_eq!(super::reason(&received), Some(reason));
        }
    }

    #[test]
    fn codes_are_distinct_screaming_snake_names() {
        let names: std::collections::HashSet<&str> =
            Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
        for name in names {
            assert!(
                name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{name}"
            );
        }
    }

    #[test]
    fn metadata_travels_with_the_code() {
        let status = refuse_with(
            Reason::ConflictingContent,
            "replayed",
            [("message_id", "0190-abc".to_owned())],
        );
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "CONFLICTING_CONTENT");
        assert_eq!(info.domain, DOMAIN);
        assert_eq!(
            info.metadata.get("message_id").map(String::as_str),
            Some("0190-abc")
        );
    }

    #[test]
    fn the_codec_refuses_undecodable_bytes_with_this_modules_code() {
        use prost::Message;
        let error = prost_types::Timestamp::decode(&[0xff, 0xff, 0xff][..]).unwrap_err();
        let status = tatmx_proto::codec::undecodable(&error);
        assert_eq!(reason(&status), Some(Reason::InvalidMessage));
        assert_eq!(status.code(), Reason::InvalidMessage.code());
    }

    #[test]
    fn a_field_at_fault_travels_with_the_code() {
        let status = refuse_field(
            Reason::InvalidMessage,
            "referral.recipient: is not a team URI",
            "referral.recipient",
            "is not a team URI",
        );
        assert_eq!(status.code(), Code::InvalidArgument);
        let received = Status::with_details(
            status.code(),
            status.message(),
            status.details().to_vec().into(),
        );
        assert_eq!(reason(&received), Some(Reason::InvalidMessage));
        assert_eq!(
            field_at_fault(&received),
            Some(("referral.recipient".into(), "is not a team URI".into()))
        );
        assert_eq!(field_at_fault(&refuse(Reason::Internal, "x")), None);
    }

    #[test]
    fn a_status_without_a_known_code_has_no_reason() {
        assert_eq!(reason(&Status::invalid_argument("CLOCK_SKEW")), None);
        let foreign = Status::with_error_details(
            Code::FailedPrecondition,
            "x",
            ErrorDetails::with_error_info("CLOCK_SKEW", "example.com", HashMap::new()),
        );
        assert_eq!(reason(&foreign), None);
        let newer = Status::with_error_details(
            Code::FailedPrecondition,
            "x",
            ErrorDetails::with_error_info("A_CODE_FROM_THE_FUTURE", DOMAIN, HashMap::new()),
        );
        assert_eq!(reason(&newer), None);
    }
}
