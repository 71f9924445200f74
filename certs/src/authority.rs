//! The federation certificate authority.
//!
//! The CA is the root of trust for one federation and nothing else: its certificate carries the
//! federation's own URI, `spiffe://<federation>`, so a node can tell which federation an anchor
//! speaks for and never lets one federation's CA vouch for another's teams. It signs node
//! certificates from CSRs and ignores whatever identity a CSR asks for: the identity comes from
//! the admin's command, not from the requester. A DNS name is copied only when the admin grants
//! it and the CSR asked for it, so neither side alone decides which hosts a node answers for.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use crate::identity::{DnsName, FederationId, TeamIdentity};
use crate::{CLOCK_SKEW_ALLOWANCE, CertError, random_serial};

/// The longest validity the CA will give a node certificate; short-lived certificates limit the
/// damage of a stolen key, and revocation covers the rest.
pub const MAX_NODE_CERT_DAYS: u32 = 825;

/// A federation CA with its signing key in memory.
pub struct CertificateAuthority {
    /// The federation this CA is the root of.
    federation: FederationId,
    /// The CA certificate, PEM, as distributed to every node as its trust anchor.
    cert_pem: String,
    /// Signs node certificates, CRLs ([`crate::revocation`]) and the directory
    /// ([`crate::directory`]).
    issuer: Issuer<'static, KeyPair>,
}

/// A node certificate the CA has just signed.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its serial number, lowercase hex, as revocation will name it.
    pub serial_hex: String,
    /// The identity it proves.
    pub identity: TeamIdentity,
    /// The DNS names it carries for standard TLS clients, in the order granted; they prove
    /// nothing about identity.
    pub dns_names: Vec<DnsName>,
    /// When it stops being valid.
    pub not_after: OffsetDateTime,
}

impl CertificateAuthority {
    /// Creates a new CA for `federation`, valid for `days` days from now.
    pub fn create(federation: FederationId, days: u32) -> Result<Self, CertError> {
        if days == 0 {
            return Err(CertError::Validity(
                "a CA must be valid for at least one day".into(),
            ));
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let params = ca_params(&federation, days)?;
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        Ok(Self {
            federation,
            cert_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its certificate and key, as written by [`Self::create`].
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let key = KeyPair::from_pem(key_pem)?;
        let summary = crate::inspect::CertificateSummary::from_pem(cert_pem)?;
        let federation = summary.federation_of_ca().ok_or_else(|| {
            CertError::Identity("the CA certificate does not name its federation".into())
        })?;
        if summary.public_key_der != rcgen::PublicKeyData::subject_public_key_info(&key) {
            return Err(CertError::Identity(
                "the CA key does not belong to the CA certificate".into(),
            ));
        }
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Self {
            federation,
            cert_pem: cert_pem.to_owned(),
            issuer,
        })
    }

    /// The federation this CA speaks for.
    pub fn federation(&self) -> &FederationId {
        &self.federation
    }

    /// The CA certificate, PEM: the trust anchor every member installs.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The signing key with the CA's name, for the CRL and directory signers in this crate.
    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// The CA's private key, PEM. Keep it offline.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Signs a node certificate for `team` from the node's CSR, valid for `days` days, with the
    /// team's URI as its only name.
    ///
    /// The CSR contributes only its public key (after its self-signature is checked by rcgen);
    /// names, usages and validity are set here.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        team: crate::TeamId,
        days: u32,
    ) -> Result<IssuedCertificate, CertError> {
        self.sign_csr_with_dns_names(csr_pem, team, days, &[])
    }

    /// Signs a node certificate as [`Self::sign_csr`] does, adding `dns_names` as DNS SANs for
    /// standard TLS clients.
    ///
    /// Every granted name must also be one the CSR asks for (refused otherwise); names the CSR
    /// asks for and the admin does not grant are left out. The team's URI stays the first SAN
    /// and the only identity: the DNS names say where the node is reached, not who it is.
    pub fn sign_csr_with_dns_names(
        &self,
        csr_pem: &str,
        team: crate::TeamId,
        days: u32,
        dns_names: &[DnsName],
    ) -> Result<IssuedCertificate, CertError> {
        if days == 0 || days > MAX_NODE_CERT_DAYS {
            return Err(CertError::Validity(format!(
                "a node certificate must be valid for 1 to {MAX_NODE_CERT_DAYS} days, not {days}"
            )));
        }
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        let requested = requested_dns_names(&csr.params);
        let mut granted: Vec<DnsName> = Vec::with_capacity(dns_names.len());
        for name in dns_names {
            if !requested
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name.as_str()))
            {
                return Err(CertError::DnsName(format!(
                    "{name} is not among the DNS names the CSR asks for ({}); make the CSR \
                     with --dns-name {name}",
                    if requested.is_empty() {
                        "none".to_owned()
                    } else {
                        requested.join(", ")
                    }
                )));
            }
            if !granted.contains(name) {
                granted.push(name.clone());
            }
        }
        let identity = TeamIdentity::new(self.federation.clone(), team);
        let now = OffsetDateTime::now_utc();
        let not_after = now + time::Duration::days(i64::from(days));

        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, identity.team.as_str());
        params
            .distinguished_name
            .push(DnType::OrganizationName, self.federation.as_str());
        params.subject_alt_names = vec![SanType::URI(identity.uri().try_into()?)];
        for name in &granted {
            params
                .subject_alt_names
                .push(SanType::DnsName(name.as_str().try_into()?));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let serial = random_serial();
        let serial_hex = hex::encode(serial.to_bytes());
        params.serial_number = Some(serial);
        params.not_before = now - CLOCK_SKEW_ALLOWANCE;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        csr.params = params;

        let cert = csr.signed_by(&self.issuer)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            serial_hex,
            identity,
            dns_names: granted,
            not_after,
        })
    }
}

