//! The auditor's pages: whether the audit chain verifies, the log in words (who, what, which
//! kinds of information, when) with filters by date, kind and actor, paged on the server and
//! exported as CSV, and the accounting of disclosures under any of this team's references for
//! a person or case, with its own CSV export. The reference is sent in a POST body, never in a
//! URL, so it stays out of browser history and server logs. Raw codes and JSON stay behind
//! each entry's "Details".

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;

use super::Console;
use super::page::{self, Fields};
use super::session::Staff;
use super::words;
use crate::app::AppError;
use crate::app::audit::{AuditQuery, DisclosureRecord, MAX_AUDIT_LIMIT, audit_kind, entry_time};
use crate::audit::{AuditEntry, AuditKind};
use crate::category::DataCategory;
use crate::referral::{LegalBasis, Purpose};
use crate::staff::Capability;

/// Entries on one page of the log.
const PAGE_SIZE: u32 = 50;

/// The log's filters, from the address: a kind, a date range, an actor and a page; none is
/// personal data (an actor is a staff username or a team).
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    kind: Option<String>,
    from: Option<String>,
    until: Option<String>,
    actor: Option<String>,
    page: Option<u32>,
}

impl Filter {
    /// The query these filters ask for, or what is wrong with them. Dates are whole days
    /// (UTC), `until` included.
    fn query(&self, limit: u32, offset: u32) -> Result<AuditQuery, AppError> {
        let kind = match self.kind.as_deref() {
            None | Some("") => None,
            Some(name) => Some(audit_kind(name)?),
        };
        Ok(AuditQuery {
            kind,
            since: day(self.from.as_deref(), "from")?,
            until: day(self.until.as_deref(), "until")?.map(|d| d + time::Duration::DAY),
            actor: self.actor.clone().filter(|a| !a.trim().is_empty()),
            offset,
            limit,
            ..AuditQuery::default()
        })
    }

    /// The filters as an address's query, for paging and the CSV link.
    fn href(&self, path: &str, page: Option<u32>) -> String {
        let mut pairs = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("kind", &self.kind),
            ("from", &self.from),
            ("until", &self.until),
            ("actor", &self.actor),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                pairs.append_pair(name, value);
            }
        }
        if let Some(page) = page {
            pairs.append_pair("page", &page.to_string());
        }
        let query = pairs.finish();
        if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        }
    }
}

/// A date field: the start of that day, UTC.
fn day(text: Option<&str>, field: &str) -> Result<Option<OffsetDateTime>, AppError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => time::Date::parse(
            text,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map(|d| Some(d.midnight().assume_utc()))
        .map_err(|_| AppError::invalid(field, "is not a date; pick one from the calendar")),
    }
}

