//! Consents: record one (after FHIR Consent: who, which teams, which purposes, which kinds of
//! information, until when), see its whole scope in words, attach the signed form, revoke it,
//! and follow the retraction that revoking starts, hop by hop, until every team that held a
//! copy has acknowledged its purge.
//!
//! The form is safe by default: teams, purposes and kinds of information are each an explicit
//! choice, "only these" (at least one ticked) or "any", and nothing chosen is refused next to
//! the group concerned. The Agency API's wire form still reads an empty list as "any"; this page
//! sends "any" only when it was chosen (see [`crate::consent::ConsentScope`]). Before a consent
//! is recorded, a confirmation shows its scope in words, with a warning naming the law for
//! every specially protected kind of information it covers.
//!
//! The signed form is uploaded as multipart through htmx, which carries the CSRF token in its
//! header (the session's check reads only url-encoded bodies); it is sealed at this node and
//! never sent anywhere.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use tatmx_certs::TeamIdentity;
use time::OffsetDateTime;

use super::Console;
use super::page::{self, Fields};
use super::session::{self, Staff};
use super::words;
use crate::app::{ConsentDraft, ConsentRecord, consents::MAX_CONSENT_FORM_BYTES};
use crate::category::DataCategory;
use crate::consent::{Consent, ConsentScope, Grantor, Recipient, Scope};
use crate::referral::Purpose;
use crate::staff::Capability;

/// The purposes a consent may be limited to.
const PURPOSES: [Purpose; 3] = [
    Purpose::ThreatAssessment,
    Purpose::ThreatManagement,
    Purpose::Consultation,
];

/// The form as it was typed, so a refused form comes back exactly as it was.
#[derive(Debug, Default, Clone)]
struct Typed {
    subject: String,
    grantor: String,
    grantor_name: String,
    /// `any`, `only`, or empty when neither was chosen.
    teams_choice: String,
    teams: Vec<String>,
    purposes_choice: String,
    purposes: Vec<String>,
    categories_choice: String,
    categories: Vec<String>,
    valid_until: String,
}

impl Typed {
    fn read(fields: &Fields) -> Self {
        Self {
            subject: fields.get("subject").to_owned(),
            grantor: fields.get("grantor").to_owned(),
            grantor_name: fields.get("grantor_name").to_owned(),
            teams_choice: fields.get("teams").to_owned(),
            teams: fields.all("team"),
            purposes_choice: fields.get("purposes").to_owned(),
            purposes: fields.all("purpose"),
            categories_choice: fields.get("categories").to_owned(),
            categories: fields.all("category"),
            valid_until: fields.get("valid_until").to_owned(),
        }
    }

    fn guardian(&self) -> bool {
        self.grantor == "guardian"
    }

    /// The fields again, hidden, for the confirmation's form.
    fn hidden(&self) -> Markup {
        html! {
            input type="hidden" name="subject" value=(self.subject);
            input type="hidden" name="grantor" value=(self.grantor);
            input type="hidden" name="grantor_name" value=(self.grantor_name);
            input type="hidden" name="teams" value=(self.teams_choice);
            @for t in &self.teams { input type="hidden" name="team" value=(t); }
            input type="hidden" name="purposes" value=(self.purposes_choice);
            @for p in &self.purposes { input type="hidden" name="purpose" value=(p); }
            input type="hidden" name="categories" value=(self.categories_choice);
            @for c in &self.categories { input type="hidden" name="category" value=(c); }
            input type="hidden" name="valid_until" value=(self.valid_until);
        }
    }
}

/// What is wrong with the form, next to each field or group.
#[derive(Debug, Default)]
struct Problems {
    subject: Option<&'static str>,
    grantor_name: Option<&'static str>,
    teams: Option<&'static str>,
    purposes: Option<&'static str>,
    categories: Option<&'static str>,
    valid_until: Option<&'static str>,
}

impl Problems {
    fn any(&self) -> bool {
        self.subject.is_some()
            || self.grantor_name.is_some()
            || self.teams.is_some()
            || self.purposes.is_some()
            || self.categories.is_some()
            || self.valid_until.is_some()
    }
}

