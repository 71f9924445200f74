//! A new referral: a form by category, and beside it a live preview that runs the node's own
//! dry run (the Agency API's `SubmitReferral` with `dry_run`) each time the form changes, and
//! shows per category what reaches the chosen recipient and which rule withholds the rest.
//! Sending is the same call without `dry_run`, with an idempotency key from the form, so a
//! double click sends once.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::agency_server::Agency as _;

use super::page::{self, Fields, request};
use super::session::Staff;
use super::{Capability, Console};

/// The purposes and bases a referral may name, as (value, label).
const PURPOSES: [(&str, &str); 2] = [
    ("threat-assessment", "Threat assessment"),
    ("threat-management", "Threat management"),
];
const BASES: [(&str, &str); 5] = [
    ("consent", "Consent (name the consent below)"),
    (
        "serious-imminent-threat",
        "Serious and imminent threat (HIPAA 164.512(j))",
    ),
    (
        "health-safety-emergency",
        "Health or safety emergency (FERPA 99.36)",
    ),
    ("law-enforcement", "Between criminal-justice agencies"),
    ("de-identified", "De-identified (no direct identifiers)"),
];

fn text(id: &str, label: &str, fields: &Fields) -> Markup {
    html! {
        label for=(id) { (label) }
        input type="text" id=(id) name=(id) value=(fields.get(id));
    }
}

fn area(id: &str, label: &str, hint: Option<&str>, fields: &Fields) -> Markup {
    let hint_id = format!("{id}-hint");
    html! {
        label for=(id) { (label) }
        @if let Some(hint) = hint {
            p.hint id=(hint_id) { (hint) }
            textarea id=(id) name=(id) aria-describedby=(hint_id) { (fields.get(id)) }
        } @else {
            textarea id=(id) name=(id) { (fields.get(id)) }
        }
    }
}

fn check(id: &str, label: &str, fields: &Fields) -> Markup {
    html! {
        p { input type="checkbox" id=(id) name=(id) value="yes" checked[fields.checked(id)];
            label.inline for=(id) { (label) } }
    }
}

/// The form, filled from `fields` (empty for a new one).
fn form(console: &Console, staff: &Staff, fields: &Fields, consents: &[pb::Consent]) -> Markup {
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
    html! {
        form id="new-referral" method="post" action="/referrals"
            hx-post="/referrals/preview" hx-trigger="change, input delay:600ms, load"
            hx-target="#preview" hx-swap="innerHTML" {
            (page::csrf_field(staff))
            input type="hidden" name="idempotency_key" value=(key);
            fieldset {
                legend { "Who, why and on what basis" }
                label for="recipient" { "Recipient team" }
                select id="recipient" name="recipient" required {
                    option value="" { "Choose a team" }
                    @for team in &peers {
                        option value=(team) selected[fields.get("recipient") == team] { (page::team(team)) }
                    }
                }
                label for="purpose" { "Purpose" }
                select id="purpose" name="purpose" {
                    @for (value, label) in PURPOSES {
                        option value=(value) selected[fields.get("purpose") == value] { (label) }
                    }
                }
                label for="legal_basis" { "Legal basis" }
                select id="legal_basis" name="legal_basis" {
                    @for (value, label) in BASES {
                        option value=(value) selected[fields.get("legal_basis") == value] { (label) }
                    }
                }
                label for="consent_ref" { "Consent" }
                select id="consent_ref" name="consent_ref" {
                    option value="" { "No consent" }
                    @for c in consents.iter().filter(|c| c.revoked_at.is_none()) {
                        option value=(c.id) selected[fields.get("consent_ref") == c.id] { (c.subject) " (" (c.id) ")" }
                    }
                }
                (area("justification", "Justification", Some("Required for the emergency and threat bases. Say why; never name the person here."), fields))
                (text("case_ref", "Your case number (kept here, never sent)", fields))
                (text("loc_scheme", "Level of concern: scheme", fields))
                (text("loc_value", "Level of concern: value", fields))
            }
            fieldset { legend { "IDENTITY" }
                (text("identity_name", "Full name", fields))
                (text("identity_dob", "Date of birth (YYYY-MM-DD)", fields)) }
            fieldset { legend { "CONTACT" }
                (text("contact_address", "Address", fields))
                (text("contact_phone", "Phone", fields))
                (text("contact_email", "Email", fields)) }
            fieldset { legend { "BEHAVIOR" }
                (area("behavior", "Observed behaviours", Some("One per line: a code, a space, and the date, such as LEAKAGE 2026-11-20."), fields)) }
            fieldset { legend { "THREAT" }
                (text("threat_type", "Threat type", fields))
                (text("target_type", "Target type", fields))
                (text("grievance_code", "Grievance code", fields))
                (check("weapons_access", "Has access to weapons", fields)) }
            fieldset { legend { "NARRATIVE" }
                (area("narrative", "Narrative", None, fields)) }
            fieldset { legend { "MENTAL_HEALTH" }
                (area("mh_diagnoses", "Diagnoses", Some("One per line."), fields))
                (text("mh_treatment", "Treatment", fields)) }
            fieldset { legend { "SUBSTANCE_USE" }
                (text("su_record", "Treatment record", fields)) }
            fieldset { legend { "EDUCATION_RECORD" }
                (text("edu_school", "School", fields))
                (text("edu_grade", "Grade", fields))
                (check("edu_iep", "Has an IEP or 504 plan", fields))
                (area("edu_discipline", "Discipline", Some("One per line."), fields)) }
            fieldset { legend { "CRIMINAL_HISTORY" }
                (area("crim_arrests", "Arrests", Some("One per line."), fields))
                (area("crim_orders", "Protective orders", Some("One per line."), fields))
                (area("crim_firearms", "Firearm records", Some("One per line."), fields)) }
            fieldset { legend { "REPORTER_IDENTITY" }
                (text("reporter_name", "Who reported", fields))
                (text("reporter_relationship", "Their relationship to the subject", fields))
                (text("reporter_contact", "How to reach them", fields)) }
            fieldset { legend { "THIRD_PARTY" }
                (text("third_name", "Name of a target or witness", fields))
                (text("third_role", "Their role (target, witness)", fields)) }
            p { button type="submit" id="send-referral" { "Send the referral" } }
        }
    }
}

