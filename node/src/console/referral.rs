//! One referral: the content this team may see, the manifest of what the sender withheld and
//! why, the timeline, and the actions open to this user's role. Reading a received referral
//! is audited (`case-read`) with the user before anything is shown. A chair's actions go
//! through the same status change, forward and consultation calls as the Agency API; a
//! forced request from another role is refused here with 403.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Console;
use super::page::{self, Fields};
use super::session::Staff;
use crate::app::{ConsultationRequest, Forward, StatusChange};
use crate::filter::{FieldDecision, Outcome};
use crate::lifecycle::{self, Side};
use crate::referral::{
    AssessmentOutcome, LegalBasis, LevelOfConcern, NewReferral, Purpose, ReasonCode, Referral,
    ReferralContent, ReferralStatus, StatusUpdate, ThreatDetails,
};
use crate::staff::Capability;
use crate::store::{Direction, StatusEvent, StoredReferral};

/// `GET /referrals/{id}`
pub async fn page(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> Response {
    if !staff.role.may(Capability::ReadCases) {
        return page::forbidden(&console, &staff, "read referrals");
    }
    let read = match page::id(&id, "referral_id") {
        Ok(id) => console.app().read(id, &page::actor(&staff)).await,
        Err(e) => Err(e),
    };
    match read {
        Ok((stored, events)) => {
            console
                .app()
                .mark_case_opened(stored.referral.id, &page::actor(&staff))
                .await;
            render(&console, &staff, &stored, &events).into_response()
        }
        Err(e) => page::refused(&console, &staff, &e),
    }
}

fn render(
    console: &Console,
    staff: &Staff,
    stored: &StoredReferral,
    timeline: &[StatusEvent],
) -> Markup {
    let referral = &stored.referral;
    let inbound = stored.direction == Direction::Inbound;
    let title = if referral.consultation.is_some() {
        "Consultation request"
    } else {
        "Referral"
    };
    let body = html! {
        dl.facts.card id="referral-facts" {
            dt { "Referral" } dd.mono id="referral-id" { (referral.id) }
            @if inbound {
                dt { "From" } dd id="referral-from" { (page::team(&referral.sender.uri())) }
            } @else {
                dt { "To" } dd id="referral-to" { (page::team(&referral.recipient.uri())) }
            }
            dt { "Status" } dd id="referral-status" { (stored.status.as_str()) }
            dt { "Purpose" } dd { (referral.purpose.as_str()) }
            dt { "Legal basis" } dd { (referral.legal_basis.as_str()) }
            @if let Some(l) = &referral.level_of_concern {
                dt { "Level of concern" } dd { (l.scheme) ": " (l.value) }
            }
            @if let Some(handle) = referral.case_handle.as_deref().filter(|h| !h.is_empty()) {
                dt { "Case handle" } dd.mono { (handle) }
            }
            @if let Some(c) = &referral.consultation {
                dt { "Question" } dd { (c.question) }
            }
            dt { "Created" } dd { (page::time(Some(referral.created_at))) }
            @if stored.retain_until.is_some() {
                dt { "Kept until" } dd { (page::time(stored.retain_until)) }
            }
            @if !referral.provenance.is_empty() {
                dt { "Passed through" }
                dd { (referral.provenance.iter().map(|h| page::team(&h.team.uri()).to_owned()).collect::<Vec<_>>().join(" → ")) }
            }
        }
        h2 id="content-heading" { @if inbound { "What this team received" } @else { "What was sent" } }
        (content(&referral.content))
        h2 id="withheld-heading" { "What the sender's filter withheld, and why" }
        @if referral.withheld.is_empty() {
            p id="withheld-none" { "Nothing was withheld." }
        } @else {
            table id="withheld" {
                thead { tr { th scope="col" { "Category" } th scope="col" { "What happened" } th scope="col" { "Why" } th scope="col" { "Rules" } } }
                tbody {
                    @for w in &referral.withheld {
                        tr data-category=(w.category.as_str()) {
                            td { (w.category.as_str()) }
                            td { @if w.pseudonymized { "replaced by the case handle" } @else { "withheld" } }
                            td { (w.reasons.join(" ")) }
                            td.mono { (w.rules.join(", ")) }
                        }
                    }
                }
            }
        }
        @if !inbound && !stored.decisions.is_empty() {
            h2 { "The filter's decision for each category" }
            (decisions(&stored.decisions, page::team(&referral.recipient.uri())))
        }
        h2 id="timeline-heading" { "Timeline" }
        table id="timeline" {
            thead { tr { th scope="col" { "Status" } th scope="col" { "When" } th scope="col" { "By" } th scope="col" { "Details" } } }
            tbody {
                @for e in timeline {
                    tr {
                        td { (e.status.as_str()) }
                        td { (page::time(Some(e.at))) }
                        td { (page::team(&e.actor)) }
                        td {
                            @if let Some(code) = e.reason_code { "Why: " (code.describe()) ". " }
                            @if let Some(reason) = e.reason.as_deref().filter(|r| !r.is_empty()) { "In their words: " (reason) " " }
                            @if e.withheld.contains(&crate::category::DataCategory::Narrative) { "(The words were kept back: the law that governs them does not let them reach the other team.) " }
                            @if let Some(o) = &e.outcome { (outcome_text(o)) }
                            @if let Some(to) = e.forwarded_to.as_deref().filter(|t| !t.is_empty()) { "Forwarded to " (page::team(to)) }
                        }
                    }
                }
            }
        }
        h2 id="actions-heading" { "Actions" }
        (actions(console, staff, stored.status, referral, inbound))
    };
    page::layout(console, staff, title, "/inbox", body)
}

/// A completed assessment's outcome in words.
fn outcome_text(o: &AssessmentOutcome) -> String {
    let mut parts = Vec::new();
    if let Some(l) = &o.level_of_concern {
        parts.push(format!("Level of concern {}: {}.", l.scheme, l.value));
    }
    if o.level_of_concern.is_some() {
        parts.push(if o.management_plan {
            "A management plan is in place.".into()
        } else {
            "No management plan.".into()
        });
    }
    if !o.advice.is_empty() {
        parts.push(format!("Advice: {}", o.advice));
    }
    if !o.recommendations.is_empty() {
        parts.push(format!("Recommends {}.", o.recommendations.join(", ")));
    }
    parts.join(" ")
}

/// The filter's decisions as a table, as the preview and a sent referral show them.
pub fn decisions(decisions: &[FieldDecision], recipient: &str) -> Markup {
    html! {
        table.decisions {
            thead { tr { th scope="col" { "Category" } th scope="col" { "Outcome" } th scope="col" { "Why" } th scope="col" { "Rules" } } }
            tbody {
                @for d in decisions {
                    @let (class, text) = match d.outcome {
                        Outcome::Disclose => ("outcome-disclose", format!("reaches {recipient}")),
                        Outcome::Pseudonymize => ("outcome-pseudonymize", "replaced by the case handle".to_owned()),
                        Outcome::Withhold => ("outcome-withhold", "withheld".to_owned()),
                    };
                    tr data-category=(d.category.as_str()) data-outcome=(text) {
                        th scope="row" { (d.category.as_str()) }
                        td { span class=(format!("badge {class}")) { (text) } }
                        td { (d.reasons.join(" ")) }
                        td.mono { (d.rules.join(", ")) }
                    }
                }
            }
        }
    }
}

/// The content sections present, one per category.
fn content(c: &ReferralContent) -> Markup {
    let lines = |items: &[String]| items.join("; ");
    html! {
        div.card id="referral-content" {
            @if let Some(i) = &c.identity {
                section aria-labelledby="c-identity" { h3 id="c-identity" { "Identity" }
                    p { (i.full_name) @if !i.date_of_birth.is_empty() { ", born " (i.date_of_birth) } }
                    @for x in &i.identifiers { p { (x.system) ": " (x.value) } } }
            }
            @if let Some(x) = &c.contact {
                section aria-labelledby="c-contact" { h3 id="c-contact" { "Contact" }
                    p { (x.address) " " (x.phone) " " (x.email) } }
            }
            @if let Some(b) = &c.behavior {
                section aria-labelledby="c-behavior" { h3 id="c-behavior" { "Behaviour" }
                    ul { @for o in &b.observations { li { (o.code) " (" (o.observed_on) ")" } } } }
            }
            @if let Some(t) = &c.threat {
                section aria-labelledby="c-threat" { h3 id="c-threat" { "Threat" }
                    p { (threat_text(t)) } }
            }
            @if let Some(n) = &c.narrative {
                section aria-labelledby="c-narrative" { h3 id="c-narrative" { "Narrative" } p { (n.text) } }
            }
            @if let Some(m) = &c.mental_health {
                section aria-labelledby="c-mh" { h3 id="c-mh" { "Mental health" }
                    p { (lines(&m.diagnoses)) } p { (m.treatment) } }
            }
            @if let Some(s) = &c.substance_use {
                section aria-labelledby="c-su" { h3 id="c-su" { "Substance use" } p { (s.treatment_record) } }
            }
            @if let Some(e) = &c.education_record {
                section aria-labelledby="c-edu" { h3 id="c-edu" { "Education record" }
                    p { (e.school) ", grade " (e.grade) @if e.iep_or_504 { ", IEP or 504 plan" } }
                    @if !e.discipline.is_empty() { p { "Discipline: " (lines(&e.discipline)) } } }
            }
            @if let Some(h) = &c.criminal_history {
                section aria-labelledby="c-crim" { h3 id="c-crim" { "Criminal history" }
                    p { "Arrests: " (lines(&h.arrests)) } p { "Protective orders: " (lines(&h.protective_orders)) }
                    p { "Firearm records: " (lines(&h.firearm_records)) } }
            }
            @if let Some(r) = &c.reporter {
                section aria-labelledby="c-reporter" { h3 id="c-reporter" { "Reporter" }
                    p { (r.name) " (" (r.relationship) ") " (r.contact) } }
            }
            @if !c.third_parties.is_empty() {
                section aria-labelledby="c-third" { h3 id="c-third" { "Third parties" }
                    ul { @for t in &c.third_parties { li { (t.name) " (" (t.role) ")" } } } }
            }
        }
    }
}

/// Threat details in words, leaving out what was not filled in.
fn threat_text(t: &ThreatDetails) -> String {
    let mut parts = Vec::new();
    if !t.threat_type.is_empty() {
        parts.push(t.threat_type.clone());
    }
    if !t.target_type.is_empty() {
        parts.push(format!("target: {}", t.target_type));
    }
    if !t.grievance_code.is_empty() {
        parts.push(format!("grievance: {}", t.grievance_code));
    }
    parts.push(format!(
        "access to weapons: {}",
        if t.weapons_access { "yes" } else { "no" }
    ));
    parts.join(", ")
}

/// Whether `side` may move the referral from `current` to `next` now: the lifecycle's own
/// rule, asked with a reason and an outcome given, so a form can then ask for them.
fn allowed(
    current: ReferralStatus,
    next: ReferralStatus,
    side: Side,
    consultation: bool,
    author: &tatmx_certs::TeamIdentity,
) -> bool {
    let probe = StatusUpdate {
        id: Uuid::nil(),
        referral_id: Uuid::nil(),
        author: author.clone(),
        status: next,
        // The lifecycle's rules do not depend on the time.
        at: OffsetDateTime::UNIX_EPOCH,
        reason: Some("probe".into()),
        reason_code: None,
        outcome: Some(AssessmentOutcome {
            level_of_concern: None,
            management_plan: false,
            advice: String::new(),
            recommendations: Vec::new(),
        }),
        withheld: Vec::new(),
        forwarded_to: None,
    };
    lifecycle::check(current, &probe, side, consultation).is_ok()
}

fn actions(
    console: &Console,
    staff: &Staff,
    status: ReferralStatus,
    referral: &Referral,
    inbound: bool,
) -> Markup {
    if !staff.role.may(Capability::DecideReferrals) {
        return html! { p id="no-actions" { "Your role (" (staff.role.label()) ") reads referrals; a chair accepts, declines, completes, forwards and consults." } };
    }
    let consultation = referral.consultation.is_some();
    let side = if inbound {
        Side::Recipient
    } else {
        Side::Sender
    };
    let state = console.trust().state();
    let me = state.local.identity.clone();
    let may = |next| allowed(status, next, side, consultation, &me);
    let action = format!("/referrals/{}/status", referral.id);
    let simple = |status: &str, label: &str, id: &str| {
        html! {
            form method="post" action=(action) {
                (page::csrf_field(staff))
                input type="hidden" name="status" value=(status);
                button type="submit" id=(id) { (label) }
            }
        }
    };
    let others: Vec<String> = state
        .peers()
        .into_iter()
        .filter(|p| !p.blocked && p.peer.identity != referral.sender)
        .map(|p| p.peer.identity.uri())
        .collect();
    let partners: Vec<String> = state
        .peers()
        .into_iter()
        .filter(|p| !p.blocked && p.peer.role == crate::trust::Role::Partner)
        .map(|p| p.peer.identity.uri())
        .collect();
    let core = state.local.role == crate::trust::Role::Core;
    html! {
        div.actions id="actions" {
            @if may(ReferralStatus::Accepted) { (simple("accepted", "Accept", "action-accept")) }
            @if may(ReferralStatus::InfoRequested) { (simple("info-requested", "Ask the sender for more information", "action-info")) }
            @if may(ReferralStatus::InAssessment) { (simple("in-assessment", "Start the assessment", "action-assess")) }
            @if may(ReferralStatus::Closed) { (simple("closed", "Close", "action-close")) }
        }
        @if may(ReferralStatus::Completed) && !consultation {
            form.card method="post" action=(action) id="complete-form" {
                h3 { "Complete the assessment" }
                (page::csrf_field(staff))
                input type="hidden" name="status" value="completed";
                label for="complete-scheme" { "Scheme" }
                input type="text" id="complete-scheme" name="scheme" value="CSTAG";
                label for="complete-level" { "Level of concern" }
                input type="text" id="complete-level" name="level" required;
                p { input type="checkbox" id="complete-plan" name="management_plan" value="yes";
                    label.inline for="complete-plan" { "A management plan is in place" } }
                p { button type="submit" id="action-complete" { "Complete" } }
            }
        }
        @if may(ReferralStatus::Completed) && consultation {
            form.card method="post" action=(action) id="answer-form" {
                h3 { "Answer the consultation" }
                (page::csrf_field(staff))
                input type="hidden" name="status" value="completed";
                label for="answer-advice" { "Advice" }
                textarea id="answer-advice" name="advice" required {}
                label for="answer-recommendations" { "Recommendations" }
                p.hint id="answer-recommendations-hint" { "Codes such as MH-EVAL, one per line." }
                textarea id="answer-recommendations" name="recommendations" aria-describedby="answer-recommendations-hint" {}
                p { button type="submit" id="action-answer" { "Send the answer" } }
            }
        }
        @if may(ReferralStatus::Declined) {
            form.card method="post" action=(action) id="decline-form" {
                h3 { "Decline" }
                (page::csrf_field(staff))
                input type="hidden" name="status" value="declined";
                (reason_codes("decline"))
                label for="decline-reason" { "In your own words (optional; the sender sees them only as far as the law allows)" }
                textarea id="decline-reason" name="reason" {}
                p { button.danger type="submit" id="action-decline" { "Decline" } }
            }
        }
        @if may(ReferralStatus::Cancelled) {
            form.card method="post" action=(action) id="cancel-form" {
                h3 { "Cancel this referral" }
                (page::csrf_field(staff))
                input type="hidden" name="status" value="cancelled";
                (reason_codes("cancel"))
                label for="cancel-reason" { "In your own words (optional; the team sees them only as far as the law allows)" }
                textarea id="cancel-reason" name="reason" {}
                p { button.danger type="submit" id="action-cancel" { "Cancel the referral" } }
            }
        }
        @if inbound && !consultation && !others.is_empty() && may(ReferralStatus::Forwarded) {
            form.card method="post" action=(format!("/referrals/{}/forward", referral.id)) id="forward-form" {
                h3 { "Forward to another team" }
                p.hint { "It is filtered again against the consent the sender attached; categories marked NO_REDISCLOSURE stay here." }
                (page::csrf_field(staff))
                label for="forward-to" { "Team" }
                select id="forward-to" name="recipient" required {
                    @for team in &others { option value=(team) { (page::team(team)) } }
                }
                p { button type="submit" id="action-forward" { "Forward" } }
            }
        }
        @if inbound && !consultation && core && !partners.is_empty() {
            form.card method="post" action=(format!("/referrals/{}/consult", referral.id)) id="consult-form" {
                h3 { "Consult partners (de-identified)" }
                (page::csrf_field(staff))
                fieldset {
                    legend { "Partners" }
                    @for (i, team) in partners.iter().enumerate() {
                        p { input type="checkbox" id=(format!("consult-partner-{i}")) name="partner" value=(team);
                            label.inline for=(format!("consult-partner-{i}")) { (page::team(team)) } }
                    }
                }
                label for="consult-question" { "Question" }
                textarea id="consult-question" name="question" required {}
                p { button type="submit" id="action-consult" { "Ask for advice" } }
            }
        }
    }
}

/// The choice of a coded reason, which always reaches the other team.
fn reason_codes(form: &str) -> Markup {
    let id = format!("{form}-reason-code");
    html! {
        label for=(id) { "Why (the other team always sees this)" }
        select id=(id) name="reason_code" required {
            option value="" { "Choose a reason" }
            @for code in ReasonCode::all() {
                option value=(code.as_str()) { (code.describe()) }
            }
        }
    }
}

/// `POST /referrals/{id}/status`
pub async fn change_status(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::DecideReferrals) {
        return page::forbidden(&console, &staff, "change a referral's status");
    }
    let fields = Fields::parse(&body);
    let Some(status) = ReferralStatus::parse(fields.get("status")) else {
        return page::error_page(
            &console,
            &staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            "That is not a status a referral can take. Go back and choose one of the buttons.",
        );
    };
    let outcome = (status == ReferralStatus::Completed).then(|| {
        let recommendations = fields.lines("recommendations");
        if !fields.get("advice").is_empty() || !recommendations.is_empty() {
            AssessmentOutcome {
                level_of_concern: None,
                management_plan: false,
                advice: fields.get("advice").to_owned(),
                recommendations,
            }
        } else {
            let (scheme, value) = (fields.get("scheme"), fields.get("level"));
            AssessmentOutcome {
                // An empty scheme and level is no level at all, as on the Agency API.
                level_of_concern: (!(scheme.is_empty() && value.is_empty())).then(|| {
                    LevelOfConcern {
                        scheme: scheme.to_owned(),
                        value: value.to_owned(),
                    }
                }),
                management_plan: fields.checked("management_plan"),
                advice: String::new(),
                recommendations: Vec::new(),
            }
        }
    });
    let changed = match page::id(&id, "referral_id") {
        Ok(referral_id) => {
            let change = StatusChange {
                referral_id,
                status,
                reason_code: ReasonCode::parse(fields.get("reason_code")),
                reason: Some(fields.get("reason").to_owned()),
                outcome,
            };
            console
                .app()
                .change_status(change, &page::actor(&staff))
                .await
        }
        Err(e) => Err(e),
    };
    match changed {
        Ok(_) => Redirect::to(&format!("/referrals/{id}")).into_response(),
        Err(e) => page::refused(&console, &staff, &e),
    }
}