/// The DNS names a CSR asks for, verbatim, valid or not: the admin sees what was asked, and
/// [`CertificateAuthority::sign_csr_with_dns_names`] copies only what is granted.
pub fn csr_dns_names(csr_pem: &str) -> Result<Vec<String>, CertError> {
    let csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
    Ok(requested_dns_names(&csr.params))
}

fn requested_dns_names(params: &CertificateParams) -> Vec<String> {
    params
        .subject_alt_names
        .iter()
        .filter_map(|san| match san {
            SanType::DnsName(name) => Some(name.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

fn ca_params(federation: &FederationId, days: u32) -> Result<CertificateParams, CertError> {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("tatmx federation CA {}", federation.as_str()),
    );
    params
        .distinguished_name
        .push(DnType::OrganizationName, federation.as_str());
    params.subject_alt_names = vec![SanType::URI(federation.uri().try_into()?)];
    // No intermediates: the federation CA signs node certificates directly.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    params.not_before = now - CLOCK_SKEW_ALLOWANCE;
    params.not_after = now + time::Duration::days(i64::from(days));
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NodeKey, TeamId};

    #[test]
    fn signs_a_csr_with_the_admin_chosen_identity() {
        let fed = FederationId::new("county-mdt.example").unwrap();
        let ca = CertificateAuthority::create(fed.clone(), 30).unwrap();
        let node =
            NodeKey::generate(&TeamIdentity::new(fed, TeamId::new("core").unwrap())).unwrap();
        let issued = ca
            .sign_csr(&node.csr_pem, TeamId::new("lincoln-high").unwrap(), 10)
            .unwrap();
        let summary = crate::CertificateSummary::from_pem(&issued.cert_pem).unwrap();
        assert_eq!(
            summary.identity.unwrap().uri(),
            "spiffe://county-mdt.example/team/lincoln-high"
        );
        assert_eq!(summary.serial_hex, issued.serial_hex);
        assert_eq!(summary.serial_hex.len(), 32);
    }

    #[test]
    fn copies_only_the_dns_names_both_sides_asked_for() {
        let fed = FederationId::new("county-mdt.example").unwrap();
        let ca = CertificateAuthority::create(fed.clone(), 30).unwrap();
        let team = TeamId::new("county-core").unwrap();
        let asked = [
            DnsName::new("node.county-mdt.example").unwrap(),
            DnsName::new("alt.county-mdt.example").unwrap(),
        ];
        let node =
            NodeKey::generate_with_dns_names(&TeamIdentity::new(fed.clone(), team.clone()), &asked)
                .unwrap();
        assert_eq!(
            csr_dns_names(&node.csr_pem).unwrap(),
            ["node.county-mdt.example", "alt.county-mdt.example"]
        );

        // The admin grants one of the two: only that one is in the certificate.
        let issued = ca
            .sign_csr_with_dns_names(&node.csr_pem, team.clone(), 10, &asked[..1])
            .unwrap();
        assert_eq!(issued.dns_names, asked[..1]);
        let summary = crate::CertificateSummary::from_pem(&issued.cert_pem).unwrap();
        assert_eq!(summary.dns_names, ["node.county-mdt.example"]);
        assert_eq!(
            summary.identity.unwrap().uri(),
            "spiffe://county-mdt.example/team/county-core"
        );

        // Without a grant, none: the CSR's request alone puts nothing in.
        let plain = ca.sign_csr(&node.csr_pem, team.clone(), 10).unwrap();
        let summary = crate::CertificateSummary::from_pem(&plain.cert_pem).unwrap();
        assert!(summary.dns_names.is_empty());
        assert!(plain.dns_names.is_empty());

        // A grant the CSR did not ask for is refused, and says what the CSR asked for.
        let error = ca
            .sign_csr_with_dns_names(
                &node.csr_pem,
                team,
                10,
                &[DnsName::new("other.example").unwrap()],
            )
            .unwrap_err()
            .to_string();
        assert!(error.contains("other.example"), "{error}");
        assert!(error.contains("node.county-mdt.example"), "{error}");
    }

    #[test]
    fn never_copies_a_wildcard_the_csr_asks_for() {
        // A CSR made by hand may ask for anything; the CA's grants are validated DnsNames, so
        // a wildcard can be neither granted nor slipped through.
        let fed = FederationId::new("a.example").unwrap();
        let ca = CertificateAuthority::create(fed, 30).unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![
            SanType::DnsName("*.a.example".try_into().unwrap()),
            SanType::DnsName("node.a.example".try_into().unwrap()),
        ];
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        assert!(DnsName::new("*.a.example").is_err());
        let issued = ca
            .sign_csr_with_dns_names(
                &csr,
                TeamId::new("x").unwrap(),
                10,
                &[DnsName::new("node.a.example").unwrap()],
            )
            .unwrap();
        let summary = crate::CertificateSummary::from_pem(&issued.cert_pem).unwrap();
        assert_eq!(summary.dns_names, ["node.a.example"]);
    }

    #[test]
    fn reloads_from_pem_and_rejects_a_foreign_key() {
        let fed = FederationId::new("a.example").unwrap();
        let ca = CertificateAuthority::create(fed.clone(), 30).unwrap();
        let again = CertificateAuthority::load(ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(again.federation(), &fed);
        let other = CertificateAuthority::create(fed, 30).unwrap();
        assert!(CertificateAuthority::load(ca.cert_pem(), &other.key_pem()).is_err());
    }

    #[test]
    fn refuses_unbounded_validity() {
        let fed = FederationId::new("a.example").unwrap();
        let ca = CertificateAuthority::create(fed.clone(), 30).unwrap();
        let node = NodeKey::generate(&TeamIdentity::new(fed, TeamId::new("x").unwrap())).unwrap();
        assert!(
            ca.sign_csr(&node.csr_pem, TeamId::new("x").unwrap(), 0)
                .is_err()
        );
        assert!(
            ca.sign_csr(&node.csr_pem, TeamId::new("x").unwrap(), 5000)
                .is_err()
        );
    }
}
