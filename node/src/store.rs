//! The node's durable state, and the only module that speaks SQL.
//!
//! Every operation that changes more than one row runs in one `BEGIN IMMEDIATE` transaction, so
//! a crash leaves either all of it or none of it. SQLite runs in WAL mode with
//! `synchronous=FULL`: an acknowledgement to a peer promises the message is on disk, so every
//! commit is fsynced before the call returns. Case data is stored as the canonical protobuf
//! encoding of the referral, with a few plain columns beside it for listing.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tatmx_certs::TeamIdentity;
use tatmx_proto::v1 as pb;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::category::DataCategory;
use crate::consent::Consent;
use crate::convert;
use crate::filter::{FieldDecision, Outcome};
use crate::lifecycle::{self, Side, TransitionError};
use crate::referral::{AssessmentOutcome, Referral, ReferralStatus, StatusUpdate};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, migrated or queried.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row could not be read back; the database was changed outside tatmx.
    #[error("stored row {table}/{id} is unreadable: {problem}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key.
        id: String,
        /// What could not be read.
        problem: String,
    },
}

impl StoreError {
    /// Whether the database was busy or locked, which a caller may retry.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(e))
            if e.message().contains("locked") || e.message().contains("busy"))
    }
}

/// Which way a referral went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// This node sent it.
    Outbound,
    /// This node received it.
    Inbound,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Outbound => "outbound",
            Self::Inbound => "inbound",
        }
    }
}

/// What an outbox entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A referral, for `Federation.DeliverReferral`.
    Referral,
    /// A status update, for `Federation.UpdateStatus`.
    StatusUpdate,
}

impl MessageKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Referral => "referral",
            Self::StatusUpdate => "status-update",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "referral" => Some(Self::Referral),
            "status-update" => Some(Self::StatusUpdate),
            _ => None,
        }
    }
}

/// Where an outbox entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for (another) attempt.
    Pending,
    /// The peer acknowledged it.
    Delivered,
    /// Undelivered past the maximum age, or refused by the peer for good; waits for an admin.
    Dead,
}

impl DeliveryState {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }
}

/// One outbox row, as listed to staff.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// Position in the outbox; delivery per peer follows it.
    pub seq: i64,
    /// The message id (the referral id for a referral).
    pub message_id: Uuid,
    /// What the message is.
    pub kind: MessageKind,
    /// The referral it belongs to.
    pub referral_id: Uuid,
    /// The peer it goes to, as an identity URI.
    pub peer: String,
    /// Delivery state.
    pub state: DeliveryState,
    /// Attempts so far.
    pub attempts: u32,
    /// When it was queued.
    pub created_at: OffsetDateTime,
    /// When the next attempt is due.
    pub next_attempt_at: OffsetDateTime,
    /// When the peer acknowledged it.
    pub delivered_at: Option<OffsetDateTime>,
    /// Why the last attempt failed; never message content.
    pub last_error: Option<String>,
}

/// A message the delivery worker is about to send.
#[derive(Debug, Clone)]
pub struct DueMessage {
    /// Its outbox row.
    pub seq: i64,
    /// Its message id.
    pub message_id: Uuid,
    /// What it is.
    pub kind: MessageKind,
    /// The encoded wire message (`pb::Referral` or `pb::StatusUpdate`).
    pub body: Vec<u8>,
    /// Attempts so far.
    pub attempts: u32,
    /// When it is due.
    pub next_attempt_at: OffsetDateTime,
    /// When it was queued, or last retried by an admin: its maximum age counts from here.
    pub age_from: OffsetDateTime,
}

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
    /// Why, when a reason was given (and not withheld).
    pub reason: Option<String>,
    /// A completed assessment's outcome.
    pub outcome: Option<AssessmentOutcome>,
    /// For a forward: the team it went to, as an identity URI.
    pub forwarded_to: Option<String>,
}

/// What happened to an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Stored now.
    Stored,
    /// Already stored with identical content; nothing changed.
    Duplicate,
    /// The id was already used for different content; nothing changed.
    Conflict,
    /// A status update for a referral this node never sent to that peer; nothing changed.
    UnknownReferral,
}

/// The node's database.
#[derive(Debug, Clone)]
pub struct Store {
    /// Connections to the SQLite file.
    pool: SqlitePool,
}

