//! Group commit: the store's write transactions, many to one SQLite commit.
//!
//! SQLite has one writer at a time, and with `synchronous=FULL` every commit waits for an fsync,
//! which costs more than the statements of a typical write here. So writers queue for the one
//! write transaction in turn, each runs its statements inside a savepoint of its own, and on
//! finishing it hands the still-open transaction to the next writer in the queue. The last
//! writer of a batch (nobody queued behind it, or the batch full) commits for all of them, and
//! none of them returns before that commit has succeeded. Each caller therefore still sees its
//! own work committed, all or nothing, before it answers anyone, as with a transaction of its
//! own; a burst of writers shares one fsync.
//!
//! A writer that fails or is dropped half-way is rolled back to its savepoint, and the rest of
//! its batch goes on. If the commit itself fails, every writer of the batch gets the error, and
//! none of their work is kept. Queuing on an async lock, rather than meeting in SQLite's busy
//! handler (which sleeps up to 100 ms between tries), also lets each batch start the moment
//! the previous one ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use time::OffsetDateTime;
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use super::{Backend, StoreError};
use crate::clock::Clock;

/// The key of the PostgreSQL advisory lock that makes replicas' write transactions take turns
/// (an arbitrary constant: "tatmx" in ASCII).
const WRITE_LOCK: i64 = 0x74_61_74_6d_78;

/// The most writers that share one commit; bounds how long the first of them waits.
const MAX_BATCH: usize = 128;

/// What each writer of a batch is told when the batch ends: committed, or why not.
type Outcome = Result<(), String>;

/// The queue for the one write transaction.
#[derive(Clone)]
pub(super) struct Writer {
    /// How a write transaction begins on this backend.
    backend: Backend,
    /// The open batch, if any; holding the lock is holding the turn to write.
    open: Arc<Mutex<Option<Batch>>>,
    /// Writers queued for the lock. A finishing writer hands the batch on only when this is
    /// non-zero; a queued writer that gives up makes sure the batch is not left uncommitted.
    queued: Arc<AtomicUsize>,
    /// Commits made, for the tests that show writes share them.
    #[cfg(test)]
    commits: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("queued", &self.queued.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

/// One write transaction and the writers that have finished in it.
///
/// On SQLite the transaction is begun with `BEGIN IMMEDIATE`, which takes the database's one
/// write lock at once. On PostgreSQL it is begun with `BEGIN` and a transaction-scoped advisory
/// lock, its counterpart: replicas sharing the database write one transaction at a time, so the
/// audit chain stays one chain and every read-then-write in the store sees the writes before
/// it, exactly as on SQLite. (Claiming outbox rows does not take this lock; see
/// `Store::claim`.)
///
/// The transaction is begun and ended with plain `BEGIN`, `COMMIT` and `ROLLBACK`
/// statements, not with sqlx's transaction type: after a failed `COMMIT` (a full disk, say)
/// SQLite may already have rolled back, and sqlx's own bookkeeping then refuses every later
/// transaction on that connection. A connection whose transaction did not end cleanly is
/// closed instead of going back to the pool, and closing it rolls back whatever was open.
struct Batch {
    connection: PoolConnection<Any>,
    /// Each is told the outcome of the commit.
    finished: Vec<oneshot::Sender<Outcome>>,
    /// Committed or rolled back; until then, dropping the batch closes its connection.
    ended: bool,
}

impl Batch {
    /// Takes a connection and begins the write transaction on it.
    async fn begin(pool: &AnyPool, backend: Backend) -> Result<Self, sqlx::Error> {
        let connection = pool.acquire().await?;
        let mut batch = Self {
            connection,
            finished: Vec::new(),
            ended: false,
        };
        match backend {
            Backend::Sqlite => {
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut *batch.connection)
                    .await?;
            }
            Backend::Postgres => {
                sqlx::query("BEGIN").execute(&mut *batch.connection).await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK)
                    .execute(&mut *batch.connection)
                    .await?;
            }
        }
        Ok(batch)
    }

    /// Commits, and tells every writer of the batch how it went.
    async fn commit(mut self) -> Result<(), sqlx::Error> {
        let result = sqlx::query("COMMIT")
            .execute(&mut *self.connection)
            .await
            .map(|_| ());
        if result.is_ok() {
            self.ended = true;
        }
        // Otherwise `drop` closes the connection, which rolls back whatever is still open.
        let outcome = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        for writer in self.finished.drain(..) {
            // A writer that stopped waiting has nobody to tell.
            let _ = writer.send(outcome.clone());
        }
        result
    }

