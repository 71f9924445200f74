//! The application layer: every use case of a team's own staff, as domain methods.
//!
//! The edges (the Agency gRPC service, the console) turn their requests into domain types,
//! build the [`Actor`] they authenticated, and call one method here; they hold no policy,
//! lifecycle or transaction logic. A method here decides what the domain allows, runs the
//! filter, and hands the store one write that commits all of it or none of it; it then wakes
//! the outbox for the peers that have something new. Failures are [`AppError`]s, which each
//! edge maps once to its own protocol.
//!
//! Data flows one way: edge → app → (trust, policy, filter, lifecycle) → store → outbox.
//!
//! # Layout
//! - [`error`]: what a use case can refuse.
//! - [`referrals`]: preview, submit, read, inbox, status changes.
//! - [`forwarding`]: passing a received referral on to another team.
//! - [`cases`]: "My cases": every case, paged and searched by this team's own references,
//!   which stay here; what is unread for whom.
//! - [`case`]: a case in motion: questions and answers, new information, management plans,
//!   reassessments, a case's timeline and merged content, the reassessments due.
//! - [`consultations`]: a core team's question to partner teams, and their answers.
//! - [`consents`]: recording, reading and revoking consents, their signed forms; retraction
//!   and tombstones.
//! - [`deliveries`]: the outbox as staff see it: listing, retrying dead letters, watching.
//! - [`audit`]: the audit log as an auditor reads it: verification, queries, the accounting
//!   of disclosures.
//! - [`trust`]: what in this node's trust needs acting on.
//! - [`accounts`]: the console's staff accounts as an admin manages them.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::filter::CaseKey;
use crate::outbox::Outbox;
use crate::policy::Policy;
use crate::store::Store;
use crate::trust::Trust;

pub mod accounts;
pub mod audit;
pub mod case;
pub mod cases;
pub mod consents;
pub mod consultations;
pub mod deliveries;
pub mod error;
pub mod forwarding;
pub mod referrals;
pub mod trust;

pub use crate::actor::Actor;
pub use accounts::IssuedAccount;
pub use case::{CaseDisclosed, CaseDraft, CaseInbox, CaseRecord, ContentPart, DueList};
pub use cases::CaseFilter;
pub use consents::{ConsentDraft, ConsentRecord};
pub use consultations::{Consultation, ConsultationRequest, PartnerAnswer};
pub use error::AppError;
pub use forwarding::Forward;
pub use referrals::{Disclosed, Held, Idempotency, StatusChange};

/// How many rows a list returns when the caller does not say.
pub const DEFAULT_LIMIT: u32 = 100;
/// The most rows one list call returns.
pub const MAX_LIMIT: u32 = 1000;

/// A list's length as asked for: 0 means the default, and no caller gets more than
/// [`MAX_LIMIT`].
pub fn list_limit(requested: u32) -> u32 {
    match requested {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

/// The team's node as its staff use it.
#[derive(Debug, Clone)]
pub struct App {
    /// Resolves recipients to known peers, and names this node's own team.
    trust: Trust,
    /// Referrals, consents, the outbox and the audit log.
    store: Store,
    /// Woken for each peer with a newly queued message.
    outbox: Outbox,
    /// The law as code.
    policy: Arc<Policy>,
    /// Keys the pseudonymous case handles.
    case_key: Arc<CaseKey>,
}

impl App {
    /// Now, by the node's clock ([`crate::clock`]): the time every use case records.
    pub fn now(&self) -> OffsetDateTime {
        self.store.clock().now()
    }

    /// The use cases over the node's shared state.
    pub fn new(
        trust: Trust,
        store: Store,
        outbox: Outbox,
        policy: Arc<Policy>,
        case_key: Arc<CaseKey>,
    ) -> Self {
        Self {
            trust,
            store,
            outbox,
            policy,
            case_key,
        }
    }

    /// This node's trust: its own team, its peers.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }
}
