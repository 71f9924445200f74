//! A referral travels from one real node to another and survives what real deployments do to
//! it: restarts, a peer that is down, and redelivery.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::time::Duration;

use tatmx_proto::v1 as pb;
use tatmx_tests::*;

/// Longer than a message may wait for its peer by default (`[delivery] max_age`, seven days).
const WEEK_AND_A_DAY: Duration = Duration::from_secs(8 * 24 * 3600);

#[tokio::test]
async fn a_referral_is_delivered_persisted_and_acknowledged() {
    let (_fed, core, school) = core_and_school();
    let core_node = start(&core).await;
    let school_node = start(&school).await;

    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    let entry = delivered(&school, &id).await;
    assert_eq!(entry.peer, core.identity.uri());
    assert!(entry.delivered_at.is_some());

    // The receiver holds it, with the sender's identity taken from the certificate.
    let inbox = agency(&core)
        .await
        .list_inbox(pb::ListInboxRequest { limit: 0 })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].referral_id, id);
    assert_eq!(inbox[0].sender, school.identity.uri());
    let record = agency(&core)
        .await
        .get_referral(pb::GetReferralRequest {
            referral_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let referral = record.referral.unwrap();
    assert_eq!(
        referral.content.unwrap().narrative.unwrap().text,
        "CANARY-NARRATIVE-91bc"
    );
    assert_eq!(record.direction, pb::Direction::Inbound as i32);

    // The receiver's `received` status update flows back to the sender.
    referral_when(&school, &id, "received status at sender", |record| {
        let statuses: Vec<i32> = record.timeline.iter().map(|e| e.status).collect();
        record.status == pb::ReferralStatus::Received as i32
            && statuses
                == [
                    pb::ReferralStatus::Sent as i32,
                    pb::ReferralStatus::Received as i32,
                ]
    })
    .await;

    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test]
async fn the_referral_survives_a_receiver_restart() {
    let (_fed, core, school) = core_and_school();
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &id).await;

    core_node.shutdown().await;
    let core_node = start(&core).await;
    let record = agency(&core)
        .await
        .get_referral(pb::GetReferralRequest {
            referral_id: id.clone(),
        })
        .await
        .expect("still there after restart")
        .into_inner();
    assert_eq!(record.referral.unwrap().id, id);
    assert_eq!(inbox_len(&core).await, 1);

    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test]
async fn a_referral_to_a_peer_that_is_down_is_delivered_when_it_returns() {
    let (_fed, core, school) = core_and_school();
    let school_node = start(&school).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;

    // The peer is unreachable: the outbox keeps the message and records failed attempts.
    let socket = school.socket();
    let pending = eventually(Duration::from_secs(10), "a failed attempt", || {
        let socket = socket.clone();
        async move {
            let entries = tatmx_node::client::agency(&socket)
                .await
                .ok()?
                .list_outbox(pb::ListOutboxRequest {
                    limit: 0,
                    dead_only: false,
                })
                .await
                .ok()?
                .into_inner()
                .entries;
            entries
                .into_iter()
                .find(|e| e.attempts >= 2 && e.state == pb::DeliveryState::Pending as i32)
        }
    })
    .await;
    assert!(!pending.last_error.is_empty());

    let core_node = start(&core).await;
    let entry = delivered(&school, &id).await;
    assert!(entry.attempts >= 3, "attempts: {}", entry.attempts);
    assert_eq!(inbox_len(&core).await, 1);

    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test]
async fn a_message_delivered_twice_is_stored_once() {
    let (fed, core, school) = core_and_school();
    let core_node = start(&core).await;

    // Play the school's node by hand, with the school's real certificate.
    let mut client = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    let referral = outgoing(&school, &core);
    let request = || signed_referral(&school, referral.clone());
    let first = client
        .deliver_referral(request())
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
    let second = client
        .deliver_referral(request())
        .await
        .unwrap()
        .into_inner();
    assert!(second.duplicate);
    assert_eq!(second.message_id, referral.id);
    assert_eq!(inbox_len(&core).await, 1);

    // The same id with different content is a replay, not a redelivery.
    let mut altered = referral.clone();
    altered.level_of_concern = Some(pb::LevelOfConcern {
        scheme: "CSTAG".into(),
        value: "transient".into(),
    });
    let status = client
        .deliver_referral(signed_referral(&school, altered))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}");
    assert_eq!(inbox_len(&core).await, 1);

    core_node.shutdown().await;
}

