//! The signed-in staff member's own settings, for every role: the address notifications are
//! emailed to and which kinds of event, and the time zone the console shows times in.
//!
//! The address is personal data: it is stored for sending and shown back only to its holder,
//! never logged. Every check is made here, on the server, whatever the form sent.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::page::{self, Fields};
use super::session::{self, Staff};
use super::{Console, words};
use crate::notification::{NotificationKind, Preferences, plausible_email};

/// Where the page lives; the header links here for every role.
pub const SETTINGS_PAGE: &str = "/account/settings";

/// What was wrong with the form, field by field, to show next to each.
#[derive(Debug, Default)]
struct Problems {
    /// The email address.
    email: Option<&'static str>,
    /// The time zone.
    time_zone: Option<&'static str>,
}

impl Problems {
    fn any(&self) -> bool {
        self.email.is_some() || self.time_zone.is_some()
    }
}

fn form(
    console: &Console,
    staff: &Staff,
    preferences: &Preferences,
    problems: &Problems,
    saved: bool,
) -> Markup {
    // Nothing saved yet: every kind is offered ticked, so that turning email on is one step.
    let fresh = preferences.email.is_none() && preferences.email_kinds.is_empty();
    let browser_zone = staff
        .time_zone
        .as_deref()
        .filter(|_| preferences.time_zone.is_none());
    html! {
        @if saved {
            div id="settings-saved" { (page::notice("ok", "Saved.")) }
        }
        @if problems.any() {
            div id="settings-problem" {
                (page::notice("error", "Your settings were not saved. Correct what is marked below and save again."))
            }
        }
        form.card method="post" action=(SETTINGS_PAGE) id="settings-form" {
            (page::csrf_field(staff))
            h2 { "Emails about what is new" }
            @if !console.email_enabled() {
                p id="email-unavailable" {
                    "This node does not send emails yet: your node's admin has not set up an email "
                    "relay. You can still save your address for when they do."
                }
            }
            p {
                "An email names only the other team and what kind of thing happened, with a link "
                "to the case: never a name, a case number or anything written about the person. "
                "Sign in to read the case."
            }
            label for="email" { "Your email address" }
            p.hint id="email-hint" { "Where the console emails you. Leave it empty to get no emails." }
            input type="email" id="email" name="email" autocomplete="email" maxlength="254"
                value=(preferences.email.as_deref().unwrap_or(""))
                aria-invalid=[problems.email.map(|_| "true")]
                aria-describedby=(if problems.email.is_some() { "email-hint email-error" } else { "email-hint" });
            @if let Some(problem) = problems.email {
                p.field-error id="email-error" { (problem) }
            }
            div.check {
                input type="checkbox" id="email-on" name="email_on" value="1" checked[preferences.email_on];
                label for="email-on" { "Email me when something new happens on my team's cases" }
            }
            fieldset {
                legend { "Email me when" }
                @for kind in NotificationKind::ALL {
                    div.check {
                        input type="checkbox" id=(format!("email-kind-{}", kind.as_str()))
                            name="email_kind" value=(kind.as_str())
                            checked[fresh || preferences.email_kinds.contains(&kind)];
                        label for=(format!("email-kind-{}", kind.as_str())) { (words::notification_kind(kind)) }
                    }
                }
            }
            h2 { "Time zone" }
            label for="time-zone-choice" { "Show times in" }
            p.hint id="time-zone-hint" {
                "Every time in the console is shown in this zone, with its abbreviation."
            }
            select id="time-zone-choice" name="time_zone"
                aria-invalid=[problems.time_zone.map(|_| "true")]
                aria-describedby=(if problems.time_zone.is_some() { "time-zone-hint time-zone-error" } else { "time-zone-hint" }) {
                option value="" selected[preferences.time_zone.is_none()] {
                    @match browser_zone {
                        Some(zone) => { "The one my browser reports (now " (zone) ")" }
                        None => { "The one my browser reports (UTC if it reports none)" }
                    }
                }
                @for zone in page::zone_names() {
                    option value=(zone) selected[preferences.time_zone.as_deref() == Some(zone.as_str())] { (zone) }
                }
            }
            @if let Some(problem) = problems.time_zone {
                p.field-error id="time-zone-error" { (problem) }
            }
            p { button type="submit" id="save-settings" { "Save" } }
        }
    }
}

fn answer(
    console: &Console,
    staff: &Staff,
    status: StatusCode,
    preferences: &Preferences,
    problems: &Problems,
    saved: bool,
) -> Response {
    (
        status,
        page::layout(
            console,
            staff,
            "Your settings",
            SETTINGS_PAGE,
            form(console, staff, preferences, problems, saved),
        ),
    )
        .into_response()
}

/// `GET /account/settings`
pub async fn page(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Query(outcome): Query<page::Done>,
) -> Response {
    let preferences = match console.store().preferences(&staff.username).await {
        Ok(preferences) => preferences,
        Err(e) => return page::store_failure(&e),
    };
    let saved = outcome.word() == Some("saved");
    answer(
        &console,
        &staff,
        StatusCode::OK,
        &preferences,
        &Problems::default(),
        saved,
    )
}

/// `POST /account/settings`
pub async fn save(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    let mut problems = Problems::default();
    let email = fields.get("email");
    let email_on = fields.checked("email_on");
    if !email.is_empty() && !plausible_email(email) {
        problems.email = Some(
            "This does not look like an email address. Check it: it should read like name@agency.example.",
        );
    } else if email.is_empty() && email_on {
        problems.email = Some("Enter your email address, or untick the box to get no emails.");
    }
    let zone = fields.get("time_zone");
    if !zone.is_empty() && page::zone_named(zone).is_none() {
        problems.time_zone = Some("Choose a time zone from the list.");
    }
    let preferences = Preferences {
        email: (!email.is_empty()).then(|| email.to_owned()),
        email_on,
        email_kinds: fields
            .all("email_kind")
            .iter()
            .filter_map(|k| NotificationKind::parse(k))
            .collect(),
        time_zone: (!zone.is_empty()).then(|| zone.to_owned()),
    };
    if problems.any() {
        return answer(
            &console,
            &staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            &preferences,
            &problems,
            false,
        );
    }
    if let Err(e) = console
        .store()
        .set_preferences(&staff.username, &preferences)
        .await
    {
        return page::store_failure(&e);
    }
    tracing::info!(
        role = %staff.role,
        email_on = preferences.email_on,
        kinds = preferences.email_kinds.len(),
        "console settings saved by their holder"
    );
    session::redirect(&headers, &format!("{SETTINGS_PAGE}?done=saved"))
}
