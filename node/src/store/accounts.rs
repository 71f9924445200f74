//! The console's accounts and sessions: the SQL behind staff sign-in.
//!
//! Every change is written with its audit entry in one transaction (sign-ins, refusals,
//! lockouts, an admin's changes), through the group commit like any other write. Sessions are
//! kept here, not in one process, so replicas share them; only a hash of each session id is
//! stored. Nothing here decides policy (how many failures lock an account, how long a session
//! may idle): the console passes those in.

use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::{Store, StoreError, Tx, audit_log, from_ms, ms};
use crate::actor::Actor;
use crate::audit::{self, AuditKind};
use crate::staff::StaffRole;

/// A console account as stored, credentials included. `Debug` leaves the credentials out.
#[derive(Clone)]
pub struct Account {
    /// The staff member's username: a staff identifier, never a subject's.
    pub username: String,
    /// What the account may do.
    pub role: StaffRole,
    /// The argon2id hash, PHC string format.
    pub password_hash: String,
    /// The raw TOTP secret.
    pub totp_secret: Vec<u8>,
    /// The last TOTP time step accepted, so that a code is good for one sign-in only.
    pub totp_last_step: u64,
    /// A disabled account cannot sign in, and has no sessions.
    pub disabled: bool,
    /// Consecutive failed sign-ins since the last success or lockout.
    pub failed_logins: u32,
    /// Sign-in is refused until then.
    pub locked_until: Option<OffsetDateTime>,
    /// When the account was added.
    pub created_at: OffsetDateTime,
    /// The last successful sign-in.
    pub last_sign_in: Option<OffsetDateTime>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .field("failed_logins", &self.failed_logins)
            .field("locked_until", &self.locked_until)
            .finish_non_exhaustive()
    }
}

/// New credentials for an account: a password hash and a TOTP secret.
pub struct Credentials<'a> {
    /// argon2id, PHC string format.
    pub password_hash: &'a str,
    /// The raw TOTP secret.
    pub totp_secret: &'a [u8],
}

/// A console session, as looked up on each request.
#[derive(Debug, Clone)]
pub struct Session {
    /// Whose session.
    pub username: String,
    /// The account's role now (a changed role applies at once).
    pub role: StaffRole,
    /// The token every POST of this session must carry.
    pub csrf: String,
    /// When it was opened.
    pub created_at: OffsetDateTime,
    /// The last request.
    pub last_seen: OffsetDateTime,
    /// Idle past the limit: only the lock screen is served until it is unlocked.
    pub locked: bool,
    /// The IANA time zone times are shown in: the one the staff member chose, else the one
    /// their browser reported at sign-in; `None` for UTC.
    pub time_zone: Option<String>,
}

/// What the console asks of a sign-in that failed.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock the account.
    pub max_failures: u32,
    /// For how long.
    pub lockout: time::Duration,
}

fn account_row(row: &AnyRow) -> Result<Account, StoreError> {
    let username: String = row.try_get("username")?;
    let role: String = row.try_get("role")?;
    let role = StaffRole::parse(&role).ok_or_else(|| StoreError::Corrupt {
        table: "console_accounts",
        id: username.clone(),
        problem: "role".into(),
    })?;
    Ok(Account {
        role,
        password_hash: row.try_get("password_hash")?,
        totp_secret: row.try_get("totp_secret")?,
        totp_last_step: u64::try_from(row.try_get::<i64, _>("totp_last_step")?).unwrap_or(0),
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        failed_logins: u32::try_from(row.try_get::<i64, _>("failed_logins")?).unwrap_or(u32::MAX),
        locked_until: row.try_get::<Option<i64>, _>("locked_until")?.map(from_ms),
        created_at: from_ms(row.try_get("created_at")?),
        last_sign_in: row.try_get::<Option<i64>, _>("last_sign_in")?.map(from_ms),
        username,
    })
}

const ACCOUNT_COLUMNS: &str = "username, role, password_hash, totp_secret, totp_last_step, \
     disabled, failed_logins, locked_until, created_at, last_sign_in";

fn step_param(step: u64) -> i64 {
    // Steps of 30 s since 1970 stay far below i64::MAX.
    i64::try_from(step).unwrap_or(i64::MAX)
}

