//! The auditor's pages: whether the audit chain verifies, the log with filters, and the
//! accounting of disclosures about one subject, with a CSV export. The subject reference is
//! sent in a POST body, never in a URL, so it stays out of browser history and server logs.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::Console;
use super::page::{self, Fields};
use super::session::Staff;
use crate::app::audit::{AuditQuery, DisclosureRecord, audit_kind, entry_time};
use crate::audit::AuditKind;
use crate::category::DataCategory;
use crate::referral::{LegalBasis, Purpose};
use crate::staff::Capability;

/// The log's filters: a kind and how many; neither is personal data.
#[derive(Debug, Deserialize)]
pub struct Filter {
    kind: Option<String>,
    limit: Option<u32>,
}

/// `GET /audit`
pub async fn page(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Query(filter): Query<Filter>,
) -> Response {
    if !staff.role.may(Capability::ReadAudit) {
        return page::forbidden(&console, &staff, "read the audit log");
    }
    let verification = match console.app().verify_audit().await {
        Ok(verification) => verification,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let kind = filter.kind.filter(|k| !k.is_empty());
    let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
    let query = kind
        .as_deref()
        .map(audit_kind)
        .transpose()
        .map(|kind| AuditQuery {
            kind,
            limit,
            ..AuditQuery::default()
        });
    let entries = match query {
        Ok(query) => console.app().audit_entries(query).await,
        Err(e) => Err(e),
    };
    let entries = match entries {
        Ok(entries) => entries,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let body = html! {
        h2 id="verification-heading" { "Chain verification" }
        @if let Some((first_bad_seq, problem)) = &verification.first_bad {
            div.notice.error role="alert" id="verification" {
                "The audit chain does not verify, from entry " (first_bad_seq) ": " (problem)
                " Tell your security officer, and keep a copy of the database as it is."
            }
        } @else {
            div.notice.ok role="status" id="verification" {
                "The audit chain is intact: " (verification.entries) " entries and " (verification.checkpoints)
                " signed checkpoints verified; the last checkpoint was signed " (page::time(verification.last_checkpoint_at_ms.and_then(entry_time))) "."
            }
        }
        h2 id="log-heading" { "Log" }
        form.filters method="get" action="/audit" aria-label="Filter the audit log" {
            div {
                label for="audit-kind" { "Kind" }
                select id="audit-kind" name="kind" {
                    option value="" { "Every kind" }
                    @for k in AuditKind::ALL {
                        option value=(k.as_str()) selected[kind.as_deref() == Some(k.as_str())] { (k.as_str()) }
                    }
                }
            }
            div {
                label for="audit-limit" { "How many" }
                select id="audit-limit" name="limit" {
                    @for n in [50u32, 100, 500, 1000] {
                        option value=(n) selected[limit == n] { (n) }
                    }
                }
            }
            div { button type="submit" id="apply-audit-filter" { "Show" } }
        }
        table id="audit-table" {
            caption { "Newest first" }
            thead { tr {
                th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Kind" } th scope="col" { "Who" }
                th scope="col" { "Team" } th scope="col" { "Referral" } th scope="col" { "Detail" }
            } }
            tbody {
                @for e in &entries {
                    tr data-kind=(e.kind) {
                        td { (e.seq) }
                        td { (page::time(entry_time(e.at_ms))) }
                        td { (e.kind) }
                        td { (e.actor) }
                        td { (page::team(e.peer.as_deref().unwrap_or_default())) }
                        td.mono { (e.referral_id.as_deref().unwrap_or_default()) }
                        td.mono { (e.detail) }
                    }
                }
            }
        }
        h2 id="accounting-heading" { "Accounting of disclosures" }
        (subject_form(&staff, ""))
    };
    page::layout(&console, &staff, "Audit", "/audit", body).into_response()
}

fn subject_form(staff: &Staff, subject: &str) -> Markup {
    html! {
        form.card method="post" action="/audit/disclosures" id="disclosures-form" {
            (page::csrf_field(staff))
            label for="subject" { "Your reference for the subject (a case number or a consent's subject)" }
            input type="text" id="subject" name="subject" value=(subject) required;
            p { button type="submit" id="show-disclosures" { "Show the disclosures" } }
        }
    }
}

async fn accounting(
    console: &Console,
    staff: &Staff,
    subject: &str,
) -> Result<Vec<DisclosureRecord>, Response> {
    console
        .app()
        .disclosures(subject, None)
        .await
        .map_err(|e| page::refused(console, staff, &e))
}

/// `POST /audit/disclosures`
pub async fn disclosures(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::ReadAudit) {
        return page::forbidden(&console, &staff, "read the accounting of disclosures");
    }
    let fields = Fields::parse(&body);
    let subject = fields.get("subject");
    let records = match accounting(&console, &staff, subject).await {
        Ok(records) => records,
        Err(response) => return response,
    };
    let body = html! {
        (subject_form(&staff, subject))
        @if records.is_empty() {
            p id="disclosures-empty" { "Nothing about this subject has been disclosed by this node." }
        } @else {
            table id="disclosures-table" {
                caption { (records.len()) @if records.len() == 1 { " disclosure" } @else { " disclosures" } }
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "To" } th scope="col" { "What" } th scope="col" { "Purpose" }
                    th scope="col" { "Basis" } th scope="col" { "Categories sent" } th scope="col" { "Withheld" } th scope="col" { "Referral" }
                } }
                tbody {
                    @for r in &records {
                        tr {
                            td { (page::time(r.at)) }
                            td { (page::team(r.recipient.as_deref().unwrap_or_default())) }
                            td { (r.kind) }
                            td { (purpose_name(r.purpose)) }
                            td { (basis_name(r.legal_basis)) }
                            td { (names(&r.categories)) }
                            td { (names(&r.withheld)) }
                            td.mono { (r.referral_id.as_deref().unwrap_or_default()) }
                        }
                    }
                }
            }
            form method="post" action="/audit/disclosures.csv" id="export-form" {
                (page::csrf_field(&staff))
                input type="hidden" name="subject" value=(subject);
                p { button type="submit" id="export-csv" { "Download as CSV" } }
            }
        }
    };
    page::layout(
        &console,
        &staff,
        "Accounting of disclosures",
        "/audit",
        body,
    )
    .into_response()
}

