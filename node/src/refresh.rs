//! Keeping the federation directory fresh without depending on any one place to fetch it.
//!
//! Every `refresh_interval`, the node asks the peers named in `directory.refresh_from` for
//! their copy of its federation's directory (`Federation.GetDirectory`) and imports it if it is
//! newer, and at once when a peer's certificate fails to verify (the federation may have rotated
//! its CA or enrolled the peer since). Each copy is verified against the CA's signature, so it
//! does not matter which peer it came from. If none answers, the node keeps working from its last good directory, and warns
//! once it is older than `directory.max_age`.

use tatmx_certs::TeamIdentity;
use tokio_util::sync::CancellationToken;

use crate::config::{DeliverySettings, DirectorySettings};
use crate::federation::client::PeerClient;
use crate::trust::Trust;

/// Runs until `shutdown`.
pub async fn run(
    trust: Trust,
    settings: DirectorySettings,
    delivery: DeliverySettings,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(settings.refresh_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = trust.refresh_requested() => {}
            _ = shutdown.cancelled() => return,
        }
        refresh_once(&trust, &settings, &delivery).await;
        let state = trust.state();
        for warning in crate::admin::warnings(&state) {
            tracing::warn!("{warning}");
        }
    }
}

/// Asks each configured peer in turn until one offers a directory that imports.
pub async fn refresh_once(
    trust: &Trust,
    settings: &DirectorySettings,
    delivery: &DeliverySettings,
) {
    let state = trust.state();
    let federation = state.local.identity.federation.clone();
    for team in &settings.refresh_from {
        let identity = TeamIdentity::new(federation.clone(), team.clone());
        let Ok(client) = PeerClient::admitted(trust, &identity, delivery) else {
            tracing::debug!(peer = %identity, "directory source is not an admitted peer; skipped");
            continue;
        };
        let document = match client.directory(&federation).await {
            Ok(document) => document,
            Err(status) => {
                tracing::warn!(peer = %identity, code = ?status.code(), "directory refresh failed; keeping the last good directory");
                continue;
            }
        };
        if document.is_empty() {
            continue;
        }
        let actor = crate::actor::Actor::node_job(format!("directory refresh from {identity}"));
        match trust.import_directory(&document, &actor).await {
            Ok((record, true)) => {
                tracing::debug!(peer = %identity, sequence = record.sequence, "directory is current");
                return;
            }
            Ok((record, false)) => {
                tracing::info!(peer = %identity, sequence = record.sequence, "newer directory fetched from a peer");
                return;
            }
            Err(e) => {
                tracing::warn!(peer = %identity, error = %e, "directory offered by a peer was refused");
            }
        }
    }
}
