-- Local trust state, changed through the Admin API and by importing signed directories.
-- Peers and anchors from the config file are not stored here; they are read at every start.

CREATE TABLE trust_anchors (
    fingerprint     TEXT PRIMARY KEY,          -- SHA-256 of the CA certificate DER, hex
    federation      TEXT NOT NULL,
    pem             TEXT NOT NULL,
    source          TEXT NOT NULL CHECK (source IN ('admin', 'directory')),
    added_at        BIGINT NOT NULL
);

CREATE TABLE trust_peers (
    identity        TEXT PRIMARY KEY,          -- team identity URI
    endpoint        TEXT NOT NULL,
    role            TEXT NOT NULL,
    discipline      TEXT NOT NULL,
    jurisdiction    TEXT NOT NULL,
    cjis_authorized BIGINT NOT NULL,
    pinned_sha256   TEXT,                      -- certificate fingerprint from the directory
    source          TEXT NOT NULL CHECK (source IN ('admin', 'directory')),
    added_at        BIGINT NOT NULL
);

-- A block applies whatever the peer's source, config included, until it is lifted.
CREATE TABLE blocked_peers (
    identity        TEXT PRIMARY KEY,
    blocked_at      BIGINT NOT NULL
);

-- A config peer that an admin removed stays removed until re-added.
CREATE TABLE removed_peers (
    identity        TEXT PRIMARY KEY,
    removed_at      BIGINT NOT NULL
);

CREATE TABLE directories (
    federation      TEXT PRIMARY KEY,
    sequence        BIGINT NOT NULL,
    issued_at       BIGINT NOT NULL,
    imported_at     BIGINT NOT NULL,
    document        TEXT NOT NULL              -- the signed document, exactly as imported
);

CREATE TABLE crls (
    federation      TEXT PRIMARY KEY,
    crl_number      BIGINT NOT NULL,
    pem             TEXT NOT NULL,
    imported_at     BIGINT NOT NULL
);
