//! The closed loop between real nodes: each status moved by the right party, refused when out
//! of order or by the wrong party, filtered on its way, and never ahead of its referral.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::time::Duration;

use tatmx_node::refusal::Reason;
use tatmx_proto::v1 as pb;
use tatmx_tests::*;

async fn set(
    team: &TeamSpec,
    id: &str,
    status: pb::ReferralStatus,
    reason: &str,
    outcome: Option<pb::AssessmentOutcome>,
) -> Result<pb::ReferralRecord, tonic::Status> {
    agency(team)
        .await
        .update_referral_status(pb::UpdateReferralStatusRequest {
            referral_id: id.to_owned(),
            status: status.into(),
            reason: reason.into(),
            outcome,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

/// Declines or cancels at `team`'s node, with a code and (optionally) words.
async fn decide(
    team: &TeamSpec,
    id: &str,
    status: pb::ReferralStatus,
    code: pb::ReasonCode,
    reason: &str,
) -> Result<pb::ReferralRecord, tonic::Status> {
    agency(team)
        .await
        .update_referral_status(pb::UpdateReferralStatusRequest {
            referral_id: id.to_owned(),
            status: status.into(),
            reason: reason.into(),
            reason_code: code.into(),
            outcome: None,
        })
        .await
        .map(|r| r.into_inner())
}

/// Waits until `team` sees the referral in `status`, and returns its record.
async fn reaches(team: &TeamSpec, id: &str, status: pb::ReferralStatus) -> pb::ReferralRecord {
    referral_when(team, id, "a status to arrive", |record| {
        record.status == status as i32
    })
    .await
}

#[tokio::test]
async fn the_whole_loop_from_referral_to_closed() {
    let (_fed, core, school) = core_and_school();
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    reaches(&school, &id, pb::ReferralStatus::Received).await;

    use pb::ReferralStatus as S;
    set(&core, &id, S::Accepted, "", None).await.unwrap();
    set(&core, &id, S::InAssessment, "", None).await.unwrap();
    let outcome = pb::AssessmentOutcome {
        level_of_concern: Some(pb::LevelOfConcern {
            scheme: "CSTAG".into(),
            value: "transient".into(),
        }),
        management_plan: true,
        ..Default::default()
    };
    set(&core, &id, S::Completed, "", Some(outcome.clone()))
        .await
        .unwrap();
    set(&core, &id, S::Closed, "", None).await.unwrap();

    let record = reaches(&school, &id, S::Closed).await;
    let statuses: Vec<i32> = record.timeline.iter().map(|e| e.status).collect();
    let expected: Vec<i32> = [
        S::Sent,
        S::Received,
        S::Accepted,
        S::InAssessment,
        S::Completed,
        S::Closed,
    ]
    .into_iter()
    .map(Into::into)
    .collect();
    assert_eq!(statuses, expected);
    let completed = record
        .timeline
        .iter()
        .find(|e| e.status == S::Completed as i32)
        .unwrap();
    assert_eq!(
        completed.outcome.as_ref(),
        Some(&outcome),
        "the minimal outcome reaches the sender"
    );
    assert_eq!(completed.actor, core.identity.uri());

    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test]
async fn invalid_transitions_and_the_wrong_party_are_refused() {
    let (_fed, core, school) = core_and_school();
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    reaches(&school, &id, pb::ReferralStatus::Received).await;
    use pb::ReferralStatus as S;

    let status = set(&core, &id, S::Completed, "", None).await.unwrap_err();
    assert_refused(&status, Reason::TransitionRefused);
    assert!(
        status.message().contains("the referral is received"),
        "{status:?}"
    );
    let status = set(&school, &id, S::Accepted, "", None).await.unwrap_err();
    assert_refused(&status, Reason::WrongParty);
    assert!(
        status.message().contains("only the recipient"),
        "{status:?}"
    );
    let status = set(&core, &id, S::Cancelled, "no", None).await.unwrap_err();
    assert_refused(&status, Reason::WrongParty);
    assert!(status.message().contains("only the sender"), "{status:?}");
    // Words alone are no reason: the code is what the other team can count on receiving.
    let status = set(&core, &id, S::Declined, "Not ours.", None)
        .await
        .unwrap_err();
    assert_refused_at(&status, Reason::InvalidMessage, "reason_code", "Not ours");
    let status = decide(&core, &id, S::Declined, pb::ReasonCode::Unspecified, "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("reason_code"), "{status:?}");
    let mut unknown = pb::UpdateReferralStatusRequest {
        referral_id: id.clone(),
        status: S::Declined.into(),
        ..Default::default()
    };
    unknown.reason_code = 99;
    let status = agency(&core)
        .await
        .update_referral_status(unknown)
        .await
        .unwrap_err();
    assert_refused_at(&status, Reason::InvalidMessage, "reason_code", "");
    assert!(
        status.message().contains("unknown reason code 99"),
        "{status:?}"
    );
    let status = set(&core, &id, S::Unspecified, "", None).await.unwrap_err();
    assert_refused_at(&status, Reason::InvalidMessage, "status", "");

    // Declined, with a free-text reason the policy does not let reach a school. The chair
    // sees that before confirming: the preview keeps the words back and says why.
    let words = "CANARY-DECLINE-88 the family lives in the next county";
    let preview = agency(&core)
        .await
        .preview_status_change(pb::UpdateReferralStatusRequest {
            referral_id: id.clone(),
            status: S::Declined.into(),
            reason: words.into(),
            reason_code: pb::ReasonCode::OutsideJurisdiction.into(),
            outcome: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(preview.reason.is_empty(), "{preview:?}");
    assert_eq!(
        preview.reason_code,
        pb::ReasonCode::OutsideJurisdiction as i32
    );
    let narrative = preview
        .withheld
        .iter()
        .find(|w| w.category == pb::DataCategory::Narrative as i32)
        .expect("the preview says the words are kept back");
    assert!(!narrative.reasons.is_empty(), "{preview:?}");
    assert_eq!(
        reaches(&core, &id, S::Received).await.status,
        S::Received as i32,
        "a preview changes nothing"
    );
    decide(
        &core,
        &id,
        S::Declined,
        pb::ReasonCode::OutsideJurisdiction,
        words,
    )
    .await
    .unwrap();
    let record = reaches(&school, &id, S::Declined).await;
    let declined = record
        .timeline
        .iter()
        .find(|e| e.status == S::Declined as i32)
        .unwrap();
    assert!(
        declined.reason.is_empty(),
        "the reason was withheld by policy: {declined:?}"
    );
    assert_eq!(
        declined.reason_code,
        pb::ReasonCode::OutsideJurisdiction as i32,
        "the code always arrives: {declined:?}"
    );
    assert!(
        declined
            .withheld
            .iter()
            .any(|w| w.category == pb::DataCategory::Narrative as i32),
        "the school is told the words were kept back: {declined:?}"
    );
    // A declined referral cannot be cancelled any more.
    let status = set(&school, &id, S::Cancelled, "changed our mind", None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("declined"), "{status:?}");

    // A forged update from a peer, out of order, is refused by the receiving node too.
    let mut client = federation_client(&core.dir, &[&_fed.ca_path], &core.identity, &school);
    let forged = client
        .update_status(signed_update(
            &core,
            pb::StatusUpdate {
                id: uuid::Uuid::now_v7().to_string(),
                referral_id: id.clone(),
                author: core.identity.uri(),
                status: S::InAssessment.into(),
                at: Some(prost_types::Timestamp {
                    seconds: 1_790_000_000,
                    nanos: 0,
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), tonic::Code::FailedPrecondition, "{forged:?}");

    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test]
async fn a_cancel_sent_before_its_referral_was_delivered_arrives_after_it() {
    let (_fed, core, school) = core_and_school();
    let school_node = start(&school).await;
    // The core team's node is down: both the referral and its cancellation wait in the outbox.
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    decide(
        &school,
        &id,
        pb::ReferralStatus::Cancelled,
        pb::ReasonCode::ReferredElsewhere,
        "Resolved by the school counsellor.",
    )
    .await
    .unwrap();
    let core_node = start(&core).await;
    let record = reaches(&core, &id, pb::ReferralStatus::Cancelled).await;
    let statuses: Vec<i32> = record.timeline.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        vec![
            pb::ReferralStatus::Received as i32,
            pb::ReferralStatus::Cancelled as i32
        ],
        "the referral first, then its cancellation"
    );
    // The core's receipt still reaches the school, as a fact in its timeline, without undoing
    // the cancellation, and nothing is left undelivered or rejected.
    referral_when(&school, &id, "the receipt at the school", |record| {
        record.status == pb::ReferralStatus::Cancelled as i32
            && record
                .timeline
                .iter()
                .any(|e| e.status == pb::ReferralStatus::Received as i32)
    })
    .await;
    let outbox = agency(&core)
        .await
        .list_outbox(pb::ListOutboxRequest {
            limit: 0,
            dead_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        outbox
            .entries
            .iter()
            .all(|e| e.state == pb::DeliveryState::Delivered as i32),
        "{:?}",
        outbox.entries
    );
    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test]
async fn the_words_of_status_changes_are_sealed_at_the_recipient_and_shredded_by_a_purge() {
    let (_fed, core, school) = core_and_school();
    let core_node = start_on_tokio_time(&core).await;
    let school_node = start(&school).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    reaches(&core, &id, pb::ReferralStatus::Received).await;

    // The school cancels in its own words, which the policy lets reach the county.
    let received = "CANARY-RECEIVED-WORDS-62 the family moved away";
    decide(
        &school,
        &id,
        pb::ReferralStatus::Cancelled,
        pb::ReasonCode::OutsideJurisdiction,
        received,
    )
    .await
    .unwrap();
    let record = reaches(&core, &id, pb::ReferralStatus::Cancelled).await;
    let words: Vec<&str> = record.timeline.iter().map(|e| e.reason.as_str()).collect();
    assert!(words.contains(&received), "{words:?}");

    // Read back through the referral's data key, but never on disk in the clear.
    let bytes = database_bytes(&core);
    assert!(
        !contains(&bytes, &received.as_bytes()[..24]),
        "the words are on disk in the clear"
    );

    // Three years on, retention purges the referral: its key goes, and the words with it.
    let key = data_key(&core, &id)
        .await
        .expect("a received referral has a data key");
    skip_ahead(Duration::from_secs(3 * 366 * 24 * 3600)).await;
    eventually(Duration::from_secs(10), "the retention purge", || {
        let (core, id) = (core.clone(), id.clone());
        async move { data_key(&core, &id).await.is_none().then_some(()) }
    })
    .await;
    let status = agency(&core)
        .await
        .get_referral(pb::GetReferralRequest {
            referral_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    core_node.shutdown().await;
    school_node.shutdown().await;
    let bytes = database_bytes(&core);
    assert!(!contains(&bytes, &key), "the data key is shredded");
    assert!(!contains(&bytes, &received.as_bytes()[..24]));
}
