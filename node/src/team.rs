//! Who a team is in the federation: its part in threat assessment and management, its
//! discipline (which decides the law that protects its records), and what this node knows of
//! itself and of each peer.
//!
//! These are plain domain types: the policy, consent and config read them, and [`crate::trust`]
//! decides which teams are peers and proves who is calling.

use std::fmt;

use serde::{Deserialize, Serialize};
use tatmx_certs::TeamIdentity;

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
