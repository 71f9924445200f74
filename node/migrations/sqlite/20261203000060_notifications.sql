-- Notifications: what is new for staff, and how each staff member wants to hear of it.
--
-- A notification is written in the same transaction as the event it reports (a referral, a
-- status update or a case message received from the other team, or a message of ours that
-- could not be delivered), so none is lost and none is made twice. It holds only ids, the
-- other team, the kind of event and its code: never a name, a narrative or a reference, so it
-- may outlive a purge of its case.
CREATE TABLE notifications (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL CHECK (kind IN ('referral-received', 'status-update',
                        'case-message', 'delivery-failed')),
    detail          TEXT,                      -- the status or case message kind, a code
    referral_id     TEXT NOT NULL,
    team            TEXT NOT NULL,             -- the other team's identity URI
    message_id      TEXT NOT NULL,             -- the message that made it
    at              INTEGER NOT NULL           -- Unix ms, when this node stored it
) STRICT;

-- Each staff member's own settings. The email address is personal data: it is used to send,
-- and never logged or copied into another table (a mail waiting to go names the account).
CREATE TABLE console_preferences (
    username        TEXT PRIMARY KEY REFERENCES console_accounts (username) ON DELETE CASCADE,
    email           TEXT,                      -- where notifications go; none when NULL
    email_on        INTEGER NOT NULL,          -- 0 or 1
    email_kinds     TEXT NOT NULL,             -- comma-separated notification kinds wanted
    time_zone       TEXT,                      -- IANA name; the browser's when NULL
    seen_through    INTEGER NOT NULL,          -- the last notification seq this user has seen
    changed_at      INTEGER NOT NULL
) STRICT;

-- The time zone the browser reported at sign-in, for staff who have not chosen one.
ALTER TABLE console_sessions ADD COLUMN time_zone TEXT;

-- Emails to send: one per notification and staff member who asked for that kind, made by the
-- mail job from `notifications` after `mail_cursor`, and marked sent once the relay took it,
-- so a restart sends nothing twice.
CREATE TABLE notification_mails (
    notification_seq INTEGER NOT NULL REFERENCES notifications (seq) ON DELETE CASCADE,
    username        TEXT NOT NULL REFERENCES console_accounts (username) ON DELETE CASCADE,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'dropped')),
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,                   -- claimed by a replica's mail job until then
    sent_at         INTEGER,
    PRIMARY KEY (notification_seq, username)
) STRICT;

CREATE INDEX notification_mails_due ON notification_mails (state, next_attempt_at);

-- How far the mail job has turned notifications into mails: one row.
CREATE TABLE mail_cursor (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    through_seq     INTEGER NOT NULL
) STRICT;

INSERT INTO mail_cursor (id, through_seq) VALUES (1, 0);
