-- Dead letters: a message undelivered past the maximum age, or refused by its peer, waits for
-- an admin's retry.
ALTER TABLE outbox DROP CONSTRAINT outbox_state_check;
UPDATE outbox SET state = 'dead' WHERE state = 'rejected';
ALTER TABLE outbox ADD CONSTRAINT outbox_state_check
    CHECK (state IN ('pending', 'delivered', 'dead'));
-- When an admin last retried it; the maximum age counts from here.
ALTER TABLE outbox ADD COLUMN retried_at BIGINT;
