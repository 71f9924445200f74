//! A new referral: a form by kind of information, and beside it a live preview that runs the
//! node's own dry run (the same preview the Agency API's `SubmitReferral` with `dry_run`
//! runs) each time the form changes, and shows, in words, what reaches the chosen team and
//! why the rest stays here. "Check and send" shows that once more with everything filled in,
//! and only "Confirm and send" sends: with an idempotency key from the form, so a double
//! click sends once.
//!
//! What the form can foresee (a choice not made, a date written wrongly, a text over its
//! limit) is checked here first and shown next to its field in plain words, with everything
//! typed kept; what only the node can decide (the consent's subject, the policy) comes back
//! from the use case and is put beside its field the same way.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use sha2::{Digest, Sha256};

use super::Console;
use super::disclosure;
use super::form::{self, Problems};
use super::page::{self, Fields, Refusal};
use super::session::Staff;
use super::words;
use crate::app::cases::MAX_REFERENCE;
use crate::app::{AppError, Idempotency};
use crate::category::DataCategory;
use crate::consent::Consent;
use crate::referral::{
    Behavior, CriminalHistory, EducationRecord, LegalBasis, LevelOfConcern,
    MIN_JUSTIFICATION_CHARS, MentalHealth, Narrative, NewReferral, ObservedBehavior, Purpose,
    ReferralContent, ReporterIdentity, SubjectContact, SubjectIdentity, SubstanceUse, ThirdParty,
    ThreatDetails,
};
use crate::staff::Capability;

/// The purposes a referral may name; a consultation is asked from a case's own page.
const PURPOSES: [Purpose; 2] = [Purpose::ThreatAssessment, Purpose::ThreatManagement];

/// The bases a referral may rest on, in the order a school meets them.
const BASES: [LegalBasis; 5] = [
    LegalBasis::Consent,
    LegalBasis::HealthSafetyEmergency,
    LegalBasis::SeriousImminentThreat,
    LegalBasis::LawEnforcement,
    LegalBasis::DeIdentified,
];

/// Every text field of the form: its name, its label, and its limit in characters.
const TEXTS: [(&str, &str, usize); 25] = [
    (
        "justification",
        "Why the law allows sharing without consent",
        form::LONG,
    ),
    (
        "subject_ref",
        "Your reference for this person",
        MAX_REFERENCE,
    ),
    ("case_ref", "Your case number", MAX_REFERENCE),
    (
        "loc_scheme",
        "Scheme (for example CSTAG or NTAC)",
        form::SHORT,
    ),
    ("loc_value", "Level (for example moderate)", form::SHORT),
    ("identity_name", "Full name", form::SHORT),
    ("identity_dob", "Date of birth", form::SHORT),
    ("contact_address", "Address", form::SHORT),
    ("contact_phone", "Phone", form::SHORT),
    ("contact_email", "Email", form::SHORT),
    ("threat_type", "What kind of threat", form::SHORT),
    ("target_type", "Who or what is threatened", form::SHORT),
    (
        "grievance_code",
        "The grievance, in a few words",
        form::SHORT,
    ),
    ("narrative", "What happened, in your own words", form::LONG),
    ("mh_diagnoses", "Diagnoses", form::LONG),
    ("mh_treatment", "Treatment", form::LONG),
    ("su_record", "Treatment record", form::LONG),
    ("edu_school", "School", form::SHORT),
    ("edu_grade", "Grade", form::SHORT),
    ("edu_discipline", "Discipline", form::LONG),
    ("crim_arrests", "Arrests", form::LONG),
    ("crim_orders", "Protective orders", form::LONG),
    ("crim_firearms", "Firearm records", form::LONG),
    ("reporter_name", "Who reported it", form::SHORT),
    ("reporter_contact", "How to reach them", form::SHORT),
];

/// The form's label for `name`, and its limit.
fn spec(name: &str) -> (&'static str, usize) {
    TEXTS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or(("This field", form::SHORT), |(_, label, limit)| {
            (label, *limit)
        })
}

fn text(name: &str, fields: &Fields, problems: &Problems) -> Markup {
    text_hint(name, None, fields, problems)
}

fn text_hint(name: &str, hint: Option<&str>, fields: &Fields, problems: &Problems) -> Markup {
    let (label, limit) = spec(name);
    form::text(name, label, hint, limit, fields, problems)
}

