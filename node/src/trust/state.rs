//! One immutable, consistent view of everything this node trusts, and the checks made with it.
//!
//! A view is built from the config file plus the stored trust state, and never changes; a
//! trust change builds a new one. Certificates are checked against the anchors of the
//! federation they claim, one federation at a time, so a CA can never vouch for another
//! federation's teams even when the node trusts both.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, UnixTime};
use tatmx_certs::{CertificateSummary, FederationId, TeamId, TeamIdentity};
use time::OffsetDateTime;
use webpki::KeyUsage;

use super::PeerCertificate;
use super::{Discipline, LocalTeam, Peer, Role, Source, TrustError, VerifiedPeer};
use crate::store::StoredTrust;
use crate::tls::Identities;

/// A trust state could not be built from its inputs.
#[derive(Debug, thiserror::Error)]
pub enum TrustBuildError {
    /// An anchor is not a usable CA certificate of a named federation.
    #[error("trust anchor {origin}: {problem}")]
    Anchor {
        /// Where it came from (a file or fingerprint).
        origin: String,
        /// What is wrong.
        problem: String,
    },
    /// This node's own federation has no anchor at all.
    #[error("no trust anchor for this node's own federation {0}")]
    NoOwnAnchor(FederationId),
}

/// A federation CA certificate this node trusts.
#[derive(Debug, Clone)]
pub struct Anchor {
    /// The federation it is the root of, from its `spiffe://<federation>` URI.
    pub federation: FederationId,
    /// The certificate, PEM.
    pub pem: String,
    /// SHA-256 of its DER, hex.
    pub fingerprint: String,
    /// When it expires.
    pub not_after: OffsetDateTime,
    /// Where it came from.
    pub source: Source,
    /// The parsed anchor for path validation.
    webpki: rustls::pki_types::TrustAnchor<'static>,
}

/// A peer as this node currently sees it.
#[derive(Debug, Clone)]
pub struct PeerEntry {
    /// The peer.
    pub peer: Peer,
    /// Where it came from.
    pub source: Source,
    /// Refused while blocked, whatever its source.
    pub blocked: bool,
    /// The certificate fingerprint its federation directory lists, when it lists one.
    pub pinned_sha256: Option<String>,
}

/// A federation's current revocation list.
#[derive(Debug)]
pub struct RevocationList {
    /// The federation whose CA signed it.
    pub federation: FederationId,
    /// Its CRL number.
    pub crl_number: u64,
    /// When the CA issued it.
    pub this_update: OffsetDateTime,
    /// When the CA promised the next one.
    pub next_update: Option<OffsetDateTime>,
    /// Revoked serials, hex.
    pub revoked: HashSet<String>,
    /// The CRL, PEM.
    pub pem: String,
    /// The parsed CRL for path validation.
    webpki: webpki::CertRevocationList<'static>,
}

/// The latest directory imported for one federation.
#[derive(Debug, Clone)]
pub struct DirectoryRecord {
    /// The federation.
    pub federation: FederationId,
    /// Its sequence number.
    pub sequence: u64,
    /// When the CA signed it.
    pub issued_at: OffsetDateTime,
    /// When this node imported it.
    pub imported_at: OffsetDateTime,
    /// How many members it lists.
    pub members: u32,
    /// The signed document, verbatim, to hand to peers.
    pub document: String,
}

/// A certificate that chained to an anchor of its own federation at handshake time. Only
/// [`TrustState::check_certificate`] makes one.
#[derive(Debug, Clone)]
pub struct CheckedCertificate {
    /// The identity it proves.
    identity: TeamIdentity,
    /// Its serial, hex.
    serial_hex: String,
    /// SHA-256 of its DER, hex.
    fingerprint: String,
    /// The anchor that vouched for it.
    anchor_fingerprint: String,
    /// When it expires.
    not_after: OffsetDateTime,
}

impl CheckedCertificate {
    /// The identity the certificate proves.
    pub fn identity(&self) -> &TeamIdentity {
        &self.identity
    }

    /// Its serial, hex.
    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }
}

