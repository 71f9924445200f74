//! The outbox's SQL: queuing a message in the caller's transaction, claiming messages for
//! delivery, recording acknowledgements, retries and dead letters, and listing them for staff.

use sqlx::Row;
use tatmx_certs::TeamIdentity;
use time::OffsetDateTime;
use uuid::Uuid;

use super::codec::{due_message, ms, outbox_entry};
use super::notifications;
use super::{
    Backend, MessageKind, MessageProof, Sealing, Store, StoreError, Tx, proofs, referrals,
};
use crate::notification::Event;
use crate::vault;

/// Where an outbox entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for (another) attempt.
    Pending,
    /// The peer acknowledged it.
    Delivered,
    /// Undelivered past the maximum age, or refused by the peer for good; waits for an admin.
    Dead,
    /// Never to be sent: the data it carried was retracted or purged first.
    Cancelled,
}

impl DeliveryState {
    pub(super) fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "dead" => Some(Self::Dead),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// One outbox row, as listed to staff.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// Position in the outbox; delivery per peer follows it.
    pub seq: i64,
    /// The message id (the referral id for a referral).
    pub message_id: Uuid,
    /// What the message is.
    pub kind: MessageKind,
    /// The referral it belongs to.
    pub referral_id: Uuid,
    /// The peer it goes to, as an identity URI.
    pub peer: String,
    /// Delivery state.
    pub state: DeliveryState,
    /// Attempts so far.
    pub attempts: u32,
    /// When it was queued.
    pub created_at: OffsetDateTime,
    /// When the next attempt is due.
    pub next_attempt_at: OffsetDateTime,
    /// When the peer acknowledged it.
    pub delivered_at: Option<OffsetDateTime>,
    /// Why the last attempt failed; never message content.
    pub last_error: Option<String>,
}

/// A message the delivery worker is about to send.
#[derive(Debug, Clone)]
pub struct DueMessage {
    /// Its outbox row.
    pub seq: i64,
    /// Its message id.
    pub message_id: Uuid,
    /// What it is.
    pub kind: MessageKind,
    /// The referral it belongs to.
    pub referral_id: Uuid,
    /// The peer it goes to, as an identity URI.
    pub peer: String,
    /// When it was queued.
    pub created_at: OffsetDateTime,
    /// The message's canonical bytes ([`crate::wire`]).
    pub body: Vec<u8>,
    /// Attempts so far.
    pub attempts: u32,
    /// When it is due.
    pub next_attempt_at: OffsetDateTime,
    /// When it was queued, or last retried by an admin: its maximum age counts from here.
    pub age_from: OffsetDateTime,
    /// The replica that claimed it for delivery, and until when ([`Store::claim`]).
    pub lease: Option<(String, OffsetDateTime)>,
}

impl DueMessage {
    /// Whether a replica other than `me` holds it at `now`: it is being delivered there.
    pub fn leased_elsewhere(&self, me: &str, now: OffsetDateTime) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|(owner, until)| owner != me && *until >= now)
    }
}

