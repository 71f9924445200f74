//! This node's identity files: the federation CA, the node's certificate and its private key,
//! each checked alone (readable, in date, private) and then together (the key belongs to the
//! certificate, the certificate chains to the CA), for every federation the node belongs to.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, TrustAnchor, UnixTime};
use tatmx_certs::{CertificateSummary, TeamIdentity};
use tatmx_node::Config;
use tatmx_node::config::TlsFiles;
use tatmx_node::tls::Credentials;
use time::OffsetDateTime;

use super::Report;

/// What the peer checks need from one federation whose files all passed: the node's
/// credentials there, and that federation's CA as (file name, PEM), as the node loads them.
pub struct Usable {
    /// This node's certificate and key in the federation.
    pub credentials: Credentials,
    /// The federation's CA file.
    pub ca: (String, String),
}

/// The node's whole certificate chain and what it says.
struct Certificate {
    /// Leaf first.
    chain: Vec<CertificateDer<'static>>,
    /// The leaf, read.
    summary: CertificateSummary,
}

/// Checks the files of the config's own federation, then of each other membership. Returns
/// the federations whose files the node could use, its own first.
pub fn check_all(report: &mut Report, config: &Config, warn_days: u32) -> Vec<Usable> {
    let mut usable = Vec::new();
    let own = check_one(report, "", &config.local.identity, &config.tls, warn_days);
    usable.extend(own);
    for membership in &config.memberships {
        let suffix = format!(" [{}]", membership.identity.federation);
        usable.extend(check_one(
            report,
            &suffix,
            &membership.identity,
            &membership.tls,
            warn_days,
        ));
    }
    usable
}

fn check_one(
    report: &mut Report,
    suffix: &str,
    identity: &TeamIdentity,
    files: &TlsFiles,
    warn_days: u32,
) -> Option<Usable> {
    let name = |what: &str| format!("{what}{suffix}");
    let ca = check_ca(
        report,
        &name("ca certificate"),
        identity,
        &files.ca,
        warn_days,
    );
    let cert = check_certificate(report, &name("certificate"), identity, files, warn_days);
    let key = check_key(report, &name("key file"), &files.key);
    let matched = match (&cert, &key) {
        (Some(cert), Some(key)) => {
            check_match(report, &name("key matches certificate"), cert, key, files)
        }
        _ => {
            report.skip(
                name("key matches certificate"),
                "the certificate or the key could not be read",
            );
            false
        }
    };
    let chained = match (&cert, &ca) {
        (Some(cert), Some((_, anchors))) => {
            check_chain(report, &name("certificate chain"), cert, anchors, files)
        }
        _ => {
            report.skip(
                name("certificate chain"),
                "the certificate or the CA certificate could not be read",
            );
            false
        }
    };
    if !(matched && chained) {
        return None;
    }
    // The node's own loader, so that what passes here is what the node will run with (it
    // also refuses a certificate out of date, reported above).
    let credentials = Credentials::load(&files.cert, &files.key, identity).ok()?;
    let (pem, _) = ca?;
    Some(Usable {
        credentials,
        ca: (files.ca.display().to_string(), pem),
    })
}

/// Reads a file this check depends on, recording a failure that says what to do when it cannot.
fn read(report: &mut Report, check: &str, path: &Path, what: &str, key: &str) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            report.fail(
                check,
                format!("{}: no such file", path.display()),
                format!(
                    "put {what} there, or set `{key}` in the config to where it is (a relative \
                     path is taken from the config file's directory)"
                ),
            );
            None
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            report.fail(
                check,
                format!("{}: permission denied", path.display()),
                "run tatmx doctor as the user the node runs as (`sudo -u tatmx tatmx doctor \
                 ...`) or as root",
            );
            None
        }
        Err(e) => {
            report.fail(
                check,
                format!("{}: cannot read: {e}", path.display()),
                format!("check that `{key}` names {what}"),
            );
            None
        }
    }
}

