//! The node's store. For SQLite: the database is there and sound, or, before the first start,
//! the node will be able to make it; the file is opened read-only, beside a running node, so
//! the check changes nothing and takes no write lock. For PostgreSQL: the server answers the
//! configured URL, with its credentials, and runs a query.

use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use sqlx::{ConnectOptions, Connection};
use tatmx_node::Config;
use tatmx_node::config::{DatabaseUrl, StoreLocation};

use super::Report;

const CHECK: &str = "store";

/// Checks the configured store.
pub async fn check(report: &mut Report, config: &Config, wait: Duration) {
    match &config.store {
        StoreLocation::Sqlite(db) => sqlite(report, config, db).await,
        StoreLocation::Postgres(url) => postgres(report, url, wait).await,
    }
}

/// Connects to PostgreSQL as the node would and runs `SELECT 1`.
async fn postgres(report: &mut Report, url: &DatabaseUrl, wait: Duration) {
    // The URL's Debug form leaves out the password; the URL itself is never printed.
    let shown = format!("{url:?}");
    let connected =
        tokio::time::timeout(wait, sqlx::postgres::PgConnection::connect(url.expose())).await;
    let mut connection = match connected {
        Ok(Ok(c)) => c,
        Err(_) => {
            let waited = humantime::format_duration(wait);
            report.fail(
                CHECK,
                format!("{shown}: no answer within {waited}"),
                "check the host and port in `store.url`, that PostgreSQL runs and listens there \
                 (`listen_addresses`), and that no firewall drops the traffic",
            );
            return;
        }
        Ok(Err(e)) => {
            report.fail(
                CHECK,
                format!("{shown}: cannot connect: {e}"),
                after_refusal(&e),
            );
            return;
        }
    };
    let answer: Result<i32, sqlx::Error> = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut connection)
        .await;
    let _ = connection.close().await;
    match answer {
        Ok(1) => report.ok(CHECK, format!("{shown}: PostgreSQL answers (SELECT 1)")),
        Ok(other) => report.fail(
            CHECK,
            format!("{shown}: SELECT 1 answered {other}"),
            "something other than PostgreSQL answers there; check `store.url`",
        ),
        Err(e) => report.fail(
            CHECK,
            format!("{shown}: connected, but a query failed: {e}"),
            "check that the user in `store.url` may use the database (GRANT CONNECT, USAGE)",
        ),
    }
}

/// What to do when PostgreSQL refused the connection, by its SQLSTATE class.
fn after_refusal(error: &sqlx::Error) -> &'static str {
    let code = match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    match code.as_deref() {
        // Class 28: invalid authorization.
        Some(c) if c.starts_with("28") => {
            "check the user and password in `store.url` (or in the variable `store.url_env` \
             names), and that pg_hba.conf admits this host"
        }
        Some("3D000") => {
            "create the database (`createdb -O USER NAME`), or correct its name in `store.url`; \
             the node makes its tables itself"
        }
        _ => {
            "check `store.url` (or the variable `store.url_env` names), and that PostgreSQL \
             runs and accepts connections from this host"
        }
    }
}

/// Checks the database file, or the data directory it will be made in.
async fn sqlite(report: &mut Report, config: &Config, db: &Path) {
    match std::fs::metadata(db) {
        Ok(_) => quick_check(report, db).await,
        Err(e) if e.kind() == ErrorKind::NotFound => data_dir(report, &config.data_dir),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => report.fail(
            CHECK,
            format!("{}: permission denied", db.display()),
            "run tatmx doctor as the user the node runs as (`sudo -u tatmx tatmx doctor ...`) \
             or as root",
        ),
        Err(e) => report.fail(
            CHECK,
            format!("{}: {e}", db.display()),
            "check `node.data_dir` in the config and the disk it is on",
        ),
    }
}

/// Opens the database read-only and runs SQLite's own consistency check.
async fn quick_check(report: &mut Report, db: &Path) {
    let shown = db.display();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        // A running node may hold the write lock for a moment.
        .busy_timeout(Duration::from_secs(5));
    let mut connection = match options.connect().await {
        Ok(c) => c,
        Err(e) => {
            report.fail(
                CHECK,
                format!("{shown}: cannot open it read-only: {e}"),
                "run tatmx doctor as the node's user (`sudo -u tatmx tatmx doctor ...`); if it \
                 still fails, the file may not be a tatmx database: check `node.data_dir`",
            );
            return;
        }
    };
    let rows: Result<Vec<String>, sqlx::Error> = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_all(&mut connection)
        .await;
    // Closing a read-only connection writes nothing; a failure to close changes no verdict.
    let _ = connection.close().await;
    match rows {
        Ok(rows) if rows == ["ok"] => {
            report.ok(CHECK, format!("{shown}: SQLite database, quick_check ok"));
        }
        Ok(rows) => report.fail(
            CHECK,
            format!(
                "{shown}: quick_check found damage: {}",
                rows.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ),
            "stop the node, keep a copy of the file (with its -wal file), and restore the last \
             good backup (docs/OPERATIONS.md); then run tatmx doctor again",
        ),
        Err(e) => report.fail(
            CHECK,
            format!("{shown}: quick_check could not run: {e}"),
            "the file may be damaged or not a tatmx database: check `node.data_dir`, and \
             restore the last good backup if it is damaged",
        ),
    }
}

/// No database yet: the node makes the data directory (mode 0700) and the database on its first
/// start, so the nearest directory that exists must be writable by this user.
fn data_dir(report: &mut Report, dir: &Path) {
    let existing = dir.ancestors().find(|d| d.is_dir());
    let Some(existing) = existing else {
        report.fail(
            CHECK,
            format!("{}: no part of this path exists", dir.display()),
            "set `node.data_dir` in the config to the node's data directory, such as \
             /var/lib/tatmx",
        );
        return;
    };
    // A file made and removed at once is the only sure test of writability (ACLs, read-only
    // mounts and SELinux all play a part).
    match tempfile::Builder::new()
        .prefix(".tatmx-doctor-")
        .tempfile_in(existing)
    {
        Ok(_) if existing == dir => report.ok(
            CHECK,
            format!(
                "no database yet in {}; it is writable, so the node makes one on its first start",
                dir.display()
            ),
        ),
        Ok(_) => report.ok(
            CHECK,
            format!(
                "no database yet: the node makes {} (mode 0700) and its database on its first \
                 start",
                dir.display()
            ),
        ),
        Err(e) => report.fail(
            CHECK,
            format!(
                "no database yet, and this user cannot write in {}: {e}",
                existing.display()
            ),
            format!(
                "make the data directory for the node's user: `install -d -m 0700 -o tatmx -g \
                 tatmx {}`; or run tatmx doctor as that user",
                dir.display()
            ),
        ),
    }
}
