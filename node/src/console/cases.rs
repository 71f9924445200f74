//! "My cases": the start page of case workers and chairs. Every case this team sent or
//! received, one row each, with this team's own case number and reference for the person,
//! the other team, where the case stands, the last activity, and what is new for the reader;
//! searched, filtered, sorted and paged on the server. Also the small form that sets this
//! team's references on a case, and a case's print view.
//!
//! Filters, the order and the page sit in the query string: they say nothing about anyone.
//! The search text is a case number or a reference for a person, so it never does: it is sent
//! by POST, so it stays out of the address bar, the browser's history, the `Referer` of the
//! next page and any log of addresses. Paging through a search posts it again.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::Console;
use super::page::{self, Fields};
use super::session::Staff;
use super::words;
use crate::app::CaseFilter;
use crate::app::cases::MAX_REFERENCE;
use crate::case_message::CaseBody;
use crate::referral::{ReferralContent, ReferralStatus};
use crate::staff::Capability;
use crate::store::{
    CasePage, CaseReferences, CaseRow, CaseSort, Direction, StatusEvent, StoredCaseMessage,
};

/// The list's address, and the navigation entry of every page here.
pub const CASES: &str = "/cases";

/// The filters, order and page, as the query string (or a search's form) carries them.
#[derive(Debug, Default, Deserialize)]
pub struct Shown {
    /// `open`, `closed`, or empty for both.
    show: Option<String>,
    /// `sent`, `received`, or empty for both.
    way: Option<String>,
    /// A status's code, or empty for any.
    status: Option<String>,
    /// `priority` (the default), `activity`, `case-number` or `status`.
    sort: Option<String>,
    /// The page, from 1.
    page: Option<String>,
    /// What was just done, for the confirmation.
    done: Option<String>,
}

/// The orders offered, with their names in the query string and in words.
const SORTS: [(CaseSort, &str, &str); 4] = [
    (CaseSort::Priority, "priority", "Most urgent first"),
    (CaseSort::Activity, "activity", "Latest activity first"),
    (CaseSort::CaseNumber, "case-number", "Case number"),
    (CaseSort::Status, "status", "Where it stands"),
];

/// What the list shows, read from the query string or a search form, with anything not
/// understood taken as "any".
#[derive(Debug, Clone, Default)]
struct View {
    /// The search text, as typed (POST only).
    search: String,
    show: &'static str,
    way: &'static str,
    status: Option<ReferralStatus>,
    sort: CaseSort,
    page: u32,
}

impl View {
    fn read(shown: &Shown, search: String) -> Self {
        let text = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_owned();
        Self {
            search,
            show: match text(&shown.show).as_str() {
                "open" => "open",
                "closed" => "closed",
                _ => "",
            },
            way: match text(&shown.way).as_str() {
                "sent" => "sent",
                "received" => "received",
                _ => "",
            },
            status: ReferralStatus::parse(&text(&shown.status)),
            sort: SORTS
                .iter()
                .find(|(_, name, _)| *name == text(&shown.sort))
                .map_or(CaseSort::Priority, |(sort, _, _)| *sort),
            page: text(&shown.page).parse().unwrap_or(1).max(1),
        }
    }

    fn filter(&self) -> CaseFilter {
        CaseFilter {
            search: Some(self.search.clone()).filter(|s| !s.trim().is_empty()),
            open: match self.show {
                "open" => Some(true),
                "closed" => Some(false),
                _ => None,
            },
            direction: match self.way {
                "sent" => Some(Direction::Outbound),
                "received" => Some(Direction::Inbound),
                _ => None,
            },
            status: self.status,
            sort: self.sort,
            page: self.page,
        }
    }

    fn searching(&self) -> bool {
        !self.search.trim().is_empty()
    }

