//! Prometheus metrics: counters the node's parts increment, served as OpenMetrics text on a
//! local HTTP endpoint that is off unless `[metrics] listen` is set.
//!
//! The counters live in one process-wide registry, so any layer can count without carrying a
//! handle; a process runs one node (tests that run several share the counts, and only ever
//! check that a count moved). Labels carry methods, codes, categories and causes, never ids or
//! content.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Label pairs, such as `[("method", "Retract")]`.
type Labels = Vec<(&'static str, String)>;

/// Every counter the node keeps.
#[derive(Debug)]
pub struct Metrics {
    /// The registry they are encoded from.
    registry: Registry,
    /// Peers whose audit history contradicted a checkpoint this node witnessed.
    pub witness_conflicts: Counter,
    /// Inbound calls refused, by method and status code.
    pub inbound_rejected: Family<Labels, Counter>,
    /// Referrals purged, by cause.
    pub purged: Family<Labels, Counter>,
    /// Messages acknowledged by their peer.
    pub delivered: Counter,
    /// Messages that became dead letters.
    pub dead_letters: Counter,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("tatmx");
        let witness_conflicts = Counter::default();
        registry.register(
            "witness_conflicts",
            "Peers whose audit history contradicted a checkpoint this node held",
            witness_conflicts.clone(),
        );
        let inbound_rejected = Family::<Labels, Counter>::default();
        registry.register(
            "inbound_rejected",
            "Calls from other nodes that were refused, by method and status code",
            inbound_rejected.clone(),
        );
        let purged = Family::<Labels, Counter>::default();
        registry.register(
            "purged",
            "Received referrals purged by crypto-shredding, by cause",
            purged.clone(),
        );
        let delivered = Counter::default();
        registry.register(
            "delivered",
            "Messages acknowledged by their peer with a verified receipt",
            delivered.clone(),
        );
        let dead_letters = Counter::default();
        registry.register(
            "dead_letters",
            "Messages that became dead letters",
            dead_letters.clone(),
        );
        Self {
            registry,
            witness_conflicts,
            inbound_rejected,
            purged,
            delivered,
            dead_letters,
        }
    }

    /// The metrics as OpenMetrics text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Serves `GET /metrics` on `listener` until the node stops.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer));
            tokio::select! {
                _ = connection => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

async fn answer(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = if request.uri().path() == "/metrics" {
        Response::builder()
            .header(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .body(Full::new(Bytes::from(get().render())))
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
