//! The audit log as an RFC 9162 Merkle tree, beside its hash chain: what protocol version 2
//! shows peers of a node's history, and what proves to a security officer that one entry is in
//! the log the node signed.
//!
//! The tree is over the same entries as the chain ([`crate::audit`]): entry `seq` is leaf
//! `seq - 1`, and its leaf hash is [`merkle::leaf_hash`] of the entry's chain leaf
//! ([`AuditEntry::leaf`]). The store keeps the hash of every complete subtree as it is completed,
//! so a root or a proof costs O(log n) reads. At the moments the node signs a checkpoint it also
//! signs a [`TreeHead`]: the root after `tree_size` entries. Peers keep the heads they are shown
//! and ask for an O(log n) consistency proof ([`merkle::verify_consistency`]) that a newer head
//! extends the one they hold ([`crate::federation::witness`]); an [`InclusionProof`] proves
//! that one entry is under a signed head. [`TreeVerifier`] checks the stored tree, leaf by leaf,
//! against the entries and every signed head.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::audit::{AuditEntry, SignedBy};
use crate::merkle::{self, Hash};
use crate::signing::{self, NodeSigner, SignatureError};

/// The Merkle leaf hash of an entry: leaf `seq - 1` of the tree.
pub fn entry_leaf(entry: &AuditEntry) -> Hash {
    merkle::leaf_hash(&entry.leaf())
}

/// A node's signed statement of its audit log as a Merkle tree: the root after `tree_size`
/// entries, which are entries `1..=tree_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    /// The team whose log it is, as an identity URI.
    pub team: String,
    /// How many entries the tree covers.
    pub tree_size: u64,
    /// The tree hash of those entries' leaves.
    pub root_hash: Hash,
    /// When it was signed, Unix milliseconds.
    pub at_ms: i64,
    /// [`signing::SCHEME_ECDSA_P256_SHA256`].
    pub scheme: u32,
    /// Over [`signing::tree_head_payload`].
    pub signature: Vec<u8>,
    /// The signer's certificate, DER.
    pub certificate: Vec<u8>,
}

impl TreeHead {
    /// Signs the root of `team`'s tree of `tree_size` entries as it stands `at`.
    pub fn sign(
        signer: &NodeSigner,
        team: &str,
        tree_size: u64,
        root_hash: Hash,
        at: OffsetDateTime,
    ) -> Result<Self, SignatureError> {
        let at_ms = signing::millis(at);
        let payload = signing::tree_head_payload(team, tree_size, &root_hash, at_ms);
        Ok(Self {
            team: team.to_owned(),
            tree_size,
            root_hash,
            at_ms,
            scheme: signing::SCHEME_ECDSA_P256_SHA256,
            signature: signer.sign(&payload)?,
            certificate: signer.certificate().to_vec(),
        })
    }

    /// Whether the signature holds for the certificate the head carries. Whose certificate
    /// that is, the caller checks.
    pub fn signature_holds(&self) -> Result<(), SignatureError> {
        signing::verify(
            &self.certificate,
            self.scheme,
            &signing::tree_head_payload(&self.team, self.tree_size, &self.root_hash, self.at_ms),
            &self.signature,
        )
    }

    /// Who signed it, and when, for the check that the certificate is the node's own.
    pub fn signed_by(&self) -> SignedBy<'_> {
        SignedBy {
            team: &self.team,
            at_ms: self.at_ms,
            certificate: &self.certificate,
        }
    }
}

/// One audit entry, the signed tree head it is proven against, and the RFC 9162 inclusion
/// proof (2.1.3) of its leaf under that head's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The entry, its columns exactly as stored (its chain hashes are not needed).
    pub entry: AuditEntry,
    /// The subtree hashes from the entry's leaf up to the root.
    pub path: Vec<Hash>,
    /// The signed tree head whose root the path leads to.
    pub head: TreeHead,
}