    fn sort_name(&self) -> &'static str {
        SORTS
            .iter()
            .find(|(sort, _, _)| *sort == self.sort)
            .map_or("priority", |(_, name, _)| name)
    }

    /// The query string of this view at `page` (never the search).
    fn query(&self, page: u32) -> String {
        let mut parts = Vec::new();
        if !self.show.is_empty() {
            parts.push(format!("show={}", self.show));
        }
        if !self.way.is_empty() {
            parts.push(format!("way={}", self.way));
        }
        if let Some(status) = self.status {
            parts.push(format!("status={}", status.as_str()));
        }
        if self.sort != CaseSort::Priority {
            parts.push(format!("sort={}", self.sort_name()));
        }
        if page > 1 {
            parts.push(format!("page={page}"));
        }
        if parts.is_empty() {
            CASES.to_owned()
        } else {
            format!("{CASES}?{}", parts.join("&"))
        }
    }

    /// Hidden fields carrying this view's filters and order through a form.
    fn hidden(&self) -> Markup {
        html! {
            input type="hidden" name="show" value=(self.show);
            input type="hidden" name="way" value=(self.way);
            input type="hidden" name="status" value=(self.status.map_or("", ReferralStatus::as_str));
            input type="hidden" name="sort" value=(self.sort_name());
        }
    }

    fn filtered(&self) -> bool {
        !self.show.is_empty() || !self.way.is_empty() || self.status.is_some()
    }
}

/// `GET /cases`
pub async fn page(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Query(shown): Query<Shown>,
) -> Response {
    let done = shown.done.clone();
    list(&console, &staff, View::read(&shown, String::new()), done).await
}

/// `POST /cases`: a search. The text comes in the body, never the address.
pub async fn search(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    let shown = Shown {
        show: Some(fields.get("show").to_owned()),
        way: Some(fields.get("way").to_owned()),
        status: Some(fields.get("status").to_owned()),
        sort: Some(fields.get("sort").to_owned()),
        page: Some(fields.get("page").to_owned()),
        done: None,
    };
    list(
        &console,
        &staff,
        View::read(&shown, fields.get("q").to_owned()),
        None,
    )
    .await
}

async fn list(console: &Console, staff: &Staff, view: View, done: Option<String>) -> Response {
    if !staff.role.may(Capability::ReadCases) {
        return page::forbidden(console, staff, "see the team's cases");
    }
    match console
        .app()
        .cases(view.filter(), &page::actor(staff))
        .await
    {
        Ok(cases) => {
            let body = html! {
                @if let Some(done) = done.as_deref().and_then(confirmation) { (page::notice("ok", done)) }
                (controls(staff, &view))
                (table(console, &cases, &view))
                (pages(staff, &cases, &view))
            };
            page::layout(console, staff, "My cases", CASES, body).into_response()
        }
        Err(e) => page::refused(console, staff, &e),
    }
}

/// The confirmation for a `?done=` word.
fn confirmation(done: &str) -> Option<&'static str> {
    match done {
        "saved" => Some("Saved."),
        _ => None,
    }
}

/// The search box, and the filters and order.
fn controls(staff: &Staff, view: &View) -> Markup {
    let select = |id: &str, name: &str, label: &str, options: &[(&str, &str)], chosen: &str| {
        html! {
            div {
                label for=(id) { (label) }
                select id=(id) name=(name) {
                    @for (value, text) in options {
                        option value=(value) selected[*value == chosen] { (text) }
                    }
                }
            }
        }
    };
    let statuses: Vec<(&str, &str)> = std::iter::once(("", "Any"))
        .chain(
            ReferralStatus::ALL
                .iter()
                .map(|s| (s.as_str(), words::status_any(*s))),
        )
        .collect();
    let sorts: Vec<(&str, &str)> = SORTS.iter().map(|(_, name, text)| (*name, *text)).collect();
    html! {
        form.cases-search method="post" action=(CASES) role="search" id="cases-search" {
            (page::csrf_field(staff))
            (view.hidden())
            label for="cases-q" { "Find a case by your case number or your reference for the person" }
            p.hint id="cases-q-hint" { "Type all of it, or how it starts. Letter case and spaces do not matter. What you type is not kept in the page's address." }
            div.search-row {
                input type="search" id="cases-q" name="q" value=(view.search)
                    maxlength=(MAX_REFERENCE) aria-describedby="cases-q-hint" autocomplete="off";
                button type="submit" id="cases-search-button" { "Search" }
            }
            @if view.searching() {
                p { a href=(view.query(1)) id="cases-clear-search" { "Show all cases again" } }
            }
        }
        form.filters method=(if view.searching() { "post" } else { "get" }) action=(CASES)
            id="cases-filters" aria-label="Filter and order the cases" {
            @if view.searching() {
                (page::csrf_field(staff))
                input type="hidden" name="q" value=(view.search);
            }
            (select("cases-show", "show", "Open or closed", &[("", "Open and closed"), ("open", "Open cases"), ("closed", "Closed cases")], view.show))
            (select("cases-way", "way", "Sent or received", &[("", "Sent and received"), ("sent", "Sent by your team"), ("received", "Received by your team")], view.way))
            (select("cases-status", "status", "Where it stands", &statuses, view.status.map_or("", ReferralStatus::as_str)))
            (select("cases-sort", "sort", "Order", &sorts, view.sort_name()))
            div { button type="submit" id="cases-apply" { "Show" } }
        }
    }
}

