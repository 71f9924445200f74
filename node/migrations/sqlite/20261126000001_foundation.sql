-- The foundation schema: referrals, their timelines, the outbox, and inbound idempotency.
-- Times are Unix milliseconds (UTC). Bodies are the canonical protobuf encoding.

CREATE TABLE referrals (
    id              TEXT PRIMARY KEY,          -- UUIDv7
    direction       TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    sender          TEXT NOT NULL,             -- team identity URI
    recipient       TEXT NOT NULL,             -- team identity URI
    created_at      INTEGER NOT NULL,          -- when the sender's node accepted it
    recorded_at     INTEGER NOT NULL,          -- when this node stored it
    purpose         TEXT NOT NULL,
    status          TEXT NOT NULL,
    categories      TEXT NOT NULL,             -- comma-separated category names
    digest          TEXT NOT NULL,             -- SHA-256 of body, hex
    body            BLOB NOT NULL
) STRICT;

CREATE INDEX referrals_by_direction ON referrals (direction, recorded_at DESC);

CREATE TABLE status_events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    referral_id     TEXT NOT NULL REFERENCES referrals (id),
    status          TEXT NOT NULL,
    actor           TEXT NOT NULL,             -- team identity URI
    at              INTEGER NOT NULL
) STRICT;

CREATE INDEX status_events_by_referral ON status_events (referral_id, seq);

-- Every message another node delivered here, so a redelivery is acknowledged but not applied
-- twice, and a reused id with different content is refused.
CREATE TABLE received_messages (
    message_id      TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    sender          TEXT NOT NULL,
    digest          TEXT NOT NULL,
    received_at     INTEGER NOT NULL
) STRICT;

-- Messages waiting for, or done with, delivery. Per peer, strictly in seq order, so a status
-- update never overtakes the referral it belongs to.
CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('referral', 'status-update')),
    referral_id     TEXT NOT NULL,
    peer            TEXT NOT NULL,             -- team identity URI
    body            BLOB NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'rejected')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    last_error      TEXT
) STRICT;

CREATE INDEX outbox_due ON outbox (peer, state, seq);
