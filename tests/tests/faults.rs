//! Peer and store faults: a skewed clock, a peer that never answers, a locked store.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::time::{Duration, Instant};

use sqlx::ConnectOptions;
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
    let database = school.dir.join("data").join("tatmx.db");
    let mut lock = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&database)
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut lock)
        .await
        .unwrap();
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
