//! The node's own TLS material: its certificate and key in each federation it belongs to, the
//! crypto provider, and the PEM files they live in.
//!
//! What this module holds proves who *this* node is. Who the *other* side is, and whether it is
//! good, is decided by [`crate::trust`], whose [`crate::trust::handshake`] runs the mutual TLS
//! 1.3 handshakes with these credentials.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tatmx_certs::{CertificateSummary, FederationId, TeamIdentity};
use time::OffsetDateTime;

use crate::signing::NodeSigner;

/// Failure to load or use TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or held nothing usable.
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        problem: String,
    },
    /// The node's own certificate is not usable as this node's identity.
    #[error("{path}: {problem}")]
    OwnCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What was wrong with it.
        problem: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// This node holds no certificate for the federation of the peer it was asked to reach.
    #[error("this node is not a member of federation {0}")]
    NotMember(FederationId),
}

/// The crypto provider every tatmx TLS config uses. Built explicitly rather than installed as a
/// process default, so two providers linked into one binary can never make rustls panic.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// This node's own certificate chain and key. Replaced whole when a new certificate is
/// installed; connections already open keep the one they started with.
pub struct Credentials {
    /// The identity the certificate proves.
    identity: TeamIdentity,
    /// The certificate chain, leaf first.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub(crate) key: PrivateKeyDer<'static>,
    /// Signs messages, receipts and audit checkpoints with that key.
    signer: NodeSigner,
    /// The leaf's serial, hex.
    serial_hex: String,
    /// Start of validity.
    not_before: OffsetDateTime,
    /// End of validity.
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("identity", &self.identity)
            .field("serial_hex", &self.serial_hex)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Loads the certificate and key files named in the config, and checks that they belong
    /// together, prove `expected`, and are valid now. Errors name the file and the date.
    pub fn load(cert: &Path, key: &Path, expected: &TeamIdentity) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|e| TlsError::File {
                path: path.to_owned(),
                problem: format!("cannot read: {e}"),
            })
        };
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        Self::from_pem(&cert_pem, &key_pem, expected, &cert.display().to_string())
    }

    /// Builds credentials from PEM text; `origin` names the certificate in errors.
    pub fn from_pem(
        cert_pem: &str,
        key_pem: &str,
        expected: &TeamIdentity,
        origin: &str,
    ) -> Result<Self, TlsError> {
        let own = |problem: String| TlsError::OwnCertificate {
            path: PathBuf::from(origin),
            problem,
        };
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| own(format!("not a PEM certificate: {e}")))?;
        let leaf = chain
            .first()
            .ok_or_else(|| own("holds no certificate".into()))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| own(format!("no usable private key: {e}")))?;
        let signing_key = provider()
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| own(format!("unusable private key: {e}")))?;
        rustls::sign::CertifiedKey::new(chain.clone(), signing_key.clone())
            .keys_match()
            .map_err(|_| own("the private key does not belong to the certificate".into()))?;
        let signer = NodeSigner::new(signing_key, leaf.clone().into_owned())
            .map_err(|e| own(e.to_string()))?;
        let summary = CertificateSummary::from_der(leaf).map_err(|e| own(e.to_string()))?;
        let identity = summary
            .require_identity()
            .map_err(|e| own(e.to_string()))?
            .clone();
        if &identity != expected {
            return Err(own(format!(
                "the certificate is for {identity}, but this node is {expected}"
            )));
        }
        let now = OffsetDateTime::now_utc();
        if summary.not_after <= now {
            return Err(own(format!(
                "the certificate expired on {}",
                summary.not_after.date()
            )));
        }
        if summary.not_before > now {
            return Err(own(format!(
                "the certificate is not valid until {}",
                summary.not_before
            )));
        }
        Ok(Self {
            identity,
            chain,
            key,
            signer,
            serial_hex: summary.serial_hex,
            not_before: summary.not_before,
            not_after: summary.not_after,
        })
    }

    /// What this identity signs with.
    pub fn signer(&self) -> &NodeSigner {
        &self.signer
    }

    /// The identity this node proves to its peers.
    pub fn identity(&self) -> &TeamIdentity {
        &self.identity
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf's serial, hex.
    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }

    /// Start of validity.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// When this node's certificate expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
}

