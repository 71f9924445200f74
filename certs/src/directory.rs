//! The signed federation directory: who belongs to the federation, where to reach them, and
//! which CAs to trust.
//!
//! Much as X-Road's signed global configuration does, the directory holds membership and nothing
//! else, never case data: for each member its team id, endpoint, role, discipline, jurisdiction,
//! whether it is CJIS-authorized, and optionally the fingerprint of its certificate. It also
//! carries the federation's trust anchors (two of them while the CA is being replaced) and its
//! current CRL. The federation admin writes it, the offline CA signs it, and every node imports
//! it and keeps its last good copy.
//!
//! # Wire format
//! A signed directory is one JSON document:
//!
//! ```json
//! { "format": "tatmx-directory-v1",
//!   "payload": "<base64 of the directory's JSON bytes>",
//!   "signature": "<base64 of an ECDSA P-256 SHA-256 signature, ASN.1 DER, over those bytes>",
//!   "signer_sha256": "<hex SHA-256 of the signing CA certificate's DER>" }
//! ```
//!
//! The signature covers the payload's exact bytes, as in JWS, so no one ever has to reproduce a
//! canonical form of the JSON: a verifier checks the bytes first and reads them only once they
//! are known to be the CA's. `signer_sha256` only picks which trusted anchor to check against;
//! it is not itself trusted.
//!
//! # Order
//! Every directory has a sequence number that only grows. A node refuses a directory older than
//! the one it holds ([`check_successor`]), so nobody can replay an old directory to bring back a
//! member that was removed.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::SigningKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::authority::CertificateAuthority;
use crate::identity::{FederationId, TeamId};
use crate::inspect::CertificateSummary;
use crate::revocation::CrlSummary;
use crate::{CertError, pem_contents};

/// The `format` of a signed directory document this version reads and writes.
pub const DIRECTORY_FORMAT: &str = "tatmx-directory-v1";

/// The roles a member may have: the core team assesses and manages cases, affiliates refer
/// concerns, partners give consultations.
pub const ROLES: [&str; 3] = ["core", "affiliate", "partner"];

/// The disciplines a member may belong to; each brings its own law (CJIS, HIPAA, 42 CFR Part 2,
/// FERPA, ...), which is why a node needs to know it.
pub const DISCIPLINES: [&str; 6] = [
    "law-enforcement",
    "mental-health",
    "substance-use",
    "education",
    "social-services",
    "federal-partner",
];

/// The longest jurisdiction accepted, in characters.
const MAX_JURISDICTION_CHARS: usize = 128;

/// Why a directory was refused. No message ever carries case data: a directory holds none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The document is not a signed directory of a format this version reads.
    #[error("not a readable signed directory: {0}")]
    Malformed(String),
    /// The directory was signed by a CA that is not among the trusted anchors.
    #[error(
        "the directory was signed by a CA this node does not trust (CA certificate SHA-256 {signer_sha256})"
    )]
    UnknownSigner {
        /// The SHA-256 the document names for its signer, lowercase hex.
        signer_sha256: String,
    },
    /// The signature does not verify with the named CA's key.
    #[error("the directory was changed after it was signed, or the signature is not the CA's")]
    BadSignature,
    /// A CA signed (or was asked to sign) a directory for another federation.
    #[error("the directory is for federation {found}, but its signer is the CA of {expected}")]
    WrongFederation {
        /// The federation of the CA.
        expected: FederationId,
        /// The federation the directory names.
        found: FederationId,
    },
    /// The directory is older than the one already held.
    #[error(
        "directory sequence {offered} is older than the current {current}; refusing to roll back"
    )]
    Rollback {
        /// The sequence already held.
        current: u64,
        /// The sequence offered.
        offered: u64,
    },
    /// The directory is the one already held; callers may treat this as nothing to do.
    #[error("directory sequence {offered} is already the current one")]
    NotNewer {
        /// The sequence already held.
        current: u64,
        /// The sequence offered, equal to `current`.
        offered: u64,
    },
    /// Fields of the directory are not valid; each entry names its field, such as
    /// `members[2].endpoint: ...`.
    #[error("the directory is not valid: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// One team in the federation, as the directory lists it.
