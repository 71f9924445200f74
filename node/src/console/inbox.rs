//! The inbox: referrals and consultation requests this team received, with their status and
//! age, filterable by status and purpose. Listing it is audited (`inbox-read`) with the user.

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use strum::IntoEnumIterator;

use super::Console;
use super::page;
use super::session::Staff;
use crate::referral::{Purpose, ReferralStatus};
use crate::staff::Capability;
use crate::store::StoredReferral;

/// The filters; statuses and purposes are not personal data, so they may sit in the URL.
#[derive(Debug, Deserialize)]
pub struct Filter {
    /// A status word, such as `received`.
    status: Option<String>,
    /// A purpose word, such as `threat-assessment`.
    purpose: Option<String>,
}

/// The statuses a received referral can have, for the filter.
const STATUSES: [ReferralStatus; 8] = [
    ReferralStatus::Received,
    ReferralStatus::Accepted,
    ReferralStatus::InfoRequested,
    ReferralStatus::InAssessment,
    ReferralStatus::Completed,
    ReferralStatus::Declined,
    ReferralStatus::Closed,
    ReferralStatus::Cancelled,
];

/// `GET /inbox`
pub async fn page(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Query(filter): Query<Filter>,
) -> Response {
    if !staff.role.may(Capability::ReadCases) {
        return page::forbidden(&console, &staff, "read the inbox");
    }
    let items = match console.app().inbox(1000, &page::actor(&staff)).await {
        Ok(items) => items,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let status = filter.status.filter(|s| !s.is_empty());
    let purpose = filter.purpose.filter(|p| !p.is_empty());
    let shown: Vec<&StoredReferral> = items
        .iter()
        .filter(|i| status.as_deref().is_none_or(|s| i.status.as_str() == s))
        .filter(|i| {
            purpose
                .as_deref()
                .is_none_or(|p| i.referral.purpose.as_str() == p)
        })
        .collect();
    let now = console.now();
    let body = html! {
        form.filters method="get" action="/inbox" aria-label="Filter the inbox" {
            div {
                label for="filter-status" { "Status" }
                select id="filter-status" name="status" {
                    option value="" { "Any status" }
                    @for s in STATUSES.map(ReferralStatus::as_str) {
                        option value=(s) selected[status.as_deref() == Some(s)] { (s) }
                    }
                }
            }
            div {
                label for="filter-purpose" { "Purpose" }
                select id="filter-purpose" name="purpose" {
                    option value="" { "Any purpose" }
                    @for p in Purpose::iter().map(Purpose::as_str) {
                        option value=(p) selected[purpose.as_deref() == Some(p)] { (p) }
                    }
                }
            }
            div { button type="submit" id="apply-filter" { "Filter" } }
        }
        @if shown.is_empty() {
            p id="inbox-empty" {
                @if items.is_empty() { "Nothing has been received yet." }
                @else { "No referral matches these filters." }
            }
        } @else {
            table id="inbox-table" {
                caption { (shown.len()) " of " (items.len()) " received" }
                thead { tr {
                    th scope="col" { "Referral" } th scope="col" { "From" } th scope="col" { "Purpose" }
                    th scope="col" { "Level of concern" } th scope="col" { "Status" }
                    th scope="col" { "Received" } th scope="col" { "Age" } th scope="col" { "Categories" }
                } }
                tbody {
                    @for item in &shown {
                        @let r = &item.referral;
                        tr data-referral-id=(r.id) {
                            td { a href=(format!("/referrals/{}", r.id)) { (r.id) } }
                            td { (page::team(&r.sender.uri())) }
                            td { (r.purpose.as_str()) }
                            td { @if let Some(l) = &r.level_of_concern { (l.scheme) ": " (l.value) } @else { "-" } }
                            td.status { (item.status.as_str()) }
                            td { (page::time(Some(item.recorded_at))) }
                            td { (page::age(Some(item.recorded_at), now)) }
                            td { (r.categories().iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")) }
                        }
                    }
                }
            }
        }
    };
    page::layout(&console, &staff, "Inbox", "/inbox", body).into_response()
}
