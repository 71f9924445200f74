//! Signing in, the lock screen, and signing out.
//!
//! A sign-in needs the password and a current TOTP code. Failures are limited twice: per
//! account (five in a row lock it for fifteen minutes, in the store, so every replica
//! agrees) and per source address (twenty in fifteen minutes, in this process, against
//! guessing across many accounts). Every attempt is audited with the staff username, never
//! what was typed as a password; answers do not say which of the three was wrong.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use time::OffsetDateTime;

use super::Console;
use super::listener::ClientAddr;
use super::page::{self, Fields};
use super::session::{self, Staff};
use super::words;
use crate::staff::credentials;
use crate::store::accounts::{Account, LockoutPolicy};

/// Consecutive failures that lock an account.
pub const MAX_FAILURES: u32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Failures one source address may make within [`LOCKOUT`] before it is refused.
pub const MAX_FAILURES_PER_SOURCE: usize = 20;
/// The most source addresses remembered at once; past it the oldest are forgotten.
const MAX_SOURCES: usize = 10_000;

const WRONG: &str = "The username, password or code is not right. Check them and try again; after five wrong tries in a row the account locks for fifteen minutes.";

/// Recent failed sign-ins by source address.
#[derive(Debug, Default)]
pub struct SourceLimiter {
    /// Times of failures within the window, per address.
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl SourceLimiter {
    /// Whether this address has failed too often lately.
    pub(super) fn blocked(&self, ip: IpAddr) -> bool {
        let Ok(mut all) = self.failures.lock() else {
            return false;
        };
        let recent = all.entry(ip).or_default();
        while recent.front().is_some_and(|t| t.elapsed() > LOCKOUT) {
            recent.pop_front();
        }
        let blocked = recent.len() >= MAX_FAILURES_PER_SOURCE;
        if recent.is_empty() {
            all.remove(&ip);
        }
        blocked
    }

    /// Counts a failure from this address.
    pub(super) fn failed(&self, ip: IpAddr) {
        let Ok(mut all) = self.failures.lock() else {
            return;
        };
        if all.len() >= MAX_SOURCES && !all.contains_key(&ip) {
            all.retain(|_, times| times.back().is_some_and(|t| t.elapsed() <= LOCKOUT));
            if all.len() >= MAX_SOURCES {
                return;
            }
        }
        all.entry(ip).or_default().push_back(Instant::now());
    }
}

/// The lockout every check of a password and code counts towards: sign-in, the lock screen
/// and the change of password.
pub(super) fn policy() -> LockoutPolicy {
    LockoutPolicy {
        max_failures: MAX_FAILURES,
        lockout: time::Duration::try_from(LOCKOUT).unwrap_or(time::Duration::MINUTE),
    }
}

fn form(message: Option<(&str, &str)>, username: &str) -> Markup {
    html! {
        @if let Some((kind, text)) = message {
            (page::notice(kind, text))
        }
        form.card method="post" action="/sign-in" id="sign-in-form" {
            label for="username" { "Username" }
            input type="text" id="username" name="username" value=(username)
                autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus;
            label for="password" { "Password" }
            input type="password" id="password" name="password" autocomplete="current-password" required;
            label for="code" { "Code from your authenticator app" }
            p.hint id="code-hint" { "Six digits; a new one every 30 seconds." }
            input.code type="text" id="code" name="code" inputmode="numeric" pattern="[0-9]{6}"
                maxlength="6" autocomplete="one-time-code" aria-describedby="code-hint" required;
            // The browser's time zone, filled in by /assets/zone.js, so that times are shown
            // in it until the staff member chooses one in their settings.
            input type="hidden" id="time-zone" name="time_zone" value="";
            p { button type="submit" id="sign-in" { "Sign in" } }
        }
    }
}

/// The sign-in page's heading, naming the team, so staff of several teams (or a demo with
/// two nodes) know which console they are signing in to.
fn sign_in_title(console: &Console) -> String {
    format!(
        "Sign in to {}'s tatmx console",
        words::team(&console.team())
    )
}

/// The lock screen's heading, naming the team as the sign-in page does.
fn locked_title(console: &Console) -> String {
    format!(
        "Session locked on {}'s tatmx console",
        words::team(&console.team())
    )
}

/// `GET /sign-in`
pub async fn page(State(console): State<Console>) -> Markup {
    page::bare(&sign_in_title(&console), form(None, ""))
}

/// The sign-in page again, saying why it was refused.
pub(super) fn refuse(
    console: &Console,
    status: StatusCode,
    text: &str,
    username: &str,
) -> Response {
    (
        status,
        page::bare(
            &sign_in_title(console),
            form(Some(("error", text)), username),
        ),
    )
        .into_response()
}

/// Checks the password (off the async threads: argon2id is slow on purpose) and the code as
/// of `now`; returns the code's time step when both are right.
pub(super) async fn check(
    account: Option<&Account>,
    password: String,
    code: &str,
    now: OffsetDateTime,
) -> Option<u64> {
    let now_secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    let hash = account.map(|a| a.password_hash.clone());
    let password_ok = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => credentials::verify_password(&hash, &password),
        None => {
            credentials::verify_nothing(&password);
            false
        }
    })
    .await
    .unwrap_or(false);
    let step = account.and_then(|a| credentials::check_code(&a.totp_secret, code, now_secs));
    // Both are checked whatever the first said, so timing does not tell which was wrong.
    if password_ok { step } else { None }
}

