//! Peer and store faults: a skewed clock, a peer that never answers, a locked store, a full
//! disk.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::time::{Duration, Instant};

use tatmx_proto::v1 as pb;
use tatmx_tests::*;

fn at(offset: Duration, ahead: bool) -> String {
    let now = time::OffsetDateTime::now_utc();
    let then = if ahead { now + offset } else { now - offset };
    ((then.unix_timestamp_nanos() / 1_000_000) as i64).to_string()
}

#[tokio::test]
async fn a_clock_five_minutes_off_still_works_and_more_is_refused_by_name() {
    let (fed, core, school) = core_and_school();
    let node = start(&core).await;
    let mut client = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    let send = |sent_at: String| {
        let mut request = tonic::Request::new(signed_referral(&school, outgoing(&school, &core)));
        request
            .metadata_mut()
            .insert("x-tatmx-sent-at", sent_at.parse().unwrap());
        request
    };
    for (offset, ahead) in [(240, true), (240, false)] {
        client
            .deliver_referral(send(at(Duration::from_secs(offset), ahead)))
            .await
            .unwrap();
    }
    for ahead in [true, false] {
        let status = client
            .deliver_referral(send(at(Duration::from_secs(600), ahead)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
        assert!(status.message().starts_with("clock skew"), "{status:?}");
        assert!(status.message().contains("NTP"), "{status:?}");
    }
    assert_eq!(inbox_len(&core).await, 2);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_delays_nobody_else() {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    let silent = fed.team("state-police-tat", "core", "law-enforcement");
    fed.write_config(&core, &[&school], "");
    fed.write_config(&school, &[&core, &silent], "");
    // The silent peer accepts TCP connections and then says nothing, ever.
    let listener = std::net::TcpListener::bind(addr(&silent)).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let mut stuck = Vec::new();
    for _ in 0..3 {
        stuck.push(submit(&mut agency(&school).await, draft("state-police-tat")).await);
    }
    let started = Instant::now();
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &id).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a healthy peer waited {:?} behind a silent one",
        started.elapsed()
    );
    let outbox = agency(&school)
        .await
        .list_outbox(pb::ListOutboxRequest {
            limit: 0,
            dead_only: false,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    for id in &stuck {
        let entry = outbox.iter().find(|e| &e.referral_id == id).unwrap();
        assert_eq!(entry.state, pb::DeliveryState::Pending as i32, "{entry:?}");
    }
    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_store_gives_a_clear_error_and_half_writes_nothing() {
    let (_fed, core, school) = core_and_school();
    let node = start(&school).await;
    // Another program holds the store: SQLite's one write lock, or on PostgreSQL an exclusive
    // lock on the table every submission writes.
    let mut lock = store_connection(&school, true).await;
    let statements: &[&str] = if school.database.is_some() {
        &["BEGIN", "LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE"]
    } else {
        &["BEGIN EXCLUSIVE"]
    };
    for statement in statements {
        sqlx::query(statement).execute(&mut lock).await.unwrap();
    }
    let status = agency(&school)
        .await
        .submit_referral(pb::SubmitReferralRequest {
            referral: Some(draft("county-core")),
            dry_run: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("busy"), "{status:?}");
    assert!(!status.message().contains("CANARY"), "{status:?}");
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    sqlx::Connection::close(lock).await.unwrap();

    // Nothing of the refused submission was written; the next one goes through.
    let outbox = agency(&school)
        .await
        .list_outbox(pb::ListOutboxRequest {
            limit: 0,
            dead_only: false,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(outbox.is_empty(), "{outbox:?}");
    submit(&mut agency(&school).await, draft("county-core")).await;
    let _ = core;
    node.shutdown().await;
}

/// A small tmpfs mounted over a directory for one test, unmounted when dropped (even after a
/// failed assertion), so the test can fill a real disk.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// Mounts `size` of tmpfs at `dir`; `None` when this process may not mount (not root).
    fn mount(dir: &std::path::Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Self(dir.to_owned()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_a_clear_error_and_half_writes_nothing() {
    let (_fed, core, school) = core_and_school();
    if school.database.is_some() {
        // The database is on the PostgreSQL server's disk, which every other test shares.
        eprintln!("SKIPPED on PostgreSQL: filling the server's disk would fail every other test");
        return;
    }
    // The school's data directory is a real file system of 8 MiB. Mounting needs root, which
    // CI has; elsewhere the test says so and stops.
    let Some(_disk) = SmallDisk::mount(&school.dir.join("data"), "8m") else {
        eprintln!(
            "SKIPPED: mounting a small tmpfs needs root; run the suite as root to test a full disk"
        );
        return;
    };
    let node = start(&school).await;
    // Take all the space that is left.
    let filler = school.dir.join("data").join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0_u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
    }

    // Submit until the store runs out of room: SQLite may first reuse space its WAL holds.
    let mut agency = agency(&school).await;
    let mut stored = 0;
    let refusal = loop {
        assert!(stored < 2000, "the disk never filled up");
        match agency
            .submit_referral(pb::SubmitReferralRequest {
                referral: Some(draft("county-core")),
                dry_run: false,
                ..Default::default()
            })
            .await
        {
            Ok(_) => stored += 1,
            Err(status) => break status,
        }
    };
    assert_eq!(
        refusal.code(),
        tonic::Code::ResourceExhausted,
        "{refusal:?}"
    );
    assert!(refusal.message().contains("disk is full"), "{refusal:?}");
    assert!(
        refusal.message().contains("nothing was saved"),
        "{refusal:?}"
    );
    assert!(!refusal.message().contains("CANARY"), "{refusal:?}");

    // An admin frees space; the refused submission left nothing behind, and the node goes on.
    std::fs::remove_file(&filler).unwrap();
    let queued = |agency: &mut tatmx_proto::v1::agency_client::AgencyClient<_>| {
        let mut agency = agency.clone();
        async move {
            agency
                .list_outbox(pb::ListOutboxRequest {
                    limit: 1000,
                    dead_only: false,
                })
                .await
                .unwrap()
                .into_inner()
                .entries
                .len()
        }
    };
    assert_eq!(
        queued(&mut agency).await,
        stored,
        "a refused submission was half-written"
    );
    submit(&mut agency, draft("county-core")).await;
    assert_eq!(queued(&mut agency).await, stored + 1);
    let _ = core;
    node.shutdown().await;
}
