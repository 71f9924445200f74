-- The staff console: accounts and sessions.
--
-- An account is a member of this agency's staff who signs in to the browser console: a
-- username (a staff identifier, never a subject's), a role, an argon2id password hash (PHC
-- string), and the raw TOTP secret (RFC 6238). Failed sign-ins are counted per account and lock
-- it for a while; the last TOTP step used is kept so a code cannot be replayed.
CREATE TABLE console_accounts (
    username        TEXT PRIMARY KEY,
    role            TEXT NOT NULL,             -- case-worker, chair, auditor or admin
    password_hash   TEXT NOT NULL,             -- argon2id, PHC string format
    totp_secret     BYTEA NOT NULL,             -- raw bytes (160 bits)
    totp_last_step  BIGINT NOT NULL,          -- the last 30 s step accepted; 0 before any
    disabled        BIGINT NOT NULL,          -- 0 or 1
    failed_logins   BIGINT NOT NULL,          -- consecutive failures since the last success
    locked_until    BIGINT,                   -- Unix ms; sign-in refused until then
    created_at      BIGINT NOT NULL,
    changed_at      BIGINT NOT NULL,
    last_sign_in    BIGINT
);

-- Sessions live here rather than in one process's memory, so that replicas of a node behind
-- one address share them and a restart does not sign everyone out. Only the SHA-256 of the
-- session id is stored: a copy of the database does not let anyone act as a signed-in user.
CREATE TABLE console_sessions (
    id_hash         TEXT PRIMARY KEY,          -- hex SHA-256 of the cookie's value
    username        TEXT NOT NULL REFERENCES console_accounts (username) ON DELETE CASCADE,
    csrf            TEXT NOT NULL,             -- the per-session token every POST must carry
    created_at      BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,          -- Unix ms of the last request; idle lock counts from here
    locked          BIGINT NOT NULL           -- 1 once idle past the limit, until unlocked
);

CREATE INDEX console_sessions_by_user ON console_sessions (username);