fn names(categories: &[DataCategory]) -> String {
    categories
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A disclosure's purpose; an entry that does not say reads `unspecified`, as it always has.
fn purpose_name(purpose: Option<Purpose>) -> &'static str {
    purpose.map_or("unspecified", Purpose::as_str)
}

/// A disclosure's legal basis; an entry that does not say reads `unspecified`.
fn basis_name(basis: Option<LegalBasis>) -> &'static str {
    basis.map_or("unspecified", LegalBasis::as_str)
}

/// One CSV field, quoted when it needs to be; a leading `= + - @` is prefixed with `'` so a
/// spreadsheet does not run it as a formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// `POST /audit/disclosures.csv`
pub async fn disclosures_csv(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::ReadAudit) {
        return page::forbidden(&console, &staff, "export the accounting of disclosures");
    }
    let fields = Fields::parse(&body);
    let records = match accounting(&console, &staff, fields.get("subject")).await {
        Ok(records) => records,
        Err(response) => return response,
    };
    let mut csv = String::from(
        "at,recipient,kind,purpose,legal_basis,consent_id,categories,withheld,rules,referral_id,audit_seq\r\n",
    );
    for r in &records {
        let row = [
            page::time(r.at),
            r.recipient.clone().unwrap_or_default(),
            r.kind.clone(),
            purpose_name(r.purpose).to_owned(),
            basis_name(r.legal_basis).to_owned(),
            r.consent_id.clone().unwrap_or_default(),
            names(&r.categories),
            names(&r.withheld),
            r.rules.join(" "),
            r.referral_id.clone().unwrap_or_default(),
            r.audit_seq.to_string(),
        ];
        csv.push_str(
            &row.iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        csv.push_str("\r\n");
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"disclosures.csv\""),
            ),
        ],
        csv,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_run_as_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
