//! Consent revocation, retraction hop by hop with crypto-shredding, and retention purges.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::time::Duration;

use tatmx_proto::v1 as pb;
use tatmx_tests::*;

const CANARY: &str = "CANARY-RETRACTED-5d1e";

/// A draft shared on the basis of `consent`, with the canary in its narrative.
fn consented_draft(recipient: &str, consent: &str) -> pb::NewReferral {
    let mut draft = draft(recipient);
    draft.legal_basis = pb::LegalBasis::Consent.into();
    draft.justification.clear();
    draft.consent_ref = consent.to_owned();
    draft.subject_ref = "CASE-RETRACT".into();
    if let Some(content) = draft.content.as_mut() {
        content.narrative = Some(pb::Narrative {
            text: CANARY.into(),
        });
    }
    draft
}

async fn tombstones(team: &TeamSpec) -> Vec<pb::Tombstone> {
    agency(team)
        .await
        .list_tombstones(pb::ListTombstonesRequest { limit: 0 })
        .await
        .unwrap()
        .into_inner()
        .tombstones
}

/// Waits until neither `needles` is in `team`'s database file or WAL.
async fn shredded(team: &TeamSpec, needles: &[&[u8]]) {
    eventually(
        Duration::from_secs(10),
        "purged bytes to leave the disk",
        || {
            let bytes = database_bytes(team);
            let gone = needles.iter().all(|n| !contains(&bytes, n));
            async move { gone.then_some(()) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_consent_is_retracted_from_both_hops_and_shredded() {
    let mut fed = TestFederation::new("county-mdt.example");
    let school = fed.team("lincoln-high", "affiliate", "education");
    let core = fed.team("county-core", "core", "law-enforcement");
    let state = fed.team("state-police-tat", "core", "law-enforcement");
    fed.write_config(&school, &[&core], "");
    fed.write_config(&core, &[&school, &state], "");
    fed.write_config(&state, &[&core], "");
    let mut nodes = Vec::new();
    for team in [&school, &core, &state] {
        nodes.push(start(team).await);
    }

    let consent = consent_for(&school, "CASE-RETRACT", &[&core, &state]).await;
    let id = submit(
        &mut agency(&school).await,
        consented_draft("county-core", &consent),
    )
    .await;
    delivered(&school, &id).await;
    let forward = forward_delivered(&core, &id, "state-police-tat").await;

    // Both hops hold the case, readable through their API, sealed on disk under their own key.
    for (team, referral) in [(&core, &id), (&state, &forward)] {
        let held = referral_when(team, referral, "the copy", |_| true).await;
        assert!(format!("{held:?}").contains(CANARY));
        assert!(
            held.retain_until.is_some(),
            "a received copy has a deadline"
        );
    }
    let core_key = data_key(&core, &id)
        .await
        .expect("the core copy's data key");
    let state_key = data_key(&state, &forward)
        .await
        .expect("the state copy's data key");
    assert!(contains(&database_bytes(&core), &core_key));
    assert!(!contains(&database_bytes(&core), CANARY.as_bytes()));

    // The subject's guardian withdraws consent.
    let revoked = agency(&school)
        .await
        .revoke_consent(pb::RevokeConsentRequest {
            consent_id: consent.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoked_at.is_some());
    let progress = eventually(
        Duration::from_secs(15),
        "every hop's acknowledgement",
        || {
            let school = school.clone();
            let consent = consent.clone();
            async move {
                let progress = agency(&school)
                    .await
                    .get_retraction(pb::GetRetractionRequest {
                        consent_id: consent,
                    })
                    .await
                    .ok()?
                    .into_inner();
                (progress.complete && progress.targets.len() == 2).then_some(progress)
            }
        },
    )
    .await;
    let reached: Vec<(String, String, bool)> = progress
        .targets
        .iter()
        .map(|t| {
            let target = t.target.clone().unwrap();
            (target.team, target.referral_id, t.held)
        })
        .collect();
    assert_eq!(
        reached,
        vec![
            (core.identity.uri(), id.clone(), true),
            (state.identity.uri(), forward.clone(), true),
        ]
    );
    assert_eq!(
        progress.targets[1].reported_by,
        core.identity.uri(),
        "the second hop is known through the first"
    );

    // Each hop keeps only a tombstone; the API says what happened, and the disk has no trace.
    for (team, referral, count) in [(&core, &id, 2), (&state, &forward, 1)] {
        let status = agency(team)
            .await
            .get_referral(pb::GetReferralRequest {
                referral_id: referral.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert!(status.message().contains("purged"), "{status:?}");
        let stones = tombstones(team).await;
        assert_eq!(stones.len(), count, "{stones:?}");
        assert!(stones.iter().all(|t| {
            t.cause == pb::PurgeCause::ConsentRevoked as i32
                && t.retraction_id == progress.retraction_id
                && !t.categories.is_empty()
        }));
        assert!(!format!("{stones:?}").contains(CANARY));
        assert_eq!(inbox_len(team).await, 0);
    }
    assert_eq!(data_key(&core, &id).await, None);
    assert_eq!(data_key(&state, &forward).await, None);
    shredded(&core, &[&core_key, CANARY.as_bytes()]).await;
    shredded(&state, &[&state_key, CANARY.as_bytes()]).await;

    // Nothing more can be done with the data: no forward, no new disclosure on that consent.
    let status = agency(&core)
        .await
        .forward_referral(pb::ForwardReferralRequest {
            referral_id: id.clone(),
            recipient: "lincoln-high".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    let preview = agency(&school)
        .await
        .submit_referral(pb::SubmitReferralRequest {
            referral: Some(consented_draft("county-core", &consent)),
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let identity = preview
        .decisions
        .iter()
        .find(|d| d.category == pb::DataCategory::Identity as i32)
        .unwrap();
    assert_eq!(identity.outcome, pb::DisclosureOutcome::Withhold as i32);

    // Revoking again starts nothing new.
    agency(&school)
        .await
        .revoke_consent(pb::RevokeConsentRequest {
            consent_id: consent.clone(),
        })
        .await
        .unwrap();
    let again = agency(&school)
        .await
        .get_retraction(pb::GetRetractionRequest {
            consent_id: consent.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.retraction_id, progress.retraction_id);
    assert_eq!(again.targets.len(), 2);

    for node in nodes {
        node.shutdown().await;
    }
}

// On the current-thread runtime, whose time the test can move.
#[tokio::test]
async fn a_referral_undelivered_when_consent_is_revoked_is_never_delivered() {
    let (fed, core, school) = core_and_school();
    // The school waits ten minutes after a failed attempt, so that once its first attempt has
    // failed the referral is not in flight when the consent is revoked. (A referral already on
    // its way when consent is withdrawn is retracted after it arrives, as the other tests
    // show; this one is about a referral that never left.)
    let mut toml = fed.config(&school, &[&core]);
    if let Some(delivery) = toml.delivery.as_mut() {
        delivery.initial_backoff = Some(Duration::from_secs(600));
        delivery.max_backoff = Some(Duration::from_secs(600));
    }
    fed.write(&school, &toml);
    // Only the school runs: the referral waits in its outbox.
    let school_node = start_on_tokio_time(&school).await;
    let consent = consent_for(&school, "CASE-RETRACT", &[&core]).await;
    let id = submit(
        &mut agency(&school).await,
        consented_draft("county-core", &consent),
    )
    .await;
    failed_once(&school, &id, pb::MessageKind::Referral).await;
    agency(&school)
        .await
        .revoke_consent(pb::RevokeConsentRequest {
            consent_id: consent.clone(),
        })
        .await
        .unwrap();
    // The retraction's first attempt finds the county down too; then the county starts, and
    // the school's clock moves past the retry, ten minutes on. (Moved once, with nothing in
    // flight: a jump while a call is on its way would time the call out.)
    failed_once(&school, &id, pb::MessageKind::Retraction).await;
    let core_node = start(&core).await;
    skip_ahead(Duration::from_secs(601)).await;
    let progress = eventually(Duration::from_secs(15), "the acknowledgement", || {
        let school = school.clone();
        let consent = consent.clone();
        async move {
            let progress = agency(&school)
                .await
                .get_retraction(pb::GetRetractionRequest {
                    consent_id: consent,
                })
                .await
                .ok()?
                .into_inner();
            progress.complete.then_some(progress)
        }
    })
    .await;
    assert_eq!(progress.targets.len(), 1);
    assert!(!progress.targets[0].held, "the core team never held it");
    assert_eq!(inbox_len(&core).await, 0);
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
    let referral = outbox
        .iter()
        .find(|e| e.referral_id == id && e.kind == pb::MessageKind::Referral as i32)
        .unwrap();
    assert_eq!(referral.state, pb::DeliveryState::Cancelled as i32);
    core_node.shutdown().await;
    school_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_an_expired_referral_and_keeps_a_tombstone() {
    let (fed, core, school) = core_and_school();
    fed.write_config(
        &core,
        &[&school],
        "[retention]\nthreat-assessment = \"2s\"\nsweep_interval = \"200ms\"\n",
    );
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &id).await;
    let key = data_key(&core, &id).await.expect("a data key");
    let tombstone = eventually(Duration::from_secs(15), "the retention purge", || {
        let core = core.clone();
        let id = id.clone();
        async move {
            let stones = tombstones(&core).await;
            stones.into_iter().find(|t| t.referral_id == id)
        }
    })
    .await;
    assert_eq!(tombstone.cause, pb::PurgeCause::Retention as i32);
    assert_eq!(tombstone.sender, school.identity.uri());
    assert_eq!(data_key(&core, &id).await, None);
    shredded(&core, &[&key]).await;
    // The audit entries about it stay: they never held its content.
    let receipts = admin(&core)
        .await
        .query_audit(pb::QueryAuditRequest {
            kind: "receipt".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(receipts.iter().any(|e| e.referral_id == id));
    // The sender's own record is untouched: retention applies to what a node received.
    referral_when(&school, &id, "the sender's record", |_| true).await;
    core_node.shutdown().await;
    school_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_sender_can_retract_and_bad_retractions_are_refused() {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    let clinic = fed.team("riverside-mh", "affiliate", "mental-health");
    fed.write_config(&core, &[&school, &clinic], "");
    fed.write_config(&school, &[&core], "");
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &id).await;

    // Another peer of the core team asks it to purge the school's referral.
    let mut clinic_client =
        federation_client(&clinic.dir, &[&fed.ca_path], &clinic.identity, &core);
    let retraction = |author: &TeamSpec| pb::Retraction {
        id: uuid::Uuid::now_v7().to_string(),
        retraction_id: uuid::Uuid::now_v7().to_string(),
        referral_id: id.clone(),
        author: author.identity.uri(),
        cause: pb::RetractionCause::ConsentRevoked.into(),
        at: Some(prost_types::Timestamp::default()),
    };
    let receipt = clinic_client
        .retract(signed_retraction(&clinic, retraction(&clinic)))
        .await
        .unwrap()
        .into_inner();
    assert!(!receipt.duplicate);
    referral_when(&core, &id, "the referral to stay", |_| true).await;
    assert!(data_key(&core, &id).await.is_some(), "nothing was purged");

    // Claiming to be the sender does not help.
    let status = clinic_client
        .retract(signed_retraction(&clinic, retraction(&school)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // Malformed retractions and acknowledgements of nothing are refused, and name the field.
    let mut bad = retraction(&clinic);
    bad.cause = 99;
    let status = clinic_client
        .retract(signed_retraction(&clinic, bad))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("retraction.cause"), "{status:?}");
    let status = clinic_client
        .acknowledge_retraction(signed_ack(
            &clinic,
            pb::RetractionAck {
                id: uuid::Uuid::now_v7().to_string(),
                retraction_id: uuid::Uuid::now_v7().to_string(),
                purged: Some(pb::RetractionTarget {
                    team: clinic.identity.uri(),
                    referral_id: id.clone(),
                }),
                held: true,
                purged_at: Some(prost_types::Timestamp::default()),
                downstream: vec![],
                author: clinic.identity.uri(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    // The node keeps serving, and the referral is still there.
    referral_when(&core, &id, "the referral to stay", |_| true).await;
    core_node.shutdown().await;
    school_node.shutdown().await;
}

/// Waits until `team`'s outbox shows a failed attempt at the message of `kind` about
/// `referral_id`: the message is then waiting for its retry, not on its way.
async fn failed_once(team: &TeamSpec, referral_id: &str, kind: pb::MessageKind) {
    eventually(Duration::from_secs(10), "a first failed attempt", || {
        let team = team.clone();
        let referral_id = referral_id.to_owned();
        async move {
            agency(&team)
                .await
                .list_outbox(pb::ListOutboxRequest {
                    limit: 0,
                    dead_only: false,
                })
                .await
                .ok()?
                .into_inner()
                .entries
                .into_iter()
                .find(|e| e.referral_id == referral_id && e.kind == kind as i32 && e.attempts > 0)
        }
    })
    .await;
}
