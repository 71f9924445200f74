//! The admin's read-only view of trust: this node's certificates and when they expire, the
//! federation directory and its age, revocation lists, peers, and what needs acting on.
//! Changing trust stays with `tatmx trust` and `tatmx peer` on the node's host.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::admin_server::Admin as _;

use super::page::{self, request};
use super::session::Staff;
use super::{Capability, Console};

/// `GET /trust`
pub async fn page(State(console): State<Console>, Extension(staff): Extension<Staff>) -> Response {
    if !staff.role.may(Capability::ReadTrust) {
        return page::forbidden(&console, &staff, "read trust status");
    }
    let status = match console
        .admin()
        .trust_status(request(&staff, pb::TrustStatusRequest {}))
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => return page::refused(&console, &staff, &status),
    };
    let body = html! {
        @if status.warnings.is_empty() {
            div.notice.ok role="status" id="trust-warnings" { "Nothing needs attention." }
        } @else {
            div.notice.warn role="status" id="trust-warnings" {
                ul { @for w in &status.warnings { li { (w) } } }
            }
        }
        h2 { "This node's certificates" }
        table id="certificates-table" {
            thead { tr { th scope="col" { "Identity" } th scope="col" { "Serial" } th scope="col" { "Expires" } th scope="col" { "Days left" } } }
            tbody {
                @for c in &status.memberships {
                    tr { td { (c.identity) } td.mono { (c.serial) } td { (page::time(c.not_after.as_ref())) } td { (c.days_until_expiry) } }
                }
            }
        }
        h2 { "Federation directories" }
        table id="directories-table" {
            thead { tr { th scope="col" { "Federation" } th scope="col" { "Sequence" } th scope="col" { "Issued" } th scope="col" { "Age" } th scope="col" { "Members" } th scope="col" { "Fresh" } } }
            tbody {
                @for d in &status.directories {
                    tr {
                        td { (d.federation) } td { (d.sequence) } td { (page::time(d.issued_at.as_ref())) }
                        td { (page::age(d.issued_at.as_ref())) } td { (d.members) }
                        td { @if d.stale { "stale: import a newer one" } @else { "yes" } }
                    }
                }
            }
        }
        @if status.directories.is_empty() { p { "No signed directory has been imported; peers come from the config file." } }
        h2 { "Revocation lists" }
        @if status.crls.is_empty() { p { "No CRL has been imported." } }
        @else {
            table id="crls-table" {
                thead { tr { th scope="col" { "Federation" } th scope="col" { "Number" } th scope="col" { "Issued" } th scope="col" { "Next update" } th scope="col" { "Revoked" } } }
                tbody { @for c in &status.crls { tr {
                    td { (c.federation) } td { (c.crl_number) } td { (page::time(c.this_update.as_ref())) }
                    td { (page::time(c.next_update.as_ref())) } td { (c.revoked) }
                } } }
            }
        }
        h2 { "Peers" }
        table id="peers-table" {
            thead { tr {
                th scope="col" { "Team" } th scope="col" { "Role" } th scope="col" { "Discipline" } th scope="col" { "From" }
                th scope="col" { "State" } th scope="col" { "Last contact" } th scope="col" { "Last error" }
            } }
            tbody {
                @for p in &status.peers {
                    tr {
                        td { (p.identity) }
                        td { (pb::Role::try_from(p.role).map(|r| page::word(r.as_str_name(), "ROLE_")).unwrap_or_default()) }
                        td { (p.discipline) }
                        td { (p.source) }
                        td { @if p.blocked { "blocked" } @else { "admitted" } }
                        td { (page::time(p.last_contact.as_ref())) }
                        td { (p.last_error) }
                    }
                }
            }
        }
    };
    page::layout(&console, &staff, "Trust", "/trust", body).into_response()
}
