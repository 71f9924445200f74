-- Audit and accountability.
--
-- The audit log is append-only and hash-chained: leaf_n = SHA-256 of the entry's columns as a
-- canonical JSON array, hash_n = SHA-256(hash_{n-1} || leaf_n), hash_0 = 32 zero bytes. Entries
-- hold ids and categories, never case content, so purging case data never touches them.
CREATE TABLE audit_log (
    seq             INTEGER PRIMARY KEY,       -- 1, 2, 3, ... without gaps
    at              INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    actor           TEXT NOT NULL,
    peer            TEXT,
    referral_id     TEXT,
    subject         TEXT,                      -- the agency's own reference for the subject
    detail          TEXT NOT NULL,             -- JSON
    prev_hash       BLOB NOT NULL,
    hash            BLOB NOT NULL
) STRICT;

CREATE INDEX audit_by_subject ON audit_log (subject, at) WHERE subject IS NOT NULL;
CREATE INDEX audit_by_time ON audit_log (at);

-- The chain head, signed with the node's key at an interval and on shutdown.
CREATE TABLE audit_checkpoints (
    seq             INTEGER PRIMARY KEY,       -- the last entry covered
    head_hash       BLOB NOT NULL,
    at              INTEGER NOT NULL,
    signer          TEXT NOT NULL,             -- identity URI
    scheme          INTEGER NOT NULL,
    signature       BLOB NOT NULL,
    certificate     BLOB NOT NULL              -- the signer's certificate, DER
) STRICT;

-- Where the chain starts once audit retention has removed older entries: the hash of the last
-- entry removed, so verification goes on from there.
CREATE TABLE audit_anchor (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    seq             INTEGER NOT NULL,
    hash            BLOB NOT NULL
) STRICT;

-- Non-repudiation: every message's signature, and the receipt for it, on both sides.
CREATE TABLE message_proofs (
    message_id      TEXT NOT NULL,
    direction       TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
    kind            TEXT NOT NULL,
    peer            TEXT NOT NULL,
    digest          BLOB NOT NULL,             -- SHA-256 of the canonical encoding
    signature       BLOB NOT NULL,             -- the sender's, over the message
    sender_certificate BLOB NOT NULL,
    receipt_signature BLOB,                    -- the receiver's, over id, digest and time
    receipt_certificate BLOB,
    received_at     INTEGER,
    PRIMARY KEY (message_id, direction)
) STRICT;

-- The latest checkpoint each peer showed this node, once its consistency was checked.
CREATE TABLE witnessed_checkpoints (
    peer            TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL,
    head_hash       BLOB NOT NULL,
    at              INTEGER NOT NULL,
    signature       BLOB NOT NULL,
    certificate     BLOB NOT NULL,
    witnessed_at    INTEGER NOT NULL
) STRICT;

-- Peers that showed a history contradicting a checkpoint this node held.
CREATE TABLE witness_conflicts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    peer            TEXT NOT NULL,
    held_seq        INTEGER NOT NULL,
    shown_seq       INTEGER NOT NULL,
    problem         TEXT NOT NULL,
    detected_at     INTEGER NOT NULL
) STRICT;

-- For the accounting of disclosures: the agency's own reference for a sent referral's subject.
ALTER TABLE referrals ADD COLUMN subject TEXT;
