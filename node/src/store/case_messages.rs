//! Case messages' SQL: a message sent with its queued delivery and its disclosure entry, a
//! message received with its receipt, both checked against the referral as stored, the
//! timeline of one case, the inbox's view of what arrived, and the reassessments due.
//!
//! A received message is sealed under its referral's data key: the received referral's own,
//! or, for a referral this node sent, a key made for the case when the first message arrives
//! (its id is the referral's). [`super::retraction`]'s purge deletes the keys of a referral's
//! messages with the referral's own, so a purge or a retraction shreds them with it.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;
use tatmx_certs::TeamIdentity;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::codec::{decisions_from_json, decisions_json, digest, from_ms, ms, stored_status};
use super::notifications;
use super::outbox::enqueue;
use super::referrals::{insert_event, sealing_of};
use super::{
    Direction, Inbound, MessageKind, Sealing, Store, StoreError, Tx, audit_log, check_replay,
    proofs, record_received,
};
use crate::actor::Actor;
use crate::audit;
use crate::case_message::{
    self, CaseBody, CaseMessage, CaseMessageKind, CaseRefusal, InformationKind, format_date,
    parse_date,
};
use crate::category::DataCategory;
use crate::filter::{CaseDisclosure, FieldDecision};
use crate::lifecycle::Side;
use crate::notification::Event;
use crate::received::Received;
use crate::referral::{Referral, ReferralStatus};
use crate::{vault, wire};

/// A case message as stored here, decoded.
#[derive(Debug, Clone)]
pub struct StoredCaseMessage {
    /// The message. For one this team sent, its own record in full; what left is in the
    /// outbox, and `decisions` says what the filter withheld.
    pub message: CaseMessage,
    /// Sent by this team, or received.
    pub direction: Direction,
    /// When this node stored it.
    pub recorded_at: OffsetDateTime,
    /// For a sent message, the filter's decisions; empty for a received one.
    pub decisions: Vec<FieldDecision>,
    /// For a received message: staff have read the case since it arrived.
    pub seen: bool,
}

/// A received case message as the inbox lists it: what and from whom, never its content.
#[derive(Debug, Clone)]
pub struct CaseMessageSummary {
    /// The message id.
    pub id: Uuid,
    /// The referral it is about.
    pub referral_id: Uuid,
    /// The team that wrote it, as an identity URI.
    pub author: String,
    /// What kind of message.
    pub kind: CaseMessageKind,
    /// For new information: what it is.
    pub information_kind: Option<InformationKind>,
    /// Urgent new information.
    pub urgent: bool,
    /// When it arrived.
    pub received_at: OffsetDateTime,
    /// The categories of case data it carried.
    pub categories: Vec<DataCategory>,
    /// Staff have read the case since it arrived.
    pub seen: bool,
}

/// A case's next reassessment, by its latest plan.
#[derive(Debug, Clone)]
pub struct DueReassessment {
    /// The referral.
    pub referral_id: Uuid,
    /// The other team of the case, as an identity URI.
    pub other_team: String,
    /// Whether this node sent the referral or received it.
    pub direction: Direction,
    /// Where the case stands.
    pub status: ReferralStatus,
    /// When it is due.
    pub next_reassessment: Date,
    /// The plan or reassessment that set the date.
    pub message_id: Uuid,
}

/// How many received case messages of a referral staff have not read, and whether one of them
/// is urgent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unseen {
    /// Messages not read.
    pub count: u32,
    /// One of them is urgent new information.
    pub urgent: bool,
}

/// The inbox read as one snapshot ([`Store::inbox_snapshot`]).
#[derive(Debug, Clone)]
pub struct InboxSnapshot {
    /// Received referrals, unread urgent cases first, then the newest.
    pub referrals: Vec<super::StoredReferral>,
    /// Per referral: received messages staff have not read, and whether one is urgent.
    pub unseen: HashMap<Uuid, Unseen>,
    /// Received messages: unread urgent ones first, then the newest.
    pub messages: Vec<CaseMessageSummary>,
}