/// What a locked account is told.
pub(super) fn locked_text(until: OffsetDateTime) -> String {
    format!(
        "This account is locked after too many wrong tries. Try again after {}, or ask your node's admin to reset it.",
        page::datetime(until)
    )
}

/// `POST /sign-in`: times in the answer (until when an account is locked) are in the zone
/// the browser reported.
pub async fn submit(
    State(console): State<Console>,
    Extension(ClientAddr(remote)): Extension<ClientAddr>,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    let zone_name = page::zone_named(fields.get("time_zone")).map(|_| fields.get("time_zone"));
    let zone = zone_name
        .and_then(page::zone_named)
        .unwrap_or(jiff::tz::TimeZone::UTC);
    page::in_zone(zone, sign_in(console, remote, &fields, zone_name)).await
}

async fn sign_in(
    console: Console,
    remote: std::net::SocketAddr,
    fields: &Fields,
    zone_name: Option<&str>,
) -> Response {
    let username = fields.get("username").to_ascii_lowercase();
    let store = console.store();
    let account = match store.account(&username).await {
        Ok(account) => account,
        Err(e) => return page::store_failure(&e),
    };
    let known_name = account.as_ref().map(|a| a.username.clone());
    let known = known_name.as_deref();
    if console.inner.limiter.blocked(remote.ip()) {
        if let Err(e) = store
            .sign_in_failed(known, "too many failures from this address", policy())
            .await
        {
            return page::store_failure(&e);
        }
        tracing::warn!("console sign-in refused: too many failures from one address");
        return refuse(
            &console,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong sign-ins came from this computer. Wait fifteen minutes, or ask your node's admin.",
            &username,
        );
    }
    let now = console.now();
    if let Some(account) = &account
        && let Some(until) = account.locked_until.filter(|until| *until > now)
    {
        if let Err(e) = store
            .sign_in_failed(known, "the account is locked", policy())
            .await
        {
            return page::store_failure(&e);
        }
        return refuse(
            &console,
            StatusCode::FORBIDDEN,
            &locked_text(until),
            &username,
        );
    }
    let step = check(
        account.as_ref(),
        fields.get("password").to_owned(),
        fields.get("code"),
        now,
    )
    .await;
    let Some(account) = account else {
        console.inner.limiter.failed(remote.ip());
        if let Err(e) = store
            .sign_in_failed(None, "unknown account", policy())
            .await
        {
            return page::store_failure(&e);
        }
        return refuse(&console, StatusCode::UNAUTHORIZED, WRONG, &username);
    };
    let Some(step) = step else {
        console.inner.limiter.failed(remote.ip());
        return match store
            .sign_in_failed(known, "wrong password or code", policy())
            .await
        {
            Ok(Some(until)) => {
                tracing::warn!(role = %account.role, "console account locked after repeated failures");
                refuse(
                    &console,
                    StatusCode::FORBIDDEN,
                    &locked_text(until),
                    &username,
                )
            }
            Ok(None) => refuse(&console, StatusCode::UNAUTHORIZED, WRONG, &username),
            Err(e) => page::store_failure(&e),
        };
    };
    if account.disabled {
        if let Err(e) = store
            .sign_in_failed(known, "the account is disabled", policy())
            .await
        {
            return page::store_failure(&e);
        }
        return refuse(
            &console,
            StatusCode::FORBIDDEN,
            "This account is disabled. Ask your node's admin.",
            &username,
        );
    }
    let id = session::new_secret();
    let csrf = session::new_secret();
    match store
        .sign_in_succeeded(
            &account.username,
            step,
            &session::hash_id(&id),
            &csrf,
            now - time::Duration::try_from(session::MAX_SESSION).unwrap_or(time::Duration::DAY),
            zone_name,
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            if let Err(e) = store
                .sign_in_failed(known, "code used before", policy())
                .await
            {
                return page::store_failure(&e);
            }
            return refuse(
                &console,
                StatusCode::UNAUTHORIZED,
                "That code was used already. Wait for the next code in your app, then sign in with it.",
                &username,
            );
        }
        Err(e) => return page::store_failure(&e),
    }
    tracing::info!(role = %account.role, "console sign-in");
    let mut response = axum::response::Redirect::to(account.role.home()).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::set_cookie(&id));
    response
}

