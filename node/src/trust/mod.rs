//! Who this node trusts, and the check every federation call passes through.
//!
//! The TLS layer proves that a caller holds a certificate from the federation CA. This module
//! decides whether that certificate's team is one this node deals with, and if so produces a
//! [`VerifiedPeer`], the only form of caller identity the federation handlers accept. Peers come
//! from the node's configuration; an unknown team gets nothing.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use tatmx_certs::{FederationId, TeamId, TeamIdentity};

use crate::tls::PeerCertificate;

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
}

/// A caller the node has authenticated and recognised. Only [`Trust::authorize`] makes one, so a
/// handler that holds one knows both checks passed.
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

/// Why a caller or recipient was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The connection did not carry a verified client certificate at all.
    #[error("no verified client certificate on this connection")]
    NoCertificate,
    /// The certificate is valid but names no team.
    #[error("the client certificate carries no team identity")]
    NoIdentity,
    /// The certificate proves an identity in a federation this node is not part of.
    #[error("team {0} belongs to a federation this node does not trust")]
    ForeignFederation(TeamIdentity),
    /// The team is not one of this node's peers.
    #[error("team {0} is not a known peer of this node")]
    UnknownPeer(TeamIdentity),
    /// A recipient named by staff could not be understood.
    #[error("recipient {0:?} is neither a team id nor a team identity URI")]
    InvalidRecipient(String),
}

/// The peers this node deals with, and its own identity.
#[derive(Debug, Clone)]
pub struct Trust {
    /// This node.
    local: LocalTeam,
    /// Known peers by identity.
    peers: HashMap<TeamIdentity, Peer>,
}

impl Trust {
    /// Builds the trust state from the parsed configuration.
    pub fn new(local: LocalTeam, peers: impl IntoIterator<Item = Peer>) -> Self {
        Self {
            local,
            peers: peers.into_iter().map(|p| (p.identity.clone(), p)).collect(),
        }
    }

    /// This node's own team.
    pub fn local(&self) -> &LocalTeam {
        &self.local
    }

    /// The federation this node belongs to.
    pub fn federation(&self) -> &FederationId {
        &self.local.identity.federation
    }

    /// Every known peer.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    /// A peer by identity.
    pub fn peer(&self, identity: &TeamIdentity) -> Option<&Peer> {
        self.peers.get(identity)
    }

    /// Decides whether the holder of a verified certificate may call this node at all.
    pub fn authorize(
        &self,
        certificate: Option<&PeerCertificate>,
    ) -> Result<VerifiedPeer, TrustError> {
        let certificate = certificate.ok_or(TrustError::NoCertificate)?;
        let identity = certificate.identity().ok_or(TrustError::NoIdentity)?;
        if &identity.federation != self.federation() {
            return Err(TrustError::ForeignFederation(identity.clone()));
        }
        let peer = self
            .peers
            .get(identity)
            .ok_or_else(|| TrustError::UnknownPeer(identity.clone()))?;
        Ok(VerifiedPeer {
            identity: identity.clone(),
            role: peer.role,
            discipline: peer.discipline,
            serial_hex: certificate.serial_hex().to_owned(),
        })
    }

    /// Resolves a recipient as staff name it, a bare team id in this federation or a full
    /// identity URI, to a known peer.
    pub fn resolve_recipient(&self, recipient: &str) -> Result<&Peer, TrustError> {
        let identity = if recipient.starts_with("spiffe://") {
            TeamIdentity::parse_uri(recipient)
        } else {
            TeamId::new(recipient).map(|team| TeamIdentity::new(self.federation().clone(), team))
        }
        .map_err(|_| TrustError::InvalidRecipient(recipient.to_owned()))?;
        self.peers
            .get(&identity)
            .ok_or(TrustError::UnknownPeer(identity))
    }
}
