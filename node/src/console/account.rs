//! The signed-in staff member's own account: changing their password, for every role.
//!
//! A session alone is not enough to change it: the page asks again for the current password
//! and a new code, so a session left unlocked (or a stolen cookie) cannot take the account
//! over, and a wrong answer counts towards the same lockout as a wrong sign-in. The new
//! password replaces the old at once and every other session of the account ends.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::Console;
use super::listener::ClientAddr;
use super::page::{self, Fields};
use super::session::{self, Staff};
use super::signin::{self, policy};
use crate::staff::credentials;

/// Where the page lives; the header links here for every role.
pub const PASSWORD_PAGE: &str = "/account/password";

const WRONG: &str = "The current password or code is not right. Check them and try again with the newest code; after five wrong tries in a row the account locks for fifteen minutes.";

/// `?changed=1` after a change, so that reloading the page does not send the form again.
#[derive(Debug, Deserialize)]
pub struct Outcome {
    /// Set when the password was just changed.
    changed: Option<String>,
}

fn form(staff: &Staff, message: Option<(&str, &str)>) -> Markup {
    html! {
        @if let Some((kind, text)) = message {
            div id=(if kind == "ok" { "password-changed" } else { "password-problem" }) {
                (page::notice(kind, text))
            }
        }
        p {
            "Choose a password you use nowhere else. Length is what makes it strong: a few "
            "unrelated words are long and easy to remember, and no digits or symbols are needed."
        }
        form.card method="post" action=(PASSWORD_PAGE) id="password-form" {
            (page::csrf_field(staff))
            label for="current-password" { "Current password" }
            input type="password" id="current-password" name="current_password"
                autocomplete="current-password" required autofocus;
            label for="new-password" { "New password" }
            p.hint id="new-password-hint" {
                "At least 12 characters and at most 256; not your username, and not the current password."
            }
            input type="password" id="new-password" name="new_password" autocomplete="new-password"
                minlength=(credentials::MIN_CHOSEN_PASSWORD_CHARS)
                maxlength=(credentials::MAX_CHOSEN_PASSWORD_CHARS)
                aria-describedby="new-password-hint" required;
            label for="confirm-password" { "New password again" }
            input type="password" id="confirm-password" name="confirm_password"
                autocomplete="new-password"
                minlength=(credentials::MIN_CHOSEN_PASSWORD_CHARS)
                maxlength=(credentials::MAX_CHOSEN_PASSWORD_CHARS) required;
            label for="code" { "Code from your authenticator app" }
            p.hint id="code-hint" { "Six digits; a new one every 30 seconds. A code works once." }
            input.code type="text" id="code" name="code" inputmode="numeric" pattern="[0-9]{6}"
                maxlength="6" autocomplete="one-time-code" aria-describedby="code-hint" required;
            p { button type="submit" id="change-password" { "Change password" } }
        }
    }
}

fn answer(
    console: &Console,
    staff: &Staff,
    status: StatusCode,
    message: Option<(&str, &str)>,
) -> Response {
    (
        status,
        page::layout(
            console,
            staff,
            "Change password",
            PASSWORD_PAGE,
            form(staff, message),
        ),
    )
        .into_response()
}

/// `GET /account/password`
pub async fn password_page(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Query(outcome): Query<Outcome>,
) -> Response {
    let changed = outcome.changed.is_some_and(|c| !c.is_empty());
    let message = changed.then_some((
        "ok",
        "Your password was changed. Any other session of your account was signed out; sign in with the new password from now on.",
    ));
    answer(&console, &staff, StatusCode::OK, message)
}

