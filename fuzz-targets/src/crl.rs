//! A certificate revocation list, as a node takes one from an admin or a directory: read as
//! DER and, when the input is text, as PEM, then checked against the test CA.

use tatmx_certs::CrlSummary;

/// Runs one input. A panic, from the node or from a check here, is a finding.
pub fn crl(data: &[u8]) {
    let ca = crate::test_ca().cert_pem();
    if let Ok(crl) = CrlSummary::from_der(data) {
        let _ = crl.verify_signed_by(ca);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(crl) = CrlSummary::from_pem(text)
    {
        let _ = crl.verify_signed_by(ca);
    }
}