/// The cases of this page: a table on wide screens, a card per case on narrow ones.
fn table(console: &Console, cases: &CasePage, view: &View) -> Markup {
    if cases.rows.is_empty() {
        return html! {
            p id="cases-empty" {
                @if view.searching() {
                    "No cases match “" (view.search.trim()) "”"
                    @if view.filtered() { " with these filters" }
                    ". Check the number, or search for how it starts."
                } @else if view.filtered() {
                    "No case matches these filters."
                } @else {
                    "No cases yet. A case appears here when your team sends a referral or receives one."
                }
            }
        };
    }
    let now = console.now();
    let first = u64::from(cases.page - 1) * u64::from(crate::app::cases::PER_PAGE) + 1;
    let last = first + cases.rows.len() as u64 - 1;
    html! {
        table.cases id="cases-table" {
            caption id="cases-count" {
                "Cases " (first) " to " (last) " of " (cases.total)
                @if view.searching() { " matching your search" }
            }
            thead { tr {
                th scope="col" { "Case" }
                th scope="col" { "Your reference" }
                th scope="col" { "Other team" }
                th scope="col" { "Where it stands" }
                th scope="col" { "Last activity" }
                th scope="col" { "New" }
            } }
            tbody {
                @for row in &cases.rows { (case_row(row, now)) }
            }
        }
    }
}

fn case_row(row: &CaseRow, now: time::OffsetDateTime) -> Markup {
    let id = row.referral_id;
    let kind = if row.consultation {
        "Consultation"
    } else {
        "Referral"
    };
    let (way, team) = match row.direction {
        Direction::Outbound => ("Sent to", page::team(&row.other_team)),
        Direction::Inbound => ("Received from", page::team(&row.other_team)),
    };
    html! {
        tr id=(format!("case-{id}")) data-referral-id=(id)
            class=(format!("case-row{}{}", if row.unread { " unread" } else { "" }, if row.urgent { " urgent" } else { "" })) {
            th scope="row" data-label="Case" {
                a href=(format!("/referrals/{id}")) id=(format!("case-link-{id}")) {
                    @if let Some(number) = &row.references.case_number {
                        span.case-number { (number) }
                    } @else {
                        span.no-number { "No case number" }
                    }
                }
                span.kind { " · " (kind) }
                " "
                a.set-refs href=(format!("/cases/{id}/references")) id=(format!("case-refs-{id}")) {
                    @if row.references.is_empty() { "Add your case number" } @else { "Change your references" }
                }
            }
            td data-label="Your reference" {
                @if let Some(reference) = &row.references.local_reference { (reference) } @else { "-" }
            }
            td data-label="Other team" { (way) " " (words::team(team)) }
            td.status data-label="Where it stands" { (words::status(row.status, row.direction)) }
            td data-label="Last activity" {
                (page::datetime(row.last_activity)) " "
                span.ago { "(" (page::age(Some(row.last_activity), now)) " ago)" }
            }
            td data-label="New" {
                @if row.urgent {
                    span.badge.urgent id=(format!("case-urgent-{id}")) { "Urgent new information" } " "
                }
                @if row.unread {
                    span.badge.unread id=(format!("case-unread-{id}")) { "New" }
                }
            }
        }
    }
}

