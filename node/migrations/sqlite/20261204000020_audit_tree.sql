-- The audit log as an RFC 9162 Merkle tree, beside its hash chain (protocol version 2).
--
-- Entry seq is leaf seq - 1, and its leaf hash is SHA-256(0x00 || leaf_seq), leaf_seq being the
-- chain's leaf (SHA-256 of the entry's canonical JSON). Every complete subtree is kept as it is
-- completed, in the transaction that appends the entry completing it, so a root or a proof
-- reads O(log n) rows. The hashes say nothing of the entries, so audit retention keeps them:
-- a peer holding an old tree head can still be given a proof from it.
CREATE TABLE audit_tree (
    level           INTEGER NOT NULL,          -- 0 for a leaf; a node at level L spans 2^L leaves
    idx             INTEGER NOT NULL,          -- it spans leaves idx * 2^L to (idx + 1) * 2^L - 1
    hash            BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) STRICT;

-- Signed tree heads: the tree's root after tree_size entries, signed with the node's key when
-- a checkpoint is signed (RFC 9162 signed tree heads; signing::tree_head_payload).
CREATE TABLE audit_tree_heads (
    tree_size       INTEGER PRIMARY KEY,
    root_hash       BLOB NOT NULL,
    at              INTEGER NOT NULL,          -- Unix ms, when signed
    signer          TEXT NOT NULL,             -- identity URI
    scheme          INTEGER NOT NULL,
    signature       BLOB NOT NULL,
    certificate     BLOB NOT NULL              -- the signer's certificate, DER
) STRICT;

-- The latest tree head each peer showed this node, once its consistency was checked.
CREATE TABLE witnessed_tree_heads (
    peer            TEXT PRIMARY KEY,
    tree_size       INTEGER NOT NULL,
    root_hash       BLOB NOT NULL,
    at              INTEGER NOT NULL,
    scheme          INTEGER NOT NULL,
    signature       BLOB NOT NULL,
    certificate     BLOB NOT NULL,
    witnessed_at    INTEGER NOT NULL
) STRICT;