/// The CA file: readable, a tatmx CA of this node's federation, in date. Returns its text and
/// anchors.
fn check_ca(
    report: &mut Report,
    check: &str,
    identity: &TeamIdentity,
    path: &Path,
    warn_days: u32,
) -> Option<(String, Vec<TrustAnchor<'static>>)> {
    let pem = read(report, check, path, "the federation's ca.pem", "tls.ca")?;
    let ders = match CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>() {
        Ok(ders) if !ders.is_empty() => ders,
        Ok(_) | Err(_) => {
            report.fail(
                check,
                format!("{}: holds no PEM certificate", path.display()),
                "set `tls.ca` to the federation's ca.pem, as `tatmx ca init` wrote it",
            );
            return None;
        }
    };
    let federation = &identity.federation;
    let mut ours = Vec::new();
    let mut others = Vec::new();
    for der in &ders {
        match CertificateSummary::from_der(der) {
            Ok(summary) => match summary.federation_of_ca() {
                Some(f) if &f == federation => ours.push((der.clone(), summary)),
                Some(f) => others.push(f.to_string()),
                None => others.push("not a federation CA".into()),
            },
            Err(e) => others.push(e.to_string()),
        }
    }
    if ours.is_empty() {
        report.fail(
            check,
            format!(
                "{} holds no CA certificate of federation {federation} (it holds: {})",
                path.display(),
                others.join(", ")
            ),
            format!(
                "set `tls.ca` to the ca.pem of {federation} from its federation admin; a CA of \
                 another federation cannot vouch for this node"
            ),
        );
        return None;
    }
    let mut anchors = Vec::new();
    for (der, _) in &ours {
        match webpki::anchor_from_trusted_cert(der) {
            Ok(anchor) => anchors.push(anchor.to_owned()),
            Err(e) => {
                report.fail(
                    check,
                    format!("{}: not usable as a trust anchor: {e:?}", path.display()),
                    "ask the federation admin for the CA certificate again (`tatmx ca init` writes \
                     ca.pem)",
                );
                return None;
            }
        }
    }
    report.ok(check, format!("{}: the CA of {federation}", path.display()));
    // During a CA rotation the file holds the old and the new CA; the latest to expire counts.
    if let Some((_, latest)) = ours.iter().max_by_key(|(_, s)| s.not_after) {
        expiry(
            report,
            &check.replace("ca certificate", "ca certificate expiry"),
            path,
            latest,
            warn_days,
            "the federation admin must rotate the CA before then: a new CA in the directory, then \
             a certificate from it for every member (docs/trust.md)",
        );
    }
    Some((pem, anchors))
}

/// The node's certificate: readable, naming this node's identity, in date.
fn check_certificate(
    report: &mut Report,
    check: &str,
    identity: &TeamIdentity,
    files: &TlsFiles,
    warn_days: u32,
) -> Option<Certificate> {
    let path = &files.cert;
    let pem = read(
        report,
        check,
        path,
        "the certificate the federation admin signed for this node",
        "tls.cert",
    )?;
    let chain: Vec<CertificateDer<'static>> =
        match CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>() {
            Ok(chain) if !chain.is_empty() => chain,
            Ok(_) | Err(_) => {
                report.fail(
                    check,
                    format!("{}: holds no PEM certificate", path.display()),
                    "put the certificate from `tatmx ca sign` there",
                );
                return None;
            }
        };
    let summary = match chain.first().map(|leaf| CertificateSummary::from_der(leaf)) {
        Some(Ok(summary)) => summary,
        Some(Err(e)) => {
            report.fail(
                check,
                format!("{}: {e}", path.display()),
                "put the certificate from `tatmx ca sign` there",
            );
            return None;
        }
        None => return None,
    };
    match &summary.identity {
        Some(found) if found == identity => report.ok(
            check,
            format!(
                "{}: {identity}, serial {}",
                path.display(),
                summary.serial_hex
            ),
        ),
        Some(found) => {
            report.fail(
                check,
                format!(
                    "{} is for {found}, but the config says this node is {identity}",
                    path.display()
                ),
                "use this team's own certificate, or correct `node.federation` and `node.team` \
                 in the config",
            );
            return None;
        }
        None => {
            report.fail(
                check,
                format!(
                    "{} names no team (expected one spiffe://{}/team/<team> URI)",
                    path.display(),
                    identity.federation
                ),
                "use the certificate `tatmx ca sign` issued for this node",
            );
            return None;
        }
    }
    expiry(
        report,
        &check.replace("certificate", "certificate expiry"),
        path,
        &summary,
        warn_days,
        &format!(
            "renew it: `tatmx cert renew --cert {} --dir DIR` makes a new key and CSR, the \
             federation admin signs the CSR (`tatmx ca sign`), and `tatmx cert install NEW.pem \
             --key DIR/node.next.key` puts it in place without a restart",
            path.display()
        ),
    );
    Some(Certificate { chain, summary })
}

/// Records whether a certificate is in date: FAIL when expired or not yet valid, WARN within
/// `warn_days` of its end.
fn expiry(
    report: &mut Report,
    check: &str,
    path: &Path,
    summary: &CertificateSummary,
    warn_days: u32,
    renew: &str,
) {
    let now = OffsetDateTime::now_utc();
    let shown = path.display();
    let end = summary.not_after.date();
    let days = (summary.not_after - now).whole_days();
    if summary.not_after <= now {
        report.fail(
            check,
            format!("{shown}: expired on {end}; every peer refuses it"),
            renew,
        );
    } else if summary.not_before > now {
        report.fail(
            check,
            format!(
                "{shown}: not valid until {}; peers refuse it until then",
                summary.not_before
            ),
            "check this host's clock (`timedatectl`); if it is right, wait, or ask for a \
             certificate valid from now",
        );
    } else if days < i64::from(warn_days) {
        report.warn(
            check,
            format!("{shown}: expires on {end}, in {days} day(s)"),
            renew,
        );
    } else {
        report.ok(check, format!("{shown}: valid until {end} ({days} days)"));
    }
}

