//! Forwarding: filtered again against the consent scope, NO_REDISCLOSURE kept back, the
//! provenance chain carried, and the original sender told.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use tatmx_proto::v1 as pb;
use tatmx_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_is_refiltered_keeps_back_no_redisclosure_and_tells_the_sender() {
    let mut fed = TestFederation::new("county-mdt.example");
    let su = fed.team("harbor-recovery", "affiliate", "substance-use");
    let core = fed.team("county-core", "core", "law-enforcement");
    let core2 = fed.team("state-police-tat", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    fed.write_config(&su, &[&core], "");
    fed.write_config(&core, &[&su, &core2, &school], "");
    fed.write_config(&core2, &[&core], "");
    fed.write_config(&school, &[&core], "");
    let mut nodes = Vec::new();
    for team in [&su, &core, &core2, &school] {
        nodes.push(start(team).await);
    }

    // The subject consents to both core teams, by name.
    let consent = consent_for(&su, "CASE-7", &[&core, &core2]).await;
    let mut first = draft("county-core");
    first.legal_basis = pb::LegalBasis::Consent.into();
    first.justification.clear();
    first.consent_ref = consent;
    first.subject_ref = "CASE-7".into();
    if let Some(content) = first.content.as_mut() {
        content.substance_use = Some(pb::SubstanceUse {
            treatment_record: "CANARY-PART2".into(),
        });
    }
    let id = submit(&mut agency(&su).await, first).await;
    delivered(&su, &id).await;

    // The core team forwards to the state team.
    let forward = agency(&core)
        .await
        .forward_referral(pb::ForwardReferralRequest {
            referral_id: id.clone(),
            recipient: "state-police-tat".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let kept = forward
        .decisions
        .iter()
        .find(|d| d.category == pb::DataCategory::SubstanceUse as i32)
        .unwrap();
    assert_eq!(kept.outcome, pb::DisclosureOutcome::Withhold as i32);
    assert_eq!(kept.rules, vec!["no-redisclosure".to_owned()]);
    let identity = forward
        .decisions
        .iter()
        .find(|d| d.category == pb::DataCategory::Identity as i32)
        .unwrap();
    assert_eq!(
        identity.outcome,
        pb::DisclosureOutcome::Disclose as i32,
        "the consent scope names the state team"
    );
    delivered(&core, &forward.referral_id).await;
    let held = agency(&core2)
        .await
        .get_referral(pb::GetReferralRequest {
            referral_id: forward.referral_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let referral = held.referral.unwrap();
    assert!(referral.content.as_ref().unwrap().substance_use.is_none());
    assert!(!format!("{referral:?}").contains("CANARY-PART2"));
    assert_eq!(referral.provenance.len(), 1);
    assert_eq!(referral.provenance[0].team, su.identity.uri());
    assert_eq!(referral.sender, core.identity.uri());

    // The original sender learns where its referral went.
    let to = core2.identity.uri();
    referral_when(&su, &id, "the forward notice at the sender", |record| {
        record
            .timeline
            .iter()
            .any(|e| e.status == pb::ReferralStatus::Forwarded as i32 && e.forwarded_to == to)
    })
    .await;

    // A team the consent does not cover gets what the law alone allows: not the identity.
    let to_school = agency(&core)
        .await
        .forward_referral(pb::ForwardReferralRequest {
            referral_id: id.clone(),
            recipient: "lincoln-high".into(),
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let identity = to_school
        .decisions
        .iter()
        .find(|d| d.category == pb::DataCategory::Identity as i32)
        .unwrap();
    assert_eq!(identity.outcome, pb::DisclosureOutcome::Withhold as i32);

    // Only a received referral can be forwarded.
    let status = agency(&su)
        .await
        .forward_referral(pb::ForwardReferralRequest {
            referral_id: id.clone(),
            recipient: "county-core".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");

    for node in nodes {
        node.shutdown().await;
    }
}

/// A forward and the notice that tells the original sender are one write: when the notice may
/// not be made (the county declined the referral, and a declined referral is not passed on),
/// the forward is refused too, and nothing is queued for the team it would have gone to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_whose_notice_is_refused_sends_nothing() {
    let mut fed = TestFederation::new("county-mdt.example");
    let school = fed.team("lincoln-high", "affiliate", "education");
    let core = fed.team("county-core", "core", "law-enforcement");
    let state = fed.team("state-police-tat", "core", "law-enforcement");
    fed.write_config(&school, &[&core], "");
    fed.write_config(&core, &[&school, &state], "");
    let mut nodes = Vec::new();
    for team in [&school, &core] {
        nodes.push(start(team).await);
    }
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &id).await;
    agency(&core)
        .await
        .update_referral_status(pb::UpdateReferralStatusRequest {
            referral_id: id.clone(),
            status: pb::ReferralStatus::Declined.into(),
            reason: "Not a threat assessment matter.".into(),
            reason_code: pb::ReasonCode::NotAThreatAssessmentMatter.into(),
            outcome: None,
        })
        .await
        .unwrap();

    let refused = agency(&core)
        .await
        .forward_referral(pb::ForwardReferralRequest {
            referral_id: id.clone(),
            recipient: "state-police-tat".into(),
            ..Default::default()
        })
        .await
        .expect_err("a declined referral is not forwarded");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("declined"),
        "{}",
        refused.message()
    );
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
            .all(|e| e.peer != state.identity.uri()),
        "the refused forward was queued for the state team: {:?}",
        outbox.entries
    );
    for node in nodes {
        node.shutdown().await;
    }
}