impl Store {
    /// Stores a case message this team writes (its own record, in full, sealed when the
    /// referral has a data key), queues exactly what the filter lets leave to the referral's
    /// other team, records the disclosure, and moves the case under management when a plan
    /// is recorded on a completed case: all in one transaction, and only if [`case_message::check`]
    /// allows the message on the referral as stored. `referral` is the referral as this node
    /// holds it, for the disclosure entry's basis and consent.
    pub async fn send_case_message(
        &self,
        disclosure: &CaseDisclosure,
        referral: &Referral,
        actor: &Actor,
    ) -> Result<Result<(), CaseRefusal>, StoreError> {
        let written = disclosure.written();
        let outgoing = disclosure.outgoing();
        let mut tx = self.write().await?;
        let now = tx.now();
        let row = sqlx::query(
            "SELECT direction, status, consultation_id, subject, sender, recipient
             FROM referrals WHERE id = $1",
        )
        .bind(written.referral_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Err(CaseRefusal::NotShared(written.referral_id)));
        };
        let (side, peer_column) = match row.try_get::<String, _>("direction")?.as_str() {
            "outbound" => (Side::Sender, "recipient"),
            _ => (Side::Recipient, "sender"),
        };
        let current = stored_status(&row, written.referral_id)?;
        let consultation = row
            .try_get::<Option<String>, _>("consultation_id")?
            .is_some();
        if let Err(refusal) = case_message::check(
            written.kind(),
            side,
            current,
            consultation,
            written.referral_id,
        ) {
            return Ok(Err(refusal));
        }
        if let Err(refusal) = answers_asked(&mut tx, written, Direction::Inbound).await? {
            return Ok(Err(refusal));
        }
        let peer =
            TeamIdentity::parse_uri(&row.try_get::<String, _>(peer_column)?).map_err(|_| {
                StoreError::Corrupt {
                    table: "referrals",
                    id: written.referral_id.to_string(),
                    problem: format!("{peer_column} is not a team identity"),
                }
            })?;
        let sealing = sealing_of(&mut tx, written.referral_id).await?;
        insert_message(
            &mut tx,
            written,
            Direction::Outbound,
            &peer,
            &decisions_json(disclosure.decisions()),
            now,
            sealing.as_ref(),
        )
        .await?;
        if let Some(next) = case_message::moves_to(written.kind(), current) {
            move_status(&mut tx, written, next).await?;
        }
        enqueue(
            &mut tx,
            outgoing.id,
            MessageKind::CaseMessage,
            outgoing.referral_id,
            &peer,
            &wire::encode_case_message(outgoing),
            now,
            sealing.as_ref(),
        )
        .await?;
        let subject: Option<String> = row.try_get("subject")?;
        audit_log::append(
            &mut tx,
            &audit::case_disclosure(
                outgoing,
                disclosure.decisions(),
                referral,
                &peer,
                subject.as_deref(),
                actor,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Applies a case message from the other team of a referral: the recipient of one this
    /// node sent, or the sender of one it received. Who may send which kind, and in which
    /// state, is checked inside the transaction against the referral as stored; the message is
    /// sealed under the referral's data key, and its receipt and audit entry are written with
    /// it. A redelivery changes nothing.
    pub async fn receive_case_message(
        &self,
        message: &Received<CaseMessage>,
    ) -> Result<Result<Inbound, CaseRefusal>, StoreError> {
        let (from, proof) = (message.sender(), message.proof());
        let body = message.wire().to_vec();
        let message = message.message();
        let digest = digest(&body);
        let now = self.clock.now();
        let mut tx = self.write().await?;
        if let Some(outcome) = check_replay(&mut tx, message.id, &digest).await? {
            return Ok(Ok(outcome));
        }
        let row = sqlx::query(
            "SELECT direction, status, consultation_id FROM referrals WHERE id = $1
               AND ((direction = 'outbound' AND recipient = $2) OR (direction = 'inbound' AND sender = $3))",
        )
        .bind(message.referral_id.to_string())
        .bind(from.uri())
        .bind(from.uri())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Ok(Inbound::UnknownReferral));
        };
        // The author is the other party: the recipient of our outbound referral, or the
        // sender of one we received.
        let side = match row.try_get::<String, _>("direction")?.as_str() {
            "outbound" => Side::Recipient,
            _ => Side::Sender,
        };
        let current = stored_status(&row, message.referral_id)?;
        let consultation = row
            .try_get::<Option<String>, _>("consultation_id")?
            .is_some();
        if let Err(refusal) = case_message::check(
            message.kind(),
            side,
            current,
            consultation,
            message.referral_id,
        ) {
            return Ok(Err(refusal));
        }
        if let Err(refusal) = answers_asked(&mut tx, message, Direction::Outbound).await? {
            return Ok(Err(refusal));
        }
        record_received(
            &mut tx,
            message.id,
            MessageKind::CaseMessage,
            from,
            &digest,
            now,
        )
        .await?;
        let sealing = match sealing_of(&mut tx, message.referral_id).await? {
            Some(sealing) => sealing,
            None => case_key(&mut tx, message.referral_id, now).await?,
        };
        insert_message(
            &mut tx,
            message,
            Direction::Inbound,
            from,
            "[]",
            now,
            Some(&sealing),
        )
        .await?;
        if let Some(next) = case_message::moves_to(message.kind(), current) {
            move_status(&mut tx, message, next).await?;
        }
        proofs::put(&mut tx, proof, "received").await?;
        audit_log::append(&mut tx, &audit::case_receipt(message, &digest)).await?;
        notifications::record(
            &mut tx,
            Event::CaseMessage(message.kind()),
            message.referral_id,
            &from.uri(),
            message.id,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(Inbound::Stored))
    }

