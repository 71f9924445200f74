//! Merkle tree hashing and proofs exactly as RFC 9162 (Certificate Transparency 2.0), section
//! 2.1, defines them: the hash of a batch of messages, and of the audit log.
//!
//! A tree is a sequence of leaf hashes `SHA-256(0x00 || data)`; an interior node is
//! `SHA-256(0x01 || left || right)`, splitting a range of `n` leaves at the largest power of
//! two below `n`. Every proof is a list of hashes of whole subtrees, so this module describes a
//! proof as the leaf ranges whose tree hashes it lists ([`inclusion_ranges`],
//! [`consistency_ranges`]): a caller holding all the leaves in memory (a batch) computes them
//! with [`range_hash`]; a caller whose tree is on disk (the audit log) reads them from the
//! complete subtrees it stored. Verification ([`verify_inclusion`], [`verify_consistency`])
//! follows the RFC's algorithms step by step, so a proof that verifies here verifies in any
//! other RFC 9162 implementation.
//!
//! Written here rather than taken from a crate: the crates we looked at (`ct-merkle`,
//! `rs_merkle`) keep the whole tree in memory, and the audit log's tree lives in the store.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, a subtree hash or a root.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The leaf hash of `data`: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(data);
    hasher.finalize().into()
}

/// An interior node over two subtrees: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The largest power of two strictly below `n`; `n` must be at least 2.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The tree hash of `leaves` (already leaf hashes): the root of a batch, or of any range.
pub fn range_hash(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&range_hash(&leaves[..k]), &range_hash(&leaves[k..]))
        }
    }
}

/// A half-open range of leaf indices, `start..end`, whose tree hash a proof lists.
pub type LeafRange = (u64, u64);

/// The ranges whose tree hashes make the inclusion proof of leaf `index` in a tree of `size`
/// leaves (RFC 9162, 2.1.3.1), in proof order. Empty when `index` is not below `size`.
pub fn inclusion_ranges(index: u64, size: u64) -> Vec<LeafRange> {
    let mut out = Vec::new();
    if index < size {
        path(index, 0, size, &mut out);
    }
    out
}

fn path(m: u64, start: u64, end: u64, out: &mut Vec<LeafRange>) {
    let n = end - start;
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, start, start + k, out);
        out.push((start + k, end));
    } else {
        path(m - k, start + k, end, out);
        out.push((start, start + k));
    }
}

/// The ranges whose tree hashes make the consistency proof from a tree of `old` leaves to one
/// of `new` leaves (RFC 9162, 2.1.4.1), in proof order. Empty when there is nothing to prove
/// (`old` is 0 or equals `new`) or when `old` exceeds `new`.
pub fn consistency_ranges(old: u64, new: u64) -> Vec<LeafRange> {
    let mut out = Vec::new();
    if old > 0 && old < new {
        subproof(old, 0, new, true, &mut out);
    }
    out
}

fn subproof(m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<LeafRange>) {
    let n = end - start;
    if m == n {
        if !whole {
            out.push((start, end));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, start, start + k, whole, out);
        out.push((start + k, end));
    } else {
        subproof(m - k, start + k, end, false, out);
        out.push((start, start + k));
    }
}

/// The inclusion proof of leaf `index` among `leaves`, all in memory.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Vec<Hash> {
    inclusion_ranges(index, leaves.len() as u64)
        .into_iter()
        .map(|(a, b)| range_hash(&leaves[a as usize..b as usize]))
        .collect()
}

/// The consistency proof from the first `old` of `leaves` to all of them, all in memory.
pub fn consistency_proof(leaves: &[Hash], old: u64) -> Vec<Hash> {
    consistency_ranges(old, leaves.len() as u64)
        .into_iter()
        .map(|(a, b)| range_hash(&leaves[a as usize..b as usize]))
        .collect()
}

