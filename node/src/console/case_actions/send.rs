//! The case actions' handlers: the one-click status changes, the live preview beside each
//! form, the "Check and send" step and sending, each asking [`super::offered`] again first.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use crate::app::{AppError, CaseDraft, CaseRecord, StatusChange};
use crate::case_message::{InformationKind, InterventionCode};
use crate::category::DataCategory;
use crate::console::Console;
use crate::console::case;
use crate::console::disclosure;
use crate::console::page::{self, Fields};
use crate::console::referral::{team_name, team_title};
use crate::console::session::Staff;
use crate::console::words;
use crate::referral::{ReasonCode, ReferralStatus, StatusUpdate};
use crate::staff::Capability;

use super::draft::{Outgoing, outgoing, problems_of};
use super::*;

/// The "what will reach them, and why" preview of what a form would send.
async fn preview_of(
    console: &Console,
    staff: &Staff,
    facts: &Facts,
    outgoing: &Outgoing,
) -> Result<Markup, AppError> {
    let app = console.app();
    let other = team_name(&facts.other);
    let other_id = page::team(&facts.other).to_owned();
    Ok(match outgoing {
        Outgoing::Status(change) => {
            let update = app.preview_status_change(change.clone()).await?;
            status_preview(&update, &other)
        }
        Outgoing::Message(_, draft) => {
            let disclosed = app
                .send_case_message(facts.id, (**draft).clone(), true, &page::actor(staff))
                .await?;
            html! {
                p { (team_title(&facts.other)) " will read that your team " (words::case_message(disclosed.outgoing.kind())) "." }
                @if let CaseDraft::Ask { wanted, .. } = &**draft {
                    @if !wanted.is_empty() { p { "The kinds of information you ask for always reach them." } }
                }
                @if let CaseDraft::Inform { urgent, .. } = &**draft {
                    p { "What it is about" @if *urgent { ", and that it is urgent," } " always reaches them." }
                }
                (disclosure::decisions(None, &disclosed.decisions, &other_id))
            }
        }
        Outgoing::Forward(forward) => {
            let disclosed = app
                .forward(forward.clone(), true, &page::actor(staff))
                .await?;
            let to = page::team(&forward.recipient).to_owned();
            html! {
                p { (other) " is told the referral was passed on, and to which team." }
                (disclosure::decisions(None, &disclosed.decisions, &to))
            }
        }
        Outgoing::Consult { partners, .. } => {
            let previews = app.preview_consultation(facts.id, partners).await?;
            html! {
                p { "Each partner receives the case without the person's identity (a case handle stands in for it), and your question." }
                @for (partner, disclosed) in &previews {
                    @let id = page::team(partner).to_owned();
                    p.partner-name { strong { (words::team(&id)) } }
                    (disclosure::decisions(None, &disclosed.decisions, &id))
                }
            }
        }
    })
}

/// What a status change would tell the other team: the coded reason always, the words and the
/// outcome as far as the law and the policy allow.
fn status_preview(update: &StatusUpdate, other: &str) -> Markup {
    let kept = |category| update.withheld.iter().find(|w| w.category == category);
    html! {
        ul.preview-lines {
            li { (other) " is told: " (words::status_change(update.status)) "." }
            @if let Some(code) = update.reason_code {
                li { "Why, as they will read it: " strong { (words::reason(code)) } ". This always reaches them." }
            }
            @match (kept(DataCategory::Narrative), &update.reason) {
                (Some(w), _) => { (disclosure::kept_back("Your own words are kept back: ", w)) }
                (None, Some(_)) => { li data-category="NARRATIVE" { "Your own words reach them." } }
                (None, None) => {}
            }
            @match (kept(DataCategory::Assessment), &update.outcome) {
                (Some(w), _) => { (disclosure::kept_back("The outcome is kept back: ", w)) }
                (None, Some(_)) => { li data-category="ASSESSMENT" { "The outcome reaches them." } }
                (None, None) => {}
            }
        }
    }
}