/// One of the three choices, read from its radio and its ticks: "any" only when chosen as
/// such; ticks alone mean "only these"; nothing chosen, or "any" with ticks too, is refused.
fn scope<T>(
    choice: &str,
    ticked: &[String],
    parse: impl Fn(&str) -> Option<T>,
    nothing: &'static str,
    both: &'static str,
    unknown: &'static str,
) -> Result<Scope<T>, &'static str> {
    match choice {
        "any" if ticked.is_empty() => Ok(Scope::Any),
        "any" => Err(both),
        _ if ticked.is_empty() => Err(nothing),
        _ => ticked
            .iter()
            .map(|t| parse(t).ok_or(unknown))
            .collect::<Result<Vec<T>, _>>()
            .map(Scope::Only),
    }
}

/// The consent the form describes, or what is wrong with it.
fn draft(console: &Console, typed: &Typed) -> Result<ConsentDraft, Problems> {
    let mut problems = Problems::default();
    if typed.subject.is_empty() {
        problems.subject = Some("Type your reference for the person this consent is about.");
    }
    if typed.guardian() && typed.grantor_name.is_empty() {
        problems.grantor_name = Some("Type the name of the parent or guardian who gave it.");
    }
    // Only teams this node trusts now can be named: the form offers no others.
    let known: Vec<TeamIdentity> = console
        .trust()
        .state()
        .peers()
        .into_iter()
        .map(|p| p.peer.identity.clone())
        .collect();
    let teams = scope(
        &typed.teams_choice,
        &typed.teams,
        |t| known.iter().find(|k| k.uri() == t).cloned(),
        "Choose the teams this consent lets you share with, or choose “Any team”.",
        "You chose “Any team” and also ticked some teams. Choose one or the other.",
        "One of the teams ticked is not one this node works with. Reload the page and choose again.",
    );
    let purposes = scope(
        &typed.purposes_choice,
        &typed.purposes,
        Purpose::parse,
        "Choose what the information may be shared for, or choose “Any purpose”.",
        "You chose “Any purpose” and also ticked some purposes. Choose one or the other.",
        "One of the purposes ticked is not one this console offers. Reload the page and choose again.",
    );
    let categories = scope(
        &typed.categories_choice,
        &typed.categories,
        DataCategory::parse,
        "Choose the kinds of information this consent covers, or choose “Every kind of information”.",
        "You chose “Every kind of information” and also ticked some kinds. Choose one or the other.",
        "One of the kinds ticked is not one this console offers. Reload the page and choose again.",
    );
    let valid_until = match typed.valid_until.as_str() {
        "" => None,
        date => match time::Date::parse(
            date,
            time::macros::format_description!("[year]-[month]-[day]"),
        ) {
            Ok(date) => {
                let end = date
                    .with_hms(23, 59, 59)
                    .map(|t| t.assume_utc())
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                if end < console.now() {
                    problems.valid_until =
                        Some("That date has passed. Choose a later date, or leave it empty.");
                }
                Some(end)
            }
            Err(_) => {
                problems.valid_until =
                    Some("This is not a date. Pick one from the calendar, or leave it empty.");
                None
            }
        },
    };
    problems.teams = teams.as_ref().err().copied();
    problems.purposes = purposes.as_ref().err().copied();
    problems.categories = categories.as_ref().err().copied();
    match (teams, purposes, categories) {
        (Ok(teams), Ok(purposes), Ok(categories)) if !problems.any() => Ok(ConsentDraft {
            subject: typed.subject.clone(),
            grantor: if typed.guardian() {
                Grantor::Guardian {
                    name: typed.grantor_name.clone(),
                }
            } else {
                Grantor::Subject
            },
            scope: ConsentScope {
                teams,
                purposes,
                categories,
            },
            valid_until,
        }),
        _ => Err(problems),
    }
}

/// `GET /consents`
pub async fn page(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Query(done): Query<page::Done>,
) -> Response {
    if !staff.role.may(Capability::CreateReferrals) {
        return page::forbidden(&console, &staff, "read consents");
    }
    let notice = match done.word() {
        Some("revoked") => Some("Revoked."),
        _ => None,
    };
    form_page(
        &console,
        &staff,
        &Typed::default(),
        &Problems::default(),
        notice,
    )
    .await
}

