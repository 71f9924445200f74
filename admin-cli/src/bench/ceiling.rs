//! The ceiling the end-to-end figures are compared with: what mutual TLS 1.3 and gRPC alone cost
//! on this machine, measured in the same run.
//!
//! The echo server uses the receiver's own certificate and key, the client the sender's, with
//! the same crypto provider, TLS version, ALPN and no resumption, as a node's federation
//! channel; only the work behind the call (filter, signatures, store, audit) is missing. The
//! handshake figure is taken against the receiver node itself, so it includes the node's own
//! certificate checks.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyper_util::rt::TokioIo;
use indicatif::ProgressBar;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use serde::Serialize;
use tatmx_proto::bench::EchoMessage;
use tatmx_proto::bench::echo_client::EchoClient;
use tatmx_proto::bench::echo_server::{Echo, EchoServer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::federation::{FEDERATION, Team};
use super::report::Latencies;

/// What the echo run measured.
#[derive(Debug, Serialize)]
pub struct CeilingOutcome {
    /// Calls made.
    pub calls: usize,
    /// Bytes in each request and each response.
    pub payload_bytes: usize,
    /// Concurrent callers over the one channel.
    pub concurrency: usize,
    /// Calls per second.
    pub per_second: f64,
    /// Call latency.
    pub latency: Latencies,
}

/// What the handshake run measured.
#[derive(Debug, Serialize)]
pub struct HandshakeOutcome {
    /// Connections made, one after another, each a full handshake.
    pub connections: usize,
    /// Full handshakes per second.
    pub per_second: f64,
    /// Session resumption is off in tatmx by design: a resumed session would skip the
    /// certificate checks, and trust changes must reach every new connection.
    pub resumed_per_second: Option<f64>,
}

/// The echo server, running until dropped.
pub struct Ceiling {
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Ceiling {
    /// Serves the echo on a loopback port with `team`'s certificate, requiring a client
    /// certificate from the federation CA `ca`.
    pub async fn serve(team: &Team, ca: &Path) -> anyhow::Result<Self> {
        let roots = Arc::new(roots(ca)?);
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots, tatmx_node::tls::provider())
                .build()
                .context("cannot build the echo's client verifier")?;
        let mut config = ServerConfig::builder_with_provider(tatmx_node::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain(&team.cert())?, key(&team.key())?)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<EchoStream>>(64);
        let accepting = stop.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    _ = accepting.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = tx.send(Ok(EchoStream(tls))).await;
                    }
                });
            }
        });
        let server = tonic::transport::Server::builder()
            .add_service(EchoServer::new(Echoer))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                stop.clone().cancelled_owned(),
            );
        tokio::spawn(server);
        Ok(Self { addr, stop })
    }

    /// Makes `calls` echo calls of `payload_bytes` each, `concurrency` at a time, over one
    /// channel made with `client`'s certificate.
    pub async fn measure(
        &self,
        client: &Team,
        ca: &Path,
        calls: usize,
        payload_bytes: usize,
        concurrency: usize,
        progress: &ProgressBar,
    ) -> anyhow::Result<CeilingOutcome> {
        let config = client_config(client, ca)?;
        let channel = channel(self.addr, config).await?;
        let echo = EchoClient::new(channel);
        // One call first, so the handshake is not in the figures.
        echo.clone()
            .echo(EchoMessage { payload: vec![] })
            .await
            .context("the echo server did not answer")?;
        progress.set_length(calls as u64);
        progress.set_position(0);
        let payload = vec![0x5a_u8; payload_bytes];
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency.max(1) {
            let mut echo = echo.clone();
            let payload = payload.clone();
            let next = next.clone();
            let progress = progress.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < calls {
                    let at = Instant::now();
                    let answer = echo
                        .echo(EchoMessage {
                            payload: payload.clone(),
                        })
                        .await?
                        .into_inner();
                    if answer.payload.len() != payload.len() {
                        anyhow::bail!("the echo changed the payload");
                    }
                    latencies.push(at.elapsed());
                    progress.inc(1);
                }
                anyhow::Ok(latencies)
            }));
        }
        let mut latency = Latencies::new()?;
        for task in tasks {
            for sample in task.await.context("an echo task failed")?? {
                latency.record(sample)?;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok(CeilingOutcome {
            calls,
            payload_bytes,
            concurrency,
            per_second: calls as f64 / seconds.max(f64::EPSILON),
            latency,
        })
    }
}

/// Opens `connections` new connections to `server`'s Federation API one after another, each a
/// full TLS 1.3 handshake as `client`, and counts one only once the node has taken it over:
/// its HTTP/2 settings frame arrives after its certificate checks passed.
pub async fn handshakes(
    client: &Team,
    server: &Team,
    ca: &Path,
    connections: usize,
    progress: &ProgressBar,
) -> anyhow::Result<HandshakeOutcome> {
    let connector = TlsConnector::from(client_config(client, ca)?);
    progress.set_length(connections as u64);
    progress.set_position(0);
    let started = Instant::now();
    for _ in 0..connections {
        let tcp = TcpStream::connect(("127.0.0.1", server.port)).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(FEDERATION)?;
        let mut tls = connector.connect(name, tcp).await?;
        // The HTTP/2 preface and an empty SETTINGS frame; the server answers with its own.
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await?;
        let mut frame_header = [0_u8; 9];
        tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut frame_header))
            .await
            .context("the node did not answer a new connection within 5 s")?
            .context("the node closed a new connection")?;
        progress.inc(1);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(HandshakeOutcome {
        connections,
        per_second: connections as f64 / seconds.max(f64::EPSILON),
        resumed_per_second: None,
    })
}

/// Answers every call with its own request.
struct Echoer;

#[tonic::async_trait]
impl Echo for Echoer {
    async fn echo(&self, request: Request<EchoMessage>) -> Result<Response<EchoMessage>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

/// A server-side TLS stream, as tonic wants it.
struct EchoStream(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for EchoStream {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for EchoStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for EchoStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// One HTTP/2 channel to `addr` over mutual TLS with `config`.
async fn channel(addr: SocketAddr, config: Arc<ClientConfig>) -> anyhow::Result<Channel> {
    let connector = TlsConnector::from(config);
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from(FEDERATION)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let tls = connector.connect(name, tcp).await?;
                io::Result::Ok(TokioIo::new(tls))
            }
        }))
        .await?)
}

/// TLS 1.3 as `team`, trusting servers that chain to `ca`, no resumption: as a node dials.
fn client_config(team: &Team, ca: &Path) -> anyhow::Result<Arc<ClientConfig>> {
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots(ca)?),
        tatmx_node::tls::provider(),
    )
    .build()
    .context("cannot build the echo's server verifier")?;
    let mut config = ClientConfig::builder_with_provider(tatmx_node::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
        .with_client_auth_cert(chain(&team.cert())?, key(&team.key())?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// The full WebPKI chain and signature checks, without the DNS-name check: tatmx certificates
/// name a team by a SPIFFE URI, not a host.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError as C;
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            // The chain is checked before the name, so this error means the chain was good.
            Err(rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn roots(ca: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in chain(ca)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

fn chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} holds no valid certificate", path.display()))
}

fn key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).with_context(|| format!("cannot read {}", path.display()))
}
