//! Crash safety with real processes: `kill -9` the sender or the receiver at random moments
//! while referrals and their status updates flow, restart it, and check at the end that every
//! message arrived exactly once, in order, and that both outboxes drained.
//!
//! The schedule is random but seeded, and printed, so a failure can be replayed:
//! `TATMX_CRASH_SEED=N cargo test -p tatmx-node --test crash -- --nocapture`. The size is set
//! with `TATMX_CRASH_REFERRALS` and `TATMX_CRASH_KILLS` (defaults 2000 and 24);
//! `TATMX_CRASH_DEBUG=1` prints every failed call.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tatmx_proto::v1 as pb;
use tatmx_tests::*;
use tokio::sync::Mutex;

/// One node as a child process, restartable.
struct Process {
    team: TeamSpec,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    fn spawn(team: &TeamSpec) -> Self {
        let mut process = Self {
            team: team.clone(),
            child: None,
            log: team.dir.join("node.log"),
        };
        process.start();
        process
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tatmx-node"))
            .arg("--config")
            .arg(self.team.config_path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown, no flush, no goodbye.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Undelivered messages in a node's outbox, read from its store.
async fn undelivered(team: &TeamSpec) -> i64 {
    let mut db = store_connection(team, false).await;
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state <> 'delivered'")
        .fetch_one(&mut db)
        .await
        .unwrap();
    sqlx::Connection::close(db).await.ok();
    n
}

/// Retries `attempt` until it succeeds, while the node may be down or restarting.
async fn until_up<T, F, Fut>(mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "the node did not come back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Submits referral `n` exactly once, the way a case system should: with an idempotency key,
/// retrying the same call until it gets an answer. After a crash the driver cannot know whether
/// its call committed; the node does, and answers a retry with the first submission.
async fn submit_once(school: &TeamSpec, n: usize) -> String {
    let key = format!("CRASH-{n}");
    until_up(|| {
        let key = key.clone();
        async move {
            let mut draft = draft("county-core");
            draft.case_ref = key.clone();
            let mut client = tatmx_node::client::agency(&school.socket()).await.ok()?;
            let answer = client
                .submit_referral(pb::SubmitReferralRequest {
                    referral: Some(draft),
                    dry_run: false,
                    idempotency_key: key.clone(),
                })
                .await;
            if let Err(e) = &answer
                && std::env::var("TATMX_CRASH_DEBUG").is_ok()
            {
                println!("  submit {key} failed: {:?} {}", e.code(), e.message());
            }
            answer.ok().map(|r| r.into_inner().referral_id)
        }
    })
    .await
}

/// Cancels referral `id` exactly once, checking after an error whether it already was.
async fn cancel_once(school: &TeamSpec, id: &str) {
    until_up(|| async move {
        let mut client = tatmx_node::client::agency(&school.socket()).await.ok()?;
        let result = client
            .update_referral_status(pb::UpdateReferralStatusRequest {
                referral_id: id.to_owned(),
                status: pb::ReferralStatus::Cancelled.into(),
                reason_code: pb::ReasonCode::Duplicate.into(),
                reason: "withdrawn by the school".into(),
                ..Default::default()
            })
            .await;
        if result.is_ok() {
            return Some(());
        }
        let record = client
            .get_referral(pb::GetReferralRequest {
                referral_id: id.to_owned(),
            })
            .await
            .ok()?
            .into_inner();
        (record.status == pb::ReferralStatus::Cancelled as i32).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_loses_and_duplicates_nothing() {
    let seed: u64 = std::env::var("TATMX_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261127);
    let referrals: usize = std::env::var("TATMX_CRASH_REFERRALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let kills: u32 = std::env::var("TATMX_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    println!(
        "crash test: seed {seed}, {referrals} referrals with a status update each, {kills} kills \
         (replay with TATMX_CRASH_SEED={seed})"
    );

    let (_fed, core, school) = core_and_school();
    let started = Instant::now();
    let sender = Arc::new(Mutex::new(Process::spawn(&school)));
    let receiver = Arc::new(Mutex::new(Process::spawn(&core)));
    until_up(|| async { tatmx_node::client::agency(&school.socket()).await.ok() }).await;

    // The chaos: at random moments, kill -9 one side and restart it a little later.
    let done = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicU32::new(0));
    let chaos = {
        let (sender, receiver) = (sender.clone(), receiver.clone());
        let (done, killed) = (done.clone(), killed.clone());
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            while killed.load(Ordering::SeqCst) < kills && !done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(rng.random_range(150..900))).await;
                let victim_is_sender = rng.random_bool(0.5);
                let down_for = Duration::from_millis(rng.random_range(0..400));
                let victim = if victim_is_sender { &sender } else { &receiver };
                let mut process = victim.lock().await;
                process.kill();
                let n = killed.fetch_add(1, Ordering::SeqCst) + 1;
                println!(
                    "  kill {n:>2}: {} at {:>6} ms, down {:>3} ms",
                    if victim_is_sender {
                        "sender  "
                    } else {
                        "receiver"
                    },
                    started.elapsed().as_millis(),
                    down_for.as_millis()
                );
                tokio::time::sleep(down_for).await;
                process.start();
            }
        })
    };

    let mut ids: Vec<String> = Vec::with_capacity(referrals);
    for n in 0..referrals {
        let id = submit_once(&school, n).await;
        if n % 2 == 1 {
            // Cancel the one before: its update may be queued while it is still undelivered.
            cancel_once(&school, &ids[n - 1]).await;
        }
        ids.push(id);
        if n % 2 == 1 {
            cancel_once(&school, &ids[n]).await;
        }
    }
    // Every kill happens before the end, even on a fast machine.
    while killed.load(Ordering::SeqCst) < kills {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done.store(true, Ordering::SeqCst);
    chaos.await.unwrap();

    // Both outboxes drain.
    until_up(|| async {
        (undelivered(&school).await == 0 && undelivered(&core).await == 0).then_some(())
    })
    .await;
    let elapsed = started.elapsed();
    sender.lock().await.kill();
    receiver.lock().await.kill();

    // At the receiver: each referral once, each update once, in order.
    let mut db = store_connection(&core, false).await;
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM referrals WHERE direction = 'inbound'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    let received: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, COUNT(*) FROM received_messages GROUP BY kind ORDER BY kind")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let events: Vec<(String, String)> =
        sqlx::query_as("SELECT referral_id, status FROM status_events ORDER BY referral_id, seq")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let mut timelines: Vec<(String, String)> = Vec::new();
    for (referral_id, status) in events {
        match timelines.last_mut() {
            Some((id, timeline)) if *id == referral_id => {
                timeline.push(',');
                timeline.push_str(&status);
            }
            _ => timelines.push((referral_id, status)),
        }
    }
    let mut sent_db = store_connection(&school, false).await;
    let sent: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM referrals WHERE direction = 'outbound'")
            .fetch_one(&mut sent_db)
            .await
            .unwrap();

    let dupes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT subject, COUNT(*) FROM referrals GROUP BY subject HAVING COUNT(*) > 1",
    )
    .fetch_all(&mut sent_db)
    .await
    .unwrap();
    if !dupes.is_empty() {
        println!("crash test: submitted twice: {dupes:?}");
    }
    let referrals_i64 = referrals as i64;
    let wrong: Vec<&(String, String)> = timelines
        .iter()
        .filter(|(_, t)| t != "received,cancelled")
        .collect();
    println!(
        "crash test: {} kills survived in {:.1} s; sent {sent}, received {stored} referrals, {:?}; \
         lost {}, duplicated {}, out of order {}",
        killed.load(Ordering::SeqCst),
        elapsed.as_secs_f64(),
        received,
        referrals_i64 - stored,
        (stored - referrals_i64).max(0),
        wrong.len()
    );
    assert_eq!(sent, referrals_i64, "the sender holds each referral once");
    assert_eq!(
        stored, referrals_i64,
        "the receiver holds each referral once"
    );
    assert_eq!(
        received,
        vec![
            ("referral".to_owned(), referrals_i64),
            ("status-update".to_owned(), referrals_i64),
        ]
    );
    assert_eq!(timelines.len(), referrals);
    assert!(
        wrong.is_empty(),
        "timelines out of order: {:?}",
        &wrong[..wrong.len().min(5)]
    );
}
