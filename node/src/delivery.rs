//! Delivery: the durable outbox ([`crate::outbox`]) drained to each peer over one long-lived
//! mTLS channel.
//!
//! One worker per peer
//! sends a window of that peer's queue at once over the one channel: the oldest undelivered
//! message of each referral, so each referral's messages arrive in order (a status update never
//! overtakes its referral) while different referrals travel side by side. A message is marked
//! delivered only on the peer's acknowledgement, which the peer gives only once the message is
//! on its disk; a window's acknowledgements are committed together. Delivery is therefore at
//! least once; receivers are idempotent, so each message takes effect exactly once.
//!
//! A failed attempt is retried with exponential backoff and jitter. A refusal that retrying
//! cannot fix (the peer says the message itself is invalid), or a message still undelivered
//! past the maximum age, becomes a dead letter and the queue moves on, so one bad message cannot
//! block a peer forever; an admin sees it with `tatmx outbox --dead` and can retry it.
//!
//! Replicas of one node that share a PostgreSQL store each run these workers. A worker claims
//! the messages it is about to send with a lease ([`Store::claim`]); a message another replica
//! holds blocks its referral's later messages here too, so order holds across replicas, and a
//! replica that dies mid-delivery leaves its claim to run out, after which another sends the
//! message. Each replica also looks for unclaimed messages every few seconds, since the one that
//! queued a message may not be the one to send it.
//!
//! Delivery only schedules and records: the call itself, with its signature and the check
//! of the peer's receipt, is [`crate::federation::client`]'s, which also says whether a failed
//! attempt is worth retrying. A message counts as delivered only with a receipt that checks
//! out; the evidence of both sides is stored with it.

use std::sync::Arc;
use std::time::Duration;

use tatmx_certs::TeamIdentity;
use time::OffsetDateTime;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::DeliverySettings;
use crate::convert;
use crate::federation::client::{Delivered, DeliveryError, PeerClient};
use crate::federation::v2::{BATCH_BYTES, MAX_BATCH_MESSAGES};
use crate::federation::witness::Witness;
use crate::outbox::Outbox;
use crate::store::{DeliveryState, DueMessage, MessageProof, OutboxEntry, Store};
use crate::trust::Trust;

/// How often a replica on a shared store looks for messages nobody holds.
const UNCLAIMED_POLL: Duration = Duration::from_secs(2);

/// Starts the supervisor, which keeps one delivery worker per peer as peers come and go, and
/// returns the outbox handle that wakes them. Everything stops when `shutdown` is cancelled;
/// the returned task ends after the workers.
pub fn start(
    store: Store,
    trust: Trust,
    settings: DeliverySettings,
    witness: Witness,
    shutdown: CancellationToken,
) -> (Outbox, JoinHandle<()>) {
    let outbox = Outbox::new(shutdown.clone());
    let supervisor = tokio::spawn(supervise(
        outbox.clone(),
        store,
        trust,
        settings,
        witness,
        shutdown,
    ));
    (outbox, supervisor)
}

async fn supervise(
    outbox: Outbox,
    store: Store,
    trust: Trust,
    settings: DeliverySettings,
    witness: Witness,
    shutdown: CancellationToken,
) {
    let mut changes = trust.subscribe();
    let mut workers = Vec::new();
    if store.backend() == crate::store::Backend::Postgres {
        workers.push(tokio::spawn(poll_unclaimed(
            outbox.clone(),
            store.clone(),
            shutdown.clone(),
        )));
    }
    loop {
        // Workers are never stopped when a peer goes: they idle until it comes back, and
        // its undelivered messages stay visible in the outbox meanwhile.
        for entry in trust.state().peers() {
            let identity = entry.peer.identity.clone();
            let Some(notify) = outbox.register(&identity) else {
                continue;
            };
            let worker = PeerWorker {
                peer: identity,
                trust: trust.clone(),
                client: None,
                store: store.clone(),
                settings: settings.clone(),
                witness: witness.clone(),
                wake: notify,
                settled: outbox.settled(),
                shutdown: shutdown.clone(),
                replica: outbox.replica(),
            };
            workers.push(tokio::spawn(worker.run()));
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            _ = shutdown.cancelled() => break,
        }
    }
    for worker in workers {
        let _ = worker.await;
    }
}