impl Store {
    /// Adds an account; `false` (and nothing written) when the username is taken.
    pub async fn add_account(
        &self,
        username: &str,
        role: StaffRole,
        credentials: &Credentials<'_>,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let now = ms(self.clock.now());
        let mut tx = self.write().await?;
        let added = sqlx::query(
            "INSERT INTO console_accounts (username, role, password_hash, totp_secret,
                 totp_last_step, disabled, failed_logins, locked_until, created_at, changed_at,
                 last_sign_in)
             VALUES ($1, $2, $3, $4, 0, 0, 0, NULL, $5, $6, NULL)
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(username)
        .bind(role.as_str())
        .bind(credentials.password_hash)
        .bind(credentials.totp_secret.to_vec())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !added {
            return Ok(false);
        }
        audit_log::append(
            &mut tx,
            &audit::account_change("added", username, role.as_str(), actor),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every account, by username.
    pub async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM console_accounts ORDER BY username"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(account_row).collect()
    }

    /// One account.
    pub async fn account(&self, username: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM console_accounts WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account_row).transpose()
    }

    /// Disables an account and ends its sessions at once; `None` when there is no such account.
    pub async fn disable_account(
        &self,
        username: &str,
        actor: &Actor,
    ) -> Result<Option<Account>, StoreError> {
        let mut tx = self.write().await?;
        let changed = sqlx::query(
            "UPDATE console_accounts SET disabled = 1, changed_at = $1 WHERE username = $2",
        )
        .bind(ms(self.clock.now()))
        .bind(username)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        ended_by_admin(tx, username, "disabled", actor)
            .await
            .map(Some)
    }

    /// Gives an account new credentials, enables it, clears its failures and lockout, and ends
    /// its sessions; `None` when there is no such account.
    pub async fn reset_account(
        &self,
        username: &str,
        credentials: &Credentials<'_>,
        actor: &Actor,
    ) -> Result<Option<Account>, StoreError> {
        let mut tx = self.write().await?;
        let changed = sqlx::query(
            "UPDATE console_accounts SET password_hash = $1, totp_secret = $2,
                 totp_last_step = 0, disabled = 0, failed_logins = 0, locked_until = NULL,
                 changed_at = $3
             WHERE username = $4",
        )
        .bind(credentials.password_hash)
        .bind(credentials.totp_secret.to_vec())
        .bind(ms(self.clock.now()))
        .bind(username)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        ended_by_admin(tx, username, "reset", actor).await.map(Some)
    }

