-- The closed loop: why a status changed, and a completed assessment's minimal outcome.
ALTER TABLE status_events ADD COLUMN reason TEXT;
ALTER TABLE status_events ADD COLUMN outcome BYTEA;  -- canonical protobuf AssessmentOutcome
