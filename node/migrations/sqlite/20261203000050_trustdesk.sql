-- The desk's consents and the auditor's search (issue 18): who recorded each consent, the
-- signed consent form attached to it, and an index for the audit log's filter by actor.
--
-- The signed form is this agency's own evidence of what was agreed. It is sealed under a
-- data key of its own (AES-256-GCM, crate::vault), bound to its consent's row, and never
-- leaves this node: no message to a peer reads this table. Replacing the form deletes the
-- old key with it. No file name is kept, since a name may carry the subject's.

ALTER TABLE consents ADD COLUMN recorded_by TEXT;  -- the actor, as the audit log records it

CREATE TABLE consent_forms (
    consent_id      TEXT PRIMARY KEY REFERENCES consents (id),
    content_type    TEXT NOT NULL CHECK (content_type IN
                        ('application/pdf', 'image/png', 'image/jpeg')),
    size            INTEGER NOT NULL,          -- bytes, before sealing
    digest          TEXT NOT NULL,             -- SHA-256 of the form as attached, hex
    data_key        TEXT NOT NULL,             -- data_keys.id: 'consent-form/<consent id>'
    body            BLOB NOT NULL,             -- sealed
    attached_at     INTEGER NOT NULL,
    attached_by     TEXT NOT NULL              -- the actor
) STRICT;

CREATE INDEX audit_by_actor ON audit_log (actor, seq);
