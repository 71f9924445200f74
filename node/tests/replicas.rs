//! Replicas: two `tatmx-node` processes of one team sharing one PostgreSQL store, as a large
//! agency runs for high availability.
//!
//! They split the team's outbox between them with leased claims, so no message is sent twice,
//! and their audit entries form one chain. A replica killed while it holds a claim leaves it to
//! run out; the other replica then sends the message, once.
//!
//! The last test checks the other thing a shared store needs: that the connection to a
//! PostgreSQL server elsewhere can be encrypted (`?sslmode=require` in the URL).
//!
//! These need PostgreSQL: they run when `TATMX_TEST_POSTGRES` names a server (as `.ci/run` sets
//! it) and say SKIPPED otherwise.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tatmx_proto::v1 as pb;
use tatmx_tests::*;

/// A node process; killed with SIGKILL when dropped.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(team: &TeamSpec, name: &str) -> Self {
        let log = team.dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_tatmx-node"))
            .arg("--config")
            .arg(team.config_path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    /// Sends a signal by name (STOP, CONT) with kill(1).
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A stopped process must be continued to die promptly.
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .status();
        self.kill();
    }
}

/// The school (two replicas on one database) and the county core team (one node).
struct Setup {
    _fed: TestFederation,
    core: TeamSpec,
    /// Replica A: the school's config as its peers know it.
    school_a: TeamSpec,
    /// Replica B: the same team, database and keys, with its own port and data directory.
    school_b: TeamSpec,
}

fn setup() -> Option<Setup> {
    if backend::postgres().is_none() {
        eprintln!(
            "SKIPPED: replicas share a PostgreSQL store; set {} to run this",
            backend::POSTGRES_VAR
        );
        return None;
    }
    let (mut fed, core, school_a) = core_and_school();
    let dir_b = school_a.dir.with_file_name("lincoln-high-b");
    std::fs::create_dir_all(&dir_b).unwrap();
    for file in ["node.pem", "node.key"] {
        std::fs::copy(school_a.dir.join(file), dir_b.join(file)).unwrap();
    }
    let school_b = TeamSpec {
        dir: dir_b,
        port: fed.port(),
        ..school_a.clone()
    };
    fed.write_config(&school_b, &[&core], "");
    Some(Setup {
        _fed: fed,
        core,
        school_a,
        school_b,
    })
}

