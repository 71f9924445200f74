//! The outbox: the delivery state of everything this node sent, dead letters, and retry.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::agency_server::Agency as _;

use super::page::{self, request, word};
use super::session::Staff;
use super::{Capability, Console};

/// `?dead=1` shows only dead letters.
#[derive(Debug, Deserialize)]
pub struct Filter {
    dead: Option<String>,
}

/// `GET /outbox`
pub async fn page(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Query(filter): Query<Filter>,
) -> Response {
    if !staff.role.may(Capability::ReadCases) {
        return page::forbidden(&console, &staff, "read the outbox");
    }
    let dead_only = filter.dead.is_some_and(|d| !d.is_empty());
    let entries = match console
        .agency()
        .list_outbox(request(
            &staff,
            pb::ListOutboxRequest {
                limit: 500,
                dead_only,
            },
        ))
        .await
    {
        Ok(response) => response.into_inner().entries,
        Err(status) => return page::refused(&console, &staff, &status),
    };
    let may_retry = staff.role.may(Capability::DecideReferrals);
    let body = html! {
        p {
            @if dead_only { a href="/outbox" id="show-all" { "Show everything" } }
            @else { a href="/outbox?dead=1" id="show-dead" { "Show only dead letters" } }
        }
        @if entries.is_empty() {
            p id="outbox-empty" { @if dead_only { "There are no dead letters." } @else { "Nothing has been sent yet." } }
        } @else {
            table id="outbox-table" {
                thead { tr {
                    th scope="col" { "Message" } th scope="col" { "Kind" } th scope="col" { "Referral" }
                    th scope="col" { "To" } th scope="col" { "State" } th scope="col" { "Attempts" }
                    th scope="col" { "Queued" } th scope="col" { "Delivered" } th scope="col" { "Last error" }
                    @if may_retry { th scope="col" { "Retry" } }
                } }
                tbody {
                    @for e in &entries {
                        @let state = pb::DeliveryState::try_from(e.state).map(|s| word(s.as_str_name(), "DELIVERY_STATE_")).unwrap_or_default();
                        tr data-message-id=(e.message_id) data-state=(state) {
                            td.mono { (e.message_id) }
                            td { (pb::MessageKind::try_from(e.kind).map(|k| word(k.as_str_name(), "MESSAGE_KIND_")).unwrap_or_default()) }
                            td { a href=(format!("/referrals/{}", e.referral_id)) { (e.referral_id) } }
                            td { (page::team(&e.peer)) }
                            td { (state) }
                            td { (e.attempts) }
                            td { (page::time(e.created_at.as_ref())) }
                            td { (page::time(e.delivered_at.as_ref())) }
                            td { (e.last_error) }
                            @if may_retry {
                                td { @if e.state == pb::DeliveryState::Dead as i32 {
                                    form method="post" action=(format!("/outbox/{}/retry", e.message_id)) {
                                        (page::csrf_field(&staff))
                                        button type="submit" aria-label=(format!("Retry message {}", e.message_id)) { "Retry" }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
        }
    };
    page::layout(&console, &staff, "Outbox", "/outbox", body).into_response()
}

/// `POST /outbox/{id}/retry`
pub async fn retry(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> Response {
    if !staff.role.may(Capability::DecideReferrals) {
        return page::forbidden(&console, &staff, "retry a dead letter");
    }
    match console
        .agency()
        .retry_message(request(&staff, pb::RetryMessageRequest { message_id: id }))
        .await
    {
        Ok(_) => Redirect::to("/outbox").into_response(),
        Err(status) => page::refused(&console, &staff, &status),
    }
}