    /// Every case message of one referral, oldest first, opened.
    pub async fn case_messages(
        &self,
        referral_id: Uuid,
    ) -> Result<Vec<StoredCaseMessage>, StoreError> {
        sqlx::query(
            "SELECT m.id, m.direction, m.recorded_at, m.decisions, m.seen_at, m.data_key, m.body,
                    k.key AS sealing_key
             FROM case_messages m LEFT JOIN data_keys k ON k.id = m.data_key
             WHERE m.referral_id = $1 ORDER BY m.at, m.id",
        )
        .bind(referral_id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(stored_case_message)
        .collect()
    }

    /// Received case messages, for the inbox: those staff have not read with urgent ones
    /// first, then the newest first; at most `limit`. Their content is opened only to name
    /// the kind of new information.
    pub async fn received_case_messages(
        &self,
        limit: u32,
    ) -> Result<Vec<CaseMessageSummary>, StoreError> {
        received_in(&mut *self.pool.acquire().await?, limit).await
    }

    /// For each referral with received case messages staff have not read: how many, and
    /// whether one is urgent.
    pub async fn unseen_case_messages(&self) -> Result<HashMap<Uuid, Unseen>, StoreError> {
        unseen_in(&mut *self.pool.acquire().await?).await
    }

    /// The inbox as one snapshot: the received referrals in inbox order, their unread case
    /// messages, and the received messages themselves (at most `limit` of each). Read in one
    /// transaction (repeatable read on PostgreSQL), so a message that arrives meanwhile is in
    /// all three or in none: the inbox never lists a message and orders its case as if it had
    /// not come.
    pub async fn inbox_snapshot(&self, limit: u32) -> Result<InboxSnapshot, StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == super::Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let referrals = super::referrals::inbox_in(&mut tx, limit).await?;
        let unseen = unseen_in(&mut tx).await?;
        let messages = received_in(&mut tx, limit).await?;
        tx.commit().await?;
        Ok(InboxSnapshot {
            referrals,
            unseen,
            messages,
        })
    }

