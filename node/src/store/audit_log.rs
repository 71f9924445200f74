//! The audit log's SQL: appending in the caller's transaction (with the entry's leaf in the
//! Merkle tree, `audit_tree`), checkpoints and tree heads, verification in pages, queries,
//! retention, message proofs and witnessed checkpoints.

use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Store, StoreError, Tx, audit_tree, from_ms, ms};
use crate::audit::{
    self, AuditEntry, AuditRecord, ChainVerifier, Checkpoint, SignedBy, Verification,
};
use crate::signing::NodeSigner;

/// How many entries verification reads at a time.
const PAGE: i64 = 5000;

/// Off only in the accountability benchmark, to measure the cost of what it turns off.
#[cfg(feature = "bench-internals")]
static ACCOUNTABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Stops this process from writing audit entries and message proofs. Exists only with the
/// `bench-internals` feature, for the benchmark that compares with and without them.
#[cfg(feature = "bench-internals")]
pub fn disable_accountability_for_benchmarks() {
    ACCOUNTABLE.store(false, std::sync::atomic::Ordering::SeqCst);
}

pub(super) fn accountable() -> bool {
    #[cfg(feature = "bench-internals")]
    {
        ACCOUNTABLE.load(std::sync::atomic::Ordering::SeqCst)
    }
    #[cfg(not(feature = "bench-internals"))]
    {
        true
    }
}

/// Which audit entries to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only entries written at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only entries written before this time.
    pub until: Option<OffsetDateTime>,
    /// Only entries of this kind, by its stored name.
    pub kind: Option<&'static str>,
    /// Only entries about this team, as an identity URI.
    pub peer: Option<String>,
    /// Only entries by one of these actors, as the log records them; empty for anyone.
    pub actors: Vec<String>,
    /// Skip this many of the newest that match: the page's start.
    pub offset: u32,
    /// At most this many.
    pub limit: u32,
}

/// What [`Store::checkpoint_audit`] signed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignedHeads {
    /// The seq a new checkpoint covers.
    pub checkpoint: Option<u64>,
    /// The size of a new tree head.
    pub tree_head: Option<u64>,
}

/// A peer's history contradicting a checkpoint (or a tree head) this node held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessConflict {
    /// The peer, as an identity URI.
    pub peer: String,
    /// The checkpoint held.
    pub held_seq: u64,
    /// The checkpoint shown.
    pub shown_seq: u64,
    /// What did not match.
    pub problem: String,
    /// When it was found.
    pub detected_at: OffsetDateTime,
}

