-- Reasons that arrive, and status texts that are shredded (issue 17).
--
-- A decline or cancellation carries a coded reason from a fixed vocabulary, which says nothing
-- about the person and so always reaches the other team: it is kept readable here. The names
-- of the categories the filter kept back of a change (its free text, its outcome) are kept so
-- the timeline can say so. On a received referral the free text and the outcome are kept only
-- sealed under the referral's data key (`reason_sealed`, `outcome_sealed`), so purging the key
-- shreds them with the referral. On a referral this node sent (which has no data key and is
-- never purged) they stay in `reason` and `outcome`.
ALTER TABLE status_events ADD COLUMN reason_code TEXT;    -- e.g. referred-elsewhere
ALTER TABLE status_events ADD COLUMN withheld TEXT;       -- category names, comma-separated
ALTER TABLE status_events ADD COLUMN reason_sealed BLOB;
ALTER TABLE status_events ADD COLUMN outcome_sealed BLOB;