/// Wakes the workers of peers with messages that no replica holds: queued by another
/// replica, or left by one that died. Runs only on a shared (PostgreSQL) store.
async fn poll_unclaimed(outbox: Outbox, store: Store, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(UNCLAIMED_POLL) => {}
            _ = shutdown.cancelled() => return,
        }
        match store.peers_with_unclaimed().await {
            Ok(peers) => outbox.notify_where(|peer| peers.iter().any(|p| p == peer)),
            Err(e) => tracing::warn!(error = %e, "looking for unclaimed messages failed"),
        }
    }
}

/// Drains one peer's queue.
struct PeerWorker {
    /// The peer this worker delivers to.
    peer: TeamIdentity,
    /// Whether, and where, the peer may be reached now.
    trust: Trust,
    /// Its Federation API over one pooled channel, made once there is something to send.
    client: Option<PeerClient>,
    /// Where the queue lives.
    store: Store,
    /// Backoff and timeouts.
    settings: DeliverySettings,
    /// Checks the audit checkpoints in the peer's receipts.
    witness: Witness,
    /// Signalled when a message is queued for this peer.
    wake: Arc<Notify>,
    /// Where settled messages are announced.
    settled: broadcast::Sender<OutboxEntry>,
    /// Signalled when the node stops.
    shutdown: CancellationToken,
    /// This replica's name on its claims.
    replica: Arc<str>,
}

/// What one pass over a peer's queue found.
#[derive(Default)]
struct Window {
    /// The oldest message of each referral, due now.
    due: Vec<DueMessage>,
    /// Messages past the maximum age, to become dead letters.
    expired: Vec<DueMessage>,
    /// How long until the soonest message waiting for a retry is due.
    next_due: Option<Duration>,
}

/// How many queued messages one pass looks at, and so the most sent to a peer at once. The
/// peer's server takes 128 streams per connection; this leaves room for other calls, and is
/// enough to keep a peer's store busy while its answers travel back.
const WINDOW: usize = 64;

/// The most of a failure's text kept in `last_error`.
const MAX_REASON: usize = 400;

