//! The console's staff accounts as an admin manages them: add, list, disable, unlock, and new
//! credentials or a new authenticator. The Admin API (`tatmx user ...`) and the console's
//! accounts page both call these, so the rules are the same whichever an admin uses.
//!
//! Every change is written with its `account-change` audit entry, naming the admin as the
//! actor, in one transaction (`store::accounts`). Credentials are issued here and handed back
//! once; the store keeps only the password's hash and the TOTP secret.

use super::{Actor, App, AppError};
use crate::staff::{StaffRole, credentials};
use crate::store::accounts::{Account, Credentials};

/// Credentials issued to an account, shown to the admin this once.
pub struct IssuedAccount {
    /// The account as it now is.
    pub account: Account,
    /// The new password, when one was issued (not for a new authenticator alone).
    pub password: Option<String>,
    /// The TOTP secret in base32, for typing into an authenticator app by hand.
    pub totp_secret: String,
    /// The `otpauth://` URI an authenticator app reads.
    pub totp_uri: String,
}

impl std::fmt::Debug for IssuedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedAccount")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// New credentials, made off the async threads: argon2id is deliberately slow.
async fn issue() -> Result<credentials::Issued, AppError> {
    tokio::task::spawn_blocking(credentials::issue)
        .await
        .map_err(|e| AppError::Precondition(format!("credentials could not be made: {e}")))?
        .map_err(|e| AppError::Precondition(format!("credentials could not be made: {e}")))
}

/// Refuses a change an admin may not make to their own account from the console: they would
/// lock themselves out, and no admin may be left to undo it.
fn not_own(username: &str, actor: &Actor, what: &str) -> Result<(), AppError> {
    if actor.console_username() == Some(username) {
        return Err(AppError::Precondition(format!(
            "you cannot {what} your own account; another admin can"
        )));
    }
    Ok(())
}

impl App {
    /// Every console account, by username.
    pub async fn accounts(&self) -> Result<Vec<Account>, AppError> {
        Ok(self.store.accounts().await?)
    }

    /// One console account.
    pub async fn account(&self, username: &str) -> Result<Option<Account>, AppError> {
        Ok(self.store.account(username).await?)
    }

    /// Adds an account with a new password and TOTP secret; `None`, and nothing written,
    /// when the username is taken.
    pub async fn add_account(
        &self,
        username: &str,
        role: StaffRole,
        actor: &Actor,
    ) -> Result<Option<IssuedAccount>, AppError> {
        credentials::check_username(username).map_err(|e| AppError::invalid("username", e))?;
        let issued = issue().await?;
        let added = self
            .store
            .add_account(
                username,
                role,
                &Credentials {
                    password_hash: &issued.password_hash,
                    totp_secret: &issued.totp_secret,
                },
                actor,
            )
            .await?;
        if !added {
            return Ok(None);
        }
        tracing::info!(role = %role, "console account added");
        let Some(account) = self.store.account(username).await? else {
            return Ok(None);
        };
        self.issued(account, Some(issued.password), &issued.totp_secret)
            .map(Some)
    }

    /// Disables an account and ends its sessions; `None` when there is no such account. An
    /// admin may not disable their own account.
    pub async fn disable_account(
        &self,
        username: &str,
        actor: &Actor,
    ) -> Result<Option<Account>, AppError> {
        not_own(username, actor, "disable")?;
        let account = self.store.disable_account(username, actor).await?;
        if let Some(account) = &account {
            tracing::info!(role = %account.role, "console account disabled");
        }
        Ok(account)
    }

    /// Clears an account's failed sign-ins and lockout, keeping its password and
    /// authenticator; `None` when there is no such account.
    pub async fn unlock_account(
        &self,
        username: &str,
        actor: &Actor,
    ) -> Result<Option<Account>, AppError> {
        let account = self.store.unlock_account(username, actor).await?;
        if let Some(account) = &account {
            tracing::info!(role = %account.role, "console account unlocked");
        }
        Ok(account)
    }

    /// Gives an account a new password and TOTP secret, enables it, clears its lockout and
    /// ends its sessions; `None` when there is no such account.
    pub async fn reset_account(
        &self,
        username: &str,
        actor: &Actor,
    ) -> Result<Option<IssuedAccount>, AppError> {
        not_own(username, actor, "reset the credentials of")?;
        let issued = issue().await?;
        let Some(account) = self
            .store
            .reset_account(
                username,
                &Credentials {
                    password_hash: &issued.password_hash,
                    totp_secret: &issued.totp_secret,
                },
                actor,
            )
            .await?
        else {
            return Ok(None);
        };
        tracing::info!(role = %account.role, "console account given new credentials");
        self.issued(account, Some(issued.password), &issued.totp_secret)
            .map(Some)
    }

    /// Gives an account a new TOTP secret (a lost or replaced phone), keeping its password,
    /// and ends its sessions; `None` when there is no such account.
    pub async fn reset_authenticator(
        &self,
        username: &str,
        actor: &Actor,
    ) -> Result<Option<IssuedAccount>, AppError> {
        not_own(username, actor, "reset the authenticator of")?;
        let secret = credentials::issue_totp_secret();
        let Some(account) = self
            .store
            .reset_authenticator(username, &secret, actor)
            .await?
        else {
            return Ok(None);
        };
        tracing::info!(role = %account.role, "console account given a new authenticator");
        self.issued(account, None, &secret).map(Some)
    }

    /// Credentials as shown once: the secret in base32 and as the URI an app reads, issued
    /// by "tatmx <team>".
    fn issued(
        &self,
        account: Account,
        password: Option<String>,
        secret: &[u8],
    ) -> Result<IssuedAccount, AppError> {
        let issuer = format!("tatmx {}", self.trust.state().local.identity.team);
        let totp_uri = credentials::otpauth_uri(secret, &issuer, &account.username)
            .map_err(|e| AppError::Precondition(e.to_string()))?;
        Ok(IssuedAccount {
            totp_secret: credentials::secret_base32(secret),
            totp_uri,
            password,
            account,
        })
    }
}
