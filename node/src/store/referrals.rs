//! Referrals' SQL: a submission stored with its queued delivery, a received referral with its
//! acknowledgement, status changes from either party with the lifecycle checked against the
//! stored status, and the inbox, one referral's timeline, and consultations for staff.

use sqlx::Row;
use tatmx_certs::TeamIdentity;
use time::OffsetDateTime;
use uuid::Uuid;

use super::codec::{
    categories_text, decisions_json, digest, from_ms, ms, purpose_name, stored_referral,
    stored_status,
};
use super::notifications;
use super::outbox::enqueue;
use super::{
    Direction, Inbound, MessageKind, Sealing, Store, StoreError, Tx, audit_log, check_replay,
    proofs, record_received,
};
use crate::actor::Actor;
use crate::audit;
use crate::category::DataCategory;
use crate::filter::{Disclosure, FieldDecision};
use crate::lifecycle::{self, Side, TransitionError};
use crate::notification::Event;
use crate::received::Received;
use crate::referral::{
    AssessmentOutcome, LegalBasis, ReasonCode, Referral, ReferralStatus, StatusUpdate,
};
use crate::{vault, wire};

/// A referral as stored here, decoded.
#[derive(Debug, Clone)]
pub struct StoredReferral {
    /// For a sent referral, the filter's decisions; empty for a received one.
    pub decisions: Vec<FieldDecision>,
    /// The referral.
    pub referral: Referral,
    /// Sent or received.
    pub direction: Direction,
    /// Its current status as this node knows it.
    pub status: ReferralStatus,
    /// When this node stored it.
    pub recorded_at: OffsetDateTime,
    /// For a received referral: when retention purges it.
    pub retain_until: Option<OffsetDateTime>,
}

/// One step of a referral's timeline.
#[derive(Debug, Clone)]
pub struct StatusEvent {
    /// The status reached.
    pub status: ReferralStatus,
    /// When.
    pub at: OffsetDateTime,
    /// Who caused it, as an identity URI.
    pub actor: String,
    /// Why, in words, when they were given (and not withheld).
    pub reason: Option<String>,
    /// Why, as a code: there for every decline and cancellation.
    pub reason_code: Option<ReasonCode>,
    /// What the filter kept back of this change, by category.
    pub withheld: Vec<DataCategory>,
    /// A completed assessment's outcome.
    pub outcome: Option<AssessmentOutcome>,
    /// For a forward: the team it went to, as an identity URI.
    pub forwarded_to: Option<String>,
}

/// Who submitted a referral, and what makes the submission itself recognisable.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    /// For a forward: the received referral it was made from.
    pub forwarded_from: Option<Uuid>,
    /// The agency's own reference for the subject.
    pub subject: Option<&'a str>,
    /// Who submitted it.
    pub actor: &'a Actor,
    /// The client's idempotency key, and the digest of the draft it came with.
    pub idempotency: Option<(&'a str, &'a str)>,
    /// This team's own references for the case (its case number, its reference for the
    /// person): stored sealed beside the referral, never sent.
    pub references: Option<&'a super::IndexedReferences>,
}

/// What a submission did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// Stored and queued now.
    New,
    /// The same key and draft were submitted before, as this referral; nothing was stored.
    Earlier(Uuid),
    /// The key was used before for another draft; nothing was stored.
    KeyReused,
}

impl Store {
    /// Stores a referral this node is sending (exactly what leaves) with the filter's decisions,
    /// and queues it for delivery, atomically. A forward names the received referral it was
    /// made from, and is sealed under that referral's data key, so purging one purges both.
    /// A submission whose idempotency key was seen before stores nothing and names the earlier
    /// referral.
    pub async fn submit_referral(
        &self,
        disclosure: &Disclosure,
        submission: &Submission<'_>,
    ) -> Result<Submitted, StoreError> {
        let mut tx = self.write().await?;
        let submitted = submit_in(&mut tx, disclosure, submission, self.clock.now()).await?;
        if submitted == Submitted::New {
            tx.commit().await?;
        }
        Ok(submitted)
    }

