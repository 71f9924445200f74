//! Retraction: when a subject withdraws consent, the data comes back out of every node it
//! reached.
//!
//! The revoking node sends a [`Retraction`] to each team that received a referral under the
//! consent. Each recipient purges its copy (crypto-shredding, see [`crate::vault`]), keeps a
//! [`Tombstone`], retracts its own forwards of that copy in turn, and answers with a
//! [`RetractionAck`] naming those forwards. Acknowledgements from further hops travel back the
//! same way, each hop relaying them upstream, until the revoking node has heard from every copy
//! ([`RetractionProgress`]). No node learns more than the hops it already talked to.
//!
//! Retractions and acknowledgements travel through the outbox like any other message: durable,
//! retried, and in order per peer, so a retraction never overtakes the referral it retracts.

use tatmx_certs::TeamIdentity;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::category::DataCategory;
use crate::referral::Purpose;

/// Why data is being pulled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetractionCause {
    /// The subject, or a guardian, revoked the consent it was shared under.
    ConsentRevoked,
}

/// A request to purge one referral, from the team that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retraction {
    /// The message id, unique per hop.
    pub id: Uuid,
    /// Shared by every hop of one retraction.
    pub retraction_id: Uuid,
    /// The referral the recipient holds.
    pub referral_id: Uuid,
    /// The referral's sender, as its certificate proves.
    pub author: TeamIdentity,
    /// Why.
    pub cause: RetractionCause,
    /// When it was asked.
    pub at: OffsetDateTime,
}

/// One copy of the data: which team holds (or held) which referral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// The team holding it.
    pub team: TeamIdentity,
    /// Its referral id there.
    pub referral_id: Uuid,
}

/// A team's report that it purged a copy, possibly relayed by the hops in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetractionAck {
    /// The message id, unique per hop.
    pub id: Uuid,
    /// The retraction it answers.
    pub retraction_id: Uuid,
    /// The copy purged.
    pub purged: Copy,
    /// False when the team held nothing under that id.
    pub held: bool,
    /// When the purge committed.
    pub purged_at: OffsetDateTime,
    /// The team's own forwards of the copy, which it is retracting in turn.
    pub downstream: Vec<Copy>,
    /// The team sending this message: the purging team or a relaying hop.
    pub author: TeamIdentity,
}

/// Why a referral was purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeCause {
    /// A retraction reached this node.
    ConsentRevoked,
    /// Its retention deadline passed.
    Retention,
}

impl PurgeCause {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConsentRevoked => "consent-revoked",
            Self::Retention => "retention",
        }
    }

    /// The stored name back.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "consent-revoked" => Some(Self::ConsentRevoked),
            "retention" => Some(Self::Retention),
            _ => None,
        }
    }
}

/// What remains of a purged referral: ids, categories, when and why, and never content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// The purged referral.
    pub referral_id: Uuid,
    /// Whether this node had received it (or sent it on, for a forward).
    pub inbound: bool,
    /// Its sender, as an identity URI.
    pub sender: String,
    /// Its recipient, as an identity URI.
    pub recipient: String,
    /// Why it had been shared.
    pub purpose: Option<Purpose>,
    /// The categories it carried.
    pub categories: Vec<DataCategory>,
    /// When this node had stored it.
    pub recorded_at: OffsetDateTime,
    /// When it was purged.
    pub purged_at: OffsetDateTime,
    /// Why.
    pub cause: PurgeCause,
    /// The retraction behind it, if any.
    pub retraction_id: Option<Uuid>,
}

/// One copy a retraction must reach, as the revoking node tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetProgress {
    /// The copy.
    pub copy: Copy,
    /// Who reported the copy: this node for its own recipients, a hop for its forwards.
    pub reported_by: String,
    /// When its holder's acknowledgement arrived here.
    pub acknowledged_at: Option<OffsetDateTime>,
    /// Whether the holder had the copy when the retraction reached it.
    pub held: bool,
    /// When the holder purged it.
    pub purged_at: Option<OffsetDateTime>,
}

/// How far one retraction has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetractionProgress {
    /// The retraction.
    pub id: Uuid,
    /// The consent whose revocation started it.
    pub consent_id: Uuid,
    /// When it started.
    pub started_at: OffsetDateTime,
    /// Every copy known so far.
    pub targets: Vec<TargetProgress>,
}

impl RetractionProgress {
    /// Every copy known so far has been acknowledged. Later hops become known only through
    /// earlier hops' acknowledgements, so this cannot be true while a reported forward is
    /// still unanswered.
    pub fn complete(&self) -> bool {
        self.targets.iter().all(|t| t.acknowledged_at.is_some())
    }
}
