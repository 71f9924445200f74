-- Consultations: every partner's copy of one request shares a consultation id.
ALTER TABLE referrals ADD COLUMN consultation_id TEXT;
CREATE INDEX referrals_by_consultation ON referrals (consultation_id) WHERE consultation_id IS NOT NULL;