/// "Page 2 of 4", with the previous and next pages: links, or for a search, buttons that
/// post it again.
fn pages(staff: &Staff, cases: &CasePage, view: &View) -> Markup {
    if cases.pages <= 1 {
        return html! {};
    }
    let (page, pages) = (cases.page, cases.pages);
    html! {
        nav.pages aria-label="Pages of cases" {
            @if view.searching() {
                form method="post" action=(CASES) id="cases-pages" {
                    (page::csrf_field(staff))
                    (view.hidden())
                    input type="hidden" name="q" value=(view.search);
                    @if page > 1 {
                        button type="submit" name="page" value=(page - 1) id="cases-prev" { "Previous page" }
                    }
                    span id="cases-page-status" { "Page " (page) " of " (pages) }
                    @if page < pages {
                        button type="submit" name="page" value=(page + 1) id="cases-next" { "Next page" }
                    }
                }
            } @else {
                @if page > 1 {
                    a href=(view.query(page - 1)) rel="prev" id="cases-prev" { "Previous page" }
                }
                span id="cases-page-status" { "Page " (page) " of " (pages) }
                @if page < pages {
                    a href=(view.query(page + 1)) rel="next" id="cases-next" { "Next page" }
                }
            }
        }
    }
}

/// The form that sets this team's references on a case; B's case page may show it too.
/// `errors` are (field, message) for a value refused.
pub fn references_form(
    staff: &Staff,
    id: Uuid,
    references: &CaseReferences,
    errors: &[(&str, String)],
) -> Markup {
    let field = |name: &str, input_id: &str, label: &str, value: &str| {
        let error = errors.iter().find(|(f, _)| *f == name).map(|(_, m)| m);
        let hint = format!("{input_id}-hint");
        let error_id = format!("{input_id}-error");
        let described = if error.is_some() {
            format!("{hint} {error_id}")
        } else {
            hint.clone()
        };
        html! {
            label for=(input_id) { (label) }
            p.hint id=(hint) { "Kept at your team and never sent to another team. At most " (MAX_REFERENCE) " characters." }
            @if let Some(message) = error {
                p.field-error id=(error_id) { (message) }
            }
            input type="text" id=(input_id) name=(name) value=(value) maxlength=(MAX_REFERENCE)
                autocomplete="off" aria-describedby=(described)
                aria-invalid=[error.map(|_| "true")];
        }
    };
    html! {
        form.card method="post" action=(format!("/cases/{id}/references")) id="references-form" {
            h2 { "Your team's references" }
            (page::csrf_field(staff))
            (field("case_number", "reference-case-number", "Your case number",
                references.case_number.as_deref().unwrap_or("")))
            (field("local_reference", "reference-local", "Your reference for this person",
                references.local_reference.as_deref().unwrap_or("")))
            p { button type="submit" id="references-save" { "Save" } }
        }
    }
}

/// `GET /cases/{id}/references`
pub async fn references_page(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Query(shown): Query<Shown>,
) -> Response {
    if !staff.role.may(Capability::ReadCases) {
        return page::forbidden(&console, &staff, "change a case's references");
    }
    let found = match page::id(&id, "referral_id") {
        Ok(id) => console.app().case_references(id).await.map(|r| (id, r)),
        Err(e) => Err(e),
    };
    match found {
        Ok((id, references)) => {
            let saved = shown.done.as_deref().and_then(confirmation);
            references_whole(&console, &staff, id, &references, &[], saved).into_response()
        }
        Err(e) => page::refused(&console, &staff, &e),
    }
}