/// Everything a node trusts, at one moment.
#[derive(Debug)]
pub struct TrustState {
    /// This node.
    pub local: LocalTeam,
    /// This node's certificates, one per federation it belongs to.
    pub identities: Identities,
    /// Anchors by federation; never merged across federations.
    anchors: HashMap<FederationId, Vec<Anchor>>,
    /// The latest CRL by federation.
    crls: HashMap<FederationId, RevocationList>,
    /// Peers by identity.
    peers: HashMap<TeamIdentity, PeerEntry>,
    /// The latest directory by federation.
    directories: HashMap<FederationId, DirectoryRecord>,
    /// A directory older than this is reported as stale.
    pub max_directory_age: Duration,
}

/// What a trust state is built from.
pub struct TrustInputs<'a> {
    /// This node.
    pub local: LocalTeam,
    /// This node's certificates, one per federation.
    pub identities: Identities,
    /// Anchors from the config file: (file name, PEM document).
    pub config_anchors: &'a [(String, String)],
    /// Peers from the config file.
    pub config_peers: &'a [Peer],
    /// What the store holds.
    pub stored: &'a StoredTrust,
    /// Directory staleness limit.
    pub max_directory_age: Duration,
}

impl TrustState {
    /// Builds a consistent view. A malformed stored item is skipped with a warning rather than
    /// stopping the node; a malformed config anchor is an error an admin must fix.
    pub fn build(inputs: TrustInputs<'_>) -> Result<Self, TrustBuildError> {
        let mut anchors: HashMap<FederationId, Vec<Anchor>> = HashMap::new();
        let mut seen = HashSet::new();
        let mut add = |anchor: Anchor| {
            if seen.insert(anchor.fingerprint.clone()) {
                anchors
                    .entry(anchor.federation.clone())
                    .or_default()
                    .push(anchor);
            }
        };
        // The config file's anchors bootstrap a federation, as X-Road's configuration anchor
        // does: once a signed directory of that federation is imported, its anchors rule, so a
        // CA rotation announced by directory needs no edit of the file on every node.
        let governed: HashSet<&str> = inputs
            .stored
            .directories
            .iter()
            .map(|d| d.federation.as_str())
            .collect();
        for (origin, pem) in inputs.config_anchors {
            for anchor in
                parse_anchors(pem, Source::Config).map_err(|problem| TrustBuildError::Anchor {
                    origin: origin.clone(),
                    problem,
                })?
            {
                if !governed.contains(anchor.federation.as_str()) {
                    add(anchor);
                }
            }
        }
        for stored in &inputs.stored.anchors {
            let source = Source::parse(&stored.source).unwrap_or(Source::Admin);
            match parse_anchors(&stored.pem, source) {
                Ok(parsed) => parsed.into_iter().for_each(&mut add),
                Err(problem) => {
                    tracing::warn!(fingerprint = %stored.fingerprint, %problem, "stored trust anchor skipped");
                }
            }
        }
        for credentials in inputs.identities.all() {
            let own = &credentials.identity().federation;
            if !anchors.contains_key(own) {
                return Err(TrustBuildError::NoOwnAnchor(own.clone()));
            }
        }

        let mut crls = HashMap::new();
        for stored in &inputs.stored.crls {
            match parse_crl(&stored.pem, &anchors) {
                Ok(crl) => {
                    crls.insert(crl.federation.clone(), crl);
                }
                Err(problem) => {
                    tracing::warn!(federation = %stored.federation, %problem, "stored CRL skipped");
                }
            }
        }

        let mut peers = HashMap::new();
        for peer in inputs.config_peers {
            if inputs.stored.removed.contains(&peer.identity.uri()) {
                continue;
            }
            peers.insert(
                peer.identity.clone(),
                PeerEntry {
                    peer: peer.clone(),
                    source: Source::Config,
                    blocked: false,
                    pinned_sha256: None,
                },
            );
        }
        for stored in &inputs.stored.peers {
            match stored_peer(stored) {
                Some(entry)
                    if inputs
                        .identities
                        .identity_in(&entry.peer.identity.federation)
                        != Some(&entry.peer.identity) =>
                {
                    peers.insert(entry.peer.identity.clone(), entry);
                }
                Some(_) => {}
                None => {
                    tracing::warn!(identity = %stored.identity, "stored peer skipped: unreadable")
                }
            }
        }
        for (identity, entry) in peers.iter_mut() {
            entry.blocked = inputs.stored.blocked.contains(&identity.uri());
        }

        let directories = inputs
            .stored
            .directories
            .iter()
            .filter_map(|d| {
                let federation = FederationId::new(d.federation.clone()).ok()?;
                let members = peers
                    .values()
                    .filter(|p| {
                        p.source == Source::Directory && p.peer.identity.federation == federation
                    })
                    .count();
                let members = u32::try_from(members).unwrap_or(u32::MAX);
                Some((
                    federation.clone(),
                    DirectoryRecord {
                        federation,
                        sequence: d.sequence,
                        issued_at: d.issued_at,
                        imported_at: d.imported_at,
                        members,
                        document: d.document.clone(),
                    },
                ))
            })
            .collect();

        Ok(Self {
            local: inputs.local,
            identities: inputs.identities,
            anchors,
            crls,
            peers,
            directories,
            max_directory_age: inputs.max_directory_age,
        })
    }

