//! One case, as a conversation: the facts at the top in words, then everything that passed
//! between the two teams in time order (the referral with what was kept back and why, each
//! status change with its reason, every question, answer, piece of new information, plan and
//! reassessment, and forwards), then exactly the actions open now ([`super::case_actions`]).
//! Reading a case with received data in it is audited (`case-read`) before anything is shown.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;

use super::Console;
use super::case_actions::{self, Editing, Facts};
use super::disclosure;
use super::page;
use super::referral::{self as shown, capitalised, team_name, team_title};
use super::session::Staff;
use super::words;
use crate::app::CaseRecord;
use crate::case_message::{CaseBody, Plan, format_date};
use crate::category::DataCategory;
use crate::filter::Outcome;
use crate::referral::ReferralStatus;
use crate::staff::Capability;
use crate::store::{Direction, StatusEvent, StoredCaseMessage};

/// The case page's query: the confirmation of what was just done.
#[derive(Debug, Default, Deserialize)]
pub struct Shown {
    /// The word an action redirects with (`asked`, `declined`, ...).
    #[serde(default)]
    done: String,
}

/// `GET /referrals/{id}` and `GET /cases/{id}`
pub async fn page(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Query(shown): Query<Shown>,
) -> Response {
    if !staff.role.may(Capability::ReadCases) {
        return page::forbidden(&console, &staff, "read cases");
    }
    let read = match page::id(&id, "referral_id") {
        Ok(id) => console.app().read_case(id, &page::actor(&staff)).await,
        Err(e) => Err(e),
    };
    match read {
        Ok(record) => {
            console
                .app()
                .mark_case_opened(record.held.0.referral.id, &page::actor(&staff))
                .await;
            render(&console, &staff, &record, Some(&shown.done), None).into_response()
        }
        Err(e) => page::refused(&console, &staff, &e),
    }
}

/// The whole case page; `editing` is a form drawn again with what the user wrote.
pub fn render(
    console: &Console,
    staff: &Staff,
    record: &CaseRecord,
    done: Option<&str>,
    editing: Option<&Editing<'_>>,
) -> Markup {
    let (stored, _) = &record.held;
    let referral = &stored.referral;
    let facts = Facts::of(console, staff, record);
    let other = team_name(&facts.other);
    let title = if referral.consultation.is_some() {
        format!("Request for advice from {other}")
    } else if stored.direction == Direction::Inbound {
        format!("Referral from {other}")
    } else {
        format!("Referral to {other}")
    };
    let notice = done.and_then(|d| case_actions::done_notice(d, &capitalised(&other)));
    let body = html! {
        @if let Some(n) = &notice { div.notice.ok role="status" id="done" { (n) } }
        @if editing.is_some() {
            (page::notice("warn", "Nothing was sent. The form you were writing is below, as you left it."))
        }
        (facts_list(record))
        p.case-tools {
            a href=(format!("/cases/{}/print", referral.id)) id="print-case" { "Print what your team holds on this case" }
            " · "
            a href=(format!("/cases/{}/references", referral.id)) id="case-references" { "Your case number and reference" }
        }
        (waiting(record))
        h2 id="conversation-heading" { "What passed between the teams" }
        (conversation(record))
        @if record.parts.iter().any(|p| p.message_id.is_some()) {
            h2 id="holding-heading" { "What this team holds on the case now" }
            p.hint { "The referral with each later answer and piece of information laid over it: for each kind of information, the newest." }
            section aria-labelledby="holding-sub" {
                h3 id="holding-sub" { "All of it, newest first for each kind" }
                (shown::content(&record.merged, "case-content"))
            }
        }
        h2 id="actions-heading" { "What you can do now" }
        (case_actions::forms(console, staff, record, &facts, editing))
    };
    page::layout(console, staff, &title, "/cases", body)
}

/// The facts of the case, in words.
fn facts_list(record: &CaseRecord) -> Markup {
    let (stored, _) = &record.held;
    let referral = &stored.referral;
    let inbound = stored.direction == Direction::Inbound;
    let next = record
        .messages
        .iter()
        .rev()
        .find_map(|m| m.message.next_reassessment());
    html! {
        dl.facts.card id="referral-facts" {
            @if inbound {
                dt { "From" } dd id="referral-from" data-team=(page::team(&referral.sender.uri())) { (team_title(&referral.sender.uri())) }
            } @else {
                dt { "To" } dd id="referral-to" data-team=(page::team(&referral.recipient.uri())) { (team_title(&referral.recipient.uri())) }
            }
            dt { "Where it stands" }
            dd id="referral-status" data-status=(stored.status.as_str()) { (words::status(stored.status, stored.direction)) }
            dt { "Why it was sent" } dd id="referral-purpose" { (words::purpose(referral.purpose)) }
            dt { "On what basis" } dd id="referral-basis" { (words::legal_basis(referral.legal_basis)) }
            @if let Some(l) = &referral.level_of_concern {
                dt { "Level of concern" } dd { (l.value) " (" (l.scheme) ")" }
            }
            @if let Some(c) = &referral.consultation {
                dt { "Their question" } dd.text { (c.question) }
            }
            dt { "Sent" } dd { (page::datetime(referral.created_at)) }
            @if let Some(next) = next {
                dt { "Next reassessment" } dd id="next-reassessment" { (format_date(next)) }
            }
            @if stored.retain_until.is_some() {
                dt { "Kept here until" } dd { (page::time(stored.retain_until)) }
            }
            @if !referral.provenance.is_empty() {
                dt { "Passed on by" }
                dd { (referral.provenance.iter().map(|h| team_name(&h.team.uri())).collect::<Vec<_>>().join(", then ")) }
            }
            dt { "Reference number" } dd.mono id="referral-id" { (referral.id) }
        }
    }
}

