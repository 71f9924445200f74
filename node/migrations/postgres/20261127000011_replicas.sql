-- Replicas and a portable schema.
--
-- A delivery worker claims the outbox rows it is about to send with a lease, so that replicas
-- sharing this database never send one message twice, and a replica that dies mid-delivery
-- frees its rows when the lease runs out.
ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
ALTER TABLE outbox ADD COLUMN lease_until BIGINT;

-- The order a retraction's targets were recorded in (SQLite's rowid).
ALTER TABLE retraction_targets ADD COLUMN position BIGINT;
-- What a replica looks through for messages nobody holds.
CREATE INDEX outbox_pending ON outbox (peer) WHERE state = 'pending';
