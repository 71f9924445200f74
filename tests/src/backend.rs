//! Which database the test nodes' stores run on, and direct access to a node's store for the
//! tests that inspect or tamper with it.
//!
//! By default every test node keeps a SQLite file in its data directory. With
//! `TATMX_TEST_POSTGRES` set to a server's base URL (`postgres://postgres@127.0.0.1:5432`, as
//! `.ci/run` sets it), each team gets a database of its own on that server instead, created
//! when the team is made and dropped with its federation, and the same tests run against
//! PostgreSQL.

use std::path::Path;
use std::sync::OnceLock;

use sqlx::{AnyConnection, Connection};

/// The variable that selects PostgreSQL.
pub const POSTGRES_VAR: &str = "TATMX_TEST_POSTGRES";

/// The PostgreSQL server the tests use, if they use one.
pub fn postgres() -> Option<&'static str> {
    static BASE: OnceLock<Option<String>> = OnceLock::new();
    BASE.get_or_init(|| {
        std::env::var(POSTGRES_VAR)
            .ok()
            .map(|url| url.trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty())
    })
    .as_deref()
}

/// Runs `work` to completion on a runtime of its own, in a thread of its own: the harness's
/// setup is synchronous, and is often called from inside a test's runtime, which must not be
/// blocked on.
fn on_own_runtime<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for database setup")
            .block_on(work)
    })
    .join()
    .expect("database setup thread")
}

/// Creates a fresh, empty database for one team and returns its URL.
pub fn create_database(base: &str) -> (String, String) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "tatmx_t{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    let admin = format!("{base}/postgres");
    let statement = format!("CREATE DATABASE {name}");
    on_own_runtime(async move {
        sqlx::any::install_default_drivers();
        let mut connection = AnyConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_VAR}: cannot reach PostgreSQL: {e}"));
        sqlx::query(&statement)
            .execute(&mut connection)
            .await
            .expect("create a test database");
        connection.close().await.ok();
    });
    (format!("{base}/{name}"), name)
}

/// Drops the test databases `names`, ending any connection still open to them.
pub fn drop_databases(base: &str, names: Vec<String>) {
    if names.is_empty() {
        return;
    }
    let admin = format!("{base}/postgres");
    on_own_runtime(async move {
        let Ok(mut connection) = AnyConnection::connect(&admin).await else {
            return;
        };
        for name in names {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut connection)
                .await;
        }
        connection.close().await.ok();
    });
}

/// A connection straight to a node's store, beside the running node: read-only on SQLite
/// unless `writable`. Queries use `$1` placeholders, which both backends take.
pub async fn connect(database: Option<&str>, data_dir: &Path, writable: bool) -> AnyConnection {
    sqlx::any::install_default_drivers();
    let url = match database {
        Some(url) => url.to_owned(),
        None => format!(
            "sqlite://{}?mode={}",
            data_dir.join("tatmx.db").display(),
            if writable { "rw" } else { "ro" }
        ),
    };
    AnyConnection::connect(&url)
        .await
        .expect("open the node's database")
}

/// What someone who walked off with the database would read: on SQLite the file and its WAL,
/// on PostgreSQL a dump of every table.
pub fn raw_contents(database: Option<&str>, data_dir: &Path) -> Vec<u8> {
    match database {
        None => {
            let mut bytes = Vec::new();
            for name in ["tatmx.db", "tatmx.db-wal"] {
                if let Ok(b) = std::fs::read(data_dir.join(name)) {
                    bytes.extend(b);
                }
            }
            bytes
        }
        Some(url) => {
            let out = std::process::Command::new("pg_dump")
                .args(["--data-only", "--dbname", url])
                .output()
                .expect("run pg_dump");
            assert!(
                out.status.success(),
                "pg_dump failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // The dump writes bytea as `\\x` and hex; the bytes themselves are what a reader of
            // the server's files would see, so they are added after the text.
            let mut bytes = out.stdout.clone();
            let text = String::from_utf8_lossy(&out.stdout);
            for chunk in text.split("\\x").skip(1) {
                let hex: String = chunk.chars().take_while(char::is_ascii_hexdigit).collect();
                let decoded = (0..hex.len() / 2)
                    .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok());
                bytes.extend(decoded);
            }
            bytes
        }
    }
}

/// A copy of a stopped node's store, to put back between tampering cases: a copy of the
/// SQLite file, or a PostgreSQL database made from the team's as a template.
pub struct Snapshot {
    kind: SnapshotKind,
}

enum SnapshotKind {
    Sqlite {
        live: std::path::PathBuf,
        copy: std::path::PathBuf,
    },
    Postgres {
        base: String,
        live: String,
        copy: String,
    },
}

impl Snapshot {
    /// Copies the store of a node that is not running.
    pub fn take(database: Option<&str>, data_dir: &Path) -> Self {
        let kind = match database {
            None => {
                let live = data_dir.join("tatmx.db");
                let copy = data_dir.join("snapshot.db");
                // SQLite's own consistent copy, with whatever is still in the WAL: a copy of
                // the file alone could miss pages the node's last connection is still
                // checkpointing into it as it closes (seen under load as an empty database).
                let _ = std::fs::remove_file(&copy);
                let url = format!("sqlite://{}?mode=ro", live.display());
                let statement = format!(
                    "VACUUM INTO '{}'",
                    copy.display().to_string().replace('\'', "''")
                );
                on_own_runtime(async move {
                    sqlx::any::install_default_drivers();
                    let mut connection = AnyConnection::connect(&url)
                        .await
                        .expect("open the database");
                    sqlx::query(&statement)
                        .execute(&mut connection)
                        .await
                        .expect("copy the database");
                    connection.close().await.ok();
                });
                SnapshotKind::Sqlite { live, copy }
            }
            Some(url) => {
                let (base, live) = url.rsplit_once('/').expect("a database URL");
                let (base, live) = (base.to_owned(), live.to_owned());
                let copy = format!("{live}_snapshot");
                let statement = format!("CREATE DATABASE {copy} TEMPLATE {live}");
                let admin = format!("{base}/postgres");
                on_own_runtime(async move {
                    let mut connection = AnyConnection::connect(&admin).await.expect("connect");
                    sqlx::query(&statement)
                        .execute(&mut connection)
                        .await
                        .expect("copy the database");
                    connection.close().await.ok();
                });
                SnapshotKind::Postgres { base, live, copy }
            }
        };
        Self { kind }
    }

    /// Puts the copy back in place of the (stopped) node's store.
    pub fn restore(&self) {
        match &self.kind {
            SnapshotKind::Sqlite { live, copy } => {
                std::fs::copy(copy, live).expect("restore the database file");
                for stale in ["tatmx.db-wal", "tatmx.db-shm"] {
                    let _ = std::fs::remove_file(live.with_file_name(stale));
                }
            }
            SnapshotKind::Postgres { base, live, copy } => {
                let admin = format!("{base}/postgres");
                let statements = [
                    format!("DROP DATABASE IF EXISTS {live} WITH (FORCE)"),
                    format!("CREATE DATABASE {live} TEMPLATE {copy}"),
                ];
                on_own_runtime(async move {
                    let mut connection = AnyConnection::connect(&admin).await.expect("connect");
                    for statement in statements {
                        sqlx::query(&statement)
                            .execute(&mut connection)
                            .await
                            .expect("restore the database");
                    }
                    connection.close().await.ok();
                });
            }
        }
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let SnapshotKind::Postgres { base, copy, .. } = &self.kind {
            drop_databases(base, vec![copy.clone()]);
        }
    }
}
