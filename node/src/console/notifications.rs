//! What is new: the list of what other teams did on this team's cases (and messages of ours
//! that could not be delivered), each linking to its case, and the count in every page's
//! header that htmx keeps up to date without a reload.
//!
//! Seen is counted per staff member: opening the list marks everything on it seen for them,
//! not for their colleagues. The count is asked for by the page itself, every ten seconds, so
//! its route is behind [`super::session::require_unlocked_passive`]: it does not keep an idle
//! session open, and a locked session's page is sent to the lock screen.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::session::Staff;
use super::{Console, page, words};
use crate::staff::Capability;

/// The list.
pub const NOTIFICATIONS_PAGE: &str = "/notifications";
/// The count in the header, as a fragment.
pub const NOTIFICATION_COUNT: &str = "/notifications/count";
/// How many notifications the list shows: the newest.
const LISTED: u32 = 100;

/// `GET /notifications`
pub async fn page(State(console): State<Console>, Extension(staff): Extension<Staff>) -> Response {
    if !staff.role.may(Capability::ReadCases) {
        return page::forbidden(&console, &staff, "see what is new on cases");
    }
    let store = console.store();
    let seen = match store.notifications_seen_through(&staff.username).await {
        Ok(seen) => seen,
        Err(e) => return page::store_failure(&e),
    };
    let list = match store.notifications(LISTED).await {
        Ok(list) => list,
        Err(e) => return page::store_failure(&e),
    };
    if let Some(newest) = list.first().filter(|n| n.seq > seen)
        && let Err(e) = store
            .mark_notifications_seen(&staff.username, newest.seq)
            .await
    {
        return page::store_failure(&e);
    }
    let fresh = list.iter().filter(|n| n.seq > seen).count();
    // Each line names the case by this team's own number where it has one, so a chair with
    // sixty cases knows which one moved. The numbers are this team's, read here only; a case
    // purged since has none.
    let mut numbers = std::collections::HashMap::new();
    for n in &list {
        if let std::collections::hash_map::Entry::Vacant(slot) = numbers.entry(n.referral_id) {
            let number = console
                .app()
                .case_references(n.referral_id)
                .await
                .ok()
                .and_then(|r| r.case_number);
            slot.insert(number);
        }
    }
    let body = html! {
        p {
            "What other teams did on your team's cases, newest first. Opening this page marks "
            "everything on it as seen, for you only. "
            a href=(super::settings::SETTINGS_PAGE) { "Choose what you are emailed about" } "."
        }
        @if list.is_empty() {
            p id="no-notifications" { "Nothing has happened on your team's cases yet." }
        } @else {
            p id="notifications-summary" {
                @match fresh {
                    0 => { "Nothing new since you last looked." }
                    1 => { "1 new since you last looked." }
                    n => { (n) " new since you last looked." }
                }
            }
            ul.notifications id="notification-list" {
                @for n in &list {
                    @let new = n.seq > seen;
                    li.notification.new[new] id=(format!("notification-{}", n.seq)) {
                        @if new {
                            span.badge { "New" }
                            " "
                        }
                        a href=(format!("/referrals/{}", n.referral_id)) {
                            (words::notification(n.event, &n.team))
                        }
                        @if let Some(Some(number)) = numbers.get(&n.referral_id) {
                            " · your case " span.case-number { (number) }
                        }
                        " "
                        span.when { (page::datetime(n.at)) }
                    }
                }
            }
        }
    };
    page::layout(&console, &staff, "What is new", NOTIFICATIONS_PAGE, body).into_response()
}

/// `GET /notifications/count`: the header's count, as the fragment htmx swaps in ("3 new",
/// or nothing).
pub async fn count(State(console): State<Console>, Extension(staff): Extension<Staff>) -> Response {
    if !staff.role.may(Capability::ReadCases) {
        return StatusCode::FORBIDDEN.into_response();
    }
    match console.store().unseen_notifications(&staff.username).await {
        Ok(0) => html! {}.into_response(),
        Ok(n) => html! { span.badge { (n) " new" } }.into_response(),
        Err(e) => page::store_failure(&e),
    }
}
