//! The admin's accounts page: every console account of this team (role, enabled or not,
//! locked or not, last sign-in), and adding one, disabling one, unlocking one, and issuing new
//! credentials or a new authenticator. Admin role only; everyone else gets 403, whatever the
//! browser sends.
//!
//! The rules live in the application layer ([`crate::app::accounts`]), shared with the Admin
//! API (`tatmx user ...`): every change is audited with the admin as the actor, and an admin may
//! not disable or reset their own account. New credentials are shown on the answer to the POST,
//! once, and never put in an address; the page that shows them is not cached.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::Console;
use super::page::{self, Fields};
use super::session::{self, Staff};
use super::words;
use crate::app::{AppError, IssuedAccount};
use crate::staff::{Capability, StaffRole, credentials};

/// The accounts page's address.
pub const ACCOUNTS: &str = "/accounts";

/// `GET /accounts`
pub async fn page(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Query(done): Query<page::Done>,
) -> Response {
    if !staff.role.may(Capability::ManageAccounts) {
        return page::forbidden(&console, &staff, "manage accounts");
    }
    let notice = match done.word() {
        Some("disabled") => {
            Some("Disabled. The account can no longer sign in, and its sessions have ended.")
        }
        Some("unlocked") => {
            Some("Unlocked. The account can sign in again with its password and authenticator.")
        }
        _ => None,
    };
    list_page(&console, &staff, notice, "", None, StatusCode::OK).await
}

/// The list and the add form, with what was typed and what is wrong with it.
async fn list_page(
    console: &Console,
    staff: &Staff,
    notice: Option<&str>,
    username: &str,
    problem: Option<&str>,
    status: StatusCode,
) -> Response {
    let accounts = match console.app().accounts().await {
        Ok(accounts) => accounts,
        Err(e) => return page::refused(console, staff, &e),
    };
    let now = console.now();
    let body = html! {
        @if let Some(text) = notice { (page::notice("ok", text)) }
        ul.td-cards id="accounts-list" {
            @for a in &accounts {
                @let locked = a.locked_until.is_some_and(|until| until > now);
                @let own = a.username == staff.username;
                li.card id=(format!("account-{}", a.username)) data-username=(a.username) {
                    p { strong { (a.username) } " · " (words::role(a.role))
                        @if own { " · " em { "this is you" } } }
                    p.hint {
                        @if a.disabled { span id=(format!("account-{}-state", a.username)) { "Disabled" } }
                        @else if locked {
                            span id=(format!("account-{}-state", a.username)) {
                                "Locked after wrong sign-ins, until " (page::time(a.locked_until))
                            }
                        } @else { span id=(format!("account-{}-state", a.username)) { "Can sign in" } }
                        @match a.last_sign_in {
                            Some(at) => { " · last signed in " (page::datetime(at)) }
                            None => { " · has not signed in yet" }
                        }
                    }
                    div.actions {
                        @if locked || a.failed_logins > 0 {
                            (action(staff, "unlock", &a.username, "Unlock", "secondary"))
                        }
                        @if !own {
                            (action(staff, "authenticator", &a.username, "New authenticator", "secondary"))
                            (action(staff, "reset", &a.username, "New password and authenticator", "secondary"))
                            @if !a.disabled {
                                (action(staff, "disable", &a.username, "Disable", "danger"))
                            }
                        }
                    }
                }
            }
        }
        h2 id="add-heading" { "Add an account" }
        (add_form(staff, username, problem))
    };
    (
        status,
        page::layout(console, staff, "Accounts", ACCOUNTS, body),
    )
        .into_response()
}

/// One action's button, in its own small form: `/accounts/{action}` with the username.
fn action(staff: &Staff, action: &str, username: &str, label: &str, class: &str) -> Markup {
    html! {
        form method="post" action=(format!("{ACCOUNTS}/{action}")) {
            (page::csrf_field(staff))
            input type="hidden" name="username" value=(username);
            button class=(class) type="submit" id=(format!("{action}-{username}")) { (label) }
        }
    }
}

fn add_form(staff: &Staff, username: &str, problem: Option<&str>) -> Markup {
    html! {
        form.card method="post" action=(format!("{ACCOUNTS}/add")) id="add-account-form" {
            (page::csrf_field(staff))
            label for="account-username" { "Username" }
            p.hint id="account-username-hint" { "Lowercase letters, digits, dots, dashes or underscores, starting with a letter: for example j.doe." }
            input type="text" id="account-username" name="username" value=(username) required
                autocapitalize="none" spellcheck="false"
                aria-invalid=[problem.map(|_| "true")]
                aria-describedby=(if problem.is_some() { "account-username-hint account-username-error" } else { "account-username-hint" });
            @if let Some(text) = problem { p.field-error id="account-username-error" { (text) } }
            label for="account-role" { "Role" }
            select id="account-role" name="role" {
                @for role in StaffRole::ALL {
                    option value=(role.as_str()) selected[role == StaffRole::CaseWorker] { (words::role(role)) }
                }
            }
            p { button type="submit" id="add-account" { "Add the account" } }
        }
    }
}

