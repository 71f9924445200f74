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
//!
//! The store reads and writes messages only as their canonical bytes ([`crate::wire`]); it
//! imports no protobuf type.
//!
//! # Layout
//! - this file: [`Store`], opening it, [`StoreError`], and what the parts share.
//! - `referrals`: submitting, receiving and changing the status of referrals; inbox,
//!   consultations.
//! - `cases`: "My cases": every case as one page of a list, this team's own references for
//!   a case, and who last opened which.
//! - `case_messages`: what the two teams of a case say after its referral, sent and received;
//!   a case's timeline, and the reassessments due.
//! - `outbox`: queuing, claiming and settling messages for peers; listing them.
//! - `trust`: anchors, peers, CRLs and directories.
//! - `retraction`: consents, their revocation and retraction, acknowledgements, purges and
//!   tombstones.
//! - [`accounts`]: the console's staff accounts and sessions.
//! - `notifications`: what is new for staff, written with the event it reports; what each
//!   has seen, their preferences, and the mails made from notifications.
//! - `consent_forms`: the signed consent forms, sealed, attached to consents; never sent.
//! - `audit_log`: the audit log, checkpoints and message proofs.
//! - `audit_tree`: the audit log's Merkle tree: its subtrees, signed tree heads, proofs.
//! - [`observe`]: queue depths and health for operators.
//! - `codec`: reading rows back into domain types, and the stored forms of values.
//! - `writer`: group commit.

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};
use tatmx_certs::TeamIdentity;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::clock::Clock;
pub use crate::config::StoreLocation;
use crate::vault;

pub mod accounts;
mod audit_log;
mod audit_tree;
mod case_messages;
mod cases;
mod codec;
mod consent_forms;
mod notifications;
pub mod observe;
mod outbox;
mod proofs;
mod referrals;
mod retraction;
mod trust;
mod writer;

pub use crate::signing::{MessageKind, MessageProof};
/// The canonical bytes of a referral: what is stored, digested, and sent ([`crate::wire`]).
pub use crate::wire::encode_referral;
#[cfg(feature = "bench-internals")]
pub use audit_log::disable_accountability_for_benchmarks;
pub use audit_log::{AuditFilter, SignedHeads, WitnessConflict};
pub use case_messages::{
    CaseMessageSummary, DueReassessment, InboxSnapshot, StoredCaseMessage, Unseen,
};
pub use cases::{
    CLOSED, CasePage, CaseQuery, CaseReferences, CaseRow, CaseSort, IndexedReferences,
};
pub use consent_forms::{ConsentForm, ConsentFormInfo};
pub use notifications::DueMail;
pub use outbox::{DeliveryState, DueMessage, OutboxEntry};
pub use referrals::{StatusEvent, StoredReferral, Submission, Submitted};
pub use trust::{StoredAnchor, StoredCrl, StoredDirectory, StoredPeer, StoredTrust};

use codec::{from_ms, ms};
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

/// What happened to an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Stored now.
    Stored,
    /// Already stored with identical content; nothing changed.
    Duplicate,
    /// The id was already used for different content; nothing changed.
    Conflict,
    /// A status update or case message for a referral not shared with that peer; nothing
    /// changed.
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
    /// The node's one clock: every date the store records is read from it.
    clock: Clock,
    /// The newest signed audit tree head, kept in memory.
    tree_heads: audit_tree::HeadCache,
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

impl Store {
    /// Starts a write, in the batch of the next group commit ([`writer`]).
    async fn write(&self) -> Result<Tx, StoreError> {
        self.writer.begin(&self.pool, &self.clock).await
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
        let store = Self {
            pool,
            backend,
            writer: writer::Writer::new(backend),
            clock: Clock::system(),
            tree_heads: audit_tree::HeadCache::default(),
        };
        // A log written by a version without the Merkle tree gets it before anything appends.
        store.catch_up_audit_tree().await?;
        store.refresh_tree_head().await?;
        Ok(store)
    }

    /// This store, reading the time from `clock` instead of the system's clock. The node sets
    /// its clock here once, at start-up, before anything else holds the store.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The node's clock. The store carries it because every layer that needs the time holds
    /// the store, and the dates it records must agree with the deadlines computed from them.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
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
