//! Signing the audit log's head at intervals, as a checkpoint of its hash chain (protocol
//! version 1) and a tree head of its Merkle tree (version 2), so that peers can witness it and
//! a rewrite is caught, and removing entries older than the audit retention period.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::AuditSettings;
use crate::store::Store;
use crate::trust::Trust;

/// Signs a checkpoint and a tree head every `checkpoint_interval` when anything new was
/// written, and once more when the node stops; removes entries past the audit retention period
/// once an hour (or once per retention period, if that is shorter).
pub async fn run(store: Store, trust: Trust, settings: AuditSettings, shutdown: CancellationToken) {
    // On tokio's clock, as the sleeps are, so a paused test can step through sweeps.
    let mut last_retention: Option<tokio::time::Instant> = None;
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(settings.checkpoint_interval) => false,
            _ = shutdown.cancelled() => true,
        };
        let sweep_every = settings.retention.min(Duration::from_secs(3600));
        if !stopping && last_retention.is_none_or(|t| t.elapsed() >= sweep_every) {
            last_retention = Some(tokio::time::Instant::now());
            let period =
                time::Duration::try_from(settings.retention).unwrap_or(time::Duration::MAX);
            let cutoff = store.clock().now().saturating_sub(period);
            match store.purge_audit_before(cutoff).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "audit entries past retention removed"),
                Err(e) => tracing::error!(error = %e, "audit retention failed; will try again"),
            }
        }
        let state = trust.state();
        let credentials = state.identities.primary();
        match store
            .checkpoint_audit(credentials.signer(), &credentials.identity().uri())
            .await
        {
            Ok(signed) => {
                if let Some(seq) = signed.checkpoint {
                    tracing::debug!(seq, "audit checkpoint signed");
                }
                if let Some(tree_size) = signed.tree_head {
                    tracing::debug!(tree_size, "audit tree head signed");
                }
            }
            Err(e) => tracing::error!(error = %e, "signing an audit checkpoint failed"),
        }
        // Another replica of a shared store may have signed a newer head than this one holds.
        if let Err(e) = store.refresh_tree_head().await {
            tracing::warn!(error = %e, "reading the newest audit tree head failed");
        }
        if stopping {
            return;
        }
    }
}
