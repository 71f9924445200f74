//! The outbox as the rest of the node sees it: a durable queue of outbound messages in the
//! store, and this handle, which wakes a peer's delivery worker when the queue has something new
//! for it and tells watchers when a message has settled.
//!
//! Every outbound message is first committed to the outbox in the same transaction as the
//! record it belongs to, so a crash can delay a message but never lose it; the application
//! layer and the Federation server then ring this handle. [`crate::delivery`] drains the queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tatmx_certs::TeamIdentity;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::store::OutboxEntry;

/// How many settled messages a slow watcher may fall behind before it is cut off.
const WATCH_BACKLOG: usize = 8192;

/// Handle to the running delivery workers: wakes a peer's worker when it has new work, and
/// tells watchers what has settled.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// One wake-up signal per peer. `Notify` keeps a permit when nobody waits, so a message
    /// queued while its worker is busy is never missed.
    wake: Arc<Mutex<HashMap<TeamIdentity, Arc<Notify>>>>,
    /// Each message once it is settled (delivered or dead), after its new state is committed.
    /// Sending never blocks delivery: with no watcher the event is dropped, and a watcher that
    /// lags loses events and is told so.
    settled: broadcast::Sender<OutboxEntry>,
    /// Cancelled when the node stops, so that watchers end rather than hold the node open.
    stopping: CancellationToken,
    /// This process's name on its outbox claims: unique per start, so a replica restarted
    /// after a crash does not mistake its old claims for live ones.
    replica: Arc<str>,
}

impl Outbox {
    /// A handle with no worker yet; [`crate::delivery::start`] makes one and its workers.
    pub(crate) fn new(shutdown: CancellationToken) -> Self {
        Self {
            wake: Arc::default(),
            settled: broadcast::channel(WATCH_BACKLOG).0,
            stopping: shutdown,
            replica: uuid::Uuid::now_v7().to_string().into(),
        }
    }

    /// Every message that settles from now on.
    pub fn watch(&self) -> broadcast::Receiver<OutboxEntry> {
        self.settled.subscribe()
    }

    /// Resolves when the node stops.
    pub fn stopping(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.stopping.clone().cancelled_owned()
    }

    /// Tells `peer`'s worker that its queue has a new message.
    pub fn notify(&self, peer: &TeamIdentity) {
        if let Some(notify) = self.wake.lock().ok().and_then(|w| w.get(peer).cloned()) {
            notify.notify_one();
        }
    }

    /// The wake-up signal of a new worker for `peer`; `None` when `peer` has one already (or
    /// the map is poisoned, which only a panicking worker could do).
    pub(crate) fn register(&self, peer: &TeamIdentity) -> Option<Arc<Notify>> {
        let mut wake = self.wake.lock().ok()?;
        if wake.contains_key(peer) {
            return None;
        }
        let notify = Arc::new(Notify::new());
        wake.insert(peer.clone(), notify.clone());
        Some(notify)
    }

    /// Wakes the workers of every peer `wanted` names (identity URIs).
    pub(crate) fn notify_where(&self, wanted: impl Fn(&str) -> bool) {
        let Ok(wake) = self.wake.lock() else { return };
        for (peer, notify) in wake.iter() {
            if wanted(&peer.uri()) {
                notify.notify_one();
            }
        }
    }

    /// Where settled messages are announced.
    pub(crate) fn settled(&self) -> broadcast::Sender<OutboxEntry> {
        self.settled.clone()
    }

    /// This replica's name on its claims.
    pub(crate) fn replica(&self) -> Arc<str> {
        self.replica.clone()
    }
}