    /// Every anchor, by federation then fingerprint.
    pub fn anchors(&self) -> Vec<&Anchor> {
        let mut all: Vec<&Anchor> = self.anchors.values().flatten().collect();
        all.sort_by(|a, b| (&a.federation, &a.fingerprint).cmp(&(&b.federation, &b.fingerprint)));
        all
    }

    /// The anchors of one federation.
    pub fn anchors_of(&self, federation: &FederationId) -> &[Anchor] {
        self.anchors.get(federation).map_or(&[], Vec::as_slice)
    }

    /// Every CRL.
    pub fn crls(&self) -> impl Iterator<Item = &RevocationList> {
        self.crls.values()
    }

    /// The CRL of one federation.
    pub fn crl(&self, federation: &FederationId) -> Option<&RevocationList> {
        self.crls.get(federation)
    }

    /// Every imported directory.
    pub fn directories(&self) -> impl Iterator<Item = &DirectoryRecord> {
        self.directories.values()
    }

    /// The directory of one federation.
    pub fn directory(&self, federation: &FederationId) -> Option<&DirectoryRecord> {
        self.directories.get(federation)
    }

    /// Whether a directory is older than the staleness limit.
    pub fn is_stale(&self, directory: &DirectoryRecord) -> bool {
        let age = OffsetDateTime::now_utc() - directory.issued_at;
        age > self.max_directory_age
    }

    /// Every peer, sorted by identity.
    pub fn peers(&self) -> Vec<&PeerEntry> {
        let mut all: Vec<&PeerEntry> = self.peers.values().collect();
        all.sort_by(|a, b| a.peer.identity.cmp(&b.peer.identity));
        all
    }

    /// A peer by identity, blocked or not.
    pub fn peer(&self, identity: &TeamIdentity) -> Option<&PeerEntry> {
        self.peers.get(identity)
    }

    /// A peer that may be dealt with now: known and not blocked.
    pub fn admit(&self, identity: &TeamIdentity) -> Result<&PeerEntry, TrustError> {
        let entry = self
            .peers
            .get(identity)
            .ok_or_else(|| TrustError::UnknownPeer(identity.clone()))?;
        if entry.blocked {
            return Err(TrustError::Blocked(identity.clone()));
        }
        Ok(entry)
    }

    /// Checks a certificate presented inside a message rather than in a handshake (a signer's
    /// certificate, a receipt's, a checkpoint's): it must chain to an anchor of the federation
    /// it claims, unrevoked, valid at `at`, for `usage`. Returns the identity it proves.
    pub fn check_presented(
        &self,
        der: &[u8],
        at: UnixTime,
        usage: KeyUsage,
    ) -> Result<TeamIdentity, TrustError> {
        let der = CertificateDer::from(der.to_vec());
        self.check_certificate(&der, &[], at, usage)
            .map(|checked| checked.identity().clone())
    }

