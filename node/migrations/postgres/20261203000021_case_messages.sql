-- Case messages: what the two teams of a shared referral say after it (questions and answers,
-- new information, management plans, reassessments). The PostgreSQL twin of the SQLite
-- migration of the same name.
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
    urgent          BIGINT NOT NULL,           -- 0 or 1
    at              BIGINT NOT NULL,           -- when its author's node accepted it
    recorded_at     BIGINT NOT NULL,           -- when this node stored it
    next_reassessment TEXT,                    -- YYYY-MM-DD, from a plan, for the due list
    categories      TEXT NOT NULL,             -- comma-separated category names
    decisions       TEXT NOT NULL,             -- a sent message's filter decisions, JSON
    digest          TEXT NOT NULL,             -- SHA-256 of the canonical body, hex
    data_key        TEXT,                      -- the body is sealed when set
    seen_at         BIGINT,                    -- a received one: when staff read the case after
    body            BYTEA NOT NULL
);

CREATE INDEX case_messages_by_referral ON case_messages (referral_id, at);
CREATE INDEX case_messages_unseen ON case_messages (direction, seen_at, urgent);

-- A new message kind.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('referral', 'status-update', 'retraction', 'retraction-ack', 'case-message'));
