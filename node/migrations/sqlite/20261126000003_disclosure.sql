-- Consent records and the filter's decisions.

CREATE TABLE consents (
    id              TEXT PRIMARY KEY,          -- UUIDv7
    recorded_at     INTEGER NOT NULL,
    revoked_at      INTEGER,
    body            BLOB NOT NULL              -- canonical protobuf encoding
) STRICT;

-- For a sent referral: the filter's decision per category (JSON), kept with what was sent so
-- counsel can see later why each category went or stayed.
ALTER TABLE referrals ADD COLUMN decisions TEXT NOT NULL DEFAULT '[]';
