//! Consents: record one (after FHIR Consent: who, which teams, which purposes, which
//! categories, until when), revoke one, and follow the retraction that revoking starts, hop
//! by hop, until every team that held a copy has acknowledged its purge.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::agency_server::Agency as _;
use time::OffsetDateTime;

use super::page::{self, Fields, request};
use super::session::Staff;
use super::{Capability, Console};
use crate::category::DataCategory;

/// `GET /consents`
pub async fn page(State(console): State<Console>, Extension(staff): Extension<Staff>) -> Response {
    if !staff.role.may(Capability::CreateReferrals) {
        return page::forbidden(&console, &staff, "read consents");
    }
    let consents = match console
        .agency()
        .list_consents(request(&staff, pb::ListConsentsRequest { limit: 500 }))
        .await
    {
        Ok(response) => response.into_inner().consents,
        Err(status) => return page::refused(&console, &staff, &status),
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
                        @let teams = c.provision.as_ref().map(|p| p.recipient_teams.iter().map(|t| page::team(t).to_owned()).collect::<Vec<_>>().join(", ")).unwrap_or_default();
                        tr data-consent-id=(c.id) {
                            td { a href=(format!("/consents/{}", c.id)) { (c.id) } }
                            td { (c.subject) }
                            td { @if c.grantor == pb::Grantor::Guardian as i32 { "guardian " (c.grantor_name) } @else { "the subject" } }
                            td { @if teams.is_empty() { "any team" } @else { (teams) } }
                            td { (page::time(c.valid_until.as_ref())) }
                            td { @if c.revoked_at.is_some() { "revoked " (page::time(c.revoked_at.as_ref())) } @else { "in force" } }
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
                option value="self" { "The subject" }
                option value="guardian" { "A parent or guardian" }
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
                @for (value, label) in [("threat-assessment", "Threat assessment"), ("threat-management", "Threat management"), ("consultation", "Consultation")] {
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
            Ok(date) => Some(crate::convert::timestamp_to_proto(
                date.with_hms(23, 59, 59)
                    .map(|t| t.assume_utc())
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            )),
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
    let categories = fields
        .all("category")
        .iter()
        .filter_map(|c| DataCategory::parse(c))
        .map(|c| crate::convert::category_to_proto(c).into())
        .collect();
    let purposes = fields
        .all("purpose")
        .iter()
        .filter_map(|p| {
            pb::Purpose::from_str_name(&format!(
                "PURPOSE_{}",
                p.to_ascii_uppercase().replace('-', "_")
            ))
        })
        .map(i32::from)
        .collect();
    let consent = pb::Consent {
        subject: fields.get("subject").into(),
        grantor: if fields.get("grantor") == "guardian" {
            pb::Grantor::Guardian
        } else {
            pb::Grantor::Self_
        }
        .into(),
        grantor_name: fields.get("grantor_name").into(),
        provision: Some(pb::Provision {
            r#type: pb::ProvisionType::Permit.into(),
            categories,
            recipient_teams: fields.all("team"),
            recipient_disciplines: vec![],
            purposes,
            provisions: vec![],
        }),
        valid_until,
        ..Default::default()
    };
    match console
        .agency()
        .record_consent(request(
            &staff,
            pb::RecordConsentRequest {
                consent: Some(consent),
            },
        ))
        .await
    {
        Ok(recorded) => {
            Redirect::to(&format!("/consents/{}", recorded.into_inner().id)).into_response()
        }
        Err(status) => page::refused(&console, &staff, &status),
    }
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
    let consent = match console
        .agency()
        .get_consent(request(
            &staff,
            pb::GetConsentRequest {
                consent_id: id.clone(),
            },
        ))
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => return page::refused(&console, &staff, &status),
    };
    let progress = if consent.revoked_at.is_some() {
        console
            .agency()
            .get_retraction(request(
                &staff,
                pb::GetRetractionRequest {
                    consent_id: id.clone(),
                },
            ))
            .await
            .ok()
            .map(|r| r.into_inner())
    } else {
        None
    };
    let body = html! {
        dl.facts.card {
            dt { "Consent" } dd.mono id="consent-id" { (consent.id) }
            dt { "Subject reference" } dd { (consent.subject) }
            dt { "Recorded" } dd { (page::time(consent.recorded_at.as_ref())) }
            dt { "Valid until" } dd { (page::time(consent.valid_until.as_ref())) }
            dt { "State" } dd id="consent-state" { @if consent.revoked_at.is_some() { "revoked " (page::time(consent.revoked_at.as_ref())) } @else { "in force" } }
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
                @if progress.complete { "Every copy known so far has been purged and acknowledged." }
                @else { "Still waiting for some teams to acknowledge their purge." }
            }
            @if progress.targets.is_empty() {
                p { "Nothing had been shared on this consent." }
            } @else {
                table id="retraction-table" {
                    thead { tr { th scope="col" { "Team" } th scope="col" { "Copy" } th scope="col" { "Reported by" } th scope="col" { "Acknowledged" } th scope="col" { "Purged" } } }
                    tbody {
                        @for t in &progress.targets {
                            @let target = t.target.clone().unwrap_or_default();
                            tr {
                                td { (page::team(&target.team)) }
                                td.mono { (target.referral_id) }
                                td { (page::team(&t.reported_by)) }
                                td { @if t.acknowledged { "yes" } @else { "not yet" } }
                                td { (page::time(t.purged_at.as_ref())) }
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
    match console
        .agency()
        .revoke_consent(request(
            &staff,
            pb::RevokeConsentRequest {
                consent_id: id.clone(),
            },
        ))
        .await
    {
        Ok(_) => Redirect::to(&format!("/consents/{id}")).into_response(),
        Err(status) => page::refused(&console, &staff, &status),
    }
}