/// The draft the form describes; a section is present only when one of its fields is filled.
fn draft(fields: &Fields) -> pb::NewReferral {
    let some = |values: &[&str]| values.iter().any(|v| !fields.get(v).is_empty());
    let word = |name: &str, prefix: &str| -> String {
        format!(
            "{prefix}{}",
            fields.get(name).to_ascii_uppercase().replace('-', "_")
        )
    };
    let content = pb::ReferralContent {
        identity: some(&["identity_name", "identity_dob"]).then(|| pb::SubjectIdentity {
            full_name: fields.get("identity_name").into(),
            date_of_birth: fields.get("identity_dob").into(),
            identifiers: vec![],
        }),
        contact: some(&["contact_address", "contact_phone", "contact_email"]).then(|| {
            pb::SubjectContact {
                address: fields.get("contact_address").into(),
                phone: fields.get("contact_phone").into(),
                email: fields.get("contact_email").into(),
            }
        }),
        behavior: some(&["behavior"]).then(|| pb::Behavior {
            observations: fields
                .lines("behavior")
                .into_iter()
                .map(|line| {
                    let (code, on) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                    pb::ObservedBehavior {
                        code: code.trim().into(),
                        observed_on: on.trim().into(),
                    }
                })
                .collect(),
        }),
        threat: (some(&["threat_type", "target_type", "grievance_code"])
            || fields.checked("weapons_access"))
        .then(|| pb::ThreatDetails {
            threat_type: fields.get("threat_type").into(),
            target_type: fields.get("target_type").into(),
            weapons_access: fields.checked("weapons_access"),
            grievance_code: fields.get("grievance_code").into(),
        }),
        narrative: some(&["narrative"]).then(|| pb::Narrative {
            text: fields.get("narrative").into(),
        }),
        mental_health: some(&["mh_diagnoses", "mh_treatment"]).then(|| pb::MentalHealth {
            diagnoses: fields.lines("mh_diagnoses"),
            treatment: fields.get("mh_treatment").into(),
        }),
        substance_use: some(&["su_record"]).then(|| pb::SubstanceUse {
            treatment_record: fields.get("su_record").into(),
        }),
        education_record: (some(&["edu_school", "edu_grade", "edu_discipline"])
            || fields.checked("edu_iep"))
        .then(|| pb::EducationRecord {
            school: fields.get("edu_school").into(),
            grade: fields.get("edu_grade").into(),
            iep_or_504: fields.checked("edu_iep"),
            discipline: fields.lines("edu_discipline"),
        }),
        criminal_history: some(&["crim_arrests", "crim_orders", "crim_firearms"]).then(|| {
            pb::CriminalHistory {
                arrests: fields.lines("crim_arrests"),
                protective_orders: fields.lines("crim_orders"),
                firearm_records: fields.lines("crim_firearms"),
            }
        }),
        reporter: some(&["reporter_name", "reporter_relationship", "reporter_contact"]).then(
            || pb::ReporterIdentity {
                name: fields.get("reporter_name").into(),
                relationship: fields.get("reporter_relationship").into(),
                contact: fields.get("reporter_contact").into(),
            },
        ),
        third_parties: if some(&["third_name", "third_role"]) {
            vec![pb::ThirdParty {
                name: fields.get("third_name").into(),
                role: fields.get("third_role").into(),
            }]
        } else {
            vec![]
        },
    };
    pb::NewReferral {
        recipient: fields.get("recipient").into(),
        purpose: pb::Purpose::from_str_name(&word("purpose", "PURPOSE_"))
            .unwrap_or(pb::Purpose::Unspecified)
            .into(),
        level_of_concern: some(&["loc_scheme", "loc_value"]).then(|| pb::LevelOfConcern {
            scheme: fields.get("loc_scheme").into(),
            value: fields.get("loc_value").into(),
        }),
        legal_basis: pb::LegalBasis::from_str_name(&word("legal_basis", "LEGAL_BASIS_"))
            .unwrap_or(pb::LegalBasis::Unspecified)
            .into(),
        justification: fields.get("justification").into(),
        consent_ref: fields.get("consent_ref").into(),
        content: Some(content),
        case_ref: fields.get("case_ref").into(),
        reidentify: false,
    }
}