fn references_whole(
    console: &Console,
    staff: &Staff,
    id: Uuid,
    references: &CaseReferences,
    errors: &[(&str, String)],
    done: Option<&str>,
) -> Markup {
    let body = html! {
        @if let Some(done) = done { (page::notice("ok", done)) }
        @if !errors.is_empty() { (page::notice("error", "Nothing was saved: correct the field marked below.")) }
        p { "Your case number and your reference for the person help your team find this case. They stay on your team's node: the other team never sees them." }
        (references_form(staff, id, references, errors))
        p {
            a href=(format!("/referrals/{id}")) id="references-back-to-case" { "Back to the case" }
            " · "
            a href=(CASES) id="references-back-to-cases" { "Back to my cases" }
        }
    };
    page::layout(console, staff, "Your references for a case", CASES, body)
}

/// `POST /cases/{id}/references`
pub async fn set_references(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::ReadCases) {
        return page::forbidden(&console, &staff, "change a case's references");
    }
    let id = match page::id(&id, "referral_id") {
        Ok(id) => id,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let fields = Fields::parse(&body);
    let (case_number, local_reference) = (fields.get("case_number"), fields.get("local_reference"));
    let errors: Vec<(&str, String)> = [
        ("case_number", case_number, "The case number"),
        ("local_reference", local_reference, "The reference"),
    ]
    .into_iter()
    .filter_map(|(name, value, what)| {
        if value.chars().count() > MAX_REFERENCE {
            Some((
                name,
                format!("{what} is too long: use at most {MAX_REFERENCE} characters."),
            ))
        } else if value.chars().any(char::is_control) {
            Some((
                name,
                format!("{what} holds a character that cannot be kept; type it again."),
            ))
        } else {
            None
        }
    })
    .collect();
    if !errors.is_empty() {
        let typed = CaseReferences {
            case_number: Some(case_number.to_owned()),
            local_reference: Some(local_reference.to_owned()),
        };
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            references_whole(&console, &staff, id, &typed, &errors, None),
        )
            .into_response();
    }
    match console
        .app()
        .set_case_references(id, case_number, local_reference)
        .await
    {
        Ok(()) => Redirect::to(&format!("/cases/{id}/references?done=saved")).into_response(),
        Err(e) => page::refused(&console, &staff, &e),
    }
}

