//! A core team consults three partner teams at once: de-identified copies fan out, two
//! partners answer with advice, one declines, and the core team sees every answer.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::time::Duration;

use tatmx_proto::v1 as pb;
use tatmx_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consultation_fans_out_is_answered_and_declined() {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let partners: Vec<TeamSpec> = ["fbi-bau", "state-bta", "university-ttap"]
        .iter()
        .map(|t| fed.team(t, "partner", "federal-partner"))
        .collect();
    let partner_refs: Vec<&TeamSpec> = partners.iter().collect();
    fed.write_config(&core, &partner_refs, "");
    for partner in &partners {
        fed.write_config(partner, &[&core], "");
    }
    let mut nodes = vec![start(&core).await];
    for partner in &partners {
        nodes.push(start(partner).await);
    }

    let mut case = draft("ignored");
    case.legal_basis = pb::LegalBasis::DeIdentified.into();
    case.justification.clear();
    case.case_ref = "CASE-2026-0099".into();
    let consultation = agency(&core)
        .await
        .request_consultation(pb::RequestConsultationRequest {
            partners: partners
                .iter()
                .map(|p| p.identity.team.to_string())
                .collect(),
            question: "Does the pattern of leakage suggest escalation?".into(),
            due: None,
            referral: Some(case),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(consultation.answers.len(), 3);
    assert_eq!(consultation.awaiting.len(), 3, "nobody has answered yet");

    // Each partner holds a de-identified copy, with the question and the case handle.
    let mut handles = Vec::new();
    for (partner, answer) in partners.iter().zip(&consultation.answers) {
        let record =
            referral_when(partner, &answer.referral_id, "a partner's copy", |_| true).await;
        let referral = record.referral.unwrap();
        let content = referral.content.unwrap();
        assert!(
            content.identity.is_none() && content.narrative.is_none(),
            "{}",
            partner.identity
        );
        assert!(!format!("{content:?}").contains("CANARY"));
        assert_eq!(
            referral.consultation.unwrap().question,
            "Does the pattern of leakage suggest escalation?"
        );
        handles.push(referral.case_handle);
    }
    assert!(
        handles
            .iter()
            .all(|h| h.starts_with("case-") && *h == handles[0]),
        "{handles:?}"
    );

    // Two answer, one declines.
    for (partner, answer) in partners.iter().zip(&consultation.answers).take(2) {
        agency(partner)
            .await
            .update_referral_status(pb::UpdateReferralStatusRequest {
                referral_id: answer.referral_id.clone(),
                status: pb::ReferralStatus::Completed.into(),
                reason: String::new(),
                reason_code: pb::ReasonCode::Unspecified.into(),
                outcome: Some(pb::AssessmentOutcome {
                    advice: format!("Advice from {}", partner.identity.team),
                    recommendations: vec!["MH-EVAL".into()],
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
    }
    agency(&partners[2])
        .await
        .update_referral_status(pb::UpdateReferralStatusRequest {
            referral_id: consultation.answers[2].referral_id.clone(),
            status: pb::ReferralStatus::Declined.into(),
            reason: "Outside our remit.".into(),
            reason_code: pb::ReasonCode::NotAThreatAssessmentMatter.into(),
            outcome: None,
        })
        .await
        .unwrap();
    // A partner cannot answer a request it does not hold.
    let status = agency(&partners[0])
        .await
        .update_referral_status(pb::UpdateReferralStatusRequest {
            referral_id: consultation.answers[1].referral_id.clone(),
            status: pb::ReferralStatus::Completed.into(),
            reason: String::new(),
            reason_code: pb::ReasonCode::Unspecified.into(),
            outcome: Some(pb::AssessmentOutcome::default()),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    let core_spec = core.clone();
    let id = consultation.consultation_id.clone();
    let done = eventually(
        Duration::from_secs(10),
        "every answer at the core team",
        || {
            let core = core_spec.clone();
            let id = id.clone();
            async move {
                let c = agency(&core)
                    .await
                    .get_consultation(pb::GetConsultationRequest {
                        consultation_id: id,
                    })
                    .await
                    .ok()?
                    .into_inner();
                c.awaiting.is_empty().then_some(c)
            }
        },
    )
    .await;
    let answered: Vec<&pb::ConsultationAnswer> = done
        .answers
        .iter()
        .filter(|a| a.status == pb::ReferralStatus::Completed as i32)
        .collect();
    assert_eq!(answered.len(), 2);
    assert!(
        answered
            .iter()
            .all(|a| a.answer.as_ref().unwrap().recommendations == vec!["MH-EVAL".to_owned()])
    );
    assert!(
        answered
            .iter()
            .any(|a| a.answer.as_ref().unwrap().advice == "Advice from fbi-bau")
    );
    let declined = done
        .answers
        .iter()
        .find(|a| a.status == pb::ReferralStatus::Declined as i32)
        .unwrap();
    assert_eq!(declined.partner, partners[2].identity.uri());
    // The partner's code always arrives, with its words where the policy lets them go.
    assert!(
        declined
            .decline_reason
            .starts_with("not a threat assessment matter"),
        "{declined:?}"
    );
    let listed = agency(&core)
        .await
        .list_consultations(pb::ListConsultationsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.consultations.len(), 1);

    for node in nodes {
        node.shutdown().await;
    }
}

/// A consultation is all or nothing: when the policy would send nothing to one partner, the
/// whole request is refused, naming that partner, and no partner's copy is queued, not even
/// for the partners named before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consultation_refused_for_one_partner_sends_nothing_to_any() {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let state = fed.team("state-bta", "partner", "law-enforcement");
    let bau = fed.team("fbi-bau", "partner", "federal-partner");
    // The county's own counsel: nothing goes to federal partners.
    let local = core.dir.join("local.cedar");
    std::fs::write(
        &local,
        r#"@id("local-nothing-to-federal-partners")
@reason("this county's agreement with the state does not cover federal agencies")
forbid (principal, action == Action::"disclose", resource)
when { context.recipient.discipline == "federal-partner" };
"#,
    )
    .unwrap();
    let policy = format!("[policy]\nfiles = [\"{}\"]\n", local.display());
    fed.write_config(&core, &[&state, &bau], &policy);
    let node = start(&core).await;

    // No direct identifiers, so no case handle stands in for them: a copy the policy empties
    // would carry nothing at all.
    let mut case = draft("ignored");
    case.legal_basis = pb::LegalBasis::DeIdentified.into();
    case.justification.clear();
    if let Some(content) = case.content.as_mut() {
        content.identity = None;
        content.narrative = None;
    }
    let refused = agency(&core)
        .await
        .request_consultation(pb::RequestConsultationRequest {
            partners: vec![
                state.identity.team.to_string(),
                bau.identity.team.to_string(),
            ],
            question: "Does the pattern of leakage suggest escalation?".into(),
            due: None,
            referral: Some(case),
        })
        .await
        .expect_err("nothing may reach the federal partner");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().contains(&bau.identity.team.to_string())
            && refused.message().contains("nothing was sent to any team"),
        "{}",
        refused.message()
    );
    assert!(
        !refused.message().contains("CANARY"),
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
        outbox.entries.is_empty(),
        "a refused consultation queued {:?}",
        outbox.entries
    );
    let consultations = agency(&core)
        .await
        .list_consultations(pb::ListConsultationsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(consultations.consultations.is_empty());
    node.shutdown().await;
}

#[tokio::test]
async fn a_consultation_whose_question_the_policy_withholds_is_not_sent() {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let bau = fed.team("fbi-bau", "partner", "federal-partner");
    // The county's counsel keeps assessments (and so the question) from federal partners.
    let local = core.dir.join("local.cedar");
    std::fs::write(
        &local,
        r#"@id("local-no-assessment-to-federal-partners")
@reason("this county's assessments stay with its own teams")
forbid (principal, action == Action::"disclose", resource == Category::"ASSESSMENT")
when { context.recipient.discipline == "federal-partner" };
"#,
    )
    .unwrap();
    let policy = format!("[policy]\nfiles = [\"{}\"]\n", local.display());
    fed.write_config(&core, &[&bau], &policy);
    let node = start(&core).await;

    let mut case = draft("ignored");
    case.legal_basis = pb::LegalBasis::DeIdentified.into();
    case.justification.clear();
    let refused = agency(&core)
        .await
        .request_consultation(pb::RequestConsultationRequest {
            partners: vec![bau.identity.team.to_string()],
            question: "CANARY-QUESTION-17 does the leakage suggest escalation?".into(),
            due: None,
            referral: Some(case),
        })
        .await
        .expect_err("a partner cannot answer a question it is not given");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("withholds the question")
            && refused.message().contains("fbi-bau")
            && !refused.message().contains("CANARY"),
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
    assert!(outbox.entries.is_empty(), "{:?}", outbox.entries);
    node.shutdown().await;
}
