//! The row codec: reading stored rows back into domain types, and the stored form of values
//! (times in milliseconds, purposes by name, decisions as JSON). A row that cannot be read is
//! [`StoreError::Corrupt`], naming the table, the row and what was wrong, never the content.

use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;
use tatmx_certs::TeamIdentity;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    DeliveryState, Direction, DueMessage, MessageKind, OutboxEntry, StoreError, StoredReferral,
};
use crate::category::DataCategory;
use crate::consent::Consent;
use crate::filter::{FieldDecision, Outcome};
use crate::referral::{Purpose, Referral, ReferralStatus};
use crate::retraction::{Copy, PurgeCause, Tombstone};
use crate::{vault, wire};

pub(super) fn ms(at: OffsetDateTime) -> i64 {
    // Milliseconds since 1970 fit an i64 for the next 290 million years.
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(super) fn from_ms(value: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(value) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(super) fn digest(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

pub(super) fn categories_text(referral: &Referral) -> String {
    referral
        .categories()
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads one outbox row, opening its body if it is sealed.
pub(super) fn due_message(row: &AnyRow) -> Result<DueMessage, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let corrupt = |problem: &str| StoreError::Corrupt {
        table: "outbox",
        id: seq.to_string(),
        problem: problem.to_owned(),
    };
    let message_id: String = row.try_get("message_id")?;
    let kind: String = row.try_get("kind")?;
    let referral_id: String = row.try_get("referral_id")?;
    let body: Vec<u8> = row.try_get("body")?;
    let body = match row.try_get::<Option<Vec<u8>>, _>("sealing_key")? {
        Some(key) => vault::open(&key, &format!("outbox/{message_id}"), &body)?,
        None => body,
    };
    Ok(DueMessage {
        seq,
        message_id: Uuid::parse_str(&message_id).map_err(|_| corrupt("message id"))?,
        kind: MessageKind::parse(&kind).ok_or_else(|| corrupt("kind"))?,
        referral_id: Uuid::parse_str(&referral_id).map_err(|_| corrupt("referral id"))?,
        peer: row.try_get("peer")?,
        created_at: from_ms(row.try_get("created_at")?),
        body,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        next_attempt_at: from_ms(row.try_get("next_attempt_at")?),
        age_from: from_ms(row.try_get("age_from")?),
        lease: match (
            row.try_get::<Option<String>, _>("lease_owner")?,
            row.try_get::<Option<i64>, _>("lease_until")?,
        ) {
            (Some(owner), Some(until)) => Some((owner, from_ms(until))),
            _ => None,
        },
    })
}

pub(super) fn stored_status(row: &AnyRow, id: Uuid) -> Result<ReferralStatus, StoreError> {
    let status: String = row.try_get("status")?;
    ReferralStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
        table: "referrals",
        id: id.to_string(),
        problem: "unknown status".into(),
    })
}

pub(super) fn stored_referral(row: &AnyRow) -> Result<StoredReferral, StoreError> {
    let id: String = row.try_get("id")?;
    let corrupt = |problem: String| StoreError::Corrupt {
        table: "referrals",
        id: id.clone(),
        problem,
    };
    let body: Vec<u8> = row.try_get("body")?;
    let body = match row.try_get::<Option<String>, _>("data_key")? {
        Some(_) => {
            let key: Option<Vec<u8>> = row.try_get("sealing_key")?;
            let key = key.ok_or_else(|| corrupt("its data key is gone".into()))?;
            vault::open(&key, &format!("referrals/{id}"), &body)?
        }
        None => body,
    };
    let referral = wire::decode_referral(&body).map_err(|e| corrupt(e.to_string()))?;
    let direction = match row.try_get::<String, _>("direction")?.as_str() {
        "outbound" => Direction::Outbound,
        "inbound" => Direction::Inbound,
        _ => return Err(corrupt("unknown direction".into())),
    };
    let status: String = row.try_get("status")?;
    let decisions = decisions_from_json(&row.try_get::<String, _>("decisions")?)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(StoredReferral {
        decisions,
        referral,
        direction,
        status: ReferralStatus::parse(&status).ok_or_else(|| corrupt("unknown status".into()))?,
        recorded_at: from_ms(row.try_get("recorded_at")?),
        retain_until: row.try_get::<Option<i64>, _>("retain_until")?.map(from_ms),
    })
}

pub(super) fn outbox_entry(row: &AnyRow) -> Result<OutboxEntry, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let corrupt = |problem: &str| StoreError::Corrupt {
        table: "outbox",
        id: seq.to_string(),
        problem: problem.to_owned(),
    };
    let uuid = |column: &str| -> Result<Uuid, StoreError> {
        let text: String = row.try_get(column)?;
        Uuid::parse_str(&text).map_err(|_| corrupt(column))
    };
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    Ok(OutboxEntry {
        seq,
        message_id: uuid("message_id")?,
        kind: MessageKind::parse(&kind).ok_or_else(|| corrupt("kind"))?,
        referral_id: uuid("referral_id")?,
        peer: row.try_get("peer")?,
        state: DeliveryState::parse(&state).ok_or_else(|| corrupt("state"))?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        created_at: from_ms(row.try_get("created_at")?),
        next_attempt_at: from_ms(row.try_get("next_attempt_at")?),
        delivered_at: row.try_get::<Option<i64>, _>("delivered_at")?.map(from_ms),
        last_error: row.try_get("last_error")?,
    })
}