    /// Ends a batch with nothing to keep.
    async fn roll_back(mut self) {
        if sqlx::query("ROLLBACK")
            .execute(&mut *self.connection)
            .await
            .is_ok()
        {
            self.ended = true;
        }
    }

    /// Gives the batch up: nothing in it is kept, and its writers are told so.
    fn abandon(mut self, why: &str) {
        for writer in self.finished.drain(..) {
            let _ = writer.send(Err(why.to_owned()));
        }
        // `drop` closes the connection, which rolls the transaction back.
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if !self.ended {
            self.connection.close_on_drop();
        }
    }
}

impl Writer {
    /// A writer with nobody queued.
    pub(super) fn new(backend: Backend) -> Self {
        Self {
            backend,
            open: Arc::default(),
            queued: Arc::default(),
            #[cfg(test)]
            commits: Arc::default(),
        }
    }

    /// Waits for the turn to write, and starts this writer's part of the current batch (or a
    /// new one). The writer's time is read from `clock` once it has the turn, so the times of
    /// the writes in one batch follow the order of the writes.
    pub(super) async fn begin(&self, pool: &AnyPool, clock: &Clock) -> Result<Tx, StoreError> {
        let mut queued = Queued::new(self);
        let mut turn = self.open.clone().lock_owned().await;
        queued.served();
        let now = clock.now();
        let batch = match turn.take() {
            Some(batch) => batch,
            None => Batch::begin(pool, self.backend).await?,
        };
        let mut tx = Tx {
            batch: Some(batch),
            turn: Some(turn),
            writer: self.clone(),
            now,
        };
        sqlx::query("SAVEPOINT writer").execute(&mut *tx).await?;
        Ok(tx)
    }

    /// Ends the turn of a writer whose own part is settled (released or rolled back): hands
    /// the batch to the next writer if one is queued and the batch has room, else commits it
    /// (or, with nothing in it, drops it).
    async fn pass_on(&self, batch: Batch, mut turn: OwnedMutexGuard<Option<Batch>>) {
        if self.queued.load(Ordering::SeqCst) > 0 && batch.finished.len() < MAX_BATCH {
            *turn = Some(batch);
        } else if batch.finished.is_empty() {
            batch.roll_back().await;
        } else {
            #[cfg(test)]
            self.commits.fetch_add(1, Ordering::SeqCst);
            // Each writer is told the outcome; an error is theirs to report.
            let _ = batch.commit().await;
        }
    }

    /// Commits a batch left behind when the writer it was handed to gave up waiting, unless
    /// another writer is queued to take it.
    async fn flush(self) {
        let mut turn = self.open.clone().lock_owned().await;
        if self.queued.load(Ordering::SeqCst) == 0
            && let Some(batch) = turn.take()
        {
            self.pass_on(batch, turn).await;
        }
    }
}

/// Counts a writer as queued while it waits for the lock.
struct Queued {
    writer: Writer,
    served: bool,
}

impl Queued {
    fn new(writer: &Writer) -> Self {
        writer.queued.fetch_add(1, Ordering::SeqCst);
        Self {
            writer: writer.clone(),
            served: false,
        }
    }

    fn served(&mut self) {
        self.served = true;
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.writer.queued.fetch_sub(1, Ordering::SeqCst);
        if !self.served
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // This writer was cancelled while queued; a batch may have been handed on
            // because of it.
            runtime.spawn(self.writer.clone().flush());
        }
    }
}

/// One writer's part of a write transaction: its statements run on `&mut *tx`, inside its own
/// savepoint, while it holds the turn.
///
/// [`Tx::commit`] returns once the whole batch is committed. Dropped without committing (an
/// error on the way, say), its part is rolled back and the rest of the batch goes on.
pub(crate) struct Tx {
    /// The batch, while this writer holds it.
    batch: Option<Batch>,
    /// The turn, while this writer holds it.
    turn: Option<OwnedMutexGuard<Option<Batch>>>,
    writer: Writer,
    /// When this write happened, by the store's clock.
    now: OffsetDateTime,
}

impl Tx {
    /// When this write happened: every date the write records (the audit entry, the queued
    /// message, the status) is this one, so one action carries one time.
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// Makes this writer's part final, and returns once its batch is committed.
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        let (Some(mut batch), Some(turn)) = (self.batch.take(), self.turn.take()) else {
            return Err(StoreError::GroupCommit(
                "the transaction was already finished".into(),
            ));
        };
        if let Err(e) = sqlx::query("RELEASE writer")
            .execute(&mut *batch.connection)
            .await
        {
            roll_back(self.writer.clone(), batch, turn).await;
            return Err(e.into());
        }
        let (tell, told) = oneshot::channel();
        batch.finished.push(tell);
        self.writer.pass_on(batch, turn).await;
        match told.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(StoreError::GroupCommit(why)),
            Err(_) => Err(StoreError::GroupCommit(
                "the batch was given up before it committed".into(),
            )),
        }
    }
}