/// `POST /referrals/{id}/forward`
pub async fn forward(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::DecideReferrals) {
        return page::forbidden(&console, &staff, "forward a referral");
    }
    let fields = Fields::parse(&body);
    let forwarded = match page::id(&id, "referral_id") {
        Ok(referral_id) => {
            let forward = Forward {
                referral_id,
                recipient: fields.get("recipient").to_owned(),
                purpose: None,
                legal_basis: None,
                justification: None,
            };
            console
                .app()
                .forward(forward, false, &page::actor(&staff))
                .await
        }
        Err(e) => Err(e),
    };
    match forwarded {
        Ok(sent) => Redirect::to(&format!("/referrals/{}", sent.referral.id)).into_response(),
        Err(e) => page::refused(&console, &staff, &e),
    }
}

/// `POST /referrals/{id}/consult`: asks partners about a received referral, de-identified
/// (the subject becomes a case handle derived from this referral's id).
pub async fn consult(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::DecideReferrals) {
        return page::forbidden(&console, &staff, "ask partners for a consultation");
    }
    let fields = Fields::parse(&body);
    let actor = page::actor(&staff);
    // The case as this team holds it; reading it again for this purpose is audited too.
    let read = match page::id(&id, "referral_id") {
        Ok(id) => console.app().read(id, &actor).await,
        Err(e) => Err(e),
    };
    let referral = match read {
        Ok((stored, _)) => stored.referral,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    // De-identified: the subject becomes a case handle derived from this referral's id.
    let case = NewReferral {
        recipient: String::new(),
        purpose: Purpose::Consultation,
        level_of_concern: referral.level_of_concern,
        legal_basis: LegalBasis::DeIdentified,
        justification: None,
        consent_ref: None,
        content: referral.content,
        case_ref: Some(referral.id.to_string()),
        reidentify: false,
        subject_ref: None,
    };
    let asked = ConsultationRequest {
        partners: fields.all("partner"),
        question: fields.get("question").to_owned(),
        due: None,
        case,
    };
    match console.app().request_consultation(asked, &actor).await {
        Ok(_) => Redirect::to("/consultations").into_response(),
        Err(e) => page::refused(&console, &staff, &e),
    }
}
