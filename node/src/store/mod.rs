//! The node's durable state, and the only module that speaks SQL.
//!
//! Every operation that changes more than one row runs in one transaction, so a crash leaves
//! either all of it or none of it; concurrent writes share one commit ([`writer`]). SQLite runs
//! in WAL mode with `synchronous=FULL`: an acknowledgement to a peer promises the message is on
//! disk, so every commit is fsynced before the call returns. Case data is stored as the canonical protobuf
//! encoding of the referral, with a few plain columns beside it for listing. A received
//! referral's body, and anything made from it, is sealed under that referral's own data key
//! ([`crate::vault`]); purging deletes the key. `secure_delete` is on, and the WAL is
//! checkpointed after every purge, so purged bytes do not linger in free pages or old frames.

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use tatmx_certs::TeamIdentity;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::category::DataCategory;
pub use crate::config::StoreLocation;
use crate::consent::Consent;
use crate::filter::{FieldDecision, Outcome};
use crate::lifecycle::{self, Side, TransitionError};
use crate::referral::{
    AssessmentOutcome, LegalBasis, Purpose, Referral, ReferralStatus, StatusUpdate,
};
use crate::retraction::{
    Copy, PurgeCause, Retraction, RetractionAck, RetractionProgress, TargetProgress, Tombstone,
};
use crate::{vault, wire};

pub mod accounts;
mod audit_log;
pub mod observe;
mod writer;

use crate::audit::{self, AuditRecord};
#[cfg(feature = "bench-internals")]
pub use audit_log::disable_accountability_for_benchmarks;
pub use audit_log::{MessageProof, WitnessConflict};
use writer::Tx;

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
    /// A data key could not be made, or a sealed body failed to open.
    #[error("sealing: {0}")]
    Vault(#[from] vault::VaultError),
    /// The group commit this write was part of did not commit; none of the write was kept.
    #[error("database commit: {0}")]
    GroupCommit(String),
}

impl StoreError {
    /// Whether the database was busy or locked, which a caller may retry: SQLite's
    /// `SQLITE_BUSY`, or on PostgreSQL a lock wait that ran out (55P03), a serialization
    /// failure (40001) or a deadlock (40P01); also a pool with no connection to give, as when
    /// the PostgreSQL server cannot be reached.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::PoolTimedOut))
            || self.database_says(|message| {
                message.contains("locked")
                    || message.contains("busy")
                    || message.contains("lock timeout")
            })
            || self.postgres_code_is(&["55P03", "40001", "40P01"])
    }

    /// Whether the disk (or the database's size limit) is full: SQLite's `SQLITE_FULL`, or
    /// PostgreSQL's `disk_full` (53100). Nothing of the write was kept; it can succeed once
    /// space is freed.
    pub fn is_full(&self) -> bool {
        self.database_says(|message| message.contains("database or disk is full"))
            || self.postgres_code_is(&["53100"])
    }

    /// Whether the database's message for this error, directly or through a group commit,
    /// matches.
    fn database_says(&self, matches: impl Fn(&str) -> bool) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(e)) => matches(e.message()),
            Self::GroupCommit(why) => matches(why),
            _ => false,
        }
    }

    /// Whether this is a PostgreSQL error with one of these SQLSTATE codes. (A group commit
    /// keeps only the message, which [`Self::database_says`] reads.)
    fn postgres_code_is(&self, codes: &[&str]) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(e)) => e
                .code()
                .is_some_and(|code| code.len() == 5 && codes.contains(&code.as_ref())),
            _ => false,
        }
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
    /// A request to purge, for `Federation.Retract`.
    Retraction,
    /// A purge report, for `Federation.AcknowledgeRetraction`.
    RetractionAck,
}

impl MessageKind {
    /// The stored name; also the kind a message signature names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Referral => "referral",
            Self::StatusUpdate => "status-update",
            Self::Retraction => "retraction",
            Self::RetractionAck => "retraction-ack",
        }
    }

    /// The kind with this stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "referral" => Some(Self::Referral),
            "status-update" => Some(Self::StatusUpdate),
            "retraction" => Some(Self::Retraction),
            "retraction-ack" => Some(Self::RetractionAck),
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
    /// Never to be sent: the data it carried was retracted or purged first.
    Cancelled,
}

impl DeliveryState {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "dead" => Some(Self::Dead),
            "cancelled" => Some(Self::Cancelled),
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
    /// The referral it belongs to.
    pub referral_id: Uuid,
    /// The peer it goes to, as an identity URI.
    pub peer: String,
    /// When it was queued.
    pub created_at: OffsetDateTime,
    /// The message's canonical bytes ([`crate::wire`]).
    pub body: Vec<u8>,
    /// Attempts so far.
    pub attempts: u32,
    /// When it is due.
    pub next_attempt_at: OffsetDateTime,
    /// When it was queued, or last retried by an admin: its maximum age counts from here.
    pub age_from: OffsetDateTime,
    /// The replica that claimed it for delivery, and until when ([`Store::claim`]).
    pub lease: Option<(String, OffsetDateTime)>,
}

impl DueMessage {
    /// Whether a replica other than `me` holds it at `now`: it is being delivered there.
    pub fn leased_elsewhere(&self, me: &str, now: OffsetDateTime) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|(owner, until)| owner != me && *until >= now)
    }
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
    /// Why, when a reason was given (and not withheld).
    pub reason: Option<String>,
    /// A completed assessment's outcome.
    pub outcome: Option<AssessmentOutcome>,
    /// For a forward: the team it went to, as an identity URI.
    pub forwarded_to: Option<String>,
}