impl PeerWorker {
    async fn run(mut self) {
        tracing::debug!(peer = %self.peer, "delivery worker started");
        let mut changes = self.trust.subscribe();
        while !self.shutdown.is_cancelled() {
            let endpoint = match self.trust.state().admit(&self.peer) {
                Ok(entry) => entry.peer.endpoint.clone(),
                Err(_) => {
                    // Removed or blocked: hold its messages until trust changes.
                    tokio::select! {
                        _ = changes.changed() => {}
                        _ = self.shutdown.cancelled() => {}
                    }
                    continue;
                }
            };
            let queued = match self.store.queued_for_peer(&self.peer, WINDOW).await {
                Ok(queued) => queued,
                Err(e) => {
                    tracing::error!(peer = %self.peer, error = %e, "reading the outbox failed");
                    self.pause(self.settings.initial_backoff).await;
                    continue;
                }
            };
            if queued.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = changes.changed() => {}
                    _ = self.shutdown.cancelled() => {}
                }
                continue;
            }
            // The channel is made only once there is something to send: most peers of a large
            // federation are quiet, and each channel holds a task and buffers.
            if self
                .client
                .as_ref()
                .is_none_or(|client| client.endpoint() != &endpoint)
            {
                self.client = Some(PeerClient::new(
                    &self.trust,
                    &self.peer,
                    &endpoint,
                    &self.settings,
                ));
            }
            let window = self.window(queued);
            for message in &window.expired {
                self.expire(message).await;
            }
            if !window.due.is_empty() {
                self.attempt(window.due).await;
            } else if window.expired.is_empty() {
                // Everything queued waits for a retry time; a new message may be due sooner.
                let wait = window.next_due.unwrap_or(self.settings.max_backoff);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.wake.notified() => {}
                    _ = changes.changed() => {}
                    _ = self.shutdown.cancelled() => {}
                }
            }
        }
        tracing::debug!(peer = %self.peer, "delivery worker stopped");
    }

    /// Picks what to do with the queued messages, oldest first. Only the oldest undelivered
    /// message of each referral may go, so a status update never overtakes its referral, nor a
    /// retraction the messages before it; messages of different referrals go side by side.
    fn window(&self, queued: Vec<DueMessage>) -> Window {
        let now = self.store.clock().now();
        let max_age =
            time::Duration::try_from(self.settings.max_age).unwrap_or(time::Duration::MAX);
        let mut heads = std::collections::HashSet::new();
        let mut window = Window::default();
        for message in queued {
            if !heads.insert(message.referral_id) {
                continue;
            }
            if message.leased_elsewhere(&self.replica, now) {
                // Another replica is sending it; look again when its claim would run out.
                if let Some((_, until)) = &message.lease {
                    let wait = Duration::try_from(*until - now).unwrap_or_default();
                    window.next_due = Some(window.next_due.map_or(wait, |w: Duration| w.min(wait)));
                }
                continue;
            }
            if now - message.age_from > max_age {
                window.expired.push(message);
            } else if message.next_attempt_at > now {
                let wait = Duration::try_from(message.next_attempt_at - now).unwrap_or_default();
                window.next_due = Some(window.next_due.map_or(wait, |w: Duration| w.min(wait)));
            } else {
                window.due.push(message);
            }
        }
        window
    }

    /// Makes a message that outlived the maximum age a dead letter, so the queue moves on.
    async fn expire(&self, message: &DueMessage) {
        let last = self
            .trust
            .health(&self.peer)
            .last_error
            .map(|(_, e)| e)
            .unwrap_or_else(|| "no attempt succeeded".into());
        let reason = format!(
            "undelivered for more than {}; last error: {last}",
            humantime::format_duration(self.settings.max_age)
        );
        let reason = truncate(&reason, 300);
        match self.store.mark_dead(message.seq, reason, false).await {
            Ok(true) => {
                tracing::error!(peer = %self.peer, message_id = %message.message_id, "message is now a dead letter");
                crate::metrics::get().dead_letters.inc();
                self.announce(message, DeliveryState::Dead, message.attempts, Some(reason));
            }
            // Another replica expired it first, or it settled meanwhile: counted once, there.
            Ok(false) => {}
            Err(e) => {
                tracing::error!(peer = %self.peer, error = %e, "recording a dead letter failed");
                self.pause(self.settings.initial_backoff).await;
            }
        }
    }

    /// Tells watchers that `message` settled; called only once its state is committed.
    fn announce(
        &self,
        message: &DueMessage,
        state: DeliveryState,
        attempts: u32,
        last_error: Option<&str>,
    ) {
        let now = self.store.clock().now();
        // No watcher is the normal case, and not an error.
        let _ = self.settled.send(OutboxEntry {
            seq: message.seq,
            message_id: message.message_id,
            kind: message.kind,
            referral_id: message.referral_id,
            peer: message.peer.clone(),
            state,
            attempts,
            created_at: message.created_at,
            next_attempt_at: now,
            delivered_at: (state == DeliveryState::Delivered).then_some(now),
            last_error: last_error.map(str::to_owned),
        });
    }

    /// Sleeps for `wait`, or less if the node stops.
    async fn pause(&self, wait: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = self.shutdown.cancelled() => {}
        }
    }

    /// Sends a window of messages side by side over the one channel, then records the
    /// outcomes: every acknowledgement in one transaction, each failure on its own.
    async fn attempt(&mut self, due: Vec<DueMessage>) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let due = match self.claim(due).await {
            Some(due) if !due.is_empty() => due,
            _ => return,
        };
        let shutdown = self.shutdown.clone();
        let results = tokio::select! {
            results = self.send(&client, &due) => results,
            // Stopping mid-attempt is safe: the messages stay pending and go out again.
            _ = shutdown.cancelled() => return,
        };

        let mut delivered = Vec::new();
        let mut failed = Vec::new();
        for (message, result) in due.iter().zip(results) {
            match result {
                Ok(Delivered {
                    duplicate,
                    proof,
                    checkpoint,
                }) => {
                    self.witness.observe(&self.peer, checkpoint);
                    delivered.push((message, duplicate, proof));
                }
                Err(failure) => failed.push((message, failure)),
            }
        }
        if !delivered.is_empty() {
            self.trust.record_contact(&self.peer, Ok(()));
            let proofs: Vec<(i64, &MessageProof)> = delivered
                .iter()
                .map(|(m, _, proof)| (m.seq, proof))
                .collect();
            match self.store.mark_all_delivered(&proofs).await {
                Ok(()) => {
                    for (message, duplicate, _) in &delivered {
                        tracing::info!(
                            peer = %self.peer,
                            message_id = %message.message_id,
                            kind = ?message.kind,
                            duplicate,
                            "delivered"
                        );
                        crate::metrics::get().delivered.inc();
                        crate::metrics::get().observe_delivery(
                            &message.peer,
                            message.kind.as_str(),
                            message.created_at,
                            self.store.clock().now(),
                        );
                        let attempts = message.attempts.saturating_add(1);
                        self.announce(message, DeliveryState::Delivered, attempts, None);
                    }
                }
                Err(e) => {
                    // The messages stay pending, so they are sent again and the receiver
                    // deduplicates.
                    tracing::error!(peer = %self.peer, error = %e, "recording deliveries failed");
                    self.pause(self.settings.initial_backoff).await;
                }
            }
        }
        let mut retries = Vec::new();
        for (message, failure) in failed {
            match failure {
                DeliveryError::Transient {
                    reason,
                    certificates,
                } => {
                    let reason = truncate(&reason, MAX_REASON).to_owned();
                    let next = self.retry_later(message, &reason, certificates);
                    retries.push((message.seq, reason, next));
                }
                DeliveryError::Permanent { reason } => {
                    self.give_up(message, truncate(&reason, MAX_REASON)).await
                }
            }
        }
        if !retries.is_empty() {
            let retries: Vec<(i64, &str, OffsetDateTime)> = retries
                .iter()
                .map(|(seq, reason, next)| (*seq, reason.as_str(), *next))
                .collect();
            if let Err(e) = self.store.mark_all_retry(&retries).await {
                // The messages stay pending and due, so they are simply tried again.
                tracing::error!(peer = %self.peer, error = %e, "recording failed attempts failed");
                self.pause(self.settings.initial_backoff).await;
            }
        }
    }

    /// Sends a window in the protocol version the peer speaks: as batches in version 2 (the
    /// window split only where it outgrows [`BATCH_BYTES`]), one call per message in version
    /// 1. Returns one result per message of `due`, in its order.
    async fn send(
        &self,
        client: &PeerClient,
        due: &[DueMessage],
    ) -> Vec<Result<Delivered, DeliveryError>> {
        let version = match client.version().await {
            Ok(version) => version,
            Err(e) => return due.iter().map(|_| Err(e.clone())).collect(),
        };
        if version >= 2 {
            let tree_head = self.witness.own_tree_head().await;
            let batches = batches(due);
            let sending = batches
                .iter()
                .map(|batch| client.deliver_batch(batch, tree_head.clone()));
            let answers = futures_util::future::join_all(sending).await;
            let mut results = Vec::with_capacity(due.len());
            for (batch, answer) in batches.iter().zip(answers) {
                match answer {
                    Ok(delivered) => {
                        self.witness
                            .observe_tree_head(&self.peer, delivered.tree_head);
                        results.extend(delivered.results);
                    }
                    Err(e) => results.extend(batch.iter().map(|_| Err(e.clone()))),
                }
            }
            return results;
        }
        // One checkpoint for the whole window: it changes every few minutes, not per message.
        let checkpoint = self
            .store
            .latest_checkpoint()
            .await
            .ok()
            .flatten()
            .map(|c| convert::checkpoint_to_proto(&c));
        let sending = due
            .iter()
            .map(|message| client.deliver(message, checkpoint.clone()));
        futures_util::future::join_all(sending).await
    }

    /// Keeps those of `due` that this replica could claim; the rest are another replica's to
    /// send. `None` if the store could not be asked (after a pause, so the loop does not spin).
    async fn claim(&self, due: Vec<DueMessage>) -> Option<Vec<DueMessage>> {
        let seqs: Vec<i64> = due.iter().map(|m| m.seq).collect();
        let until = self.store.clock().now()
            + time::Duration::try_from(self.settings.claim_lease()).unwrap_or(time::Duration::MAX);
        match self.store.claim(&seqs, &self.replica, until).await {
            Ok(claimed) => {
                let claimed: std::collections::HashSet<i64> = claimed.into_iter().collect();
                if claimed.len() < due.len() {
                    tracing::debug!(
                        peer = %self.peer,
                        claimed = claimed.len(),
                        held_elsewhere = due.len() - claimed.len(),
                        "another replica holds part of the window"
                    );
                }
                Some(
                    due.into_iter()
                        .filter(|m| claimed.contains(&m.seq))
                        .collect(),
                )
            }
            Err(e) => {
                tracing::error!(peer = %self.peer, error = %e, "claiming messages failed");
                self.pause(self.settings.initial_backoff).await;
                None
            }
        }
    }

    /// Notes an attempt that may succeed later, and returns when to try again. A failure that
    /// concerns `certificates` also asks for a directory refresh: the federation may have
    /// rotated its CA or re-issued the peer's certificate since.
    fn retry_later(
        &mut self,
        message: &DueMessage,
        reason: &str,
        certificates: bool,
    ) -> OffsetDateTime {
        self.trust.record_contact(&self.peer, Err(reason));
        // The next attempt dials afresh: a connection made before a certificate or CA
        // rotation may be refused for good, while a new handshake would succeed.
        self.client = None;
        if certificates {
            self.trust.request_refresh();
        }
        let delay = backoff(
            message.attempts.saturating_add(1),
            self.settings.initial_backoff,
            self.settings.max_backoff,
        );
        tracing::warn!(
            peer = %self.peer,
            message_id = %message.message_id,
            attempts = message.attempts + 1,
            retry_in_ms = delay.as_millis() as u64,
            reason = %reason,
            "delivery failed; will retry"
        );
        self.store.clock().now() + delay
    }

    /// Makes a message the peer refused for good a dead letter.
    async fn give_up(&self, message: &DueMessage, reason: &str) {
        self.trust.record_contact(&self.peer, Err(reason));
        match self.store.mark_dead(message.seq, reason, true).await {
            Ok(true) => {
                tracing::error!(
                    peer = %self.peer,
                    message_id = %message.message_id,
                    reason = %reason,
                    "peer refused the message; it is a dead letter until an admin retries it"
                );
                crate::metrics::get().dead_letters.inc();
                let attempts = message.attempts.saturating_add(1);
                self.announce(message, DeliveryState::Dead, attempts, Some(reason));
            }
            // Settled meanwhile (a purge cancelled it): nothing to count or announce.
            Ok(false) => {}
            Err(e) => {
                // The message stays pending, so it is sent again and the receiver deduplicates.
                tracing::error!(peer = %self.peer, error = %e, "recording a delivery result failed");
                self.pause(self.settings.initial_backoff).await;
            }
        }
    }
}

