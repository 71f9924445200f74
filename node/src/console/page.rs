//! What every page shares: the layout (skip link, navigation by role, headings in order), the
//! assets served by the node, form fields, wire values in words, and errors as plain
//! sentences that say what to do.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use tatmx_proto::v1 as pb;
use time::OffsetDateTime;

use super::account::PASSWORD_PAGE;
use super::session::Staff;
use super::{Capability, Console};
use crate::actor::Actor;

/// htmx 2, vendored (see `assets/htmx-LICENSE.txt`).
const HTMX: &[u8] = include_bytes!("assets/htmx.min.js");
/// The console's one stylesheet.
const STYLESHEET: &str = include_str!("assets/console.css");
/// htmx settings, in a meta tag since inline scripts are refused: no eval, no inline styles
/// for indicators (the CSP would block them), requests only to this origin.
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true}"#;

/// `/assets/htmx.min.js`
pub async fn htmx() -> Response {
    asset(HTMX.to_vec(), "text/javascript; charset=utf-8")
}

/// `/assets/console.css`
pub async fn stylesheet() -> Response {
    asset(STYLESHEET.as_bytes().to_vec(), "text/css; charset=utf-8")
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
const NAV: [(&str, &str, Capability); 7] = [
    ("/inbox", "Inbox", Capability::ReadCases),
    (
        "/referrals/new",
        "New referral",
        Capability::CreateReferrals,
    ),
    ("/consultations", "Consultations", Capability::ReadCases),
    ("/consents", "Consents", Capability::CreateReferrals),
    ("/outbox", "Outbox", Capability::ReadCases),
    ("/audit", "Audit", Capability::ReadAudit),
    ("/trust", "Trust", Capability::ReadTrust),
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
            }
            body hx-headers=(format!(r#"{{"X-CSRF-Token":"{}"}}"#, staff.csrf)) {
                a.skip-link href="#main" { "Skip to main content" }
                header.site {
                    span.team { "tatmx · " (team) }
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
                    span.who id="signed-in-as" { (staff.username) " (" (staff.role.label()) ")" }
                    a.account href=(PASSWORD_PAGE) id="account-password"
                        aria-current=[(current == PASSWORD_PAGE).then_some("page")] { "Change password" }
                    form method="post" action="/sign-out" {
                        (csrf_field(staff))
                        button type="submit" id="sign-out" { "Sign out" }
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

/// A service's refusal, as a page: its message is already a sentence about what was wrong.
pub fn refused(console: &Console, staff: &Staff, status: &tonic::Status) -> Response {
    use tonic::Code;
    let (code, advice) = match status.code() {
        Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Go back, correct it, and try again.",
        ),
        Code::NotFound => (
            StatusCode::NOT_FOUND,
            "Check the link, or go back to the list.",
        ),
        Code::PermissionDenied => (
            StatusCode::FORBIDDEN,
            "Only the team allowed to make this change can make it.",
        ),
        Code::Unavailable | Code::ResourceExhausted => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Wait a minute and try again.",
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Try again; if it keeps happening, tell your node's admin.",
        ),
    };
    let message = sentence(status.message());
    error_page(console, staff, code, &format!("{message} {advice}"))
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

/// A request into the node's services, made for the signed-in user.
pub fn request<T>(staff: &Staff, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .extensions_mut()
        .insert(Actor::console(&staff.username));
    request
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

    /// Whether a checkbox was ticked.
    pub fn checked(&self, name: &str) -> bool {
        !self.get(name).is_empty()
    }
}

/// An enum's wire name in the console's words: `REFERRAL_STATUS_IN_ASSESSMENT` → `in-assessment`.
pub fn word(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix)
        .to_ascii_lowercase()
        .replace('_', "-")
}

/// A referral status as a word.
pub fn status_word(value: i32) -> String {
    pb::ReferralStatus::try_from(value)
        .map(|s| word(s.as_str_name(), "REFERRAL_STATUS_"))
        .unwrap_or_else(|_| "unknown".into())
}

/// A purpose as a word.
pub fn purpose_word(value: i32) -> String {
    pb::Purpose::try_from(value)
        .map(|s| word(s.as_str_name(), "PURPOSE_"))
        .unwrap_or_else(|_| "unknown".into())
}

/// A legal basis as a word.
pub fn basis_word(value: i32) -> String {
    pb::LegalBasis::try_from(value)
        .map(|s| word(s.as_str_name(), "LEGAL_BASIS_"))
        .unwrap_or_else(|_| "unknown".into())
}

/// A data category's name, such as `MENTAL_HEALTH`.
pub fn category_name(value: i32) -> String {
    pb::DataCategory::try_from(value)
        .map(|c| {
            c.as_str_name()
                .trim_start_matches("DATA_CATEGORY_")
                .to_owned()
        })
        .unwrap_or_else(|_| "UNKNOWN".into())
}

/// A team identity URI shortened to its team id.
pub fn team(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap_or(uri)
}

/// A wire time as `2026-11-27 14:05 UTC`, or `-`.
pub fn time(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(|ts| OffsetDateTime::from_unix_timestamp(ts.seconds).ok())
        .map(datetime)
        .unwrap_or_else(|| "-".into())
}

/// A time as `2026-11-27 14:05 UTC`.
pub fn datetime(at: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    at.format(&format).unwrap_or_else(|_| at.to_string())
}

/// How long ago a wire time was, in the largest whole unit: `5 min`, `3 h`, `2 days`.
pub fn age(ts: Option<&prost_types::Timestamp>) -> String {
    let Some(at) = ts.and_then(|ts| OffsetDateTime::from_unix_timestamp(ts.seconds).ok()) else {
        return "-".into();
    };
    let elapsed = OffsetDateTime::now_utc() - at;
    if elapsed.whole_days() >= 1 {
        format!("{} days", elapsed.whole_days())
    } else if elapsed.whole_hours() >= 1 {
        format!("{} h", elapsed.whole_hours())
    } else {
        format!("{} min", elapsed.whole_minutes().max(0))
    }
}
