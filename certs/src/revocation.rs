//! Certificate revocation lists (CRLs), signed by the federation CA.
//!
//! A node certificate stays valid until its `not_after` unless the CA takes it back: when a
//! team's key is stolen, a team leaves the federation, or its certificate is replaced. The CA
//! lists such certificates by serial number in a CRL it signs offline; nodes hand the DER to
//! their TLS verifier (rustls reads it directly) and refuse any peer the CRL lists.
//!
//! Serial numbers are written as [`CertificateSummary::serial_hex`] prints them, lowercase hex of
//! the serial's DER integer bytes, both when the CA is told what to revoke and when a node reads
//! the list back. A node can therefore compare a peer's serial with the list as plain strings.
//!
//! [`CertificateSummary::serial_hex`]: crate::CertificateSummary::serial_hex

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use rustls_pki_types::CertificateRevocationListDer;
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{CertificateRevocationList, FromDer, X509Certificate};

use crate::authority::CertificateAuthority;
use crate::{CLOCK_SKEW_ALLOWANCE, CertError, pem_contents};

/// The longest a CRL may stay current. A CRL that never expires would hide a CA that stopped
/// publishing revocations; a year is the most an offline CA should go without re-signing.
pub const MAX_CRL_DAYS: u32 = 366;

/// The longest serial number accepted, in DER integer bytes: RFC 5280 allows 20 octets of
/// value, plus the leading zero byte a serial with its top bit set needs.
const MAX_SERIAL_BYTES: usize = 21;

/// Why a certificate was revoked (RFC 5280 §5.3.1), limited to the reasons a federation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// The node's private key was lost or stolen; anything it signed may be forged.
    KeyCompromise,
    /// The team left the federation or changed what it is (role, agency).
    AffiliationChanged,
    /// A new certificate replaced this one, for example after a key rotation.
    Superseded,
    /// The team's node was shut down for good.
    CessationOfOperation,
    /// No reason given. CRLs carry it as the absence of a reason code, per RFC 5280.
    Unspecified,
}

impl RevocationReason {
    /// Every reason, in the order `tatmx` lists them.
    pub const ALL: [Self; 5] = [
        Self::KeyCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::Unspecified,
    ];

