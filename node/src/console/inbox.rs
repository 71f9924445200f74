//! The inbox: referrals and consultation requests this team received, with their status and
//! age, filterable by status and purpose. Listing it is audited (`inbox-read`) with the user.

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::agency_server::Agency as _;

use super::page::{self, request};
use super::session::Staff;
use super::{Capability, Console};

/// The filters; statuses and purposes are not personal data, so they may sit in the URL.
#[derive(Debug, Deserialize)]
pub struct Filter {
    /// A status word, such as `received`.
    status: Option<String>,
    /// A purpose word, such as `threat-assessment`.
    purpose: Option<String>,
}

/// The statuses a received referral can have, for the filter.
const STATUSES: [&str; 8] = [
    "received",
    "accepted",
    "info-requested",
    "in-assessment",
    "completed",
    "declined",
    "closed",
    "cancelled",
];
/// The purposes, for the filter.
const PURPOSES: [&str; 3] = ["threat-assessment", "threat-management", "consultation"];

/// `GET /inbox`
pub async fn page(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Query(filter): Query<Filter>,
) -> Response {
    if !staff.role.may(Capability::ReadCases) {
        return page::forbidden(&console, &staff, "read the inbox");
    }
    let items = match console
        .agency()
        .list_inbox(request(&staff, pb::ListInboxRequest { limit: 1000 }))
        .await
    {
        Ok(response) => response.into_inner().items,
        Err(status) => return page::refused(&console, &staff, &status),
    };
    let status = filter.status.filter(|s| !s.is_empty());
    let purpose = filter.purpose.filter(|p| !p.is_empty());
    let shown: Vec<&pb::InboxItem> = items
        .iter()
        .filter(|i| {
            status
                .as_deref()
                .is_none_or(|s| page::status_word(i.status) == s)
        })
        .filter(|i| {
            purpose
                .as_deref()
                .is_none_or(|p| page::purpose_word(i.purpose) == p)
        })
        .collect();
    let body = html! {
        form.filters method="get" action="/inbox" aria-label="Filter the inbox" {
            div {
                label for="filter-status" { "Status" }
                select id="filter-status" name="status" {
                    option value="" { "Any status" }
                    @for s in STATUSES {
                        option value=(s) selected[status.as_deref() == Some(s)] { (s) }
                    }
                }
            }
            div {
                label for="filter-purpose" { "Purpose" }
                select id="filter-purpose" name="purpose" {
                    option value="" { "Any purpose" }
                    @for p in PURPOSES {
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
                        tr data-referral-id=(item.referral_id) {
                            td { a href=(format!("/referrals/{}", item.referral_id)) { (item.referral_id) } }
                            td { (page::team(&item.sender)) }
                            td { (page::purpose_word(item.purpose)) }
                            td { @if let Some(l) = &item.level_of_concern { (l.scheme) ": " (l.value) } @else { "-" } }
                            td.status { (page::status_word(item.status)) }
                            td { (page::time(item.received_at.as_ref())) }
                            td { (page::age(item.received_at.as_ref())) }
                            td { (item.categories.iter().map(|c| page::category_name(*c)).collect::<Vec<_>>().join(", ")) }
                        }
                    }
                }
            }
        }
    };
    page::layout(&console, &staff, "Inbox", "/inbox", body).into_response()
}
