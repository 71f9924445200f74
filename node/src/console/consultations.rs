//! Consultations: the requests this team sent, with each partner's answer or decline and who
//! has not answered; and the requests it received, which a chair answers on their page.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::agency_server::Agency as _;

use super::page::{self, request};
use super::session::Staff;
use super::{Capability, Console};

/// `GET /consultations`
pub async fn page(State(console): State<Console>, Extension(staff): Extension<Staff>) -> Response {
    if !staff.role.may(Capability::ReadCases) {
        return page::forbidden(&console, &staff, "read consultations");
    }
    let sent = match console
        .agency()
        .list_consultations(request(&staff, pb::ListConsultationsRequest {}))
        .await
    {
        Ok(response) => response.into_inner().consultations,
        Err(status) => return page::refused(&console, &staff, &status),
    };
    let received: Vec<pb::InboxItem> = match console
        .agency()
        .list_inbox(request(&staff, pb::ListInboxRequest { limit: 1000 }))
        .await
    {
        Ok(response) => response
            .into_inner()
            .items
            .into_iter()
            .filter(|i| i.purpose == pb::Purpose::Consultation as i32)
            .collect(),
        Err(status) => return page::refused(&console, &staff, &status),
    };
    let body = html! {
        h2 id="sent-heading" { "Asked by this team" }
        @if sent.is_empty() {
            p { "This team has not asked for a consultation. A chair asks from a received referral's page." }
        }
        @for c in &sent {
            section.card aria-labelledby=(format!("c-{}", c.consultation_id)) data-consultation-id=(c.consultation_id) {
                h3 id=(format!("c-{}", c.consultation_id)) { (c.question) }
                @if !c.awaiting.is_empty() {
                    p { "Waiting for: " (c.awaiting.iter().map(|t| page::team(t)).collect::<Vec<_>>().join(", ")) }
                }
                table {
                    thead { tr { th scope="col" { "Partner" } th scope="col" { "Status" } th scope="col" { "Answer" } } }
                    tbody {
                        @for a in &c.answers {
                            tr {
                                td { (page::team(&a.partner)) }
                                td { (page::status_word(a.status)) }
                                td {
                                    @if let Some(answer) = &a.answer {
                                        (answer.advice)
                                        @if !answer.recommendations.is_empty() { " [" (answer.recommendations.join(", ")) "]" }
                                    }
                                    @if !a.decline_reason.is_empty() { "Declined: " (a.decline_reason) }
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
            table id="received-consultations" {
                thead { tr { th scope="col" { "Request" } th scope="col" { "From" } th scope="col" { "Status" } th scope="col" { "Received" } } }
                tbody {
                    @for i in &received {
                        tr {
                            td { a href=(format!("/referrals/{}", i.referral_id)) { (i.referral_id) } }
                            td { (page::team(&i.sender)) }
                            td { (page::status_word(i.status)) }
                            td { (page::time(i.received_at.as_ref())) }
                        }
                    }
                }
            }
        }
    };
    page::layout(&console, &staff, "Consultations", "/consultations", body).into_response()
}