    /// The stable kebab-case name used on the command line and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyCompromise => "key-compromise",
            Self::AffiliationChanged => "affiliation-changed",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessation-of-operation",
            Self::Unspecified => "unspecified",
        }
    }

    fn to_rcgen(self) -> rcgen::RevocationReason {
        match self {
            Self::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            Self::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            Self::Superseded => rcgen::RevocationReason::Superseded,
            Self::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
            Self::Unspecified => rcgen::RevocationReason::Unspecified,
        }
    }

    /// Reads an RFC 5280 reason code. Codes a federation does not use (CA compromise,
    /// certificate hold, ...) read as `Unspecified`: the reason is only informational, and the
    /// listed certificate is revoked whatever it says.
    fn from_code(code: u8) -> Self {
        match code {
            1 => Self::KeyCompromise,
            3 => Self::AffiliationChanged,
            4 => Self::Superseded,
            5 => Self::CessationOfOperation,
            _ => Self::Unspecified,
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RevocationReason {
    type Err = CertError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|r| r.as_str()).collect();
                CertError::Revocation(format!(
                    "unknown revocation reason {s:?}: expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// One certificate the CA takes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCertificate {
    /// The certificate's serial, exactly as [`crate::CertificateSummary::serial_hex`] and
    /// [`crate::IssuedCertificate::serial_hex`] print it.
    pub serial_hex: String,
    /// When the CA revoked it. A CRL keeps whole seconds only.
    pub revoked_at: OffsetDateTime,
    /// Why.
    pub reason: RevocationReason,
}

impl CertificateAuthority {
    /// Signs a CRL listing `revoked`, and returns it as PEM.
    ///
    /// `crl_number` must grow with every CRL the CA issues (RFC 5280 §5.2.3), so that a node can
    /// tell a newer list from an older one. The CRL is current from now, less the clock-skew
    /// allowance, for `valid_for_days` days (1 to [`MAX_CRL_DAYS`]); the CA must sign a new one
    /// before then.
    ///
    /// Refuses a serial not written the way [`crate::CertificateSummary::serial_hex`] writes
    /// one (such a serial would never match a peer's), a serial listed twice, and a revocation
    /// time in the future.
    pub fn sign_crl(
        &self,
        revoked: &[RevokedCertificate],
        crl_number: u64,
        valid_for_days: u32,
    ) -> Result<String, CertError> {
        if valid_for_days == 0 || valid_for_days > MAX_CRL_DAYS {
            return Err(CertError::Validity(format!(
                "a CRL must be valid for 1 to {MAX_CRL_DAYS} days, not {valid_for_days}"
            )));
        }
        let now = OffsetDateTime::now_utc();
        let mut seen = HashSet::new();
        let mut revoked_certs = Vec::with_capacity(revoked.len());
        for entry in revoked {
            let serial = parse_serial_hex(&entry.serial_hex)?;
            if !seen.insert(entry.serial_hex.as_str()) {
                return Err(CertError::Revocation(format!(
                    "serial {} is listed twice",
                    entry.serial_hex
                )));
            }
            if entry.revoked_at > now + CLOCK_SKEW_ALLOWANCE {
                return Err(CertError::Revocation(format!(
                    "serial {} has a revocation time in the future",
                    entry.serial_hex
                )));
            }
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: entry.revoked_at,
                reason_code: Some(entry.reason.to_rcgen()),
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: now - CLOCK_SKEW_ALLOWANCE,
            next_update: now + time::Duration::days(i64::from(valid_for_days)),
            crl_number: SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: ca_key_identifier(self.cert_pem())?,
        };
        Ok(params.signed_by(self.issuer())?.pem()?)
    }
}

/// Decodes a serial written as [`crate::CertificateSummary::serial_hex`] writes it: lowercase
/// hex of a positive DER integer in its shortest form. Anything else is refused rather than
/// normalised, because a serial typed in another form would be listed but never match.
fn parse_serial_hex(serial_hex: &str) -> Result<Vec<u8>, CertError> {
    let refuse = |why: &str| {
        CertError::Revocation(format!(
            "serial {serial_hex:?} {why}; write it as `tatmx` prints it, lowercase hex such as 5f3a..."
        ))
    };
    if serial_hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(refuse("has uppercase letters"));
    }
    let bytes = hex::decode(serial_hex).map_err(|_| refuse("is not hex"))?;
    match bytes.as_slice() {
        [] => Err(refuse("is empty")),
        b if b.len() > MAX_SERIAL_BYTES => Err(refuse("is longer than 20 bytes")),
        // A leading zero byte is only there to keep a serial with its top bit set positive.
        [0, next, ..] if *next < 0x80 => Err(refuse("has a redundant leading 00")),
        [first, ..] if *first >= 0x80 => Err(refuse("is negative (needs a leading 00)")),
        _ => Ok(bytes),
    }
}

/// The key identifier the CA certificate carries, so that the CRL's authority key identifier
/// names the same key whatever method made the certificate's; SHA-256 (rcgen's default, which
/// [`CertificateAuthority::create`] uses) when the certificate has none.
fn ca_key_identifier(ca_cert_pem: &str) -> Result<KeyIdMethod, CertError> {
    let der = pem_contents(ca_cert_pem, "CERTIFICATE").map_err(CertError::Parse)?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| CertError::Parse(e.to_string()))?;
    Ok(cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => {
                Some(KeyIdMethod::PreSpecified(id.0.to_vec()))
            }
            _ => None,
        })
        .unwrap_or(KeyIdMethod::Sha256))
}

/// What a node needs to know about one CRL.
///
/// Reading a CRL does not check its signature; call [`Self::verify_signed_by`] with the CA the
/// CRL claims to come from before believing it.
#[derive(Debug, Clone)]
pub struct CrlSummary {
    /// The CRL number; a newer CRL from the same CA has a larger one.
    pub crl_number: u64,
    /// When the CA issued it (less the clock-skew allowance).
    pub this_update: OffsetDateTime,
    /// When the CA promised a newer one. Every CRL this crate signs has one.
    pub next_update: Option<OffsetDateTime>,
    /// Every certificate it lists, serials written as [`crate::CertificateSummary::serial_hex`]
    /// writes them.
    pub revoked: Vec<RevokedCertificate>,
    /// The CRL itself, DER.
    pub der: Vec<u8>,
}

impl CrlSummary {
    /// Reads the first `X509 CRL` block in a PEM document.
    pub fn from_pem(pem: &str) -> Result<Self, CertError> {
        let der = pem_contents(pem, "X509 CRL")
            .map_err(|e| CertError::Revocation(format!("not a readable CRL: {e}")))?;
        Self::from_der(&der)
    }

