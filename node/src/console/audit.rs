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
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::admin_server::Admin as _;

use super::page::{self, Fields, request};
use super::session::Staff;
use super::{Capability, Console};
use crate::audit::AuditKind;

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
    let verification = match console
        .admin()
        .verify_audit(request(&staff, pb::VerifyAuditRequest {}))
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => return page::refused(&console, &staff, &status),
    };
    let kind = filter.kind.filter(|k| !k.is_empty());
    let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
    let entries = match console
        .admin()
        .query_audit(request(
            &staff,
            pb::QueryAuditRequest {
                since: None,
                kind: kind.clone().unwrap_or_default(),
                peer: String::new(),
                limit,
            },
        ))
        .await
    {
        Ok(response) => response.into_inner().entries,
        Err(status) => return page::refused(&console, &staff, &status),
    };
    let body = html! {
        h2 id="verification-heading" { "Chain verification" }
        @if verification.ok {
            div.notice.ok role="status" id="verification" {
                "The audit chain is intact: " (verification.entries) " entries and " (verification.checkpoints)
                " signed checkpoints verified; the last checkpoint was signed " (page::time(verification.last_checkpoint_at.as_ref())) "."
            }
        } @else {
            div.notice.error role="alert" id="verification" {
                "The audit chain does not verify, from entry " (verification.first_bad_seq) ": " (verification.problem)
                " Tell your security officer, and keep a copy of the database as it is."
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
                        td { (page::time(e.at.as_ref())) }
                        td { (e.kind) }
                        td { (e.actor) }
                        td { (page::team(&e.peer)) }
                        td.mono { (e.referral_id) }
                        td.mono { (e.detail_json) }
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
) -> Result<Vec<pb::DisclosureRecord>, Response> {
    console
        .admin()
        .account_disclosures(request(
            staff,
            pb::AccountDisclosuresRequest {
                subject: subject.to_owned(),
                since: None,
            },
        ))
        .await
        .map(|r| r.into_inner().disclosures)
        .map_err(|status| page::refused(console, staff, &status))
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
                            td { (page::time(r.at.as_ref())) }
                            td { (page::team(&r.recipient)) }
                            td { (r.kind) }
                            td { (page::purpose_word(r.purpose)) }
                            td { (page::basis_word(r.legal_basis)) }
                            td { (names(&r.categories)) }
                            td { (names(&r.withheld)) }
                            td.mono { (r.referral_id) }
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

fn names(categories: &[i32]) -> String {
    categories
        .iter()
        .map(|c| page::category_name(*c))
        .collect::<Vec<_>>()
        .join(" ")
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
            page::time(r.at.as_ref()),
            r.recipient.clone(),
            r.kind.clone(),
            page::purpose_word(r.purpose),
            page::basis_word(r.legal_basis),
            r.consent_id.clone(),
            names(&r.categories),
            names(&r.withheld),
            r.rules.join(" "),
            r.referral_id.clone(),
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
