//! Purging received referrals past their retention period ([`crate::retention`]), the same way
//! a retraction does: crypto-shredding, then a tombstone.

use tokio_util::sync::CancellationToken;

use crate::retention::RetentionSettings;
use crate::store::Store;

/// Purges expired referrals every `sweep_interval` until the node stops.
pub async fn run(store: Store, settings: RetentionSettings, shutdown: CancellationToken) {
    loop {
        match store.purge_expired(store.clock().now()).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "retention purged expired referrals"),
            Err(e) => tracing::error!(error = %e, "retention purge failed; will try again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.sweep_interval) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