    /// Reads a DER CRL.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let crl = parse_crl(der)?;
        let crl_number = crl
            .crl_number()
            .ok_or_else(|| CertError::Revocation("the CRL has no CRL number".into()))?;
        let crl_number = u64::try_from(crl_number).map_err(|_| {
            CertError::Revocation(format!("the CRL number {crl_number} is too large"))
        })?;
        let revoked = crl
            .iter_revoked_certificates()
            .map(|entry| RevokedCertificate {
                serial_hex: hex::encode(entry.raw_serial()),
                revoked_at: entry.revocation_date.to_datetime(),
                reason: entry
                    .reason_code()
                    .map_or(RevocationReason::Unspecified, |(_, code)| {
                        RevocationReason::from_code(code.0)
                    }),
            })
            .collect();
        Ok(Self {
            crl_number,
            this_update: crl.last_update().to_datetime(),
            next_update: crl.next_update().map(|t| t.to_datetime()),
            revoked,
            der: der.to_vec(),
        })
    }

    /// Checks that the CA whose certificate is `ca_cert_pem` signed this CRL: the CRL names the
    /// CA as its issuer, and its signature verifies with the CA's public key. A CRL changed by
    /// so much as a byte after signing fails.
    pub fn verify_signed_by(&self, ca_cert_pem: &str) -> Result<(), CertError> {
        let ca_der = pem_contents(ca_cert_pem, "CERTIFICATE").map_err(CertError::Parse)?;
        let (_, ca) =
            X509Certificate::from_der(&ca_der).map_err(|e| CertError::Parse(e.to_string()))?;
        if !ca.is_ca() {
            return Err(CertError::Signature(
                "the certificate given as the CRL's signer is not a CA".into(),
            ));
        }
        let crl = parse_crl(&self.der)?;
        if crl.issuer().as_raw() != ca.subject().as_raw() {
            return Err(CertError::Signature(format!(
                "the CRL was issued by {}, not by {}",
                crl.issuer(),
                ca.subject()
            )));
        }
        crl.verify_signature(ca.public_key()).map_err(|_| {
            CertError::Signature(
                "the CRL was changed after it was signed, or was not signed by this CA's key"
                    .into(),
            )
        })
    }

    /// The entry for `serial_hex` (as [`crate::CertificateSummary::serial_hex`] writes it), if
    /// this CRL revokes that certificate.
    pub fn find(&self, serial_hex: &str) -> Option<&RevokedCertificate> {
        self.revoked.iter().find(|r| r.serial_hex == serial_hex)
    }

    /// The CRL in the form rustls takes (`WebPkiClientVerifier::builder(..).with_crls(..)`).
    pub fn rustls_der(&self) -> CertificateRevocationListDer<'static> {
        CertificateRevocationListDer::from(self.der.clone())
    }
}

