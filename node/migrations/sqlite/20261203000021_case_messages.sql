-- Case messages: what the two teams of a shared referral say after it (questions and answers,
-- new information, management plans, reassessments).
--
-- A received message's body is sealed under its referral's data key (AES-256-GCM): the key of
-- a received referral, or, for one this node sent, a key made for the case on the first message
-- received. Purging the referral deletes the key, so its messages are shredded with it. A sent
-- message is this team's own record, sealed when its referral has a key.
CREATE TABLE case_messages (
    id              TEXT PRIMARY KEY,          -- UUIDv7, the message id
    referral_id     TEXT NOT NULL,
    direction       TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    author          TEXT NOT NULL,             -- team identity URI
    peer            TEXT NOT NULL,             -- the other team of the referral
    kind            TEXT NOT NULL CHECK (kind IN ('information-request', 'supplement',
                        'new-information', 'management-plan', 'reassessment')),
    urgent          INTEGER NOT NULL,          -- 0 or 1
    at              INTEGER NOT NULL,          -- when its author's node accepted it
    recorded_at     INTEGER NOT NULL,          -- when this node stored it
    next_reassessment TEXT,                    -- YYYY-MM-DD, from a plan, for the due list
    categories      TEXT NOT NULL,             -- comma-separated category names
    decisions       TEXT NOT NULL,             -- a sent message's filter decisions, JSON
    digest          TEXT NOT NULL,             -- SHA-256 of the canonical body, hex
    data_key        TEXT,                      -- the body is sealed when set
    seen_at         INTEGER,                   -- a received one: when staff read the case after
    body            BLOB NOT NULL
) STRICT;

CREATE INDEX case_messages_by_referral ON case_messages (referral_id, at);
CREATE INDEX case_messages_unseen ON case_messages (direction, seen_at, urgent);

-- A new message kind; SQLite rebuilds the table to change a CHECK.
CREATE TABLE outbox_new (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('referral', 'status-update', 'retraction',
                        'retraction-ack', 'case-message')),
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
    data_key        TEXT,
    lease_owner     TEXT,
    lease_until     INTEGER
) STRICT;

INSERT INTO outbox_new (seq, message_id, kind, referral_id, peer, body, state, attempts,
                        created_at, next_attempt_at, delivered_at, last_error, retried_at,
                        data_key, lease_owner, lease_until)
SELECT seq, message_id, kind, referral_id, peer, body, state, attempts,
       created_at, next_attempt_at, delivered_at, last_error, retried_at,
       data_key, lease_owner, lease_until
FROM outbox;

DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (peer, state, seq);
CREATE INDEX outbox_by_referral ON outbox (referral_id);
CREATE INDEX outbox_pending ON outbox (peer) WHERE state = 'pending';
