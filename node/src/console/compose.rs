//! A new referral: a form by category, and beside it a live preview that runs the node's own
//! dry run (the same preview the Agency API's `SubmitReferral` with `dry_run` runs) each time
//! the form changes, and shows per category what reaches the chosen recipient and which rule
//! withholds the rest. Sending submits the same draft, with an idempotency key from the form,
//! so a double click sends once.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use sha2::{Digest, Sha256};

use super::Console;
use super::page::{self, Fields, Refusal};
use super::session::Staff;
use crate::app::{AppError, Idempotency};
use crate::consent::Consent;
use crate::referral::{
    Behavior, CriminalHistory, EducationRecord, LegalBasis, LevelOfConcern, MentalHealth,
    Narrative, NewReferral, ObservedBehavior, Purpose, ReferralContent, ReporterIdentity,
    SubjectContact, SubjectIdentity, SubstanceUse, ThirdParty, ThreatDetails,
};
use crate::staff::Capability;

/// The purposes and bases a referral may name, with their labels.
const PURPOSES: [(Purpose, &str); 2] = [
    (Purpose::ThreatAssessment, "Threat assessment"),
    (Purpose::ThreatManagement, "Threat management"),
];
const BASES: [(LegalBasis, &str); 5] = [
    (LegalBasis::Consent, "Consent (name the consent below)"),
    (
        LegalBasis::SeriousImminentThreat,
        "Serious and imminent threat (HIPAA 164.512(j))",
    ),
    (
        LegalBasis::HealthSafetyEmergency,
        "Health or safety emergency (FERPA 99.36)",
    ),
    (
        LegalBasis::LawEnforcement,
        "Between criminal-justice agencies",
    ),
    (
        LegalBasis::DeIdentified,
        "De-identified (no direct identifiers)",
    ),
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
fn form(console: &Console, staff: &Staff, fields: &Fields, consents: &[Consent]) -> Markup {
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
                    @for (value, label) in PURPOSES.map(|(p, label)| (p.as_str(), label)) {
                        option value=(value) selected[fields.get("purpose") == value] { (label) }
                    }
                }
                label for="legal_basis" { "Legal basis" }
                select id="legal_basis" name="legal_basis" {
                    @for (value, label) in BASES.map(|(b, label)| (b.as_str(), label)) {
                        option value=(value) selected[fields.get("legal_basis") == value] { (label) }
                    }
                }
                label for="consent_ref" { "Consent" }
                select id="consent_ref" name="consent_ref" {
                    option value="" { "No consent" }
                    @for c in consents.iter().filter(|c| c.revoked_at.is_none()) {
                        @let id = c.id.to_string();
                        option value=(id) selected[fields.get("consent_ref") == id] { (c.subject) " (" (id) ")" }
                    }
                }
                (area("justification", "Justification", Some("Required for the emergency and threat bases. Say why; never name the person here."), fields))
                (text("subject_ref", "Your reference for this person, as on their consent (kept here, never sent)", fields))
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
/// A recipient, purpose or basis the form does not offer is refused as the Agency API refuses
/// it, by field.
fn draft(fields: &Fields) -> Result<NewReferral, AppError> {
    let some = |values: &[&str]| values.iter().any(|v| !fields.get(v).is_empty());
    let text = |name: &str| fields.get(name).to_owned();
    let optional = |name: &str| Some(text(name)).filter(|v| !v.is_empty());
    if fields.get("recipient").is_empty() {
        return Err(AppError::invalid("referral.recipient", "is required"));
    }
    let purpose = Purpose::parse(fields.get("purpose"))
        .ok_or_else(|| AppError::invalid("referral.purpose", "is required"))?;
    let legal_basis = LegalBasis::parse(fields.get("legal_basis"))
        .ok_or_else(|| AppError::invalid("referral.legal_basis", "is required"))?;
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
        behavior: some(&["behavior"]).then(|| Behavior {
            observations: fields
                .lines("behavior")
                .into_iter()
                .map(|line| {
                    let (code, on) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                    ObservedBehavior {
                        code: code.trim().into(),
                        observed_on: on.trim().into(),
                    }
                })
                .collect(),
        }),
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
    let consents = consents(&console).await;
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
    let recipient = page::team(fields.get("recipient")).to_owned();
    let previewed = match draft(&fields) {
        Ok(draft) => console.app().preview(draft).await,
        Err(e) => Err(e),
    };
    match previewed {
        Ok(disclosed) => {
            let reaching = disclosed.referral.categories().len();
            html! {
                p id="preview-summary" {
                    (reaching) " of " (disclosed.decisions.len()) " categories would reach " strong { (recipient) } "."
                }
                (super::referral::decisions(&disclosed.decisions, &recipient))
            }
            .into_response()
        }
        Err(e) => html! {
            div.notice.warn id="preview-problem" role="status" {
                "Not ready to send: " (Refusal::of(&e).message)
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
    let sent = match draft(&fields) {
        Ok(draft) => {
            let idempotency = idempotency(&fields, &draft);
            console
                .app()
                .submit(draft, Some(idempotency), &page::actor(&staff))
                .await
        }
        Err(e) => Err(e),
    };
    match sent {
        Ok(disclosed) => {
            Redirect::to(&format!("/referrals/{}", disclosed.referral.id)).into_response()
        }
        Err(e) => {
            let consents = consents(&console).await;
            let message = format!(
                "The referral was not sent: {} Correct the form and send it again.",
                Refusal::of(&e).message
            );
            (
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                whole_page(&console, &staff, &fields, &consents, Some(&message)),
            )
                .into_response()
        }
    }
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
             &justification=+Said+so+today+&case_ref=&loc_scheme=CSTAG&loc_value=&identity_name=J\
             &behavior=LEAKAGE+2026-11-20%0D%0A%0D%0AFIXATION&weapons_access=yes",
        ))
        .unwrap();
        assert_eq!(draft.recipient, "county-core");
        assert_eq!(draft.purpose, Purpose::ThreatAssessment);
        assert_eq!(draft.legal_basis, LegalBasis::HealthSafetyEmergency);
        assert_eq!(draft.justification.as_deref(), Some("Said so today"));
        assert_eq!(draft.case_ref, None);
        assert_eq!(draft.consent_ref, None);
        assert_eq!(
            draft.level_of_concern,
            Some(LevelOfConcern {
                scheme: "CSTAG".into(),
                value: String::new()
            })
        );
        let c = &draft.content;
        assert_eq!(c.identity.as_ref().map(|i| i.full_name.as_str()), Some("J"));
        let observed: Vec<(&str, &str)> = c
            .behavior
            .iter()
            .flat_map(|b| &b.observations)
            .map(|o| (o.code.as_str(), o.observed_on.as_str()))
            .collect();
        assert_eq!(observed, [("LEAKAGE", "2026-11-20"), ("FIXATION", "")]);
        assert!(c.threat.as_ref().is_some_and(|t| t.weapons_access));
        assert!(c.contact.is_none() && c.narrative.is_none() && c.third_parties.is_empty());
    }

    #[test]
    fn a_value_the_form_never_offers_is_refused_by_field() {
        let refused = |body: &str| draft(&form(body)).unwrap_err().to_string();
        assert_eq!(
            refused("purpose=threat-assessment&legal_basis=consent"),
            "referral.recipient: is required"
        );
        assert_eq!(
            refused("recipient=x&purpose=PURPOSE_THREAT_ASSESSMENT&legal_basis=consent"),
            "referral.purpose: is required"
        );
        assert_eq!(
            refused("recipient=x&purpose=consultation&legal_basis=unspecified"),
            "referral.legal_basis: is required"
        );
    }

    #[test]
    fn the_same_form_sent_twice_has_the_same_digest_and_another_draft_another() {
        let fields = form(
            "recipient=x&purpose=threat-assessment&legal_basis=consent&narrative=a&idempotency_key=k",
        );
        let first = idempotency(&fields, &draft(&fields).unwrap());
        let again = idempotency(&fields, &draft(&fields).unwrap());
        assert_eq!(first.key, "k");
        assert_eq!(first.draft_digest, again.draft_digest);
        let other = form(
            "recipient=x&purpose=threat-assessment&legal_basis=consent&narrative=b&idempotency_key=k",
        );
        assert_ne!(
            first.draft_digest,
            idempotency(&other, &draft(&other).unwrap()).draft_digest
        );
    }
}
