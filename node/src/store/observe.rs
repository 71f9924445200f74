//! The store's answers for operators: how deep each peer's queue is, how far the audit log has
//! run past its last signed checkpoint, and whether the database takes writes at all. The
//! metrics endpoint and the readiness check ask these; nothing here changes data.
//!
//! The SQL is the portable kind the rest of the store uses (`$1` placeholders, no
//! engine-specific functions), and rows are read through [`sqlx::Row`] only, so it runs the
//! same on SQLite and PostgreSQL.

use sqlx::Row;

use super::{Store, StoreError, from_ms};

pub use crate::metrics::{AuditLag, PeerDepth};

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Store {
    /// Every peer with pending messages or dead letters: how many of each, and when the oldest
    /// pending one was queued. A peer whose messages are all delivered is not listed.
    pub async fn outbox_depths(&self) -> Result<Vec<PeerDepth>, StoreError> {
        // One pass over the unsettled rows; settled ones (delivered, cancelled) never match.
        // With no index on state this walks the whole `outbox_due` index (about 150 ms per
        // scrape at a million rows); a partial index `ON outbox (peer, state) WHERE state IN
        // ('pending', 'dead')` would serve this exact condition in a few milliseconds.
        let rows = sqlx::query(
            "SELECT peer,
                    SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END) AS pending,
                    MIN(CASE WHEN state = 'pending' THEN created_at END) AS oldest,
                    SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END) AS dead
             FROM outbox
             WHERE state IN ('pending', 'dead')
             GROUP BY peer
             ORDER BY peer",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PeerDepth {
                    peer: row.try_get("peer")?,
                    pending: count(row.try_get("pending")?),
                    oldest: row.try_get::<Option<i64>, _>("oldest")?.map(from_ms),
                    dead: count(row.try_get("dead")?),
                })
            })
            .collect()
    }

    /// How far the audit log has run past its newest signed checkpoint.
    pub async fn audit_lag(&self) -> Result<AuditLag, StoreError> {
        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_log")
            .fetch_one(&self.pool)
            .await?;
        let checkpoint =
            sqlx::query("SELECT seq, at FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        let (covered, checkpoint_at) = match &checkpoint {
            Some(row) => (
                row.try_get::<i64, _>("seq")?,
                Some(from_ms(row.try_get("at")?)),
            ),
            // Before the first checkpoint, everything after the retention anchor (the entries
            // audit retention removed) is uncovered.
            None => (
                sqlx::query_scalar::<_, i64>("SELECT seq FROM audit_anchor WHERE id = 1")
                    .fetch_optional(&self.pool)
                    .await?
                    .unwrap_or(0),
                None,
            ),
        };
        let head = head.unwrap_or(covered);
        let oldest: Option<i64> = if head > covered {
            sqlx::query_scalar("SELECT at FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 1")
                .bind(covered)
                .fetch_optional(&self.pool)
                .await?
        } else {
            None
        };
        Ok(AuditLag {
            entries: count(head.saturating_sub(covered)),
            oldest: oldest.map(from_ms),
            checkpoint_at,
        })
    }

    /// Checks that the store would take a write now, without writing anything.
    ///
    /// `SELECT 1` alone proves little: on SQLite it never touches the file, so it succeeds
    /// while another process holds the database locked and every real write fails. So the
    /// check takes a turn in the group commit, as every write does: that begins the write
    /// transaction (on SQLite, takes the file's write lock, waiting at most the busy timeout;
    /// on PostgreSQL, needs a live connection to the server), runs `SELECT 1` in it, and
    /// commits the empty transaction, which costs no fsync. Queuing like any writer also keeps
    /// the check from racing the node's own writes for the lock.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("SELECT 1").execute(&mut *tx).await?;
        tx.commit().await
    }
}