/// Who submitted a referral, and what makes the submission itself recognisable.
#[derive(Debug, Clone, Copy, Default)]
pub struct Submission<'a> {
    /// For a forward: the received referral it was made from.
    pub forwarded_from: Option<Uuid>,
    /// The agency's own reference for the subject.
    pub subject: Option<&'a str>,
    /// Who submitted it.
    pub actor: &'a str,
    /// The client's idempotency key, and the digest of the draft it came with.
    pub idempotency: Option<(&'a str, &'a str)>,
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

/// What a received retraction or acknowledgement did, and which peers have new messages.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Stored, a duplicate, a conflict, or about nothing this caller may touch.
    pub outcome: Inbound,
    /// Peers with newly queued messages, to wake their delivery.
    pub notify: Vec<TeamIdentity>,
}

/// A data key and the row it seals, for one write.
struct Sealing {
    /// The key's id: the received referral it was made for.
    key_id: String,
    /// The key.
    key: Vec<u8>,
}

/// Which database the store runs on. The SQL is one portable body for both (`$1`
/// placeholders, `ON CONFLICT`, no engine-specific functions); the few places that must differ
/// ask this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file: one node process.
    Sqlite,
    /// PostgreSQL: one or more replicas of a team's node.
    Postgres,
}

/// The node's database.
#[derive(Debug, Clone)]
pub struct Store {
    /// Connections to the database, through sqlx's `Any` driver so one body of SQL serves
    /// both backends.
    pool: AnyPool,
    /// Which backend `pool` is.
    backend: Backend,
    /// Write transactions, batched into group commits.
    writer: writer::Writer,
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

/// Connects to the SQLite file at `path`, creating it if needed.
///
/// The `Any` driver takes SQLite options only as a URL, so the pragmas are set on each new
/// connection instead: WAL with `synchronous=FULL` (an acknowledgement promises the message is
/// on disk), foreign keys, and `secure_delete`, so deleted content (a purged data key) is
/// overwritten rather than left in free pages.
async fn open_sqlite(path: &Path) -> Result<AnyPool, StoreError> {
    sqlx::any::install_default_drivers();
    // The URL's path is percent-decoded; only these three characters would change its meaning.
    let file = path
        .to_string_lossy()
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    let pool = AnyPoolOptions::new()
        .max_connections(4)
        .after_connect(|connection, _| {
            Box::pin(async move {
                connection
                    .execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
                         PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;
                         PRAGMA busy_timeout = 5000;",
                    )
                    .await?;
                Ok(())
            })
        })
        .connect(&format!("sqlite://{file}?mode=rwc"))
        .await?;
    Ok(pool)
}

/// The canonical bytes of a referral: what is stored, digested, and sent ([`crate::wire`]).
pub use crate::wire::encode_referral;

impl Store {
    /// Starts a write, in the batch of the next group commit ([`writer`]).
    async fn write(&self) -> Result<Tx, StoreError> {
        self.writer.begin(&self.pool).await
    }

