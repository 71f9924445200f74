-- Dead letters: a message undelivered past the maximum age, or refused by its peer, waits for
-- an admin's retry. SQLite cannot change a CHECK constraint in place, so the table is rebuilt.
CREATE TABLE outbox_new (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('referral', 'status-update')),
    referral_id     TEXT NOT NULL,
    peer            TEXT NOT NULL,
    body            BLOB NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    last_error      TEXT,
    -- When an admin last retried it; the maximum age counts from here.
    retried_at      INTEGER
) STRICT;

INSERT INTO outbox_new (seq, message_id, kind, referral_id, peer, body, state, attempts,
                        created_at, next_attempt_at, delivered_at, last_error)
SELECT seq, message_id, kind, referral_id, peer, body,
       CASE state WHEN 'rejected' THEN 'dead' ELSE state END,
       attempts, created_at, next_attempt_at, delivered_at, last_error
FROM outbox;

DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (peer, state, seq);
