//! The audit log's Merkle tree in SQL: its complete subtrees, written with each entry; roots
//! and proofs read from them; signed tree heads, the newest kept in memory; the heads peers
//! showed; building the tree for entries written before it existed; and checking the stored
//! tree against the entries and every signed head.
//!
//! `audit_tree` holds one row per complete subtree, `(level, idx)` spanning leaves
//! `idx * 2^level .. (idx + 1) * 2^level`. Appending leaf `i` writes the leaf and the subtrees
//! it completes (one per trailing one bit of `i`: two rows on average) and reads only their left
//! siblings, so an append stays a few small statements however long the log. Every range a root
//! or a proof names is a handful of complete subtrees ([`audit_tree::range_nodes`]): O(log n)
//! rows, read in one query. Rows are never changed or deleted, so what a reader sees of a tree
//! of size `n` stays the same while later entries are appended.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::audit_log::{ENTRY_COLUMNS, entry_row, seq_of, seq_param};
use super::{Store, StoreError, Tx, ms};
use crate::audit::{AuditEntry, SignedBy};
use crate::audit_tree::{
    self, Completed, Frontier, TreeHead, TreeVerification, TreeVerifier, frontier_nodes,
    range_nodes,
};
use crate::merkle::{self, Hash, LeafRange};
use crate::signing::NodeSigner;

/// A complete subtree: its level and its index at that level.
type NodeKey = (u32, u64);

/// The most subtrees read in one query (two placeholders each).
const READ_CHUNK: usize = 128;
/// The most subtrees written in one statement (three placeholders each).
const WRITE_CHUNK: usize = 256;
/// How many leaves building or checking the tree reads at a time.
const PAGE: u64 = 5000;

const HEAD_COLUMNS: &str =
    "SELECT tree_size, root_hash, at, signer, scheme, signature, certificate FROM audit_tree_heads";

/// The newest signed tree head, in memory: version 2 shows it with every batch and receipt,
/// so reading it must cost nothing. Set when this process signs one, and reloaded by the
/// checkpoint job, which picks up a head another replica of a shared store signed.
#[derive(Debug, Clone, Default)]
pub(super) struct HeadCache(Arc<RwLock<Option<Arc<TreeHead>>>>);

impl HeadCache {
    fn get(&self) -> Option<Arc<TreeHead>> {
        self.0.read().ok().and_then(|head| head.clone())
    }

    /// Keeps `head` unless the one held is newer (a replica may have signed one meanwhile).
    fn offer(&self, head: Option<TreeHead>) {
        if let Ok(mut held) = self.0.write() {
            let newer = match (&*held, &head) {
                (Some(held), Some(head)) => head.tree_size >= held.tree_size,
                (None, _) => true,
                (Some(_), None) => false,
            };
            if newer {
                *held = head.map(Arc::new);
            }
        }
    }
}

fn hash_of(bytes: Vec<u8>, table: &'static str, id: impl ToString) -> Result<Hash, StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt {
        table,
        id: id.to_string(),
        problem: "a hash is not 32 bytes".into(),
    })
}

fn level_param(level: u32) -> i64 {
    i64::from(level)
}

/// Reads the hashes of the subtrees `keys` that exist.
async fn read_nodes(
    connection: &mut AnyConnection,
    keys: &[NodeKey],
) -> Result<HashMap<NodeKey, Hash>, StoreError> {
    let mut found = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(READ_CHUNK) {
        let terms = (0..chunk.len())
            .map(|i| format!("(level = ${} AND idx = ${})", 2 * i + 1, 2 * i + 2))
            .collect::<Vec<_>>()
            .join(" OR ");
        let sql = format!("SELECT level, idx, hash FROM audit_tree WHERE {terms}");
        let mut query = sqlx::query(&sql);
        for &(level, idx) in chunk {
            query = query.bind(level_param(level)).bind(seq_param(idx));
        }
        for row in query.fetch_all(&mut *connection).await? {
            let level = u32::try_from(row.try_get::<i64, _>("level")?).unwrap_or(u32::MAX);
            let idx = seq_of(row.try_get("idx")?);
            let hash = hash_of(row.try_get("hash")?, "audit_tree", idx)?;
            found.insert((level, idx), hash);
        }
    }
    Ok(found)
}