/// Why an inclusion proof does not prove its entry.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum InclusionError {
    /// The entry is not among the entries the head covers.
    #[error("entry {seq} is not among the {size} entries the tree head covers")]
    NotCovered {
        /// The entry.
        seq: u64,
        /// The head's tree size.
        size: u64,
    },
    /// The entry's leaf, recomputed from its columns, does not lead to the signed root: the
    /// entry was changed after it was written, or the proof is another entry's.
    #[error(
        "entry {seq}, as the node shows it now, does not lead to the signed root: the entry was changed after it was written, or the proof is not its own"
    )]
    Changed {
        /// The entry.
        seq: u64,
    },
    /// The proof cannot be one for this entry in a tree of this size.
    #[error("the inclusion proof of entry {seq} is malformed: {problem}")]
    Malformed {
        /// The entry.
        seq: u64,
        /// What the proof check found.
        problem: merkle::ProofError,
    },
    /// The tree head's signature does not hold.
    #[error("the tree head's signature {0}: the head was forged or altered")]
    Signature(SignatureError),
}

impl InclusionProof {
    /// Checks everything the proof claims from the entry's own columns: its leaf, the path to
    /// the head's root, and the head's signature with the certificate it carries. Whether that
    /// certificate is the node's, the caller checks.
    pub fn check(&self) -> Result<(), InclusionError> {
        let seq = self.entry.seq;
        let size = self.head.tree_size;
        if seq == 0 || seq > size {
            return Err(InclusionError::NotCovered { seq, size });
        }
        merkle::verify_inclusion(
            &entry_leaf(&self.entry),
            seq - 1,
            size,
            &self.path,
            &self.head.root_hash,
        )
        .map_err(|problem| match problem {
            merkle::ProofError::Mismatch => InclusionError::Changed { seq },
            problem => InclusionError::Malformed { seq, problem },
        })?;
        self.head
            .signature_holds()
            .map_err(InclusionError::Signature)
    }
}

/// The right edge of a tree being built leaf by leaf: the hash of each complete subtree not
/// yet part of a larger one, largest (leftmost) first, with its level. A tree of `n` leaves has
/// one per set bit of `n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    /// How many leaves so far.
    size: u64,
    /// `(level, hash)`, levels strictly decreasing.
    nodes: Vec<(u32, Hash)>,
}

/// A subtree completed by a leaf: at `level`, spanning leaves `idx * 2^level` up to
/// `(idx + 1) * 2^level - 1`, with its hash.
pub type Completed = (u32, u64, Hash);

impl Frontier {
    /// The frontier of a tree of `size` leaves, from its complete subtrees' hashes, largest
    /// first (as [`frontier_nodes`] lists them).
    pub fn resume(size: u64, hashes: Vec<Hash>) -> Option<Self> {
        let levels = frontier_nodes(size);
        if levels.len() != hashes.len() {
            return None;
        }
        Some(Self {
            size,
            nodes: levels
                .into_iter()
                .map(|(level, _)| level)
                .zip(hashes)
                .collect(),
        })
    }

    /// How many leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds leaf `size` (a leaf hash) and returns every subtree it completes, the leaf itself
    /// first, each larger one after.
    pub fn push(&mut self, leaf: Hash) -> Vec<Completed> {
        let index = self.size;
        self.size += 1;
        let mut completed = vec![(0, index, leaf)];
        let mut hash = leaf;
        let mut level = 0u32;
        while let Some(&(top, left)) = self.nodes.last() {
            if top != level {
                break;
            }
            self.nodes.pop();
            hash = merkle::node_hash(&left, &hash);
            level += 1;
            completed.push((level, (self.size >> level) - 1, hash));
        }
        self.nodes.push((level, hash));
        completed
    }

    /// The tree hash of every leaf so far (RFC 9162's MTH).
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(&(_, mut root)) = nodes.next() else {
            return merkle::empty_root();
        };
        for (_, left) in nodes {
            root = merkle::node_hash(left, &root);
        }
        root
    }
}

/// The complete subtrees `(level, idx)` that make the right edge of a tree of `size` leaves,
/// largest first: one per set bit of `size`.
pub fn frontier_nodes(size: u64) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut start = 0u64;
    for level in (0..64u32).rev() {
        if size & (1u64 << level) != 0 {
            out.push((level, start >> level));
            start += 1u64 << level;
        }
    }
    out
}