    /// Records that staff read a case: its received messages are seen from `at`. Returns how
    /// many were not seen before.
    pub async fn mark_case_seen(
        &self,
        referral_id: Uuid,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let changed = sqlx::query(
            "UPDATE case_messages SET seen_at = $1
             WHERE referral_id = $2 AND direction = 'inbound' AND seen_at IS NULL",
        )
        .bind(ms(at))
        .bind(referral_id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(changed)
    }

    /// The open cases whose latest plan puts the next reassessment on or before `until`,
    /// soonest first.
    pub async fn due_reassessments(&self, until: Date) -> Result<Vec<DueReassessment>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.referral_id, m.next_reassessment, r.direction, r.status, r.sender,
                    r.recipient
             FROM case_messages m JOIN referrals r ON r.id = m.referral_id
             WHERE m.next_reassessment IS NOT NULL
               AND r.status NOT IN ('closed', 'cancelled', 'declined')
               AND m.at = (SELECT MAX(x.at) FROM case_messages x
                           WHERE x.referral_id = m.referral_id AND x.next_reassessment IS NOT NULL)
               AND m.next_reassessment <= $1
             ORDER BY m.next_reassessment, m.referral_id",
        )
        .bind(format_date(until))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let corrupt = |problem: &str| StoreError::Corrupt {
                    table: "case_messages",
                    id: id.clone(),
                    problem: problem.to_owned(),
                };
                let referral_id: String = row.try_get("referral_id")?;
                let referral_id =
                    Uuid::parse_str(&referral_id).map_err(|_| corrupt("referral id"))?;
                let (direction, other) = match row.try_get::<String, _>("direction")?.as_str() {
                    "outbound" => (Direction::Outbound, "recipient"),
                    _ => (Direction::Inbound, "sender"),
                };
                Ok(DueReassessment {
                    referral_id,
                    other_team: row.try_get(other)?,
                    direction,
                    status: stored_status(row, referral_id)?,
                    next_reassessment: parse_date(&row.try_get::<String, _>("next_reassessment")?)
                        .ok_or_else(|| corrupt("next_reassessment"))?,
                    message_id: Uuid::parse_str(&id).map_err(|_| corrupt("id"))?,
                })
            })
            .collect()
    }
}

/// A supplement that answers a question must answer one asked on the same referral, in the
/// other direction (`asked`): received by the team that answers, sent by the team that reads
/// the answer.
async fn answers_asked(
    tx: &mut Tx,
    message: &CaseMessage,
    asked: Direction,
) -> Result<Result<(), CaseRefusal>, StoreError> {
    let CaseBody::Supplement {
        answers: Some(question),
        ..
    } = &message.body
    else {
        return Ok(Ok(()));
    };
    let found: Option<String> = sqlx::query_scalar(
        "SELECT id FROM case_messages WHERE id = $1 AND referral_id = $2
           AND kind = 'information-request' AND direction = $3",
    )
    .bind(question.to_string())
    .bind(message.referral_id.to_string())
    .bind(asked.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match found {
        Some(_) => Ok(()),
        None => Err(CaseRefusal::UnknownRequest(*question)),
    })
}

/// The key a referral this node sent seals its received case messages under: made with the
/// first one, with the referral's id.
pub(super) async fn case_key(
    tx: &mut Tx,
    referral_id: Uuid,
    now: OffsetDateTime,
) -> Result<Sealing, StoreError> {
    let key_id = referral_id.to_string();
    let existing: Option<Vec<u8>> = sqlx::query_scalar("SELECT key FROM data_keys WHERE id = $1")
        .bind(&key_id)
        .fetch_optional(&mut **tx)
        .await?;
    let key = match existing {
        Some(key) => key,
        None => {
            let key = vault::new_key()?;
            sqlx::query("INSERT INTO data_keys (id, key, created_at) VALUES ($1, $2, $3)")
                .bind(&key_id)
                .bind(&key)
                .bind(ms(now))
                .execute(&mut **tx)
                .await?;
            key
        }
    };
    Ok(Sealing { key_id, key })
}