/// This node's certificates, one per federation it belongs to. Anchors are never merged, so a
/// node in two federations holds two certificates, each proving its identity in one of them.
#[derive(Debug, Clone)]
pub struct Identities {
    /// The federation of the config's `[node]` section.
    primary: FederationId,
    /// Credentials by federation; always holds the primary.
    by_federation: BTreeMap<FederationId, Arc<Credentials>>,
}

impl Identities {
    /// Starts with the primary membership.
    pub fn new(primary: Credentials) -> Self {
        let federation = primary.identity.federation.clone();
        Self {
            primary: federation.clone(),
            by_federation: BTreeMap::from([(federation, Arc::new(primary))]),
        }
    }

    /// Adds or replaces the membership of the credentials' federation.
    pub fn with(mut self, credentials: Credentials) -> Self {
        self.by_federation.insert(
            credentials.identity.federation.clone(),
            Arc::new(credentials),
        );
        self
    }

    /// The primary credentials.
    pub fn primary(&self) -> &Arc<Credentials> {
        // The constructor inserts the primary and nothing removes it.
        &self.by_federation[&self.primary]
    }

    /// The credentials for one federation, if this node belongs to it.
    pub fn get(&self, federation: &FederationId) -> Option<&Arc<Credentials>> {
        self.by_federation.get(federation)
    }

    /// This node's identity in one federation.
    pub fn identity_in(&self, federation: &FederationId) -> Option<&TeamIdentity> {
        self.get(federation).map(|c| c.identity())
    }

    /// Every membership, primary first.
    pub fn all(&self) -> Vec<&Arc<Credentials>> {
        let mut all: Vec<&Arc<Credentials>> = vec![self.primary()];
        all.extend(
            self.by_federation
                .iter()
                .filter(|(f, _)| **f != self.primary)
                .map(|(_, c)| c),
        );
        all
    }
}

/// Picks the server certificate for the federation the client names in SNI (tatmx clients send
/// the federation id), or the primary one.
#[derive(Debug)]
pub(crate) struct FederationCertResolver {
    /// Certified keys by federation id.
    by_federation: BTreeMap<String, Arc<rustls::sign::CertifiedKey>>,
    /// The fallback.
    primary: Arc<rustls::sign::CertifiedKey>,
}

impl rustls::server::ResolvesServerCert for FederationCertResolver {
    fn resolve(
        &self,
        client_hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let chosen = client_hello
            .server_name()
            .and_then(|name| self.by_federation.get(name))
            .unwrap_or(&self.primary);
        Some(chosen.clone())
    }
}

/// These credentials as a rustls certified key, for a server that presents them.
pub fn certified_key(
    credentials: &Credentials,
) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
    let key = provider()
        .key_provider
        .load_private_key(credentials.key.clone_key())?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(
        credentials.chain.clone(),
        key,
    )))
}

/// Reads a PEM file of CA certificates (the config's `tls.ca`), checking it holds at least one.
pub fn read_pem_file(path: &Path) -> Result<String, TlsError> {
    let problem = |problem: String| TlsError::File {
        path: path.to_owned(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| problem(format!("cannot read: {e}")))?;
    let count = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(format!("not a PEM certificate file: {e}")))?
        .len();
    if count == 0 {
        return Err(problem("holds no certificate".into()));
    }
    Ok(text)
}

/// Replaces a file atomically (write beside it, fsync, rename), owner-only.
pub fn replace_file(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: io::Error| TlsError::File {
        path: path.to_owned(),
        problem: format!("cannot write: {e}"),
    };
    let tmp = path.with_extension("tmp-install");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    file.write_all(contents).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

impl FederationCertResolver {
    /// Every federation's certificate of `identities`, picked by the SNI a client sends.
    pub(crate) fn of(identities: &Identities) -> Result<Arc<Self>, TlsError> {
        let mut by_federation = BTreeMap::new();
        for credentials in identities.all() {
            by_federation.insert(
                credentials.identity.federation.to_string(),
                certified_key(credentials)?,
            );
        }
        Ok(Arc::new(Self {
            primary: certified_key(identities.primary())?,
            by_federation,
        }))
    }
}