/// `POST /accounts/add`: adds an account and shows its credentials, this once.
pub async fn add(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::ManageAccounts) {
        return page::forbidden(&console, &staff, "manage accounts");
    }
    let fields = Fields::parse(&body);
    let username = fields.get("username").to_ascii_lowercase();
    let refuse = |problem: &'static str| {
        list_page(
            &console,
            &staff,
            None,
            &username,
            Some(problem),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    if credentials::check_username(&username).is_err() {
        return refuse("This is not a username the console takes. Use lowercase letters, digits, dots, dashes or underscores, starting with a letter.").await;
    }
    let Some(role) = StaffRole::parse(fields.get("role")) else {
        return page::refused(
            &console,
            &staff,
            &AppError::invalid("role", "choose a role from the list"),
        );
    };
    match console
        .app()
        .add_account(&username, role, &page::actor(&staff))
        .await
    {
        Ok(Some(issued)) => issued_page(&console, &staff, "Account added", &issued),
        Ok(None) => refuse("There is already an account with this username. Choose another, or give that account new credentials from the list.").await,
        Err(e) => page::refused(&console, &staff, &e),
    }
}

/// The credentials just issued, shown once, with what to do with them.
fn issued_page(console: &Console, staff: &Staff, title: &str, issued: &IssuedAccount) -> Response {
    let body = html! {
        (page::notice("ok", "Saved. Give these to the account's holder in person; they are shown only this once."))
        dl.facts.card.scope id="issued" {
            dt { "Username" } dd id="issued-username" { (issued.account.username) }
            dt { "Role" } dd { (words::role(issued.account.role)) }
            @if let Some(password) = &issued.password {
                dt { "One-time password" } dd.mono id="issued-password" { (password) }
            }
            dt { "Authenticator key" } dd.mono id="issued-totp-secret" { (issued.totp_secret) }
        }
        p { "The holder adds the key to an authenticator app (or opens the link below on their phone), signs in, and "
            @if issued.password.is_some() { "changes the password at once." } @else { "keeps their password." } }
        details { summary { "Link for an authenticator app" } p.mono id="issued-totp-uri" { (issued.totp_uri) } }
        p { a href=(ACCOUNTS) id="back-to-accounts" { "Back to the accounts" } }
    };
    page::layout(console, staff, title, ACCOUNTS, body).into_response()
}

/// The account a change names, or the page that says there is none.
fn no_such_account(console: &Console, staff: &Staff) -> Response {
    page::error_page(
        console,
        staff,
        StatusCode::NOT_FOUND,
        "There is no such account. Go back to the accounts and choose one from the list.",
    )
}

/// An action refused by the application layer: an admin's own account reads in words.
fn refused(console: &Console, staff: &Staff, error: &AppError) -> Response {
    if let AppError::Precondition(text) = error
        && text.starts_with("you cannot")
    {
        return page::error_page(
            console,
            staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            "You cannot do this to your own account: you could lock yourself out. Ask another admin.",
        );
    }
    page::refused(console, staff, error)
}

/// `POST /accounts/disable`
pub async fn disable(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::ManageAccounts) {
        return page::forbidden(&console, &staff, "manage accounts");
    }
    let fields = Fields::parse(&body);
    let disabled = console
        .app()
        .disable_account(fields.get("username"), &page::actor(&staff))
        .await;
    changed(&console, &staff, &headers, disabled, "disabled")
}

/// `POST /accounts/unlock`: clears the lockout, keeping the password and authenticator.
pub async fn unlock(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::ManageAccounts) {
        return page::forbidden(&console, &staff, "manage accounts");
    }
    let fields = Fields::parse(&body);
    let unlocked = console
        .app()
        .unlock_account(fields.get("username"), &page::actor(&staff))
        .await;
    changed(&console, &staff, &headers, unlocked, "unlocked")
}

/// The answer to a change that shows nothing new: back to the accounts, which confirm it by
/// its `done` word; or why it was not made.
fn changed<T>(
    console: &Console,
    staff: &Staff,
    headers: &HeaderMap,
    result: Result<Option<T>, AppError>,
    done: &str,
) -> Response {
    match result {
        Ok(Some(_)) => session::redirect(headers, &format!("{ACCOUNTS}?done={done}")),
        Ok(None) => no_such_account(console, staff),
        Err(e) => refused(console, staff, &e),
    }
}

/// `POST /accounts/reset`: a new password and authenticator, shown once.
pub async fn reset(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::ManageAccounts) {
        return page::forbidden(&console, &staff, "manage accounts");
    }
    let fields = Fields::parse(&body);
    issued(
        &console,
        &staff,
        "New password and authenticator",
        console
            .app()
            .reset_account(fields.get("username"), &page::actor(&staff))
            .await,
    )
}

/// `POST /accounts/authenticator`: a new authenticator key alone, shown once.
pub async fn authenticator(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::ManageAccounts) {
        return page::forbidden(&console, &staff, "manage accounts");
    }
    let fields = Fields::parse(&body);
    issued(
        &console,
        &staff,
        "New authenticator",
        console
            .app()
            .reset_authenticator(fields.get("username"), &page::actor(&staff))
            .await,
    )
}

fn issued(
    console: &Console,
    staff: &Staff,
    title: &str,
    result: Result<Option<IssuedAccount>, AppError>,
) -> Response {
    match result {
        Ok(Some(issued)) => issued_page(console, staff, title, &issued),
        Ok(None) => no_such_account(console, staff),
        Err(e) => refused(console, staff, &e),
    }
}
