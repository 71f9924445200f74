//! Mutual TLS 1.3 for the Federation API, in both directions.
//!
//! This layer proves one thing: the other end holds a key certified by this federation's CA. It
//! turns the verified certificate into a [`PeerCertificate`] and hands it upward; whether that
//! team may call, and what it may do, is decided by [`crate::trust`].
//!
//! tonic's own TLS config offers no custom verifier and no reload, so the server accepts TCP
//! itself, runs the rustls handshake with a timeout in a task per connection, and feeds finished
//! streams to tonic. Session resumption is off on both sides: a resumed session would skip the
//! verifier, and trust changes must be seen by every new connection.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tatmx_certs::{CertificateSummary, TeamIdentity};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

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
    /// The client certificate verifier could not be built.
    #[error("TLS client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The crypto provider every tatmx TLS config uses. Built explicitly rather than installed as a
/// process default, so two providers linked into one binary can never make rustls panic.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The node's certificates and key, loaded once at start-up.
#[derive(Clone)]
pub struct TlsMaterial {
    /// The federation CA certificates this node trusts as anchors.
    anchors: Arc<RootCertStore>,
    /// This node's certificate chain, leaf first.
    chain: Vec<CertificateDer<'static>>,
    /// This node's private key.
    key: Arc<PrivateKeyDer<'static>>,
    /// The identity in this node's certificate.
    identity: TeamIdentity,
    /// When this node's certificate expires.
    not_after: OffsetDateTime,
}

impl TlsMaterial {
    /// Loads the CA, certificate and key files and checks that the certificate is current and
    /// proves `expected`.
    pub fn load(
        ca: &Path,
        cert: &Path,
        key: &Path,
        expected: &TeamIdentity,
    ) -> Result<Self, TlsError> {
        let anchors = read_certs(ca)?;
        let chain = read_certs(cert)?;
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
            path: key.to_owned(),
            problem: format!("no usable private key: {e}"),
        })?;
        let mut roots = RootCertStore::empty();
        for anchor in anchors {
            roots.add(anchor).map_err(|e| TlsError::File {
                path: ca.to_owned(),
                problem: format!("not a usable CA certificate: {e}"),
            })?;
        }
        let own = |problem: String| TlsError::OwnCertificate {
            path: cert.to_owned(),
            problem,
        };
        let summary = CertificateSummary::from_der(&chain[0]).map_err(|e| own(e.to_string()))?;
        let identity = summary
            .require_identity()
            .map_err(|e| own(e.to_string()))?
            .clone();
        if &identity != expected {
            return Err(own(format!(
                "the certificate is for {identity}, but the config says this node is {expected}"
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
            anchors: Arc::new(roots),
            chain,
            key: Arc::new(key_der),
            identity,
            not_after: summary.not_after,
        })
    }

    /// The identity this node proves to its peers.
    pub fn identity(&self) -> &TeamIdentity {
        &self.identity
    }

    /// When this node's certificate expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The server side: TLS 1.3 only, a client certificate from a federation anchor required,
    /// HTTP/2 only, no session resumption.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = provider();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.anchors.clone(), provider.clone())
                .build()?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }

    /// The client side towards one peer: TLS 1.3 only, this node's certificate offered, and the
    /// server accepted only if it chains to a federation anchor and proves `peer`.
    pub fn client_config(&self, peer: TeamIdentity) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = provider();
        let verifier = Arc::new(PeerServerVerifier {
            anchors: self.anchors.clone(),
            expected: peer,
            provider: provider.clone(),
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(config))
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let problem = |problem: String| TlsError::File {
        path: path.to_owned(),
        problem,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| problem(format!("cannot read: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(problem("holds no certificate".into()));
    }
    Ok(certs)
}

/// Checks a peer's server certificate the SPIFFE way: it must chain to a federation anchor and
/// carry exactly the identity we dialled. The DNS name is irrelevant, because teams are named by
/// their URI SAN, not by where they happen to be hosted.
#[derive(Debug)]
struct PeerServerVerifier {
    /// The federation CA certificates.
    anchors: Arc<RootCertStore>,
    /// The team this connection is meant to reach.
    expected: TeamIdentity,
    /// Signature algorithms for chain and handshake checks.
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
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.anchors,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let summary = CertificateSummary::from_der(end_entity)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        match summary.identity {
            Some(identity) if identity == self.expected => Ok(ServerCertVerified::assertion()),
            Some(identity) => Err(rustls::Error::General(format!(
                "peer presented {identity}, expected {}",
                self.expected
            ))),
            None => Err(rustls::Error::General(
                "peer certificate carries no team identity".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What the handshake proved about the caller. Only this module constructs it, and only from a
/// certificate rustls has verified against a federation anchor.
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    /// The URI SAN identity, if the certificate carries exactly one valid one.
    identity: Option<TeamIdentity>,
    /// Serial number, lowercase hex.
    serial_hex: String,
    /// Where the connection came from, for logs.
    remote_addr: SocketAddr,
}

impl PeerCertificate {
    /// The identity the certificate proves, if any.
    pub fn identity(&self) -> Option<&TeamIdentity> {
        self.identity.as_ref()
    }

    /// The certificate's serial number, lowercase hex.
    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }

    /// The caller's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
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

/// Accepts TCP connections, runs each handshake in its own task with a deadline, and yields the
/// streams that completed it. A slow or failed handshake never holds up the accept loop.
pub fn accept(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    handshake_timeout: Duration,
    shutdown: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<Result<PeerStream, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
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
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let certificate = Arc::new(peer_certificate(&tls, remote_addr));
                        let stream = PeerStream {
                            inner: tls,
                            certificate,
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

fn peer_certificate(
    tls: &tokio_rustls::server::TlsStream<TcpStream>,
    remote_addr: SocketAddr,
) -> PeerCertificate {
    let (_, connection) = tls.get_ref();
    let summary = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| CertificateSummary::from_der(leaf).ok());
    PeerCertificate {
        identity: summary.as_ref().and_then(|s| s.identity.clone()),
        serial_hex: summary.map(|s| s.serial_hex).unwrap_or_default(),
        remote_addr,
    }
}

/// The stream a peer connection runs over, as tonic's client wants it.
pub type PeerIo = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;

/// The future of one connection attempt.
pub type Connecting = Pin<Box<dyn std::future::Future<Output = io::Result<PeerIo>> + Send>>;

/// A tonic connector that dials a peer over TCP and runs the client handshake with `config`.
pub fn connector(
    config: Arc<ClientConfig>,
) -> impl tower::Service<http::Uri, Response = PeerIo, Error = io::Error, Future = Connecting>
+ Clone
+ Send
+ 'static {
    let connector = TlsConnector::from(config);
    tower::service_fn(move |uri: http::Uri| {
        let connector = connector.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "endpoint has no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            // The verifier ignores the name; rustls still needs one for SNI.
            let name = ServerName::try_from(host)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let tls = connector.connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        }) as Connecting
    })
}