/// `POST /account/password`
pub async fn change_password(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Extension(ClientAddr(remote)): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    // Trimmed as at sign-in, which trims what it is given, so the new password is the one
    // that will sign in.
    let current = fields.get("current_password");
    let new = fields.get("new_password");
    let code = fields.get("code");
    let problem = |text: &str| {
        answer(
            &console,
            &staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(("error", text)),
        )
    };
    if current.is_empty() {
        return problem("Enter your current password, so the console knows it is you.");
    }
    if code.is_empty() {
        return problem("Enter the current code from your authenticator app.");
    }
    // The rules need no secret, so breaking them is answered before anything is checked,
    // and neither counts as a failure nor spends the code.
    if let Err(rule) = credentials::check_chosen_password(
        &staff.username,
        current,
        new,
        fields.get("confirm_password"),
    ) {
        return problem(&rule.to_string());
    }

    let store = console.store();
    if console.inner.limiter.blocked(remote.ip()) {
        if let Err(e) = store
            .sign_in_failed(
                Some(&staff.username),
                "too many failures from this address",
                policy(),
            )
            .await
        {
            return page::store_failure(&e);
        }
        return answer(
            &console,
            &staff,
            StatusCode::TOO_MANY_REQUESTS,
            Some((
                "error",
                "Too many wrong passwords or codes came from this computer. Wait fifteen minutes, or ask your node's admin.",
            )),
        );
    }
    let account = match store.account(&staff.username).await {
        Ok(account) => account,
        Err(e) => return page::store_failure(&e),
    };
    // Locked by failures elsewhere (someone guessing at the sign-in page): nothing is
    // checked until the lock ends, but this session, which did nothing wrong, stays.
    if let Some(until) = account
        .as_ref()
        .and_then(|a| a.locked_until)
        .filter(|until| *until > console.now())
    {
        if let Err(e) = store
            .sign_in_failed(Some(&staff.username), "the account is locked", policy())
            .await
        {
            return page::store_failure(&e);
        }
        return answer(
            &console,
            &staff,
            StatusCode::FORBIDDEN,
            Some(("error", &signin::locked_text(until))),
        );
    }
    let Some(step) = signin::check(account.as_ref(), current.to_owned(), code, console.now()).await
    else {
        return failed(
            &console,
            &staff,
            remote.ip(),
            "wrong password or code when changing the password",
            WRONG,
        )
        .await;
    };
    let new = new.to_owned();
    let hash = match tokio::task::spawn_blocking(move || credentials::hash_password(&new)).await {
        Ok(Ok(hash)) => hash,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "console: a new password could not be hashed");
            return unchanged(&console, &staff);
        }
        Err(e) => {
            tracing::error!(error = %e, "console: the password hashing task failed");
            return unchanged(&console, &staff);
        }
    };
    match store
        .change_password(&staff.username, step, &hash, &staff.session)
        .await
    {
        Ok(Some(ended)) => {
            tracing::info!(role = %staff.role, other_sessions_ended = ended, "console password changed by its holder");
            session::redirect(&headers, &format!("{PASSWORD_PAGE}?changed=1"))
        }
        Ok(None) => {
            failed(
                &console,
                &staff,
                remote.ip(),
                "code used before",
                "That code was used already. Wait for the next code in your app, then try again with it.",
            )
            .await
        }
        Err(e) => page::store_failure(&e),
    }
}

/// The password was right, but the new one could not be made ready to store.
fn unchanged(console: &Console, staff: &Staff) -> Response {
    answer(
        console,
        staff,
        StatusCode::INTERNAL_SERVER_ERROR,
        Some((
            "error",
            "Your password was not changed. Try again; if it keeps happening, tell your node's admin.",
        )),
    )
}

/// Counts a wrong current password or code as a failed sign-in (`reason` is a fixed phrase).
/// The failure that locks the account also ends this session, as at the lock screen: whoever
/// holds it has shown they do not know the password.
async fn failed(
    console: &Console,
    staff: &Staff,
    ip: std::net::IpAddr,
    reason: &str,
    message: &str,
) -> Response {
    console.inner.limiter.failed(ip);
    let store = console.store();
    match store
        .sign_in_failed(Some(&staff.username), reason, policy())
        .await
    {
        Ok(Some(until)) => {
            tracing::warn!(role = %staff.role, "console account locked after repeated failures");
            if let Err(e) = store.end_session(&staff.session).await {
                return page::store_failure(&e);
            }
            let mut response = signin::refuse(
                console,
                StatusCode::FORBIDDEN,
                &signin::locked_text(until),
                &staff.username,
            );
            response
                .headers_mut()
                .insert(header::SET_COOKIE, session::clear_cookie());
            response
        }
        Ok(None) => answer(
            console,
            staff,
            StatusCode::UNAUTHORIZED,
            Some(("error", message)),
        ),
        Err(e) => page::store_failure(&e),
    }
}