/// The list of consents on file and the form, with what was typed and what is wrong.
async fn form_page(
    console: &Console,
    staff: &Staff,
    typed: &Typed,
    problems: &Problems,
    notice: Option<&str>,
) -> Response {
    let consents = match console.app().consents(500).await {
        Ok(consents) => consents,
        Err(e) => return page::refused(console, staff, &e),
    };
    let body = html! {
        @if let Some(text) = notice { (page::notice("ok", text)) }
        h2 id="record-heading" { "Record a consent" }
        (form(console, staff, typed, problems))
        h2 id="on-file-heading" { "Consents on file" }
        @if consents.is_empty() {
            p id="consents-empty" { "No consent is on file yet." }
        } @else {
            ul.td-cards id="consents-list" {
                @for c in &consents {
                    li.card data-consent-id=(c.id) {
                        p { a href=(format!("/consents/{}", c.id)) { "Consent about " strong { (c.subject) } } }
                        p.hint {
                            (grantor(&c.grantor)) " · "
                            @if c.revoked_at.is_some() { "revoked " (page::time(c.revoked_at)) } @else { "in force" }
                            @if let Some(until) = c.valid_until { " · until " (page::datetime(until)) }
                        }
                    }
                }
            }
        }
    };
    let status = if problems.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (
        status,
        page::layout(console, staff, "Consents", "/consents", body),
    )
        .into_response()
}

fn grantor(grantor: &Grantor) -> String {
    match grantor {
        Grantor::Guardian { name } => format!("Given by a parent or guardian, {name}"),
        Grantor::Subject => "Given by the person themself".into(),
    }
}

/// An error under a field or group, and the attributes that tie it to its inputs.
fn error(id: &str, problem: Option<&str>) -> Markup {
    html! {
        @if let Some(text) = problem {
            p.field-error id=(id) { (text) }
        }
    }
}