/// Does what the form asks; returns the `?done=` word.
async fn send(
    console: &Console,
    staff: &Staff,
    facts: &Facts,
    action: Action,
    outgoing: Outgoing,
) -> Result<(), AppError> {
    let app = console.app();
    let actor = page::actor(staff);
    match outgoing {
        Outgoing::Status(change) => {
            app.change_status(change, &actor).await?;
        }
        Outgoing::Message(id, draft) => {
            app.send_case_message_once(facts.id, id, *draft, &actor)
                .await?;
            // A question before the case is taken on also says, in the case's status, that
            // the team waits for the answer. The question is sent whatever happens to this.
            if action == Action::Ask && facts.may_move(ReferralStatus::InfoRequested) {
                let waiting = StatusChange {
                    referral_id: facts.id,
                    status: ReferralStatus::InfoRequested,
                    reason_code: None,
                    reason: None,
                    outcome: None,
                };
                if let Err(e) = app.change_status(waiting, &actor).await {
                    tracing::warn!(referral_id = %facts.id, error = %e, "the question was sent, but the status did not change");
                }
            }
        }
        Outgoing::Forward(forward) => {
            app.forward(forward, false, &actor).await?;
        }
        Outgoing::Consult { partners, question } => {
            app.consult_on(facts.id, partners, question, &actor).await?;
        }
    }
    Ok(())
}

/// Whether the case's timeline shows this referral already passed on to `recipient`: a
/// forward sent again (the back button, a retried request) is not sent twice.
fn already_forwarded(record: &CaseRecord, recipient: &str) -> bool {
    record.held.1.iter().any(|e| {
        e.status == ReferralStatus::Forwarded && e.forwarded_to.as_deref() == Some(recipient)
    })
}

/// Loads the case for an action request, and refuses what this user may not do on it now.
async fn load(
    console: &Console,
    staff: &Staff,
    id: &str,
    action: Action,
) -> Result<(CaseRecord, Facts), Response> {
    if !staff.role.may(if action.decides() {
        Capability::DecideReferrals
    } else {
        Capability::CreateReferrals
    }) {
        return Err(page::forbidden(
            console,
            staff,
            &action.heading().to_lowercase(),
        ));
    }
    let read = match page::id(id, "referral_id") {
        Ok(id) => console.app().read_case(id, &page::actor(staff)).await,
        Err(e) => Err(e),
    };
    let record = read.map_err(|e| page::refused(console, staff, &e))?;
    let facts = Facts::of(console, staff, &record);
    if !offered(&facts).contains(&action) {
        let status = words::status(facts.status, direction(facts.side));
        return Err(page::error_page(
            console,
            staff,
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!(
                "“{}” is not something you can do on this case now: it reads “{status}”. Nothing was sent. Go back to the case to see what you can do.",
                action.heading()
            ),
        ));
    }
    Ok((record, facts))
}

/// `POST /referrals/{id}/status`: the one-click actions (accept, start the assessment,
/// close); a status that needs words (decline, withdraw, finish) goes to its own form's
/// check step, so nothing with words is sent without its preview.
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
    let action = match ReferralStatus::parse(fields.get("status")) {
        Some(ReferralStatus::Accepted) => Action::Accept,
        Some(ReferralStatus::InAssessment) => Action::Assess,
        Some(ReferralStatus::Closed) => Action::Close,
        Some(ReferralStatus::Declined) => Action::Decline,
        Some(ReferralStatus::Cancelled) => Action::Cancel,
        Some(ReferralStatus::Completed) => Action::Complete,
        _ => {
            return page::error_page(
                &console,
                &staff,
                StatusCode::UNPROCESSABLE_ENTITY,
                "That is not something a case can become from this page. Go back to the case and use one of its buttons.",
            );
        }
    };
    let Some(next) = action.one_click() else {
        return step(&console, &staff, &id, action, &fields, Step::Check).await;
    };
    let key = fields.get("key").to_owned();
    let turn = console.once().turn(&format!("{id}/{key}")).await;
    if let Some(earlier) = turn.earlier().filter(|_| !key.is_empty()) {
        return Redirect::to(earlier).into_response();
    }
    let (record, facts) = match load(&console, &staff, &id, action).await {
        Ok(loaded) => loaded,
        Err(refused) => {
            // The same click again, after the first one did it: answered as the first was.
            if let Ok(referral_id) = page::id(&id, "referral_id")
                && let Ok((stored, _)) = console.app().read(referral_id, &page::actor(&staff)).await
                && stored.status == next
                && fields.get("from") != next.as_str()
                && !fields.get("from").is_empty()
            {
                return Redirect::to(&format!("/referrals/{id}?done={}", action.done()))
                    .into_response();
            }
            return refused;
        }
    };
    let change = StatusChange {
        referral_id: facts.id,
        status: next,
        reason_code: None,
        reason: None,
        outcome: None,
    };
    match console
        .app()
        .change_status(change, &page::actor(&staff))
        .await
    {
        Ok(_) => {
            let location = format!(
                "/referrals/{}?done={}",
                record.held.0.referral.id,
                action.done()
            );
            turn.done(&location);
            Redirect::to(&location).into_response()
        }
        Err(e) => page::refused(&console, &staff, &e),
    }
}

