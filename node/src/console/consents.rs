//! Consents: record one (after FHIR Consent: who, which teams, which purposes, which
//! categories, until when), revoke one, and follow the retraction that revoking starts, hop
//! by hop, until every team that held a copy has acknowledged its purge.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use tatmx_certs::{TeamId, TeamIdentity};
use time::OffsetDateTime;

use super::Console;
use super::page::{self, Fields};
use super::session::Staff;
use crate::app::AppError;
use crate::category::DataCategory;
use crate::consent::{Consent, Grantor, Provision, ProvisionKind, Recipient};
use crate::referral::Purpose;
use crate::staff::Capability;

/// The purposes a consent may be limited to, with their labels.
const PURPOSES: [(Purpose, &str); 3] = [
    (Purpose::ThreatAssessment, "Threat assessment"),
    (Purpose::ThreatManagement, "Threat management"),
    (Purpose::Consultation, "Consultation"),
];

/// The teams a consent names, shortened to their team ids; empty means any team.
fn teams(consent: &Consent) -> String {
    consent
        .provision
        .recipients
        .iter()
        .filter_map(|r| match r {
            Recipient::Team(team) => Some(page::team(&team.uri()).to_owned()),
            Recipient::Discipline(_) => None,
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET /consents`
pub async fn page(State(console): State<Console>, Extension(staff): Extension<Staff>) -> Response {
    if !staff.role.may(Capability::CreateReferrals) {
        return page::forbidden(&console, &staff, "read consents");
    }
    let consents = match console.app().consents(500).await {
        Ok(consents) => consents,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let state = console.trust().state();
    let peers: Vec<String> = state
        .peers()
        .into_iter()
        .map(|p| p.peer.identity.uri())
        .collect();
    let body = html! {
        @if consents.is_empty() {
            p id="consents-empty" { "No consent is on file yet." }
        } @else {
            table id="consents-table" {
                thead { tr {
                    th scope="col" { "Consent" } th scope="col" { "Subject reference" } th scope="col" { "Given by" }
                    th scope="col" { "For teams" } th scope="col" { "Valid until" } th scope="col" { "State" }
                } }
                tbody {
                    @for c in &consents {
                        @let teams = teams(c);
                        tr data-consent-id=(c.id) {
                            td { a href=(format!("/consents/{}", c.id)) { (c.id) } }
                            td { (c.subject) }
                            td { @if let Grantor::Guardian { name } = &c.grantor { "guardian " (name) } @else { "the subject" } }
                            td { @if teams.is_empty() { "any team" } @else { (teams) } }
                            td { (page::time(c.valid_until)) }
                            td { @if c.revoked_at.is_some() { "revoked " (page::time(c.revoked_at)) } @else { "in force" } }
                        }
                    }
                }
            }
        }
        h2 id="record-heading" { "Record a consent" }
        form.card method="post" action="/consents" id="consent-form" {
            (page::csrf_field(&staff))
            label for="consent-subject" { "Your reference for the subject (a case or record number)" }
            input type="text" id="consent-subject" name="subject" required;
            label for="consent-grantor" { "Given by" }
            select id="consent-grantor" name="grantor" {
                option value=(<&str>::from(&Grantor::Subject)) { "The subject" }
                option value=(<&str>::from(&Grantor::Guardian { name: String::new() })) { "A parent or guardian" }
            }
            label for="consent-grantor-name" { "The guardian's name, if a guardian gave it" }
            input type="text" id="consent-grantor-name" name="grantor_name";
            fieldset {
                legend { "Teams it permits sharing with (none ticked: any team)" }
                @for (i, team) in peers.iter().enumerate() {
                    p { input type="checkbox" id=(format!("consent-team-{i}")) name="team" value=(team);
                        label.inline for=(format!("consent-team-{i}")) { (page::team(team)) } }
                }
            }
            fieldset {
                legend { "Purposes (none ticked: any purpose)" }
                @for (value, label) in PURPOSES.map(|(p, label)| (p.as_str(), label)) {
                    p { input type="checkbox" id=(format!("consent-purpose-{value}")) name="purpose" value=(value);
                        label.inline for=(format!("consent-purpose-{value}")) { (label) } }
                }
            }
            fieldset {
                legend { "Categories (none ticked: every category)" }
                @for category in DataCategory::ALL {
                    p { input type="checkbox" id=(format!("consent-category-{}", category.as_str())) name="category" value=(category.as_str());
                        label.inline for=(format!("consent-category-{}", category.as_str())) { (category.as_str()) } }
                }
            }
            label for="consent-until" { "Valid until (optional)" }
            input type="date" id="consent-until" name="valid_until";
            p { button type="submit" id="record-consent" { "Record the consent" } }
        }
    };
    page::layout(&console, &staff, "Consents", "/consents", body).into_response()
}

/// `POST /consents`
pub async fn record(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    body: Bytes,
) -> Response {
    if !staff.role.may(Capability::CreateReferrals) {
        return page::forbidden(&console, &staff, "record consents");
    }
    let fields = Fields::parse(&body);
    let valid_until = match fields.get("valid_until") {
        "" => None,
        date => match time::Date::parse(
            date,
            time::macros::format_description!("[year]-[month]-[day]"),
        ) {
            Ok(date) => Some(
                date.with_hms(23, 59, 59)
                    .map(|t| t.assume_utc())
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            ),
            Err(_) => {
                return page::error_page(
                    &console,
                    &staff,
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "The date the consent is valid until is not a date. Go back and pick one from the calendar, or leave it empty.",
                );
            }
        },
    };
    let consent = match consent(&console, &fields, valid_until) {
        Ok(consent) => consent,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    match console
        .app()
        .record_consent(consent, &page::actor(&staff))
        .await
    {
        Ok(recorded) => Redirect::to(&format!("/consents/{}", recorded.id)).into_response(),
        Err(e) => page::refused(&console, &staff, &e),
    }
}

/// The consent the form describes: a permit for the ticked teams, purposes and categories
/// (none ticked: any). Unknown purposes and categories are dropped, as the form offers none.
fn consent(
    console: &Console,
    fields: &Fields,
    valid_until: Option<OffsetDateTime>,
) -> Result<Consent, AppError> {
    let federation = console.trust().state().local.identity.federation.clone();
    let recipients = fields
        .all("team")
        .into_iter()
        .map(|team| {
            let identity = if team.starts_with("spiffe://") {
                TeamIdentity::parse_uri(&team).ok()
            } else {
                TeamId::new(team)
                    .ok()
                    .map(|t| TeamIdentity::new(federation.clone(), t))
            };
            identity.map(Recipient::Team).ok_or_else(|| {
                AppError::invalid(
                    "consent.provision.recipient_teams",
                    "not a team id or identity",
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let grantor = match fields.get("grantor").parse::<Grantor>() {
        Ok(Grantor::Guardian { .. }) => Grantor::Guardian {
            name: fields.get("grantor_name").into(),
        },
        _ => Grantor::Subject,
    };
    let now = console.now();
    Ok(Consent {
        // The node assigns the id and the time it was recorded.
        id: uuid::Uuid::nil(),
        subject: fields.get("subject").into(),
        grantor,
        provision: Provision {
            kind: ProvisionKind::Permit,
            categories: fields
                .all("category")
                .iter()
                .filter_map(|c| DataCategory::parse(c))
                .collect(),
            recipients,
            purposes: fields
                .all("purpose")
                .iter()
                .filter_map(|p| Purpose::parse(p))
                .collect(),
            provisions: Vec::new(),
        },
        valid_from: now,
        valid_until,
        revoked_at: None,
        recorded_at: now,
    })
}

/// `GET /consents/{id}`: one consent, and its retraction's progress once revoked.
pub async fn show(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> Response {
    if !staff.role.may(Capability::CreateReferrals) {
        return page::forbidden(&console, &staff, "read consents");
    }
    let id = match page::id(&id, "consent_id") {
        Ok(id) => id,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let consent = match console.app().consent(id).await {
        Ok(consent) => consent,
        Err(e) => return page::refused(&console, &staff, &e),
    };
    let progress = if consent.revoked_at.is_some() {
        console.app().retraction(id).await.ok()
    } else {
        None
    };
    let body = html! {
        dl.facts.card {
            dt { "Consent" } dd.mono id="consent-id" { (consent.id) }
            dt { "Subject reference" } dd { (consent.subject) }
            dt { "Recorded" } dd { (page::time(Some(consent.recorded_at))) }
            dt { "Valid until" } dd { (page::time(consent.valid_until)) }
            dt { "State" } dd id="consent-state" { @if consent.revoked_at.is_some() { "revoked " (page::time(consent.revoked_at)) } @else { "in force" } }
        }
        @if consent.revoked_at.is_none() {
            @if staff.role.may(Capability::DecideReferrals) {
                form method="post" action=(format!("/consents/{}/revoke", consent.id)) id="revoke-form" {
                    (page::csrf_field(&staff))
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
                table id="retraction-table" {
                    thead { tr { th scope="col" { "Team" } th scope="col" { "Copy" } th scope="col" { "Reported by" } th scope="col" { "Acknowledged" } th scope="col" { "Purged" } } }
                    tbody {
                        @for t in &progress.targets {
                            tr {
                                td { (page::team(&t.copy.team.uri())) }
                                td.mono { (t.copy.referral_id) }
                                td { (page::team(&t.reported_by)) }
                                td { @if t.acknowledged_at.is_some() { "yes" } @else { "not yet" } }
                                td { (page::time(t.purged_at)) }
                            }
                        }
                    }
                }
            }
        }
    };
    page::layout(&console, &staff, "Consent", "/consents", body).into_response()
}

/// `POST /consents/{id}/revoke`
pub async fn revoke(
    State(console): State<Console>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> Response {
    if !staff.role.may(Capability::DecideReferrals) {
        return page::forbidden(&console, &staff, "revoke a consent");
    }
    let revoked = match page::id(&id, "consent_id") {
        Ok(id) => console.app().revoke_consent(id, &page::actor(&staff)).await,
        Err(e) => Err(e),
    };
    match revoked {
        Ok(consent) => Redirect::to(&format!("/consents/{}", consent.id)).into_response(),
        Err(e) => page::refused(&console, &staff, &e),
    }
}