async fn insert_message(
    tx: &mut Tx,
    message: &CaseMessage,
    direction: Direction,
    peer: &TeamIdentity,
    decisions: &str,
    now: OffsetDateTime,
    sealing: Option<&Sealing>,
) -> Result<(), StoreError> {
    let body = wire::encode_case_message(message);
    let id = message.id.to_string();
    let stored_body = match sealing {
        Some(sealing) => vault::seal(&sealing.key, &format!("case_messages/{id}"), &body)?,
        None => body.clone(),
    };
    let categories: Vec<&str> = message.categories().iter().map(|c| c.as_str()).collect();
    sqlx::query(
        "INSERT INTO case_messages (id, referral_id, direction, author, peer, kind, urgent, at,
                                    recorded_at, next_reassessment, categories, decisions,
                                    digest, data_key, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&id)
    .bind(message.referral_id.to_string())
    .bind(direction.as_str())
    .bind(message.author.uri())
    .bind(peer.uri())
    .bind(message.kind().as_str())
    .bind(i64::from(message.urgent()))
    .bind(ms(message.at))
    .bind(ms(now))
    .bind(message.next_reassessment().map(format_date))
    .bind(categories.join(","))
    .bind(decisions)
    .bind(digest(&body))
    .bind(sealing.map(|s| s.key_id.as_str()))
    .bind(stored_body)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves a referral's status because of a case message, with the event in its timeline.
async fn move_status(
    tx: &mut Tx,
    message: &CaseMessage,
    next: ReferralStatus,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE referrals SET status = $1 WHERE id = $2")
        .bind(next.as_str())
        .bind(message.referral_id.to_string())
        .execute(&mut **tx)
        .await?;
    insert_event(tx, message.referral_id, next, &message.author, message.at).await
}

fn stored_case_message(row: &AnyRow) -> Result<StoredCaseMessage, StoreError> {
    let id: String = row.try_get("id")?;
    let corrupt = |problem: String| StoreError::Corrupt {
        table: "case_messages",
        id: id.clone(),
        problem,
    };
    let body: Vec<u8> = row.try_get("body")?;
    let body = match row.try_get::<Option<String>, _>("data_key")? {
        Some(_) => {
            let key: Option<Vec<u8>> = row.try_get("sealing_key")?;
            let key = key.ok_or_else(|| corrupt("its data key is gone".into()))?;
            vault::open(&key, &format!("case_messages/{id}"), &body)?
        }
        None => body,
    };
    let message = wire::decode_case_message(&body).map_err(|e| corrupt(e.to_string()))?;
    let direction = match row.try_get::<String, _>("direction")?.as_str() {
        "outbound" => Direction::Outbound,
        "inbound" => Direction::Inbound,
        _ => return Err(corrupt("unknown direction".into())),
    };
    Ok(StoredCaseMessage {
        message,
        direction,
        recorded_at: from_ms(row.try_get("recorded_at")?),
        decisions: decisions_from_json(&row.try_get::<String, _>("decisions")?).map_err(corrupt)?,
        seen: row.try_get::<Option<i64>, _>("seen_at")?.is_some(),
    })
}

/// [`Store::received_case_messages`] on `connection`.
async fn received_in(
    connection: &mut sqlx::AnyConnection,
    limit: u32,
) -> Result<Vec<CaseMessageSummary>, StoreError> {
    sqlx::query(
        "SELECT m.id, m.direction, m.recorded_at, m.decisions, m.seen_at, m.data_key, m.body,
                    m.urgent, k.key AS sealing_key
             FROM case_messages m LEFT JOIN data_keys k ON k.id = m.data_key
             WHERE m.direction = 'inbound'
             ORDER BY CASE WHEN m.urgent = 1 AND m.seen_at IS NULL THEN 0 ELSE 1 END,
                      m.recorded_at DESC, m.id DESC
             LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(|row| {
        let stored = stored_case_message(row)?;
        let m = &stored.message;
        Ok(CaseMessageSummary {
            id: m.id,
            referral_id: m.referral_id,
            author: m.author.uri(),
            kind: m.kind(),
            information_kind: match &m.body {
                CaseBody::NewInformation { kind, .. } => Some(*kind),
                _ => None,
            },
            urgent: m.urgent(),
            received_at: stored.recorded_at,
            categories: m.categories().into_iter().collect(),
            seen: stored.seen,
        })
    })
    .collect()
}

/// [`Store::unseen_case_messages`] on `connection`.
async fn unseen_in(
    connection: &mut sqlx::AnyConnection,
) -> Result<HashMap<Uuid, Unseen>, StoreError> {
    let rows = sqlx::query(
        "SELECT referral_id, COUNT(*) AS n, MAX(urgent) AS urgent FROM case_messages
             WHERE direction = 'inbound' AND seen_at IS NULL GROUP BY referral_id",
    )
    .fetch_all(&mut *connection)
    .await?;
    let mut unseen = HashMap::new();
    for row in rows {
        let id: String = row.try_get("referral_id")?;
        let Ok(id) = Uuid::parse_str(&id) else {
            continue;
        };
        unseen.insert(
            id,
            Unseen {
                count: u32::try_from(row.try_get::<i64, _>("n")?).unwrap_or(u32::MAX),
                urgent: row.try_get::<i64, _>("urgent")? != 0,
            },
        );
    }
    Ok(unseen)
}