impl Store {
    /// The outbox, newest first.
    pub async fn outbox(&self, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, message_id, kind, referral_id, peer, state, attempts, created_at,
                    next_attempt_at, delivered_at, last_error
             FROM outbox ORDER BY seq DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outbox_entry).collect()
    }

    /// The dead letters, newest first: the messages waiting for an admin. They are selected
    /// before the limit applies, so a dead letter shows however many messages came after it.
    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, message_id, kind, referral_id, peer, state, attempts, created_at,
                    next_attempt_at, delivered_at, last_error
             FROM outbox WHERE state = 'dead' ORDER BY seq DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outbox_entry).collect()
    }

    /// One outbox entry by message id.
    pub async fn outbox_entry(&self, message_id: Uuid) -> Result<Option<OutboxEntry>, StoreError> {
        let row = sqlx::query(
            "SELECT seq, message_id, kind, referral_id, peer, state, attempts, created_at,
                    next_attempt_at, delivered_at, last_error
             FROM outbox WHERE message_id = $1",
        )
        .bind(message_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(outbox_entry).transpose()
    }

    /// The oldest undelivered message for `peer`, due or not.
    pub async fn next_for_peer(
        &self,
        peer: &TeamIdentity,
    ) -> Result<Option<DueMessage>, StoreError> {
        Ok(self.queued_for_peer(peer, 1).await?.into_iter().next())
    }

    /// Up to `limit` of `peer`'s undelivered messages, due or not, oldest first: the window the
    /// delivery worker picks from, keeping each referral's messages in this order.
    pub async fn queued_for_peer(
        &self,
        peer: &TeamIdentity,
        limit: usize,
    ) -> Result<Vec<DueMessage>, StoreError> {
        // A sealed message whose key was purged is cancelled in the same transaction as the
        // purge; the join's condition only keeps a race from ever sending it.
        let rows = sqlx::query(
            "SELECT o.seq, o.message_id, o.kind, o.referral_id, o.peer, o.body, o.attempts,
                    o.created_at, o.next_attempt_at, COALESCE(o.retried_at, o.created_at) AS age_from,
                    o.lease_owner, o.lease_until, k.key AS sealing_key
             FROM outbox o LEFT JOIN data_keys k ON k.id = o.data_key
             WHERE o.peer = $1 AND o.state = 'pending' AND (o.data_key IS NULL OR k.key IS NOT NULL)
             ORDER BY o.seq LIMIT $2",
        )
        .bind(peer.uri())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(due_message).collect()
    }

    /// Claims those of `candidates` (outbox seqs) that are still pending and not leased to
    /// another replica, for replica `owner` until `until`, and returns the seqs claimed: only
    /// those may be sent. A replica that dies holding a claim frees it when `until` passes.
    ///
    /// On PostgreSQL this is one statement of its own, outside the group commit and its
    /// advisory lock, and it locks the rows `FOR UPDATE SKIP LOCKED`: two replicas claiming at
    /// once split the rows between them and neither waits. A SQLite store serves one process,
    /// so everything it is asked for is its own already.
    pub async fn claim(
        &self,
        candidates: &[i64],
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<Vec<i64>, StoreError> {
        if self.backend == Backend::Sqlite || candidates.is_empty() {
            return Ok(candidates.to_vec());
        }
        let now = ms(self.clock.now());
        // The Any driver binds no arrays, so the candidates are numbered placeholders.
        let list = (0..candidates.len())
            .map(|i| format!("${}", i + 4))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE outbox SET lease_owner = $1, lease_until = $2
             WHERE seq IN (SELECT seq FROM outbox
                           WHERE seq IN ({list}) AND state = 'pending'
                             AND (lease_until IS NULL OR lease_until < $3 OR lease_owner = $1)
                           FOR UPDATE SKIP LOCKED)
             RETURNING seq"
        );
        let mut query = sqlx::query_scalar::<_, i64>(&sql)
            .bind(owner)
            .bind(ms(until))
            .bind(now);
        for seq in candidates {
            query = query.bind(*seq);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// The peers with messages due now that no replica holds: what a replica looks for when
    /// it did not queue the messages itself, or their claimant died.
    pub async fn peers_with_unclaimed(&self) -> Result<Vec<String>, StoreError> {
        let now = ms(self.clock.now());
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT peer FROM outbox
             WHERE state = 'pending' AND next_attempt_at <= $1
               AND (lease_until IS NULL OR lease_until < $1)",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records the peer's acknowledgement, with the signed receipt that proves it.
    pub async fn mark_delivered(&self, seq: i64, proof: &MessageProof) -> Result<(), StoreError> {
        self.mark_all_delivered(&[(seq, proof)]).await
    }

    /// Records several acknowledgements in one transaction: one commit, and one fsync, for a
    /// whole window of deliveries. Each outbox row is named by its `seq`.
    pub async fn mark_all_delivered(
        &self,
        delivered: &[(i64, &MessageProof)],
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let now = ms(self.clock.now());
        for (seq, proof) in delivered {
            sqlx::query(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, delivered_at = $1,
                        last_error = NULL, lease_owner = NULL, lease_until = NULL
                 WHERE seq = $2 AND state = 'pending'",
            )
            .bind(now)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
            proofs::put(&mut tx, proof, "sent").await?;
            // A version 2 receipt for a referral is also its `received` status.
            if let (Some(_), Some(received_at)) = (&proof.batch, proof.received_at)
                && proof.kind == MessageKind::Referral.as_str()
                && let Ok(recipient) = TeamIdentity::parse_uri(&proof.peer)
            {
                referrals::received_by_receipt(&mut tx, proof.message_id, &recipient, received_at)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records failed attempts and when to try each again, in one transaction: a window that
    /// failed together (its peer down, say) costs one commit. Each entry is an outbox `seq`,
    /// why the attempt failed, and when the next is due.
    pub async fn mark_all_retry(
        &self,
        retries: &[(i64, &str, OffsetDateTime)],
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for (seq, error, next_attempt_at) in retries {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2,
                        lease_owner = NULL, lease_until = NULL
                 WHERE seq = $3 AND state = 'pending'",
            )
            .bind(error)
            .bind(ms(*next_attempt_at))
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Makes a message a dead letter: refused for good by its peer (`attempted`), or
    /// undelivered past the maximum age. Returns whether it was still pending: false when it
    /// settled meanwhile (another replica expired or delivered it, or a purge cancelled it).
    pub async fn mark_dead(
        &self,
        seq: i64,
        error: &str,
        attempted: bool,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut tx = self.write().await?;
        let dead = sqlx::query(
            "UPDATE outbox SET state = 'dead', attempts = attempts + $1, last_error = $2,
                    lease_owner = NULL, lease_until = NULL
             WHERE seq = $3 AND state = 'pending'
             RETURNING message_id, referral_id, peer",
        )
        .bind(i64::from(attempted))
        .bind(error)
        .bind(seq)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(dead) = dead else {
            return Ok(false);
        };
        // Staff hear of it: a message that will not arrive is theirs to act on.
        let id = |column: &str| -> Result<Uuid, StoreError> {
            let text: String = dead.try_get(column)?;
            Uuid::parse_str(&text).map_err(|_| StoreError::Corrupt {
                table: "outbox",
                id: seq.to_string(),
                problem: column.into(),
            })
        };
        let (message_id, referral_id) = (id("message_id")?, id("referral_id")?);
        let peer: String = dead.try_get("peer")?;
        notifications::record(
            &mut tx,
            Event::DeliveryFailed,
            referral_id,
            &peer,
            message_id,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sends a dead letter again: pending from now, its maximum age counted afresh. Returns
    /// the peer it goes to, or `None` if there is no such dead letter.
    pub async fn retry_dead(&self, message_id: Uuid) -> Result<Option<String>, StoreError> {
        let now = ms(self.clock.now());
        let peer: Option<String> = sqlx::query_scalar(
            "UPDATE outbox SET state = 'pending', next_attempt_at = $1, retried_at = $2
             WHERE message_id = $3 AND state = 'dead' RETURNING peer",
        )
        .bind(now)
        .bind(now)
        .bind(message_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(peer)
    }
}

#[allow(clippy::too_many_arguments)] // one column each; a struct would only rename them
pub(super) async fn enqueue(
    tx: &mut Tx,
    message_id: Uuid,
    kind: MessageKind,
    referral_id: Uuid,
    peer: &TeamIdentity,
    body: &[u8],
    now: OffsetDateTime,
    sealing: Option<&Sealing>,
) -> Result<(), StoreError> {
    let stored_body = match sealing {
        Some(sealing) => vault::seal(&sealing.key, &format!("outbox/{message_id}"), body)?,
        None => body.to_vec(),
    };
    sqlx::query(
        "INSERT INTO outbox (message_id, kind, referral_id, peer, body, state, created_at,
                             next_attempt_at, data_key)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8)",
    )
    .bind(message_id.to_string())
    .bind(kind.as_str())
    .bind(referral_id.to_string())
    .bind(peer.uri())
    .bind(stored_body)
    .bind(ms(now))
    .bind(ms(now))
    .bind(sealing.map(|s| s.key_id.as_str()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