/// Which step of a form a request is: the live preview, the check, going back to change it,
/// or the confirmed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Check,
    Change,
    Send,
}

/// `POST /referrals/{id}/{action}`: a form's check, change or send step.
pub async fn act(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path((id, slug)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(action) = Action::of_slug(&slug).filter(|a| a.one_click().is_none()) else {
        return page::not_found().await;
    };
    let fields = Fields::parse(&body);
    let step_of = match fields.get("step") {
        "send" => Step::Send,
        "change" => Step::Change,
        // Anything else only checks: nothing leaves without its confirmation.
        _ => Step::Check,
    };
    step(&console, &staff, &id, action, &fields, step_of).await
}

async fn step(
    console: &Console,
    staff: &Staff,
    id: &str,
    action: Action,
    fields: &Fields,
    step: Step,
) -> Response {
    let key = format!("{id}/{}", fields.get("key"));
    // Held from before the case is read until the answer is known, so a second identical
    // request waits for the first and answers as it did.
    let turn = if step == Step::Send {
        let turn = console.once().turn(&key).await;
        if let Some(earlier) = turn.earlier().filter(|_| !fields.get("key").is_empty()) {
            return Redirect::to(earlier).into_response();
        }
        Some(turn)
    } else {
        None
    };
    let (record, facts) = match load(console, staff, id, action).await {
        Ok(loaded) => loaded,
        Err(refused) => return refused,
    };
    let today = console.app().now().date();
    let again = |problems: Vec<Problem>, status: StatusCode| {
        let editing = Editing {
            action,
            fields,
            problems: &problems,
        };
        (
            status,
            case::render(console, staff, &record, None, Some(&editing)),
        )
            .into_response()
    };
    if step == Step::Change {
        return again(Vec::new(), StatusCode::OK);
    }
    let outgoing = match outgoing(action, fields, &facts, today) {
        Ok(outgoing) => outgoing,
        Err(problems) => return again(problems, StatusCode::UNPROCESSABLE_ENTITY),
    };
    if step == Step::Check {
        return match preview_of(console, staff, &facts, &outgoing).await {
            Ok(preview) => {
                confirmation(console, staff, &facts, action, fields, preview).into_response()
            }
            Err(e) => match problems_of(action, &e, &facts) {
                Some(problems) => again(problems, StatusCode::UNPROCESSABLE_ENTITY),
                None => page::refused(console, staff, &e),
            },
        };
    }
    let location = format!("/referrals/{}?done={}", facts.id, action.done());
    if let Outgoing::Forward(f) = &outgoing
        && already_forwarded(&record, &f.recipient)
    {
        return Redirect::to(&location).into_response();
    }
    match send(console, staff, &facts, action, outgoing).await {
        Ok(()) => {
            if let Some(turn) = turn {
                turn.done(&location);
            }
            tracing::info!(referral_id = %facts.id, action = action.slug(), "console action done");
            Redirect::to(&location).into_response()
        }
        Err(e) => match problems_of(action, &e, &facts) {
            Some(problems) => again(problems, StatusCode::UNPROCESSABLE_ENTITY),
            None => page::refused(console, staff, &e),
        },
    }
}

/// `POST /referrals/{id}/preview/{action}`: the live preview beside a form, as a fragment for
/// htmx. Stores and sends nothing.
pub async fn preview(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path((id, slug)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(action) = Action::of_slug(&slug).filter(|a| a.one_click().is_none()) else {
        return page::not_found().await;
    };
    // The case is read as for the page that holds the form; that read is on the audit log.
    let (_, facts) = match load(&console, &staff, &id, action).await {
        Ok(loaded) => loaded,
        Err(refused) => return refused,
    };
    let fields = Fields::parse(&body);
    let today = console.app().now().date();
    let not_ready = |problems: &[Problem]| {
        html! {
            div.notice.warn role="status" {
                p { "Not ready to send yet:" }
                ul { @for p in problems { li { (p.text) } } }
            }
        }
        .into_response()
    };
    let outgoing = match outgoing(action, &fields, &facts, today) {
        Ok(outgoing) => outgoing,
        Err(problems) => return not_ready(&problems),
    };
    match preview_of(&console, &staff, &facts, &outgoing).await {
        Ok(markup) => markup.into_response(),
        Err(e) => match problems_of(action, &e, &facts) {
            Some(problems) => not_ready(&problems),
            None => page::refused(&console, &staff, &e),
        },
    }
}

/// The "Check and send" page: what will reach the other team and why, what the user wrote,
/// and the buttons to send it or to change it.
fn confirmation(
    console: &Console,
    staff: &Staff,
    facts: &Facts,
    action: Action,
    fields: &Fields,
    preview: Markup,
) -> Markup {
    let other = team_name(&facts.other);
    let path = format!("/referrals/{}/{}", facts.id, action.slug());
    let body = html! {
        p { "Nothing has been sent yet. Check what will reach " strong { (other) } ", then confirm." }
        section.card aria-labelledby="confirm-preview-heading" {
            h2 id="confirm-preview-heading" { "What will reach them, and why" }
            div id="confirm-preview" { (preview) }
        }
        section.card aria-labelledby="confirm-text-heading" {
            h2 id="confirm-text-heading" { "What you wrote" }
            (written(action, fields))
        }
        form method="post" action=(path) id="confirm-form" {
            (page::csrf_field(staff))
            @for (name, value) in fields.pairs() {
                @if name != "csrf" && name != "step" {
                    input type="hidden" name=(name) value=(value);
                }
            }
            p.buttons {
                button type="submit" name="step" value="send" id="confirm-send" { "Confirm and send" }
                " "
                button.secondary type="submit" name="step" value="change" id="change-it" { "Change it" }
            }
        }
    };
    page::layout(
        console,
        staff,
        &format!("Check and send: {}", action.heading().to_lowercase()),
        "/cases",
        body,
    )
}

/// What the user wrote and chose on a form, in words, for the check step.
fn written(action: Action, fields: &Fields) -> Markup {
    let text = |name: &str| fields.get(name).to_owned();
    html! {
        dl.facts id="confirm-written" {
            @if let Some(code) = ReasonCode::parse(fields.get("reason_code")) {
                dt { "Why" } dd { (words::reason(code)) }
            }
            @if let Some(kind) = InformationKind::parse(fields.get("kind")) {
                dt { "About" } dd { (words::information(kind)) }
                dt { "Urgent" } dd { @if fields.checked("urgent") { "Yes: it comes first in their list" } @else { "No" } }
            }
            @if matches!(action, Action::Complete | Action::Reassess) {
                dt { "Level of concern" } dd { (text("scheme")) ": " (text("level")) }
            }
            @if action == Action::Complete {
                dt { "A plan is in place" } dd { @if fields.checked("management_plan") { "Yes" } @else { "No" } }
            }
            @if action == Action::Forward {
                dt { "To" } dd { (words::team(page::team(fields.get("recipient")))) }
            }
            @let partners = fields.all("partner");
            @if !partners.is_empty() {
                dt { "Partners" } dd { (partners.iter().map(|p| words::team(page::team(p))).collect::<Vec<_>>().join(", ")) }
            }
            @let wanted: Vec<&str> = fields.all("wanted").iter().filter_map(|c| DataCategory::parse(c)).map(words::category).collect();
            @if !wanted.is_empty() {
                dt { "Information you ask for" } dd { ul { @for w in &wanted { li { (w) } } } }
            }
            @let behaviours: Vec<String> = fields.all("behavior");
            @if !behaviours.is_empty() {
                dt { "Behaviours" }
                dd { ul { @for b in &behaviours { li { (words::behavior(b).map_or(b.as_str(), |w| w.name)) } } } }
                @if !fields.get("observed_on").is_empty() { dt { "Seen on" } dd { (text("observed_on")) } }
            }
            @let steps: Vec<InterventionCode> = fields.all("intervention").iter().filter_map(|c| InterventionCode::parse(c)).collect();
            @if !steps.is_empty() {
                dt { "Steps of the plan" }
                dd { ul { @for s in &steps {
                    @let team = fields.get(&format!("team-{}", s.as_str()));
                    li { (words::intervention(*s)) @if !team.is_empty() { ", by " (words::team(page::team(team))) } }
                } } }
                dt { "Next reassessment" } dd { (text("next")) }
            }
            @for name in ["question", "text", "reason", "advice", "justification"] {
                @if !fields.get(name).is_empty() {
                    dt { "Your words" } dd.text { (text(name)) }
                }
            }
            @let recommendations = fields.lines("recommendations");
            @if !recommendations.is_empty() {
                dt { "Recommendations" } dd { (recommendations.join(", ")) }
            }
        }
    }
}