async fn consents(console: &Console, staff: &Staff) -> Vec<pb::Consent> {
    console
        .agency()
        .list_consents(request(staff, pb::ListConsentsRequest { limit: 200 }))
        .await
        .map(|r| r.into_inner().consents)
        .unwrap_or_default()
}

fn whole_page(
    console: &Console,
    staff: &Staff,
    fields: &Fields,
    consents: &[pb::Consent],
    message: Option<&str>,
) -> Markup {
    let body = html! {
        @if let Some(message) = message { (page::notice("error", message)) }
        p { "Fill in only what the recipient needs. The preview beside the form shows, as you type, what the law and your policy let reach the chosen team, and why the rest stays here." }
        div.compose {
            div { (form(console, staff, fields, consents)) }
            aside aria-labelledby="preview-heading" {
                h2 id="preview-heading" { "What will be sent" }
                div id="preview" aria-live="polite" {
                    p { "Choose a recipient and fill in the form; the preview appears here." }
                }
            }
        }
    };
    page::layout(console, staff, "New referral", "/referrals/new", body)
}

/// `GET /referrals/new`
pub async fn page(State(console): State<Console>, Extension(staff): Extension<Staff>) -> Response {
    if !staff.role.may(Capability::CreateReferrals) {
        return page::forbidden(&console, &staff, "create referrals");
    }
    let consents = consents(&console, &staff).await;
    whole_page(&console, &staff, &Fields::default(), &consents, None).into_response()
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
        return html! { p id="preview-waiting" { "Choose a recipient team to see what would reach it." } }
            .into_response();
    }
    let draft = draft(&fields);
    let recipient = page::team(&draft.recipient).to_owned();
    let dry_run = pb::SubmitReferralRequest {
        referral: Some(draft),
        dry_run: true,
        idempotency_key: String::new(),
    };
    match console
        .agency()
        .submit_referral(request(&staff, dry_run))
        .await
    {
        Ok(response) => {
            let response = response.into_inner();
            let reaching = response.categories_disclosed.len();
            html! {
                p id="preview-summary" {
                    (reaching) " of " (response.decisions.len()) " categories would reach " strong { (recipient) } "."
                }
                (super::referral::decisions(&response.decisions, &recipient))
            }
            .into_response()
        }
        Err(status) => html! {
            div.notice.warn id="preview-problem" role="status" {
                "Not ready to send: " (page::sentence(status.message()))
            }
        }
        .into_response(),
    }
}

/// `POST /referrals`: sends it, and shows the referral as sent.
pub async fn submit(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::CreateReferrals) {
        return page::forbidden(&console, &staff, "create referrals");
    }
    let fields = Fields::parse(&body);
    let send = pb::SubmitReferralRequest {
        referral: Some(draft(&fields)),
        dry_run: false,
        idempotency_key: fields.get("idempotency_key").into(),
    };
    match console
        .agency()
        .submit_referral(request(&staff, send))
        .await
    {
        Ok(response) => Redirect::to(&format!("/referrals/{}", response.into_inner().referral_id))
            .into_response(),
        Err(status) => {
            let consents = consents(&console, &staff).await;
            let message = format!(
                "The referral was not sent: {} Correct the form and send it again.",
                page::sentence(status.message())
            );
            (
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                whole_page(&console, &staff, &fields, &consents, Some(&message)),
            )
                .into_response()
        }
    }
}
