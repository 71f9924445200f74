//! The federation PKI for tatmx: who a team is, and the certificates that prove it.
//!
//! A tatmx federation has one certificate authority, kept offline by the federation admin. It
//! signs node certificates from certificate signing requests, so a node's private key never
//! leaves the host that made it. Every node certificate carries exactly one identity, the
//! SPIFFE-form URI `spiffe://<federation>/team/<team-id>`, and that identity is the only thing a
//! peer may believe about who is calling. A node certificate may also carry DNS names, granted
//! at enrolment, so that standard TLS clients can check the host they dialled; those say where a
//! node is reached and never who it is.
//!
//! # Layout
//! - [`identity`]: the federation id, team id and team identity URI, validated on construction.
//! - [`authority`]: the federation CA: create, load, and issue a node certificate from a CSR.
//! - [`enrolment`]: a node's key and CSR, made on the node's own host.
//! - [`inspect`]: reading a certificate back: identity, serial, validity and fingerprint.
//! - [`revocation`]: certificate revocation lists: the CA signs them, nodes read and check them.
//! - [`directory`]: the signed federation directory: members, endpoints and trust anchors.
//! - [`files`]: writing secrets with owner-only permissions.
#![forbid(unsafe_code)]

pub mod authority;
pub mod directory;
pub mod enrolment;
pub mod files;
pub mod identity;
pub mod inspect;
pub mod revocation;

pub use authority::{CertificateAuthority, IssuedCertificate, csr_dns_names};
pub use directory::{
    DIRECTORY_FORMAT, Directory, DirectoryError, Member, SignedDirectory, check_successor,
};
pub use enrolment::NodeKey;
pub use identity::{DnsName, FederationId, IdentityError, TeamId, TeamIdentity};
pub use inspect::CertificateSummary;
pub use revocation::{CrlSummary, RevocationReason, RevokedCertificate};

/// Everything that can go wrong while making, signing or reading certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused to build or sign a certificate, key or request.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// The input was not a readable PEM or DER certificate.
    #[error("not a valid certificate: {0}")]
    Parse(String),
    /// A DNS name was not granted: the CSR did not ask for it.
    #[error("DNS name refused: {0}")]
    DnsName(String),
    /// A certificate did not carry a usable tatmx team identity.
    #[error("certificate has no valid team identity: {0}")]
    Identity(String),
    /// A requested validity period is not usable.
    #[error("invalid validity: {0}")]
    Validity(String),
    /// A revocation list could not be made or read.
    #[error("revocation list: {0}")]
    Revocation(String),
    /// A signature did not verify against the key it should have come from.
    #[error("signature check failed: {0}")]
    Signature(String),
    /// The CA refused to sign a directory.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// Reading or writing a key or certificate file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: std::path::PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// How far back a new certificate's `not_before` is set, so that a peer whose clock runs a few
/// minutes behind still accepts it.
pub(crate) const CLOCK_SKEW_ALLOWANCE: time::Duration = time::Duration::minutes(5);

/// The DER contents of the first PEM block in `pem`, which must carry `label` (such as
/// `CERTIFICATE` or `X509 CRL`); the error says what was wrong, for the caller to wrap.
pub(crate) fn pem_contents(pem: &str, label: &str) -> Result<Vec<u8>, String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    if block.label != label {
        return Err(format!(
            "expected a {label} PEM block, found {}",
            block.label
        ));
    }
    Ok(block.contents)
}

/// A fresh random serial number: positive, 16 bytes, as RFC 5280 asks (at most 20 octets).
pub(crate) fn random_serial() -> rcgen::SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Clear the top bit so the DER integer is positive without a padding byte.
    bytes[0] &= 0x7f;
    // A leading zero byte would be stripped by DER; keep the serial a stable 16 bytes.
    bytes[0] |= 0x01;
    rcgen::SerialNumber::from_slice(&bytes)
}