///
/// Role, discipline and endpoint are kept as the strings the admin wrote and checked by
/// [`Directory::validate`], so that one bad entry is reported with its path instead of failing
/// the whole document at the first error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The team's id; its identity is `spiffe://<federation>/team/<team>`.
    pub team: TeamId,
    /// Where its node listens for federation traffic: `https://host:port`.
    pub endpoint: String,
    /// One of [`ROLES`].
    pub role: String,
    /// One of [`DISCIPLINES`].
    pub discipline: String,
    /// The area it serves, such as `Lincoln County, NE`.
    pub jurisdiction: String,
    /// Whether the team may receive criminal-justice information.
    pub cjis_authorized: bool,
    /// When set, the SHA-256 of the one certificate the team's node may use, lowercase hex, as
    /// [`CertificateSummary::fingerprint_sha256`] prints it.
    #[serde(default)]
    pub cert_fingerprint_sha256: Option<String>,
}

/// The federation directory itself, before signing or after verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    /// The federation it describes; only that federation's CA may sign it.
    pub federation: FederationId,
    /// Grows with every directory the federation publishes.
    pub sequence: u64,
    /// When the admin issued it (RFC 3339 in JSON).
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// Every member team.
    pub members: Vec<Member>,
    /// The federation's CA certificates, PEM: one, or two while the CA is being replaced.
    pub anchors: Vec<String>,
    /// The federation's current CRL, PEM, signed by one of `anchors`.
    #[serde(default)]
    pub crl: Option<String>,
}

impl Directory {
    /// The member entry for `team`, if the directory lists it.
    pub fn member(&self, team: &TeamId) -> Option<&Member> {
        self.members.iter().find(|m| &m.team == team)
    }

    /// Checks every field and reports every problem at once, each prefixed with its path
    /// (`members[2].endpoint`, `anchors[0]`, `crl`).
    ///
    /// Checks: role, discipline, endpoint, jurisdiction and fingerprint of each member, and that
    /// no team is listed twice; at least one anchor, each a CA certificate of this federation and
    /// none listed twice; and that the CRL, if any, is readable and signed by one of the anchors.
    pub fn validate(&self) -> Result<(), DirectoryError> {
        let mut problems = Vec::new();

        let mut first_seen: HashMap<&TeamId, usize> = HashMap::new();
        for (i, member) in self.members.iter().enumerate() {
            let path = format!("members[{i}]");
            match first_seen.entry(&member.team) {
                Entry::Occupied(first) => problems.push(format!(
                    "{path}.team: {} is already listed as members[{}]",
                    member.team,
                    first.get()
                )),
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
            member.check(&path, &mut problems);
        }

        if self.anchors.is_empty() {
            problems.push("anchors: list at least one CA certificate".into());
        }
        let mut anchors_ok = Vec::new();
        let mut fingerprints = HashSet::new();
        for (i, anchor) in self.anchors.iter().enumerate() {
            let path = format!("anchors[{i}]");
            match CertificateSummary::from_pem(anchor) {
                Err(e) => problems.push(format!("{path}: {e}")),
                Ok(summary) => match summary.federation_of_ca() {
                    None => problems.push(format!("{path}: is not a federation CA certificate")),
                    Some(f) if f != self.federation => problems.push(format!(
                        "{path}: is the CA of {f}, not of {}",
                        self.federation
                    )),
                    Some(_) if !fingerprints.insert(summary.fingerprint_sha256) => {
                        problems.push(format!("{path}: is listed twice"));
                    }
                    Some(_) => anchors_ok.push(anchor),
                },
            }
        }

        if let Some(crl) = &self.crl {
            match CrlSummary::from_pem(crl) {
                Err(e) => problems.push(format!("crl: {e}")),
                Ok(crl) => {
                    if !anchors_ok
                        .iter()
                        .any(|anchor| crl.verify_signed_by(anchor).is_ok())
                    {
                        problems.push("crl: is not signed by any of the anchors".into());
                    }
                }
            }
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(DirectoryError::Invalid(problems))
        }
    }
}

impl Member {
    fn check(&self, path: &str, problems: &mut Vec<String>) {
        if let Err(why) = check_endpoint(&self.endpoint) {
            problems.push(format!("{path}.endpoint: {why}"));
        }
        if !ROLES.contains(&self.role.as_str()) {
            problems.push(format!(
                "{path}.role: {:?} is not one of {}",
                self.role,
                ROLES.join(", ")
            ));
        }
        if !DISCIPLINES.contains(&self.discipline.as_str()) {
            problems.push(format!(
                "{path}.discipline: {:?} is not one of {}",
                self.discipline,
                DISCIPLINES.join(", ")
            ));
        }
        let jurisdiction = self.jurisdiction.trim();
        if jurisdiction.is_empty() {
            problems.push(format!("{path}.jurisdiction: is required"));
        } else if self.jurisdiction.chars().count() > MAX_JURISDICTION_CHARS
            || self.jurisdiction.chars().any(char::is_control)
        {
            problems.push(format!(
                "{path}.jurisdiction: use at most {MAX_JURISDICTION_CHARS} characters on one line"
            ));
        }
        if let Some(fingerprint) = &self.cert_fingerprint_sha256 {
            let is_sha256_hex = fingerprint.len() == 64
                && fingerprint
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !is_sha256_hex {
                problems.push(format!(
                    "{path}.cert_fingerprint_sha256: expected 64 lowercase hex characters, as `tatmx` prints a fingerprint"
                ));
            }
        }
    }
}

/// Checks that `endpoint` is `https://host:port` and nothing more: a lowercase DNS name, an IPv4
/// address or a bracketed IPv6 address, and a port from 1 to 65535 (a trailing `/` is allowed).
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    const EXAMPLE: &str = "such as https://core.county-mdt.example:7443";
    let rest = endpoint.strip_prefix("https://").ok_or_else(|| {
        format!("must start with https:// ({EXAMPLE}); federation traffic is always mutual TLS")
    })?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "must be just https://host:port ({EXAMPLE}), without a path, query or user name"
        ));
    }
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("must name a host and a port ({EXAMPLE})"))?;
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
    if !port_ok {
        return Err(format!(
            "the port must be a number from 1 to 65535 ({EXAMPLE})"
        ));
    }
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
        None => host.parse::<Ipv4Addr>().is_ok() || is_dns_name(host),
    };
    if !host_ok {
        return Err(format!(
            "the host must be a lowercase DNS name or an IP address ({EXAMPLE})"
        ));
    }
    Ok(())
}

