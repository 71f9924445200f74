//! Notifications' SQL: recording one in the transaction of the event it reports, what staff
//! have seen, each staff member's preferences, and the mails the mail job makes from
//! notifications, claims, and marks sent.
//!
//! A notification row holds ids, the other team, and codes; the email address lives only in
//! `console_preferences` and is read when a mail is sent, so a mail waiting to go names the
//! account, not the address.

use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Store, StoreError, Tx, from_ms, ms};
use crate::notification::{Event, Notification, NotificationKind, Preferences};
use crate::staff::StaffRole;

/// The most notifications the mail job turns into mails in one transaction.
const FAN_OUT_BATCH: i64 = 500;

/// A mail the mail job has claimed: to whom, about what.
#[derive(Clone)]
pub struct DueMail {
    /// The notification it reports.
    pub notification: Notification,
    /// The account it goes to.
    pub username: String,
    /// The address, as the account holder set it. Personal data: never logged.
    pub email: String,
    /// Sending attempts made before this one.
    pub attempts: u32,
}

impl std::fmt::Debug for DueMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueMail")
            .field("notification", &self.notification.seq)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// Records a notification in the transaction of the event it reports: a redelivered message
/// returns before this is reached, so an event is notified once.
pub(super) async fn record(
    tx: &mut Tx,
    event: Event,
    referral_id: Uuid,
    team: &str,
    message_id: Uuid,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO notifications (kind, detail, referral_id, team, message_id, at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(event.kind().as_str())
    .bind(event.detail())
    .bind(referral_id.to_string())
    .bind(team)
    .bind(message_id.to_string())
    .bind(ms(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn notification_row(row: &AnyRow) -> Result<Notification, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let corrupt = |problem: &str| StoreError::Corrupt {
        table: "notifications",
        id: seq.to_string(),
        problem: problem.into(),
    };
    let kind: String = row.try_get("kind")?;
    let detail: Option<String> = row.try_get("detail")?;
    let event = Event::parse(&kind, detail.as_deref()).ok_or_else(|| corrupt("kind"))?;
    let referral_id: String = row.try_get("referral_id")?;
    Ok(Notification {
        seq,
        event,
        referral_id: Uuid::parse_str(&referral_id).map_err(|_| corrupt("referral_id"))?,
        team: row.try_get("team")?,
        at: from_ms(row.try_get("at")?),
    })
}

fn kinds_text(kinds: &[NotificationKind]) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn kinds_from(text: &str) -> Vec<NotificationKind> {
    text.split(',')
        .filter_map(NotificationKind::parse)
        .collect()
}

impl Store {
    /// The newest notifications, newest first.
    pub async fn notifications(&self, limit: u32) -> Result<Vec<Notification>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, kind, detail, referral_id, team, at FROM notifications
             ORDER BY seq DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(notification_row).collect()
    }

    /// The last notification this staff member has seen (0: none).
    pub async fn notifications_seen_through(&self, username: &str) -> Result<i64, StoreError> {
        let seen: Option<i64> =
            sqlx::query_scalar("SELECT seen_through FROM console_preferences WHERE username = $1")
                .bind(username)
                .fetch_optional(&self.pool)
                .await?;
        Ok(seen.unwrap_or(0))
    }

    /// How many notifications this staff member has not seen.
    pub async fn unseen_notifications(&self, username: &str) -> Result<u32, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE seq > COALESCE(
                 (SELECT seen_through FROM console_preferences WHERE username = $1), 0)",
        )
        .bind(username)
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// Notes that this staff member has seen every notification up to `through`; never moves
    /// back (two tabs may say so in either order).
    pub async fn mark_notifications_seen(
        &self,
        username: &str,
        through: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO console_preferences (username, email, email_on, email_kinds, time_zone,
                 seen_through, changed_at)
             VALUES ($1, NULL, 0, '', NULL, $2, $3)
             ON CONFLICT (username) DO UPDATE SET seen_through = CASE
                 WHEN excluded.seen_through > console_preferences.seen_through
                 THEN excluded.seen_through ELSE console_preferences.seen_through END",
        )
        .bind(username)
        .bind(through)
        .bind(ms(self.clock.now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// A staff member's own settings; the defaults (no email, the browser's zone) when they
    /// have saved none.
    pub async fn preferences(&self, username: &str) -> Result<Preferences, StoreError> {
        let row = sqlx::query(
            "SELECT email, email_on, email_kinds, time_zone FROM console_preferences
             WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Preferences::default());
        };
        Ok(Preferences {
            email: row.try_get("email")?,
            email_on: row.try_get::<i64, _>("email_on")? != 0,
            email_kinds: kinds_from(&row.try_get::<String, _>("email_kinds")?),
            time_zone: row.try_get("time_zone")?,
        })
    }

    /// Saves a staff member's own settings (what they have seen is kept).
    pub async fn set_preferences(
        &self,
        username: &str,
        preferences: &Preferences,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO console_preferences (username, email, email_on, email_kinds, time_zone,
                 seen_through, changed_at)
             VALUES ($1, $2, $3, $4, $5, 0, $6)
             ON CONFLICT (username) DO UPDATE SET email = excluded.email,
                 email_on = excluded.email_on, email_kinds = excluded.email_kinds,
                 time_zone = excluded.time_zone, changed_at = excluded.changed_at",
        )
        .bind(username)
        .bind(preferences.email.as_deref())
        .bind(i64::from(preferences.email_on))
        .bind(kinds_text(&preferences.email_kinds))
        .bind(preferences.time_zone.as_deref())
        .bind(ms(self.clock.now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Turns the notifications made since the last call into mails, one per enabled account
    /// whose role `may_read` cases and who asked for that kind by email, and moves the cursor
    /// past them, in one transaction. Notifications from before `not_before` (made while
    /// email was off) are passed over, so turning email on does not send a backlog. Returns
    /// how many mails were made.
    pub async fn make_mails(
        &self,
        may_read: impl Fn(StaffRole) -> bool,
        not_before: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        // Most rounds find nothing new: a read says so without taking the write turn.
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications
             WHERE seq > (SELECT through_seq FROM mail_cursor WHERE id = 1)",
        )
        .fetch_one(&self.pool)
        .await?;
        if waiting == 0 {
            return Ok(0);
        }
        let now = ms(self.clock.now());
        let mut tx = self.write().await?;
        let through: i64 = sqlx::query_scalar("SELECT through_seq FROM mail_cursor WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let rows = sqlx::query(
            "SELECT seq, kind, at FROM notifications WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(through)
        .bind(FAN_OUT_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(0);
        };
        let last: i64 = last.try_get("seq")?;
        let wanting = sqlx::query(
            "SELECT a.username, a.role, p.email_kinds FROM console_accounts a
             JOIN console_preferences p ON p.username = a.username
             WHERE a.disabled = 0 AND p.email_on = 1 AND p.email IS NOT NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut recipients = Vec::new();
        for row in &wanting {
            let role: String = row.try_get("role")?;
            if StaffRole::parse(&role).is_some_and(&may_read) {
                let username: String = row.try_get("username")?;
                let kinds = kinds_from(&row.try_get::<String, _>("email_kinds")?);
                recipients.push((username, kinds));
            }
        }
        let mut made = 0;
        for row in &rows {
            let seq: i64 = row.try_get("seq")?;
            if row.try_get::<i64, _>("at")? < ms(not_before) {
                continue;
            }
            let Some(kind) = NotificationKind::parse(&row.try_get::<String, _>("kind")?) else {
                continue;
            };
            for (username, kinds) in &recipients {
                if !kinds.contains(&kind) {
                    continue;
                }
                made += sqlx::query(
                    "INSERT INTO notification_mails (notification_seq, username, state, attempts,
                         next_attempt_at, lease_until, sent_at)
                     VALUES ($1, $2, 'pending', 0, $3, NULL, NULL)
                     ON CONFLICT (notification_seq, username) DO NOTHING",
                )
                .bind(seq)
                .bind(username)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
        }
        let moved = sqlx::query(
            "UPDATE mail_cursor SET through_seq = $1 WHERE id = 1 AND through_seq = $2",
        )
        .bind(last)
        .bind(through)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 0 {
            // Another replica made these mails meanwhile: keep its, drop ours.
            return Ok(0);
        }
        tx.commit().await?;
        Ok(usize::try_from(made).unwrap_or(usize::MAX))
    }

    /// Claims up to `limit` mails due now, for `lease` (so another replica's job leaves them
    /// alone meanwhile). A mail whose account has since turned email off, lost its address,
    /// was disabled, or no longer `may_read` cases, is dropped instead of claimed.
    pub async fn claim_mails(
        &self,
        may_read: impl Fn(StaffRole) -> bool,
        lease: time::Duration,
        limit: u32,
    ) -> Result<Vec<DueMail>, StoreError> {
        let now = self.clock.now();
        let due: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM notification_mails
             WHERE state = 'pending' AND next_attempt_at <= $1",
        )
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await?;
        if due == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.write().await?;
        let rows = sqlx::query(
            "SELECT m.notification_seq, m.username, m.attempts, a.role, a.disabled, p.email,
                    p.email_on, p.email_kinds,
                    n.seq, n.kind, n.detail, n.referral_id, n.team, n.at
             FROM notification_mails m
             JOIN notifications n ON n.seq = m.notification_seq
             JOIN console_accounts a ON a.username = m.username
             LEFT JOIN console_preferences p ON p.username = m.username
             WHERE m.state = 'pending' AND m.next_attempt_at <= $1
               AND (m.lease_until IS NULL OR m.lease_until < $2)
             ORDER BY m.notification_seq LIMIT $3",
        )
        .bind(ms(now))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut due = Vec::new();
        for row in &rows {
            let notification = notification_row(row)?;
            let username: String = row.try_get("username")?;
            let email: Option<String> = row.try_get("email")?;
            let wanted = row.try_get::<Option<i64>, _>("email_on")?.unwrap_or(0) != 0
                && row.try_get::<i64, _>("disabled")? == 0
                && kinds_from(
                    &row.try_get::<Option<String>, _>("email_kinds")?
                        .unwrap_or_default(),
                )
                .contains(&notification.event.kind())
                && StaffRole::parse(&row.try_get::<String, _>("role")?).is_some_and(&may_read);
            let (state, lease_until) = match (&email, wanted) {
                (Some(_), true) => ("pending", Some(ms(now + lease))),
                _ => ("dropped", None),
            };
            let claimed = sqlx::query(
                "UPDATE notification_mails SET state = $1, lease_until = $2
                 WHERE notification_seq = $3 AND username = $4 AND state = 'pending'",
            )
            .bind(state)
            .bind(lease_until)
            .bind(notification.seq)
            .bind(&username)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if let (1, Some(email), true) = (claimed, email, wanted) {
                due.push(DueMail {
                    notification,
                    username,
                    email,
                    attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(0),
                });
            }
        }
        tx.commit().await?;
        Ok(due)
    }

    /// Marks a mail sent: the relay took it, and it is never sent again.
    pub async fn mail_sent(&self, seq: i64, username: &str) -> Result<(), StoreError> {
        let now = ms(self.clock.now());
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE notification_mails SET state = 'sent', sent_at = $1, attempts = attempts + 1,
                 lease_until = NULL
             WHERE notification_seq = $2 AND username = $3",
        )
        .bind(now)
        .bind(seq)
        .bind(username)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Records a failed attempt: tried again at `retry_at`, or given up for good when `None`.
    pub async fn mail_failed(
        &self,
        seq: i64,
        username: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE notification_mails SET state = $1, attempts = attempts + 1,
                 next_attempt_at = $2, lease_until = NULL
             WHERE notification_seq = $3 AND username = $4 AND state = 'pending'",
        )
        .bind(if retry_at.is_some() {
            "pending"
        } else {
            "failed"
        })
        .bind(ms(retry_at.unwrap_or_else(|| self.clock.now())))
        .bind(seq)
        .bind(username)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// How many mails are in each state, for tests and operators: (pending, sent, failed).
    pub async fn mail_counts(&self) -> Result<(i64, i64, i64), StoreError> {
        let count = |state: &'static str| {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM notification_mails WHERE state = $1")
                .bind(state)
                .fetch_one(&self.pool)
        };
        Ok((
            count("pending").await?,
            count("sent").await?,
            count("failed").await?,
        ))
    }
}
