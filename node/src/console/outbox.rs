//! The outbox: the delivery state of everything this node sent, dead letters, and retry.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::Console;
use super::page;
use super::session::Staff;
use crate::staff::Capability;
use crate::store::DeliveryState;

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
    let entries = match console.app().outbox(500, dead_only).await {
        Ok(entries) => entries,
        Err(e) => return page::refused(&console, &staff, &e),
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
                        @let state = state_name(e.state);
                        tr data-message-id=(e.message_id) data-state=(state) {
                            td.mono { (e.message_id) }
                            td { (e.kind.as_str()) }
                            td { a href=(format!("/referrals/{}", e.referral_id)) { (e.referral_id) } }
                            td { (page::team(&e.peer)) }
                            td { (state) }
                            td { (e.attempts) }
                            td { (page::time(Some(e.created_at))) }
                            td { (page::time(e.delivered_at)) }
                            td { (e.last_error.as_deref().unwrap_or_default()) }
                            @if may_retry {
                                td { @if e.state == DeliveryState::Dead {
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
    let retried = match page::id(&id, "message_id") {
        Ok(id) => console.app().retry_dead_letter(id).await,
        Err(e) => Err(e),
    };
    match retried {
        Ok(_) => Redirect::to("/outbox").into_response(),
        Err(e) => page::refused(&console, &staff, &e),
    }
}

/// A delivery state's name, as the Agency API and the CLI spell it.
// The store's DeliveryState has no public name table yet; this is the one place the console
// spells it, until the store's enums derive theirs.
fn state_name(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Dead => "dead",
        DeliveryState::Cancelled => "cancelled",
    }
}