fn form(console: &Console, staff: &Staff, typed: &Typed, problems: &Problems) -> Markup {
    let state = console.trust().state();
    let peers: Vec<String> = state
        .peers()
        .into_iter()
        .map(|p| p.peer.identity.uri())
        .collect();
    let invalid = |p: Option<&str>| p.map(|_| "true");
    let described = |p: Option<&str>, id: &'static str| p.map(|_| id);
    let ticked = |list: &[String], value: &str| list.iter().any(|v| v == value);
    html! {
        form.card method="post" action="/consents" id="consent-form" novalidate {
            (page::csrf_field(staff))
            @if problems.any() {
                (page::notice("error", "The consent was not recorded. Correct what is marked below and try again."))
            }
            label for="consent-subject" { "Your reference for the person (a case or record number)" }
            p.hint id="consent-subject-hint" { "Kept here; never sent to another team." }
            input type="text" id="consent-subject" name="subject" value=(typed.subject) required
                aria-invalid=[invalid(problems.subject)]
                aria-describedby=(if problems.subject.is_some() { "consent-subject-hint consent-subject-error" } else { "consent-subject-hint" });
            (error("consent-subject-error", problems.subject))
            label for="consent-grantor" { "Given by" }
            select id="consent-grantor" name="grantor" {
                option value="self" selected[!typed.guardian()] { "The person themself" }
                option value="guardian" selected[typed.guardian()] { "A parent or guardian" }
            }
            label for="consent-grantor-name" { "The parent's or guardian's name, if one gave it" }
            input type="text" id="consent-grantor-name" name="grantor_name" value=(typed.grantor_name)
                aria-invalid=[invalid(problems.grantor_name)]
                aria-describedby=[described(problems.grantor_name, "consent-grantor-name-error")];
            (error("consent-grantor-name-error", problems.grantor_name))

            fieldset id="consent-teams" aria-describedby=[described(problems.teams, "consent-teams-error")] {
                legend { "Which teams it lets you share with" }
                (error("consent-teams-error", problems.teams))
                p { input type="radio" id="consent-teams-only" name="teams" value="only" checked[typed.teams_choice == "only"]
                        aria-invalid=[invalid(problems.teams)];
                    label.inline for="consent-teams-only" { "Only these teams:" } }
                ul.choices {
                    @for (i, team) in peers.iter().enumerate() {
                        li { input type="checkbox" id=(format!("consent-team-{i}")) name="team" value=(team) checked[ticked(&typed.teams, team)];
                            label.inline for=(format!("consent-team-{i}")) { (words::team(page::team(team))) } }
                    }
                }
                p { input type="radio" id="consent-teams-any" name="teams" value="any" checked[typed.teams_choice == "any"]
                        aria-invalid=[invalid(problems.teams)];
                    label.inline for="consent-teams-any" { "Any team: " (words::ANY_TEAM) } }
            }

            fieldset id="consent-purposes" aria-describedby=[described(problems.purposes, "consent-purposes-error")] {
                legend { "What it may be shared for" }
                (error("consent-purposes-error", problems.purposes))
                p { input type="radio" id="consent-purposes-only" name="purposes" value="only" checked[typed.purposes_choice == "only"]
                        aria-invalid=[invalid(problems.purposes)];
                    label.inline for="consent-purposes-only" { "Only for:" } }
                ul.choices {
                    @for p in PURPOSES {
                        li { input type="checkbox" id=(format!("consent-purpose-{}", p.as_str())) name="purpose" value=(p.as_str()) checked[ticked(&typed.purposes, p.as_str())];
                            label.inline for=(format!("consent-purpose-{}", p.as_str())) { (words::purpose(p)) } }
                    }
                }
                p { input type="radio" id="consent-purposes-any" name="purposes" value="any" checked[typed.purposes_choice == "any"]
                        aria-invalid=[invalid(problems.purposes)];
                    label.inline for="consent-purposes-any" { (words::ANY_PURPOSE) } }
            }

            fieldset id="consent-categories" aria-describedby=[described(problems.categories, "consent-categories-error")]
                hx-post="/consents/warning" hx-trigger="change" hx-target="#consent-protected-warning" hx-swap="innerHTML" {
                legend { "Which kinds of information it covers" }
                (error("consent-categories-error", problems.categories))
                p { input type="radio" id="consent-categories-only" name="categories" value="only" checked[typed.categories_choice == "only"]
                        aria-invalid=[invalid(problems.categories)];
                    label.inline for="consent-categories-only" { "Only these kinds:" } }
                ul.choices {
                    @for c in DataCategory::ALL {
                        li { input type="checkbox" id=(format!("consent-category-{}", c.as_str())) name="category" value=(c.as_str()) checked[ticked(&typed.categories, c.as_str())];
                            label.inline for=(format!("consent-category-{}", c.as_str())) {
                                (words::category(c))
                                @if let Some(law) = words::protecting_law(c) { " (protected by " (law) ")" }
                            } }
                    }
                }
                p { input type="radio" id="consent-categories-any" name="categories" value="any" checked[typed.categories_choice == "any"]
                        aria-invalid=[invalid(problems.categories)];
                    label.inline for="consent-categories-any" { (words::EVERY_KIND) } }
                div id="consent-protected-warning" aria-live="polite" {
                    (warning(&typed.categories_choice, &typed.categories))
                }
            }

            label for="consent-until" { "Valid until (leave empty if it has no end date)" }
            input type="date" id="consent-until" name="valid_until" value=(typed.valid_until)
                aria-invalid=[invalid(problems.valid_until)]
                aria-describedby=[described(problems.valid_until, "consent-until-error")];
            (error("consent-until-error", problems.valid_until))
            p { button type="submit" id="check-consent" name="step" value="check" { "Check the consent" } }
        }
    }
}

/// The warning for the kinds of information chosen so far: one line per protected kind, naming
/// its law; nothing when none is covered.
fn warning(choice: &str, ticked: &[String]) -> Markup {
    let warnings = if choice == "any" {
        words::protected_warnings(&[])
    } else {
        let chosen: Vec<DataCategory> = ticked
            .iter()
            .filter_map(|c| DataCategory::parse(c))
            .collect();
        if chosen.is_empty() {
            Vec::new()
        } else {
            words::protected_warnings(&chosen)
        }
    };
    html! {
        @if !warnings.is_empty() {
            div.notice.warn id="protected-warning" {
                p { strong { "This consent covers specially protected information." } }
                ul { @for w in &warnings { li { (w) } } }
            }
        }
    }
}

