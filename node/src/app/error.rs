//! What a use case can refuse, in the domain's words.
//!
//! Each edge maps an [`AppError`] to its own protocol once: the Agency API to a gRPC status
//! (`impl From<AppError> for Status` in `agency.rs`), the console to a page
//! (`console::page`). A message says what was wrong and what to do,
//! and never carries personal data: only field names, ids, states and team identities.

use uuid::Uuid;

use crate::case_message::CaseRefusal;
use crate::lifecycle::TransitionError;
use crate::retraction::Tombstone;
use crate::store::StoreError;
use crate::trust::TrustError;

/// Why a use case did nothing.
///
/// Invariant: whatever the variant, nothing of the request was stored or queued.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed or breaks a rule of the domain; the message names the field
    /// (`field: what is wrong`).
    #[error("{0}")]
    Invalid(String),
    /// A referral this node never held.
    #[error("no referral {0} on this node")]
    NoSuchReferral(Uuid),
    /// A referral that was here and has been purged; only its tombstone is left.
    #[error(
        "referral {} was purged at {} ({}); only its tombstone remains",
        .0.referral_id, .0.purged_at, .0.cause.as_str()
    )]
    Purged(Box<Tombstone>),
    /// Something else named by the request is not here (a consent, a consultation, a dead
    /// letter); the message names it.
    #[error("{0}")]
    NotFound(String),
    /// The recipient named is not one this node may send to now: not a peer, or blocked by
    /// an admin. Only [`TrustError::UnknownPeer`] and [`TrustError::Blocked`]; an admin can
    /// change either.
    #[error(transparent)]
    Recipient(TrustError),
    /// The request is well formed but the state of things does not allow it now (the
    /// policy withholds everything, the consent is for another subject, the referral is
    /// closed).
    #[error("{0}")]
    Precondition(String),
    /// The referral's lifecycle does not allow this move now.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The case's rules do not allow this message now, from this team.
    #[error(transparent)]
    Case(#[from] CaseRefusal),
    /// An idempotency key was used before for a different draft.
    #[error("idempotency_key: was used before for a different draft; nothing was sent")]
    IdempotencyKeyReused,
    /// The store failed; nothing was saved.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AppError {
    /// A malformed field: `field: problem`.
    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::Invalid(format!("{field}: {problem}"))
    }
}

impl From<crate::referral::ValidationError> for AppError {
    fn from(e: crate::referral::ValidationError) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl From<crate::consent::ConsentError> for AppError {
    fn from(e: crate::consent::ConsentError) -> Self {
        Self::Invalid(e.to_string())
    }
}

/// A recipient that cannot be sent to: unknown or blocked is the state of this node's trust
/// (an admin can change it); anything else is a malformed recipient.
impl From<TrustError> for AppError {
    fn from(e: TrustError) -> Self {
        match e {
            TrustError::UnknownPeer(_) | TrustError::Blocked(_) => Self::Recipient(e),
            _ => Self::Invalid(e.to_string()),
        }
    }
}