fn area(name: &str, hint: Option<&str>, fields: &Fields, problems: &Problems) -> Markup {
    let (label, limit) = spec(name);
    form::area(name, label, hint, limit, fields, problems)
}

/// A fieldset for one kind of information, headed in words.
fn section(category: DataCategory, inner: Markup) -> Markup {
    html! {
        fieldset.category data-category=(category.as_str()) {
            legend { (words::category(category)) }
            @if let Some(law) = words::protecting_law(category) {
                p.hint { "Protected by " (law) ". The preview shows whether the law lets it reach the team you chose." }
            }
            (inner)
        }
    }
}

/// The form, filled from `fields` (empty for a new one), with `problems` beside their fields.
fn referral_form(
    console: &Console,
    staff: &Staff,
    fields: &Fields,
    consents: &[Consent],
    problems: &Problems,
) -> Markup {
    let state = console.trust().state();
    let peers: Vec<String> = state
        .peers()
        .into_iter()
        .filter(|p| !p.blocked)
        .map(|p| p.peer.identity.uri())
        .collect();
    let key = if fields.get("idempotency_key").is_empty() {
        uuid::Uuid::now_v7().to_string()
    } else {
        fields.get("idempotency_key").to_owned()
    };
    let purpose = match fields.get("purpose") {
        "" => Purpose::ThreatAssessment.as_str(),
        chosen => chosen,
    };
    html! {
        form id="new-referral" method="post" action="/referrals" novalidate
            hx-post="/referrals/preview" hx-trigger="change, input delay:600ms, load"
            hx-target="#preview" hx-swap="innerHTML" {
            (page::csrf_field(staff))
            input type="hidden" name="idempotency_key" value=(key);
            fieldset {
                legend { "Who it goes to, and why" }
                (form::select("recipient", "The team to send it to", None, fields, problems, html! {
                    option value="" { "Choose a team" }
                    @for team in &peers {
                        option value=(team) selected[fields.get("recipient") == team] { (words::team(page::team(team))) }
                    }
                }))
                (form::radios("purpose", "What you are asking for", problems, html! {
                    @for p in PURPOSES {
                        (form::radio("purpose", p.as_str(), words::purpose(p), None, purpose == p.as_str()))
                    }
                }))
                (form::radios("legal_basis", "Why the law allows you to share this", problems, html! {
                    @for b in BASES {
                        (form::radio("legal_basis", b.as_str(), words::legal_basis(b), None, fields.get("legal_basis") == b.as_str()))
                    }
                }))
                (form::select("consent_ref", "The person's consent", Some("Needed when they (or their guardian) agreed. Record a consent on the Consents page first."), fields, problems, html! {
                    option value="" { "No consent" }
                    @for c in consents.iter().filter(|c| c.revoked_at.is_none()) {
                        @let id = c.id.to_string();
                        option value=(id) selected[fields.get("consent_ref") == id] {
                            "Consent for " (c.subject) ", recorded " (page::date(c.recorded_at))
                        }
                    }
                }))
                (area("justification", Some(&format!("Needed when there is no consent: at least {MIN_JUSTIFICATION_CHARS} characters saying why this is an emergency or a serious threat. Never name the person here.")), fields, problems))
                (text_hint("subject_ref", Some("As it is written on their consent. Kept at your agency; never sent."), fields, problems))
                (text_hint("case_ref", Some("Kept at your agency; never sent. You will find the case by it."), fields, problems))
            }
            fieldset {
                legend { "Level of concern, if your team has set one" }
                (text("loc_scheme", fields, problems))
                (text("loc_value", fields, problems))
            }
            p.hint id="content-start" { "Fill in only what the other team needs. Leave a section empty and nothing of it is sent." }
            (section(DataCategory::Identity, html! {
                (text("identity_name", fields, problems))
                (text_hint("identity_dob", Some("Year-month-day, for example 2010-04-30."), fields, problems))
            }))
            (section(DataCategory::Contact, html! {
                (text("contact_address", fields, problems))
                (text("contact_phone", fields, problems))
                (text("contact_email", fields, problems))
            }))
            (section(DataCategory::Behavior, behaviours(fields, problems)))
            (section(DataCategory::Threat, html! {
                (text("threat_type", fields, problems))
                (text("target_type", fields, problems))
                (text("grievance_code", fields, problems))
                (form::check("weapons_access", "Has access to weapons", fields))
            }))
            (section(DataCategory::Narrative, area("narrative", None, fields, problems)))
            (section(DataCategory::MentalHealth, html! {
                (area("mh_diagnoses", Some("One per line."), fields, problems))
                (area("mh_treatment", None, fields, problems))
            }))
            (section(DataCategory::SubstanceUse, area("su_record", None, fields, problems)))
            (section(DataCategory::EducationRecord, html! {
                (text("edu_school", fields, problems))
                (text("edu_grade", fields, problems))
                (form::check("edu_iep", "Has an IEP or a 504 plan", fields))
                (area("edu_discipline", Some("One per line."), fields, problems))
            }))
            (section(DataCategory::CriminalHistory, html! {
                (area("crim_arrests", Some("One per line."), fields, problems))
                (area("crim_orders", Some("One per line."), fields, problems))
                (area("crim_firearms", Some("One per line."), fields, problems))
            }))
            (section(DataCategory::ReporterIdentity, html! {
                (text("reporter_name", fields, problems))
                (form::text("reporter_relationship", "How they know the person", None, form::SHORT, fields, problems))
                (text("reporter_contact", fields, problems))
            }))
            (section(DataCategory::ThirdParty, html! {
                (form::text("third_name", "Name of a person threatened, or a witness", None, form::SHORT, fields, problems))
                (form::text("third_role", "Who they are (the person threatened, a witness)", None, form::SHORT, fields, problems))
            }))
        }
    }
}

