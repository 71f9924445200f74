-- "My cases" (issue 18): this team's own references for a case, who has read what, and when a
-- status change reached this node.
--
-- A team's own case number and its local reference for the person are kept here and never
-- sent. They identify the person, so they are stored only sealed (AES-256-GCM), under the
-- referral's data key when it has one (a received referral, a forward), else under a key made
-- for the case with the referral's id (the key a sent referral's received case messages use
-- too); a purge deletes the rows and the key. The search cannot read sealed values, so it
-- matches keyed digests instead: an HMAC, under the node's case key (a file outside the
-- database), of every prefix of each normalised reference (three characters and longer, and
-- the whole). A copy of the database alone neither reads nor guesses a case number.
CREATE TABLE case_references (
    referral_id     TEXT PRIMARY KEY,
    data_key        TEXT NOT NULL,             -- the key both values are sealed under
    case_number     BLOB,                      -- sealed; this team's case number
    local_reference BLOB,                      -- sealed; this team's reference for the person
    changed_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE case_reference_digests (
    digest          TEXT NOT NULL,             -- hex HMAC of one normalised prefix
    referral_id     TEXT NOT NULL,
    PRIMARY KEY (digest, referral_id)
) STRICT;

CREATE INDEX case_reference_digests_by_referral ON case_reference_digests (referral_id);

-- When each staff member last opened each case: a case is unread for them when something
-- arrived on it after that. The reader is named as the audit log names them ("console alice").
CREATE TABLE case_reads (
    reader          TEXT NOT NULL,
    referral_id     TEXT NOT NULL,
    opened_at       INTEGER NOT NULL,
    PRIMARY KEY (reader, referral_id)
) STRICT;

CREATE INDEX case_reads_by_referral ON case_reads (referral_id);

-- When this node recorded a status change (`at` is its author's clock): what arrived after a
-- reader last opened a case is judged by this node's own clock. Empty on older rows.
ALTER TABLE status_events ADD COLUMN recorded_at INTEGER;