/// `GET /cases/{id}/print`: what this team holds on a case, on paper: the facts, the content
/// as it stands, and the conversation in order, without the menu. Reading it is a case read,
/// on record as the case page's is.
pub async fn print(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> Response {
    if !staff.role.may(Capability::ReadCases) {
        return page::forbidden(&console, &staff, "print cases");
    }
    let actor = page::actor(&staff);
    let id = match page::id(&id, "referral_id") {
        Ok(id) => id,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let record = match console.app().read_case(id, &actor).await {
        Ok(record) => record,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let references = match console.app().case_references(id).await {
        Ok(references) => references,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    console.app().mark_case_opened(id, &actor).await;
    let (stored, events) = &record.held;
    let referral = &stored.referral;
    let inbound = stored.direction == Direction::Inbound;
    let title = match &references.case_number {
        Some(number) => format!("Case {number}"),
        None => "Case without a case number".to_owned(),
    };
    let other = if inbound {
        &referral.sender
    } else {
        &referral.recipient
    };
    let team = console.team();
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tatmx · " (team) }
                link rel="stylesheet" href="/assets/console.css";
            }
            body.print-view {
                main id="main" {
                    p.print-tools {
                        a href=(format!("/referrals/{id}")) id="print-back" { "Back to the case" }
                    }
                    h1 id="print-title" { (title) }
                    p.print-note {
                        "Confidential. Printed " (page::datetime(console.now())) " by " (staff.username)
                        " at " (words::team(&team)) ". Keep it as your team's rules say, and shred it when it is no longer needed."
                    }
                    dl.facts id="print-facts" {
                        dt { "Your case number" } dd id="print-case-number" { (references.case_number.as_deref().unwrap_or("-")) }
                        dt { "Your reference for the person" } dd id="print-local-reference" { (references.local_reference.as_deref().unwrap_or("-")) }
                        dt { @if referral.consultation.is_some() { "Consultation request" } @else { "Referral" } }
                        dd { @if inbound { "Received from " } @else { "Sent to " } (words::team(&other.team.to_string())) }
                        dt { "Where it stands" } dd id="print-status" { (words::status(stored.status, stored.direction)) }
                        dt { "Why it was made" } dd { (words::purpose(referral.purpose)) }
                        dt { "Legal basis" } dd { (words::legal_basis(referral.legal_basis)) }
                        @if let Some(l) = &referral.level_of_concern {
                            dt { "Level of concern" } dd { (l.value) " (" (l.scheme) ")" }
                        }
                        @if let Some(c) = &referral.consultation {
                            dt { "Question" } dd { (c.question) }
                        }
                        dt { "Made" } dd { (page::datetime(referral.created_at)) }
                    }
                    h2 { @if inbound { "What your team received, as it stands" } @else { "What your team sent and received, as it stands" } }
                    (content(&record.merged))
                    @if !referral.withheld.is_empty() {
                        h2 { "What the sending team's rules kept back" }
                        ul { @for w in &referral.withheld { li { (words::category(w.category)) } } }
                    }
                    h2 { "The conversation, in order" }
                    (conversation(events, &record.messages, &team))
                }
            }
        }
    };
    body.into_response()
}

/// One line of the conversation: when, and what it says.
struct Line {
    at: time::OffsetDateTime,
    markup: Markup,
}

/// Status changes and case messages, oldest first.
fn conversation(events: &[StatusEvent], messages: &[StoredCaseMessage], own: &str) -> Markup {
    let who = |uri: &str| {
        let team = page::team(uri);
        if team == own {
            "Your team".to_owned()
        } else {
            words::team(team)
        }
    };
    let mut lines: Vec<Line> = events
        .iter()
        .map(|e| Line {
            at: e.at,
            markup: html! {
                strong { (who(&e.actor)) } " " (words::status_change(e.status)) "."
                @if let Some(code) = e.reason_code { " Why: " (words::reason(code)) "." }
                @if let Some(reason) = e.reason.as_deref().filter(|r| !r.is_empty()) {
                    " In their words: “" (reason) "”"
                }
                @if let Some(to) = e.forwarded_to.as_deref().filter(|t| !t.is_empty()) {
                    " To " (words::team(page::team(to))) "."
                }
                @if let Some(o) = &e.outcome {
                    @if let Some(l) = &o.level_of_concern { " Level of concern: " (l.value) " (" (l.scheme) ")." }
                    @if !o.advice.is_empty() { " Advice: " (o.advice) }
                }
            },
        })
        .collect();
    lines.extend(messages.iter().map(|m| {
        let message = &m.message;
        Line {
            at: message.at,
            markup: html! {
                strong { (who(&message.author.uri())) } " " (words::case_message(message.kind())) "."
                @match &message.body {
                    CaseBody::InformationRequest { question, wanted } => {
                        @if let Some(q) = question { " “" (q) "”" }
                        @if !wanted.is_empty() {
                            " Asked for: " (wanted.iter().map(|c| words::category(*c)).collect::<Vec<_>>().join(", ")) "."
                        }
                    }
                    CaseBody::Supplement { content: c, .. } => { (content(c)) }
                    CaseBody::NewInformation { kind, urgent, text, content: c } => {
                        @if *urgent { " Urgent." }
                        " " (words::information(*kind)) "."
                        @if let Some(t) = text { " “" (t) "”" }
                        (content(c))
                    }
                    CaseBody::ManagementPlan { plan } | CaseBody::Reassessment { plan, .. } => {
                        @if let CaseBody::Reassessment { level_of_concern: Some(l), .. } = &message.body {
                            " Level of concern: " (l.value) " (" (l.scheme) ")."
                        }
                        @if let Some(plan) = plan {
                            ul {
                                @for i in &plan.interventions {
                                    li { (words::intervention(i.code)) ", by " (who(&i.responsible.uri())) }
                                }
                            }
                            " Next reassessment: " (plan.next_reassessment) "."
                        }
                    }
                }
            },
        }
    }));
    lines.sort_by_key(|l| l.at);
    html! {
        ol.conversation id="print-conversation" {
            @for line in &lines {
                li { span.when { (page::datetime(line.at)) } " " (line.markup) }
            }
        }
    }
}

/// The sections of case content present, in words.
fn content(c: &ReferralContent) -> Markup {
    use crate::category::DataCategory as C;
    let join = |items: &[String]| items.join("; ");
    html! {
        @if c.categories().is_empty() {
            p { "No case information." }
        } @else {
            dl.facts.content {
                @if let Some(i) = &c.identity {
                    dt { (words::category(C::Identity)) }
                    dd { (i.full_name) @if !i.date_of_birth.is_empty() { ", born " (i.date_of_birth) }
                        @for x in &i.identifiers { br; (x.system) ": " (x.value) } }
                }
                @if let Some(x) = &c.contact {
                    dt { (words::category(C::Contact)) } dd { (x.address) " " (x.phone) " " (x.email) }
                }
                @if let Some(b) = &c.behavior {
                    dt { (words::category(C::Behavior)) }
                    dd { ul { @for o in &b.observations {
                        li { (words::behavior(&o.code).map_or(o.code.as_str(), |w| w.name))
                             @if !o.observed_on.is_empty() { " (" (o.observed_on) ")" } }
                    } } }
                }
                @if let Some(t) = &c.threat {
                    dt { (words::category(C::Threat)) }
                    dd { (t.threat_type) @if !t.target_type.is_empty() { ", against " (t.target_type) }
                         ". Access to weapons: " @if t.weapons_access { "yes" } @else { "no" } "." }
                }
                @if let Some(n) = &c.narrative {
                    dt { (words::category(C::Narrative)) } dd { (n.text) }
                }
                @if let Some(m) = &c.mental_health {
                    dt { (words::category(C::MentalHealth)) } dd { (join(&m.diagnoses)) " " (m.treatment) }
                }
                @if let Some(s) = &c.substance_use {
                    dt { (words::category(C::SubstanceUse)) } dd { (s.treatment_record) }
                }
                @if let Some(e) = &c.education_record {
                    dt { (words::category(C::EducationRecord)) }
                    dd { (e.school) ", grade " (e.grade) @if e.iep_or_504 { ", with an IEP or 504 plan" }
                         @if !e.discipline.is_empty() { ". Discipline: " (join(&e.discipline)) } }
                }
                @if let Some(h) = &c.criminal_history {
                    dt { (words::category(C::CriminalHistory)) }
                    dd { "Arrests: " (join(&h.arrests)) ". Protective orders: " (join(&h.protective_orders))
                         ". Firearm records: " (join(&h.firearm_records)) "." }
                }
                @if let Some(r) = &c.reporter {
                    dt { (words::category(C::ReporterIdentity)) } dd { (r.name) " (" (r.relationship) ") " (r.contact) }
                }
                @if !c.third_parties.is_empty() {
                    dt { (words::category(C::ThirdParty)) }
                    dd { ul { @for t in &c.third_parties { li { (t.name) " (" (t.role) ")" } } } }
                }
            }
        }
    }
}

/// `/inbox`, the start page before "My cases": kept as an address, for bookmarks.
pub async fn inbox() -> Redirect {
    Redirect::to(CASES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_of_a_view_carries_its_filters_and_never_the_search() {
        let shown = Shown {
            show: Some("open".into()),
            way: Some("sideways".into()),
            status: Some("in-assessment".into()),
            sort: Some("case-number".into()),
            page: Some("x".into()),
            done: None,
        };
        let view = View::read(&shown, "LHS-CANARY".into());
        assert_eq!(view.page, 1);
        assert_eq!(view.way, "");
        assert_eq!(
            view.query(3),
            "/cases?show=open&status=in-assessment&sort=case-number&page=3"
        );
        assert!(!view.query(1).contains("CANARY"));
        assert_eq!(View::read(&Shown::default(), String::new()).query(1), CASES);
    }
}