/// The warning behaviours as a described list: a box to tick and, beside it, when it was
/// seen.
fn behaviours(fields: &Fields, problems: &Problems) -> Markup {
    html! {
        p.hint id="behavior-hint" { "Tick each behaviour you have seen, and say when if you know." }
        ul.choices aria-describedby="behavior-hint" {
            @for b in words::BEHAVIORS {
                @let id = format!("behavior-{}", b.code.to_lowercase());
                @let on = format!("behavior_on_{}", b.code);
                li {
                    input type="checkbox" id=(id) name="behavior" value=(b.code) checked[fields.has("behavior", b.code)];
                    label.inline for=(id) { strong { (b.name) } " · " (b.meaning) }
                    (form::date(&on, &format!("When: {}", b.name.to_lowercase()), fields, problems))
                }
            }
        }
    }
}

/// The draft the form describes; a section is present only when one of its fields is filled.
/// A recipient, purpose or basis the form does not offer is refused by field.
fn draft(fields: &Fields) -> Result<NewReferral, Problems> {
    let mut problems = check(fields);
    let some = |values: &[&str]| values.iter().any(|v| !fields.get(v).is_empty());
    let text = |name: &str| fields.get(name).to_owned();
    let optional = |name: &str| Some(text(name)).filter(|v| !v.is_empty());
    let purpose = Purpose::parse(fields.get("purpose"));
    if purpose.is_none() {
        problems.add("purpose", "Choose what you are asking the other team for.");
    }
    let legal_basis = LegalBasis::parse(fields.get("legal_basis"));
    if legal_basis.is_none() {
        problems.add(
            "legal_basis",
            "Choose why the law allows you to share this.",
        );
    }
    let (Some(purpose), Some(legal_basis)) = (purpose, legal_basis) else {
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let observations: Vec<ObservedBehavior> = words::BEHAVIORS
        .iter()
        .filter(|b| fields.has("behavior", b.code))
        .map(|b| ObservedBehavior {
            code: b.code.into(),
            observed_on: text(&format!("behavior_on_{}", b.code)),
        })
        .collect();
    let content = ReferralContent {
        identity: some(&["identity_name", "identity_dob"]).then(|| SubjectIdentity {
            full_name: text("identity_name"),
            date_of_birth: text("identity_dob"),
            identifiers: vec![],
        }),
        contact: some(&["contact_address", "contact_phone", "contact_email"]).then(|| {
            SubjectContact {
                address: text("contact_address"),
                phone: text("contact_phone"),
                email: text("contact_email"),
            }
        }),
        behavior: (!observations.is_empty()).then_some(Behavior { observations }),
        threat: (some(&["threat_type", "target_type", "grievance_code"])
            || fields.checked("weapons_access"))
        .then(|| ThreatDetails {
            threat_type: text("threat_type"),
            target_type: text("target_type"),
            weapons_access: fields.checked("weapons_access"),
            grievance_code: text("grievance_code"),
        }),
        narrative: some(&["narrative"]).then(|| Narrative {
            text: text("narrative"),
        }),
        mental_health: some(&["mh_diagnoses", "mh_treatment"]).then(|| MentalHealth {
            diagnoses: fields.lines("mh_diagnoses"),
            treatment: text("mh_treatment"),
        }),
        substance_use: some(&["su_record"]).then(|| SubstanceUse {
            treatment_record: text("su_record"),
        }),
        education_record: (some(&["edu_school", "edu_grade", "edu_discipline"])
            || fields.checked("edu_iep"))
        .then(|| EducationRecord {
            school: text("edu_school"),
            grade: text("edu_grade"),
            iep_or_504: fields.checked("edu_iep"),
            discipline: fields.lines("edu_discipline"),
        }),
        criminal_history: some(&["crim_arrests", "crim_orders", "crim_firearms"]).then(|| {
            CriminalHistory {
                arrests: fields.lines("crim_arrests"),
                protective_orders: fields.lines("crim_orders"),
                firearm_records: fields.lines("crim_firearms"),
            }
        }),
        reporter: some(&["reporter_name", "reporter_relationship", "reporter_contact"]).then(
            || ReporterIdentity {
                name: text("reporter_name"),
                relationship: text("reporter_relationship"),
                contact: text("reporter_contact"),
            },
        ),
        third_parties: if some(&["third_name", "third_role"]) {
            vec![ThirdParty {
                name: text("third_name"),
                role: text("third_role"),
            }]
        } else {
            vec![]
        },
    };
    Ok(NewReferral {
        recipient: text("recipient"),
        purpose,
        level_of_concern: some(&["loc_scheme", "loc_value"]).then(|| LevelOfConcern {
            scheme: text("loc_scheme"),
            value: text("loc_value"),
        }),
        legal_basis,
        justification: optional("justification"),
        consent_ref: optional("consent_ref"),
        content,
        case_ref: optional("case_ref"),
        reidentify: false,
        subject_ref: optional("subject_ref"),
    })
}

/// What the form can tell is wrong before the node is asked, each beside its field.
fn check(fields: &Fields) -> Problems {
    let mut problems = Problems::default();
    if fields.get("recipient").is_empty() {
        problems.add("recipient", "Choose the team to send this to.");
    }
    let basis = LegalBasis::parse(fields.get("legal_basis"));
    if basis == Some(LegalBasis::Consent) && fields.get("consent_ref").is_empty() {
        problems.add(
            "consent_ref",
            "Choose the person's consent, or choose another reason the law allows sharing.",
        );
    }
    if !fields.get("consent_ref").is_empty() && fields.get("subject_ref").is_empty() {
        problems.add(
            "subject_ref",
            "Write your reference for this person exactly as it is on the consent you chose.",
        );
    }
    if basis.is_some_and(LegalBasis::needs_justification)
        && fields.get("justification").chars().count() < MIN_JUSTIFICATION_CHARS
    {
        problems.add(
            "justification",
            &format!("Write at least {MIN_JUSTIFICATION_CHARS} characters saying why this cannot wait for consent."),
        );
    }
    if fields.get("loc_scheme").is_empty() != fields.get("loc_value").is_empty() {
        problems.add(
            "loc_value",
            "Give both the scheme and the level, or leave both empty.",
        );
    }
    form::check_date(&mut problems, fields, "identity_dob", "the date of birth");
    for b in words::BEHAVIORS {
        form::check_date(
            &mut problems,
            fields,
            &format!("behavior_on_{}", b.code),
            "the date",
        );
    }
    for (name, label, limit) in TEXTS {
        form::check_limit(&mut problems, fields, name, label, limit);
    }
    for (name, label) in [
        ("reporter_relationship", "How they know the person"),
        ("third_name", "The name"),
        ("third_role", "Who they are"),
    ] {
        form::check_limit(&mut problems, fields, name, label, form::SHORT);
    }
    problems
}

/// Puts the node's refusal of a draft beside the field it concerns, in words; what concerns
/// no one field goes at the top.
fn place(error: &AppError) -> Problems {
    let mut problems = Problems::default();
    let text = error.to_string();
    let field = |prefix: &str| text.starts_with(prefix);
    match error {
        AppError::Invalid(_) if field("subject_ref") => problems.add(
            "subject_ref",
            "Write your reference for this person exactly as it is on the consent you chose.",
        ),
        AppError::Invalid(_) if field("consent_ref") => problems.add(
            "consent_ref",
            "This consent is not on file at your agency any more. Choose another, or record it again.",
        ),
        AppError::Invalid(_) if field("content:") => problems.add(
            "content-start",
            "Fill in at least one kind of information: there is nothing to send yet.",
        ),
        AppError::Invalid(_) if field("recipient") || field("referral.recipient") => {
            problems.add("recipient", "Choose one of the teams in the list.")
        }
        AppError::Precondition(_) if text.contains("another subject") => problems.add(
            "subject_ref",
            "The consent you chose is for someone else: this is not the reference written on it. Check both.",
        ),
        AppError::Precondition(_) if text.contains("withholds every category") => problems.add(
            form::TOP,
            "Nothing you filled in may reach this team on the reason you chose, so nothing was sent. The preview shows why for each kind of information.",
        ),
        AppError::Recipient(_) if text.contains("blocked") => problems.add(
            "recipient",
            "Your agency has stopped sending to this team. Ask your node's admin.",
        ),
        AppError::IdempotencyKeyReused => problems.add(
            form::TOP,
            "This form was already used to send a different referral. Open a new form to send another.",
        ),
        _ => problems.refused(form::TOP, &Refusal::of(error)),
    }
    problems
}

/// The form's idempotency key, with the digest of the draft it came with, so that sending the
/// same form twice sends once and a reused key with another draft is refused.
fn idempotency(fields: &Fields, draft: &NewReferral) -> Idempotency {
    // A draft is plain strings, lists and flags, which JSON always encodes; were it ever to
    // fail, every draft would share one digest and a reused key would send nothing twice.
    let encoded = serde_json::to_vec(draft).unwrap_or_default();
    Idempotency {
        key: fields.get("idempotency_key").to_owned(),
        draft_digest: hex::encode(Sha256::digest(encoded)),
    }
}

async fn consents(console: &Console) -> Vec<Consent> {
    console.app().consents(200).await.unwrap_or_default()
}

fn whole_page(
    console: &Console,
    staff: &Staff,
    fields: &Fields,
    consents: &[Consent],
    problems: &Problems,
) -> Markup {
    let body = html! {
        (problems.summary())
        p { "The preview shows, as you type, what the law and your agency's policy let reach the team you chose, and why the rest stays here. Nothing is sent until you check it and confirm." }
        div.compose {
            div.compose-form { (referral_form(console, staff, fields, consents, problems)) }
            aside.compose-preview aria-labelledby="preview-heading" {
                h2 id="preview-heading" { "What will reach them, and why" }
                div id="preview" aria-live="polite" {
                    p { "Choose a team and fill in the form; the preview appears here." }
                }
            }
            p.compose-send { button type="submit" form="new-referral" id="send-referral" { "Check and send" } }
        }
    };
    page::layout(console, staff, "New referral", "/referrals/new", body)
}

/// `GET /referrals/new`
pub async fn page(State(console): State<Console>, Extension(staff): Extension<Staff>) -> Response {
    if !staff.role.may(Capability::CreateReferrals) {
        return page::forbidden(&console, &staff, "create referrals");
    }
    let consents = consents(&console).await;
    whole_page(
        &console,
        &staff,
        &Fields::default(),
        &consents,
        &Problems::default(),
    )
    .into_response()
}

/// `POST /referrals/preview`: the dry run's decisions, as a fragment for htmx.
pub async fn preview(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::CreateReferrals) {
        return page::forbidden(&console, &staff, "create referrals");
    }
    let fields = Fields::parse(&body);
    if fields.get("recipient").is_empty() {
        return html! { p id="preview-waiting" { "Choose the team to send it to, and the preview shows what would reach it." } }
            .into_response();
    }
    let previewed = match draft(&fields) {
        Ok(draft) => console.app().preview(draft).await.map_err(|e| place(&e)),
        Err(problems) => Err(problems),
    };
    match previewed {
        Ok(disclosed) => disclosure::decisions(
            Some("preview-decisions"),
            &disclosed.decisions,
            fields.get("recipient"),
        )
        .into_response(),
        Err(problems) => html! {
            div.notice.warn id="preview-problem" role="status" {
                p { "Not ready to send yet:" }
                (problems.list())
            }
        }
        .into_response(),
    }
}