/// A lowercase DNS name: dot-separated labels of `a-z`, `0-9` and `-`, not starting or ending
/// in `-`, the last not all digits (that would be a mistyped IPv4 address).
fn is_dns_name(host: &str) -> bool {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    host.len() <= 253
        && host.split('.').all(label_ok)
        && host
            .rsplit('.')
            .next()
            .is_some_and(|last| !last.bytes().all(|b| b.is_ascii_digit()))
}

/// A directory as signed by its federation's CA, ready to publish; see the module docs for its
/// JSON form.
///
/// Holding one proves nothing: only [`Self::verify`] says whether a trusted CA signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDirectory {
    /// The directory's JSON bytes, exactly as signed.
    payload: Vec<u8>,
    /// ECDSA P-256 SHA-256 over `payload`, ASN.1 DER.
    signature: Vec<u8>,
    /// SHA-256 of the signing CA certificate's DER, lowercase hex.
    signer_sha256: String,
}

/// The JSON document, with binary fields as base64.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedDirectoryJson {
    format: String,
    payload: String,
    signature: String,
    signer_sha256: String,
}

impl SignedDirectory {
    /// The document to publish, pretty-printed JSON.
    pub fn to_json(&self) -> String {
        let document = serde_json::json!({
            "format": DIRECTORY_FORMAT,
            "payload": BASE64.encode(&self.payload),
            "signature": BASE64.encode(&self.signature),
            "signer_sha256": self.signer_sha256,
        });
        format!("{document:#}")
    }