    /// Opens (creating if needed) the SQLite database at `path` and brings its schema up to
    /// date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_at(&StoreLocation::Sqlite(path.to_owned())).await
    }

    /// Opens the store where the config puts it, and brings its schema up to date. A
    /// PostgreSQL database must exist already (an admin creates it, see docs/OPERATIONS.md);
    /// its tables are made here.
    pub async fn open_at(location: &StoreLocation) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (pool, backend) = match location {
            StoreLocation::Sqlite(path) => (open_sqlite(path).await?, Backend::Sqlite),
            StoreLocation::Postgres(url) => (
                AnyPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|connection, _| {
                        Box::pin(async move {
                            // As SQLite's busy timeout: a write that cannot get its locks in
                            // 5 s is refused as busy, rather than holding its caller forever.
                            connection.execute("SET lock_timeout = '5s'").await?;
                            Ok(())
                        })
                    })
                    .connect(url.expose())
                    .await?,
                Backend::Postgres,
            ),
        };
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        Ok(Self {
            pool,
            backend,
            writer: writer::Writer::new(backend),
        })
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Stores a referral this node is sending (exactly what leaves) with the filter's decisions,
    /// and queues it for delivery, atomically. A forward names the received referral it was
    /// made from, and is sealed under that referral's data key, so purging one purges both.
    /// A submission whose idempotency key was seen before stores nothing and names the earlier
    /// referral.
    pub async fn submit_referral(
        &self,
        referral: &Referral,
        decisions: &[FieldDecision],
        submission: &Submission<'_>,
    ) -> Result<Submitted, StoreError> {
        let body = encode_referral(referral);
        let now = OffsetDateTime::now_utc();
        let mut tx = self.write().await?;
        if let Some((key, draft_digest)) = submission.idempotency {
            let earlier = sqlx::query(
                "SELECT referral_id, draft_digest FROM submissions WHERE idempotency_key = $1",
            )
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = earlier {
                let id: String = row.try_get("referral_id")?;
                let digest: String = row.try_get("draft_digest")?;
                if digest != draft_digest {
                    return Ok(Submitted::KeyReused);
                }
                return Uuid::parse_str(&id).map(Submitted::Earlier).map_err(|_| {
                    StoreError::Corrupt {
                        table: "submissions",
                        id: key.to_owned(),
                        problem: "referral id".into(),
                    }
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
            .execute(&mut *tx)
            .await?;
        }
        let Submission {
            forwarded_from,
            subject,
            actor,
            ..
        } = *submission;
        let sealing = match forwarded_from {
            Some(source) => sealing_of(&mut tx, source).await?,
            None => None,
        };
        insert_referral(
            &mut tx,
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
            .execute(&mut *tx)
            .await?;
        audit_log::append(
            &mut tx,
            &audit::disclosure(referral, decisions, forwarded_from, subject, actor),
        )
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
            sealing.as_ref(),
        )
        .await?;
        tx.commit().await?;
        Ok(Submitted::New)
    }

    /// Stores a referral delivered by its sender, sealed under a new data key and kept until
    /// `retain_until`, and queues the `received` acknowledgement back to the sender,
    /// atomically. A redelivery changes nothing, even after the referral was purged.
    pub async fn receive_referral(
        &self,
        referral: &Referral,
        ack: &StatusUpdate,
        retain_until: OffsetDateTime,
        proof: &MessageProof,
    ) -> Result<Inbound, StoreError> {
        let body = encode_referral(referral);
        let digest = digest(&body);
        let now = OffsetDateTime::now_utc();
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
            &body,
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
        audit_log::put_proof(&mut tx, proof, "received").await?;
        audit_log::append(
            &mut tx,
            &audit::receipt(referral, &hex::encode(&proof.digest)),
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
        proof: &MessageProof,
    ) -> Result<Result<Inbound, TransitionError>, StoreError> {
        let body = wire::encode_status_update(update);
        let digest = digest(&body);
        let now = OffsetDateTime::now_utc();
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
        audit_log::put_proof(&mut tx, proof, "received").await?;
        let subject: Option<String> = row.try_get("subject")?;
        audit_log::append(
            &mut tx,
            &audit::status_change(update, false, &from.uri(), subject.as_deref(), &from.uri()),
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
        actor: &str,
    ) -> Result<Result<(), TransitionError>, StoreError> {
        let body = wire::encode_status_update(update);
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "SELECT direction, status, consultation_id, subject FROM referrals WHERE id = $1",
        )
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
            None,
        )
        .await?;
        let subject: Option<String> = row.try_get("subject")?;
        audit_log::append(
            &mut tx,
            &audit::status_change(update, true, &other_party.uri(), subject.as_deref(), actor),
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Received referrals, newest first.
    pub async fn inbox(&self, limit: u32) -> Result<Vec<StoredReferral>, StoreError> {
        let rows = sqlx::query(&format!(
            "{REFERRAL_COLUMNS} WHERE r.direction = 'inbound'
             ORDER BY r.recorded_at DESC, r.id DESC LIMIT $1"
        ))
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
        let Some(row) = sqlx::query(&format!("{REFERRAL_COLUMNS} WHERE r.id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let stored = stored_referral(&row)?;
        let events = sqlx::query(
            "SELECT status, at, actor, reason, outcome, forwarded_to FROM status_events
             WHERE referral_id = $1 ORDER BY seq",
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
                    .and_then(|b| wire::decode_outcome(&b).ok()),
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
             FROM outbox ORDER BY seq DESC LIMIT $1",
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
             FROM outbox WHERE message_id = $1",
        )
        .bind(message_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(outbox_entry).transpose()
    }

    /// The oldest undelivered message for `peer`, due or not.
    pub async fn next_for_peer(
        &self,
        peer: &TeamIdentity,
    ) -> Result<Option<DueMessage>, StoreError> {
        Ok(self.queued_for_peer(peer, 1).await?.into_iter().next())
    }

    /// Up to `limit` of `peer`'s undelivered messages, due or not, oldest first: the window the
    /// delivery worker picks from, keeping each referral's messages in this order.
    pub async fn queued_for_peer(
        &self,
        peer: &TeamIdentity,
        limit: usize,
    ) -> Result<Vec<DueMessage>, StoreError> {
        // A sealed message whose key was purged is cancelled in the same transaction as the
        // purge; the join's condition only keeps a race from ever sending it.
        let rows = sqlx::query(
            "SELECT o.seq, o.message_id, o.kind, o.referral_id, o.peer, o.body, o.attempts,
                    o.created_at, o.next_attempt_at, COALESCE(o.retried_at, o.created_at) AS age_from,
                    o.lease_owner, o.lease_until, k.key AS sealing_key
             FROM outbox o LEFT JOIN data_keys k ON k.id = o.data_key
             WHERE o.peer = $1 AND o.state = 'pending' AND (o.data_key IS NULL OR k.key IS NOT NULL)
             ORDER BY o.seq LIMIT $2",
        )
        .bind(peer.uri())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(due_message).collect()
    }

    /// Claims those of `candidates` (outbox seqs) that are still pending and not leased to
    /// another replica, for replica `owner` until `until`, and returns the seqs claimed: only
    /// those may be sent. A replica that dies holding a claim frees it when `until` passes.
    ///
    /// On PostgreSQL this is one statement of its own, outside the group commit and its
    /// advisory lock, and it locks the rows `FOR UPDATE SKIP LOCKED`: two replicas claiming at
    /// once split the rows between them and neither waits. A SQLite store serves one process,
    /// so everything it is asked for is its own already.
    pub async fn claim(
        &self,
        candidates: &[i64],
        owner: &str,
        until: OffsetDateTime,
    ) -> Result<Vec<i64>, StoreError> {
        if self.backend == Backend::Sqlite || candidates.is_empty() {
            return Ok(candidates.to_vec());
        }
        let now = ms(OffsetDateTime::now_utc());
        // The Any driver binds no arrays, so the candidates are numbered placeholders.
        let list = (0..candidates.len())
            .map(|i| format!("${}", i + 4))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE outbox SET lease_owner = $1, lease_until = $2
             WHERE seq IN (SELECT seq FROM outbox
                           WHERE seq IN ({list}) AND state = 'pending'
                             AND (lease_until IS NULL OR lease_until < $3 OR lease_owner = $1)
                           FOR UPDATE SKIP LOCKED)
             RETURNING seq"
        );
        let mut query = sqlx::query_scalar::<_, i64>(&sql)
            .bind(owner)
            .bind(ms(until))
            .bind(now);
        for seq in candidates {
            query = query.bind(*seq);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// The peers with messages due now that no replica holds: what a replica looks for when
    /// it did not queue the messages itself, or their claimant died.
    pub async fn peers_with_unclaimed(&self) -> Result<Vec<String>, StoreError> {
        let now = ms(OffsetDateTime::now_utc());
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT peer FROM outbox
             WHERE state = 'pending' AND next_attempt_at <= $1
               AND (lease_until IS NULL OR lease_until < $1)",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records the peer's acknowledgement, with the signed receipt that proves it.
    pub async fn mark_delivered(&self, seq: i64, proof: &MessageProof) -> Result<(), StoreError> {
        self.mark_all_delivered(&[(seq, proof)]).await
    }

    /// Records several acknowledgements in one transaction: one commit, and one fsync, for a
    /// whole window of deliveries. Each outbox row is named by its `seq`.
    pub async fn mark_all_delivered(
        &self,
        delivered: &[(i64, &MessageProof)],
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let now = ms(OffsetDateTime::now_utc());
        for (seq, proof) in delivered {
            sqlx::query(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, delivered_at = $1,
                        last_error = NULL, lease_owner = NULL, lease_until = NULL
                 WHERE seq = $2 AND state = 'pending'",
            )
            .bind(now)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
            audit_log::put_proof(&mut tx, proof, "sent").await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records failed attempts and when to try each again, in one transaction: a window that
    /// failed together (its peer down, say) costs one commit. Each entry is an outbox `seq`,
    /// why the attempt failed, and when the next is due.
    pub async fn mark_all_retry(
        &self,
        retries: &[(i64, &str, OffsetDateTime)],
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for (seq, error, next_attempt_at) in retries {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2,
                        lease_owner = NULL, lease_until = NULL
                 WHERE seq = $3 AND state = 'pending'",
            )
            .bind(error)
            .bind(ms(*next_attempt_at))
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Makes a message a dead letter: refused for good by its peer (`attempted`), or
    /// undelivered past the maximum age. Returns whether it was still pending: false when it
    /// settled meanwhile (another replica expired or delivered it, or a purge cancelled it).
    pub async fn mark_dead(
        &self,
        seq: i64,
        error: &str,
        attempted: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let changed = sqlx::query(
            "UPDATE outbox SET state = 'dead', attempts = attempts + $1, last_error = $2,
                    lease_owner = NULL, lease_until = NULL
             WHERE seq = $3 AND state = 'pending'",
        )
        .bind(i64::from(attempted))
        .bind(error)
        .bind(seq)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(changed > 0)
    }

    /// Sends a dead letter again: pending from now, its maximum age counted afresh. Returns
    /// the peer it goes to, or `None` if there is no such dead letter.
    pub async fn retry_dead(&self, message_id: Uuid) -> Result<Option<String>, StoreError> {
        let now = ms(OffsetDateTime::now_utc());
        let peer: Option<String> = sqlx::query_scalar(
            "UPDATE outbox SET state = 'pending', next_attempt_at = $1, retried_at = $2
             WHERE message_id = $3 AND state = 'dead' RETURNING peer",
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

/// Reads one outbox row, opening its body if it is sealed.
fn due_message(row: &AnyRow) -> Result<DueMessage, StoreError> {
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

fn stored_status(row: &AnyRow, id: Uuid) -> Result<ReferralStatus, StoreError> {
    let status: String = row.try_get("status")?;
    ReferralStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
        table: "referrals",
        id: id.to_string(),
        problem: "unknown status".into(),
    })
}

/// Records a status change: the event, and (when `moves`) the referral's current status.
async fn insert_status(tx: &mut Tx, update: &StatusUpdate, moves: bool) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO status_events (referral_id, status, actor, at, reason, outcome, forwarded_to)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(update.referral_id.to_string())
    .bind(update.status.as_str())
    .bind(update.author.uri())
    .bind(ms(update.at))
    .bind(&update.reason)
    .bind(update.outcome.as_ref().map(wire::encode_outcome))
    .bind(update.forwarded_to.as_ref().map(TeamIdentity::uri))
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

async fn check_replay(
    tx: &mut Tx,
    message_id: Uuid,
    digest: &str,
) -> Result<Option<Inbound>, StoreError> {
    let previous: Option<String> =
        sqlx::query_scalar("SELECT digest FROM received_messages WHERE message_id = $1")
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
    tx: &mut Tx,
    message_id: Uuid,
    kind: MessageKind,
    sender: &TeamIdentity,
    digest: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO received_messages (message_id, kind, sender, digest, received_at)
         VALUES ($1, $2, $3, $4, $5)",
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
async fn sealing_of(tx: &mut Tx, referral_id: Uuid) -> Result<Option<Sealing>, StoreError> {
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

async fn insert_event(
    tx: &mut Tx,
    referral_id: Uuid,
    status: ReferralStatus,
    actor: &TeamIdentity,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO status_events (referral_id, status, actor, at) VALUES ($1, $2, $3, $4)",
    )
    .bind(referral_id.to_string())
    .bind(status.as_str())
    .bind(actor.uri())
    .bind(ms(at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)] // one column each; a struct would only rename them
async fn enqueue(
    tx: &mut Tx,
    message_id: Uuid,
    kind: MessageKind,
    referral_id: Uuid,
    peer: &TeamIdentity,
    body: &[u8],
    now: OffsetDateTime,
    sealing: Option<&Sealing>,
) -> Result<(), StoreError> {
    let stored_body = match sealing {
        Some(sealing) => vault::seal(&sealing.key, &format!("outbox/{message_id}"), body)?,
        None => body.to_vec(),
    };
    sqlx::query(
        "INSERT INTO outbox (message_id, kind, referral_id, peer, body, state, created_at,
                             next_attempt_at, data_key)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8)",
    )
    .bind(message_id.to_string())
    .bind(kind.as_str())
    .bind(referral_id.to_string())
    .bind(peer.uri())
    .bind(stored_body)
    .bind(ms(now))
    .bind(ms(now))
    .bind(sealing.map(|s| s.key_id.as_str()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn stored_referral(row: &AnyRow) -> Result<StoredReferral, StoreError> {
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

fn outbox_entry(row: &AnyRow) -> Result<OutboxEntry, StoreError> {
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

/// A trust anchor added by an admin or a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCrl {
    /// The federation.
    pub federation: String,
    /// Its CRL number.
    pub crl_number: u64,
    /// The CRL, PEM.
    pub pem: String,
}

/// Everything the trust layer keeps in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    pub async fn put_peer(&self, peer: &StoredPeer, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_peer(&mut tx, peer).await?;
        sqlx::query("DELETE FROM removed_peers WHERE identity = $1")
            .bind(&peer.identity)
            .execute(&mut *tx)
            .await?;
        audit_log::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a peer, whatever its source.
    pub async fn remove_peer(&self, identity: &str, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM trust_peers WHERE identity = $1")
            .bind(identity)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO removed_peers (identity, removed_at) VALUES ($1, $2)
             ON CONFLICT (identity) DO UPDATE SET removed_at = excluded.removed_at",
        )
        .bind(identity)
        .bind(ms(OffsetDateTime::now_utc()))
        .execute(&mut *tx)
        .await?;
        audit_log::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Blocks or unblocks an identity.
    pub async fn set_blocked(
        &self,
        identity: &str,
        blocked: bool,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let query = if blocked {
            sqlx::query(
                "INSERT INTO blocked_peers (identity, blocked_at) VALUES ($1, $2)
                 ON CONFLICT (identity) DO UPDATE SET blocked_at = excluded.blocked_at",
            )
            .bind(identity)
            .bind(ms(OffsetDateTime::now_utc()))
        } else {
            sqlx::query("DELETE FROM blocked_peers WHERE identity = $1").bind(identity)
        };
        query.execute(&mut *tx).await?;
        audit_log::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds a trust anchor.
    pub async fn put_anchor(
        &self,
        anchor: &StoredAnchor,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_anchor(&mut tx, anchor).await?;
        audit_log::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a trust anchor.
    pub async fn remove_anchor(
        &self,
        fingerprint: &str,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM trust_anchors WHERE fingerprint = $1")
            .bind(fingerprint)
            .execute(&mut *tx)
            .await?;
        audit_log::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a CRL, replacing the federation's previous one.
    pub async fn put_crl(&self, crl: &StoredCrl, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_crl(&mut tx, crl).await?;
        audit_log::append(&mut tx, audit).await?;
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
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO directories (federation, sequence, issued_at, imported_at, document)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (federation) DO UPDATE SET sequence = excluded.sequence,
                 issued_at = excluded.issued_at, imported_at = excluded.imported_at,
                 document = excluded.document",
        )
        .bind(&directory.federation)
        .bind(to_i64(directory.sequence))
        .bind(ms(directory.issued_at))
        .bind(ms(directory.imported_at))
        .bind(&directory.document)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM trust_peers WHERE source = 'directory' AND identity LIKE $1")
            .bind(format!("spiffe://{}/team/%", directory.federation))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM trust_anchors WHERE source = 'directory' AND federation = $1")
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
        audit_log::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_peer(tx: &mut Tx, peer: &StoredPeer) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO trust_peers (identity, endpoint, role, discipline, jurisdiction,
                                  cjis_authorized, pinned_sha256, source, added_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (identity) DO UPDATE SET endpoint = excluded.endpoint,
             role = excluded.role, discipline = excluded.discipline,
             jurisdiction = excluded.jurisdiction, cjis_authorized = excluded.cjis_authorized,
             pinned_sha256 = excluded.pinned_sha256, source = excluded.source,
             added_at = excluded.added_at",
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

async fn insert_anchor(tx: &mut Tx, anchor: &StoredAnchor) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO trust_anchors (fingerprint, federation, pem, source, added_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (fingerprint) DO UPDATE SET federation = excluded.federation,
             pem = excluded.pem, source = excluded.source, added_at = excluded.added_at",
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

async fn insert_crl(tx: &mut Tx, crl: &StoredCrl) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO crls (federation, crl_number, pem, imported_at) VALUES ($1, $2, $3, $4)
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
    pub async fn put_consent(&self, consent: &Consent, actor: &str) -> Result<(), StoreError> {
        let body = wire::encode_consent(consent);
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO consents (id, recorded_at, revoked_at, body) VALUES ($1, $2, $3, $4)",
        )
        .bind(consent.id.to_string())
        .bind(ms(consent.recorded_at))
        .bind(consent.revoked_at.map(ms))
        .bind(body)
        .execute(&mut *tx)
        .await?;
        audit_log::append(&mut tx, &audit::consent_recorded(consent, actor)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One consent, with its revocation.
    pub async fn consent(
        &self,
        id: Uuid,
        federation: &tatmx_certs::FederationId,
    ) -> Result<Option<Consent>, StoreError> {
        let row = sqlx::query("SELECT id, revoked_at, body FROM consents WHERE id = $1")
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
            "SELECT id, revoked_at, body FROM consents ORDER BY recorded_at DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| consent_row(row, federation))
        .collect()
    }

    /// Revokes a consent, once, and starts its retraction in the same transaction: every
    /// referral sent on the basis of that consent that is still undelivered is cancelled, and
    /// each recipient is sent a [`Retraction`] (even of a cancelled one, which may have been in
    /// flight). Returns the consent and the peers with new messages, or `None` if there is no
    /// such consent. Revoking again changes nothing; the first retraction goes on.
    pub async fn revoke_consent(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        federation: &tatmx_certs::FederationId,
        actor: &str,
    ) -> Result<Option<(Consent, Vec<TeamIdentity>)>, StoreError> {
        let mut tx = self.write().await?;
        let revoked =
            sqlx::query("UPDATE consents SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(ms(at))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let mut notify = Vec::new();
        if revoked == 1 {
            let retraction_id = Uuid::now_v7();
            sqlx::query("INSERT INTO retractions (id, consent_id, started_at) VALUES ($1, $2, $3)")
                .bind(retraction_id.to_string())
                .bind(id.to_string())
                .bind(ms(at))
                .execute(&mut *tx)
                .await?;
            let shared = sqlx::query(
                "SELECT id, sender, recipient FROM referrals
                 WHERE direction = 'outbound' AND consent_ref = $1 ORDER BY recorded_at",
            )
            .bind(id.to_string())
            .fetch_all(&mut *tx)
            .await?;
            let mut targets = Vec::new();
            for row in shared {
                let copy = copy_of(&row, "recipient")?;
                let sender = identity_column(&row, "sender")?;
                sqlx::query(
                    "UPDATE outbox SET state = 'cancelled'
                     WHERE message_id = $1 AND kind = 'referral' AND state IN ('pending', 'dead')",
                )
                .bind(copy.referral_id.to_string())
                .execute(&mut *tx)
                .await?;
                let retraction = Retraction {
                    id: Uuid::now_v7(),
                    retraction_id,
                    referral_id: copy.referral_id,
                    author: sender,
                    cause: crate::retraction::RetractionCause::ConsentRevoked,
                    at,
                };
                retract_copy(&mut tx, &retraction, &copy.team).await?;
                targets.push((copy.team.uri(), copy.referral_id));
                notify.push(copy.team);
            }
            let row = sqlx::query("SELECT id, revoked_at, body FROM consents WHERE id = $1")
                .bind(id.to_string())
                .fetch_one(&mut *tx)
                .await?;
            let consent = consent_row(&row, federation)?;
            audit_log::append(
                &mut tx,
                &audit::consent_revoked(&consent, retraction_id, &targets, actor),
            )
            .await?;
        }
        tx.commit().await?;
        let consent = self.consent(id, federation).await?;
        Ok(consent.map(|consent| (consent, notify)))
    }

    /// How far the retraction that followed a consent's revocation has got.
    pub async fn retraction_progress(
        &self,
        consent_id: Uuid,
    ) -> Result<Option<RetractionProgress>, StoreError> {
        let Some(row) = sqlx::query("SELECT id, started_at FROM retractions WHERE consent_id = $1")
            .bind(consent_id.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let id: String = row.try_get("id")?;
        let corrupt = |problem: &str| StoreError::Corrupt {
            table: "retractions",
            id: id.clone(),
            problem: problem.to_owned(),
        };
        let targets = sqlx::query(
            "SELECT referral_id, team, reported_by, acknowledged_at, held, purged_at
             FROM retraction_targets WHERE retraction_id = $1 ORDER BY position",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(TargetProgress {
                copy: copy_of(row, "team")?,
                reported_by: row.try_get("reported_by")?,
                acknowledged_at: row
                    .try_get::<Option<i64>, _>("acknowledged_at")?
                    .map(from_ms),
                held: row.try_get::<Option<i64>, _>("held")?.unwrap_or(0) != 0,
                purged_at: row.try_get::<Option<i64>, _>("purged_at")?.map(from_ms),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(RetractionProgress {
            id: Uuid::parse_str(&id).map_err(|_| corrupt("id"))?,
            consent_id,
            started_at: from_ms(row.try_get("started_at")?),
            targets,
        }))
    }

    /// Applies a retraction from the sender of a referral this node received: purges the
    /// referral and every forward made from it, keeps tombstones, retracts those forwards
    /// from their recipients, and queues the acknowledgement to `from`, all in one
    /// transaction. A retraction of something this node does not hold from `from` is
    /// acknowledged as not held, so a retraction that raced its referral still completes.
    pub async fn receive_retraction(
        &self,
        retraction: &Retraction,
        from: &TeamIdentity,
        local: &TeamIdentity,
        proof: &MessageProof,
    ) -> Result<Applied, StoreError> {
        let body = wire::encode_retraction(retraction);
        let digest = digest(&body);
        let now = OffsetDateTime::now_utc();
        let mut tx = self.write().await?;
        if let Some(outcome) = check_replay(&mut tx, retraction.id, &digest).await? {
            return Ok(Applied {
                outcome,
                notify: Vec::new(),
            });
        }
        record_received(
            &mut tx,
            retraction.id,
            MessageKind::Retraction,
            from,
            &digest,
            now,
        )
        .await?;
        let held: Option<String> = sqlx::query_scalar(
            "SELECT recipient FROM referrals WHERE id = $1 AND direction = 'inbound' AND sender = $2",
        )
        .bind(retraction.referral_id.to_string())
        .bind(from.uri())
        .fetch_optional(&mut *tx)
        .await?;
        let mut notify = Vec::new();
        let mut downstream = Vec::new();
        let purger = match &held {
            Some(recipient) => {
                TeamIdentity::parse_uri(recipient).map_err(|_| StoreError::Corrupt {
                    table: "referrals",
                    id: retraction.referral_id.to_string(),
                    problem: "recipient".into(),
                })?
            }
            None => local.clone(),
        };
        if held.is_some() {
            let forwards = sqlx::query(
                "SELECT id, sender, recipient FROM referrals
                 WHERE direction = 'outbound' AND forwarded_from = $1",
            )
            .bind(retraction.referral_id.to_string())
            .fetch_all(&mut *tx)
            .await?;
            let mut purged = vec![retraction.referral_id];
            sqlx::query(
                "INSERT INTO retractions (id, started_at, upstream_peer, upstream_author)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(retraction.retraction_id.to_string())
            .bind(ms(now))
            .bind(from.uri())
            .bind(purger.uri())
            .execute(&mut *tx)
            .await?;
            for row in &forwards {
                let copy = copy_of(row, "recipient")?;
                let onward = Retraction {
                    id: Uuid::now_v7(),
                    retraction_id: retraction.retraction_id,
                    referral_id: copy.referral_id,
                    author: identity_column(row, "sender")?,
                    cause: retraction.cause,
                    at: now,
                };
                retract_copy(&mut tx, &onward, &copy.team).await?;
                purged.push(copy.referral_id);
                notify.push(copy.team.clone());
                downstream.push(copy);
            }
            purge(
                &mut tx,
                &purged,
                PurgeCause::ConsentRevoked,
                Some(retraction.retraction_id),
                now,
            )
            .await?;
        }
        audit_log::put_proof(&mut tx, proof, "received").await?;
        audit_log::append(
            &mut tx,
            &audit::retraction_received(retraction, held.is_some(), downstream.len()),
        )
        .await?;
        let ack = RetractionAck {
            id: Uuid::now_v7(),
            retraction_id: retraction.retraction_id,
            purged: Copy {
                team: purger.clone(),
                referral_id: retraction.referral_id,
            },
            held: held.is_some(),
            purged_at: now,
            downstream,
            author: purger,
        };
        enqueue_ack(&mut tx, &ack, from, now).await?;
        notify.push(from.clone());
        tx.commit().await?;
        self.checkpoint().await;
        Ok(Applied {
            outcome: Inbound::Stored,
            notify,
        })
    }

    /// Records a report that a copy was purged: from its holder, or relayed by the hop that
    /// forwarded it. Copies the report names as forwarded on become targets too, and the
    /// report is relayed upstream when this node is itself passing the retraction on.
    pub async fn receive_retraction_ack(
        &self,
        ack: &RetractionAck,
        from: &TeamIdentity,
        proof: &MessageProof,
    ) -> Result<Applied, StoreError> {
        let body = wire::encode_retraction_ack(ack);
        let digest = digest(&body);
        let now = OffsetDateTime::now_utc();
        let mut tx = self.write().await?;
        if let Some(outcome) = check_replay(&mut tx, ack.id, &digest).await? {
            return Ok(Applied {
                outcome,
                notify: Vec::new(),
            });
        }
        // Only the holder of a copy, or the hop that reported it, may report on it.
        let known: Option<String> = sqlx::query_scalar(
            "SELECT team FROM retraction_targets
             WHERE retraction_id = $1 AND referral_id = $2 AND team = $3 AND (team = $4 OR reported_by = $5)",
        )
        .bind(ack.retraction_id.to_string())
        .bind(ack.purged.referral_id.to_string())
        .bind(ack.purged.team.uri())
        .bind(from.uri())
        .bind(from.uri())
        .fetch_optional(&mut *tx)
        .await?;
        if known.is_none() {
            return Ok(Applied {
                outcome: Inbound::UnknownReferral,
                notify: Vec::new(),
            });
        }
        record_received(
            &mut tx,
            ack.id,
            MessageKind::RetractionAck,
            from,
            &digest,
            now,
        )
        .await?;
        sqlx::query(
            "UPDATE retraction_targets SET acknowledged_at = $1, held = $2, purged_at = $3
             WHERE retraction_id = $4 AND referral_id = $5 AND acknowledged_at IS NULL",
        )
        .bind(ms(now))
        .bind(i64::from(ack.held))
        .bind(ms(ack.purged_at))
        .bind(ack.retraction_id.to_string())
        .bind(ack.purged.referral_id.to_string())
        .execute(&mut *tx)
        .await?;
        audit_log::put_proof(&mut tx, proof, "received").await?;
        audit_log::append(&mut tx, &audit::retraction_acknowledged(ack, &from.uri())).await?;
        for copy in &ack.downstream {
            sqlx::query(
                "INSERT INTO retraction_targets
                     (retraction_id, referral_id, team, reported_by, position)
                 VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(position), 0) + 1
                                          FROM retraction_targets))
                 ON CONFLICT DO NOTHING",
            )
            .bind(ack.retraction_id.to_string())
            .bind(copy.referral_id.to_string())
            .bind(copy.team.uri())
            .bind(from.uri())
            .execute(&mut *tx)
            .await?;
        }
        let upstream = sqlx::query(
            "SELECT upstream_peer, upstream_author FROM retractions
             WHERE id = $1 AND upstream_peer IS NOT NULL",
        )
        .bind(ack.retraction_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let mut notify = Vec::new();
        if let Some(row) = upstream {
            let peer = identity_column(&row, "upstream_peer")?;
            let relayed = RetractionAck {
                id: Uuid::now_v7(),
                author: identity_column(&row, "upstream_author")?,
                ..ack.clone()
            };
            enqueue_ack(&mut tx, &relayed, &peer, now).await?;
            notify.push(peer);
        }
        tx.commit().await?;
        Ok(Applied {
            outcome: Inbound::Stored,
            notify,
        })
    }

    /// Purges every received referral whose retention deadline is before `now`, with the
    /// forwards made from it; returns how many referrals were purged.
    pub async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let mut tx = self.write().await?;
        let expired: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM referrals WHERE direction = 'inbound' AND retain_until <= $1
             ORDER BY retain_until LIMIT 500",
        )
        .bind(ms(now))
        .fetch_all(&mut *tx)
        .await?;
        if expired.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::new();
        for id in &expired {
            let forwards: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM referrals WHERE direction = 'outbound' AND forwarded_from = $1",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            for text in std::iter::once(id).chain(forwards.iter()) {
                ids.push(Uuid::parse_str(text).map_err(|_| StoreError::Corrupt {
                    table: "referrals",
                    id: text.clone(),
                    problem: "id".into(),
                })?);
            }
        }
        let count = purge(&mut tx, &ids, PurgeCause::Retention, None, now).await?;
        tx.commit().await?;
        self.checkpoint().await;
        Ok(count)
    }

    /// The tombstone of one purged referral.
    pub async fn tombstone(&self, referral_id: Uuid) -> Result<Option<Tombstone>, StoreError> {
        sqlx::query(
            "SELECT referral_id, direction, sender, recipient, purpose, categories, recorded_at,
                    purged_at, cause, retraction_id
             FROM tombstones WHERE referral_id = $1",
        )
        .bind(referral_id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(tombstone_row)
        .transpose()
    }

    /// Tombstones of purged referrals, newest first.
    pub async fn tombstones(&self, limit: u32) -> Result<Vec<Tombstone>, StoreError> {
        sqlx::query(
            "SELECT referral_id, direction, sender, recipient, purpose, categories, recorded_at,
                    purged_at, cause, retraction_id
             FROM tombstones ORDER BY purged_at DESC, referral_id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(tombstone_row)
        .collect()
    }

    /// Moves every committed page out of the WAL and truncates it, so the old frames of purged
    /// rows leave the disk now rather than at some later automatic checkpoint. A reader holding
    /// an old snapshot can make it partial; the next purge or close finishes it. PostgreSQL has
    /// no such step: its dead row versions go at the next (auto)vacuum, and once the data key
    /// is deleted they hold only sealed bytes.
    async fn checkpoint(&self) {
        if self.backend != Backend::Sqlite {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint after a purge failed");
        }
    }
}

/// Queues a retraction of `copy` to the team holding it, and tracks the copy as a target.
async fn retract_copy(
    tx: &mut Tx,
    retraction: &Retraction,
    holder: &TeamIdentity,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO retraction_targets (retraction_id, referral_id, team, reported_by, position)
         VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(position), 0) + 1 FROM retraction_targets))
         ON CONFLICT DO NOTHING",
    )
    .bind(retraction.retraction_id.to_string())
    .bind(retraction.referral_id.to_string())
    .bind(holder.uri())
    .bind(retraction.author.uri())
    .execute(&mut **tx)
    .await?;
    let body = wire::encode_retraction(retraction);
    enqueue(
        tx,
        retraction.id,
        MessageKind::Retraction,
        retraction.referral_id,
        holder,
        &body,
        retraction.at,
        None,
    )
    .await
}

async fn enqueue_ack(
    tx: &mut Tx,
    ack: &RetractionAck,
    to: &TeamIdentity,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let body = wire::encode_retraction_ack(ack);
    enqueue(
        tx,
        ack.id,
        MessageKind::RetractionAck,
        ack.purged.referral_id,
        to,
        &body,
        now,
        None,
    )
    .await
}

/// Purges referrals: their data keys, rows, timelines and unsent messages go, and a tombstone
/// stays. Bodies of messages already delivered are emptied too: the peer has them, and this
/// node no longer needs them. Returns how many referrals were purged.
async fn purge(
    tx: &mut Tx,
    ids: &[Uuid],
    cause: PurgeCause,
    retraction_id: Option<Uuid>,
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let mut count = 0;
    for &referral_id in ids {
        let id = referral_id.to_string();
        let inserted = sqlx::query(
            "INSERT INTO tombstones (referral_id, direction, sender, recipient, purpose,
                                               categories, recorded_at, purged_at, cause,
                                               retraction_id)
             SELECT id, direction, sender, recipient, purpose, categories, recorded_at, $1, $2, $3
             FROM referrals WHERE id = $4 ON CONFLICT DO NOTHING",
        )
        .bind(ms(now))
        .bind(cause.as_str())
        .bind(retraction_id.map(|r| r.to_string()))
        .bind(&id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        let row = sqlx::query("SELECT data_key, categories FROM referrals WHERE id = $1")
            .bind(&id)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else { continue };
        let categories: String = row.try_get("categories")?;
        audit_log::append(
            tx,
            &audit::purge(referral_id, &categories, cause, retraction_id),
        )
        .await?;
        if let Some(key_id) = row.try_get::<Option<String>, _>("data_key")? {
            sqlx::query("DELETE FROM data_keys WHERE id = $1")
                .bind(key_id)
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query(
            "UPDATE outbox SET state = 'cancelled'
             WHERE referral_id = $1 AND kind IN ('referral', 'status-update')
               AND state IN ('pending', 'dead')",
        )
        .bind(&id)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE outbox SET body = $1 WHERE referral_id = $2
               AND kind IN ('referral', 'status-update')",
        )
        .bind(Vec::<u8>::new())
        .bind(&id)
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM status_events WHERE referral_id = $1")
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM referrals WHERE id = $1")
            .bind(&id)
            .execute(&mut **tx)
            .await?;
        count += usize::try_from(inserted).unwrap_or(0);
    }
    crate::metrics::get()
        .purged
        .get_or_create(&vec![("cause", cause.as_str().to_owned())])
        .inc_by(count as u64);
    Ok(count)
}

fn identity_column(row: &AnyRow, column: &'static str) -> Result<TeamIdentity, StoreError> {
    let text: String = row.try_get(column)?;
    TeamIdentity::parse_uri(&text).map_err(|_| StoreError::Corrupt {
        table: "retraction",
        id: text.clone(),
        problem: format!("{column} is not a team identity"),
    })
}

/// A copy named by a row's `referral_id` (or `id`) and a team column.
fn copy_of(row: &AnyRow, team: &'static str) -> Result<Copy, StoreError> {
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

fn tombstone_row(row: &AnyRow) -> Result<Tombstone, StoreError> {
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
fn purpose_name(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::ThreatAssessment => "ThreatAssessment",
        Purpose::ThreatManagement => "ThreatManagement",
        Purpose::Consultation => "Consultation",
    }
}

fn purpose_from_name(name: &str) -> Option<Purpose> {
    [
        Purpose::ThreatAssessment,
        Purpose::ThreatManagement,
        Purpose::Consultation,
    ]
    .into_iter()
    .find(|p| purpose_name(*p) == name)
}

fn consent_row(
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
