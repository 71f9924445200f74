//! What every page shares: the layout (skip link, navigation by role, headings in order), the
//! assets served by the node, form fields, times in words, and errors as plain sentences that
//! say what to do. A use case's refusal becomes a response in one place, [`refused`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::tz::TimeZone;
use maud::{DOCTYPE, Markup, html};
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::Console;
use super::account::PASSWORD_PAGE;
use super::notifications::{NOTIFICATION_COUNT, NOTIFICATIONS_PAGE};
use super::session::Staff;
use super::settings::SETTINGS_PAGE;
use super::words;
use crate::actor::Actor;
use crate::app::AppError;
use crate::case_message::CaseRefusal;
use crate::lifecycle::TransitionError;
use crate::staff::Capability;
use crate::store::StoreError;

/// htmx 2, vendored (see `assets/htmx-LICENSE.txt`).
const HTMX: &[u8] = include_bytes!("assets/htmx.min.js");
/// The live character counts of text fields (see [`super::form`]).
const LIMITS: &str = include_str!("assets/limits.js");
/// The console's one stylesheet.
const STYLESHEET: &str = include_str!("assets/console.css");
/// Reads the browser's time zone into the sign-in form.
const ZONE_SCRIPT: &str = include_str!("assets/zone.js");
/// htmx settings, in a meta tag since inline scripts are refused: no eval, no inline styles
/// for indicators (the CSP would block them), requests only to this origin.
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true}"#;

/// `/assets/htmx.min.js`
pub async fn htmx() -> Response {
    asset(HTMX.to_vec(), "text/javascript; charset=utf-8")
}

/// `/assets/limits.js`
pub async fn limits() -> Response {
    asset(LIMITS.as_bytes().to_vec(), "text/javascript; charset=utf-8")
}

/// `/assets/console.css`
pub async fn stylesheet() -> Response {
    asset(STYLESHEET.as_bytes().to_vec(), "text/css; charset=utf-8")
}

/// `/assets/zone.js`
pub async fn zone_script() -> Response {
    asset(
        ZONE_SCRIPT.as_bytes().to_vec(),
        "text/javascript; charset=utf-8",
    )
}