/// `POST /consents/warning`: the warning for the kinds ticked so far (htmx, as they change).
pub async fn live_warning(Extension(staff): Extension<Staff>, body: Bytes) -> Response {
    if !staff.role.may(Capability::CreateReferrals) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let fields = Fields::parse(&body);
    warning(fields.get("categories"), &fields.all("category")).into_response()
}

/// `POST /consents`: checks the form (`step=check`), shows it again to change
/// (`step=change`), or records it once confirmed (`step=record`).
pub async fn record(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::CreateReferrals) {
        return page::forbidden(&console, &staff, "record consents");
    }
    let fields = Fields::parse(&body);
    let typed = Typed::read(&fields);
    if fields.get("step") == "change" {
        return form_page(&console, &staff, &typed, &Problems::default(), None).await;
    }
    let draft = match draft(&console, &typed) {
        Ok(draft) => draft,
        Err(problems) => return form_page(&console, &staff, &typed, &problems, None).await,
    };
    if fields.get("step") != "record" {
        return confirmation(&console, &staff, &typed, &draft);
    }
    match console
        .app()
        .record_consent_draft(draft, &page::actor(&staff))
        .await
    {
        Ok(recorded) => session::redirect(
            &headers,
            &format!("/consents/{}?done=recorded", recorded.id),
        ),
        Err(e) => page::refused(&console, &staff, &e),
    }
}

/// The consent as it would be recorded, in words, with its warnings and a last chance to
/// change it.
fn confirmation(console: &Console, staff: &Staff, typed: &Typed, draft: &ConsentDraft) -> Response {
    let categories: Vec<DataCategory> = match &draft.scope.categories {
        Scope::Any => Vec::new(),
        Scope::Only(list) => list.clone(),
    };
    let body = html! {
        p { "Check what this consent will allow before you record it." }
        dl.facts.card.scope id="consent-scope" {
            dt { "About" } dd { (draft.subject) }
            dt { "Given by" } dd { (grantor(&draft.grantor)) }
            dt { "Teams" } dd id="scope-teams" { (scope_teams(&draft.scope.teams)) }
            dt { "For" } dd id="scope-purposes" { (scope_purposes(&draft.scope.purposes)) }
            dt { "Kinds of information" } dd id="scope-categories" { (scope_categories(&draft.scope.categories)) }
            dt { "Valid until" } dd { @if let Some(until) = draft.valid_until { (page::datetime(until)) } @else { "Until it is revoked" } }
        }
        @let warnings = words::protected_warnings(&categories);
        @if !warnings.is_empty() {
            div.notice.warn id="protected-warning" role="status" {
                p { strong { "This consent covers specially protected information." } }
                ul { @for w in &warnings { li { (w) } } }
            }
        }
        form method="post" action="/consents" id="confirm-consent-form" {
            (page::csrf_field(staff))
            (typed.hidden())
            p.actions {
                button type="submit" id="confirm-consent" name="step" value="record" { "Record the consent" }
                button.secondary type="submit" id="change-consent" name="step" value="change" { "Change it" }
            }
        }
    };
    page::layout(console, staff, "Check the consent", "/consents", body).into_response()
}

fn scope_teams(teams: &Scope<TeamIdentity>) -> Markup {
    html! {
        @match teams {
            Scope::Any => (words::ANY_TEAM),
            Scope::Only(list) => ul { @for t in list { li { (words::team(t.team.as_str())) } } },
        }
    }
}

fn scope_purposes(purposes: &Scope<Purpose>) -> Markup {
    html! {
        @match purposes {
            Scope::Any => (words::ANY_PURPOSE),
            Scope::Only(list) => ul { @for p in list { li { (words::purpose(*p)) } } },
        }
    }
}

fn scope_categories(categories: &Scope<DataCategory>) -> Markup {
    html! {
        @match categories {
            Scope::Any => (words::EVERY_KIND),
            Scope::Only(list) => ul { @for c in list { li { (words::category(*c)) } } },
        }
    }
}

