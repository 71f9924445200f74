//! The `/metrics` endpoint: at each scrape it reads the gauges of the node that serves it
//! (outbox depths and audit lag from the store, certificates and directories from trust, the
//! last store check) and renders them with the counters of [`crate::metrics`].
//!
//! It has no authentication and names peer teams and federations, never people: it listens on
//! loopback unless an admin says otherwise.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::StoreUp;
use crate::metrics::{PeerDepth, Snapshot, get};
use crate::store::Store;
use crate::trust::Trust;

/// How long a scrape waits for the store before it answers without the store's gauges: a
/// scrape must still answer (with `tatmx_store_up 0`) while the store does not.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the endpoint reads its gauges from: the node that serves it.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Outbox depths and audit lag.
    pub store: Store,
    /// The node's certificates, peers and directories.
    pub trust: Trust,
    /// The last result of the store check behind readiness.
    pub store_up: StoreUp,
}

/// Reads the gauges of the node behind `sources`.
pub async fn snapshot(sources: &Sources) -> Snapshot {
    // Certificate and directory ages are trust's, on the system clock as the handshake's are
    // (docs/ARCHITECTURE.md, "Time").
    let now = OffsetDateTime::now_utc();
    let state = sources.trust.state();
    let store = async {
        let depths = sources.store.outbox_depths().await;
        let lag = sources.store.audit_lag().await;
        (depths, lag)
    };
    let (depths, lag) = match tokio::time::timeout(STORE_TIMEOUT, store).await {
        Ok((depths, lag)) => (
            depths
                .map_err(|e| tracing::warn!(error = %e, "metrics: reading the outbox failed"))
                .ok(),
            lag.map_err(|e| tracing::warn!(error = %e, "metrics: reading the audit log failed"))
                .ok(),
        ),
        Err(_) => {
            tracing::warn!("metrics: the store did not answer in time; its gauges are left out");
            (None, None)
        }
    };
    // Every current peer gets a depth, so "delivered everything" reads as 0, not as a
    // missing series; a removed peer still listed by the store keeps its own row.
    let outbox = depths.map(|mut depths| {
        for entry in state.peers() {
            let peer = entry.peer.identity.uri();
            if !depths.iter().any(|d| d.peer == peer) {
                depths.push(PeerDepth {
                    peer,
                    pending: 0,
                    oldest: None,
                    dead: 0,
                });
            }
        }
        depths
    });
    let certificates = state
        .identities
        .all()
        .into_iter()
        .map(|c| {
            let days = (c.not_after() - now).as_seconds_f64() / 86_400.0;
            (c.identity().federation.to_string(), days)
        })
        .collect();
    let directories = state
        .identities
        .all()
        .into_iter()
        .map(|c| {
            let federation = &c.identity().federation;
            let age = state
                .directory(federation)
                .map(|d| (now - d.issued_at).as_seconds_f64().max(0.0));
            (federation.to_string(), age)
        })
        .collect();
    Snapshot {
        store_up: sources.store_up.get(),
        outbox,
        audit: lag,
        certificates,
        directories,
        at: Some(now),
    }
}

/// Serves `GET /metrics` on `listener` until the node stops, with the gauges of the node
/// behind `sources`.
pub async fn serve(listener: TcpListener, sources: Sources, shutdown: CancellationToken) {
    let sources = Arc::new(sources);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let shutdown = shutdown.clone();
        let sources = sources.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let sources = sources.clone();
                async move { answer(request, &sources).await }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

async fn answer(
    request: Request<hyper::body::Incoming>,
    sources: &Sources,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = if request.uri().path() == "/metrics" {
        let snapshot = snapshot(sources).await;
        Response::builder()
            .header(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .body(Full::new(Bytes::from(get().render(Some(&snapshot)))))
    } else {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(
                b"only /metrics is served here\n",
            )))
    };
    Ok(response.unwrap_or_default())
}

/// Binds the metrics address from the config.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