fn asset(body: Vec<u8>, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

/// The navigation, in the order staff use it.
const NAV: [(&str, &str, Capability); 8] = [
    ("/cases", "My cases", Capability::ReadCases),
    (
        "/referrals/new",
        "New referral",
        Capability::CreateReferrals,
    ),
    ("/consultations", "Consultations", Capability::ReadCases),
    ("/consents", "Consents", Capability::CreateReferrals),
    ("/outbox", "Sent messages", Capability::ReadCases),
    ("/audit", "Audit", Capability::ReadAudit),
    ("/trust", "Trust", Capability::ReadTrust),
    ("/accounts", "Accounts", Capability::ManageAccounts),
];

/// A whole page for a signed-in user: `current` is the navigation entry it belongs to.
pub fn layout(
    console: &Console,
    staff: &Staff,
    title: &str,
    current: &str,
    body: Markup,
) -> Markup {
    let team = console.team();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                title { (title) " · tatmx · " (team) }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/htmx.min.js" defer {}
                script src="/assets/limits.js" defer {}
            }
            body hx-headers=(format!(r#"{{"X-CSRF-Token":"{}"}}"#, staff.csrf)) {
                a.skip-link href="#main" { "Skip to main content" }
                // Two rows: who is signed in and their account on the first, beside the team;
                // the pages and what is new on the second, so neither wraps mid-row.
                header.site {
                    div.account-bar {
                    span.team { "tatmx · " (words::team(&team)) }
                    span.who id="signed-in-as" { (staff.username) " (" (staff.role.label()) ")" }
                    a.account href=(SETTINGS_PAGE) id="account-settings"
                        aria-current=[(current == SETTINGS_PAGE).then_some("page")] { "Your settings" }
                    a.account href=(PASSWORD_PAGE) id="account-password"
                        aria-current=[(current == PASSWORD_PAGE).then_some("page")] { "Change password" }
                    form method="post" action="/sign-out" {
                        (csrf_field(staff))
                        button type="submit" id="sign-out" { "Sign out" }
                    }
                    }
                    div.nav-bar {
                    nav aria-label="Main" {
                        ul {
                            @for (href, label, capability) in NAV {
                                @if staff.role.may(capability) {
                                    li {
                                        @if href == current {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if staff.role.may(Capability::ReadCases) {
                        // What is new, kept up to date without a reload: htmx asks for the
                        // count on load and every ten seconds (a request that does not keep
                        // an idle session open), and screen readers hear it change.
                        span.notifications {
                            a href=(NOTIFICATIONS_PAGE) id="notifications-link"
                                aria-current=[(current == NOTIFICATIONS_PAGE).then_some("page")] { "What is new" }
                            " "
                            span.count id="notification-count" aria-live="polite"
                                hx-get=(NOTIFICATION_COUNT) hx-trigger="load, every 10s" {}
                        }
                    }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page for someone not signed in (sign-in, lock screen).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tatmx" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/zone.js" defer {}
            }
            body {
                a.skip-link href="#main" { "Skip to main content" }
                main id="main" tabindex="-1" {
                    div.signin {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(staff: &Staff) -> Markup {
    html! { input type="hidden" name="csrf" value=(staff.csrf); }
}

/// The query of a page an action redirects back to: the word that says what was just done
/// (`?done=saved`), which the page turns into its confirmation. Redirecting, rather than
/// answering the POST with the page, means a reload does not send the form again.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Done {
    /// The word, if the address carries one.
    pub done: Option<String>,
}

impl Done {
    /// The word, if any.
    pub fn word(&self) -> Option<&str> {
        self.done.as_deref()
    }
}

/// A notice box: `kind` is `error`, `warn` or `ok`.
pub fn notice(kind: &str, text: &str) -> Markup {
    let role = if kind == "error" { "alert" } else { "status" };
    html! { div class=(format!("notice {kind}")) role=(role) { (text) } }
}

/// A page-sized answer with a status, for errors after sign-in.
pub fn error_page(console: &Console, staff: &Staff, status: StatusCode, message: &str) -> Response {
    let body = html! {
        (notice("error", message))
        p { a href=(staff.role.home()) { "Back to your start page" } }
    };
    (
        status,
        layout(console, staff, "This could not be done", "", body),
    )
        .into_response()
}

/// A plain sentence with a status (refusals before a page can be drawn).
pub fn plain(status: StatusCode, message: &'static str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        message,
    )
        .into_response()
}

/// The store failed under a request: nothing about the data, only what to do.
pub fn store_failure(error: &crate::store::StoreError) -> Response {
    tracing::error!(error = %error, "console: the store failed");
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "The node's database did not answer. Wait a minute and try again; if it keeps happening, tell your node's admin.",
    )
}

/// Anything not routed.
pub async fn not_found() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "There is no page at this address. Go back, or start again from the console's start page.",
    )
}

/// A role that may not do this.
pub fn forbidden(console: &Console, staff: &Staff, what: &str) -> Response {
    error_page(
        console,
        staff,
        StatusCode::FORBIDDEN,
        &format!(
            "Your role ({}) cannot {what}. Ask your team's chair or your node's admin if you need to.",
            staff.role.label()
        ),
    )
}

/// How the console answers a use case's refusal: the HTTP status, what was wrong, and what to
/// do about it. This is the console's one mapping from [`AppError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: StatusCode,
    /// What was wrong, as a sentence; never personal data, never the database's own words.
    pub message: String,
    /// What the user can do about it.
    pub advice: &'static str,
}

/// What a user can do about a request they can correct.
const CORRECT_IT: &str = "Go back, correct it, and try again.";
/// What a user can do about a refusal that is not theirs to fix.
const TRY_AGAIN: &str = "Try again; if it keeps happening, tell your node's admin.";
/// What a user can do while the node is busy.
const WAIT: &str = "Wait a minute and try again.";

impl Refusal {
    /// The console's answer to `error`.
    pub fn of(error: &AppError) -> Self {
        let (status, advice) = match error {
            AppError::Invalid(_)
            | AppError::Precondition(_)
            | AppError::Recipient(_)
            | AppError::IdempotencyKeyReused
            | AppError::Transition(TransitionError::NotFromHere { .. })
            | AppError::Transition(TransitionError::Missing(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, CORRECT_IT)
            }
            AppError::NoSuchReferral(_) | AppError::Purged(_) | AppError::NotFound(_) => (
                StatusCode::NOT_FOUND,
                "Check the link, or go back to the list.",
            ),
            AppError::Transition(TransitionError::WrongParty { .. })
            | AppError::Case(CaseRefusal::WrongParty { .. } | CaseRefusal::NotCore { .. }) => (
                StatusCode::FORBIDDEN,
                "Only the team allowed to make this change can make it.",
            ),
            AppError::Case(CaseRefusal::NotShared(_) | CaseRefusal::UnknownRequest(_)) => (
                StatusCode::NOT_FOUND,
                "Check the link, or go back to the list.",
            ),
            AppError::Case(
                CaseRefusal::Ended { .. }
                | CaseRefusal::NotYet { .. }
                | CaseRefusal::Consultation(_),
            ) => (StatusCode::UNPROCESSABLE_ENTITY, CORRECT_IT),
            AppError::Store(store) => {
                let (status, message) = store_refusal(store);
                return Self {
                    status,
                    message: sentence(message),
                    advice: if status == StatusCode::SERVICE_UNAVAILABLE {
                        WAIT
                    } else {
                        TRY_AGAIN
                    },
                };
            }
        };
        Self {
            status,
            message: sentence(&error.to_string()),
            advice,
        }
    }
}

/// A store failure in the words the node uses for it everywhere (the Agency API says the
/// same): busy or full is worth waiting for, anything else is logged for the admin.
fn store_refusal(error: &StoreError) -> (StatusCode, &'static str) {
    if error.is_busy() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the node's store is busy; retry later",
        )
    } else if error.is_full() {
        tracing::error!(error = %error, "the store's disk is full");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the node's disk is full; nothing was saved; retry once an admin has freed space",
        )
    } else {
        tracing::error!(error = %error, "store operation failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the node could not store the message; nothing was saved",
        )
    }
}

/// A use case's refusal, as a page that says what was wrong and what to do.
pub fn refused(console: &Console, staff: &Staff, error: &AppError) -> Response {
    let refusal = Refusal::of(error);
    error_page(
        console,
        staff,
        refusal.status,
        &format!("{} {}", refusal.message, refusal.advice),
    )
}

/// A service message as a sentence: capitalised, ending in a full stop.
pub fn sentence(message: &str) -> String {
    let mut text = message.trim().to_owned();
    if let Some(first) = text.get(..1) {
        text = first.to_uppercase() + &text[1..];
    }
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// Who the signed-in user is to the node's use cases, for the audit and the timelines.
pub fn actor(staff: &Staff) -> Actor {
    Actor::console(&staff.username)
}

/// An id from the page's address; `field` names it as the Agency API would.
pub fn id(text: &str, field: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(text).map_err(|_| AppError::invalid(field, "is not a UUID"))
}

/// The fields of a url-encoded form, in order; a field may repeat.
#[derive(Debug, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// Reads a form body.
    pub fn parse(body: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    /// The non-empty lines of a textarea.
    pub fn lines(&self, name: &str) -> Vec<String> {
        self.get(name)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Every field as it came, in order, to carry a form on to its next step.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether a checkbox was ticked.
    pub fn checked(&self, name: &str) -> bool {
        !self.get(name).is_empty()
    }

    /// Whether a checkbox of a group (one name, many values) was ticked with `value`.
    pub fn has(&self, name: &str, value: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && v.trim() == value)
    }
}

/// A team identity URI shortened to its team id.
pub fn team(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap_or(uri)
}

tokio::task_local! {
    /// The time zone of the staff member the current request is served for. The session
    /// middleware ([`super::session`]) sets it around every page it lets through, so that
    /// [`datetime`] reaches it from any page without each of the many call sites passing it
    /// on; outside a request (or for someone not signed in) times are in UTC.
    static ZONE: TimeZone;
}

/// Runs `request` with times shown in `zone`.
pub async fn in_zone<F: std::future::Future>(zone: TimeZone, request: F) -> F::Output {
    ZONE.scope(zone, request).await
}

/// The time zone an IANA name (`America/New_York`) names, from the tz database bundled into
/// the node (so every machine agrees); `None` for a name it does not know.
pub fn zone_named(name: &str) -> Option<TimeZone> {
    if name.is_empty() || name.len() > 64 {
        return None;
    }
    TimeZone::get(name).ok()
}

/// Every IANA time zone name the node knows, sorted, for a select.
pub fn zone_names() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::db()
        .available()
        .map(|name| name.as_str().to_owned())
        .collect();
    names.sort();
    names
}

/// A time as `2026-11-27 14:05 UTC`, or `-`.
pub fn time(at: Option<OffsetDateTime>) -> String {
    at.map(datetime).unwrap_or_else(|| "-".into())
}

/// A time in the signed-in staff member's time zone, with its abbreviation:
/// `2026-11-27 09:05 EST`; in UTC when no zone is set.
pub fn datetime(at: OffsetDateTime) -> String {
    let zone = ZONE.try_with(TimeZone::clone).unwrap_or(TimeZone::UTC);
    datetime_in(at, &zone)
}

/// A time in `zone`, with its abbreviation (or its offset, for a zone that has none).
pub fn datetime_in(at: OffsetDateTime, zone: &TimeZone) -> String {
    match jiff::Timestamp::from_nanosecond(at.unix_timestamp_nanos()) {
        Ok(stamp) => stamp
            .to_zoned_datetime(zone.clone())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string(),
        // Beyond jiff's range (years past 9999): said in UTC, as the node's clock has it.
        Err(_) => {
            let at = at.to_offset(UtcOffset::UTC);
            let format =
                time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
            at.format(&format).unwrap_or_else(|_| at.to_string())
        }
    }
}

/// A day as `27 November 2026`.
pub fn date(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[day padding:none] [month repr:long] [year]");
    at.format(&format).unwrap_or_else(|_| at.date().to_string())
}

/// How long ago a time was, in the largest whole unit: `5 min`, `3 h`, `2 days`.
pub fn age(at: Option<OffsetDateTime>, now: OffsetDateTime) -> String {
    let Some(at) = at else {
        return "-".into();
    };
    let elapsed = now - at;
    if elapsed.whole_days() >= 1 {
        format!("{} days", elapsed.whole_days())
    } else if elapsed.whole_hours() >= 1 {
        format!("{} h", elapsed.whole_hours())
    } else {
        format!("{} min", elapsed.whole_minutes().max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::referral::ReferralStatus;

    fn refusal(error: AppError) -> (StatusCode, String, &'static str) {
        let r = Refusal::of(&error);
        (r.status, r.message, r.advice)
    }

    #[test]
    fn a_time_is_shown_in_the_staff_member_s_zone_with_its_abbreviation() {
        let at = time::macros::datetime!(2026-11-27 14:05 UTC);
        assert_eq!(datetime(at), "2026-11-27 14:05 UTC");
        let new_york = zone_named("America/New_York").expect("a known zone");
        assert_eq!(datetime_in(at, &new_york), "2026-11-27 09:05 EST");
        let summer = time::macros::datetime!(2026-07-01 12:00 UTC);
        assert_eq!(datetime_in(summer, &new_york), "2026-07-01 08:00 EDT");
        assert!(zone_named("Mars/Olympus_Mons").is_none());
        assert!(zone_names().iter().any(|z| z == "Europe/Berlin"));
    }

    #[tokio::test]
    async fn a_request_s_zone_reaches_every_time_it_renders() {
        let at = time::macros::datetime!(2026-11-27 14:05 UTC);
        let zone = zone_named("Europe/Berlin").expect("a known zone");
        let shown = in_zone(zone, async move { time(Some(at)) }).await;
        assert_eq!(shown, "2026-11-27 15:05 CET");
        assert_eq!(time(Some(at)), "2026-11-27 14:05 UTC");
    }

    #[test]
    fn a_request_the_user_can_correct_reads_as_a_sentence_with_what_to_do() {
        let (status, message, advice) = refusal(AppError::invalid("referral_id", "is not a UUID"));
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(message, "Referral_id: is not a UUID.");
        assert_eq!(advice, CORRECT_IT);
        for error in [
            AppError::Precondition("the referral is closed".into()),
            AppError::IdempotencyKeyReused,
            AppError::Transition(TransitionError::NotFromHere {
                current: ReferralStatus::Closed,
                next: ReferralStatus::Accepted,
            }),
            AppError::Transition(TransitionError::Missing("reason: is required")),
        ] {
            assert_eq!(refusal(error).0, StatusCode::UNPROCESSABLE_ENTITY);
        }
    }

    #[test]
    fn what_is_not_here_is_404_and_what_is_not_ours_to_change_is_403() {
        let (status, message, _) = refusal(AppError::NoSuchReferral(Uuid::nil()));
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            message,
            "No referral 00000000-0000-0000-0000-000000000000 on this node."
        );
        assert_eq!(
            refusal(AppError::NotFound("no consent x on this node".into())).0,
            StatusCode::NOT_FOUND
        );
        let wrong_party = AppError::Transition(TransitionError::WrongParty {
            allowed: "recipient",
            next: ReferralStatus::Accepted,
        });
        assert_eq!(refusal(wrong_party).0, StatusCode::FORBIDDEN);
    }

    #[test]
    fn a_store_failure_never_shows_the_database_s_words() {
        let busy = AppError::Store(StoreError::Database(sqlx::Error::PoolTimedOut));
        let (status, message, advice) = refusal(busy);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(message, "The node's store is busy; retry later.");
        assert_eq!(advice, WAIT);
        let broken = AppError::Store(StoreError::Corrupt {
            table: "referrals",
            id: "CANARY-ROW".into(),
            problem: "CANARY-PROBLEM".into(),
        });
        let (status, message, advice) = refusal(broken);
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            message,
            "The node could not store the message; nothing was saved."
        );
        assert!(!message.contains("CANARY"));
        assert_eq!(advice, TRY_AGAIN);
    }
}