fn parse_crl(der: &[u8]) -> Result<CertificateRevocationList<'_>, CertError> {
    let (rest, crl) = CertificateRevocationList::from_der(der)
        .map_err(|e| CertError::Revocation(format!("not a readable CRL: {e}")))?;
    if !rest.is_empty() {
        return Err(CertError::Revocation(
            "not a readable CRL: trailing bytes after it".into(),
        ));
    }
    Ok(crl)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        CertificateSummary, FederationId, IssuedCertificate, NodeKey, TeamId, TeamIdentity,
    };

    fn federation() -> FederationId {
        FederationId::new("county-mdt.example").unwrap()
    }

    fn issue(ca: &CertificateAuthority, team: &str) -> IssuedCertificate {
        let team = TeamId::new(team).unwrap();
        let node = NodeKey::generate(&TeamIdentity::new(federation(), team.clone())).unwrap();
        ca.sign_csr(&node.csr_pem, team, 30).unwrap()
    }

    fn revoke(serial_hex: &str, reason: RevocationReason) -> RevokedCertificate {
        RevokedCertificate {
            serial_hex: serial_hex.to_owned(),
            revoked_at: OffsetDateTime::now_utc() - time::Duration::hours(1),
            reason,
        }
    }

    #[test]
    fn a_crl_lists_the_serial_of_a_revoked_node_certificate() {
        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        let stolen = issue(&ca, "lincoln-high");
        let kept = issue(&ca, "county-core");
        let entry = revoke(&stolen.serial_hex, RevocationReason::KeyCompromise);
        let pem = ca.sign_crl(std::slice::from_ref(&entry), 7, 10).unwrap();
        assert!(pem.starts_with("-----BEGIN X509 CRL-----"));

        let crl = CrlSummary::from_pem(&pem).unwrap();
        assert_eq!(crl.crl_number, 7);
        let peer = CertificateSummary::from_pem(&stolen.cert_pem).unwrap();
        let listed = crl.find(&peer.serial_hex).unwrap();
        assert_eq!(listed.reason, RevocationReason::KeyCompromise);
        assert_eq!(
            listed.revoked_at.unix_timestamp(),
            entry.revoked_at.unix_timestamp()
        );
        assert!(crl.find(&kept.serial_hex).is_none());
        assert_eq!(crl.revoked.len(), 1);

        let now = OffsetDateTime::now_utc();
        assert!(crl.this_update <= now - CLOCK_SKEW_ALLOWANCE + time::Duration::seconds(5));
        let next = crl.next_update.unwrap();
        assert!((next - (now + time::Duration::days(10))).abs() < time::Duration::minutes(1));
    }

    #[test]
    fn every_reason_survives_the_round_trip() {
        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        let entries: Vec<RevokedCertificate> = RevocationReason::ALL
            .into_iter()
            .map(|reason| revoke(&issue(&ca, "a").serial_hex, reason))
            .collect();
        let crl = CrlSummary::from_pem(&ca.sign_crl(&entries, 1, 1).unwrap()).unwrap();
        let read: Vec<(String, RevocationReason)> = crl
            .revoked
            .into_iter()
            .map(|r| (r.serial_hex, r.reason))
            .collect();
        let written: Vec<(String, RevocationReason)> = entries
            .into_iter()
            .map(|r| (r.serial_hex, r.reason))
            .collect();
        assert_eq!(read, written);
    }

    #[test]
    fn an_empty_crl_and_a_large_crl_number_round_trip() {
        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        let crl = CrlSummary::from_pem(&ca.sign_crl(&[], u64::MAX, 1).unwrap()).unwrap();
        assert_eq!(crl.crl_number, u64::MAX);
        assert!(crl.revoked.is_empty());
        crl.verify_signed_by(ca.cert_pem()).unwrap();
    }

    #[test]
    fn a_crl_verifies_against_its_own_ca_only() {
        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        let pem = ca
            .sign_crl(
                &[revoke(
                    &issue(&ca, "a").serial_hex,
                    RevocationReason::Superseded,
                )],
                1,
                5,
            )
            .unwrap();
        let crl = CrlSummary::from_pem(&pem).unwrap();
        crl.verify_signed_by(ca.cert_pem()).unwrap();

        // Same federation, same name, different key: the signature is what counts.
        let impostor = CertificateAuthority::create(federation(), 30).unwrap();
        assert!(matches!(
            crl.verify_signed_by(impostor.cert_pem()),
            Err(CertError::Signature(_))
        ));
        let other =
            CertificateAuthority::create(FederationId::new("b.example").unwrap(), 30).unwrap();
        assert!(matches!(
            crl.verify_signed_by(other.cert_pem()),
            Err(CertError::Signature(_))
        ));
        // A node certificate is no CRL signer, even one the CA issued.
        assert!(crl.verify_signed_by(&issue(&ca, "b").cert_pem).is_err());
    }

    #[test]
    fn a_reloaded_ca_signs_crls_that_name_its_key() {
        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        let reloaded = CertificateAuthority::load(ca.cert_pem(), &ca.key_pem()).unwrap();
        let crl = CrlSummary::from_pem(&reloaded.sign_crl(&[], 2, 1).unwrap()).unwrap();
        crl.verify_signed_by(ca.cert_pem()).unwrap();

        let ca_der = pem_contents(ca.cert_pem(), "CERTIFICATE").unwrap();
        let (_, cert) = X509Certificate::from_der(&ca_der).unwrap();
        let ski = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            })
            .unwrap();
        let (_, parsed) = CertificateRevocationList::from_der(&crl.der).unwrap();
        let aki = parsed
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    aki.key_identifier.as_ref().map(|id| id.0.to_vec())
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(aki, ski);
    }

    #[test]
    fn a_tampered_crl_fails_verification() {
        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        let revoked = issue(&ca, "a");
        let pem = ca
            .sign_crl(
                &[revoke(&revoked.serial_hex, RevocationReason::KeyCompromise)],
                1,
                5,
            )
            .unwrap();
        let mut der = CrlSummary::from_pem(&pem).unwrap().der;
        // Change the last byte of the listed serial: still a well-formed CRL, now naming a
        // different certificate.
        let serial = hex::decode(&revoked.serial_hex).unwrap();
        let at = der
            .windows(serial.len())
            .position(|w| w == serial.as_slice())
            .unwrap()
            + serial.len()
            - 1;
        der[at] ^= 0x01;
        let tampered = CrlSummary::from_der(&der).unwrap();
        assert_ne!(tampered.revoked[0].serial_hex, revoked.serial_hex);
        assert!(matches!(
            tampered.verify_signed_by(ca.cert_pem()),
            Err(CertError::Signature(_))
        ));
    }

    #[test]
    fn refuses_serials_that_would_never_match() {
        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        let good = issue(&ca, "a").serial_hex;
        for bad in [
            String::new(),
            good.to_uppercase(),
            format!("00{good}"),
            "abc".to_owned(),
            "zz".to_owned(),
            "80".to_owned(),
            "7f".repeat(22),
        ] {
            let result = ca.sign_crl(&[revoke(&bad, RevocationReason::Unspecified)], 1, 1);
            assert!(
                matches!(result, Err(CertError::Revocation(_))),
                "{bad:?} was accepted"
            );
        }
        // A serial with its top bit set keeps its leading 00, as x509-parser reports it.
        ca.sign_crl(&[revoke("00ff", RevocationReason::Unspecified)], 1, 1)
            .unwrap();
        let twice = [
            revoke(&good, RevocationReason::Superseded),
            revoke(&good, RevocationReason::KeyCompromise),
        ];
        assert!(ca.sign_crl(&twice, 1, 1).is_err());
        let mut future = revoke(&good, RevocationReason::Superseded);
        future.revoked_at = OffsetDateTime::now_utc() + time::Duration::days(1);
        assert!(ca.sign_crl(&[future], 1, 1).is_err());
        assert!(matches!(
            ca.sign_crl(&[], 1, 0),
            Err(CertError::Validity(_))
        ));
        assert!(ca.sign_crl(&[], 1, MAX_CRL_DAYS + 1).is_err());
    }

    #[test]
    fn reasons_have_stable_kebab_case_names() {
        for reason in RevocationReason::ALL {
            assert_eq!(reason.as_str().parse::<RevocationReason>().unwrap(), reason);
        }
        assert_eq!(
            "key-compromise".parse::<RevocationReason>().unwrap(),
            RevocationReason::KeyCompromise
        );
        assert!("KeyCompromise".parse::<RevocationReason>().is_err());
        assert!("ca-compromise".parse::<RevocationReason>().is_err());
    }

    #[test]
    fn refuses_what_is_not_a_crl() {
        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        assert!(CrlSummary::from_pem(ca.cert_pem()).is_err());
        assert!(CrlSummary::from_pem("not pem").is_err());
        assert!(CrlSummary::from_der(&[0x30, 0x00]).is_err());
    }

    #[test]
    fn rustls_refuses_a_certificate_the_crl_lists() {
        use rustls::pki_types::{CertificateDer, UnixTime};
        use rustls::server::WebPkiClientVerifier;

        let ca = CertificateAuthority::create(federation(), 30).unwrap();
        let revoked = issue(&ca, "lincoln-high");
        let kept = issue(&ca, "county-core");
        let crl = CrlSummary::from_pem(
            &ca.sign_crl(
                &[revoke(&revoked.serial_hex, RevocationReason::KeyCompromise)],
                1,
                5,
            )
            .unwrap(),
        )
        .unwrap();

        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(
                pem_contents(ca.cert_pem(), "CERTIFICATE").unwrap(),
            ))
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .with_crls([crl.rustls_der()])
            .build()
            .unwrap();
        let check = |cert: &IssuedCertificate| {
            let der = CertificateDer::from(pem_contents(&cert.cert_pem, "CERTIFICATE").unwrap());
            verifier.verify_client_cert(&der, &[], UnixTime::now())
        };
        assert!(matches!(
            check(&revoked),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked
            ))
        ));
        check(&kept).unwrap();
    }
}