    /// Reads a published document. This checks only its shape, not its signature.
    pub fn from_json(json: &str) -> Result<Self, DirectoryError> {
        let document: SignedDirectoryJson =
            serde_json::from_str(json).map_err(|e| DirectoryError::Malformed(e.to_string()))?;
        if document.format != DIRECTORY_FORMAT {
            return Err(DirectoryError::Malformed(format!(
                "format {:?} is not {DIRECTORY_FORMAT:?}",
                document.format
            )));
        }
        let decode = |field: &str, value: &str| {
            BASE64
                .decode(value)
                .map_err(|e| DirectoryError::Malformed(format!("{field} is not base64: {e}")))
        };
        let payload = decode("payload", &document.payload)?;
        let signature = decode("signature", &document.signature)?;
        let is_sha256_hex = document.signer_sha256.len() == 64
            && document
                .signer_sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_sha256_hex {
            return Err(DirectoryError::Malformed(
                "signer_sha256 is not 64 lowercase hex characters".into(),
            ));
        }
        Ok(Self {
            payload,
            signature,
            signer_sha256: document.signer_sha256,
        })
    }

    /// The SHA-256 of the CA certificate this document says signed it, lowercase hex. Not
    /// trusted until [`Self::verify`] succeeds.
    pub fn signer_sha256(&self) -> &str {
        &self.signer_sha256
    }

    /// Checks the directory and returns it, if and only if:
    /// - its signer is one of `trusted_anchors` (CA certificates, PEM), matched by the SHA-256
    ///   of the anchor's DER;
    /// - the signature over the payload verifies with that anchor's public key;
    /// - the payload is a directory, for the federation that anchor is the CA of;
    /// - and the directory passes [`Directory::validate`].
    ///
    /// Anchors that cannot be read are passed over, as they cannot have signed anything. Whether
    /// the directory is newer than the one held is a separate question: [`check_successor`].
    pub fn verify(&self, trusted_anchors: &[String]) -> Result<Directory, DirectoryError> {
        let signer_der = trusted_anchors
            .iter()
            .filter_map(|anchor| pem_contents(anchor, "CERTIFICATE").ok())
            .find(|der| hex::encode(Sha256::digest(der)) == self.signer_sha256)
            .ok_or_else(|| DirectoryError::UnknownSigner {
                signer_sha256: self.signer_sha256.clone(),
            })?;
        let not_a_ca = || {
            DirectoryError::Malformed(format!(
                "trusted anchor {} is not a federation CA certificate",
                self.signer_sha256
            ))
        };
        let signer_federation = CertificateSummary::from_der(&signer_der)
            .map_err(|_| not_a_ca())?
            .federation_of_ca()
            .ok_or_else(not_a_ca)?;
        let (_, signer) = X509Certificate::from_der(&signer_der).map_err(|_| not_a_ca())?;

        UnparsedPublicKey::new(
            &ECDSA_P256_SHA256_ASN1,
            &signer.public_key().subject_public_key.data,
        )
        .verify(&self.payload, &self.signature)
        .map_err(|_| DirectoryError::BadSignature)?;

        let directory: Directory = serde_json::from_slice(&self.payload).map_err(|e| {
            DirectoryError::Malformed(format!("the signed payload is not a directory: {e}"))
        })?;
        if directory.federation != signer_federation {
            return Err(DirectoryError::WrongFederation {
                expected: signer_federation,
                found: directory.federation,
            });
        }
        directory.validate()?;
        Ok(directory)
    }
}

/// Whether `new` may replace the directory held at sequence `current` (`None` when none is held
/// yet): its sequence must be strictly greater. An older one is a [`DirectoryError::Rollback`];
/// the same one again is [`DirectoryError::NotNewer`], which callers may treat as a no-op.
pub fn check_successor(current: Option<u64>, new: &Directory) -> Result<(), DirectoryError> {
    let offered = new.sequence;
    match current {
        Some(current) if offered < current => Err(DirectoryError::Rollback { current, offered }),
        Some(current) if offered == current => Err(DirectoryError::NotNewer { current, offered }),
        _ => Ok(()),
    }
}