pub(super) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(super) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The stored form of one filter decision.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredDecision {
    category: String,
    outcome: String,
    rules: Vec<String>,
    reasons: Vec<String>,
    labels: Vec<String>,
}

pub(super) fn decisions_json(decisions: &[FieldDecision]) -> String {
    let stored: Vec<StoredDecision> = decisions
        .iter()
        .map(|d| StoredDecision {
            category: d.category.as_str().to_owned(),
            outcome: d.outcome.as_str().to_owned(),
            rules: d.rules.clone(),
            reasons: d.reasons.clone(),
            labels: d.labels.clone(),
        })
        .collect();
    // Serialising plain strings cannot fail.
    serde_json::to_string(&stored).unwrap_or_else(|_| "[]".into())
}

pub(super) fn decisions_from_json(json: &str) -> Result<Vec<FieldDecision>, String> {
    let stored: Vec<StoredDecision> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    stored
        .into_iter()
        .map(|d| {
            Ok(FieldDecision {
                category: DataCategory::parse(&d.category).ok_or("unknown category")?,
                outcome: Outcome::parse(&d.outcome).ok_or("unknown outcome")?,
                rules: d.rules,
                reasons: d.reasons,
                labels: d.labels,
            })
        })
        .collect()
}

pub(super) fn identity_column(
    row: &AnyRow,
    column: &'static str,
) -> Result<TeamIdentity, StoreError> {
    let text: String = row.try_get(column)?;
    TeamIdentity::parse_uri(&text).map_err(|_| StoreError::Corrupt {
        table: "retraction",
        id: text.clone(),
        problem: format!("{column} is not a team identity"),
    })
}

/// A copy named by a row's `referral_id` (or `id`) and a team column.
pub(super) fn copy_of(row: &AnyRow, team: &'static str) -> Result<Copy, StoreError> {
    let id: String = row.try_get("referral_id").or_else(|_| row.try_get("id"))?;
    Ok(Copy {
        team: identity_column(row, team)?,
        referral_id: Uuid::parse_str(&id).map_err(|_| StoreError::Corrupt {
            table: "retraction",
            id: id.clone(),
            problem: "referral id".into(),
        })?,
    })
}

pub(super) fn tombstone_row(row: &AnyRow) -> Result<Tombstone, StoreError> {
    let id: String = row.try_get("referral_id")?;
    let corrupt = |problem: &str| StoreError::Corrupt {
        table: "tombstones",
        id: id.clone(),
        problem: problem.to_owned(),
    };
    let categories: String = row.try_get("categories")?;
    let cause: String = row.try_get("cause")?;
    Ok(Tombstone {
        referral_id: Uuid::parse_str(&id).map_err(|_| corrupt("referral id"))?,
        inbound: row.try_get::<String, _>("direction")? == "inbound",
        sender: row.try_get("sender")?,
        recipient: row.try_get("recipient")?,
        purpose: purpose_from_name(&row.try_get::<String, _>("purpose")?),
        categories: categories
            .split(',')
            .filter_map(DataCategory::parse)
            .collect(),
        recorded_at: from_ms(row.try_get("recorded_at")?),
        purged_at: from_ms(row.try_get("purged_at")?),
        cause: PurgeCause::parse(&cause).ok_or_else(|| corrupt("cause"))?,
        retraction_id: row
            .try_get::<Option<String>, _>("retraction_id")?
            .and_then(|r| Uuid::parse_str(&r).ok()),
    })
}

/// The stored name of a purpose; the form the first schema used.
pub(super) fn purpose_name(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::ThreatAssessment => "ThreatAssessment",
        Purpose::ThreatManagement => "ThreatManagement",
        Purpose::Consultation => "Consultation",
    }
}

pub(super) fn purpose_from_name(name: &str) -> Option<Purpose> {
    [
        Purpose::ThreatAssessment,
        Purpose::ThreatManagement,
        Purpose::Consultation,
    ]
    .into_iter()
    .find(|p| purpose_name(*p) == name)
}

pub(super) fn consent_row(
    row: &AnyRow,
    federation: &tatmx_certs::FederationId,
) -> Result<Consent, StoreError> {
    let id: String = row.try_get("id")?;
    let body: Vec<u8> = row.try_get("body")?;
    let corrupt = |problem: String| StoreError::Corrupt {
        table: "consents",
        id: id.clone(),
        problem,
    };
    let mut consent =
        wire::decode_consent(&body, federation).map_err(|e| corrupt(e.to_string()))?;
    consent.revoked_at = row.try_get::<Option<i64>, _>("revoked_at")?.map(from_ms);
    Ok(consent)
}
