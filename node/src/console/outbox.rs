//! Sent messages (the outbox): whether everything this node sent reached the other team, in
//! words, with what could not be delivered and a chair's retry.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::Console;
use super::page;
use super::session::Staff;
use super::words;
use crate::signing::MessageKind;
use crate::staff::Capability;
use crate::store::DeliveryState;

/// `?dead=1` shows only dead letters; `?done=retried` confirms a retry.
#[derive(Debug, Deserialize)]
pub struct Filter {
    dead: Option<String>,
    #[serde(flatten)]
    done: page::Done,
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
        @if filter.done.word() == Some("retried") {
            (page::notice("ok", "The message is queued again; the node is trying to deliver it now."))
        }
        p { "Everything your node has sent to other teams, newest first, and whether it arrived." }
        p {
            @if dead_only { a href="/outbox" id="show-all" { "Show everything" } }
            @else { a href="/outbox?dead=1" id="show-dead" { "Show only what could not be delivered" } }
        }
        @if entries.is_empty() {
            p id="outbox-empty" { @if dead_only { "Everything sent so far was delivered or is still on its way." } @else { "Nothing has been sent yet." } }
        } @else {
            table.cards id="outbox-table" {
                thead { tr {
                    th scope="col" { "What" } th scope="col" { "To" } th scope="col" { "State" }
                    th scope="col" { "Sent" } th scope="col" { "Case" }
                    @if may_retry { th scope="col" { span.visually-hidden { "Actions" } } }
                } }
                tbody {
                    @for e in &entries {
                        tr data-message-id=(e.message_id) data-state=(state_name(e.state)) {
                            td data-label="What" { (kind_words(e.kind)) }
                            td data-label="To" { (words::team(page::team(&e.peer))) }
                            td data-label="State" {
                                (state_words(e))
                                @if e.last_error.is_some() || e.attempts > 0 {
                                    details {
                                        summary { "Details" }
                                        p.mono { "Message " (e.message_id) ", " (e.attempts) " attempts" }
                                        @if let Some(error) = &e.last_error { p.mono { "Last error: " (error) } }
                                    }
                                }
                            }
                            td data-label="Sent" { (page::time(Some(e.created_at))) }
                            td data-label="Case" { a href=(format!("/referrals/{}", e.referral_id)) { "Open the case" } }
                            @if may_retry {
                                td { @if e.state == DeliveryState::Dead {
                                    form method="post" action=(format!("/outbox/{}/retry", e.message_id)) {
                                        (page::csrf_field(&staff))
                                        button type="submit" aria-label=(format!("Try again to deliver this {}", kind_words(e.kind).to_lowercase())) { "Try again" }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
        }
    };
    page::layout(&console, &staff, "Sent messages", "/outbox", body).into_response()
}

/// What a message is, in words.
fn kind_words(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Referral => "Referral",
        MessageKind::StatusUpdate => "Status change",
        MessageKind::Retraction => "Request to delete a case (consent withdrawn)",
        MessageKind::RetractionAck => "Confirmation that we deleted a case",
        MessageKind::CaseMessage => "Message about a case",
    }
}

/// Where a message's delivery stands, in words.
fn state_words(entry: &crate::store::OutboxEntry) -> String {
    match entry.state {
        DeliveryState::Pending if entry.attempts == 0 => "On its way".to_owned(),
        DeliveryState::Pending => format!(
            "Not delivered yet: the other node did not answer; trying again at {}",
            page::datetime(entry.next_attempt_at)
        ),
        DeliveryState::Delivered => format!("Delivered {}", page::time(entry.delivered_at)),
        DeliveryState::Dead => {
            "Could not be delivered: the node gave up trying. A chair can try again.".to_owned()
        }
        DeliveryState::Cancelled => "Not sent: the case was withdrawn or deleted first".to_owned(),
    }
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
        Ok(_) => Redirect::to("/outbox?done=retried").into_response(),
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