#[tokio::test]
async fn a_message_undelivered_past_its_maximum_age_becomes_a_dead_letter_and_can_be_retried() {
    let (_fed, core, school) = core_and_school();
    let school_node = start_on_tokio_time(&school).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    // The county's node stays down for longer than a message may wait (seven days by
    // default); the school's node lives through that week in no time.
    skip_ahead(WEEK_AND_A_DAY).await;

    let socket = school.socket();
    let dead = eventually(Duration::from_secs(10), "a dead letter", || {
        let socket = socket.clone();
        async move {
            tatmx_node::client::agency(&socket)
                .await
                .ok()?
                .list_outbox(pb::ListOutboxRequest {
                    limit: 0,
                    dead_only: true,
                })
                .await
                .ok()?
                .into_inner()
                .entries
                .into_iter()
                .next()
        }
    })
    .await;
    assert_eq!(dead.referral_id, id);
    assert_eq!(dead.state, pb::DeliveryState::Dead as i32);
    assert!(
        dead.last_error.contains("undelivered for more than 7days"),
        "{dead:?}"
    );

    // The peer comes back; the dead letter waits for an admin, who retries it.
    let core_node = start(&core).await;
    let retried = agency(&school)
        .await
        .retry_message(pb::RetryMessageRequest {
            message_id: dead.message_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.state, pb::DeliveryState::Pending as i32);
    delivered(&school, &id).await;
    assert_eq!(inbox_len(&core).await, 1);
    let status = agency(&school)
        .await
        .retry_message(pb::RetryMessageRequest {
            message_id: dead.message_id,
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        tonic::Code::NotFound,
        "only a dead letter can be retried"
    );

    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test]
async fn a_watcher_is_told_when_each_message_is_acknowledged_and_when_one_dies() {
    let (_fed, core, school) = core_and_school();
    let school_node = start_on_tokio_time(&school).await;
    let mut watch = agency(&school)
        .await
        .watch_outbox(pb::WatchOutboxRequest {})
        .await
        .unwrap()
        .into_inner();

    // Nobody listens at the core's address: the referral outlives its maximum age.
    let lost = submit(&mut agency(&school).await, draft("county-core")).await;
    skip_ahead(WEEK_AND_A_DAY).await;
    let dead = next(&mut watch).await;
    assert_eq!(dead.referral_id, lost);
    assert_eq!(dead.state, pb::DeliveryState::Dead as i32);
    assert!(dead.delivered_at.is_none());

    let core_node = start(&core).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    let settled = next(&mut watch).await;
    assert_eq!(settled.referral_id, id);
    assert_eq!(settled.message_id, id, "a referral's message id is its own");
    assert_eq!(settled.state, pb::DeliveryState::Delivered as i32);
    assert_eq!(settled.peer, core.identity.uri());
    assert!(settled.delivered_at.is_some());
    // Announced only once committed: the outbox already says so.
    assert_eq!(delivered(&school, &id).await.message_id, settled.message_id);

    // The watch ends when the node stops, instead of holding it open.
    school_node.shutdown().await;
    let end = tokio::time::timeout(Duration::from_secs(10), watch.message()).await;
    assert!(
        matches!(end, Ok(Ok(None)) | Ok(Err(_))),
        "the watch ends with the node: {end:?}"
    );
    core_node.shutdown().await;
}

/// The next event of an outbox watch, within ten seconds.
async fn next(watch: &mut tonic::Streaming<pb::OutboxEntry>) -> pb::OutboxEntry {
    tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("an event within 10 s")
        .expect("the watch is healthy")
        .expect("the watch is open")
}