/// `POST /referrals`: without `confirmed`, the page to check before sending; with it,
/// sends, and shows the case as sent. Either way a problem brings the form back with
/// everything typed.
pub async fn submit(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::CreateReferrals) {
        return page::forbidden(&console, &staff, "create referrals");
    }
    let fields = Fields::parse(&body);
    let back = |problems: Problems, consents: Vec<Consent>| {
        let status = if problems.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        (
            status,
            whole_page(&console, &staff, &fields, &consents, &problems),
        )
            .into_response()
    };
    if fields.checked("change") {
        return back(Problems::default(), consents(&console).await);
    }
    let draft = match draft(&fields) {
        Ok(draft) => draft,
        Err(problems) => return back(problems, consents(&console).await),
    };
    if !fields.checked("confirmed") {
        return match console.app().preview(draft).await {
            Ok(disclosed) => {
                confirmation(&console, &staff, &fields, &disclosed.decisions).into_response()
            }
            Err(e) => back(place(&e), consents(&console).await),
        };
    }
    let idempotency = idempotency(&fields, &draft);
    match console
        .app()
        .submit(draft, Some(idempotency), &page::actor(&staff))
        .await
    {
        Ok(disclosed) => Redirect::to(&format!(
            "/referrals/{}?done=referral-sent",
            disclosed.referral.id
        ))
        .into_response(),
        Err(e) => back(place(&e), consents(&console).await),
    }
}