/// The complete subtrees `(level, idx)` whose hashes make the tree hash of leaves
/// `start..end`, largest first; their hashes fold right to left into it
/// ([`fold_range`]). `start` must be a multiple of the largest power of two not above
/// `end - start`, as every range a proof names is.
pub fn range_nodes(start: u64, end: u64) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut at = start;
    for level in (0..64u32).rev() {
        let span = 1u64 << level;
        if (end - start) & span != 0 {
            out.push((level, at >> level));
            at += span;
        }
    }
    out
}

/// The tree hash of a range from its complete subtrees' hashes, largest first.
pub fn fold_range(hashes: &[Hash]) -> Hash {
    let mut nodes = hashes.iter().rev();
    let Some(&last) = nodes.next() else {
        return merkle::empty_root();
    };
    nodes.fold(last, |right, left| merkle::node_hash(left, &right))
}

/// What checking the stored tree found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TreeVerification {
    /// Leaves checked.
    pub leaves: u64,
    /// Signed tree heads checked.
    pub heads: u64,
    /// The newest signed tree head: its size and when it was signed.
    pub last_head: Option<(u64, i64)>,
    /// The first entry the tree shows tampering at, and what is wrong; `None` when intact.
    pub first_bad: Option<(u64, String)>,
}

/// Walks the stored tree leaf by leaf, in order: checks each leaf against its entry (when the
/// entry is still there; audit retention removes old entries and keeps their leaves), hands
/// back the subtrees each leaf completes for the caller to compare with the stored ones, and
/// checks the root at each signed tree head's size.
#[derive(Debug)]
pub struct TreeVerifier {
    /// The tree rebuilt so far from the stored leaves.
    frontier: Frontier,
    /// Signed heads whose signatures hold, by size, not yet reached.
    heads: BTreeMap<u64, TreeHead>,
    /// The size of the last head that matched, to say where a rewrite must have started.
    last_good_head: u64,
    /// What was found so far.
    found: TreeVerification,
}