/// The key file: present, private to its owner, and a key.
fn check_key(report: &mut Report, check: &str, path: &Path) -> Option<PrivateKeyDer<'static>> {
    let mode_check = check.replace("key file", "key file mode");
    // A file that cannot be looked at is reported by the read below, with its next step.
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            report.fail(
                &mode_check,
                format!(
                    "{} is mode {mode:04o}: users other than its owner may read this node's \
                     private key",
                    path.display()
                ),
                format!(
                    "`chmod 600 {}`, owned by the node's user; if anyone else may have read \
                     it, make a new key and certificate (`tatmx cert renew`) and ask the \
                     federation admin to revoke this one",
                    path.display()
                ),
            );
        } else {
            report.ok(
                &mode_check,
                format!("{} is mode {mode:04o}", path.display()),
            );
        }
    }
    let pem = read(
        report,
        check,
        path,
        "this node's private key (made on this host by `tatmx node init`)",
        "tls.key",
    )?;
    match PrivateKeyDer::from_pem_slice(pem.as_bytes()) {
        Ok(key) => {
            report.ok(check, format!("{}: a private key", path.display()));
            Some(key)
        }
        Err(_) => {
            report.fail(
                check,
                format!("{}: holds no PEM private key", path.display()),
                "`tls.key` must name the key `tatmx node init` (or `tatmx cert renew`) made on \
                 this host",
            );
            None
        }
    }
}

/// Whether the private key is the one the certificate was issued for.
fn check_match(
    report: &mut Report,
    check: &str,
    cert: &Certificate,
    key: &PrivateKeyDer<'static>,
    files: &TlsFiles,
) -> bool {
    let (cert_path, key_path) = (files.cert.display(), files.key.display());
    let signing_key = match tatmx_node::tls::provider()
        .key_provider
        .load_private_key(key.clone_key())
    {
        Ok(k) => k,
        Err(e) => {
            report.fail(
                check,
                format!("{key_path}: not a usable key: {e}"),
                "`tls.key` must name the key `tatmx node init` (or `tatmx cert renew`) made",
            );
            return false;
        }
    };
    match rustls::sign::CertifiedKey::new(cert.chain.clone(), signing_key).keys_match() {
        Ok(()) => {
            report.ok(
                check,
                format!("the key in {key_path} belongs to the certificate in {cert_path}"),
            );
            true
        }
        Err(_) => {
            report.fail(
                check,
                format!("the key in {key_path} does not belong to the certificate in {cert_path}"),
                "use the key made with the CSR this certificate was signed from (`tatmx node \
                 init` and `tatmx cert renew` write it beside the CSR, as node.key or \
                 node.next.key), or have a CSR made from this key signed",
            );
            false
        }
    }
}

/// Whether the certificate chains to the CA for both of the node's uses: as a client when it
/// delivers, and as a server when peers deliver to it. It is checked at a moment inside the
/// certificate's validity, so that a date problem is reported once, by the expiry check.
fn check_chain(
    report: &mut Report,
    check: &str,
    cert: &Certificate,
    anchors: &[TrustAnchor<'static>],
    files: &TlsFiles,
) -> bool {
    let (cert_path, ca_path) = (files.cert.display(), files.ca.display());
    let Some(leaf) = cert.chain.first() else {
        return false;
    };
    let end_entity = match webpki::EndEntityCert::try_from(leaf) {
        Ok(e) => e,
        Err(e) => {
            report.fail(
                check,
                format!("{cert_path}: not a usable certificate: {e:?}"),
                "put the certificate from `tatmx ca sign` there",
            );
            return false;
        }
    };
    let now = OffsetDateTime::now_utc();
    let at = now
        .min(cert.summary.not_after - time::Duration::seconds(1))
        .max(cert.summary.not_before + time::Duration::seconds(1));
    let at = UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(at.unix_timestamp()).unwrap_or(0),
    ));
    let algorithms = tatmx_node::tls::provider()
        .signature_verification_algorithms
        .all;
    let intermediates = cert.chain.get(1..).unwrap_or(&[]);
    for (usage, role) in [
        (webpki::KeyUsage::client_auth(), "a client"),
        (webpki::KeyUsage::server_auth(), "a server"),
    ] {
        let verdict =
            end_entity.verify_for_usage(algorithms, anchors, intermediates, at, usage, None, None);
        match verdict {
            Ok(_) => {}
            // A CA of another name is not found; one of the same name (a CA made again for
            // the same federation) is found and its signature does not match.
            Err(webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey) => {
                report.fail(
                    check,
                    format!("{cert_path} was not issued by the CA in {ca_path}"),
                    format!(
                        "every peer refuses a certificate from another CA: have this node's CSR \
                         signed by the CA in {ca_path} (`tatmx ca sign`), or set `tls.ca` to \
                         the CA that signed it"
                    ),
                );
                return false;
            }
            Err(e) => {
                report.fail(
                    check,
                    format!(
                        "{cert_path} does not verify as {role} against the CA in {ca_path}: {e:?}"
                    ),
                    "ask the federation admin for a certificate from `tatmx ca sign`, which \
                     allows both uses",
                );
                return false;
            }
        }
    }
    report.ok(
        check,
        format!("{cert_path} chains to the CA in {ca_path}, as a client and as a server"),
    );
    true
}