    /// Stores every copy of a consultation and queues each to its partner, in one transaction:
    /// all of them or, if any write fails, none.
    pub async fn submit_consultation(
        &self,
        copies: &[(&Disclosure, Submission<'_>)],
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut tx = self.write().await?;
        for (disclosure, submission) in copies {
            let submission = Submission {
                idempotency: None,
                ..*submission
            };
            submit_in(&mut tx, disclosure, &submission, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a forward and queues it, and records the notice to the original sender that its
    /// referral was forwarded (`notice`, with the sender to queue it to, when that team is
    /// still a peer), in one transaction. The notice's lifecycle is checked first; if it may
    /// not be made, nothing is stored.
    pub async fn forward(
        &self,
        disclosure: &Disclosure,
        submission: &Submission<'_>,
        notice: Option<(&StatusUpdate, &TeamIdentity)>,
    ) -> Result<Result<(), TransitionError>, StoreError> {
        let mut tx = self.write().await?;
        if let Some((update, original_sender)) = notice
            && let Err(e) = change_status_in(
                &mut tx,
                update,
                Side::Recipient,
                original_sender,
                submission.actor,
            )
            .await?
        {
            return Ok(Err(e));
        }
        let submission = Submission {
            idempotency: None,
            ..*submission
        };
        submit_in(&mut tx, disclosure, &submission, self.clock.now()).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Stores a referral delivered by its sender, as the exact bytes it sent, sealed under a
    /// new data key and kept until `retain_until`, with its proof, and queues `ack`, the
    /// `received` acknowledgement, back to the sender, atomically. Protocol version 2 has no
    /// `ack`: its receipt is the acknowledgement. A redelivery changes nothing, even after the
    /// referral was purged. Only a [`Received`] is taken: its sender and signature were
    /// checked.
    pub async fn receive_referral(
        &self,
        received: &Received<Referral>,
        ack: Option<&StatusUpdate>,
        retain_until: OffsetDateTime,
    ) -> Result<Inbound, StoreError> {
        let proof = received.proof();
        let referral = received.message();
        let body = received.wire();
        let digest = digest(body);
        let now = self.clock.now();
        let mut tx = self.write().await?;
        if let Some(outcome) = check_replay(&mut tx, referral.id, &digest).await? {
            return Ok(outcome);
        }
        record_received(
            &mut tx,
            referral.id,
            MessageKind::Referral,
            &referral.sender,
            &digest,
            now,
        )
        .await?;
        let sealing = Sealing {
            key_id: referral.id.to_string(),
            key: vault::new_key()?,
        };
        sqlx::query("INSERT INTO data_keys (id, key, created_at) VALUES ($1, $2, $3)")
            .bind(&sealing.key_id)
            .bind(&sealing.key)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        insert_referral(
            &mut tx,
            referral,
            Direction::Inbound,
            ReferralStatus::Received,
            body,
            now,
            &RowExtras {
                sealing: Some(&sealing),
                forwarded_from: None,
                retain_until: Some(retain_until),
            },
        )
        .await?;
        insert_event(
            &mut tx,
            referral.id,
            ReferralStatus::Received,
            &referral.recipient,
            now,
        )
        .await?;
        if let Some(ack) = ack {
            let ack_body = wire::encode_status_update(ack);
            enqueue(
                &mut tx,
                ack.id,
                MessageKind::StatusUpdate,
                referral.id,
                &referral.sender,
                &ack_body,
                now,
                None,
            )
            .await?;
        }
        proofs::put(&mut tx, proof, "received").await?;
        audit_log::append(
            &mut tx,
            &audit::receipt(referral, &hex::encode(&proof.digest)),
        )
        .await?;
        notifications::record(
            &mut tx,
            Event::ReferralReceived,
            referral.id,
            &referral.sender.uri(),
            referral.id,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Inbound::Stored)
    }

    /// Applies a status update from the other party of a referral: the recipient of one this
    /// node sent, or the sender of one it received, the [`Received`]'s checked sender. The
    /// lifecycle is checked inside the transaction, against the status as stored.
    pub async fn receive_status_update(
        &self,
        update: &Received<StatusUpdate>,
    ) -> Result<Result<Inbound, TransitionError>, StoreError> {
        let (from, proof) = (update.sender(), update.proof());
        let digest = digest(update.wire());
        let update = update.message();
        let now = self.clock.now();
        let mut tx = self.write().await?;
        if let Some(outcome) = check_replay(&mut tx, update.id, &digest).await? {
            return Ok(Ok(outcome));
        }
        let row = sqlx::query(
            "SELECT direction, status, consultation_id, subject FROM referrals WHERE id = $1
               AND ((direction = 'outbound' AND recipient = $2) OR (direction = 'inbound' AND sender = $3))",
        )
        .bind(update.referral_id.to_string())
        .bind(from.uri())
        .bind(from.uri())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Ok(Inbound::UnknownReferral));
        };
        // The author is the other party: the recipient of our outbound referral, or the sender
        // of one we received.
        let side = match row.try_get::<String, _>("direction")?.as_str() {
            "outbound" => Side::Recipient,
            _ => Side::Sender,
        };
        if let Err(e) = apply_from_other_party(&mut tx, &row, update, side, from).await? {
            return Ok(Err(e));
        }
        record_received(
            &mut tx,
            update.id,
            MessageKind::StatusUpdate,
            from,
            &digest,
            now,
        )
        .await?;
        proofs::put(&mut tx, proof, "received").await?;
        // The other team's acknowledgement that it received a referral is automatic, not news:
        // what it decides next is.
        if update.status != ReferralStatus::Received {
            notifications::record(
                &mut tx,
                Event::Status(update.status),
                update.referral_id,
                &from.uri(),
                update.id,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(Inbound::Stored))
    }

    /// Applies a status change made by this node's staff and queues it to the other party, in
    /// one transaction; the lifecycle is checked against the status as stored.
    pub async fn change_status(
        &self,
        update: &StatusUpdate,
        side: Side,
        other_party: &TeamIdentity,
        actor: &Actor,
    ) -> Result<Result<(), TransitionError>, StoreError> {
        let mut tx = self.write().await?;
        let changed = change_status_in(&mut tx, update, side, other_party, actor).await?;
        if changed.is_ok() {
            tx.commit().await?;
        }
        Ok(changed)
    }

    /// Received referrals: those with urgent case messages staff have not read first, then the
    /// newest first.
    pub async fn inbox(&self, limit: u32) -> Result<Vec<StoredReferral>, StoreError> {
        inbox_in(&mut *self.pool.acquire().await?, limit).await
    }
}

/// Records, at the sender, that a referral's recipient received it, as the recipient's
/// signed receipt says (protocol version 2): what version 1 learned from the recipient's
/// own `received` status update. Called in the transaction that marks the referral
/// delivered; a receipt for a referral already past `received` (a redelivery's), or no
/// longer held, changes nothing.
pub(super) async fn received_by_receipt(
    tx: &mut Tx,
    referral_id: Uuid,
    recipient: &TeamIdentity,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    let row = sqlx::query(
        "SELECT direction, status, consultation_id, subject FROM referrals
         WHERE id = $1 AND direction = 'outbound' AND recipient = $2",
    )
    .bind(referral_id.to_string())
    .bind(recipient.uri())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(()) };
    let update = StatusUpdate {
        id: Uuid::now_v7(),
        referral_id,
        author: recipient.clone(),
        status: ReferralStatus::Received,
        at,
        reason: None,
        reason_code: None,
        outcome: None,
        withheld: Vec::new(),
        forwarded_to: None,
    };
    // A lifecycle that has moved past `received` (the receipt of a redelivery) is not an
    // error here: the status it would record is already behind the referral.
    let _already_past =
        apply_from_other_party(tx, &row, &update, Side::Recipient, recipient).await?;
    Ok(())
}

/// Applies `update`, authored by `from`, the referral's other party (on `side`), to the
/// referral `row` was read from (its `direction`, `status`, `consultation_id` and `subject`):
/// the lifecycle is checked against the status as stored, then the status is written, sealed
/// as the referral is, with its audit entry. Whether it came as a status update (protocol
/// version 1's, and every change after `received`) or as a receipt, it is recorded alike.
async fn apply_from_other_party(
    tx: &mut Tx,
    row: &sqlx::any::AnyRow,
    update: &StatusUpdate,
    side: Side,
    from: &TeamIdentity,
) -> Result<Result<(), TransitionError>, StoreError> {
    let current = stored_status(row, update.referral_id)?;
    let consultation = row
        .try_get::<Option<String>, _>("consultation_id")?
        .is_some();
    if let Err(e) = lifecycle::check(current, update, side, consultation) {
        return Ok(Err(e));
    }
    let sealing = sealing_of(tx, update.referral_id).await?;
    insert_status(
        tx,
        update,
        lifecycle::moves_status(current, update.status),
        sealing.as_ref(),
    )
    .await?;
    let subject: Option<String> = row.try_get("subject")?;
    audit_log::append(
        tx,
        &audit::status_change(
            update,
            false,
            &from.uri(),
            subject.as_deref(),
            &Actor::team(from.clone()),
        ),
    )
    .await?;
    Ok(Ok(()))
}

/// [`Store::inbox`] on `connection`, so that a caller can read it inside a snapshot.
pub(super) async fn inbox_in(
    connection: &mut sqlx::AnyConnection,
    limit: u32,
) -> Result<Vec<StoredReferral>, StoreError> {
    let rows = sqlx::query(&format!(
        "{REFERRAL_COLUMNS} WHERE r.direction = 'inbound'
         ORDER BY CASE WHEN EXISTS (SELECT 1 FROM case_messages m
                                    WHERE m.referral_id = r.id AND m.direction = 'inbound'
                                      AND m.urgent = 1 AND m.seen_at IS NULL)
                  THEN 0 ELSE 1 END,
                  r.recorded_at DESC, r.id DESC LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(&mut *connection)
    .await?;
    rows.iter().map(stored_referral).collect()
}

impl Store {
    /// One referral, sent or received, with its timeline.
    pub async fn referral(
        &self,
        id: Uuid,
    ) -> Result<Option<(StoredReferral, Vec<StatusEvent>)>, StoreError> {
        let Some(row) = sqlx::query(&format!("{REFERRAL_COLUMNS} WHERE r.id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let stored = stored_referral(&row)?;
        let events = sqlx::query(
            "SELECT e.status, e.at, e.actor, e.reason, e.outcome, e.forwarded_to, e.reason_code,
                    e.withheld, e.reason_sealed, e.outcome_sealed, k.key AS sealing_key
             FROM status_events e
             LEFT JOIN referrals r ON r.id = e.referral_id
             LEFT JOIN data_keys k ON k.id = r.data_key
             WHERE e.referral_id = $1 ORDER BY e.seq",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| status_event(row, id))
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some((stored, events)))
    }
}

impl Store {
    /// Every partner's copy of consultations this node asked for, grouped by consultation id,
    /// newest first.
    pub async fn consultations(
        &self,
        only: Option<Uuid>,
    ) -> Result<Vec<(Uuid, Vec<(StoredReferral, Vec<StatusEvent>)>)>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT consultation_id FROM referrals
             WHERE direction = 'outbound' AND consultation_id IS NOT NULL
               AND ($1 IS NULL OR consultation_id = $2)
             GROUP BY consultation_id ORDER BY MAX(recorded_at) DESC LIMIT 1000",
        )
        .bind(only.map(|u| u.to_string()))
        .bind(only.map(|u| u.to_string()))
        .fetch_all(&self.pool)
        .await?;
        let mut grouped = Vec::new();
        for id in ids {
            let referral_ids: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM referrals WHERE direction = 'outbound' AND consultation_id = $1
                 ORDER BY recipient",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await?;
            let mut copies = Vec::new();
            for referral_id in referral_ids {
                let Ok(uuid) = Uuid::parse_str(&referral_id) else {
                    continue;
                };
                if let Some(copy) = self.referral(uuid).await? {
                    copies.push(copy);
                }
            }
            if let Ok(uuid) = Uuid::parse_str(&id) {
                grouped.push((uuid, copies));
            }
        }
        Ok(grouped)
    }

    /// How many referrals are stored, by direction; for tests and status.
    pub async fn count_referrals(&self, direction: Direction) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM referrals WHERE direction = $1")
                .bind(direction.as_str())
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// Records a status change: the event, and (when `moves`) the referral's current status.
/// Records a status event. With `sealing` (the referral's data key: a received referral), its
/// free text and outcome are kept only sealed under that key, so purging the key shreds them;
/// the code, the status and the names of what was withheld are not about the person and stay
/// readable for the timeline.
async fn insert_status(
    tx: &mut Tx,
    update: &StatusUpdate,
    moves: bool,
    sealing: Option<&Sealing>,
) -> Result<(), StoreError> {
    let outcome = update.outcome.as_ref().map(wire::encode_outcome);
    let (reason, outcome, reason_sealed, outcome_sealed) = match sealing {
        None => (update.reason.clone(), outcome, None, None),
        Some(sealing) => {
            let seal = |what: &str, plain: &[u8]| {
                vault::seal(
                    &sealing.key,
                    &status_text_context(update.referral_id, what),
                    plain,
                )
            };
            (
                None,
                None,
                update
                    .reason
                    .as_ref()
                    .map(|r| seal("reason", r.as_bytes()))
                    .transpose()?,
                outcome.map(|o| seal("outcome", &o)).transpose()?,
            )
        }
    };
    let withheld: Vec<&str> = update
        .withheld
        .iter()
        .map(|w| w.category.as_str())
        .collect();
    sqlx::query(
        "INSERT INTO status_events (referral_id, status, actor, at, reason, outcome, forwarded_to,
                                    reason_code, withheld, reason_sealed, outcome_sealed,
                                    recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(update.referral_id.to_string())
    .bind(update.status.as_str())
    .bind(update.author.uri())
    .bind(ms(update.at))
    .bind(reason)
    .bind(outcome)
    .bind(update.forwarded_to.as_ref().map(TeamIdentity::uri))
    .bind(update.reason_code.map(ReasonCode::as_str))
    .bind((!withheld.is_empty()).then(|| withheld.join(",")))
    .bind(reason_sealed)
    .bind(outcome_sealed)
    .bind(ms(tx.now()))
    .execute(&mut **tx)
    .await?;
    if moves {
        sqlx::query("UPDATE referrals SET status = $1 WHERE id = $2")
            .bind(update.status.as_str())
            .bind(update.referral_id.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The columns of a referral row beyond the referral itself.
struct RowExtras<'a> {
    /// Seal the body under this key.
    sealing: Option<&'a Sealing>,
    /// For a forward: the received referral it was made from.
    forwarded_from: Option<Uuid>,
    /// For a received referral: when retention purges it.
    retain_until: Option<OffsetDateTime>,
}

/// Every referral column a [`StoredReferral`] needs, with the data key that opens its body.
const REFERRAL_COLUMNS: &str = "SELECT r.id, r.direction, r.status, r.recorded_at, r.body,
        r.decisions, r.data_key, r.retain_until, k.key AS sealing_key
    FROM referrals r LEFT JOIN data_keys k ON k.id = r.data_key";

/// The data key a received referral's body is sealed under, for sealing what is made from it.
pub(super) async fn sealing_of(
    tx: &mut Tx,
    referral_id: Uuid,
) -> Result<Option<Sealing>, StoreError> {
    let row = sqlx::query(
        "SELECT k.id, k.key FROM referrals r JOIN data_keys k ON k.id = r.data_key
         WHERE r.id = $1",
    )
    .bind(referral_id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| {
        Ok(Sealing {
            key_id: row.try_get("id")?,
            key: row.try_get("key")?,
        })
    })
    .transpose()
}

async fn insert_referral(
    tx: &mut Tx,
    referral: &Referral,
    direction: Direction,
    status: ReferralStatus,
    body: &[u8],
    now: OffsetDateTime,
    extras: &RowExtras<'_>,
) -> Result<(), StoreError> {
    let id = referral.id.to_string();
    let stored_body = match extras.sealing {
        Some(sealing) => vault::seal(&sealing.key, &format!("referrals/{id}"), body)?,
        None => body.to_vec(),
    };
    // Only a disclosure made on the basis of consent is retracted when the consent is revoked;
    // one made under a legal exception stands on its own.
    let consent_ref = referral
        .consent_ref
        .as_deref()
        .filter(|_| referral.legal_basis == LegalBasis::Consent);
    sqlx::query(
        "INSERT INTO referrals (id, direction, sender, recipient, created_at, recorded_at,
                                purpose, status, categories, digest, body, consultation_id,
                                data_key, consent_ref, forwarded_from, retain_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&id)
    .bind(direction.as_str())
    .bind(referral.sender.uri())
    .bind(referral.recipient.uri())
    .bind(ms(referral.created_at))
    .bind(ms(now))
    .bind(purpose_name(referral.purpose))
    .bind(status.as_str())
    .bind(categories_text(referral))
    .bind(digest(body))
    .bind(stored_body)
    .bind(referral.consultation.as_ref().map(|c| c.id.to_string()))
    .bind(extras.sealing.map(|s| s.key_id.as_str()))
    .bind(consent_ref)
    .bind(extras.forwarded_from.map(|f| f.to_string()))
    .bind(extras.retain_until.map(ms))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn insert_event(
    tx: &mut Tx,
    referral_id: Uuid,
    status: ReferralStatus,
    actor: &TeamIdentity,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO status_events (referral_id, status, actor, at, recorded_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(referral_id.to_string())
    .bind(status.as_str())
    .bind(actor.uri())
    .bind(ms(at))
    .bind(ms(tx.now()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores one outgoing referral with its decisions, its audit entry, its first status and its
/// outbox row, in `tx`; or, for a key seen before, stores nothing and says so.
async fn submit_in(
    tx: &mut Tx,
    disclosure: &Disclosure,
    submission: &Submission<'_>,
    now: OffsetDateTime,
) -> Result<Submitted, StoreError> {
    let referral = disclosure.outgoing();
    let decisions = disclosure.decisions();
    let body = wire::encode_referral(referral);
    if let Some((key, draft_digest)) = submission.idempotency {
        let earlier = sqlx::query(
            "SELECT referral_id, draft_digest FROM submissions WHERE idempotency_key = $1",
        )
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(row) = earlier {
            let id: String = row.try_get("referral_id")?;
            let digest: String = row.try_get("draft_digest")?;
            if digest != draft_digest {
                return Ok(Submitted::KeyReused);
            }
            return Uuid::parse_str(&id)
                .map(Submitted::Earlier)
                .map_err(|_| StoreError::Corrupt {
                    table: "submissions",
                    id: key.to_owned(),
                    problem: "referral id".into(),
                });
        }
        sqlx::query(
            "INSERT INTO submissions (idempotency_key, referral_id, draft_digest, submitted_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(key)
        .bind(referral.id.to_string())
        .bind(draft_digest)
        .bind(ms(now))
        .execute(&mut **tx)
        .await?;
    }
    let Submission {
        forwarded_from,
        subject,
        actor,
        references,
        ..
    } = *submission;
    let sealing = match forwarded_from {
        Some(source) => sealing_of(tx, source).await?,
        None => None,
    };
    insert_referral(
        tx,
        referral,
        Direction::Outbound,
        ReferralStatus::Sent,
        &body,
        now,
        &RowExtras {
            sealing: sealing.as_ref(),
            forwarded_from,
            retain_until: None,
        },
    )
    .await?;
    sqlx::query("UPDATE referrals SET decisions = $1, subject = $2 WHERE id = $3")
        .bind(decisions_json(decisions))
        .bind(subject)
        .bind(referral.id.to_string())
        .execute(&mut **tx)
        .await?;
    if let Some(references) = references {
        super::cases::put_references(tx, referral.id, references, now).await?;
    }
    audit_log::append(
        tx,
        &audit::disclosure(referral, decisions, forwarded_from, subject, actor),
    )
    .await?;
    insert_event(tx, referral.id, ReferralStatus::Sent, &referral.sender, now).await?;
    enqueue(
        tx,
        referral.id,
        MessageKind::Referral,
        referral.id,
        &referral.recipient,
        &body,
        now,
        sealing.as_ref(),
    )
    .await?;
    Ok(Submitted::New)
}

/// Records a status change made here, with its audit entry, and queues it to the other party,
/// in `tx`, if the lifecycle allows it from the status as stored.
async fn change_status_in(
    tx: &mut Tx,
    update: &StatusUpdate,
    side: Side,
    other_party: &TeamIdentity,
    actor: &Actor,
) -> Result<Result<(), TransitionError>, StoreError> {
    let body = wire::encode_status_update(update);
    let row = sqlx::query(
        "SELECT direction, status, consultation_id, subject FROM referrals WHERE id = $1",
    )
    .bind(update.referral_id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(Err(TransitionError::Missing(
            "referral_id: no such referral on this node",
        )));
    };
    let current = stored_status(&row, update.referral_id)?;
    let consultation = row
        .try_get::<Option<String>, _>("consultation_id")?
        .is_some();
    if let Err(e) = lifecycle::check(current, update, side, consultation) {
        return Ok(Err(e));
    }
    // On a received referral, its texts and the queued update that carries them are sealed
    // under its data key, so a purge shreds them with the rest.
    let sealing = sealing_of(tx, update.referral_id).await?;
    insert_status(
        tx,
        update,
        lifecycle::moves_status(current, update.status),
        sealing.as_ref(),
    )
    .await?;
    enqueue(
        tx,
        update.id,
        MessageKind::StatusUpdate,
        update.referral_id,
        other_party,
        &body,
        tx.now(),
        sealing.as_ref(),
    )
    .await?;
    let subject: Option<String> = row.try_get("subject")?;
    audit_log::append(
        tx,
        &audit::status_change(update, true, &other_party.uri(), subject.as_deref(), actor),
    )
    .await?;
    Ok(Ok(()))
}

/// The sealing context of a status event's `what` (its reason or outcome): bound to the
/// referral, so a sealed text cannot be moved to another referral's timeline.
fn status_text_context(referral_id: Uuid, what: &str) -> String {
    format!("status_events/{referral_id}/{what}")
}

/// One row of a referral's timeline, its sealed texts opened with the referral's data key.
fn status_event(row: &sqlx::any::AnyRow, id: Uuid) -> Result<StatusEvent, StoreError> {
    let corrupt = |problem: &str| StoreError::Corrupt {
        table: "status_events",
        id: id.to_string(),
        problem: problem.into(),
    };
    let status: String = row.try_get("status")?;
    let key: Option<Vec<u8>> = row.try_get("sealing_key")?;
    let open = |what: &str, sealed: Option<Vec<u8>>| -> Result<Option<Vec<u8>>, StoreError> {
        match (sealed, &key) {
            (None, _) => Ok(None),
            (Some(sealed), Some(key)) => Ok(Some(vault::open(
                key,
                &status_text_context(id, what),
                &sealed,
            )?)),
            (Some(_), None) => Err(corrupt("its data key is gone")),
        }
    };
    let reason = match open("reason", row.try_get("reason_sealed")?)? {
        Some(plain) => Some(String::from_utf8(plain).map_err(|_| corrupt("reason is not text"))?),
        None => row.try_get("reason")?,
    };
    let outcome = match open("outcome", row.try_get("outcome_sealed")?)? {
        Some(plain) => Some(plain),
        None => row.try_get::<Option<Vec<u8>>, _>("outcome")?,
    };
    let reason_code = match row.try_get::<Option<String>, _>("reason_code")? {
        Some(code) => Some(ReasonCode::parse(&code).ok_or_else(|| corrupt("unknown reason code"))?),
        None => None,
    };
    let withheld = row
        .try_get::<Option<String>, _>("withheld")?
        .map(|names| {
            names
                .split(',')
                .map(|name| DataCategory::parse(name).ok_or_else(|| corrupt("unknown category")))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(StatusEvent {
        status: ReferralStatus::parse(&status).ok_or_else(|| corrupt("unknown status"))?,
        at: from_ms(row.try_get("at")?),
        actor: row.try_get("actor")?,
        reason,
        reason_code,
        outcome: outcome.and_then(|b| wire::decode_outcome(&b).ok()),
        forwarded_to: row.try_get("forwarded_to")?,
        withheld,
    })
}