fn unlock_form(staff: &Staff, message: Option<&str>) -> Markup {
    html! {
        @if let Some(text) = message {
            (page::notice("error", text))
        } @else {
            (page::notice("warn", "Your session locked because it was idle. Enter your password and a new code to go on where you were."))
        }
        form.card method="post" action="/unlock" id="unlock-form" {
            (page::csrf_field(staff))
            p { "Signed in as " strong { (staff.username) } "." }
            label for="password" { "Password" }
            input type="password" id="password" name="password" autocomplete="current-password" required autofocus;
            label for="code" { "Code from your authenticator app" }
            input.code type="text" id="code" name="code" inputmode="numeric" pattern="[0-9]{6}"
                maxlength="6" autocomplete="one-time-code" required;
            p { button type="submit" id="unlock" { "Unlock" } }
        }
        form method="post" action="/sign-out" {
            (page::csrf_field(staff))
            button.secondary type="submit" id="sign-out" { "Sign out instead" }
        }
    }
}

/// `GET /unlock`: the lock screen.
pub async fn unlock_page(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
) -> Markup {
    page::bare(&locked_title(&console), unlock_form(&staff, None))
}

/// `POST /unlock`
pub async fn unlock(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Extension(ClientAddr(remote)): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    let store = console.store();
    let account = match store.account(&staff.username).await {
        Ok(account) => account,
        Err(e) => return page::store_failure(&e),
    };
    let step = check(
        account.as_ref(),
        fields.get("password").to_owned(),
        fields.get("code"),
        console.now(),
    )
    .await;
    let unlocked = match step {
        Some(step) => match store
            .unlock_session(&staff.session, &staff.username, step)
            .await
        {
            Ok(unlocked) => unlocked,
            Err(e) => return page::store_failure(&e),
        },
        None => false,
    };
    if unlocked {
        return session::redirect(&headers, staff.role.home());
    }
    console.inner.limiter.failed(remote.ip());
    match store
        .sign_in_failed(
            Some(&staff.username),
            "wrong password or code at the lock screen",
            policy(),
        )
        .await
    {
        Ok(Some(_)) => {
            // Locked out: the session ends too, and the sign-in page says until when.
            if let Err(e) = store.end_session(&staff.session).await {
                return page::store_failure(&e);
            }
            let mut response = session::redirect(&headers, "/sign-in");
            response
                .headers_mut()
                .insert(header::SET_COOKIE, session::clear_cookie());
            response
        }
        Ok(None) => (
            StatusCode::UNAUTHORIZED,
            page::bare(
                &locked_title(&console),
                unlock_form(
                    &staff,
                    Some("The password or code is not right. Try again with the newest code."),
                ),
            ),
        )
            .into_response(),
        Err(e) => page::store_failure(&e),
    }
}

/// `POST /sign-out`
pub async fn sign_out(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
) -> Response {
    if let Err(e) = console.store().end_session(&staff.session).await {
        return page::store_failure(&e);
    }
    let mut response = axum::response::Redirect::to("/sign-in").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_failures_and_others_are_not() {
        let limiter = SourceLimiter::default();
        let ip: IpAddr = [192, 0, 2, 7].into();
        let other: IpAddr = [192, 0, 2, 8].into();
        for _ in 0..MAX_FAILURES_PER_SOURCE {
            assert!(!limiter.blocked(ip));
            limiter.failed(ip);
        }
        assert!(limiter.blocked(ip));
        assert!(!limiter.blocked(other));
    }
}
