-- Consent records and the filter's decisions.

CREATE TABLE consents (
    id              TEXT PRIMARY KEY,          -- UUIDv7
    recorded_at     BIGINT NOT NULL,
    revoked_at      BIGINT,
    body            BYTEA NOT NULL             -- canonical protobuf encoding
);

-- For a sent referral: the filter's decision per category (JSON), kept with what was sent so
-- counsel can see later why each category went or stayed.
ALTER TABLE referrals ADD COLUMN decisions TEXT NOT NULL DEFAULT '[]';
