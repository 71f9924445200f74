//! Who this node trusts, and the check every federation call passes through.
//!
//! Trust has three parts: the **anchors** (federation CA certificates, never merged across
//! federations), the **revocation lists** those CAs sign, and the **peers** (teams this node
//! deals with). They come from the config file, from admins through the Admin API, and from
//! signed federation directories. [`TrustState`] is one immutable, consistent view of all of it;
//! [`Trust`] swaps in a new view on every change, so new handshakes and the next request on an
//! open connection both see a change at once.
//!
//! The only caller identity the federation handlers accept is a [`VerifiedPeer`], and only
//! [`TrustState::authorize`] makes one.
//!
//! # Layout
//! - [`state`]: the immutable view, certificate checks and authorization.
//! - [`live`]: the shared handle that persists changes and swaps views.

mod live;
mod state;

use std::fmt;

use serde::{Deserialize, Serialize};
use tatmx_certs::TeamIdentity;

pub use live::{PeerHealth, Trust, TrustChangeError, TrustConfig};
pub use state::{
    Anchor, CheckedCertificate, DirectoryRecord, PeerEntry, RevocationList, TrustBuildError,
    TrustInputs, TrustState,
};

/// A team's part in threat assessment and management.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The team that assesses and manages cases; often law-enforcement led.
    Core,
    /// A school, mental-health, social-services or similar team that refers concerns.
    Affiliate,
    /// A team that gives consultations, such as a federal behavioural-analysis unit.
    Partner,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Self::Core, Self::Affiliate, Self::Partner];

    /// Parses the stable name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The stable name used in config files and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Core => "core",
            Self::Affiliate => "affiliate",
            Self::Partner => "partner",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The professional discipline a team belongs to; the law that protects its records follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Discipline {
    /// Police and sheriffs (CJIS).
    LawEnforcement,
    /// Mental-health providers (HIPAA).
    MentalHealth,
    /// Substance-use treatment programmes (42 CFR Part 2).
    SubstanceUse,
    /// Schools (FERPA).
    Education,
    /// Social services.
    SocialServices,
    /// Federal partners such as a behavioural-analysis unit.
    FederalPartner,
}

impl Discipline {
    /// Every discipline.
    pub const ALL: [Discipline; 6] = [
        Self::LawEnforcement,
        Self::MentalHealth,
        Self::SubstanceUse,
        Self::Education,
        Self::SocialServices,
        Self::FederalPartner,
    ];

    /// Parses the stable name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// The stable name used in config files and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LawEnforcement => "law-enforcement",
            Self::MentalHealth => "mental-health",
            Self::SubstanceUse => "substance-use",
            Self::Education => "education",
            Self::SocialServices => "social-services",
            Self::FederalPartner => "federal-partner",
        }
    }
}

impl fmt::Display for Discipline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A team this node exchanges messages with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The team's identity, as its certificate must prove it.
    pub identity: TeamIdentity,
    /// Where its Federation API listens, `https://host:port`.
    pub endpoint: http::Uri,
    /// Its part in the federation.
    pub role: Role,
    /// Its discipline.
    pub discipline: Discipline,
    /// The jurisdiction it serves, for display and policy.
    pub jurisdiction: String,
    /// Whether it may receive criminal-justice information.
    pub cjis_authorized: bool,
}

/// This node's own place in the federation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTeam {
    /// The identity this node's certificate proves.
    pub identity: TeamIdentity,
    /// Its part in the federation.
    pub role: Role,
    /// Its discipline.
    pub discipline: Discipline,
    /// The jurisdiction it serves.
    pub jurisdiction: String,
    /// Whether this team may hold criminal-justice information.
    pub cjis_authorized: bool,
}

/// Where a peer or anchor came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The node's config file; re-read at every start.
    Config,
    /// An admin, through the Admin API.
    Admin,
    /// A signed federation directory.
    Directory,
}

impl Source {
    /// The stable name used in the store and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Admin => "admin",
            Self::Directory => "directory",
        }
    }

    /// Parses the stable name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "config" => Some(Self::Config),
            "admin" => Some(Self::Admin),
            "directory" => Some(Self::Directory),
            _ => None,
        }
    }
}

/// A caller the node has authenticated and recognised. Only [`TrustState::authorize`] makes
/// one, so a handler that holds one knows every check passed against current trust.
#[derive(Debug, Clone)]
pub struct VerifiedPeer {
    /// The caller's identity, from its verified certificate.
    identity: TeamIdentity,
    /// The caller's role, from this node's peer list.
    role: Role,
    /// The caller's discipline, from this node's peer list.
    discipline: Discipline,
    /// The serial of the certificate it used, for the audit trail.
    serial_hex: String,
}

impl VerifiedPeer {
    /// The caller's identity.
    pub fn identity(&self) -> &TeamIdentity {
        &self.identity
    }

    /// The caller's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The caller's discipline.
    pub fn discipline(&self) -> Discipline {
        self.discipline
    }

    /// The serial of the certificate the caller used.
    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }
}

/// Why a caller, certificate or recipient was refused. Messages carry identities and serials,
/// which are membership data, never case data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The connection did not carry a verified client certificate at all.
    #[error("no verified client certificate on this connection")]
    NoCertificate,
    /// The certificate is valid but names no team.
    #[error("the certificate carries no team identity")]
    NoIdentity,
    /// No anchor of the certificate's own federation vouches for it.
    #[error(
        "team {0} belongs to a federation this node does not trust, or its CA is not that federation's"
    )]
    ForeignFederation(TeamIdentity),
    /// The certificate failed validation (expired, not yet valid, revoked, bad chain).
    #[error("certificate of {identity} refused: {reason}")]
    Certificate {
        /// Who it claimed to be.
        identity: TeamIdentity,
        /// What was wrong, such as "expired".
        reason: String,
    },
    /// The certificate's serial is on its federation's CRL.
    #[error("certificate {serial} of {identity} has been revoked")]
    Revoked {
        /// Who it claimed to be.
        identity: TeamIdentity,
        /// The serial, hex.
        serial: String,
    },
    /// The team is not one of this node's peers.
    #[error("team {0} is not a known peer of this node")]
    UnknownPeer(TeamIdentity),
    /// The team is a peer, but an admin blocked it.
    #[error("team {0} is blocked by this node's admin")]
    Blocked(TeamIdentity),
    /// The certificate is not the one the federation directory pins for this team.
    #[error("the certificate of {0} is not the one its federation directory lists")]
    NotPinned(TeamIdentity),
    /// A recipient named by staff could not be understood.
    #[error("recipient {0:?} is neither a team id nor a team identity URI")]
    InvalidRecipient(String),
}