/// "Check and send": what will reach the team, once more, with the form carried along
/// unchanged, to confirm or to change.
fn confirmation(
    console: &Console,
    staff: &Staff,
    fields: &Fields,
    decisions: &[crate::filter::FieldDecision],
) -> Markup {
    let recipient = fields.get("recipient");
    let body = html! {
        p { "This is what will reach " strong { (words::team(page::team(recipient))) } ", and why the rest stays here. Nothing has been sent yet." }
        dl.facts.card {
            dt { "What you are asking for" }
            dd { (Purpose::parse(fields.get("purpose")).map_or("", words::purpose)) }
            dt { "Why the law allows it" }
            dd { (LegalBasis::parse(fields.get("legal_basis")).map_or("", words::legal_basis)) }
            @if !fields.get("case_ref").is_empty() {
                dt { "Your case number (kept here)" } dd { (fields.get("case_ref")) }
            }
        }
        h2 { "What will reach them, and why" }
        (disclosure::decisions(Some("confirm-decisions"), decisions, recipient))
        form method="post" action="/referrals" id="confirm-referral" {
            (page::csrf_field(staff))
            @for (name, value) in fields.pairs().filter(|(n, _)| !matches!(*n, "csrf" | "confirmed" | "change")) {
                input type="hidden" name=(name) value=(value);
            }
            p.actions {
                button type="submit" name="confirmed" value="yes" id="confirm-send" { "Confirm and send" }
                button.secondary type="submit" name="change" value="yes" id="change-referral" { "Change it" }
            }
        }
    };
    page::layout(console, staff, "Check and send", "/referrals/new", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Fields {
        Fields::parse(body.as_bytes())
    }

    #[test]
    fn the_form_becomes_a_draft_with_only_the_sections_filled_in() {
        let draft = draft(&form(
            "recipient=county-core&purpose=threat-assessment&legal_basis=health-safety-emergency\
             &justification=+Said+so+today+at+the+school+gate+&case_ref=&loc_scheme=CSTAG&loc_value=high\
             &identity_name=J&behavior=LEAKAGE&behavior_on_LEAKAGE=2026-11-20&behavior=FIXATION\
             &behavior_on_PATHWAY=2026-11-01&weapons_access=yes",
        ))
        .unwrap();
        assert_eq!(draft.recipient, "county-core");
        assert_eq!(draft.purpose, Purpose::ThreatAssessment);
        assert_eq!(draft.legal_basis, LegalBasis::HealthSafetyEmergency);
        assert_eq!(
            draft.justification.as_deref(),
            Some("Said so today at the school gate")
        );
        assert_eq!(draft.case_ref, None);
        assert_eq!(draft.consent_ref, None);
        assert_eq!(
            draft.level_of_concern,
            Some(LevelOfConcern {
                scheme: "CSTAG".into(),
                value: "high".into()
            })
        );
        let c = &draft.content;
        assert_eq!(c.identity.as_ref().map(|i| i.full_name.as_str()), Some("J"));
        // Only the ticked behaviours travel, in the list's order, each with its date; a date
        // beside a box not ticked is not a behaviour.
        let observed: Vec<(&str, &str)> = c
            .behavior
            .iter()
            .flat_map(|b| &b.observations)
            .map(|o| (o.code.as_str(), o.observed_on.as_str()))
            .collect();
        assert_eq!(observed, [("FIXATION", ""), ("LEAKAGE", "2026-11-20")]);
        assert!(c.threat.as_ref().is_some_and(|t| t.weapons_access));
        assert!(c.contact.is_none() && c.narrative.is_none() && c.third_parties.is_empty());
    }

    #[test]
    fn an_untouched_form_asks_for_the_choices_it_needs_and_never_for_a_field_path() {
        let problems = draft(&form("purpose=threat-assessment")).unwrap_err();
        assert_eq!(
            problems.of("recipient"),
            ["Choose the team to send this to."]
        );
        assert_eq!(
            problems.of("legal_basis"),
            ["Choose why the law allows you to share this."]
        );
        let summary = problems.summary().into_string();
        assert!(!summary.contains("referral."), "{summary}");
    }

    #[test]
    fn the_choices_that_go_together_are_checked_together() {
        let problems = draft(&form(
            "recipient=x&purpose=threat-assessment&legal_basis=consent&identity_dob=30/04/2010",
        ))
        .unwrap_err();
        assert!(!problems.of("consent_ref").is_empty());
        assert_eq!(
            problems.of("identity_dob"),
            ["Write the date of birth as year-month-day, for example 2010-04-30."]
        );
        let problems = draft(&form(
            "recipient=x&purpose=threat-assessment&legal_basis=serious-imminent-threat&justification=soon",
        ))
        .unwrap_err();
        assert!(!problems.of("justification").is_empty());
        let problems = draft(&form(
            "recipient=x&purpose=threat-assessment&legal_basis=consent&consent_ref=c1",
        ))
        .unwrap_err();
        assert!(!problems.of("subject_ref").is_empty());
    }

    #[test]
    fn a_text_over_its_limit_is_refused_beside_it_with_its_length() {
        let long = "a".repeat(MAX_REFERENCE + 1);
        let problems = draft(&form(&format!(
            "recipient=x&purpose=threat-assessment&legal_basis=de-identified&case_ref={long}"
        )))
        .unwrap_err();
        assert_eq!(
            problems.of("case_ref"),
            [format!(
                "Your case number is {} characters long; it can be at most {}. Shorten it.",
                MAX_REFERENCE + 1,
                MAX_REFERENCE
            )]
        );
    }

    #[test]
    fn the_node_s_refusals_land_beside_their_fields_in_words() {
        let subject = place(&AppError::invalid("subject_ref", "is required"));
        assert!(!subject.of("subject_ref").is_empty());
        let nothing = place(&AppError::invalid(
            "content",
            "a referral must carry at least one section",
        ));
        assert_eq!(
            nothing.of("content-start"),
            ["Fill in at least one kind of information: there is nothing to send yet."]
        );
        let policy = place(&AppError::Precondition(
            "the policy withholds every category for this recipient, so nothing would be sent; preview it to see why".into(),
        ));
        let top = policy.of(form::TOP).join(" ");
        assert!(top.contains("The preview shows why"), "{top}");
        assert!(!top.contains("dry_run"), "{top}");
    }

    #[test]
    fn the_same_form_sent_twice_has_the_same_digest_and_another_draft_another() {
        let fields = form(
            "recipient=x&purpose=threat-assessment&legal_basis=de-identified&narrative=a&idempotency_key=k",
        );
        let first = idempotency(&fields, &draft(&fields).unwrap());
        let again = idempotency(&fields, &draft(&fields).unwrap());
        assert_eq!(first.key, "k");
        assert_eq!(first.draft_digest, again.draft_digest);
        let other = form(
            "recipient=x&purpose=threat-assessment&legal_basis=de-identified&narrative=b&idempotency_key=k",
        );
        assert_ne!(
            first.draft_digest,
            idempotency(&other, &draft(&other).unwrap()).draft_digest
        );
    }
}