impl TreeVerifier {
    /// Starts at the first leaf with every signed head to check, and `own_certificate`
    /// deciding whether a head's certificate is one of this node's.
    pub fn new(
        heads: Vec<TreeHead>,
        own_certificate: impl Fn(SignedBy<'_>) -> Result<(), String>,
    ) -> Self {
        let mut found = TreeVerification {
            last_head: heads
                .iter()
                .max_by_key(|h| h.tree_size)
                .map(|h| (h.tree_size, h.at_ms)),
            ..Default::default()
        };
        let mut kept = BTreeMap::new();
        for head in heads {
            found.heads += 1;
            let problem = match head.signature_holds() {
                Err(e) => Some(format!(
                    "its signature {e}: the tree head was forged or altered"
                )),
                Ok(()) => own_certificate(head.signed_by()).err(),
            };
            if let Some(problem) = problem {
                if found.first_bad.is_none() {
                    found.first_bad = Some((
                        head.tree_size,
                        format!(
                            "the tree head signed over entries 1 to {}: {problem}",
                            head.tree_size
                        ),
                    ));
                }
                continue;
            }
            if head.tree_size == 0 {
                continue;
            }
            kept.insert(head.tree_size, head);
        }
        Self {
            frontier: Frontier::default(),
            heads: kept,
            last_good_head: 0,
            found,
        }
    }

    /// Whether something was found already; nothing more needs feeding then.
    pub fn failed(&self) -> bool {
        self.found.first_bad.is_some()
    }

    /// Feeds the next leaf as stored, with its entry when the entry is still kept. Returns the
    /// subtrees above the leaf that it completes, for the caller to compare with the stored
    /// ones ([`Self::node_differs`]).
    pub fn feed(&mut self, stored: &Hash, entry: Option<&AuditEntry>) -> Vec<Completed> {
        if self.failed() {
            return Vec::new();
        }
        let seq = self.frontier.size() + 1;
        if let Some(entry) = entry
            && entry_leaf(entry) != *stored
        {
            self.fail(
                seq,
                format!(
                    "entry {seq} does not match its leaf in the Merkle tree: the entry or the tree was changed after it was written"
                ),
            );
            return Vec::new();
        }
        let mut completed = self.frontier.push(*stored);
        self.found.leaves += 1;
        if let Some(head) = self.heads.remove(&self.frontier.size()) {
            if head.root_hash != self.frontier.root() {
                let from = self.last_good_head + 1;
                self.fail(
                    from,
                    format!(
                        "the Merkle tree was rewritten between entries {from} and {}: it no longer matches the tree head signed over entries 1 to {}",
                        head.tree_size, head.tree_size
                    ),
                );
                return Vec::new();
            }
            self.last_good_head = head.tree_size;
        }
        // The leaf itself was compared above; the caller compares the rest.
        completed.remove(0);
        completed
    }

    /// Records that a leaf the log needs is not in the stored tree.
    pub fn leaf_missing(&mut self) {
        let seq = self.frontier.size() + 1;
        self.fail(
            seq,
            format!("entry {seq} has no leaf in the Merkle tree: the tree was cut or changed"),
        );
    }

    /// Records that an entry the log must still hold (it is after any that audit retention
    /// removed) is not there, though the tree has its leaf.
    pub fn entry_missing(&mut self) {
        let seq = self.frontier.size() + 1;
        self.fail(
            seq,
            format!(
                "entry {seq} is missing: the Merkle tree has its leaf, but the log no longer has the entry"
            ),
        );
    }

    /// Records that the stored subtree `(level, idx)` is missing or differs from the one the
    /// stored leaves make.
    pub fn node_differs(&mut self, level: u32, idx: u64, missing: bool) {
        let first = (idx << level) + 1;
        let last = (idx + 1) << level;
        self.fail(
            first,
            format!(
                "the Merkle tree's hash over entries {first} to {last} {}",
                if missing {
                    "is missing"
                } else {
                    "was changed: it is not the hash of the leaves below it"
                }
            ),
        );
    }

    fn fail(&mut self, seq: u64, problem: String) {
        if self.found.first_bad.is_none() {
            self.found.first_bad = Some((seq, problem));
        }
    }

    /// The verdict, once every leaf was fed.
    pub fn finish(mut self) -> TreeVerification {
        if let Some((&size, _)) = self.heads.iter().next() {
            let from = self.frontier.size() + 1;
            self.fail(
                from,
                format!(
                    "entries {from} to {size} are missing from the Merkle tree: a signed tree head covers them"
                ),
            );
        }
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect()
    }

    #[test]
    fn the_frontier_gives_the_rfc_root_and_every_completed_subtree() {
        let all = leaves(70);
        let mut frontier = Frontier::default();
        for (i, leaf) in all.iter().enumerate() {
            let completed = frontier.push(*leaf);
            let size = i as u64 + 1;
            assert_eq!(
                frontier.root(),
                merkle::range_hash(&all[..i + 1]),
                "size {size}"
            );
            // One subtree per trailing one of the leaf's index, plus the leaf.
            assert_eq!(completed.len() as u32, (i as u64).trailing_ones() + 1);
            for (level, idx, hash) in completed {
                let start = (idx << level) as usize;
                let end = ((idx + 1) << level) as usize;
                assert_eq!(end as u64, size);
                assert_eq!(hash, merkle::range_hash(&all[start..end]));
            }
            // Resuming from the stored right edge gives the same tree.
            let hashes = frontier_nodes(size)
                .into_iter()
                .map(|(l, j)| merkle::range_hash(&all[(j << l) as usize..((j + 1) << l) as usize]))
                .collect();
            assert_eq!(Frontier::resume(size, hashes).as_ref(), Some(&frontier));
        }
    }

    #[test]
    fn every_range_a_proof_names_folds_from_its_complete_subtrees() {
        let all = leaves(70);
        for size in 1..=70u64 {
            let mut ranges = Vec::new();
            for index in 0..size {
                ranges.extend(merkle::inclusion_ranges(index, size));
            }
            for old in 0..=size {
                ranges.extend(merkle::consistency_ranges(old, size));
            }
            ranges.push((0, size));
            for (start, end) in ranges {
                let hashes: Vec<Hash> = range_nodes(start, end)
                    .into_iter()
                    .map(|(l, j)| {
                        merkle::range_hash(&all[(j << l) as usize..((j + 1) << l) as usize])
                    })
                    .collect();
                assert_eq!(
                    fold_range(&hashes),
                    merkle::range_hash(&all[start as usize..end as usize]),
                    "{start}..{end}"
                );
            }
        }
    }
}
