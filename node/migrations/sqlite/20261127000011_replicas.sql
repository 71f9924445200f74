-- Replicas and a portable schema.
--
-- A delivery worker claims the outbox rows it is about to send with a lease, so that replicas
-- sharing a PostgreSQL store never send one message twice, and a replica that dies mid-delivery
-- frees its rows when the lease runs out. (A SQLite store serves one process; the columns are
-- here so both backends have one schema.)
ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
ALTER TABLE outbox ADD COLUMN lease_until INTEGER;

-- The order a retraction's targets were recorded in, which SQLite kept as the rowid and
-- PostgreSQL does not keep at all.
ALTER TABLE retraction_targets ADD COLUMN position INTEGER;
UPDATE retraction_targets SET position = rowid;
-- What a replica looks through for messages nobody holds.
CREATE INDEX outbox_pending ON outbox (peer) WHERE state = 'pending';