fn ms(at: OffsetDateTime) -> i64 {
    // Milliseconds since 1970 fit an i64 for the next 290 million years.
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(value: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(value) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn digest(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn categories_text(referral: &Referral) -> String {
    referral
        .categories()
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The canonical bytes of a referral: what is stored, digested, and sent.
pub fn encode_referral(referral: &Referral) -> Vec<u8> {
    convert::referral_to_proto(referral).encode_to_vec()
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes every connection, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Stores a referral this node is sending (exactly what leaves) with the filter's decisions,
    /// and queues it for delivery, atomically.
    pub async fn submit_referral(
        &self,
        referral: &Referral,
        decisions: &[FieldDecision],
    ) -> Result<(), StoreError> {
        let body = encode_referral(referral);
        let now = OffsetDateTime::now_utc();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        insert_referral(
            &mut tx,
            referral,
            Direction::Outbound,
            ReferralStatus::Sent,
            &body,
            now,
        )
        .await?;
        sqlx::query("UPDATE referrals SET decisions = ? WHERE id = ?")
            .bind(decisions_json(decisions))
            .bind(referral.id.to_string())
            .execute(&mut *tx)
            .await?;
        insert_event(
            &mut tx,
            referral.id,
            ReferralStatus::Sent,
            &referral.sender,
            now,
        )
        .await?;
        enqueue(
            &mut tx,
            referral.id,
            MessageKind::Referral,
            referral.id,
            &referral.recipient,
            &body,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a referral delivered by its sender and queues the `received` acknowledgement
    /// back to the sender, atomically. A redelivery changes nothing.
    pub async fn receive_referral(
        &self,
        referral: &Referral,
        ack: &StatusUpdate,
    ) -> Result<Inbound, StoreError> {
        let body = encode_referral(referral);
        let digest = digest(&body);
        let now = OffsetDateTime::now_utc();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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
        insert_referral(
            &mut tx,
            referral,
            Direction::Inbound,
            ReferralStatus::Received,
            &body,
            now,
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
        let ack_body = convert::status_update_to_proto(ack).encode_to_vec();
        enqueue(
            &mut tx,
            ack.id,
            MessageKind::StatusUpdate,
            referral.id,
            &referral.sender,
            &ack_body,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Inbound::Stored)
    }

    /// Applies a status update from the other party of a referral: the recipient of one this
    /// node sent, or the sender of one it received. The lifecycle is checked inside the
    /// transaction, against the status as stored.
    pub async fn receive_status_update(
        &self,
        update: &StatusUpdate,
        from: &TeamIdentity,
    ) -> Result<Result<Inbound, TransitionError>, StoreError> {
        let body = convert::status_update_to_proto(update).encode_to_vec();
        let digest = digest(&body);
        let now = OffsetDateTime::now_utc();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(outcome) = check_replay(&mut tx, update.id, &digest).await? {
            return Ok(Ok(outcome));
        }
        let row = sqlx::query(
            "SELECT direction, status, consultation_id FROM referrals WHERE id = ?
               AND ((direction = 'outbound' AND recipient = ?) OR (direction = 'inbound' AND sender = ?))",
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
        let current = stored_status(&row, update.referral_id)?;
        let consultation = row
            .try_get::<Option<String>, _>("consultation_id")?
            .is_some();
        if let Err(e) = lifecycle::check(current, update, side, consultation) {
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
        insert_status(
            &mut tx,
            update,
            lifecycle::moves_status(current, update.status),
        )
        .await?;
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
    ) -> Result<Result<(), TransitionError>, StoreError> {
        let body = convert::status_update_to_proto(update).encode_to_vec();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row =
            sqlx::query("SELECT direction, status, consultation_id FROM referrals WHERE id = ?")
                .bind(update.referral_id.to_string())
                .fetch_optional(&mut *tx)
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
        insert_status(
            &mut tx,
            update,
            lifecycle::moves_status(current, update.status),
        )
        .await?;
        enqueue(
            &mut tx,
            update.id,
            MessageKind::StatusUpdate,
            update.referral_id,
            other_party,
            &body,
            OffsetDateTime::now_utc(),
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Received referrals, newest first.
    pub async fn inbox(&self, limit: u32) -> Result<Vec<StoredReferral>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, direction, status, recorded_at, body FROM referrals
             WHERE direction = 'inbound' ORDER BY recorded_at DESC, id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_referral).collect()
    }

    /// One referral, sent or received, with its timeline.
    pub async fn referral(
        &self,
        id: Uuid,
    ) -> Result<Option<(StoredReferral, Vec<StatusEvent>)>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, direction, status, recorded_at, body, decisions FROM referrals WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let stored = stored_referral(&row)?;
        let events = sqlx::query(
            "SELECT status, at, actor, reason, outcome, forwarded_to FROM status_events
             WHERE referral_id = ? ORDER BY seq",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let status: String = row.try_get("status")?;
            Ok(StatusEvent {
                status: ReferralStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
                    table: "status_events",
                    id: id.to_string(),
                    problem: "unknown status".into(),
                })?,
                at: from_ms(row.try_get("at")?),
                actor: row.try_get("actor")?,
                reason: row.try_get("reason")?,
                outcome: row
                    .try_get::<Option<Vec<u8>>, _>("outcome")?
                    .and_then(|b| pb::AssessmentOutcome::decode(b.as_slice()).ok())
                    .map(convert::outcome_from_proto),
                forwarded_to: row.try_get("forwarded_to")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some((stored, events)))
    }

    /// The outbox, newest first.
    pub async fn outbox(&self, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, message_id, kind, referral_id, peer, state, attempts, created_at,
                    next_attempt_at, delivered_at, last_error
             FROM outbox ORDER BY seq DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outbox_entry).collect()
    }

    /// One outbox entry by message id.
    pub async fn outbox_entry(&self, message_id: Uuid) -> Result<Option<OutboxEntry>, StoreError> {
        let row = sqlx::query(
            "SELECT seq, message_id, kind, referral_id, peer, state, attempts, created_at,
                    next_attempt_at, delivered_at, last_error
             FROM outbox WHERE message_id = ?",
        )
        .bind(message_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(outbox_entry).transpose()
    }

    /// The oldest undelivered message for `peer`, due or not. Delivery is strictly in order per
    /// peer, so only the head of the queue is ever attempted.
    pub async fn next_for_peer(
        &self,
        peer: &TeamIdentity,
    ) -> Result<Option<DueMessage>, StoreError> {
        let row = sqlx::query(
            "SELECT seq, message_id, kind, body, attempts, next_attempt_at,
                    COALESCE(retried_at, created_at) AS age_from FROM outbox
             WHERE peer = ? AND state = 'pending' ORDER BY seq LIMIT 1",
        )
        .bind(peer.uri())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let seq: i64 = row.try_get("seq")?;
        let corrupt = |problem: &str| StoreError::Corrupt {
            table: "outbox",
            id: seq.to_string(),
            problem: problem.to_owned(),
        };
        let message_id: String = row.try_get("message_id")?;
        let kind: String = row.try_get("kind")?;
        Ok(Some(DueMessage {
            seq,
            message_id: Uuid::parse_str(&message_id).map_err(|_| corrupt("message id"))?,
            kind: MessageKind::parse(&kind).ok_or_else(|| corrupt("kind"))?,
            body: row.try_get("body")?,
            attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
            next_attempt_at: from_ms(row.try_get("next_attempt_at")?),
            age_from: from_ms(row.try_get("age_from")?),
        }))
    }

    /// Records the peer's acknowledgement.
    pub async fn mark_delivered(&self, seq: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, delivered_at = ?,
                    last_error = NULL
             WHERE seq = ? AND state = 'pending'",
        )
        .bind(ms(OffsetDateTime::now_utc()))
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed attempt and when to try again.
    pub async fn mark_retry(
        &self,
        seq: i64,
        error: &str,
        next_attempt_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?
             WHERE seq = ? AND state = 'pending'",
        )
        .bind(error)
        .bind(ms(next_attempt_at))
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Makes a message a dead letter: refused for good by its peer (`attempted`), or
    /// undelivered past the maximum age.
    pub async fn mark_dead(
        &self,
        seq: i64,
        error: &str,
        attempted: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET state = 'dead', attempts = attempts + ?, last_error = ?
             WHERE seq = ? AND state = 'pending'",
        )
        .bind(i64::from(attempted))
        .bind(error)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sends a dead letter again: pending from now, its maximum age counted afresh. Returns
    /// the peer it goes to, or `None` if there is no such dead letter.
    pub async fn retry_dead(&self, message_id: Uuid) -> Result<Option<String>, StoreError> {
        let now = ms(OffsetDateTime::now_utc());
        let peer: Option<String> = sqlx::query_scalar(
            "UPDATE outbox SET state = 'pending', next_attempt_at = ?, retried_at = ?
             WHERE message_id = ? AND state = 'dead' RETURNING peer",
        )
        .bind(now)
        .bind(now)
        .bind(message_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(peer)
    }

    /// Every partner's copy of consultations this node asked for, grouped by consultation id,
    /// newest first.
    pub async fn consultations(
        &self,
        only: Option<Uuid>,
    ) -> Result<Vec<(Uuid, Vec<(StoredReferral, Vec<StatusEvent>)>)>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT consultation_id FROM referrals
             WHERE direction = 'outbound' AND consultation_id IS NOT NULL
               AND (? IS NULL OR consultation_id = ?)
             GROUP BY consultation_id ORDER BY MAX(recorded_at) DESC LIMIT 1000",
        )
        .bind(only.map(|u| u.to_string()))
        .bind(only.map(|u| u.to_string()))
        .fetch_all(&self.pool)
        .await?;
        let mut grouped = Vec::new();
        for id in ids {
            let referral_ids: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM referrals WHERE direction = 'outbound' AND consultation_id = ?
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
            sqlx::query_scalar("SELECT COUNT(*) FROM referrals WHERE direction = ?")
                .bind(direction.as_str())
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Sqlite>;

fn stored_status(row: &sqlx::sqlite::SqliteRow, id: Uuid) -> Result<ReferralStatus, StoreError> {
    let status: String = row.try_get("status")?;
    ReferralStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
        table: "referrals",
        id: id.to_string(),
        problem: "unknown status".into(),
    })
}

/// Records a status change: the event, and (when `moves`) the referral's current status.
async fn insert_status(
    tx: &mut Tx<'_>,
    update: &StatusUpdate,
    moves: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO status_events (referral_id, status, actor, at, reason, outcome, forwarded_to)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(update.referral_id.to_string())
    .bind(update.status.as_str())
    .bind(update.author.uri())
    .bind(ms(update.at))
    .bind(&update.reason)
    .bind(
        update
            .outcome
            .as_ref()
            .map(|o| convert::outcome_to_proto(o).encode_to_vec()),
    )
    .bind(update.forwarded_to.as_ref().map(TeamIdentity::uri))
    .execute(&mut **tx)
    .await?;
    if moves {
        sqlx::query("UPDATE referrals SET status = ? WHERE id = ?")
            .bind(update.status.as_str())
            .bind(update.referral_id.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn check_replay(
    tx: &mut Tx<'_>,
    message_id: Uuid,
    digest: &str,
) -> Result<Option<Inbound>, StoreError> {
    let previous: Option<String> =
        sqlx::query_scalar("SELECT digest FROM received_messages WHERE message_id = ?")
            .bind(message_id.to_string())
            .fetch_optional(&mut **tx)
            .await?;
    Ok(previous.map(|previous| {
        if previous == digest {
            Inbound::Duplicate
        } else {
            Inbound::Conflict
        }
    }))
}

async fn record_received(
    tx: &mut Tx<'_>,
    message_id: Uuid,
    kind: MessageKind,
    sender: &TeamIdentity,
    digest: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO received_messages (message_id, kind, sender, digest, received_at)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(message_id.to_string())
    .bind(kind.as_str())
    .bind(sender.uri())
    .bind(digest)
    .bind(ms(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_referral(
    tx: &mut Tx<'_>,
    referral: &Referral,
    direction: Direction,
    status: ReferralStatus,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO referrals (id, direction, sender, recipient, created_at, recorded_at,
                                purpose, status, categories, digest, body, consultation_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(referral.id.to_string())
    .bind(direction.as_str())
    .bind(referral.sender.uri())
    .bind(referral.recipient.uri())
    .bind(ms(referral.created_at))
    .bind(ms(now))
    .bind(format!("{:?}", referral.purpose))
    .bind(status.as_str())
    .bind(categories_text(referral))
    .bind(digest(body))
    .bind(body)
    .bind(referral.consultation.as_ref().map(|c| c.id.to_string()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_event(
    tx: &mut Tx<'_>,
    referral_id: Uuid,
    status: ReferralStatus,
    actor: &TeamIdentity,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO status_events (referral_id, status, actor, at) VALUES (?, ?, ?, ?)")
        .bind(referral_id.to_string())
        .bind(status.as_str())
        .bind(actor.uri())
        .bind(ms(at))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn enqueue(
    tx: &mut Tx<'_>,
    message_id: Uuid,
    kind: MessageKind,
    referral_id: Uuid,
    peer: &TeamIdentity,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (message_id, kind, referral_id, peer, body, state, created_at,
                             next_attempt_at)
         VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
    )
    .bind(message_id.to_string())
    .bind(kind.as_str())
    .bind(referral_id.to_string())
    .bind(peer.uri())
    .bind(body)
    .bind(ms(now))
    .bind(ms(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn stored_referral(row: &sqlx::sqlite::SqliteRow) -> Result<StoredReferral, StoreError> {
    let id: String = row.try_get("id")?;
    let corrupt = |problem: String| StoreError::Corrupt {
        table: "referrals",
        id: id.clone(),
        problem,
    };
    let body: Vec<u8> = row.try_get("body")?;
    let wire = pb::Referral::decode(body.as_slice()).map_err(|e| corrupt(e.to_string()))?;
    let referral = convert::referral_from_proto(wire).map_err(|e| corrupt(e.to_string()))?;
    let direction = match row.try_get::<String, _>("direction")?.as_str() {
        "outbound" => Direction::Outbound,
        "inbound" => Direction::Inbound,
        _ => return Err(corrupt("unknown direction".into())),
    };
    let status: String = row.try_get("status")?;
    let decisions = match row.try_get::<String, _>("decisions") {
        Ok(json) => decisions_from_json(&json).map_err(|e| corrupt(e.to_string()))?,
        // Listings do not select the column.
        Err(_) => Vec::new(),
    };
    Ok(StoredReferral {
        decisions,
        referral,
        direction,
        status: ReferralStatus::parse(&status).ok_or_else(|| corrupt("unknown status".into()))?,
        recorded_at: from_ms(row.try_get("recorded_at")?),
    })
}

fn outbox_entry(row: &sqlx::sqlite::SqliteRow) -> Result<OutboxEntry, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let corrupt = |problem: &str| StoreError::Corrupt {
        table: "outbox",
        id: seq.to_string(),
        problem: problem.to_owned(),
    };
    let uuid = |column: &str| -> Result<Uuid, StoreError> {
        let text: String = row.try_get(column)?;
        Uuid::from_str(&text).map_err(|_| corrupt(column))
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

/// A trust anchor added by an admin or a directory.
#[derive(Debug, Clone)]
pub struct StoredAnchor {
    /// SHA-256 of the certificate DER, hex.
    pub fingerprint: String,
    /// The federation it is the root of.
    pub federation: String,
    /// The certificate, PEM.
    pub pem: String,
    /// `admin` or `directory`.
    pub source: String,
}

/// A peer added by an admin or a directory.
#[derive(Debug, Clone)]
pub struct StoredPeer {
    /// Team identity URI.
    pub identity: String,
    /// `https://host:port`.
    pub endpoint: String,
    /// core, affiliate or partner.
    pub role: String,
    /// The discipline's name.
    pub discipline: String,
    /// Jurisdiction.
    pub jurisdiction: String,
    /// Whether it may hold criminal-justice information.
    pub cjis_authorized: bool,
    /// A certificate fingerprint the directory pins it to.
    pub pinned_sha256: Option<String>,
    /// `admin` or `directory`.
    pub source: String,
}

/// The latest imported directory of one federation.
#[derive(Debug, Clone)]
pub struct StoredDirectory {
    /// The federation.
    pub federation: String,
    /// Its sequence number.
    pub sequence: u64,
    /// When the CA signed it.
    pub issued_at: OffsetDateTime,
    /// When this node imported it.
    pub imported_at: OffsetDateTime,
    /// The signed document, verbatim.
    pub document: String,
}

/// The latest CRL of one federation.
#[derive(Debug, Clone)]
pub struct StoredCrl {
    /// The federation.
    pub federation: String,
    /// Its CRL number.
    pub crl_number: u64,
    /// The CRL, PEM.
    pub pem: String,
}

/// Everything the trust layer keeps in the store.
#[derive(Debug, Clone, Default)]
pub struct StoredTrust {
    /// Anchors beyond the config file's.
    pub anchors: Vec<StoredAnchor>,
    /// Peers beyond the config file's.
    pub peers: Vec<StoredPeer>,
    /// Identities refused whatever their source.
    pub blocked: std::collections::HashSet<String>,
    /// Config peers an admin removed.
    pub removed: std::collections::HashSet<String>,
    /// The latest directory per federation.
    pub directories: Vec<StoredDirectory>,
    /// The latest CRL per federation.
    pub crls: Vec<StoredCrl>,
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Store {
    /// Reads the whole trust state.
    pub async fn load_trust(&self) -> Result<StoredTrust, StoreError> {
        let anchors = sqlx::query("SELECT fingerprint, federation, pem, source FROM trust_anchors")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(StoredAnchor {
                    fingerprint: r.try_get("fingerprint")?,
                    federation: r.try_get("federation")?,
                    pem: r.try_get("pem")?,
                    source: r.try_get("source")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let peers = sqlx::query(
            "SELECT identity, endpoint, role, discipline, jurisdiction, cjis_authorized,
                    pinned_sha256, source FROM trust_peers",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(StoredPeer {
                identity: r.try_get("identity")?,
                endpoint: r.try_get("endpoint")?,
                role: r.try_get("role")?,
                discipline: r.try_get("discipline")?,
                jurisdiction: r.try_get("jurisdiction")?,
                cjis_authorized: r.try_get::<i64, _>("cjis_authorized")? != 0,
                pinned_sha256: r.try_get("pinned_sha256")?,
                source: r.try_get("source")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let blocked = sqlx::query_scalar("SELECT identity FROM blocked_peers")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .collect();
        let removed = sqlx::query_scalar("SELECT identity FROM removed_peers")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .collect();
        let directories = sqlx::query(
            "SELECT federation, sequence, issued_at, imported_at, document FROM directories",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(StoredDirectory {
                federation: r.try_get("federation")?,
                sequence: to_u64(r.try_get("sequence")?),
                issued_at: from_ms(r.try_get("issued_at")?),
                imported_at: from_ms(r.try_get("imported_at")?),
                document: r.try_get("document")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let crls = sqlx::query("SELECT federation, crl_number, pem FROM crls")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(StoredCrl {
                    federation: r.try_get("federation")?,
                    crl_number: to_u64(r.try_get("crl_number")?),
                    pem: r.try_get("pem")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(StoredTrust {
            anchors,
            peers,
            blocked,
            removed,
            directories,
            crls,
        })
    }

    /// Adds or replaces a peer, and lifts an earlier removal of it.
    pub async fn put_peer(&self, peer: &StoredPeer) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        insert_peer(&mut tx, peer).await?;
        sqlx::query("DELETE FROM removed_peers WHERE identity = ?")
            .bind(&peer.identity)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a peer, whatever its source.
    pub async fn remove_peer(&self, identity: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM trust_peers WHERE identity = ?")
            .bind(identity)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT OR REPLACE INTO removed_peers (identity, removed_at) VALUES (?, ?)")
            .bind(identity)
            .bind(ms(OffsetDateTime::now_utc()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Blocks or unblocks an identity.
    pub async fn set_blocked(&self, identity: &str, blocked: bool) -> Result<(), StoreError> {
        let query = if blocked {
            sqlx::query("INSERT OR REPLACE INTO blocked_peers (identity, blocked_at) VALUES (?, ?)")
                .bind(identity)
                .bind(ms(OffsetDateTime::now_utc()))
        } else {
            sqlx::query("DELETE FROM blocked_peers WHERE identity = ?").bind(identity)
        };
        query.execute(&self.pool).await?;
        Ok(())
    }

    /// Adds a trust anchor.
    pub async fn put_anchor(&self, anchor: &StoredAnchor) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        insert_anchor(&mut tx, anchor).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a trust anchor.
    pub async fn remove_anchor(&self, fingerprint: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM trust_anchors WHERE fingerprint = ?")
            .bind(fingerprint)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a CRL, replacing the federation's previous one.
    pub async fn put_crl(&self, crl: &StoredCrl) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        insert_crl(&mut tx, crl).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Applies a verified directory in one transaction: it replaces the federation's
    /// directory-sourced peers and anchors, and its CRL when it carries a newer one.
    pub async fn apply_directory(
        &self,
        directory: &StoredDirectory,
        peers: &[StoredPeer],
        anchors: &[StoredAnchor],
        crl: Option<&StoredCrl>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT OR REPLACE INTO directories (federation, sequence, issued_at, imported_at,
                                                 document)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&directory.federation)
        .bind(to_i64(directory.sequence))
        .bind(ms(directory.issued_at))
        .bind(ms(directory.imported_at))
        .bind(&directory.document)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM trust_peers WHERE source = 'directory' AND identity LIKE ?")
            .bind(format!("spiffe://{}/team/%", directory.federation))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM trust_anchors WHERE source = 'directory' AND federation = ?")
            .bind(&directory.federation)
            .execute(&mut *tx)
            .await?;
        for peer in peers {
            insert_peer(&mut tx, peer).await?;
        }
        for anchor in anchors {
            insert_anchor(&mut tx, anchor).await?;
        }
        if let Some(crl) = crl {
            insert_crl(&mut tx, crl).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_peer(tx: &mut Tx<'_>, peer: &StoredPeer) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR REPLACE INTO trust_peers (identity, endpoint, role, discipline, jurisdiction,
                                             cjis_authorized, pinned_sha256, source, added_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&peer.identity)
    .bind(&peer.endpoint)
    .bind(&peer.role)
    .bind(&peer.discipline)
    .bind(&peer.jurisdiction)
    .bind(i64::from(peer.cjis_authorized))
    .bind(&peer.pinned_sha256)
    .bind(&peer.source)
    .bind(ms(OffsetDateTime::now_utc()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_anchor(tx: &mut Tx<'_>, anchor: &StoredAnchor) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR REPLACE INTO trust_anchors (fingerprint, federation, pem, source, added_at)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&anchor.fingerprint)
    .bind(&anchor.federation)
    .bind(&anchor.pem)
    .bind(&anchor.source)
    .bind(ms(OffsetDateTime::now_utc()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_crl(tx: &mut Tx<'_>, crl: &StoredCrl) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO crls (federation, crl_number, pem, imported_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (federation) DO UPDATE SET crl_number = excluded.crl_number,
             pem = excluded.pem, imported_at = excluded.imported_at
         WHERE excluded.crl_number > crls.crl_number",
    )
    .bind(&crl.federation)
    .bind(to_i64(crl.crl_number))
    .bind(&crl.pem)
    .bind(ms(OffsetDateTime::now_utc()))
    .execute(&mut **tx)
    .await?;
    Ok(())
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

fn decisions_json(decisions: &[FieldDecision]) -> String {
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

fn decisions_from_json(json: &str) -> Result<Vec<FieldDecision>, String> {
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

impl Store {
    /// Records a consent.
    pub async fn put_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        let body = convert::consent_to_proto(consent).encode_to_vec();
        sqlx::query("INSERT INTO consents (id, recorded_at, revoked_at, body) VALUES (?, ?, ?, ?)")
            .bind(consent.id.to_string())
            .bind(ms(consent.recorded_at))
            .bind(consent.revoked_at.map(ms))
            .bind(body)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// One consent, with its revocation.
    pub async fn consent(
        &self,
        id: Uuid,
        federation: &tatmx_certs::FederationId,
    ) -> Result<Option<Consent>, StoreError> {
        let row = sqlx::query("SELECT id, revoked_at, body FROM consents WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| consent_row(&row, federation)).transpose()
    }

    /// Consents, newest first.
    pub async fn consents(
        &self,
        limit: u32,
        federation: &tatmx_certs::FederationId,
    ) -> Result<Vec<Consent>, StoreError> {
        sqlx::query(
            "SELECT id, revoked_at, body FROM consents ORDER BY recorded_at DESC, id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| consent_row(row, federation))
        .collect()
    }

    /// Revokes a consent, once; returns it, or `None` if there is no such consent.
    pub async fn revoke_consent(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        federation: &tatmx_certs::FederationId,
    ) -> Result<Option<Consent>, StoreError> {
        sqlx::query("UPDATE consents SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(ms(at))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        self.consent(id, federation).await
    }
}

fn consent_row(
    row: &sqlx::sqlite::SqliteRow,
    federation: &tatmx_certs::FederationId,
) -> Result<Consent, StoreError> {
    let id: String = row.try_get("id")?;
    let body: Vec<u8> = row.try_get("body")?;
    let corrupt = |problem: String| StoreError::Corrupt {
        table: "consents",
        id: id.clone(),
        problem,
    };
    let wire = pb::Consent::decode(body.as_slice()).map_err(|e| corrupt(e.to_string()))?;
    let mut consent =
        convert::consent_from_proto(wire, federation).map_err(|e| corrupt(e.to_string()))?;
    consent.revoked_at = row.try_get::<Option<i64>, _>("revoked_at")?.map(from_ms);
    Ok(consent)
}