/// Writes completed subtrees.
async fn write_nodes(
    connection: &mut AnyConnection,
    nodes: &[Completed],
) -> Result<(), StoreError> {
    for chunk in nodes.chunks(WRITE_CHUNK) {
        let values = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO audit_tree (level, idx, hash) VALUES {values}");
        let mut query = sqlx::query(&sql);
        for (level, idx, hash) in chunk {
            query = query
                .bind(level_param(*level))
                .bind(seq_param(*idx))
                .bind(hash.as_slice());
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}

/// Adds leaf `index` with its hash inside the caller's transaction, with every subtree it
/// completes, so the tree grows exactly when the log does.
pub(super) async fn append_leaf(tx: &mut Tx, index: u64, leaf: Hash) -> Result<(), StoreError> {
    // Leaf i completes one subtree per trailing one bit of i; each needs its left sibling.
    let completes = index.trailing_ones();
    let siblings: Vec<NodeKey> = (0..completes).map(|l| (l, (index >> l) - 1)).collect();
    let found = read_nodes(tx, &siblings).await?;
    let mut nodes = vec![(0, index, leaf)];
    let mut hash = leaf;
    for (level, sibling) in siblings {
        let Some(left) = found.get(&(level, sibling)) else {
            // The stored tree lacks a subtree it had: it was cut outside tatmx. The entry is
            // still written (the action it records must not fail for it); no tree head can be
            // signed over the gap, and `tatmx audit verify` names it.
            tracing::error!(
                leaf = index,
                level,
                "the audit log's Merkle tree is missing a subtree"
            );
            break;
        };
        hash = merkle::node_hash(left, &hash);
        nodes.push((level + 1, index >> (level + 1), hash));
    }
    write_nodes(tx, &nodes).await
}

/// How many leaves the stored tree has.
async fn tree_size(connection: &mut AnyConnection) -> Result<u64, StoreError> {
    let last: Option<i64> = sqlx::query_scalar("SELECT MAX(idx) FROM audit_tree WHERE level = 0")
        .fetch_one(&mut *connection)
        .await?;
    Ok(last.map_or(0, |last| seq_of(last) + 1))
}

/// The tree hashes of `ranges`, in order, or `None` when a subtree they need is not stored.
async fn range_hashes(
    connection: &mut AnyConnection,
    ranges: &[LeafRange],
) -> Result<Option<Vec<Hash>>, StoreError> {
    let per_range: Vec<Vec<NodeKey>> = ranges.iter().map(|&(a, b)| range_nodes(a, b)).collect();
    let keys: Vec<NodeKey> = per_range
        .iter()
        .flatten()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let found = read_nodes(connection, &keys).await?;
    Ok(per_range
        .iter()
        .map(|keys| {
            keys.iter()
                .map(|key| found.get(key).copied())
                .collect::<Option<Vec<_>>>()
                .map(|hashes| audit_tree::fold_range(&hashes))
        })
        .collect())
}

/// The root of the tree of the first `size` leaves, or `None` when it is not all stored.
async fn root_at(connection: &mut AnyConnection, size: u64) -> Result<Option<Hash>, StoreError> {
    if size == 0 {
        return Ok(Some(merkle::empty_root()));
    }
    Ok(range_hashes(connection, &[(0, size)])
        .await?
        .and_then(|mut roots| roots.pop()))
}

fn head_row(row: &AnyRow) -> Result<TreeHead, StoreError> {
    let tree_size = seq_of(row.try_get("tree_size")?);
    Ok(TreeHead {
        team: row.try_get("signer")?,
        tree_size,
        root_hash: hash_of(row.try_get("root_hash")?, "audit_tree_heads", tree_size)?,
        at_ms: row.try_get("at")?,
        scheme: u32::try_from(row.try_get::<i64, _>("scheme")?).unwrap_or(0),
        signature: row.try_get("signature")?,
        certificate: row.try_get("certificate")?,
    })
}

/// Signs a tree head over the first `size` entries inside the checkpoint's transaction, unless
/// the newest head already covers them. `None` when there is nothing new to sign, or when the
/// stored tree cannot give the root (it was cut; verification names where).
pub(super) async fn sign_head(
    tx: &mut Tx,
    signer: &NodeSigner,
    team: &str,
    size: u64,
) -> Result<Option<TreeHead>, StoreError> {
    let covered: Option<i64> = sqlx::query_scalar("SELECT MAX(tree_size) FROM audit_tree_heads")
        .fetch_one(&mut **tx)
        .await?;
    if size == 0 || covered.map(seq_of) == Some(size) {
        return Ok(None);
    }
    let Some(root) = root_at(tx, size).await? else {
        tracing::error!(
            tree_size = size,
            "no audit tree head signed: the Merkle tree is incomplete"
        );
        return Ok(None);
    };
    let head =
        TreeHead::sign(signer, team, size, root, tx.now()).map_err(|e| StoreError::Corrupt {
            table: "audit_tree_heads",
            id: size.to_string(),
            problem: e.to_string(),
        })?;
    sqlx::query(
        "INSERT INTO audit_tree_heads (tree_size, root_hash, at, signer, scheme, signature,
                                       certificate)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(seq_param(head.tree_size))
    .bind(head.root_hash.as_slice())
    .bind(head.at_ms)
    .bind(&head.team)
    .bind(i64::from(head.scheme))
    .bind(&head.signature)
    .bind(&head.certificate)
    .execute(&mut **tx)
    .await?;
    Ok(Some(head))
}

/// Leaf hashes for the tree of a log whose entries `from + 1 ..` are being built in: each
/// entry's own, or for an entry audit retention removed before the tree existed, the leaf of
/// the retention anchor's chain hash, which stands in for it (its own leaf is gone with it).
fn leaf_for(entry: Option<&AuditEntry>, seq: u64, anchor: &Option<(u64, Vec<u8>)>) -> Option<Hash> {
    match (entry, anchor) {
        (Some(entry), _) if entry.seq == seq => Some(audit_tree::entry_leaf(entry)),
        (None, Some((through, hash))) if seq <= *through => Some(merkle::leaf_hash(hash)),
        _ => None,
    }
}

/// The retention anchor: the seq and chain hash of the last entry removed.
async fn anchor(connection: &mut AnyConnection) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    sqlx::query("SELECT seq, hash FROM audit_anchor WHERE id = 1")
        .fetch_optional(&mut *connection)
        .await?
        .map(|row| -> Result<(u64, Vec<u8>), StoreError> {
            Ok((seq_of(row.try_get("seq")?), row.try_get("hash")?))
        })
        .transpose()
}

/// The stored subtrees of one level, read a page at a time in index order.
struct Level {
    level: u32,
    rows: VecDeque<(u64, Hash)>,
    /// The index the loaded page ends before.
    loaded_to: u64,
}

impl Level {
    fn new(level: u32) -> Self {
        Self {
            level,
            rows: VecDeque::new(),
            loaded_to: 0,
        }
    }

    /// The stored subtree `idx` of this level; asked for in increasing `idx`.
    async fn get(
        &mut self,
        connection: &mut AnyConnection,
        idx: u64,
    ) -> Result<Option<Hash>, StoreError> {
        if idx >= self.loaded_to {
            let end = idx.saturating_add(PAGE);
            let rows = sqlx::query(
                "SELECT idx, hash FROM audit_tree WHERE level = $1 AND idx >= $2 AND idx < $3
                 ORDER BY idx",
            )
            .bind(level_param(self.level))
            .bind(seq_param(idx))
            .bind(seq_param(end))
            .fetch_all(&mut *connection)
            .await?;
            self.rows = rows
                .into_iter()
                .map(|row| {
                    let idx = seq_of(row.try_get("idx")?);
                    Ok((idx, hash_of(row.try_get("hash")?, "audit_tree", idx)?))
                })
                .collect::<Result<_, StoreError>>()?;
            self.loaded_to = end;
        }
        while self.rows.front().is_some_and(|&(j, _)| j < idx) {
            self.rows.pop_front();
        }
        Ok(self
            .rows
            .front()
            .filter(|&&(j, _)| j == idx)
            .map(|&(_, hash)| hash))
    }
}

/// Entries read a page at a time by seq.
struct Entries {
    page: HashMap<u64, AuditEntry>,
    loaded_to: u64,
}

impl Entries {
    async fn get(
        &mut self,
        connection: &mut AnyConnection,
        seq: u64,
    ) -> Result<Option<&AuditEntry>, StoreError> {
        if seq >= self.loaded_to {
            let end = seq.saturating_add(PAGE);
            let rows = sqlx::query(&format!(
                "{ENTRY_COLUMNS} WHERE seq >= $1 AND seq < $2 ORDER BY seq"
            ))
            .bind(seq_param(seq))
            .bind(seq_param(end))
            .fetch_all(&mut *connection)
            .await?;
            self.page = rows
                .iter()
                .map(|row| entry_row(row).map(|e| (e.seq, e)))
                .collect::<Result<_, _>>()?;
            self.loaded_to = end;
        }
        Ok(self.page.get(&seq))
    }
}

impl Store {
    /// Builds the tree over entries written before it existed (a store from an older
    /// version), a page per transaction; does nothing when the tree is up to date. Called
    /// once, when the store opens.
    pub(super) async fn catch_up_audit_tree(&self) -> Result<(), StoreError> {
        let mut added = 0u64;
        loop {
            let mut tx = self.write().await?;
            let size = tree_size(&mut tx).await?;
            let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_log")
                .fetch_one(&mut *tx)
                .await?;
            let anchor = anchor(&mut tx).await?;
            let log_size = newest
                .map(seq_of)
                .unwrap_or(0)
                .max(anchor.as_ref().map_or(0, |a| a.0));
            if size >= log_size {
                break;
            }
            let right_edge = frontier_nodes(size);
            let found = read_nodes(&mut tx, &right_edge).await?;
            let hashes: Option<Vec<Hash>> = right_edge
                .iter()
                .map(|key| found.get(key).copied())
                .collect();
            let Some(mut frontier) = hashes.and_then(|h| Frontier::resume(size, h)) else {
                tracing::error!(
                    tree_size = size,
                    "the audit log's Merkle tree is missing a subtree; it cannot be extended"
                );
                break;
            };
            let end = log_size.min(size + PAGE);
            let rows = sqlx::query(&format!(
                "{ENTRY_COLUMNS} WHERE seq > $1 AND seq <= $2 ORDER BY seq"
            ))
            .bind(seq_param(size))
            .bind(seq_param(end))
            .fetch_all(&mut *tx)
            .await?;
            let entries: HashMap<u64, AuditEntry> = rows
                .iter()
                .map(|row| entry_row(row).map(|e| (e.seq, e)))
                .collect::<Result<_, _>>()?;
            let mut nodes = Vec::new();
            for seq in size + 1..=end {
                let Some(leaf) = leaf_for(entries.get(&seq), seq, &anchor) else {
                    break;
                };
                nodes.extend(frontier.push(leaf));
            }
            let built = frontier.size() - size;
            write_nodes(&mut tx, &nodes).await?;
            tx.commit().await?;
            added += built;
            if frontier.size() < end {
                tracing::error!(
                    missing = frontier.size() + 1,
                    "an audit entry is missing; the Merkle tree stops before it"
                );
                break;
            }
        }
        if added > 0 {
            tracing::info!(
                entries = added,
                "the audit log's Merkle tree was built for entries written before it"
            );
        }
        Ok(())
    }

    /// The root of the audit tree over the first `size` entries; `None` when the tree does not
    /// (or no longer) hold all of it.
    pub async fn audit_tree_root(&self, size: u64) -> Result<Option<Hash>, StoreError> {
        let mut connection = self.pool.acquire().await?;
        root_at(&mut connection, size).await
    }

    /// The inclusion proof of entry `seq` in the tree of the first `size` entries; `None` when
    /// the entry is not among them or the tree does not hold what the proof needs.
    pub async fn audit_inclusion_proof(
        &self,
        seq: u64,
        size: u64,
    ) -> Result<Option<Vec<Hash>>, StoreError> {
        if seq == 0 || seq > size {
            return Ok(None);
        }
        let mut connection = self.pool.acquire().await?;
        range_hashes(&mut connection, &merkle::inclusion_ranges(seq - 1, size)).await
    }

    /// The consistency proof from the tree of the first `old` entries to that of the first
    /// `new`; `None` when `old` exceeds `new` or the tree does not hold what the proof needs.
    pub async fn audit_consistency_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Result<Option<Vec<Hash>>, StoreError> {
        if old > new {
            return Ok(None);
        }
        let mut connection = self.pool.acquire().await?;
        if tree_size(&mut connection).await? < new {
            return Ok(None);
        }
        range_hashes(&mut connection, &merkle::consistency_ranges(old, new)).await
    }

    /// The newest signed tree head, from memory.
    pub fn cached_tree_head(&self) -> Option<Arc<TreeHead>> {
        self.tree_heads.get()
    }

    /// Reloads the newest signed tree head into memory, for a head another replica signed.
    pub async fn refresh_tree_head(&self) -> Result<(), StoreError> {
        let latest = self.latest_tree_head().await?;
        self.tree_heads.offer(latest);
        Ok(())
    }

    /// Keeps a head just signed and committed as the newest in memory.
    pub(super) fn signed_tree_head(&self, head: TreeHead) {
        self.tree_heads.offer(Some(head));
    }

    /// The newest signed tree head, from the store.
    pub async fn latest_tree_head(&self) -> Result<Option<TreeHead>, StoreError> {
        sqlx::query(&format!("{HEAD_COLUMNS} ORDER BY tree_size DESC LIMIT 1"))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(head_row)
            .transpose()
    }

    /// The signed tree head over exactly `size` entries, when one was signed and is kept.
    pub async fn tree_head_at(&self, size: u64) -> Result<Option<TreeHead>, StoreError> {
        sqlx::query(&format!("{HEAD_COLUMNS} WHERE tree_size = $1"))
            .bind(seq_param(size))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(head_row)
            .transpose()
    }

    /// The tree head of `peer` this node last witnessed and found consistent.
    pub async fn witnessed_tree_head(&self, peer: &str) -> Result<Option<TreeHead>, StoreError> {
        sqlx::query(
            "SELECT peer AS signer, tree_size, root_hash, at, scheme, signature, certificate
             FROM witnessed_tree_heads WHERE peer = $1",
        )
        .bind(peer)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(head_row)
        .transpose()
    }

    /// Keeps `head` as the latest consistent tree head of its team.
    pub async fn put_witnessed_tree_head(&self, head: &TreeHead) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO witnessed_tree_heads
                 (peer, tree_size, root_hash, at, scheme, signature, certificate, witnessed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (peer) DO UPDATE SET tree_size = excluded.tree_size,
                 root_hash = excluded.root_hash, at = excluded.at, scheme = excluded.scheme,
                 signature = excluded.signature, certificate = excluded.certificate,
                 witnessed_at = excluded.witnessed_at",
        )
        .bind(&head.team)
        .bind(seq_param(head.tree_size))
        .bind(head.root_hash.as_slice())
        .bind(head.at_ms)
        .bind(i64::from(head.scheme))
        .bind(&head.signature)
        .bind(&head.certificate)
        .bind(ms(self.clock.now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// One audit entry by its seq.
    pub async fn audit_entry(&self, seq: u64) -> Result<Option<AuditEntry>, StoreError> {
        sqlx::query(&format!("{ENTRY_COLUMNS} WHERE seq = $1"))
            .bind(seq_param(seq))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(entry_row)
            .transpose()
    }

    /// The disclosure entries that name `id` as their referral or anywhere in their detail (a
    /// case message's id), oldest first; which of them disclosed `id` itself, the caller reads
    /// from the detail.
    pub async fn disclosure_entries_naming(&self, id: Uuid) -> Result<Vec<AuditEntry>, StoreError> {
        sqlx::query(&format!(
            "{ENTRY_COLUMNS} WHERE kind = 'disclosure' AND (referral_id = $1 OR detail LIKE $2)
             ORDER BY seq"
        ))
        .bind(id.to_string())
        .bind(format!("%{id}%"))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry_row)
        .collect()
    }

    /// Checks the stored tree leaf by leaf: each leaf against its entry while the entry is
    /// kept, each stored subtree against the leaves below it, and each signed tree head
    /// against the root at its size.
    pub(super) async fn verify_audit_tree(
        &self,
        own_certificate: impl Fn(SignedBy<'_>) -> Result<(), String>,
    ) -> Result<TreeVerification, StoreError> {
        let heads = sqlx::query(&format!("{HEAD_COLUMNS} ORDER BY tree_size"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(head_row)
            .collect::<Result<Vec<_>, _>>()?;
        let mut verifier = TreeVerifier::new(heads, own_certificate);
        let mut connection = self.pool.acquire().await?;
        let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_log")
            .fetch_one(&mut *connection)
            .await?;
        let removed_through = anchor(&mut connection).await?.map_or(0, |a| a.0);
        // Every leaf the log needs, and any the tree has beyond it.
        let size = newest
            .map_or(0, seq_of)
            .max(removed_through)
            .max(tree_size(&mut connection).await?);
        let mut levels: Vec<Level> = (0..64).map(Level::new).collect();
        let mut entries = Entries {
            page: HashMap::new(),
            loaded_to: 0,
        };
        for index in 0..size {
            if verifier.failed() {
                break;
            }
            let Some(stored) = levels[0].get(&mut connection, index).await? else {
                verifier.leaf_missing();
                break;
            };
            let seq = index + 1;
            let entry = entries.get(&mut connection, seq).await?;
            if entry.is_none() && seq > removed_through {
                verifier.entry_missing();
                break;
            }
            for (level, idx, hash) in verifier.feed(&stored, entry) {
                let Some(cursor) = levels.get_mut(level as usize) else {
                    continue;
                };
                match cursor.get(&mut connection, idx).await? {
                    Some(kept) if kept == hash => {}
                    kept => {
                        verifier.node_differs(level, idx, kept.is_none());
                        break;
                    }
                }
            }
        }
        Ok(verifier.finish())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::audit::{AuditKind, AuditRecord};

    fn record(n: u64) -> AuditRecord {
        AuditRecord {
            kind: AuditKind::InboxRead,
            actor: "uid 1000".into(),
            peer: None,
            referral_id: None,
            subject: None,
            detail: serde_json::json!({ "referrals_listed": n }),
        }
    }

    /// The Merkle leaves of every entry, recomputed from the entries as stored.
    async fn leaves(store: &Store) -> Vec<Hash> {
        let mut connection = store.pool.acquire().await.unwrap();
        sqlx::query(&format!("{ENTRY_COLUMNS} ORDER BY seq"))
            .fetch_all(&mut *connection)
            .await
            .unwrap()
            .iter()
            .map(|row| audit_tree::entry_leaf(&entry_row(row).unwrap()))
            .collect()
    }

    #[tokio::test]
    async fn an_entry_rolled_back_takes_its_leaves_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("tree.db")).await.unwrap();
        for n in 1..=7 {
            store.record_audit(&record(n)).await.unwrap();
        }
        let nodes = |store: Store| async move {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_tree")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            count
        };
        let before = nodes(store.clone()).await;
        {
            // Entry 8 completes three subtrees; the write that carried it gives up.
            let mut tx = store.write().await.unwrap();
            assert_eq!(
                super::super::audit_log::append(&mut tx, &record(8))
                    .await
                    .unwrap(),
                8
            );
            let mid: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_tree")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            assert_eq!(mid, before + 4, "the leaf and the subtrees it completes");
        }
        // The next entry takes seq 8, leaf 7, and the tree is the tree of its entries.
        assert_eq!(store.record_audit(&record(9)).await.unwrap(), 8);
        assert_eq!(nodes(store.clone()).await, before + 4);
        let all = leaves(&store).await;
        assert_eq!(
            store.audit_tree_root(8).await.unwrap(),
            Some(merkle::range_hash(&all))
        );
        let found = store.verify_audit_tree(|_| Ok(())).await.unwrap();
        assert_eq!(found.first_bad, None);
        assert_eq!(found.leaves, 8);
    }

    #[tokio::test]
    async fn a_log_from_before_the_tree_gets_its_tree_when_the_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tree.db");
        let store = Store::open(&path).await.unwrap();
        for n in 1..=12 {
            store.record_audit(&record(n)).await.unwrap();
        }
        let all = leaves(&store).await;
        // As an older version left it: no tree, and entries 1 to 4 removed by retention.
        let anchor: Vec<u8> = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = 4")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        for sql in [
            "DELETE FROM audit_tree",
            "DELETE FROM audit_log WHERE seq <= 4",
        ] {
            sqlx::query(sql).execute(&store.pool).await.unwrap();
        }
        sqlx::query("INSERT INTO audit_anchor (id, seq, hash) VALUES (1, 4, $1)")
            .bind(&anchor)
            .execute(&store.pool)
            .await
            .unwrap();
        store.close().await;

        let store = Store::open(&path).await.unwrap();
        let mut stand_in = vec![merkle::leaf_hash(&anchor); 4];
        stand_in.extend_from_slice(&all[4..]);
        assert_eq!(
            store.audit_tree_root(12).await.unwrap(),
            Some(merkle::range_hash(&stand_in))
        );
        // It goes on growing from there.
        store.record_audit(&record(13)).await.unwrap();
        let found = store.verify_audit_tree(|_| Ok(())).await.unwrap();
        assert_eq!((found.first_bad, found.leaves), (None, 13));
    }

    #[tokio::test]
    async fn a_changed_subtree_is_named_by_the_entries_it_spans() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("tree.db")).await.unwrap();
        for n in 1..=9 {
            store.record_audit(&record(n)).await.unwrap();
        }
        sqlx::query("UPDATE audit_tree SET hash = $1 WHERE level = 2 AND idx = 1")
            .bind([7u8; 32].as_slice())
            .execute(&store.pool)
            .await
            .unwrap();
        let found = store.verify_audit_tree(|_| Ok(())).await.unwrap();
        let (seq, problem) = found.first_bad.unwrap();
        assert_eq!(seq, 5, "{problem}");
        assert!(problem.contains("entries 5 to 8"), "{problem}");
    }
}