/// Waits until `team`'s node (a child process) answers on its Agency socket.
async fn serving(team: &TeamSpec, what: &str) {
    eventually(Duration::from_secs(20), what, || async {
        tatmx_node::client::agency(&team.socket())
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}

/// Starts both replicas. They must share the key that makes case handles (made at start-up,
/// before the node serves), as replicas in production share it from one secret.
async fn start_replicas(setup: &Setup) -> (Process, Process) {
    let a = Process::spawn(&setup.school_a, "replica-a");
    serving(&setup.school_a, "replica A to start").await;
    let key = setup.school_a.dir.join("data").join("case-handle.key");
    let data_b = setup.school_b.dir.join("data");
    std::fs::create_dir_all(&data_b).unwrap();
    std::fs::copy(&key, data_b.join("case-handle.key")).unwrap();
    let b = Process::spawn(&setup.school_b, "replica-b");
    serving(&setup.school_b, "replica B to start").await;
    (a, b)
}

async fn count(team: &TeamSpec, sql: &str) -> i64 {
    let mut db = store_connection(team, false).await;
    let n = sqlx::query_scalar(sql).fetch_one(&mut db).await.unwrap();
    sqlx::Connection::close(db).await.ok();
    n
}

/// How many times the core team was handed a referral it already had.
fn duplicates(core: &Process) -> usize {
    core.log()
        .matches("duplicate referral acknowledged again")
        .count()
}

/// Waits until every message in the shared outbox is delivered, seen through `replica`.
async fn all_delivered(replica: &TeamSpec, within: Duration) {
    eventually(within, "every message to be delivered", || async {
        let pending = count(
            replica,
            "SELECT COUNT(*) FROM outbox WHERE state <> 'delivered'",
        )
        .await;
        (pending == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_live_replicas_send_every_message_once_and_keep_one_audit_chain() {
    let Some(setup) = setup() else { return };
    let core = Process::spawn(&setup.core, "core");
    let (_a, _b) = start_replicas(&setup).await;

    // Case workers submit through both replicas at once.
    let mut ids = Vec::new();
    let mut via_a = agency(&setup.school_a).await;
    let mut via_b = agency(&setup.school_b).await;
    for n in 0..30 {
        let client = if n % 2 == 0 { &mut via_a } else { &mut via_b };
        ids.push(submit(client, draft("county-core")).await);
    }
    all_delivered(&setup.school_a, Duration::from_secs(30)).await;
    assert_eq!(inbox_len(&setup.core).await, ids.len());
    assert_eq!(
        duplicates(&core),
        0,
        "a replica sent a message the other had sent"
    );

    // Both replicas appended to the same chain, which verifies whole from either of them.
    for replica in [&setup.school_a, &setup.school_b] {
        let verified = verify(replica).await;
        assert!(verified.ok && verified.entries > 30, "{verified:?}");
    }
    // One statement, one snapshot: the replicas may still be appending (receipts, checkpoints).
    let gaps = count(&setup.school_a, "SELECT MAX(seq) - COUNT(*) FROM audit_log").await;
    assert_eq!(gaps, 0, "the chain has a gap or a fork");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_delivery_leaves_its_messages_to_the_other_once() {
    let Some(setup) = setup() else { return };
    let core = Process::spawn(&setup.core, "core");
    serving(&setup.core, "the core team to start").await;
    let (mut a, _b) = start_replicas(&setup).await;

    // The core team hangs: connections open, but nothing is answered.
    core.signal("STOP");
    let mut via_a = agency(&setup.school_a).await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(submit(&mut via_a, draft("county-core")).await);
    }
    // Replica A claims them and tries to deliver; kill it while it holds the claim.
    eventually(
        Duration::from_secs(20),
        "replica A to claim the messages",
        || {
            let school = setup.school_a.clone();
            async move {
                let claimed = count(
                &school,
                "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND lease_owner IS NOT NULL",
            )
            .await;
                (claimed > 0).then_some(())
            }
        },
    )
    .await;
    a.kill();
    core.signal("CONT");

    // Replica B takes them over once the claim runs out, and delivers each once.
    all_delivered(&setup.school_b, Duration::from_secs(60)).await;
    assert_eq!(inbox_len(&setup.core).await, ids.len());
    assert_eq!(duplicates(&core), 0, "a message arrived twice");
    let leases = count(
        &setup.school_b,
        "SELECT COUNT(*) FROM outbox WHERE lease_owner IS NOT NULL",
    )
    .await;
    assert_eq!(leases, 0, "a settled message kept its claim");
    let from_b = verify(&setup.school_b).await;
    assert!(from_b.ok, "{from_b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_blocked_through_one_replica_is_blocked_by_the_other() {
    let Some(setup) = setup() else { return };
    let (_a, _b) = start_replicas(&setup).await;
    let core = setup.core.identity.team.to_string();
    let blocked = admin(&setup.school_a)
        .await
        .block_peer(pb::BlockPeerRequest {
            team: core.clone(),
            blocked: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(blocked.blocked, "{blocked:?}");
    // Replica B rebuilds its view from the shared store within its follow interval.
    eventually(
        Duration::from_secs(15),
        "replica B to see the block",
        || {
            let (school_b, core) = (setup.school_b.clone(), core.clone());
            async move {
                let seen = admin(&school_b)
                    .await
                    .show_peer(pb::PeerRef { team: core })
                    .await
                    .ok()?
                    .into_inner();
                seen.blocked.then_some(())
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_speaks_tls_to_postgresql_when_the_url_asks() {
    let Some(setup) = setup() else { return };
    let url = setup.core.database.clone().unwrap();
    let config = std::fs::read_to_string(setup.core.config_path()).unwrap();
    let with_tls = config.replace(&url, &format!("{url}?sslmode=require"));
    assert_ne!(config, with_tls);
    std::fs::write(setup.core.config_path(), with_tls).unwrap();
    let node = start(&setup.core).await;
    let name = url.rsplit('/').next().unwrap().to_owned();
    let base = backend::postgres().unwrap();
    let mut admin_db =
        backend::connect(Some(&format!("{base}/postgres")), &setup.core.dir, true).await;
    let (encrypted, plain): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*) FILTER (WHERE s.ssl), COUNT(*) FILTER (WHERE NOT s.ssl)
         FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid WHERE a.datname = $1",
    )
    .bind(name)
    .fetch_one(&mut admin_db)
    .await
    .unwrap();
    node.shutdown().await;
    assert!(
        encrypted > 0 && plain == 0,
        "{encrypted} over TLS, {plain} in the clear"
    );
}
