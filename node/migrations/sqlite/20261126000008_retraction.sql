-- Crypto-shredding, retraction and retention.
--
-- Every received referral's body is sealed under its own data key (AES-256-GCM); a forward made
-- from it, and the outbox copy of that forward, are sealed under the same key. Purging deletes
-- the key, so every copy on this node becomes unreadable at once, and then deletes the rows.
-- The node runs with secure_delete on and checkpoints the WAL after a purge, so the key's bytes
-- do not linger in free pages or old WAL frames.
CREATE TABLE data_keys (
    id              TEXT PRIMARY KEY,          -- the received referral's id
    key             BLOB NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;

ALTER TABLE referrals ADD COLUMN data_key TEXT;        -- the body is sealed when set
ALTER TABLE referrals ADD COLUMN consent_ref TEXT;     -- set when shared on the basis of consent
ALTER TABLE referrals ADD COLUMN forwarded_from TEXT;  -- for a forward: the referral it came from
ALTER TABLE referrals ADD COLUMN retain_until INTEGER; -- for a received referral
CREATE INDEX referrals_by_consent ON referrals (consent_ref) WHERE consent_ref IS NOT NULL;
CREATE INDEX referrals_by_source ON referrals (forwarded_from) WHERE forwarded_from IS NOT NULL;
CREATE INDEX referrals_by_retention ON referrals (retain_until) WHERE retain_until IS NOT NULL;

-- New message kinds, a cancelled state, and sealing; SQLite rebuilds the table to change CHECKs.
CREATE TABLE outbox_new (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('referral', 'status-update', 'retraction', 'retraction-ack')),
    referral_id     TEXT NOT NULL,
    peer            TEXT NOT NULL,
    body            BLOB NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    last_error      TEXT,
    retried_at      INTEGER,
    data_key        TEXT                       -- the body is sealed when set
) STRICT;

INSERT INTO outbox_new (seq, message_id, kind, referral_id, peer, body, state, attempts,
                        created_at, next_attempt_at, delivered_at, last_error, retried_at)
SELECT seq, message_id, kind, referral_id, peer, body, state, attempts,
       created_at, next_attempt_at, delivered_at, last_error, retried_at
FROM outbox;

DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (peer, state, seq);
CREATE INDEX outbox_by_referral ON outbox (referral_id);

-- What remains of a purged referral: ids, categories, when and why; never content.
CREATE TABLE tombstones (
    referral_id     TEXT PRIMARY KEY,
    direction       TEXT NOT NULL,
    sender          TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    categories      TEXT NOT NULL,
    recorded_at     INTEGER NOT NULL,
    purged_at       INTEGER NOT NULL,
    cause           TEXT NOT NULL CHECK (cause IN ('consent-revoked', 'retention')),
    retraction_id   TEXT
) STRICT;

-- A retraction this node started (consent_id set) or passes on (upstream set).
CREATE TABLE retractions (
    id              TEXT PRIMARY KEY,
    consent_id      TEXT UNIQUE,
    started_at      INTEGER NOT NULL,
    upstream_peer   TEXT,                      -- who asked this node, to relay reports to
    upstream_author TEXT                       -- this node's identity towards that peer
) STRICT;

-- Every copy a retraction must reach, and whether its holder has acknowledged the purge.
CREATE TABLE retraction_targets (
    retraction_id   TEXT NOT NULL REFERENCES retractions (id),
    referral_id     TEXT NOT NULL,
    team            TEXT NOT NULL,
    reported_by     TEXT NOT NULL,             -- this node's identity, or the hop that forwarded
    acknowledged_at INTEGER,
    held            INTEGER,
    purged_at       INTEGER,
    PRIMARY KEY (retraction_id, referral_id)
) STRICT;