/// A recorded consent's scope, as the three choices: an empty list reads as "any", as the
/// wire means it.
fn recorded_scope(consent: &Consent) -> (Markup, Scope<Purpose>, Scope<DataCategory>) {
    let p = &consent.provision;
    let teams = if p.recipients.is_empty() {
        html! { (words::ANY_TEAM) }
    } else {
        html! {
            ul { @for r in &p.recipients {
                li { @match r {
                    Recipient::Team(t) => (words::team(t.team.as_str())),
                    Recipient::Discipline(d) => (words::discipline(*d)),
                } }
            } }
        }
    };
    let purposes = if p.purposes.is_empty() {
        Scope::Any
    } else {
        Scope::Only(p.purposes.clone())
    };
    let categories = if p.categories.is_empty() {
        Scope::Any
    } else {
        Scope::Only(p.categories.clone())
    };
    (teams, purposes, categories)
}

/// `GET /consents/{id}`: one consent's whole scope in words, its signed form, and its
/// retraction's progress once revoked.
pub async fn show(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Query(done): Query<page::Done>,
) -> Response {
    if !staff.role.may(Capability::CreateReferrals) {
        return page::forbidden(&console, &staff, "read consents");
    }
    let id = match page::id(&id, "consent_id") {
        Ok(id) => id,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let record = match console.app().consent_record(id).await {
        Ok(record) => record,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let notice = match done.word() {
        Some("recorded") => Some("Recorded."),
        Some("attached") => Some("Saved. The signed form is attached."),
        Some("revoked") => {
            Some("Revoked. Every team that received a copy is being asked to purge it.")
        }
        _ => None,
    };
    consent_page(&console, &staff, &record, notice, None).await
}

async fn consent_page(
    console: &Console,
    staff: &Staff,
    record: &ConsentRecord,
    notice: Option<&str>,
    upload_problem: Option<&str>,
) -> Response {
    let consent = &record.consent;
    let progress = if consent.revoked_at.is_some() {
        console.app().retraction(consent.id).await.ok()
    } else {
        None
    };
    let (teams, purposes, categories) = recorded_scope(consent);
    let covered: Vec<DataCategory> = match &categories {
        Scope::Any => Vec::new(),
        Scope::Only(list) => list.clone(),
    };
    let warnings = words::protected_warnings(&covered);
    let body = html! {
        @if let Some(text) = notice { (page::notice("ok", text)) }
        dl.facts.card.scope id="consent-scope" {
            dt { "About" } dd id="scope-subject" { (consent.subject) }
            dt { "Given by" } dd { (grantor(&consent.grantor)) }
            dt { "Teams" } dd id="scope-teams" { (teams) }
            dt { "For" } dd id="scope-purposes" { (scope_purposes(&purposes)) }
            dt { "Kinds of information" } dd id="scope-categories" { (scope_categories(&categories)) }
            dt { "Valid from" } dd { (page::datetime(consent.valid_from)) }
            dt { "Valid until" } dd { @if let Some(until) = consent.valid_until { (page::datetime(until)) } @else { "Until it is revoked" } }
            dt { "Recorded" } dd { (page::datetime(consent.recorded_at))
                @if let Some(by) = &record.recorded_by { " by " (words::actor(by)) } }
            dt { "State" } dd id="consent-state" { @if consent.revoked_at.is_some() { "Revoked " (page::time(consent.revoked_at)) } @else { "In force" } }
        }
        @if !warnings.is_empty() {
            div.notice.warn id="protected-warning" role="status" {
                p { strong { "This consent covers specially protected information." } }
                ul { @for w in &warnings { li { (w) } } }
            }
        }
        details { summary { "Details" } p.mono id="consent-id" { "Consent " (consent.id) } }

        h2 id="signed-form-heading" { "The signed form" }
        @if let Some(form) = &record.form {
            p id="signed-form" {
                (words::file_kind(&form.content_type)) ", " (size(form.size)) ", attached "
                (page::datetime(form.attached_at)) " by " (words::actor(&form.attached_by)) ". "
                a href=(format!("/consents/{}/form", consent.id)) id="download-consent-form" download { "Download it" }
            }
        } @else {
            p id="signed-form" { "No signed form is attached yet." }
        }
        form.card method="post" action=(format!("/consents/{}/form", consent.id)) enctype="multipart/form-data"
            hx-post=(format!("/consents/{}/form", consent.id)) hx-encoding="multipart/form-data"
            hx-target="main" hx-select="main" hx-swap="outerHTML" id="attach-form" {
            (page::csrf_field(staff))
            label for="consent-form-file" { @if record.form.is_some() { "Replace it with another scan" } @else { "Attach the signed form" } }
            p.hint id="consent-form-hint" { "A PDF, PNG or JPEG of at most 10 MiB. It is kept encrypted here and never sent to another team." }
            input type="file" id="consent-form-file" name="form" accept=".pdf,.png,.jpg,.jpeg,application/pdf,image/png,image/jpeg" required
                aria-invalid=[upload_problem.map(|_| "true")]
                aria-describedby=(if upload_problem.is_some() { "consent-form-hint consent-form-error" } else { "consent-form-hint" });
            (error("consent-form-error", upload_problem))
            p { button type="submit" id="attach-consent-form" { "Attach" } }
        }

        @if consent.revoked_at.is_none() {
            @if staff.role.may(Capability::DecideReferrals) {
                h2 id="revoke-heading" { "Revoke" }
                form method="post" action=(format!("/consents/{}/revoke", consent.id)) id="revoke-form" {
                    (page::csrf_field(staff))
                    p { "Revoking stops every future disclosure on this consent, cancels what is still undelivered, and asks every team that received a copy to purge it, and the teams they forwarded it to." }
                    button.danger type="submit" id="revoke-consent" { "Revoke the consent" }
                }
            } @else {
                p { "A chair revokes consents." }
            }
        }
        @if let Some(progress) = &progress {
            h2 id="retraction-heading" { "Retraction" }
            p id="retraction-state" {
                @if progress.complete() { "Every copy known so far has been purged and acknowledged." }
                @else { "Still waiting for some teams to acknowledge their purge." }
            }
            @if progress.targets.is_empty() {
                p { "Nothing had been shared on this consent." }
            } @else {
                ul.td-cards id="retraction-list" {
                    @for t in &progress.targets {
                        li.card {
                            p { strong { (words::team(page::team(&t.copy.team.uri()))) } }
                            p.hint {
                                "Reported by " (words::team(page::team(&t.reported_by))) " · "
                                @if t.acknowledged_at.is_some() { "acknowledged" } @else { "not acknowledged yet" }
                                @if t.purged_at.is_some() { " · purged " (page::time(t.purged_at)) }
                            }
                            details { summary { "Details" } p.mono { "Referral " (t.copy.referral_id) } }
                        }
                    }
                }
            }
        }
    };
    let status = if upload_problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (
        status,
        page::layout(console, staff, "Consent", "/consents", body),
    )
        .into_response()
}

/// A size in words: `812 KB`, `2.4 MB`.
fn size(bytes: u64) -> String {
    if bytes < 1024 * 1024 {
        format!("{} KB", bytes.div_ceil(1024))
    } else {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    }
}

/// `POST /consents/{id}/form`: attaches the signed form (multipart, field `form`).
pub async fn attach(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    if !staff.role.may(Capability::CreateReferrals) {
        return page::forbidden(&console, &staff, "attach a signed consent form");
    }
    let id = match page::id(&id, "consent_id") {
        Ok(id) => id,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let bytes = match multipart {
        Ok(multipart) => read_form_field(multipart).await,
        Err(_) => {
            Err("The file did not arrive as a file upload. Choose it again and press Attach.")
        }
    };
    let attached = match bytes {
        Ok(bytes) => console
            .app()
            .attach_consent_form(id, &bytes, &page::actor(&staff))
            .await
            .map_err(|e| match e {
                crate::app::AppError::Invalid(_) => Err(upload_words(&e.to_string())),
                other => Ok(other),
            }),
        Err(problem) => Err(Err(problem)),
    };
    match attached {
        Ok(_) => session::redirect(&headers, &format!("/consents/{id}?done=attached")),
        Err(Ok(e)) => page::refused(&console, &staff, &e),
        Err(Err(problem)) => match console.app().consent_record(id).await {
            Ok(record) => {
                let mut response =
                    consent_page(&console, &staff, &record, None, Some(problem)).await;
                // htmx swaps in only a successful answer; the page with the error next to
                // the file field is the answer it should show.
                if headers.contains_key("hx-request") {
                    *response.status_mut() = StatusCode::OK;
                }
                response
            }
            Err(e) => page::refused(&console, &staff, &e),
        },
    }
}

/// A refused upload, in words (the application names the field and the reason).
fn upload_words(refusal: &str) -> &'static str {
    if refusal.contains("no file") {
        "No file was chosen. Choose the scan of the signed form."
    } else if refusal.contains("larger") {
        "This file is larger than 10 MiB. Scan it at a lower resolution, or as a PDF, and try again."
    } else {
        "This file is not a PDF, PNG or JPEG. Save the scan in one of these and try again."
    }
}

/// The `form` field's bytes, read at most a little past the limit so an over-large file is
/// refused without holding all of it.
async fn read_form_field(mut multipart: Multipart) -> Result<Vec<u8>, &'static str> {
    let too_large = "This file is larger than 10 MiB. Scan it at a lower resolution, or as a PDF, and try again.";
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return Ok(Vec::new()),
            Err(_) => return Err(too_large),
        };
        if field.name() != Some("form") {
            continue;
        }
        let mut field = field;
        let mut bytes = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > MAX_CONSENT_FORM_BYTES {
                        return Err(too_large);
                    }
                }
                Ok(None) => return Ok(bytes),
                Err(_) => return Err(too_large),
            }
        }
    }
}

