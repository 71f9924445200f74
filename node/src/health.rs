//! Health for probes: what the `grpc.health.v1.Health` service answers, and the store check
//! that keeps its readiness true.
//!
//! The same health service is served on every listener; `[health] listen` adds a plaintext one
//! that serves nothing else, because Kubernetes' native `grpc:` probes cannot present a client
//! certificate. Two service names are for probes:
//!
//! - `liveness`: SERVING while the process answers at all. A store outage does not touch it, so
//!   a liveness probe never restarts a node that only waits for its database.
//! - `readiness`, and the overall service `""`: NOT_SERVING while the store cannot take a
//!   write, as are the Federation and Agency services, which cannot do their work without it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tatmx_proto::v1::agency_server::AgencyServer;
use tatmx_proto::v1::federation_server::FederationServer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::agency::AgencyService;
use crate::federation::FederationService;
use crate::store::{Store, StoreError};

/// The service name a liveness probe asks for.
pub const LIVENESS: &str = "liveness";

/// The service name a readiness probe asks for.
pub const READINESS: &str = "readiness";

/// How long one store check may take before the store counts as unreachable. It matches the
/// SQLite busy timeout: a check that waited this long for the lock means a real write would
/// have failed with "busy" by now.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the last store check succeeded, shared by the check and the metrics endpoint.
#[derive(Debug, Clone)]
pub struct StoreUp(Arc<AtomicBool>);

impl Default for StoreUp {
    /// Up: a node starts only once its store has opened and migrated.
    fn default() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }
}

impl StoreUp {
    /// Whether the last check succeeded.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, up: bool) {
        self.0.store(up, Ordering::Relaxed);
    }
}

/// The services whose status follows the store.
async fn set_ready(health: &HealthReporter, ready: bool) {
    let status = if ready {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for service in [
        "",
        READINESS,
        <FederationServer<FederationService> as NamedService>::NAME,
        <AgencyServer<AgencyService> as NamedService>::NAME,
    ] {
        health.set_service_status(service, status).await;
    }
}

/// Marks the probe services serving, at start-up.
pub async fn start_serving(health: &HealthReporter) {
    health
        .set_service_status(LIVENESS, ServingStatus::Serving)
        .await;
    set_ready(health, true).await;
}

/// Checks the store every `interval` until the node stops, and turns readiness off while the
/// check fails and on again once it succeeds. Each change is logged once.
pub async fn watch_store(
    store: Store,
    health: HealthReporter,
    up: StoreUp,
    interval: Duration,
    shutdown: CancellationToken,
) {
    // A check that outlived its timeout is awaited again rather than started anew, so a hung
    // store never collects a pile of checks.
    let mut running: Option<JoinHandle<Result<(), StoreError>>> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
        let mut check = running.take().unwrap_or_else(|| {
            let store = store.clone();
            tokio::spawn(async move { store.ping().await })
        });
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(CHECK_TIMEOUT, &mut check) => outcome,
            _ = shutdown.cancelled() => return,
        };
        let failure = match outcome {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(e.to_string()),
            Ok(Err(e)) => Some(format!("the check did not finish: {e}")),
            Err(_) => {
                running = Some(check);
                Some(format!(
                    "no answer within {}",
                    humantime::format_duration(CHECK_TIMEOUT)
                ))
            }
        };
        let ok = failure.is_none();
        if ok != up.get() {
            // The store's own message names the database, never case data.
            match &failure {
                Some(why) => tracing::warn!(error = %why, "the store is unreachable; not ready"),
                None => tracing::info!("the store answers again; ready"),
            }
            set_ready(&health, ok).await;
            up.set(ok);
        }
    }
}