pub(super) fn seq_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(super) fn seq_param(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The seq and chain hash of the last entry, or of the retention anchor, or genesis.
async fn head(tx: &mut Tx) -> Result<(u64, Vec<u8>), StoreError> {
    if let Some(row) = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await?
    {
        return Ok((seq_of(row.try_get("seq")?), row.try_get("hash")?));
    }
    if let Some(row) = sqlx::query("SELECT seq, hash FROM audit_anchor WHERE id = 1")
        .fetch_optional(&mut **tx)
        .await?
    {
        return Ok((seq_of(row.try_get("seq")?), row.try_get("hash")?));
    }
    Ok((0, audit::GENESIS.to_vec()))
}

/// Appends `record` to the chain, and its leaf to the Merkle tree, inside the caller's
/// transaction, so the entry exists exactly when the action it records does. Returns its seq.
pub(crate) async fn append(tx: &mut Tx, record: &AuditRecord) -> Result<u64, StoreError> {
    if !accountable() {
        return Ok(0);
    }
    let (last, prev_hash) = head(tx).await?;
    let seq = last + 1;
    let at_ms = ms(tx.now());
    let referral_id = record.referral_id.map(|r| r.to_string());
    let detail = record.detail.to_string();
    let leaf = audit::leaf_hash(
        seq,
        at_ms,
        record.kind.as_str(),
        &record.actor,
        record.peer.as_deref(),
        referral_id.as_deref(),
        record.subject.as_deref(),
        &detail,
    );
    let hash = audit::chain_hash(&prev_hash, &leaf);
    sqlx::query(
        "INSERT INTO audit_log (seq, at, kind, actor, peer, referral_id, subject, detail,
                                prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(seq_param(seq))
    .bind(at_ms)
    .bind(record.kind.as_str())
    .bind(&record.actor)
    .bind(&record.peer)
    .bind(referral_id)
    .bind(&record.subject)
    .bind(detail)
    .bind(prev_hash)
    .bind(hash.as_slice())
    .execute(&mut **tx)
    .await?;
    audit_tree::append_leaf(tx, seq - 1, crate::merkle::leaf_hash(&leaf)).await?;
    Ok(seq)
}

/// Whether a status change's detail says it was sent with case data (categories). Read here
/// rather than in SQL, whose JSON functions differ between SQLite and PostgreSQL.
fn carried_case_data(detail: &str) -> bool {
    let Ok(detail) = serde_json::from_str::<serde_json::Value>(detail) else {
        return false;
    };
    detail.get("direction").and_then(|d| d.as_str()) == Some("sent")
        && detail
            .get("categories")
            .and_then(|c| c.as_array())
            .is_some_and(|c| !c.is_empty())
}

pub(super) fn entry_row(row: &AnyRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        seq: seq_of(row.try_get("seq")?),
        at_ms: row.try_get("at")?,
        kind: row.try_get("kind")?,
        actor: row.try_get("actor")?,
        peer: row.try_get("peer")?,
        referral_id: row.try_get("referral_id")?,
        subject: row.try_get("subject")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

fn checkpoint_row(row: &AnyRow) -> Result<Checkpoint, StoreError> {
    Ok(Checkpoint {
        team: row.try_get("signer")?,
        seq: seq_of(row.try_get("seq")?),
        head_hash: row.try_get("head_hash")?,
        at_ms: row.try_get("at")?,
        scheme: u32::try_from(row.try_get::<i64, _>("scheme")?).unwrap_or(0),
        signature: row.try_get("signature")?,
        certificate: row.try_get("certificate")?,
    })
}

pub(super) const ENTRY_COLUMNS: &str = "SELECT seq, at, kind, actor, peer, referral_id, subject, detail, prev_hash, hash FROM audit_log";
const CHECKPOINT_COLUMNS: &str =
    "SELECT seq, head_hash, at, signer, scheme, signature, certificate FROM audit_checkpoints";

impl Store {
    /// Appends one entry in a transaction of its own, for events that change nothing else:
    /// a read, a refused call.
    pub async fn record_audit(&self, record: &AuditRecord) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let seq = append(&mut tx, record).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Signs a checkpoint of the current head, and a tree head over the same entries, each
    /// unless the newest one already covers them, in one transaction. Says what was signed.
    pub async fn checkpoint_audit(
        &self,
        signer: &NodeSigner,
        team: &str,
    ) -> Result<SignedHeads, StoreError> {
        let mut tx = self.write().await?;
        let (seq, hash) = head(&mut tx).await?;
        let covered: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_checkpoints")
            .fetch_one(&mut *tx)
            .await?;
        let mut signed = SignedHeads::default();
        if seq != 0 && covered.map(seq_of) != Some(seq) {
            let checkpoint = Checkpoint::sign(signer, team, seq, &hash, tx.now()).map_err(|e| {
                StoreError::Corrupt {
                    table: "audit_checkpoints",
                    id: seq.to_string(),
                    problem: e.to_string(),
                }
            })?;
            sqlx::query(
                "INSERT INTO audit_checkpoints (seq, head_hash, at, signer, scheme, signature,
                                                certificate)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(seq_param(checkpoint.seq))
            .bind(&checkpoint.head_hash)
            .bind(checkpoint.at_ms)
            .bind(&checkpoint.team)
            .bind(i64::from(checkpoint.scheme))
            .bind(&checkpoint.signature)
            .bind(&checkpoint.certificate)
            .execute(&mut *tx)
            .await?;
            signed.checkpoint = Some(seq);
        }
        let head = audit_tree::sign_head(&mut tx, signer, team, seq).await?;
        signed.tree_head = head.as_ref().map(|h| h.tree_size);
        if signed.checkpoint.is_none() && head.is_none() {
            return Ok(signed);
        }
        tx.commit().await?;
        if let Some(head) = head {
            self.signed_tree_head(head);
        }
        Ok(signed)
    }

    /// The newest signed checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        sqlx::query(&format!("{CHECKPOINT_COLUMNS} ORDER BY seq DESC LIMIT 1"))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(checkpoint_row)
            .transpose()
    }

    /// Verifies the whole chain and every checkpoint, then the Merkle tree and every signed
    /// tree head, reading the log a page at a time. The earlier of the problems the two find
    /// is the one named; at the same entry, the chain's, which says what became of the entry.
    pub async fn verify_audit(
        &self,
        own_certificate: impl Fn(SignedBy<'_>) -> Result<(), String>,
    ) -> Result<Verification, StoreError> {
        let anchor = sqlx::query("SELECT seq, hash FROM audit_anchor WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
            .map(|row| -> Result<(u64, Vec<u8>), StoreError> {
                Ok((seq_of(row.try_get("seq")?), row.try_get("hash")?))
            })
            .transpose()?;
        let checkpoints = sqlx::query(&format!("{CHECKPOINT_COLUMNS} ORDER BY seq"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(checkpoint_row)
            .collect::<Result<Vec<_>, _>>()?;
        let mut verifier = ChainVerifier::new(anchor, checkpoints, &own_certificate);
        let mut after = i64::MIN;
        loop {
            let page = sqlx::query(&format!(
                "{ENTRY_COLUMNS} WHERE seq > $1 ORDER BY seq LIMIT $2"
            ))
            .bind(after)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = page.last() else { break };
            after = last.try_get("seq")?;
            let mut going = true;
            for row in &page {
                if !verifier.feed(&entry_row(row)?) {
                    going = false;
                    break;
                }
            }
            if !going {
                break;
            }
        }
        let mut found = verifier.finish();
        let tree = self.verify_audit_tree(&own_certificate).await?;
        found.tree_heads = tree.heads;
        found.last_tree_head = tree.last_head;
        if let Some((seq, problem)) = tree.first_bad
            && found
                .first_bad
                .as_ref()
                .is_none_or(|(first, _)| seq < *first)
        {
            found.first_bad = Some((seq, problem));
        }
        Ok(found)
    }

    /// Entries, newest first, that match `filter`: a page of at most `filter.limit`, after
    /// skipping `filter.offset`.
    pub async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        // One placeholder per actor asked for; the list is short (the forms one name takes).
        let actors = (0..filter.actors.len())
            .map(|i| format!("${}", i + 8))
            .collect::<Vec<_>>()
            .join(", ");
        let actor_clause = if filter.actors.is_empty() {
            String::new()
        } else {
            format!(" AND actor IN ({actors})")
        };
        let sql = format!(
            "{ENTRY_COLUMNS} WHERE at >= $1 AND at < $2 AND ($3 IS NULL OR kind = $4)
               AND ($5 IS NULL OR peer = $6){actor_clause}
             ORDER BY seq DESC LIMIT $7 OFFSET ${}",
            filter.actors.len() + 8
        );
        let mut query = sqlx::query(&sql)
            .bind(filter.since.map_or(i64::MIN, ms))
            .bind(filter.until.map_or(i64::MAX, ms))
            .bind(filter.kind)
            .bind(filter.kind)
            .bind(filter.peer.as_deref())
            .bind(filter.peer.as_deref())
            .bind(i64::from(filter.limit));
        for actor in &filter.actors {
            query = query.bind(actor.as_str());
        }
        query
            .bind(i64::from(filter.offset))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(entry_row)
            .collect()
    }

    /// Every disclosure entry under a local reference since a time, oldest first: the
    /// referrals, forwards, consultation copies and case messages sent, and status updates
    /// that carried case data. An entry matches when it was recorded under `reference`, or
    /// when it is about a referral this node keeps under that reference now (its subject
    /// reference, so also entries recorded before the reference was set).
    pub async fn disclosure_entries(
        &self,
        reference: &str,
        also: &[Uuid],
        since: Option<OffsetDateTime>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        // The referrals the caller found under the reference by other means (a case number,
        // which is kept sealed): a handful at most, one placeholder each.
        let listed = (0..also.len())
            .map(|i| format!("${}", i + 4))
            .collect::<Vec<_>>()
            .join(", ");
        let also_clause = if also.is_empty() {
            String::new()
        } else {
            format!("OR referral_id IN ({listed})")
        };
        let sql = format!(
            "{ENTRY_COLUMNS} WHERE kind IN ('disclosure', 'status-change')
               AND (subject = $1
                    OR referral_id IN (SELECT id FROM referrals WHERE subject = $2)
                    {also_clause})
               AND at >= $3
             ORDER BY seq"
        );
        let mut query = sqlx::query(&sql)
            .bind(reference)
            .bind(reference)
            .bind(since.map_or(i64::MIN, ms));
        for id in also {
            query = query.bind(id.to_string());
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut entries = Vec::new();
        for row in &rows {
            let entry = entry_row(row)?;
            if entry.kind == "disclosure" || carried_case_data(&entry.detail) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// The leaf hashes of entries `from + 1 ..= to`, recomputed from what is stored now, or
    /// `None` when that range is not (or no longer) all here.
    pub async fn leaf_hashes(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Option<Vec<[u8; 32]>>, StoreError> {
        let rows = sqlx::query(&format!(
            "{ENTRY_COLUMNS} WHERE seq > $1 AND seq <= $2 ORDER BY seq"
        ))
        .bind(seq_param(from))
        .bind(seq_param(to))
        .fetch_all(&self.pool)
        .await?;
        let entries = rows.iter().map(entry_row).collect::<Result<Vec<_>, _>>()?;
        let complete = entries.len() as u64 == to.saturating_sub(from)
            && entries.iter().zip(from + 1..).all(|(e, seq)| e.seq == seq);
        Ok(complete.then(|| entries.iter().map(AuditEntry::leaf).collect()))
    }

    /// Removes entries older than `cutoff`, keeping the chain verifiable from the hash of the
    /// last one removed, and records that it did. Returns how many were removed.
    pub async fn purge_audit_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_log WHERE at < $1")
            .bind(ms(cutoff))
            .fetch_one(&mut *tx)
            .await?;
        let Some(last) = last else { return Ok(0) };
        let newest: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM audit_log")
            .fetch_one(&mut *tx)
            .await?;
        // The newest entry always stays, so the chain has a head to append to.
        if last >= newest {
            return Ok(0);
        }
        let hash: Vec<u8> = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
            .bind(last)
            .fetch_one(&mut *tx)
            .await?;
        let removed = sqlx::query("DELETE FROM audit_log WHERE seq <= $1")
            .bind(last)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM audit_checkpoints WHERE seq <= $1")
            .bind(last)
            .execute(&mut *tx)
            .await?;
        // The tree's hashes stay: they say nothing of the entries, and a peer holding an older
        // head may still ask for a proof from it. The heads over removed entries go, as their
        // checkpoints do, but for the newest, which every message shows until the next.
        sqlx::query(
            "DELETE FROM audit_tree_heads WHERE tree_size <= $1
               AND tree_size < (SELECT MAX(tree_size) FROM audit_tree_heads)",
        )
        .bind(last)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO audit_anchor (id, seq, hash) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(last)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
        append(
            &mut tx,
            &AuditRecord {
                kind: audit::AuditKind::AuditRetention,
                actor: crate::actor::Actor::node().to_string(),
                peer: None,
                referral_id: None,
                subject: None,
                detail: serde_json::json!({ "removed_through_seq": last, "removed": removed }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// The checkpoint of `peer` this node last witnessed and found consistent.
    pub async fn witnessed(&self, peer: &str) -> Result<Option<Checkpoint>, StoreError> {
        sqlx::query(
            "SELECT peer AS signer, seq, head_hash, at, 1 AS scheme, signature, certificate
             FROM witnessed_checkpoints WHERE peer = $1",
        )
        .bind(peer)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(checkpoint_row)
        .transpose()
    }

    /// Keeps `checkpoint` as the latest consistent one of its team.
    pub async fn put_witnessed(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO witnessed_checkpoints
                 (peer, seq, head_hash, at, signature, certificate, witnessed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (peer) DO UPDATE SET seq = excluded.seq,
                 head_hash = excluded.head_hash, at = excluded.at,
                 signature = excluded.signature, certificate = excluded.certificate,
                 witnessed_at = excluded.witnessed_at",
        )
        .bind(&checkpoint.team)
        .bind(seq_param(checkpoint.seq))
        .bind(&checkpoint.head_hash)
        .bind(checkpoint.at_ms)
        .bind(&checkpoint.signature)
        .bind(&checkpoint.certificate)
        .bind(ms(self.clock.now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that `peer` showed a history contradicting a checkpoint held here.
    pub async fn add_witness_conflict(&self, conflict: &WitnessConflict) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO witness_conflicts (peer, held_seq, shown_seq, problem, detected_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&conflict.peer)
        .bind(seq_param(conflict.held_seq))
        .bind(seq_param(conflict.shown_seq))
        .bind(&conflict.problem)
        .bind(ms(conflict.detected_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every witness conflict found, newest first.
    pub async fn witness_conflicts(&self) -> Result<Vec<WitnessConflict>, StoreError> {
        sqlx::query(
            "SELECT peer, held_seq, shown_seq, problem, detected_at FROM witness_conflicts
             ORDER BY id DESC LIMIT 1000",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(WitnessConflict {
                peer: row.try_get("peer")?,
                held_seq: seq_of(row.try_get("held_seq")?),
                shown_seq: seq_of(row.try_get("shown_seq")?),
                problem: row.try_get("problem")?,
                detected_at: from_ms(row.try_get("detected_at")?),
            })
        })
        .collect()
    }
}
