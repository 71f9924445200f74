-- Forwarding: the team a referral was forwarded to, on the forward event of its timeline.
ALTER TABLE status_events ADD COLUMN forwarded_to TEXT;
