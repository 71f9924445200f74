//! The outbox as staff see it: what is queued, delivered or dead, putting a dead letter back
//! in the queue, and following deliveries as they settle.

use tokio::sync::broadcast;
use uuid::Uuid;

use super::{App, AppError};
use crate::store::OutboxEntry;

impl App {
    /// The newest outbox messages, at most `limit`; with `dead_only`, only dead letters.
    pub async fn outbox(&self, limit: u32, dead_only: bool) -> Result<Vec<OutboxEntry>, AppError> {
        let limit = super::list_limit(limit);
        // Selected in SQL: a dead letter older than the newest `limit` messages still shows.
        Ok(if dead_only {
            self.store.dead_letters(limit).await?
        } else {
            self.store.outbox(limit).await?
        })
    }

    /// Queues a dead letter again, and wakes delivery to its peer.
    pub async fn retry_dead_letter(&self, id: Uuid) -> Result<OutboxEntry, AppError> {
        let peer = self
            .store
            .retry_dead(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no dead letter {id} in the outbox")))?;
        if let Ok(peer) = tatmx_certs::TeamIdentity::parse_uri(&peer) {
            self.outbox.notify(&peer);
        }
        tracing::info!(message_id = %id, "dead letter queued again by staff");
        self.store
            .outbox_entry(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no message {id} in the outbox")))
    }

    /// Every outbox message as it settles (delivered, dead, cancelled) from now on, and a
    /// future that completes when the node stops, so a watcher knows to end.
    pub fn watch_deliveries(
        &self,
    ) -> (
        broadcast::Receiver<OutboxEntry>,
        tokio_util::sync::WaitForCancellationFutureOwned,
    ) {
        (self.outbox.watch(), self.outbox.stopping())
    }
}
