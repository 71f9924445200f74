//! What a node keeps on disk, read from outside the running node: the size of its store, in
//! all and table by table, so that a run can say how many bytes each delivered referral added
//! at each end; and which referrals it holds as received, so that a run confirms each delivery
//! at the receiver.
//!
//! On SQLite the measure is the pages in use: `(page_count - freelist_count) * page_size`, as a
//! read-only connection sees the database, committed WAL frames included. That is what the data
//! and its indexes occupy once checkpointed, B-tree overhead and part-filled pages included; it
//! leaves out the WAL file itself (reset at each checkpoint, its size depends on when one last
//! ran) and free pages (reused by later writes). Table by table it comes from SQLite's `dbstat`
//! table, each index counted with its table. On PostgreSQL it is `pg_database_size` and, table
//! by table, `pg_total_relation_size` (indexes and TOAST included); dead row versions that
//! vacuum has not yet reclaimed count there too.
//!
//! The connection only reads: nothing here checkpoints, vacuums or locks the node's store
//! beyond a read snapshot.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use sqlx::{ConnectOptions, Connection, Row};

/// Where a benchmark node keeps its store.
#[derive(Debug, Clone)]
pub enum StoreAt {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL.
    Postgres(String),
}

/// How [`Footprint`] counts, in words, for the report.
pub const SQLITE_METHOD: &str =
    "SQLite pages in use, (page_count - freelist_count) * page_size, WAL frames included";
/// Likewise on PostgreSQL.
pub const POSTGRES_METHOD: &str = "pg_database_size, and pg_total_relation_size per table";

/// A store's size at one moment, in bytes.
#[derive(Debug, Clone, Default)]
pub struct Footprint {
    /// The whole store.
    pub total: u64,
    /// Each table with its indexes.
    pub tables: BTreeMap<String, u64>,
}

impl Footprint {
    /// Measures the store at `at` now.
    pub async fn of(at: &StoreAt) -> anyhow::Result<Self> {
        match at {
            StoreAt::Sqlite(path) => sqlite(path).await,
            StoreAt::Postgres(url) => postgres(url).await,
        }
    }
}

/// A read-only connection to a running node's SQLite file.
async fn read_only(path: &Path) -> anyhow::Result<sqlx::SqliteConnection> {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        // The node may hold the write lock for a moment; a reader in WAL mode never waits for
        // it, but opening may.
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("cannot open {} read-only", path.display()))
}

async fn sqlite(path: &Path) -> anyhow::Result<Footprint> {
    let mut connection = read_only(path).await?;
    // One read transaction, so the totals and the tables are the same snapshot.
    let mut tx = connection.begin().await?;
    let pragma = |name: &'static str| sqlx::query_scalar::<_, i64>(name);
    let page_size = pragma("PRAGMA page_size").fetch_one(&mut *tx).await?;
    let pages = pragma("PRAGMA page_count").fetch_one(&mut *tx).await?;
    let free = pragma("PRAGMA freelist_count").fetch_one(&mut *tx).await?;
    // Each b-tree's pages, an index counted under its table.
    let rows = sqlx::query(
        "SELECT COALESCE(m.tbl_name, d.name) AS owner, SUM(d.pgsize) AS bytes
         FROM dbstat d LEFT JOIN sqlite_schema m ON m.name = d.name
         GROUP BY owner",
    )
    .fetch_all(&mut *tx)
    .await
    .context("cannot read SQLite's dbstat table")?;
    let mut tables = BTreeMap::new();
    for row in rows {
        let owner: String = row.try_get("owner")?;
        let bytes: i64 = row.try_get("bytes")?;
        tables.insert(owner, u64::try_from(bytes).unwrap_or(0));
    }
    tx.rollback().await?;
    // Closing a read-only connection writes nothing.
    let _ = connection.close().await;
    Ok(Footprint {
        total: u64::try_from((pages - free) * page_size).unwrap_or(0),
        tables,
    })
}