/// Why a proof does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size, or the old size exceeds the new one.
    #[error("the index or size is outside the tree")]
    OutOfRange,
    /// The proof has too many or too few hashes for the sizes.
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    /// The hashes do not lead to the expected root.
    #[error("the proof does not lead to the signed root")]
    Mismatch,
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size` leaves whose root is
/// `root`, by the RFC 9162 algorithm (2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r != root {
        return Err(ProofError::Mismatch);
    }
    Ok(())
}

/// Checks that the tree of `new` leaves with root `new_root` extends the tree of `old` leaves
/// with root `old_root`, by the RFC 9162 algorithm (2.1.4.2). An empty old tree is extended by
/// every tree; equal sizes need equal roots and an empty proof.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::OutOfRange);
    }
    if old == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    // When the old tree is a whole subtree of the new one, its root is the proof's first node.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != old_root || &sr != new_root {
        return Err(ProofError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The leaves of the Certificate Transparency reference tree.
    fn reference_leaves() -> Vec<Hash> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|d| leaf_hash(&unhex(d)))
        .collect()
    }

    #[test]
    fn roots_match_the_reference_tree_for_every_size() {
        let roots = [
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves = reference_leaves();
        for (size, root) in roots.iter().enumerate() {
            assert_eq!(hex(&range_hash(&leaves[..size])), *root, "size {size}");
        }
    }

    #[test]
    fn inclusion_proofs_match_the_reference_proofs() {
        let leaves = reference_leaves();
        let proof = inclusion_proof(&leaves, 0);
        assert_eq!(
            proof.iter().map(hex).collect::<Vec<_>>(),
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
        );
        let proof = inclusion_proof(&leaves, 5);
        assert_eq!(
            proof.iter().map(hex).collect::<Vec<_>>(),
            [
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]
        );
    }

    fn many(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u32).to_be_bytes()))
            .collect()
    }

    #[test]
    fn every_inclusion_proof_verifies_and_nothing_else_does() {
        let leaves = many(37);
        for size in 1..=leaves.len() {
            let tree = &leaves[..size];
            let root = range_hash(tree);
            for index in 0..size {
                let proof = inclusion_proof(tree, index as u64);
                let (i, n) = (index as u64, size as u64);
                assert_eq!(verify_inclusion(&tree[index], i, n, &proof, &root), Ok(()));
                // Another leaf, another index, a cut proof or a longer one: refused.
                let other = leaf_hash(b"other");
                assert!(verify_inclusion(&other, i, n, &proof, &root).is_err());
                if size > 1 {
                    let j = (i + 1) % n;
                    assert!(verify_inclusion(&tree[index], j, n, &proof, &root).is_err());
                }
                if let Some((_, cut)) = proof.split_last() {
                    assert!(verify_inclusion(&tree[index], i, n, cut, &root).is_err());
                }
                let mut longer = proof.clone();
                longer.push(other);
                assert!(verify_inclusion(&tree[index], i, n, &longer, &root).is_err());
            }
            assert_eq!(
                verify_inclusion(&tree[0], size as u64, size as u64, &[], &root),
                Err(ProofError::OutOfRange)
            );
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_a_rewritten_history_does_not() {
        let leaves = many(33);
        for new in 1..=leaves.len() {
            let new_root = range_hash(&leaves[..new]);
            for old in 0..=new {
                let old_root = range_hash(&leaves[..old]);
                let proof = consistency_proof(&leaves[..new], old as u64);
                let (m, n) = (old as u64, new as u64);
                assert_eq!(
                    verify_consistency(m, n, &old_root, &new_root, &proof),
                    Ok(()),
                    "{old} to {new}"
                );
                if old > 0 && old < new {
                    // A history with one old leaf changed does not extend to the new tree.
                    let mut rewritten = leaves[..old].to_vec();
                    rewritten[old - 1] = leaf_hash(b"changed");
                    let forged = range_hash(&rewritten);
                    assert!(verify_consistency(m, n, &forged, &new_root, &proof).is_err());
                    let (_, cut) = proof.split_last().unwrap();
                    assert!(verify_consistency(m, n, &old_root, &new_root, cut).is_err());
                }
            }
        }
        assert_eq!(
            verify_consistency(3, 2, &empty_root(), &empty_root(), &[]),
            Err(ProofError::OutOfRange)
        );
    }
}