/// A line saying who the case waits for, when it waits for an answer.
fn waiting(record: &CaseRecord) -> Markup {
    let answered: Vec<uuid::Uuid> = record
        .messages
        .iter()
        .filter_map(|m| match &m.message.body {
            CaseBody::Supplement {
                answers: Some(q), ..
            } => Some(*q),
            _ => None,
        })
        .collect();
    let open = |direction| {
        record.messages.iter().find(|m| {
            m.direction == direction
                && matches!(m.message.body, CaseBody::InformationRequest { .. })
                && !answered.contains(&m.message.id)
        })
    };
    html! {
        @if let Some(q) = open(Direction::Outbound) {
            p.notice.warn id="waiting" role="status" { "Your question of " (page::datetime(q.message.at)) " has not been answered yet." }
        } @else if let Some(q) = open(Direction::Inbound) {
            p.notice.warn id="waiting" role="status" { "They asked you a question on " (page::datetime(q.message.at)) ". Your answer form is under “What you can do now”." }
        }
    }
}

/// One line of the conversation.
enum Said<'a> {
    /// The referral itself.
    Referral,
    /// A status change.
    Status(&'a StatusEvent),
    /// A case message.
    Message(&'a StoredCaseMessage),
}

/// Everything that passed between the teams, oldest first.
fn conversation(record: &CaseRecord) -> Markup {
    let (stored, events) = &record.held;
    let referral = &stored.referral;
    let inbound = stored.direction == Direction::Inbound;
    let ours_uri = if inbound {
        referral.recipient.uri()
    } else {
        referral.sender.uri()
    };
    let mut said: Vec<(OffsetDateTime, Said<'_>)> = vec![(referral.created_at, Said::Referral)];
    // The first status is the referral itself, already its own line.
    said.extend(
        events
            .iter()
            .filter(|e| e.status != ReferralStatus::Sent)
            .map(|e| (e.at, Said::Status(e))),
    );
    said.extend(
        record
            .messages
            .iter()
            .map(|m| (m.message.at, Said::Message(m))),
    );
    said.sort_by_key(|(at, _)| *at);
    let who = |uri: &str| {
        if uri == ours_uri {
            "Your team".to_owned()
        } else {
            team_title(uri)
        }
    };
    html! {
        ol.conversation id="conversation" {
            @for (at, entry) in &said {
                @match entry {
                    Said::Referral => {
                        @let author = referral.sender.uri();
                        li class=(format!("entry {}", side(&author, &ours_uri))) id="entry-referral" data-kind="referral" {
                            (head(&who(&author), if referral.consultation.is_some() { "asked for advice" } else { "sent the referral" }, *at))
                            p { (words::purpose(referral.purpose)) "." }
                            @if let Some(c) = &referral.consultation { p.text { (c.question) } }
                            @if inbound {
                                (shown::content(&referral.content, "referral-content"))
                                @if referral.withheld.is_empty() {
                                    p id="withheld-none" { "Their filter kept nothing back." }
                                } @else {
                                    h4 { "What their filter kept back, and why" }
                                    (shown::withheld(&referral.withheld, "withheld"))
                                }
                            } @else {
                                (shown::content(&referral.content, "referral-content"))
                                @if !stored.decisions.is_empty() {
                                    h4 { "What reached them, and why" }
                                    (disclosure::decisions(Some("sent-decisions"), &stored.decisions, &referral.recipient.uri()))
                                }
                            }
                        }
                    }
                    Said::Status(e) => {
                        li class=(format!("entry {}", side(&e.actor, &ours_uri))) data-kind="status" data-status=(e.status.as_str()) {
                            (head(&who(&e.actor), words::status_change(e.status), *at))
                            (status_body(e))
                        }
                    }
                    Said::Message(m) => {
                        @let author = m.message.author.uri();
                        li class=(format!("entry {}", side(&author, &ours_uri))) id=(format!("entry-{}", m.message.id))
                            data-kind=(m.message.kind().as_str()) data-direction=(if m.direction == Direction::Inbound { "received" } else { "sent" }) {
                            (head(&who(&author), words::case_message(m.message.kind()), *at))
                            (message_body(m, record))
                        }
                    }
                }
            }
        }
    }
}

fn side(author: &str, ours: &str) -> &'static str {
    if author == ours { "ours" } else { "theirs" }
}

fn head(who: &str, what: &str, at: OffsetDateTime) -> Markup {
    html! {
        div.entry-head {
            h3 { (who) " " (what) }
            p.when { (page::datetime(at)) }
        }
    }
}

fn status_body(e: &StatusEvent) -> Markup {
    html! {
        @if let Some(code) = e.reason_code { p.reason { "Why: " strong { (words::reason(code)) } "." } }
        @if let Some(reason) = e.reason.as_deref().filter(|r| !r.is_empty()) { p.text { "In their words: " (reason) } }
        @if e.withheld.contains(&DataCategory::Narrative) { p.hint { "Their own words were kept back: the law that governs them does not let them reach this team." } }
        @if let Some(o) = &e.outcome {
            @if let Some(l) = &o.level_of_concern { p { "Level of concern: " (l.value) " (" (l.scheme) ")." } }
            @if o.level_of_concern.is_some() {
                p { @if o.management_plan { "A plan to manage the risk is in place." } @else { "No plan to manage the risk." } }
            }
            @if !o.advice.is_empty() { p.text { "Advice: " (o.advice) } }
            @if !o.recommendations.is_empty() { p { "Recommends: " (o.recommendations.join(", ")) "." } }
        }
        @if e.withheld.contains(&DataCategory::Assessment) { p.hint { "The outcome was kept back by the law or the policy." } }
        @if let Some(to) = e.forwarded_to.as_deref().filter(|t| !t.is_empty()) { p { "Passed on to " (team_name(to)) "." } }
        details.codes {
            summary { "Details" }
            p.mono { "status: " (e.status.as_str()) @if let Some(c) = e.reason_code { ", reason: " (c.as_str()) } }
        }
    }
}

fn message_body(m: &StoredCaseMessage, record: &CaseRecord) -> Markup {
    let message = &m.message;
    html! {
        @match &message.body {
            CaseBody::InformationRequest { question, wanted } => {
                @if let Some(q) = question { p.text { (q) } }
                @if !wanted.is_empty() {
                    p { "Information asked for:" }
                    ul { @for c in wanted { li { (words::category(*c)) } } }
                }
            }
            CaseBody::Supplement { answers, content } => {
                @if let Some(asked) = answers.and_then(|q| record.messages.iter().find(|x| x.message.id == q)) {
                    p.hint { "In answer to the question of " (page::datetime(asked.message.at)) "." }
                }
                @if !content.categories().is_empty() { (shown::content(content, &format!("content-{}", message.id))) }
            }
            CaseBody::NewInformation { kind, urgent, text, content } => {
                p { @if *urgent { span.badge.urgent { "Urgent" } " " } (words::information(*kind)) "." }
                @if let Some(t) = text { p.text { (t) } }
                @if !content.categories().is_empty() { (shown::content(content, &format!("content-{}", message.id))) }
            }
            CaseBody::ManagementPlan { plan } => {
                @if let Some(plan) = plan { (plan_body(plan)) }
            }
            CaseBody::Reassessment { level_of_concern, plan } => {
                @if let Some(l) = level_of_concern { p { "Level of concern now: " strong { (l.value) } " (" (l.scheme) ")." } }
                @if let Some(plan) = plan { (plan_body(plan)) }
            }
        }
        @if m.direction == Direction::Inbound && !message.withheld.is_empty() {
            p.hint { "Their filter kept back: " (message.withheld.iter().map(|w| words::category_short(w.category)).collect::<Vec<_>>().join(", ")) "." }
            details.codes { summary { "Details" } (shown::withheld(&message.withheld, &format!("withheld-{}", message.id))) }
        }
        @let kept: Vec<_> = m.decisions.iter().filter(|d| d.outcome != Outcome::Disclose).collect();
        @if m.direction == Direction::Outbound && !kept.is_empty() {
            p.hint { "Kept back from them: " (kept.iter().map(|d| words::category_short(d.category)).collect::<Vec<_>>().join(", ")) "." }
            @let other = if record.held.0.direction == Direction::Inbound { &record.held.0.referral.sender } else { &record.held.0.referral.recipient };
            details.codes { summary { "Details" } (disclosure::decisions(None, &m.decisions, &other.uri())) }
        }
    }
}

fn plan_body(plan: &Plan) -> Markup {
    html! {
        p { "The plan:" }
        ul.plan {
            @for i in &plan.interventions {
                li { (words::intervention(i.code)) ", by " (team_name(&i.responsible.uri())) }
            }
        }
        p { "Next reassessment: " (format_date(plan.next_reassessment)) "." }
    }
}
