//! Mutual TLS 1.3 for the Federation API, in both directions, as trust decides it.
//!
//! The server's verifier refuses, during the handshake, any certificate that does not chain to
//! an anchor of its own federation, is revoked, or belongs to a team that is not an unblocked
//! peer. The verified certificate then rides on the connection as a [`PeerCertificate`], and
//! every request is checked again against the newest trust. The node's own certificates come
//! from [`crate::tls`].
//!
//! tonic's own TLS config offers no custom verifier and no reload, so the server accepts TCP
//! itself, admits each connection to a handshake as [`super::admission`] shares the slots out,
//! runs the rustls handshake with a timeout in a task per connection, and feeds finished streams
//! to tonic. Session resumption is off on both sides: a resumed session would skip the
//! verifier, and trust changes must be seen by every new connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::NoServerSessionStorage;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use tatmx_certs::TeamIdentity;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use super::admission::{self, Admission, KnownAddresses, Limits, Permit, ShedLog};
use super::{CheckedCertificate, TrustError, TrustState};
use crate::tls::{FederationCertResolver, TlsError, provider};

/// The server side for one trust view: TLS 1.3 only, a client certificate required and checked
/// by [`PeerClientVerifier`], HTTP/2 only, no session resumption.
pub fn server_config(state: Arc<TrustState>) -> Result<Arc<ServerConfig>, TlsError> {
    let resolver = FederationCertResolver::of(&state.identities)?;
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
/// federation, not be revoked, and carry exactly the identity we dialled. The DNS name dialled,
/// and any DNS names the certificate carries for standard clients, are irrelevant, because teams
/// are named by their URI SAN, not by where they are hosted.
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

/// The least time between two summaries of connections shed for one reason: a flood is
/// reported as it starts and then every ten seconds, never a line per connection.
const SHED_SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// Accepts TCP connections, runs each handshake in its own task with a deadline, and yields the
/// streams that completed it. Each handshake uses the server config current at that moment, so
/// a trust change applies to the very next connection. A slow or failed handshake never holds
/// up the accept loop.
///
/// Handshakes in progress are shared out by [`admission`](super::admission): at most so many
/// per source address, per network and in all, with a share kept for the addresses of the
/// peers in the trust view, which are resolved again after every trust change that `changes`
/// signals. A connection past its limit is closed at once, counted in
/// `tatmx_handshakes_shed_total{reason}` and summarised in the log.
pub fn accept(
    listener: TcpListener,
    configs: Arc<ArcSwap<ServerConfig>>,
    states: Arc<ArcSwap<TrustState>>,
    changes: watch::Receiver<u64>,
    handshake_timeout: Duration,
    shutdown: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<Result<PeerStream, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let admission = Admission::new(Limits::default());
    let known = KnownAddresses::default();
    tokio::spawn(admission::follow_peers(
        states.clone(),
        changes,
        known.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(async move {
        let mut shed_log = ShedLog::new(SHED_SUMMARY_INTERVAL);
        // Reports the tail of a flood once it has gone quiet; a summary is never due more
        // often than its interval, whatever the tick.
        let mut summaries = tokio::time::interval(Duration::from_secs(1));
        summaries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let (tcp, remote_addr) = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = summaries.tick() => {
                    for summary in shed_log.due(tokio::time::Instant::now().into_std()) {
                        summary.log();
                    }
                    continue;
                }
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
            let source = remote_addr.ip();
            let permit = match admission.admit(source, known.contains(source)) {
                Ok(permit) => permit,
                Err(reason) => {
                    drop(tcp);
                    crate::metrics::get()
                        .handshakes_shed
                        .get_or_create(&vec![("reason", reason.as_str().to_owned())])
                        .inc();
                    let now = tokio::time::Instant::now().into_std();
                    if let Some(summary) = shed_log.record(reason, source, now) {
                        summary.log();
                    }
                    continue;
                }
            };
            let acceptor = TlsAcceptor::from(configs.load_full());
            let states = states.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit: Permit = permit;
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
        for summary in shed_log.drain() {
            summary.log();
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
