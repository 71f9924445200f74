//! Team identities: `spiffe://<federation>/team/<team-id>`, and the DNS names a node may carry
//! beside one.
//!
//! These are the names the whole federation agrees on. They appear in certificates, in the
//! directory, in every message envelope and in the audit log, so they are validated once, here,
//! and carried around as types that cannot hold an invalid value.
//!
//! A [`DnsName`] is only for TLS clients outside the federation (grpcurl, Python grpcio,
//! openssl) that check a host name: it names where a node is reached, never who it is, and
//! nothing in tatmx authorizes by it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a federation id, team id or identity URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// A team id must be 1 to 63 characters of `a-z`, `0-9` and `-`, not starting or ending in `-`.
    #[error(
        "invalid team id {0:?}: use 1-63 characters a-z, 0-9 and '-', not starting or ending with '-'"
    )]
    TeamId(String),
    /// A federation id must be a lowercase DNS-style name.
    #[error(
        "invalid federation id {0:?}: use a lowercase DNS-style name such as county-mdt.example"
    )]
    FederationId(String),
    /// The URI is not of the form `spiffe://<federation>/team/<team-id>`.
    #[error("invalid team identity {0:?}: expected spiffe://<federation>/team/<team-id>")]
    Uri(String),
    /// A node's DNS name must be one exact host name: no wildcard, no IP address.
    #[error("invalid DNS name {name:?}: {reason}")]
    DnsName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The id of one team inside a federation, such as `lincoln-high`.
///
/// Invariant: 1 to 63 characters of `a-z`, `0-9` and `-`, neither first nor last being `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TeamId(String);