async fn postgres(url: &str) -> anyhow::Result<Footprint> {
    let mut connection = sqlx::PgConnection::connect(url)
        .await
        .context("cannot reach the node's PostgreSQL database")?;
    let total: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&mut connection)
        .await?;
    let rows = sqlx::query(
        "SELECT c.relname AS owner, pg_total_relation_size(c.oid) AS bytes
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = current_schema() AND c.relkind = 'r'",
    )
    .fetch_all(&mut connection)
    .await?;
    let mut tables = BTreeMap::new();
    for row in rows {
        let owner: String = row.try_get("owner")?;
        let bytes: i64 = row.try_get("bytes")?;
        tables.insert(owner, u64::try_from(bytes).unwrap_or(0));
    }
    let _ = connection.close().await;
    Ok(Footprint {
        total: u64::try_from(total).unwrap_or(0),
        tables,
    })
}

/// How much one end's store grew over a run, per referral delivered.
#[derive(Debug, Serialize)]
pub struct Growth {
    /// The store before the run, in bytes.
    pub bytes_before: u64,
    /// After.
    pub bytes_after: u64,
    /// The growth over the referrals delivered.
    pub bytes_per_referral: f64,
    /// The tables that grew, most first, with their growth per referral.
    pub tables: Vec<TableGrowth>,
}

/// One table's share of a [`Growth`].
#[derive(Debug, Serialize)]
pub struct TableGrowth {
    /// The table (its indexes counted with it).
    pub table: String,
    /// Its growth over the referrals delivered, in bytes.
    pub bytes_per_referral: f64,
}

impl Growth {
    /// From `before` to `after`, over `delivered` referrals.
    pub fn between(before: &Footprint, after: &Footprint, delivered: usize) -> Self {
        let per = |grown: f64| grown / delivered.max(1) as f64;
        let mut tables: Vec<TableGrowth> = after
            .tables
            .iter()
            .filter_map(|(table, &bytes)| {
                let was = before.tables.get(table).copied().unwrap_or(0);
                (bytes > was).then(|| TableGrowth {
                    table: table.clone(),
                    bytes_per_referral: per((bytes - was) as f64),
                })
            })
            .collect();
        tables.sort_by(|a, b| b.bytes_per_referral.total_cmp(&a.bytes_per_referral));
        Self {
            bytes_before: before.total,
            bytes_after: after.total,
            bytes_per_referral: per(after.total as f64 - before.total as f64),
            tables,
        }
    }
}

/// Bytes stored per delivered referral at each end of the maximum-rate run.
#[derive(Debug, Serialize)]
pub struct Stored {
    /// How the bytes were counted.
    pub method: &'static str,
    /// Referrals delivered in the run.
    pub delivered: usize,
    /// The sending node's store.
    pub sender: Growth,
    /// The receiving node's store.
    pub receiver: Growth,
}

/// The ids of the referrals the store at `at` holds as received: read from the receiver's own
/// disk, so that a run confirms each acknowledged referral from the other side rather than
/// from the sender's word.
pub async fn received_referrals(at: &StoreAt) -> anyhow::Result<HashSet<String>> {
    const SQL: &str = "SELECT id FROM referrals WHERE direction = 'inbound'";
    let ids = match at {
        StoreAt::Sqlite(path) => {
            let mut connection = read_only(path).await?;
            let ids = sqlx::query_scalar(SQL).fetch_all(&mut connection).await;
            let _ = connection.close().await;
            ids?
        }
        StoreAt::Postgres(url) => {
            let mut connection = sqlx::PgConnection::connect(url)
                .await
                .context("cannot reach the node's PostgreSQL database")?;
            let ids = sqlx::query_scalar(SQL).fetch_all(&mut connection).await;
            let _ = connection.close().await;
            ids?
        }
    };
    Ok(ids.into_iter().collect())
}
