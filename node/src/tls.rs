//! Mutual TLS 1.3 for the Federation API, in both directions.
//!
//! This layer runs the handshakes; [`crate::trust`] decides which certificates are good. The
//! server's verifier refuses, during the handshake, any certificate that does not chain to an
//! anchor of its own federation, is revoked, or belongs to a team that is not an unblocked
//! peer. The verified certificate then rides on the connection as a [`PeerCertificate`], and
//! every request is checked again against the newest trust.
//!
//! tonic's own TLS config offers no custom verifier and no reload, so the server accepts TCP
//! itself, runs the rustls handshake with a timeout in a task per connection, and feeds finished
//! streams to tonic. Session resumption is off on both sides: a resumed session would skip the
//! verifier, and trust changes must be seen by every new connection.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::NoServerSessionStorage;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use tatmx_certs::{CertificateSummary, FederationId, TeamIdentity};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use crate::signing::NodeSigner;
use crate::trust::{CheckedCertificate, TrustError, TrustState};

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
    chain: Vec<CertificateDer<'static>>,
    /// The private key.
    key: PrivateKeyDer<'static>,
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
struct FederationCertResolver {
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

/// The server side for one trust view: TLS 1.3 only, a client certificate required and checked
/// by [`PeerClientVerifier`], HTTP/2 only, no session resumption.
pub fn server_config(state: Arc<TrustState>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut by_federation = BTreeMap::new();
    for credentials in state.identities.all() {
        by_federation.insert(
            credentials.identity.federation.to_string(),
            certified_key(credentials)?,
        );
    }
    let resolver = Arc::new(FederationCertResolver {
        primary: certified_key(state.identities.primary())?,
        by_federation,
    });
    let verifier = Arc::new(PeerClientVerifier {
        provider: provider(),
        state,
    });
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The client side towards one peer: TLS 1.3 only, this node's certificate for the peer's
/// federation offered, and the server accepted only if it chains to an anchor of its own
/// federation and proves `peer`.
pub fn client_config(
    state: &Arc<TrustState>,
    peer: TeamIdentity,
) -> Result<Arc<ClientConfig>, TlsError> {
    let credentials = state
        .identities
        .get(&peer.federation)
        .cloned()
        .ok_or_else(|| TlsError::NotMember(peer.federation.clone()))?;
    let verifier = Arc::new(PeerServerVerifier {
        state: state.clone(),
        expected: peer,
        provider: provider(),
    });
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(credentials.chain.clone(), credentials.key.clone_key())?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// Maps a trust refusal to the TLS error that makes rustls send the matching alert, so the
/// other side learns why (expired, revoked, unknown CA) without a gRPC call.
fn refusal(error: &TrustError) -> rustls::Error {
    use rustls::CertificateError as C;
    let certificate_error = match error {
        TrustError::Certificate { reason, .. } if reason.contains("expired") => C::Expired,
        TrustError::Certificate { reason, .. } if reason.contains("not valid yet") => {
            C::NotValidYet
        }
        TrustError::Certificate { reason, .. } if reason.contains("revoked") => C::Revoked,
        TrustError::Revoked { .. } => C::Revoked,
        TrustError::ForeignFederation(_) => C::UnknownIssuer,
        TrustError::Certificate { .. } => C::BadSignature,
        _ => C::ApplicationVerificationFailure,
    };
    rustls::Error::InvalidCertificate(certificate_error)
}

/// Checks a handshake signature with the provider's algorithms; both verifiers share it, as
/// only the certificate checks differ between client and server.
fn handshake_signature(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    tls13: bool,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let algorithms = &provider.signature_verification_algorithms;
    if tls13 {
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    } else {
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }
}

/// Checks a caller's client certificate during the handshake against the trust view this
/// server config was built from: a chain to its own federation's anchor, not revoked, and a
/// known, unblocked peer. Requests are checked again against the newest view.
#[derive(Debug)]
struct PeerClientVerifier {
    /// Signature algorithms.
    provider: Arc<CryptoProvider>,
    /// The trust view this verifier enforces.
    state: Arc<TrustState>,
}

impl ClientCertVerifier for PeerClientVerifier {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let checked = self
            .state
            .check_certificate(
                end_entity,
                intermediates,
                now,
                webpki::KeyUsage::client_auth(),
            )
            .and_then(|checked| self.state.admit(checked.identity()).map(|_| checked));
        match checked {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(e) => {
                tracing::info!(error = %e, "client certificate refused at handshake");
                let reason = crate::metrics::Refusal::of_trust(&e).as_str().to_owned();
                crate::metrics::get()
                    .handshakes_refused
                    .get_or_create(&vec![("reason", reason)])
                    .inc();
                Err(refusal(&e))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signature(&self.provider, message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signature(&self.provider, message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Checks a peer's server certificate the SPIFFE way: it must chain to an anchor of its own
/// federation, not be revoked, and carry exactly the identity we dialled. The DNS name is
/// irrelevant, because teams are named by their URI SAN, not by where they are hosted.
#[derive(Debug)]
struct PeerServerVerifier {
    /// The trust view at connection time.
    state: Arc<TrustState>,
    /// The team this connection is meant to reach.
    expected: TeamIdentity,
    /// Signature algorithms for handshake checks.
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let checked = self
            .state
            .check_certificate(end_entity, intermediates, now, webpki::KeyUsage::server_auth())
            .map_err(|e| {
                tracing::info!(peer = %self.expected, error = %e, "peer server certificate refused");
                refusal(&e)
            })?;
        if checked.identity() != &self.expected {
            return Err(rustls::Error::General(format!(
                "peer presented {}, expected {}",
                checked.identity(),
                self.expected
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signature(&self.provider, message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signature(&self.provider, message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What the handshake proved about the caller. Only this module constructs it, and only from a
/// certificate that passed [`TrustState::check_certificate`].
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    /// The checked certificate.
    checked: CheckedCertificate,
    /// Its DER, kept with what the peer signs so the signature can be checked later.
    der: CertificateDer<'static>,
    /// Where the connection came from, for logs.
    remote_addr: SocketAddr,
}

impl PeerCertificate {
    /// The checked certificate.
    pub fn checked(&self) -> &CheckedCertificate {
        &self.checked
    }

    /// The identity the certificate proves.
    pub fn identity(&self) -> &TeamIdentity {
        self.checked.identity()
    }

    /// The certificate's serial number, lowercase hex.
    pub fn serial_hex(&self) -> &str {
        self.checked.serial_hex()
    }

    /// The caller's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        self.der.as_ref()
    }
}

/// A TLS connection whose handshake finished, carrying what it proved.
pub struct PeerStream {
    /// The encrypted stream.
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    /// The verified client certificate, shared with every request on this connection.
    certificate: Arc<PeerCertificate>,
}

impl Connected for PeerStream {
    type ConnectInfo = Arc<PeerCertificate>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.certificate.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The most TLS handshakes in progress at once. Each holds a few kilobytes for at most the
/// handshake timeout; past this a flood of connections is dropped at accept, so it can neither
/// exhaust memory nor starve the peers already connected.
pub const MAX_PENDING_HANDSHAKES: usize = 256;

/// Accepts TCP connections, runs each handshake in its own task with a deadline, and yields the
/// streams that completed it. Each handshake uses the server config current at that moment, so
/// a trust change applies to the very next connection. A slow or failed handshake never holds
/// up the accept loop, and at most [`MAX_PENDING_HANDSHAKES`] are in progress.
pub fn accept(
    listener: TcpListener,
    configs: Arc<ArcSwap<ServerConfig>>,
    states: Arc<ArcSwap<TrustState>>,
    handshake_timeout: Duration,
    shutdown: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<Result<PeerStream, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let pending = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let (tcp, remote_addr) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a federation connection failed");
                        // Usually EMFILE; pausing avoids a hot loop while descriptors free up.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = pending.clone().try_acquire_owned() else {
                tracing::warn!(%remote_addr, "too many TLS handshakes in progress; connection dropped");
                drop(tcp);
                continue;
            };
            let acceptor = TlsAcceptor::from(configs.load_full());
            let states = states.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _ = tcp.set_nodelay(true);
                match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let Some((checked, der)) = recheck(&tls, &states.load()) else {
                            return;
                        };
                        let stream = PeerStream {
                            inner: tls,
                            certificate: Arc::new(PeerCertificate {
                                checked,
                                der,
                                remote_addr,
                            }),
                        };
                        // The receiver is gone only when the server is shutting down.
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::info!(%remote_addr, error = %e, "federation TLS handshake refused");
                    }
                    Err(_) => {
                        tracing::info!(%remote_addr, "federation TLS handshake timed out");
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Re-derives what the verifier established, to carry it with the connection. It fails for a
/// certificate the verifier just accepted only if trust changed in between, and then dropping
/// the connection is right.
fn recheck(
    tls: &tokio_rustls::server::TlsStream<TcpStream>,
    state: &TrustState,
) -> Option<(CheckedCertificate, CertificateDer<'static>)> {
    let (_, connection) = tls.get_ref();
    let chain = connection.peer_certificates()?;
    let (leaf, intermediates) = chain.split_first()?;
    let checked = state
        .check_certificate(
            leaf,
            intermediates,
            UnixTime::now(),
            webpki::KeyUsage::client_auth(),
        )
        .ok()?;
    Some((checked, leaf.clone().into_owned()))
}

/// The stream a peer connection runs over, as tonic's client wants it.
pub type PeerIo = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;

/// The future of one connection attempt.
pub type Connecting = Pin<Box<dyn std::future::Future<Output = io::Result<PeerIo>> + Send>>;

/// A tonic connector that dials `peer` over TCP and runs the client handshake with a config
/// built from the trust view current at that moment, so a renewed certificate or a new anchor
/// applies to the next connection.
pub fn connector(
    states: Arc<ArcSwap<TrustState>>,
    peer: TeamIdentity,
) -> impl tower::Service<http::Uri, Response = PeerIo, Error = io::Error, Future = Connecting>
+ Clone
+ Send
+ 'static {
    tower::service_fn(move |uri: http::Uri| {
        let config = client_config(&states.load_full(), peer.clone());
        // The federation id, a DNS-style name, tells the server which of its certificates to
        // present; where the peer is hosted plays no part in who it is.
        let federation = peer.federation.to_string();
        Box::pin(async move {
            let config = config.map_err(io::Error::other)?;
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "endpoint has no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(federation)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let tls = TlsConnector::from(config).connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        }) as Connecting
    })
}