impl TeamId {
    /// Validates and wraps a team id.
    pub fn new(value: impl Into<String>) -> Result<Self, IdentityError> {
        let value = value.into();
        if is_label(&value) {
            Ok(Self(value))
        } else {
            Err(IdentityError::TeamId(value))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id of a federation, such as `county-mdt.example`.
///
/// Invariant: a lowercase DNS-style name of at most 253 characters whose dot-separated labels
/// each satisfy the [`TeamId`] rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FederationId(String);

impl FederationId {
    /// Validates and wraps a federation id.
    pub fn new(value: impl Into<String>) -> Result<Self, IdentityError> {
        let value = value.into();
        if !value.is_empty() && value.len() <= 253 && value.split('.').all(is_label) {
            Ok(Self(value))
        } else {
            Err(IdentityError::FederationId(value))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URI that names the federation itself, `spiffe://<federation>`; the CA carries it so
    /// that an anchor can only ever vouch for its own federation.
    pub fn uri(&self) -> String {
        format!("spiffe://{}", self.0)
    }
}

/// A team's full identity: which federation, and which team in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TeamIdentity {
    /// The federation whose CA vouches for this team.
    pub federation: FederationId,
    /// The team's id inside that federation.
    pub team: TeamId,
}

impl TeamIdentity {
    /// Pairs a federation and a team.
    pub fn new(federation: FederationId, team: TeamId) -> Self {
        Self { federation, team }
    }

    /// The SPIFFE-form URI, `spiffe://<federation>/team/<team-id>`.
    pub fn uri(&self) -> String {
        format!("spiffe://{}/team/{}", self.federation.0, self.team.0)
    }

    /// Parses `spiffe://<federation>/team/<team-id>`, and nothing looser.
    pub fn parse_uri(uri: &str) -> Result<Self, IdentityError> {
        let invalid = || IdentityError::Uri(uri.to_owned());
        let rest = uri.strip_prefix("spiffe://").ok_or_else(invalid)?;
        let (federation, path) = rest.split_once('/').ok_or_else(invalid)?;
        let team = path.strip_prefix("team/").ok_or_else(invalid)?;
        Ok(Self {
            federation: FederationId::new(federation).map_err(|_| invalid())?,
            team: TeamId::new(team).map_err(|_| invalid())?,
        })
    }
}

/// One exact host name a node's certificate may carry for standard TLS clients, such as
/// `node.county-mdt.example`.
///
/// Invariant: lowercase ASCII, at most 253 characters, dot-separated labels that each satisfy
/// the [`TeamId`] rule, no trailing dot, and a last label that is not all digits (so no IPv4
/// address). Wildcards and IP literals are refused: a wildcard would let one certificate answer
/// for hosts the CA never saw, and an IP address is an `iPAddress` SAN, not a DNS one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsName(String);

impl DnsName {
    /// Validates and wraps a DNS name; upper-case letters are folded to lower case, as DNS
    /// compares names without case.
    pub fn new(value: impl Into<String>) -> Result<Self, IdentityError> {
        let name: String = value.into();
        let refuse = |reason| IdentityError::DnsName {
            name: name.clone(),
            reason,
        };
        if name.contains('*') {
            return Err(refuse(
                "wildcards are not issued; name each host the node answers for",
            ));
        }
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<std::net::IpAddr>().is_ok() {
            return Err(refuse(
                "an IP address is not a DNS name; connect by a host name that resolves to it",
            ));
        }
        let folded = name.to_ascii_lowercase();
        if folded.is_empty() || folded.len() > 253 {
            return Err(refuse("a DNS name has 1 to 253 characters"));
        }
        if folded.ends_with('.') {
            return Err(refuse("write the name without a trailing dot"));
        }
        if !folded.split('.').all(is_label) {
            return Err(refuse(
                "each dot-separated label needs 1-63 characters a-z, 0-9 and '-', not starting \
                 or ending with '-'",
            ));
        }
        if folded
            .rsplit('.')
            .next()
            .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(refuse(
                "the last label is all digits, which reads as an IP address",
            ));
        }
        Ok(Self(folded))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl fmt::Display for TeamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for FederationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for TeamIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DnsName {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for DnsName {
    type Error = IdentityError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<DnsName> for String {
    fn from(name: DnsName) -> Self {
        name.0
    }
}

impl FromStr for TeamId {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl FromStr for FederationId {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl FromStr for TeamIdentity {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_uri(s)
    }
}

impl TryFrom<String> for TeamId {
    type Error = IdentityError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<TeamId> for String {
    fn from(id: TeamId) -> Self {
        id.0
    }
}

impl TryFrom<String> for FederationId {
    type Error = IdentityError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<FederationId> for String {
    fn from(id: FederationId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_team_identity_uri() {
        let id = TeamIdentity::parse_uri("spiffe://county-mdt.example/team/lincoln-high").unwrap();
        assert_eq!(id.federation.as_str(), "county-mdt.example");
        assert_eq!(id.team.as_str(), "lincoln-high");
        assert_eq!(id.uri(), "spiffe://county-mdt.example/team/lincoln-high");
    }

    #[test]
    fn refuses_malformed_identities() {
        for bad in [
            "",
            "https://county-mdt.example/team/a",
            "spiffe://county-mdt.example/a",
            "spiffe://county-mdt.example/team/",
            "spiffe://county-mdt.example/team/a/b",
            "spiffe://County.example/team/a",
            "spiffe://county-mdt.example/team/-a",
            "spiffe:///team/a",
            "spiffe://a..b/team/a",
        ] {
            assert!(
                TeamIdentity::parse_uri(bad).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn dns_names_are_exact_host_names() {
        let name = DnsName::new("Node.County-MDT.example").unwrap();
        assert_eq!(name.as_str(), "node.county-mdt.example");
        assert!(DnsName::new("localhost").is_ok());
        assert!(DnsName::new("n1.example").is_ok());
        for (bad, why) in [
            ("*.county-mdt.example", "wildcard"),
            ("node.*.example", "wildcard"),
            ("127.0.0.1", "IP address"),
            ("::1", "IP address"),
            ("[2001:db8::1]", "IP address"),
            ("10.0.0.300", "all digits"),
            ("node.example.", "trailing dot"),
            ("", "1 to 253"),
            ("node..example", "label"),
            ("-node.example", "label"),
            ("node_1.example", "label"),
            ("n\u{e9}.example", "label"),
        ] {
            let error = DnsName::new(bad).unwrap_err().to_string();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
        assert!(DnsName::new(format!("{}.example", "a".repeat(64))).is_err());
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(long.len(), 255);
        assert!(DnsName::new(long).is_err());
    }

    #[test]
    fn dns_names_are_names_webpki_accepts() {
        for good in ["node.county-mdt.example", "localhost", "a-1.b2.example"] {
            let name = DnsName::new(good).unwrap();
            assert!(
                rustls_pki_types::DnsName::try_from(name.as_str()).is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn team_ids_are_bounded_labels() {
        assert!(TeamId::new("a".repeat(63)).is_ok());
        assert!(TeamId::new("a".repeat(64)).is_err());
        assert!(TeamId::new("core_team").is_err());
        assert!(TeamId::new("core-team-2").is_ok());
    }
}