/// Splits a window into batches in its order: each at most [`BATCH_BYTES`] of payload, except
/// a message larger than that, which goes alone.
fn batches(due: &[DueMessage]) -> Vec<Vec<&DueMessage>> {
    let mut batches: Vec<Vec<&DueMessage>> = Vec::new();
    let mut bytes = 0;
    for message in due {
        let size = message.body.len();
        match batches.last_mut() {
            Some(batch) if bytes + size <= BATCH_BYTES && batch.len() < MAX_BATCH_MESSAGES => {
                batch.push(message);
                bytes += size;
            }
            _ => {
                batches.push(vec![message]);
                bytes = size;
            }
        }
    }
    batches
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// The wait before attempt `attempt + 1`: exponential from `initial`, capped at `max`, with
/// "equal jitter" (a random point in the upper half), so peers recovering together do not retry
/// in lockstep while the wait still grows with every failure.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let ceiling = initial.saturating_mul(1u32 << exponent).min(max);
    let half = ceiling / 2;
    half + half.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_caps_within_jitter_bounds() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for attempt in 1..40 {
            let ceiling = (initial * 2u32.saturating_pow((attempt - 1).min(30))).min(max);
            for _ in 0..50 {
                let d = backoff(attempt, initial, max);
                assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
            }
        }
        assert!(backoff(1, initial, max) <= initial);
        assert!(backoff(30, initial, max) >= max / 2);
    }
}