    /// Validates a certificate chain against the anchors and CRL of the federation it claims,
    /// for `usage` (client or server authentication), at time `now`.
    pub fn check_certificate(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: KeyUsage,
    ) -> Result<CheckedCertificate, TrustError> {
        let summary =
            CertificateSummary::from_der(end_entity).map_err(|_| TrustError::NoIdentity)?;
        let identity = summary.identity.clone().ok_or(TrustError::NoIdentity)?;
        let anchors = self.anchors_of(&identity.federation);
        if anchors.is_empty() {
            return Err(TrustError::ForeignFederation(identity));
        }
        let cert =
            webpki::EndEntityCert::try_from(end_entity).map_err(|e| TrustError::Certificate {
                identity: identity.clone(),
                reason: describe(&e),
            })?;
        let crls: Vec<&webpki::CertRevocationList<'_>> = self
            .crls
            .get(&identity.federation)
            .map(|c| vec![&c.webpki])
            .unwrap_or_default();
        let algorithms = rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .all;
        let mut last_error = None;
        for anchor in anchors {
            let revocation = webpki::RevocationOptionsBuilder::new(&crls).ok().map(|b| {
                b.with_depth(webpki::RevocationCheckDepth::EndEntity)
                    .with_status_policy(webpki::UnknownStatusPolicy::Allow)
                    .build()
            });
            match cert.verify_for_usage(
                algorithms,
                std::slice::from_ref(&anchor.webpki),
                intermediates,
                now,
                usage,
                revocation,
                None,
            ) {
                Ok(_) => {
                    return Ok(CheckedCertificate {
                        identity,
                        serial_hex: summary.serial_hex,
                        fingerprint: summary.fingerprint_sha256,
                        anchor_fingerprint: anchor.fingerprint.clone(),
                        not_after: summary.not_after,
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(match last_error {
            Some(webpki::Error::UnknownIssuer) | None => TrustError::ForeignFederation(identity),
            Some(e) => TrustError::Certificate {
                identity,
                reason: describe(&e),
            },
        })
    }

    /// Decides whether the holder of a connection's certificate may call now. Checked on every
    /// request, so a change of trust reaches connections that were opened before it.
    pub fn authorize(
        &self,
        certificate: Option<&PeerCertificate>,
    ) -> Result<VerifiedPeer, TrustError> {
        let certificate = certificate.ok_or(TrustError::NoCertificate)?;
        let checked = certificate.checked();
        let identity = &checked.identity;
        if !self
            .anchors_of(&identity.federation)
            .iter()
            .any(|a| a.fingerprint == checked.anchor_fingerprint)
        {
            return Err(TrustError::ForeignFederation(identity.clone()));
        }
        if OffsetDateTime::now_utc() > checked.not_after {
            return Err(TrustError::Certificate {
                identity: identity.clone(),
                reason: format!("expired on {}", checked.not_after.date()),
            });
        }
        if self
            .crls
            .get(&identity.federation)
            .is_some_and(|crl| crl.revoked.contains(&checked.serial_hex))
        {
            return Err(TrustError::Revoked {
                identity: identity.clone(),
                serial: checked.serial_hex.clone(),
            });
        }
        let entry = self.admit(identity)?;
        if entry
            .pinned_sha256
            .as_ref()
            .is_some_and(|pin| pin != &checked.fingerprint)
        {
            return Err(TrustError::NotPinned(identity.clone()));
        }
        Ok(VerifiedPeer {
            identity: identity.clone(),
            role: entry.peer.role,
            discipline: entry.peer.discipline,
            serial_hex: checked.serial_hex.clone(),
        })
    }

    /// Resolves a recipient as staff name it, a bare team id in this federation or a full
    /// identity URI, to a peer that may receive now.
    pub fn resolve_recipient(&self, recipient: &str) -> Result<&Peer, TrustError> {
        let identity = if recipient.starts_with("spiffe://") {
            TeamIdentity::parse_uri(recipient)
        } else {
            TeamId::new(recipient)
                .map(|team| TeamIdentity::new(self.local.identity.federation.clone(), team))
        }
        .map_err(|_| TrustError::InvalidRecipient(recipient.to_owned()))?;
        self.admit(&identity).map(|entry| &entry.peer)
    }

    /// This node's own identity in `federation`, if it is a member.
    pub fn own_identity_in(&self, federation: &FederationId) -> Option<&TeamIdentity> {
        self.identities.identity_in(federation)
    }

    /// Resolves a team named by an admin (team id in this federation, or URI).
    pub fn identity_of(&self, team: &str) -> Result<TeamIdentity, TrustError> {
        if team.starts_with("spiffe://") {
            TeamIdentity::parse_uri(team)
        } else {
            TeamId::new(team).map(|t| TeamIdentity::new(self.local.identity.federation.clone(), t))
        }
        .map_err(|_| TrustError::InvalidRecipient(team.to_owned()))
    }
}

/// A short, stable description of a certificate failure, as an admin would want it.
fn describe(error: &webpki::Error) -> String {
    match error {
        webpki::Error::CertExpired { .. } => "the certificate has expired".into(),
        webpki::Error::CertNotValidYet { .. } => "the certificate is not valid yet".into(),
        webpki::Error::CertRevoked => "the certificate has been revoked".into(),
        webpki::Error::UnknownIssuer => "no trusted CA issued it".into(),
        webpki::Error::InvalidSignatureForPublicKey => "its signature does not verify".into(),
        webpki::Error::RequiredEkuNotFoundContext(_) => "it is not issued for this use".into(),
        other => format!("{other:?}"),
    }
}

/// Parses every certificate in a PEM document as an anchor of the federation it names.
pub(crate) fn parse_anchors(pem: &str, source: Source) -> Result<Vec<Anchor>, String> {
    use rustls::pki_types::pem::PemObject;
    let ders = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    if ders.is_empty() {
        return Err("holds no certificate".into());
    }
    ders.into_iter()
        .map(|der| {
            let summary = CertificateSummary::from_der(&der).map_err(|e| e.to_string())?;
            let federation = summary.federation_of_ca().ok_or_else(|| {
                "not a tatmx federation CA (it must be a CA naming spiffe://<federation>)"
                    .to_string()
            })?;
            let webpki = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| format!("not usable as a trust anchor: {e:?}"))?
                .to_owned();
            let pem = pem_of(&der);
            Ok(Anchor {
                federation,
                pem,
                fingerprint: summary.fingerprint_sha256,
                not_after: summary.not_after,
                source,
                webpki,
            })
        })
        .collect()
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Parses a CRL and finds the federation whose anchor signed it.
pub(crate) fn parse_crl(
    pem: &str,
    anchors: &HashMap<FederationId, Vec<Anchor>>,
) -> Result<RevocationList, String> {
    let summary = tatmx_certs::revocation::CrlSummary::from_pem(pem).map_err(|e| e.to_string())?;
    let federation = anchors
        .iter()
        .find(|(_, list)| {
            list.iter()
                .any(|a| summary.verify_signed_by(&a.pem).is_ok())
        })
        .map(|(federation, _)| federation.clone())
        .ok_or("no trusted anchor signed this CRL")?;
    let webpki = webpki::OwnedCertRevocationList::from_der(&summary.der)
        .map_err(|e| format!("unusable CRL: {e:?}"))?
        .into();
    Ok(RevocationList {
        federation,
        crl_number: summary.crl_number,
        this_update: summary.this_update,
        next_update: summary.next_update,
        revoked: summary
            .revoked
            .iter()
            .map(|r| r.serial_hex.clone())
            .collect(),
        pem: pem.to_owned(),
        webpki,
    })
}

fn stored_peer(stored: &crate::store::StoredPeer) -> Option<PeerEntry> {
    Some(PeerEntry {
        peer: Peer {
            identity: TeamIdentity::parse_uri(&stored.identity).ok()?,
            endpoint: stored.endpoint.parse().ok()?,
            role: Role::parse(&stored.role)?,
            discipline: Discipline::parse(&stored.discipline)?,
            jurisdiction: stored.jurisdiction.clone(),
            cjis_authorized: stored.cjis_authorized,
        },
        source: Source::parse(&stored.source)?,
        blocked: false,
        pinned_sha256: stored.pinned_sha256.clone(),
    })
}

#[cfg(test)]
mod tests {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType,
    };
    use tatmx_certs::{CertificateAuthority, DnsName, NodeKey};

    use super::*;
    use crate::tls::Credentials;

    fn identity(ca: &CertificateAuthority, team: &str) -> TeamIdentity {
        TeamIdentity::new(ca.federation().clone(), TeamId::new(team).unwrap())
    }

    /// The trust view of a node of `local` in `ca`'s federation, trusting `ca` alone.
    fn view(ca: &CertificateAuthority, local: &str) -> TrustState {
        let identity = identity(ca, local);
        let key = NodeKey::generate(&identity).unwrap();
        let issued = ca.sign_csr(&key.csr_pem, identity.team.clone(), 1).unwrap();
        let credentials =
            Credentials::from_pem(&issued.cert_pem, &key.key_pem, &identity, local).unwrap();
        TrustState::build(TrustInputs {
            local: LocalTeam {
                identity,
                role: Role::Core,
                discipline: Discipline::LawEnforcement,
                jurisdiction: String::new(),
                cjis_authorized: false,
            },
            identities: Identities::new(credentials),
            config_anchors: &[("ca.pem".into(), ca.cert_pem().to_owned())],
            config_peers: &[],
            stored: &StoredTrust::default(),
            max_directory_age: Duration::from_secs(3600),
        })
        .unwrap()
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    #[test]
    fn dns_names_beside_the_uri_change_nothing_about_who_the_certificate_proves() {
        let ca = CertificateAuthority::create(FederationId::new("county-mdt.example").unwrap(), 1)
            .unwrap();
        let state = view(&ca, "county-core");
        let school = identity(&ca, "lincoln-high");
        let names = [
            DnsName::new("node.lincoln-high.example").unwrap(),
            // A DNS name that spells another team's identity proves nothing either.
            DnsName::new("county-core.county-mdt.example").unwrap(),
        ];
        let key = NodeKey::generate_with_dns_names(&school, &names).unwrap();
        let with_names = ca
            .sign_csr_with_dns_names(&key.csr_pem, school.team.clone(), 1, &names)
            .unwrap();
        let plain = ca.sign_csr(&key.csr_pem, school.team.clone(), 1).unwrap();

        for usage in [KeyUsage::client_auth(), KeyUsage::server_auth()] {
            let named = state
                .check_certificate(&der(&with_names.cert_pem), &[], UnixTime::now(), usage)
                .unwrap();
            let bare = state
                .check_certificate(&der(&plain.cert_pem), &[], UnixTime::now(), usage)
                .unwrap();
            assert_eq!(named.identity(), &school);
            assert_eq!(named.identity(), bare.identity());
            assert_eq!(named.serial_hex, with_names.serial_hex);
        }
        assert_eq!(
            state
                .check_presented(
                    &der(&with_names.cert_pem),
                    UnixTime::now(),
                    KeyUsage::client_auth()
                )
                .unwrap(),
            school
        );
    }

    #[test]
    fn a_dns_name_without_the_team_uri_is_no_identity() {
        let ca = CertificateAuthority::create(FederationId::new("county-mdt.example").unwrap(), 1)
            .unwrap();
        let state = view(&ca, "county-core");
        // Signed by the federation's own CA, in every other way a node certificate: only the
        // URI is missing, so the name it does carry must not stand in for one.
        let issuer =
            Issuer::from_ca_cert_pem(ca.cert_pem(), KeyPair::from_pem(&ca.key_pem()).unwrap())
                .unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "lincoln-high");
        params.subject_alt_names = vec![SanType::DnsName(
            "lincoln-high.county-mdt.example".try_into().unwrap(),
        )];
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &issuer).unwrap();
        let summary = CertificateSummary::from_der(cert.der()).unwrap();
        assert_eq!(summary.dns_names, ["lincoln-high.county-mdt.example"]);
        assert!(summary.identity.is_none());

        for usage in [KeyUsage::client_auth(), KeyUsage::server_auth()] {
            let refused = state.check_certificate(cert.der(), &[], UnixTime::now(), usage);
            assert!(
                matches!(refused, Err(TrustError::NoIdentity)),
                "{refused:?}"
            );
        }
    }
}
