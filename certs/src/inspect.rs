//! Reading certificates back: identity, DNS names, serial, validity and fingerprint.
//!
//! The node uses this on every verified peer certificate to learn who is calling; the CLI uses
//! it to show admins what a certificate says.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::CertError;
use crate::identity::{FederationId, TeamIdentity};

/// What tatmx needs to know about one certificate.
#[derive(Debug, Clone)]
pub struct CertificateSummary {
    /// The team identity from the URI SAN, when there is exactly one valid one.
    pub identity: Option<TeamIdentity>,
    /// Every URI SAN, verbatim; a CA carries `spiffe://<federation>` here.
    pub uris: Vec<String>,
    /// Every DNS SAN, verbatim. For standard TLS clients' host name checks only: tatmx never
    /// takes an identity from them.
    pub dns_names: Vec<String>,
    /// The serial number, lowercase hex without leading zero bytes stripped.
    pub serial_hex: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// SHA-256 over the DER certificate, lowercase hex; the directory pins members by it.
    pub fingerprint_sha256: String,
    /// Whether the certificate may sign other certificates.
    pub is_ca: bool,
    /// The DER SubjectPublicKeyInfo.
    pub public_key_der: Vec<u8>,
}

impl CertificateSummary {
    /// Reads the first certificate in a PEM document.
    pub fn from_pem(pem: &str) -> Result<Self, CertError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| CertError::Parse(e.to_string()))?;
        if pem.label != "CERTIFICATE" {
            return Err(CertError::Parse(format!(
                "expected a CERTIFICATE, found {}",
                pem.label
            )));
        }
        Self::from_der(&pem.contents)
    }

    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| CertError::Parse(e.to_string()))?;
        let (uris, dns_names) = sans(&cert)?;
        let identities: Vec<TeamIdentity> = uris
            .iter()
            .filter_map(|u| TeamIdentity::parse_uri(u).ok())
            .collect();
        // A certificate that names two teams proves neither.
        let identity = match identities.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        };
        let to_time = |t: x509_parser::time::ASN1Time| t.to_datetime();
        Ok(Self {
            identity,
            uris,
            dns_names,
            serial_hex: hex::encode(cert.raw_serial()),
            not_before: to_time(cert.validity().not_before),
            not_after: to_time(cert.validity().not_after),
            fingerprint_sha256: hex::encode(Sha256::digest(der)),
            is_ca: cert.is_ca(),
            public_key_der: cert.public_key().raw.to_vec(),
        })
    }

    /// The team identity, or an error saying why there is none.
    pub fn require_identity(&self) -> Result<&TeamIdentity, CertError> {
        self.identity.as_ref().ok_or_else(|| {
            CertError::Identity(format!(
                "expected exactly one spiffe://<federation>/team/<team-id> URI, found {:?}",
                self.uris
            ))
        })
    }

    /// For a CA certificate: the federation it is the root of, from its `spiffe://<federation>` URI.
    pub fn federation_of_ca(&self) -> Option<FederationId> {
        if !self.is_ca {
            return None;
        }
        let feds: Vec<FederationId> = self
            .uris
            .iter()
            .filter_map(|u| u.strip_prefix("spiffe://"))
            .filter(|rest| !rest.contains('/'))
            .filter_map(|f| FederationId::new(f).ok())
            .collect();
        match feds.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }
}

/// The URI SANs and the DNS SANs, each in certificate order.
fn sans(cert: &X509Certificate<'_>) -> Result<(Vec<String>, Vec<String>), CertError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertError::Parse(e.to_string()))?;
    let mut uris = Vec::new();
    let mut dns_names = Vec::new();
    for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
        match name {
            GeneralName::URI(uri) => uris.push((*uri).to_owned()),
            GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
            _ => {}
        }
    }
    Ok((uris, dns_names))
}
