//! The console's HTTPS listener: TLS 1.3 from the node's own rustls stack, no client
//! certificate (staff sign in with a password and a code instead), HTTP/1.1.
//!
//! Without a configured web certificate it presents the node's own certificate, looked up in
//! the live trust state at each handshake, so a renewed certificate is served at once. Each
//! connection's handshake runs in its own task with a time limit, so a slow client holds up
//! nobody else; on shutdown open connections are asked to finish their request and close.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::ConsoleError;
use crate::tls::{certified_key, provider};
use crate::trust::Trust;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(20);

/// The address a request came from, for the per-address sign-in limit.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Presents this node's primary certificate as it is now in the trust state.
#[derive(Debug)]
struct NodeCertificate {
    /// The live trust state, which holds the node's certificates.
    trust: Trust,
    /// The certified key last made, by certificate serial, so each handshake does not reload it.
    cached: Mutex<Option<(String, Arc<CertifiedKey>)>>,
}

impl ResolvesServerCert for NodeCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let state = self.trust.state();
        let primary = state.identities.primary();
        let mut cached = self.cached.lock().ok()?;
        if let Some((serial, key)) = cached.as_ref()
            && serial == primary.serial_hex()
        {
            return Some(key.clone());
        }
        let key = certified_key(primary).ok()?;
        *cached = Some((primary.serial_hex().to_owned(), key.clone()));
        Some(key)
    }
}

/// A web certificate from the config, the same for every handshake.
#[derive(Debug)]
struct WebCertificate(Arc<CertifiedKey>);

impl ResolvesServerCert for WebCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A certificate and key from files, for a web certificate staff browsers trust.
fn from_files(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, ConsoleError> {
    let problem = |path: &Path, problem: String| ConsoleError::Certificate {
        path: path.to_owned(),
        problem,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| problem(cert, format!("no usable PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(problem(cert, "holds no certificate".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| problem(key, format!("no usable private key: {e}")))?;
    let signing = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| problem(key, format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|_| problem(key, "does not belong to the certificate".into()))?;
    Ok(Arc::new(certified))
}

/// The console's TLS configuration: TLS 1.3 only, no client certificate, HTTP/1.1.
pub fn server_config(
    trust: &Trust,
    certificate: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<Arc<ServerConfig>, ConsoleError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ConsoleError::Tls(e.to_string()))?
        .with_no_client_auth();
    let mut config = match certificate {
        Some((cert, key)) => {
            builder.with_cert_resolver(Arc::new(WebCertificate(from_files(cert, key)?)))
        }
        None => builder.with_cert_resolver(Arc::new(NodeCertificate {
            trust: trust.clone(),
            cached: Mutex::new(None),
        })),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until `shutdown`, then lets open connections finish for up to
/// `grace`.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(error = %e, "console: accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let service =
                app.map_request(move |mut request: http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ClientAddr(remote));
                    request
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            // A connection that breaks off is the client's business; nothing to report.
            let _ = watcher.watch(connection).await;
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {}
    }
}
