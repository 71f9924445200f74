-- Crypto-shredding, retraction and retention.
--
-- Every received referral's body is sealed under its own data key (AES-256-GCM); a forward made
-- from it, and the outbox copy of that forward, are sealed under the same key. Purging deletes
-- the key, so every copy on this node becomes unreadable at once, and then deletes the rows.
-- PostgreSQL keeps dead row versions until VACUUM: docs/OPERATIONS.md says how the purge's
-- promise holds there (the rows hold only sealed bodies once the key is gone).
CREATE TABLE data_keys (
    id              TEXT PRIMARY KEY,          -- the received referral's id
    key             BYTEA NOT NULL,
    created_at      BIGINT NOT NULL
);

ALTER TABLE referrals ADD COLUMN data_key TEXT;        -- the body is sealed when set
ALTER TABLE referrals ADD COLUMN consent_ref TEXT;     -- set when shared on the basis of consent
ALTER TABLE referrals ADD COLUMN forwarded_from TEXT;  -- for a forward: the referral it came from
ALTER TABLE referrals ADD COLUMN retain_until BIGINT;  -- for a received referral
CREATE INDEX referrals_by_consent ON referrals (consent_ref) WHERE consent_ref IS NOT NULL;
CREATE INDEX referrals_by_source ON referrals (forwarded_from) WHERE forwarded_from IS NOT NULL;
CREATE INDEX referrals_by_retention ON referrals (retain_until) WHERE retain_until IS NOT NULL;

-- New message kinds, a cancelled state, and sealing.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('referral', 'status-update', 'retraction', 'retraction-ack'));
ALTER TABLE outbox DROP CONSTRAINT outbox_state_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_state_check
    CHECK (state IN ('pending', 'delivered', 'dead', 'cancelled'));
ALTER TABLE outbox ADD COLUMN data_key TEXT;           -- the body is sealed when set
CREATE INDEX outbox_by_referral ON outbox (referral_id);

-- What remains of a purged referral: ids, categories, when and why; never content.
CREATE TABLE tombstones (
    referral_id     TEXT PRIMARY KEY,
    direction       TEXT NOT NULL,
    sender          TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    categories      TEXT NOT NULL,
    recorded_at     BIGINT NOT NULL,
    purged_at       BIGINT NOT NULL,
    cause           TEXT NOT NULL CHECK (cause IN ('consent-revoked', 'retention')),
    retraction_id   TEXT
);

-- A retraction this node started (consent_id set) or passes on (upstream set).
CREATE TABLE retractions (
    id              TEXT PRIMARY KEY,
    consent_id      TEXT UNIQUE,
    started_at      BIGINT NOT NULL,
    upstream_peer   TEXT,                      -- who asked this node, to relay reports to
    upstream_author TEXT                       -- this node's identity towards that peer
);

-- Every copy a retraction must reach, and whether its holder has acknowledged the purge.
CREATE TABLE retraction_targets (
    retraction_id   TEXT NOT NULL REFERENCES retractions (id),
    referral_id     TEXT NOT NULL,
    team            TEXT NOT NULL,
    reported_by     TEXT NOT NULL,             -- this node's identity, or the hop that forwarded
    acknowledged_at BIGINT,
    held            BIGINT,
    purged_at       BIGINT,
    PRIMARY KEY (retraction_id, referral_id)
);
