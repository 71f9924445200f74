-- Submissions by the client's idempotency key, so a retried call is answered, not repeated.
CREATE TABLE submissions (
    idempotency_key TEXT PRIMARY KEY,
    referral_id     TEXT NOT NULL,
    draft_digest    TEXT NOT NULL,             -- SHA-256 of the draft as the client sent it
    submitted_at    BIGINT NOT NULL
);
