//! Enrolment: a node makes its own key and a CSR on its own host.
//!
//! Only the CSR travels to the federation admin; the private key stays where it was made.

use rcgen::{CertificateParams, DnType, KeyPair, SanType};

use crate::CertError;
use crate::identity::{DnsName, TeamIdentity};

/// A freshly generated node key and the CSR to send to the federation CA.
pub struct NodeKey {
    /// The private key, PEM (PKCS#8). Write it with owner-only permissions.
    pub key_pem: String,
    /// The certificate signing request, PEM, which asks for `identity`.
    pub csr_pem: String,
}

impl NodeKey {
    /// Generates an ECDSA P-256 key and a CSR asking for `identity` alone.
    ///
    /// The CA does not take the requested name on trust; it is there so the admin can see what
    /// the node believes it is.
    pub fn generate(identity: &TeamIdentity) -> Result<Self, CertError> {
        Self::generate_with_dns_names(identity, &[])
    }

    /// Generates a key and a CSR asking for `identity` and, for standard TLS clients that check
    /// a host name, `dns_names`.
    ///
    /// The CA grants a DNS name only when its admin names it too
    /// ([`crate::CertificateAuthority::sign_csr_with_dns_names`]); asking here is the node
    /// operator's half of that agreement.
    pub fn generate_with_dns_names(
        identity: &TeamIdentity,
        dns_names: &[DnsName],
    ) -> Result<Self, CertError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, identity.team.as_str());
        params.subject_alt_names = vec![SanType::URI(identity.uri().try_into()?)];
        for name in dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName(name.as_str().try_into()?));
        }
        let csr = params.serialize_request(&key)?;
        Ok(Self {
            key_pem: key.serialize_pem(),
            csr_pem: csr.pem()?,
        })
    }
}