/// `GET /consents/{id}/form`: the signed form, as a download that no cache keeps; audited.
pub async fn download(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> Response {
    if !staff.role.may(Capability::CreateReferrals) {
        return page::forbidden(&console, &staff, "download a signed consent form");
    }
    let id = match page::id(&id, "consent_id") {
        Ok(id) => id,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let form = match console.app().consent_form(id, &page::actor(&staff)).await {
        Ok(form) => form,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let extension = match form.info.content_type.as_str() {
        "application/pdf" => "pdf",
        "image/png" => "png",
        _ => "jpg",
    };
    // The name carries only the consent's id: a scan's own name may carry the person's.
    let disposition = format!("attachment; filename=\"consent-{id}.{extension}\"");
    let mut response = form.bytes.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&form.info.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, private"),
    );
    response
}

/// `POST /consents/{id}/revoke`
pub async fn revoke(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !staff.role.may(Capability::DecideReferrals) {
        return page::forbidden(&console, &staff, "revoke a consent");
    }
    let revoked = match page::id(&id, "consent_id") {
        Ok(id) => console.app().revoke_consent(id, &page::actor(&staff)).await,
        Err(e) => Err(e),
    };
    match revoked {
        Ok(consent) => {
            session::redirect(&headers, &format!("/consents/{}?done=revoked", consent.id))
        }
        Err(e) => page::refused(&console, &staff, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_is_only_what_was_chosen_and_nothing_chosen_is_refused() {
        let parse = |s: &str| (s == "a" || s == "b").then(|| s.to_owned());
        let s = |choice: &str, ticked: &[&str]| {
            let ticked: Vec<String> = ticked.iter().map(|t| (*t).to_owned()).collect();
            scope(choice, &ticked, parse, "nothing", "both", "unknown")
        };
        assert_eq!(s("any", &[]), Ok(Scope::Any));
        assert_eq!(s("", &[]), Err("nothing"));
        assert_eq!(s("only", &[]), Err("nothing"));
        assert_eq!(s("any", &["a"]), Err("both"));
        assert_eq!(s("only", &["a", "c"]), Err("unknown"));
        assert_eq!(
            s("", &["a", "b"]),
            Ok(Scope::Only(vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn every_kind_warns_and_harmless_kinds_do_not() {
        let all = warning("any", &[]).into_string();
        for law in ["HIPAA", "42 CFR Part 2", "FERPA", "CJIS"] {
            assert!(all.contains(law), "{all}");
        }
        assert!(warning("only", &["THREAT".into()]).into_string().is_empty());
        assert!(warning("", &[]).into_string().is_empty());
    }
}
