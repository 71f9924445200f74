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
//! - [`handshake`]: mutual TLS 1.3 as this trust decides it: the verifiers, the accept loop
//!   and the connector.
//! - [`admission`]: who may start a handshake while others are pending: caps per address and
//!   per network, and a share kept for the peers' own addresses.

pub mod admission;
pub mod handshake;
mod live;
mod state;

use tatmx_certs::TeamIdentity;

pub use crate::team::{Discipline, LocalTeam, Peer, Role};
pub use handshake::PeerCertificate;
pub use live::{PeerHealth, Trust, TrustChangeError, TrustConfig};
pub use state::{
    Anchor, CheckedCertificate, DirectoryRecord, PeerEntry, RevocationList, TrustBuildError,
    TrustInputs, TrustState,
};

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

/// The metrics' label for a refusal the trust state decided; here, so that [`crate::metrics`]
/// needs nothing of trust.
impl crate::metrics::Refusal {
    /// The reason for a refusal decided by the trust state.
    pub fn of_trust(error: &TrustError) -> Self {
        match error {
            TrustError::NoCertificate | TrustError::NoIdentity => Self::NotAuthenticated,
            TrustError::ForeignFederation(_) | TrustError::Certificate { .. } => {
                Self::UntrustedCertificate
            }
            TrustError::Revoked { .. } => Self::Revoked,
            TrustError::UnknownPeer(_) => Self::UnknownPeer,
            TrustError::Blocked(_) => Self::Blocked,
            TrustError::NotPinned(_) => Self::NotPinned,
            TrustError::InvalidRecipient(_) => Self::NotAuthorized,
        }
    }
}