impl std::ops::Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &Self::Target {
        // `batch` is taken only by `commit` and `drop`, which consume the Tx.
        &self
            .batch
            .as_ref()
            .expect("a Tx holds its batch until it is committed or dropped")
            .connection
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self
            .batch
            .as_mut()
            .expect("a Tx holds its batch until it is committed or dropped")
            .connection
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let (Some(batch), Some(turn)) = (self.batch.take(), self.turn.take()) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            // The turn moves into the task, so nobody writes until the batch is settled.
            Ok(runtime) => {
                runtime.spawn(roll_back(self.writer.clone(), batch, turn));
            }
            Err(_) => batch.abandon("the store was dropped outside its runtime"),
        }
    }
}

/// Undoes one writer's part, then lets the batch go on without it.
async fn roll_back(writer: Writer, mut batch: Batch, turn: OwnedMutexGuard<Option<Batch>>) {
    let undone = async {
        sqlx::query("ROLLBACK TO writer")
            .execute(&mut *batch.connection)
            .await?;
        sqlx::query("RELEASE writer")
            .execute(&mut *batch.connection)
            .await
    }
    .await;
    match undone {
        Ok(_) => writer.pass_on(batch, turn).await,
        // This writer's part cannot be told from the rest: none of it may be kept.
        Err(e) => batch.abandon(&format!("rolling back a failed write failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    async fn pool(dir: &tempfile::TempDir) -> AnyPool {
        let pool = super::super::open_sqlite(&dir.path().join("writer.db"))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE written (n INTEGER PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        pool
    }

    async fn count(pool: &AnyPool) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM written")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    /// Writes row `n`; with `fail`, writes it and then gives up, as an error on the way would.
    async fn write(writer: Writer, pool: AnyPool, n: i64, fail: bool) -> Result<(), StoreError> {
        let mut tx = writer.begin(&pool, &Clock::system()).await?;
        sqlx::query("INSERT INTO written (n) VALUES ($1)")
            .bind(n)
            .execute(&mut *tx)
            .await?;
        // Let the others queue up behind this writer.
        tokio::time::sleep(Duration::from_millis(1)).await;
        if fail {
            return Err(StoreError::GroupCommit("given up".into()));
        }
        tx.commit().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_each_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let writer = Writer::new(Backend::Sqlite);
        let tasks: Vec<_> = (0..200)
            .map(|n| tokio::spawn(write(writer.clone(), pool.clone(), n, false)))
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(count(&pool).await, 200);
        let commits = writer.commits.load(Ordering::SeqCst);
        assert!(commits < 100, "200 writes took {commits} commits");
        assert_eq!(writer.queued.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_that_gives_up_is_rolled_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let writer = Writer::new(Backend::Sqlite);
        let tasks: Vec<_> = (0..60)
            .map(|n| tokio::spawn(write(writer.clone(), pool.clone(), n, n % 3 == 0)))
            .collect();
        let mut kept = 0;
        for (n, task) in tasks.into_iter().enumerate() {
            let result = task.await.unwrap();
            assert_eq!(result.is_ok(), n % 3 != 0, "writer {n}: {result:?}");
            kept += i64::from(result.is_ok());
        }
        assert_eq!(count(&pool).await, kept);
        let failed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM written WHERE n % 3 = 0")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(failed, 0, "a failed writer's row was kept");
        // The store goes on writing afterwards.
        write(writer.clone(), pool.clone(), 1000, false)
            .await
            .unwrap();
        assert_eq!(count(&pool).await, kept + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_cancelled_while_queued_leaves_no_batch_behind() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let writer = Writer::new(Backend::Sqlite);
        // The first writer holds the turn while a second queues, then the second is cancelled:
        // the first hands its batch on to nobody, and the batch must still commit.
        let first = tokio::spawn(write(writer.clone(), pool.clone(), 1, false));
        let queued = tokio::spawn({
            let (writer, pool) = (writer.clone(), pool.clone());
            async move { writer.begin(&pool, &Clock::system()).await.map(drop) }
        });
        queued.abort();
        tokio::time::timeout(Duration::from_secs(10), first)
            .await
            .expect("the first writer's commit is not left waiting")
            .unwrap()
            .unwrap();
        assert_eq!(count(&pool).await, 1);
    }
}