/// The kinds of information an entry names, in words.
fn entry_categories(entry: &AuditEntry) -> String {
    let detail: serde_json::Value = serde_json::from_str(&entry.detail).unwrap_or_default();
    detail
        .get("categories")
        .and_then(|c| c.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|c| c.as_str().and_then(DataCategory::parse))
                .map(words::category_short)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// What an entry records, in words (its stored name, if the console has none).
fn entry_kind(entry: &AuditEntry) -> String {
    AuditKind::parse(&entry.kind)
        .map_or_else(|| entry.kind.clone(), |k| words::audit_kind(k).to_owned())
}

/// The other team an entry is about, in words.
fn entry_team(entry: &AuditEntry) -> Option<String> {
    entry.peer.as_deref().map(|p| words::team(page::team(p)))
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
    let number = filter.page.unwrap_or(1).max(1);
    // One more than a page, to know whether an older page exists.
    let entries = match filter.query(PAGE_SIZE + 1, (number - 1).saturating_mul(PAGE_SIZE)) {
        Ok(query) => console.app().audit_entries(query).await,
        Err(e) => Err(e),
    };
    let mut entries = match entries {
        Ok(entries) => entries,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let older = entries.len() > PAGE_SIZE as usize;
    entries.truncate(PAGE_SIZE as usize);
    let kind = filter.kind.clone().unwrap_or_default();
    let body = html! {
        h2 id="verification-heading" { "Chain verification" }
        @if let Some((first_bad_seq, problem)) = &verification.first_bad {
            div.notice.error role="alert" id="verification" {
                "The audit log has been changed or damaged, from entry " (first_bad_seq) " on."
                " Tell your security officer, and keep a copy of the database as it is."
                details { summary { "Details" } p.mono { (problem) } }
            }
        } @else {
            div.notice.ok role="status" id="verification" {
                "The audit log is intact: " (verification.entries) " entries and " (verification.checkpoints)
                " signed checkpoints verified; the last checkpoint was signed " (page::time(verification.last_checkpoint_at_ms.and_then(entry_time))) "."
            }
        }
        // What an auditor is most often asked for comes first: what left about one person.
        h2 id="accounting-heading" { "Accounting of disclosures" }
        (subject_form(&staff, ""))
        h2 id="log-heading" { "Log" }
        form.filters method="get" action="/audit" id="audit-filter" aria-label="Filter the audit log" {
            div {
                label for="audit-kind" { "What" }
                select id="audit-kind" name="kind" {
                    option value="" { "Everything" }
                    @for k in AuditKind::ALL {
                        option value=(k.as_str()) selected[kind == k.as_str()] { (words::audit_kind(k)) }
                    }
                }
            }
            div {
                label for="audit-from" { "From" }
                input type="date" id="audit-from" name="from" value=(filter.from.as_deref().unwrap_or_default());
            }
            div {
                label for="audit-until" { "Until" }
                input type="date" id="audit-until" name="until" value=(filter.until.as_deref().unwrap_or_default());
            }
            div {
                label for="audit-actor" { "Who (a staff username or a team)" }
                input type="text" id="audit-actor" name="actor" value=(filter.actor.as_deref().unwrap_or_default())
                    autocapitalize="none" spellcheck="false";
            }
            div { button type="submit" id="apply-audit-filter" { "Show" } }
        }
        p { a href=(filter.href("/audit/entries.csv", None)) id="export-audit-csv" download { "Download these entries as CSV" } }
        @if entries.is_empty() {
            p id="audit-empty" { "No audit entry matches these filters." }
        } @else {
            p.hint id="audit-page" { "Newest first; page " (number) "." }
            ul.td-cards id="audit-list" {
                @for e in &entries {
                    @let categories = entry_categories(e);
                    li.card data-kind=(e.kind) data-seq=(e.seq) {
                        p { strong { (entry_kind(e)) } }
                        p.hint {
                            (page::time(entry_time(e.at_ms))) " · " (words::actor(&e.actor))
                            @if let Some(team) = entry_team(e) { " · with " (team) }
                        }
                        @if !categories.is_empty() { p { "Kinds of information: " (categories) } }
                        details {
                            summary { "Details" }
                            dl.facts {
                                dt { "Entry" } dd { (e.seq) }
                                dt { "Kind" } dd.mono { (e.kind) }
                                dt { "Recorded actor" } dd.mono { (e.actor) }
                                @if let Some(peer) = &e.peer { dt { "Team" } dd.mono { (peer) } }
                                @if let Some(id) = &e.referral_id { dt { "Referral" } dd.mono { (id) } }
                                dt { "Detail" } dd.mono { (e.detail) }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages of the log" {
                @if number > 1 { a href=(filter.href("/audit", Some(number - 1))) id="audit-newer" { "Newer entries" } }
                @if older { a href=(filter.href("/audit", Some(number + 1))) id="audit-older" { "Older entries" } }
            }
        }
    };
    page::layout(&console, &staff, "Audit", "/audit", body).into_response()
}

/// `GET /audit/entries.csv`: the entries the filters match, newest first, at most
/// [`MAX_AUDIT_LIMIT`].
pub async fn entries_csv(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Query(filter): Query<Filter>,
) -> Response {
    if !staff.role.may(Capability::ReadAudit) {
        return page::forbidden(&console, &staff, "export the audit log");
    }
    let entries = match filter.query(MAX_AUDIT_LIMIT, 0) {
        Ok(query) => console.app().audit_entries(query).await,
        Err(e) => Err(e),
    };
    let entries = match entries {
        Ok(entries) => entries,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let mut csv = String::from("seq,at,kind,what,actor,who,team,referral_id,categories,detail\r\n");
    for e in &entries {
        let row = [
            e.seq.to_string(),
            page::time(entry_time(e.at_ms)),
            e.kind.clone(),
            entry_kind(e),
            e.actor.clone(),
            words::actor(&e.actor),
            e.peer.clone().unwrap_or_default(),
            e.referral_id.clone().unwrap_or_default(),
            entry_categories(e),
            e.detail.clone(),
        ];
        push_row(&mut csv, &row);
    }
    csv_response(csv, "audit-log.csv")
}

fn push_row(csv: &mut String, row: &[String]) {
    csv.push_str(
        &row.iter()
            .map(|f| csv_field(f))
            .collect::<Vec<_>>()
            .join(","),
    );
    csv.push_str("\r\n");
}

fn csv_response(csv: String, name: &'static str) -> Response {
    let disposition = format!("attachment; filename=\"{name}\"");
    let mut response = csv.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

fn subject_form(staff: &Staff, subject: &str) -> Markup {
    html! {
        form.card method="post" action="/audit/disclosures" id="disclosures-form" {
            (page::csrf_field(staff))
            label for="subject" { "Your reference for the person or case" }
            p.hint id="subject-hint" { "Any reference this team keeps for them: the reference on the referral or on the consent, or your case number." }
            input type="text" id="subject" name="subject" value=(subject) required aria-describedby="subject-hint";
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

/// What left, in words.
fn disclosure_kind(kind: &str) -> &'static str {
    match kind {
        "referral" => "A referral",
        "forward" => "A referral passed on to another team",
        "consultation" => "A copy for a consultation",
        "status-update" => "A status change with case information",
        _ => "A message about the case",
    }
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
            p id="disclosures-empty" { "No disclosure is recorded under the reference “" (subject) "”." }
        } @else {
            p id="disclosures-count" {
                (records.len()) @if records.len() == 1 { " disclosure is" } @else { " disclosures are" }
                " recorded under the reference “" (subject) "”, oldest first."
            }
            ul.td-cards id="disclosures-list" {
                @for r in &records {
                    li.card data-seq=(r.audit_seq) {
                        p { strong { (disclosure_kind(&r.kind)) } " to "
                            (r.recipient.as_deref().map_or_else(|| "another team".to_owned(), |t| words::team(page::team(t)))) }
                        p.hint { (page::time(r.at)) }
                        dl.facts {
                            dt { "For" } dd { (r.purpose.map_or("Not recorded", words::purpose)) }
                            dt { "On the basis of" } dd { (r.legal_basis.map_or("Not recorded", words::legal_basis)) }
                            dt { "Sent" } dd { (short_names(&r.categories)) }
                            dt { "Withheld" } dd { (short_names(&r.withheld)) }
                        }
                        details {
                            summary { "Details" }
                            dl.facts {
                                dt { "Entry" } dd { (r.audit_seq) }
                                dt { "Kind" } dd.mono { (r.kind) }
                                @if let Some(id) = &r.referral_id { dt { "Referral" } dd.mono { (id) } }
                                @if let Some(id) = &r.consent_id { dt { "Consent" } dd.mono { (id) } }
                                @if !r.rules.is_empty() { dt { "Rules" } dd.mono { (r.rules.join(" ")) } }
                            }
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

/// Kinds of information in words, or "nothing".
fn short_names(categories: &[DataCategory]) -> String {
    if categories.is_empty() {
        return "Nothing".into();
    }
    categories
        .iter()
        .map(|c| words::category_short(*c))
        .collect::<Vec<_>>()
        .join(", ")
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

/// `POST /audit/disclosures.csv`: the accounting's codes as the Admin API gives them, for a
/// spreadsheet or a records request.
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
        push_row(&mut csv, &row);
    }
    csv_response(csv, "disclosures.csv")
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
