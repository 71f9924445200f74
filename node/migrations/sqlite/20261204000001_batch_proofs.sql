-- Protocol version 2's evidence: messages travel in batches, signed once over the Merkle root
-- of their digests and answered with one receipt. A message's proof is its place in its
-- batch (index and inclusion path); what the batch's messages share (the two signatures, the
-- times, the outcomes) is kept once per batch, and each certificate once, by fingerprint.
-- Version 1's per-message proofs stay in message_proofs.

-- Certificates that signed batches, receipts or tree heads, each kept once.
CREATE TABLE certificates (
    sha256          BLOB PRIMARY KEY,           -- SHA-256 of the DER
    der             BLOB NOT NULL
) STRICT;

CREATE TABLE batch_proofs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    direction       TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
    batch_key       BLOB NOT NULL,              -- SHA-256 of the sender's signature: one row a batch
    root            BLOB NOT NULL,              -- RFC 9162 root over the message digests
    size            INTEGER NOT NULL,
    sender          TEXT NOT NULL,              -- identity URIs, as the batch payload names them
    recipient       TEXT NOT NULL,
    sent_at         INTEGER NOT NULL,           -- Unix ms, as signed
    signature       BLOB NOT NULL,              -- the sender's, over the batch payload
    sender_certificate BLOB NOT NULL REFERENCES certificates (sha256),
    receipt_signature BLOB,                     -- the receiver's, over the receipt payload
    receipt_certificate BLOB REFERENCES certificates (sha256),
    received_at     INTEGER,                    -- Unix ms, as signed
    outcomes        BLOB,                       -- one byte a message, as signed
    UNIQUE (direction, batch_key)
) STRICT;

CREATE TABLE message_batch_proofs (
    message_id      TEXT NOT NULL,
    direction       TEXT NOT NULL CHECK (direction IN ('sent', 'received')),
    kind            TEXT NOT NULL,
    digest          BLOB NOT NULL,              -- protocol v2's message digest
    batch           INTEGER NOT NULL REFERENCES batch_proofs (id),
    leaf_index      INTEGER NOT NULL,
    path            BLOB NOT NULL,              -- the inclusion proof: 32-byte hashes in order
    PRIMARY KEY (message_id, direction)
) STRICT;