impl CertificateAuthority {
    /// Signs `directory` for publication.
    ///
    /// Refuses a directory for another federation, or one that fails
    /// [`Directory::validate`]. The CA checks its own signature before returning, so a CA whose
    /// key is not ECDSA P-256 (which `tatmx-directory-v1` requires) fails here rather than at
    /// every node.
    pub fn sign_directory(&self, directory: &Directory) -> Result<SignedDirectory, CertError> {
        if &directory.federation != self.federation() {
            return Err(DirectoryError::WrongFederation {
                expected: self.federation().clone(),
                found: directory.federation.clone(),
            }
            .into());
        }
        directory.validate()?;
        let payload = serde_json::to_vec(directory)
            .map_err(|e| DirectoryError::Malformed(format!("cannot write the directory: {e}")))?;
        let signature = self.issuer().key().sign(&payload)?;
        let signed = SignedDirectory {
            payload,
            signature,
            signer_sha256: CertificateSummary::from_pem(self.cert_pem())?.fingerprint_sha256,
        };
        match signed.verify(&[self.cert_pem().to_owned()]) {
            Ok(_) => Ok(signed),
            Err(DirectoryError::BadSignature) => Err(CertError::Signature(format!(
                "the CA key's signature does not verify as ECDSA P-256 SHA-256, which {DIRECTORY_FORMAT} requires"
            ))),
            Err(other) => Err(other.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::{RevocationReason, RevokedCertificate};
    use crate::{NodeKey, TeamIdentity};

    fn federation() -> FederationId {
        FederationId::new("county-mdt.example").unwrap()
    }

    fn member(team: &str, endpoint: &str, role: &str, discipline: &str) -> Member {
        Member {
            team: TeamId::new(team).unwrap(),
            endpoint: endpoint.to_owned(),
            role: role.to_owned(),
            discipline: discipline.to_owned(),
            jurisdiction: "Lincoln County, NE".to_owned(),
            cjis_authorized: role == "core",
            cert_fingerprint_sha256: None,
        }
    }

    fn directory(ca: &CertificateAuthority, sequence: u64) -> Directory {
        Directory {
            federation: ca.federation().clone(),
            sequence,
            issued_at: OffsetDateTime::now_utc(),
            members: vec![
                member(
                    "county-core",
                    "https://core.county-mdt.example:7443",
                    "core",
                    "law-enforcement",
                ),
                member(
                    "lincoln-high",
                    "https://10.0.0.12:7443",
                    "affiliate",
                    "education",
                ),
            ],
            anchors: vec![ca.cert_pem().to_owned()],
            crl: None,
        }
    }

    /// Decodes a signed document's payload, lets `edit` change its text, and puts it back
    /// without re-signing, as someone tampering with a published directory would.
    fn tamper(signed: &SignedDirectory, edit: impl Fn(String) -> String) -> SignedDirectory {
        let mut document: serde_json::Value = serde_json::from_str(&signed.to_json()).unwrap();
        let payload = BASE64
            .decode(document["payload"].as_str().unwrap())
            .unwrap();
        let edited = edit(String::from_utf8(payload).unwrap());
        document["payload"] = BASE64.encode(edited).into();
        SignedDirectory::from_json(&document.to_string()).unwrap()
    }

    #[test]
    fn a_signed_directory_round_trips_through_json() {
        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        let node = NodeKey::generate(&TeamIdentity::new(
            federation(),
            TeamId::new("county-core").unwrap(),
        ))
        .unwrap();
        let issued = ca
            .sign_csr(&node.csr_pem, TeamId::new("county-core").unwrap(), 30)
            .unwrap();
        let revoked = RevokedCertificate {
            serial_hex: issued.serial_hex.clone(),
            revoked_at: OffsetDateTime::now_utc(),
            reason: RevocationReason::Superseded,
        };
        let mut original = directory(&ca, 3);
        original.members[0].cert_fingerprint_sha256 = Some(
            CertificateSummary::from_pem(&issued.cert_pem)
                .unwrap()
                .fingerprint_sha256,
        );
        original.crl = Some(ca.sign_crl(&[revoked], 1, 7).unwrap());

        let json = ca.sign_directory(&original).unwrap().to_json();
        let document: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(document["format"], DIRECTORY_FORMAT);
        let payload = BASE64
            .decode(document["payload"].as_str().unwrap())
            .unwrap();
        let payload: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert!(
            OffsetDateTime::parse(
                payload["issued_at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()
        );

        let signed = SignedDirectory::from_json(&json).unwrap();
        let verified = signed.verify(&[ca.cert_pem().to_owned()]).unwrap();
        assert_eq!(verified, original);
        assert_eq!(
            verified
                .member(&TeamId::new("lincoln-high").unwrap())
                .unwrap()
                .discipline,
            "education"
        );
    }

    #[test]
    fn a_changed_payload_fails_the_signature() {
        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        let signed = ca.sign_directory(&directory(&ca, 1)).unwrap();
        let tampered = tamper(&signed, |json| {
            json.replace("https://10.0.0.12:7443", "https://attacker.example:7443")
        });
        assert_ne!(tampered, signed);
        assert_eq!(
            tampered.verify(&[ca.cert_pem().to_owned()]),
            Err(DirectoryError::BadSignature)
        );

        let mut bad_signature = signed.clone();
        let last = bad_signature.signature.len() - 1;
        bad_signature.signature[last] ^= 0x01;
        assert_eq!(
            bad_signature.verify(&[ca.cert_pem().to_owned()]),
            Err(DirectoryError::BadSignature)
        );
    }

    #[test]
    fn a_directory_from_an_untrusted_ca_is_refused() {
        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        // A CA with the same federation name but its own key, as an attacker might make.
        let impostor = CertificateAuthority::create(federation(), 30).unwrap();
        let signed = impostor.sign_directory(&directory(&impostor, 9)).unwrap();
        assert_eq!(
            signed.verify(&[ca.cert_pem().to_owned()]),
            Err(DirectoryError::UnknownSigner {
                signer_sha256: signed.signer_sha256().to_owned()
            })
        );
        assert!(
            signed
                .verify(&["not a certificate".to_owned(), ca.cert_pem().to_owned()])
                .is_err()
        );
    }

    #[test]
    fn a_ca_cannot_speak_for_another_federation() {
        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        let other =
            CertificateAuthority::create(FederationId::new("b.example").unwrap(), 30).unwrap();
        let ours = directory(&ca, 1);
        assert!(matches!(
            other.sign_directory(&ours),
            Err(CertError::Directory(DirectoryError::WrongFederation { .. }))
        ));

        // Signed by hand, as a CA that ignored the rule would: nodes still refuse it.
        let payload = serde_json::to_vec(&ours).unwrap();
        let forged = SignedDirectory {
            signature: other.issuer().key().sign(&payload).unwrap(),
            payload,
            signer_sha256: CertificateSummary::from_pem(other.cert_pem())
                .unwrap()
                .fingerprint_sha256,
        };
        assert_eq!(
            forged.verify(&[ca.cert_pem().to_owned(), other.cert_pem().to_owned()]),
            Err(DirectoryError::WrongFederation {
                expected: FederationId::new("b.example").unwrap(),
                found: federation(),
            })
        );
    }

    #[test]
    fn sequence_numbers_only_go_forward() {
        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        let offered = directory(&ca, 5);
        assert_eq!(check_successor(None, &offered), Ok(()));
        assert_eq!(check_successor(Some(4), &offered), Ok(()));
        assert_eq!(
            check_successor(Some(5), &offered),
            Err(DirectoryError::NotNewer {
                current: 5,
                offered: 5
            })
        );
        assert_eq!(
            check_successor(Some(6), &offered),
            Err(DirectoryError::Rollback {
                current: 6,
                offered: 5
            })
        );
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        let other =
            CertificateAuthority::create(FederationId::new("b.example").unwrap(), 30).unwrap();
        let mut bad = directory(&ca, 1);
        bad.members.push(member(
            "east-mh",
            "http://east.example:7443",
            "observer",
            "astrology",
        ));
        bad.members.push(Member {
            jurisdiction: " ".into(),
            cert_fingerprint_sha256: Some("AB".into()),
            ..member(
                "lincoln-high",
                "https://east.example",
                "partner",
                "education",
            )
        });
        bad.anchors.push(other.cert_pem().to_owned());
        bad.anchors.push("garbage".into());
        bad.crl = Some(other.sign_crl(&[], 1, 1).unwrap());

        let Err(DirectoryError::Invalid(problems)) = bad.validate() else {
            panic!("an invalid directory was accepted");
        };
        let joined = problems.join("\n");
        for path in [
            "members[2].endpoint",
            "members[2].role",
            "members[2].discipline",
            "members[3].team",
            "members[3].endpoint",
            "members[3].jurisdiction",
            "members[3].cert_fingerprint_sha256",
            "anchors[1]",
            "anchors[2]",
            "crl",
        ] {
            assert!(
                joined.contains(&format!("{path}: ")),
                "{path} missing from\n{joined}"
            );
        }
        assert_eq!(problems.len(), 10, "{joined}");
        assert!(matches!(
            ca.sign_directory(&bad),
            Err(CertError::Directory(DirectoryError::Invalid(_)))
        ));
    }

    #[test]
    fn endpoints_are_https_host_and_port_only() {
        for good in [
            "https://core.county-mdt.example:7443",
            "https://core.county-mdt.example:7443/",
            "https://127.0.0.1:1",
            "https://[::1]:65535",
            "https://localhost:7443",
        ] {
            assert_eq!(check_endpoint(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "core.example:7443",
            "http://core.example:7443",
            "https://core.example",
            "https://core.example:",
            "https://core.example:0",
            "https://core.example:65536",
            "https://core.example:+443",
            "https://core.example:7443/api",
            "https://user@core.example:7443",
            "https://core.example:7443?x=1",
            "https://Core.example:7443",
            "https://core_1.example:7443",
            "https://-core.example:7443",
            "https://:7443",
            "https://999.1.1.1:7443",
            "https://::1:7443",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn during_ca_rotation_a_directory_from_the_new_ca_verifies() {
        let old = CertificateAuthority::create(federation(), 30).unwrap();
        let new = CertificateAuthority::create(federation(), 365).unwrap();
        let mut rotating = directory(&new, 10);
        rotating.anchors = vec![old.cert_pem().to_owned(), new.cert_pem().to_owned()];
        let signed = new.sign_directory(&rotating).unwrap();
        let both = [old.cert_pem().to_owned(), new.cert_pem().to_owned()];
        assert_eq!(signed.verify(&both).unwrap(), rotating);
        // The old CA may also announce the new anchor, so nodes learn it from a CA they trust.
        let announced = old.sign_directory(&rotating).unwrap();
        assert_eq!(
            announced.verify(&[old.cert_pem().to_owned()]).unwrap(),
            rotating
        );
        // A node that has not yet learned the new anchor does not trust the new CA's signature.
        assert!(matches!(
            signed.verify(&[old.cert_pem().to_owned()]),
            Err(DirectoryError::UnknownSigner { .. })
        ));
    }

    #[test]
    fn refuses_malformed_documents() {
        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        let json = ca.sign_directory(&directory(&ca, 1)).unwrap().to_json();
        let mut document: serde_json::Value = serde_json::from_str(&json).unwrap();

        let mut wrong_format = document.clone();
        wrong_format["format"] = "tatmx-directory-v2".into();
        let mut extra = document.clone();
        extra["comment"] = "hello".into();
        let mut not_base64 = document.clone();
        not_base64["signature"] = "***".into();
        for bad in [
            "".to_owned(),
            "{}".to_owned(),
            wrong_format.to_string(),
            extra.to_string(),
            not_base64.to_string(),
        ] {
            assert!(matches!(
                SignedDirectory::from_json(&bad),
                Err(DirectoryError::Malformed(_))
            ));
        }

        // Correctly signed, but not a directory: the bytes are checked before they are read.
        let payload = b"{\"members\": \"none\"}".to_vec();
        document["payload"] = BASE64.encode(&payload).into();
        document["signature"] = BASE64
            .encode(ca.issuer().key().sign(&payload).unwrap())
            .into();
        let signed = SignedDirectory::from_json(&document.to_string()).unwrap();
        assert!(matches!(
            signed.verify(&[ca.cert_pem().to_owned()]),
            Err(DirectoryError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_member_fields_are_refused() {
        let json = r#"{"team":"a","endpoint":"https://a.example:1","role":"core",
            "discipline":"education","jurisdiction":"X","cjis_authorized":false,"notes":"x"}"#;
        assert!(serde_json::from_str::<Member>(json).is_err());
    }
}