    /// Clears an account's failed sign-ins and lockout, keeping its credentials and its
    /// sessions (a locked account has none), with its audit entry; `None` when there is no
    /// such account.
    pub async fn unlock_account(
        &self,
        username: &str,
        actor: &Actor,
    ) -> Result<Option<Account>, StoreError> {
        let mut tx = self.write().await?;
        let changed = sqlx::query(
            "UPDATE console_accounts SET failed_logins = 0, locked_until = NULL, changed_at = $1
             WHERE username = $2",
        )
        .bind(ms(self.clock.now()))
        .bind(username)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM console_accounts WHERE username = $1"
        ))
        .bind(username)
        .fetch_one(&mut *tx)
        .await?;
        let account = account_row(&row)?;
        audit_log::append(
            &mut tx,
            &audit::account_change("unlocked", username, account.role.as_str(), actor),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(account))
    }

    /// Gives an account a new TOTP secret, keeping its password, and ends its sessions, with
    /// its audit entry; `None` when there is no such account.
    pub async fn reset_authenticator(
        &self,
        username: &str,
        totp_secret: &[u8],
        actor: &Actor,
    ) -> Result<Option<Account>, StoreError> {
        let mut tx = self.write().await?;
        let changed = sqlx::query(
            "UPDATE console_accounts SET totp_secret = $1, totp_last_step = 0, changed_at = $2
             WHERE username = $3",
        )
        .bind(totp_secret.to_vec())
        .bind(ms(self.clock.now()))
        .bind(username)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        ended_by_admin(tx, username, "authenticator reset", actor)
            .await
            .map(Some)
    }

    /// Records a refused sign-in (`reason` is a fixed phrase, never what was typed). For an
    /// existing account the failure counts towards its lockout, unless it is locked already;
    /// returns until when the account is now locked, if it is.
    pub async fn sign_in_failed(
        &self,
        username: Option<&str>,
        reason: &str,
        policy: LockoutPolicy,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let now = self.clock.now();
        let mut tx = self.write().await?;
        let Some(username) = username else {
            audit_log::append(
                &mut tx,
                &audit::sign_in(AuditKind::SignInFailed, None, json!({ "reason": reason })),
            )
            .await?;
            tx.commit().await?;
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT failed_logins, locked_until FROM console_accounts WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let locked_until = row.try_get::<Option<i64>, _>("locked_until")?.map(from_ms);
        if let Some(until) = locked_until.filter(|until| *until > now) {
            audit_log::append(
                &mut tx,
                &audit::sign_in(
                    AuditKind::SignInFailed,
                    Some(username),
                    json!({ "reason": "the account is locked" }),
                ),
            )
            .await?;
            tx.commit().await?;
            return Ok(Some(until));
        }
        let failures = row.try_get::<i64, _>("failed_logins")? + 1;
        let lock = failures >= i64::from(policy.max_failures);
        let until = lock.then(|| now + policy.lockout);
        sqlx::query(
            "UPDATE console_accounts SET failed_logins = $1, locked_until = $2 WHERE username = $3",
        )
        .bind(if lock { 0 } else { failures })
        .bind(until.map(ms))
        .bind(username)
        .execute(&mut *tx)
        .await?;
        audit_log::append(
            &mut tx,
            &audit::sign_in(
                AuditKind::SignInFailed,
                Some(username),
                json!({ "reason": reason, "consecutive_failures": failures }),
            ),
        )
        .await?;
        if let Some(until) = until {
            audit_log::append(
                &mut tx,
                &audit::sign_in(
                    AuditKind::AccountLocked,
                    Some(username),
                    json!({
                        "after_failures": failures,
                        "locked_for_seconds": policy.lockout.whole_seconds(),
                        "locked_until": ms(until),
                    }),
                ),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(until)
    }

    /// Records a sign-in whose password and code were right, and opens the session, in one
    /// transaction. The code's time step must be later than any used before, so a code
    /// cannot be replayed; `false` (and nothing written) when it was not, or the account was
    /// disabled meanwhile. Sessions opened before `expired_before` (anyone's, past their
    /// lifetime) are deleted in the same transaction, so abandoned ones do not pile up.
    /// `time_zone` is the IANA zone the browser reported, if it did.
    pub async fn sign_in_succeeded(
        &self,
        username: &str,
        totp_step: u64,
        session_id_hash: &str,
        csrf: &str,
        expired_before: OffsetDateTime,
        time_zone: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = ms(self.clock.now());
        let mut tx = self.write().await?;
        if !spend_code(&mut tx, username, totp_step, now).await? {
            return Ok(false);
        }
        sqlx::query("DELETE FROM console_sessions WHERE created_at < $1")
            .bind(ms(expired_before))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, username, csrf, created_at, last_seen, locked,
                 time_zone)
             VALUES ($1, $2, $3, $4, $5, 0, $6)",
        )
        .bind(session_id_hash)
        .bind(username)
        .bind(csrf)
        .bind(now)
        .bind(now)
        .bind(time_zone)
        .execute(&mut *tx)
        .await?;
        audit_log::append(
            &mut tx,
            &audit::sign_in(
                AuditKind::SignIn,
                Some(username),
                json!({ "unlock": false }),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Unlocks an idle-locked session whose user gave the password and a new code again;
    /// `false` when the code's step was used before.
    pub async fn unlock_session(
        &self,
        session_id_hash: &str,
        username: &str,
        totp_step: u64,
    ) -> Result<bool, StoreError> {
        let now = ms(self.clock.now());
        let mut tx = self.write().await?;
        if !spend_code(&mut tx, username, totp_step, now).await? {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE console_sessions SET locked = 0, last_seen = $1
             WHERE id_hash = $2 AND username = $3",
        )
        .bind(now)
        .bind(session_id_hash)
        .bind(username)
        .execute(&mut *tx)
        .await?;
        audit_log::append(
            &mut tx,
            &audit::sign_in(AuditKind::SignIn, Some(username), json!({ "unlock": true })),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Stores the new password hash its holder chose, after they gave the current password
    /// and a new code, and ends every other session of the account, keeping `keep_session`
    /// (the one the change was made in), in one transaction with its audit entry. The code's
    /// time step is spent as at sign-in, and a successful re-authentication clears earlier
    /// failures as a sign-in does. Returns how many other sessions ended, or `None` (and
    /// nothing written) when the step was used before or the account was disabled meanwhile.
    pub async fn change_password(
        &self,
        username: &str,
        totp_step: u64,
        password_hash: &str,
        keep_session: &str,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.write().await?;
        let updated = sqlx::query(
            "UPDATE console_accounts SET password_hash = $1, totp_last_step = $2,
                 failed_logins = 0, locked_until = NULL, changed_at = $3
             WHERE username = $4 AND totp_last_step < $5 AND disabled = 0",
        )
        .bind(password_hash)
        .bind(step_param(totp_step))
        .bind(ms(self.clock.now()))
        .bind(username)
        .bind(step_param(totp_step))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        // Whoever else holds a session of this account (a stolen cookie, a forgotten
        // browser) is out; the holder, who just proved both factors, stays in.
        let ended =
            sqlx::query("DELETE FROM console_sessions WHERE username = $1 AND id_hash <> $2")
                .bind(username)
                .bind(keep_session)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let row = sqlx::query("SELECT role FROM console_accounts WHERE username = $1")
            .bind(username)
            .fetch_one(&mut *tx)
            .await?;
        let role: String = row.try_get("role")?;
        let mut record = audit::account_change(
            "password changed by its holder",
            username,
            &role,
            &Actor::console(username),
        );
        if let Some(detail) = record.detail.as_object_mut() {
            detail.insert("other_sessions_ended".into(), json!(ended));
        }
        audit_log::append(&mut tx, &record).await?;
        tx.commit().await?;
        Ok(Some(ended))
    }

    /// A live session of an enabled account.
    pub async fn console_session(
        &self,
        session_id_hash: &str,
    ) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT s.username, a.role, s.csrf, s.created_at, s.last_seen, s.locked,
                    COALESCE(p.time_zone, s.time_zone) AS time_zone
             FROM console_sessions s JOIN console_accounts a ON a.username = s.username
             LEFT JOIN console_preferences p ON p.username = s.username
             WHERE s.id_hash = $1 AND a.disabled = 0",
        )
        .bind(session_id_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let username: String = row.try_get("username")?;
        let role: String = row.try_get("role")?;
        let role = StaffRole::parse(&role).ok_or_else(|| StoreError::Corrupt {
            table: "console_accounts",
            id: username.clone(),
            problem: "role".into(),
        })?;
        Ok(Some(Session {
            username,
            role,
            csrf: row.try_get("csrf")?,
            created_at: from_ms(row.try_get("created_at")?),
            last_seen: from_ms(row.try_get("last_seen")?),
            locked: row.try_get::<i64, _>("locked")? != 0,
            time_zone: row.try_get("time_zone")?,
        }))
    }

    /// Notes a request on a session, now.
    pub async fn touch_session(&self, session_id_hash: &str) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE console_sessions SET last_seen = $1 WHERE id_hash = $2")
            .bind(ms(self.clock.now()))
            .bind(session_id_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Locks a session that was idle too long.
    pub async fn lock_session(&self, session_id_hash: &str) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE console_sessions SET locked = 1 WHERE id_hash = $1")
            .bind(session_id_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Ends a session (sign-out, or past its lifetime).
    pub async fn end_session(&self, session_id_hash: &str) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(session_id_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}

/// Records a sign-in or unlock whose password and code were right, in its transaction: the
/// code's time step is spent (so it cannot be replayed), and earlier failures and any lockout
/// are cleared. `false`, and nothing written, when the step was used before or the account
/// was disabled meanwhile.
async fn spend_code(
    tx: &mut Tx,
    username: &str,
    totp_step: u64,
    now: i64,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE console_accounts SET totp_last_step = $1, failed_logins = 0,
             locked_until = NULL, last_sign_in = $2
         WHERE username = $3 AND totp_last_step < $4 AND disabled = 0",
    )
    .bind(step_param(totp_step))
    .bind(now)
    .bind(username)
    .bind(step_param(totp_step))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(updated > 0)
}
/// The rest of an admin's change to an account, in its transaction: every session of the
/// account ends (a disabled or reset account must sign in again, if it may), the change is
/// audited, and the account is read back as it now is.
async fn ended_by_admin(
    mut tx: Tx,
    username: &str,
    action: &str,
    actor: &Actor,
) -> Result<Account, StoreError> {
    sqlx::query("DELETE FROM console_sessions WHERE username = $1")
        .bind(username)
        .execute(&mut *tx)
        .await?;
    let row = sqlx::query(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM console_accounts WHERE username = $1"
    ))
    .bind(username)
    .fetch_one(&mut *tx)
    .await?;
    let account = account_row(&row)?;
    audit_log::append(
        &mut tx,
        &audit::account_change(action, username, account.role.as_str(), actor),
    )
    .await?;
    tx.commit().await?;
    Ok(account)
}
