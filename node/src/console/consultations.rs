//! Consultations: the requests this team sent, with each partner's answer or decline and who
//! has not answered; and the requests it received, which a chair answers on their page.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::Console;
use super::page;
use super::session::Staff;
use super::words;
use crate::referral::Purpose;
use crate::staff::Capability;
use crate::store::Direction;

/// `GET /consultations`
pub async fn page(State(console): State<Console>, Extension(staff): Extension<Staff>) -> Response {
    if !staff.role.may(Capability::ReadCases) {
        return page::forbidden(&console, &staff, "read consultations");
    }
    let sent = match console.app().consultations().await {
        Ok(sent) => sent,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let received: Vec<_> = match console.app().inbox(1000, &page::actor(&staff)).await {
        Ok(items) => items
            .into_iter()
            .filter(|i| i.referral.purpose == Purpose::Consultation)
            .collect(),
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let body = html! {
        h2 id="sent-heading" { "Asked by this team" }
        @if sent.is_empty() {
            p { "This team has not asked for a consultation. A chair asks from a received referral's page." }
        }
        @for c in &sent {
            section.card aria-labelledby=(format!("c-{}", c.id)) data-consultation-id=(c.id) {
                h3 id=(format!("c-{}", c.id)) { (c.question) }
                @if !c.awaiting.is_empty() {
                    p { "Waiting for: " (c.awaiting.iter().map(|t| words::team(page::team(t))).collect::<Vec<_>>().join(", ")) }
                }
                table.cards {
                    thead { tr { th scope="col" { "Partner" } th scope="col" { "Status" } th scope="col" { "Answer" } } }
                    tbody {
                        @for a in &c.answers {
                            tr {
                                td data-label="Partner" { (words::team(page::team(&a.partner))) }
                                td data-label="Status" { (words::status(a.status, Direction::Outbound)) }
                                td data-label="Answer" {
                                    @if let Some(answer) = &a.answer {
                                        (answer.advice)
                                        @if !answer.recommendations.is_empty() { " [" (answer.recommendations.join(", ")) "]" }
                                    }
                                    @if let Some(reason) = a.decline_reason.as_deref().filter(|r| !r.is_empty()) { "Declined: " (reason) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 id="received-heading" { "Asked of this team" }
        @if received.is_empty() {
            p { "No team has asked this team for a consultation." }
        } @else {
            table.cards id="received-consultations" {
                thead { tr { th scope="col" { "Request" } th scope="col" { "From" } th scope="col" { "Status" } th scope="col" { "Received" } } }
                tbody {
                    @for i in &received {
                        tr {
                            td data-label="Request" { a href=(format!("/referrals/{}", i.referral.id)) {
                                @if let Some(c) = &i.referral.consultation { (c.question) } @else { "Open the request" }
                            } }
                            td data-label="From" { (words::team(page::team(&i.referral.sender.uri()))) }
                            td data-label="Status" { (words::status(i.status, Direction::Inbound)) }
                            td data-label="Received" { (page::time(Some(i.recorded_at))) }
                        }
                    }
                }
            }
        }
    };
    page::layout(&console, &staff, "Consultations", "/consultations", body).into_response()
}
