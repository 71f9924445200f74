//! The admin's read-only view of trust: this node's certificates and when they expire, the
//! federation directory and its age, revocation lists, peers, and what needs acting on.
//! Changing trust stays with `tatmx trust` and `tatmx peer` on the node's host.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use time::OffsetDateTime;

use super::Console;
use super::page;
use super::session::Staff;
use super::words;
use crate::staff::Capability;

/// `GET /trust`
pub async fn page(State(console): State<Console>, Extension(staff): Extension<Staff>) -> Response {
    if !staff.role.may(Capability::ReadTrust) {
        return page::forbidden(&console, &staff, "read trust status");
    }
    let trust = console.trust();
    let state = trust.state();
    let warnings = crate::app::trust::warnings(&state);
    // Trust's times are the system clock's, as the handshake's are (docs/ARCHITECTURE.md).
    let now = OffsetDateTime::now_utc();
    let directories: Vec<_> = state.directories().collect();
    let crls: Vec<_> = state.crls().collect();
    let body = html! {
        @if warnings.is_empty() {
            div.notice.ok role="status" id="trust-warnings" { "Nothing needs attention." }
        } @else {
            div.notice.warn role="status" id="trust-warnings" {
                ul { @for w in &warnings { li { (w) } } }
            }
        }
        h2 { "This node's certificates" }
        table.cards id="certificates-table" {
            thead { tr { th scope="col" { "Identity" } th scope="col" { "Serial" } th scope="col" { "Expires" } th scope="col" { "Days left" } } }
            tbody {
                @for c in state.identities.all() {
                    tr {
                        td data-label="Identity" { (words::team(page::team(&c.identity().uri()))) details { summary { "Details" } p.mono { (c.identity().uri()) } } }
                        td.mono data-label="Serial" { (c.serial_hex()) } td data-label="Expires" { (page::time(Some(c.not_after()))) }
                        td data-label="Days left" { ((c.not_after() - now).whole_days()) }
                    }
                }
            }
        }
        h2 { "Federation directories" }
        table.cards id="directories-table" {
            thead { tr { th scope="col" { "Federation" } th scope="col" { "Sequence" } th scope="col" { "Issued" } th scope="col" { "Age" } th scope="col" { "Members" } th scope="col" { "Fresh" } } }
            tbody {
                @for d in &directories {
                    tr {
                        td data-label="Federation" { (d.federation) } td data-label="Sequence" { (d.sequence) } td data-label="Issued" { (page::time(Some(d.issued_at))) }
                        td data-label="Age" { (page::age(Some(d.issued_at), now)) } td data-label="Members" { (d.members) }
                        td data-label="Fresh" { @if state.is_stale(d) { "stale: import a newer one" } @else { "yes" } }
                    }
                }
            }
        }
        @if directories.is_empty() { p { "No signed directory has been imported; peers come from the config file." } }
        h2 { "Revocation lists" }
        @if crls.is_empty() { p { "No CRL has been imported." } }
        @else {
            table.cards id="crls-table" {
                thead { tr { th scope="col" { "Federation" } th scope="col" { "Number" } th scope="col" { "Issued" } th scope="col" { "Next update" } th scope="col" { "Revoked" } } }
                tbody { @for c in &crls { tr {
                    td data-label="Federation" { (c.federation) } td data-label="Number" { (c.crl_number) } td data-label="Issued" { (page::time(Some(c.this_update))) }
                    td data-label="Next update" { (page::time(c.next_update)) } td data-label="Revoked" { (c.revoked.len()) }
                } } }
            }
        }
        h2 { "Peers" }
        table.cards id="peers-table" {
            thead { tr {
                th scope="col" { "Team" } th scope="col" { "Role" } th scope="col" { "Discipline" } th scope="col" { "From" }
                th scope="col" { "State" } th scope="col" { "Last contact" } th scope="col" { "Last error" }
            } }
            tbody {
                @for p in state.peers() {
                    @let health = trust.health(&p.peer.identity);
                    tr {
                        td data-label="Team" { (words::team(page::team(&p.peer.identity.uri()))) details { summary { "Details" } p.mono { (p.peer.identity.uri()) } } }
                        td data-label="Role" { (p.peer.role.as_str()) }
                        td data-label="Discipline" { (p.peer.discipline.as_str()) }
                        td data-label="From" { (p.source.as_str()) }
                        td data-label="State" { @if p.blocked { "blocked" } @else { "admitted" } }
                        td data-label="Last contact" { (page::time(health.last_contact)) }
                        td data-label="Last error" { (health.last_error.as_ref().map(|(_, e)| e.as_str()).unwrap_or_default()) }
                    }
                }
            }
        }
    };
    page::layout(&console, &staff, "Trust", "/trust", body).into_response()
}
