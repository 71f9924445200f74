//! No personal data leaks anywhere along the whole closed loop: a referral with a distinct
//! canary in every content field goes through status changes, case messages (a question, a
//! supplement, new information), a consultation, a forward and a retraction, with every node logging at `trace`. No canary may appear in any log line, in any
//! error a caller gets back, in the metrics, or at a node the policy did not let see it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use prost::Message;
use tatmx_proto::v1 as pb;
use tatmx_tests::*;

/// A referral's content with its own canary in every field (`CANARY-{source}-{FIELD}`), and
/// the canaries.
fn marked_content(source: &str) -> (pb::ReferralContent, Vec<String>) {
    let mut all = Vec::new();
    let mut mark = |field: &str| {
        let canary = format!("CANARY-{source}-{field}");
        all.push(canary.clone());
        canary
    };
    let content = pb::ReferralContent {
        identity: Some(pb::SubjectIdentity {
            full_name: mark("NAME"),
            date_of_birth: "2010-01-02".into(),
            identifiers: vec![pb::ExternalId {
                system: mark("IDSYSTEM"),
                value: mark("IDVALUE"),
            }],
        }),
        contact: Some(pb::SubjectContact {
            address: mark("ADDRESS"),
            phone: mark("PHONE"),
            email: mark("EMAIL"),
        }),
        behavior: Some(pb::Behavior {
            observations: vec![pb::ObservedBehavior {
                code: mark("BEHAVIOR"),
                observed_on: "2026-11-20".into(),
            }],
        }),
        threat: Some(pb::ThreatDetails {
            threat_type: mark("THREAT"),
            target_type: mark("TARGET"),
            weapons_access: true,
            grievance_code: mark("GRIEVANCE"),
        }),
        narrative: Some(pb::Narrative {
            text: mark("NARRATIVE"),
        }),
        mental_health: Some(pb::MentalHealth {
            diagnoses: vec![mark("DIAGNOSIS")],
            treatment: mark("TREATMENT"),
        }),
        education_record: Some(pb::EducationRecord {
            school: mark("SCHOOL"),
            grade: "10".into(),
            iep_or_504: false,
            discipline: vec![mark("DISCIPLINE")],
        }),
        reporter: Some(pb::ReporterIdentity {
            name: mark("REPORTER"),
            relationship: "teacher".into(),
            contact: mark("REPORTERCONTACT"),
        }),
        third_parties: vec![pb::ThirdParty {
            name: mark("THIRDPARTY"),
            role: "target".into(),
        }],
        ..Default::default()
    };
    (content, all)
}

fn leaked<'a>(haystack: &[u8], canaries: &'a [String]) -> Vec<&'a str> {
    canaries
        .iter()
        .filter(|c| contains(haystack, c.as_bytes()))
        .map(String::as_str)
        .collect()
}

#[test]
fn no_canary_leaks_along_the_whole_loop() {
    Logs::run(no_canary_leaks_along_the_whole_loop_in);
}

async fn no_canary_leaks_along_the_whole_loop_in(logs: Logs) {
    let mut fed = TestFederation::new("county-mdt.example");
    let school = fed.team("lincoln-high", "affiliate", "education");
    let core = fed.team("county-core", "core", "law-enforcement");
    let state = fed.team("state-police-tat", "core", "law-enforcement");
    let partner = fed.team("fbi-bau", "partner", "federal-partner");
    let metrics_port = fed.port();
    fed.write_config(&school, &[&core], "");
    fed.write_config(
        &core,
        &[&school, &state, &partner],
        &format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"),
    );
    fed.write_config(&state, &[&core], "");
    fed.write_config(&partner, &[&core], "");
    let mut nodes = Vec::new();
    for team in [&school, &core, &state, &partner] {
        nodes.push(start(team).await);
    }
    // What the school knows, and what the county writes up itself for its consultation.
    let (content, canaries) = marked_content("LC");
    let (own_notes, own_canaries) = marked_content("CORE");
    let mut errors = String::new();

    // The guardian consents for both core teams; the school refers on that consent.
    let consent = agency(&school)
        .await
        .record_consent(pb::RecordConsentRequest {
            consent: Some(pb::Consent {
                subject: "CASE-LC".into(),
                grantor: pb::Grantor::Guardian.into(),
                grantor_name: "CANARY-LC-GUARDIAN".into(),
                provision: Some(pb::Provision {
                    r#type: pb::ProvisionType::Permit.into(),
                    recipient_teams: vec![core.identity.uri(), state.identity.uri()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let mut referral = draft("county-core");
    referral.legal_basis = pb::LegalBasis::Consent.into();
    referral.justification.clear();
    referral.consent_ref = consent.id.clone();
    referral.subject_ref = "CASE-LC".into();
    referral.case_ref = "CASE-LC".into();
    referral.content = Some(content.clone());
    let id = submit(&mut agency(&school).await, referral.clone()).await;
    delivered(&school, &id).await;

    // A bad draft full of canaries is refused without echoing any of them.
    let mut bad = referral.clone();
    if let Some(identity) = bad.content.as_mut().and_then(|c| c.identity.as_mut()) {
        identity.date_of_birth = "CANARY-LC-BADDATE".into();
    }
    let status = agency(&school)
        .await
        .submit_referral(pb::SubmitReferralRequest {
            referral: Some(bad),
            dry_run: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    errors.push_str(status.message());

    // The county works the case: accepts, asks for information with a free-text reason.
    for (status, reason) in [
        (
            pb::ReferralStatus::InfoRequested,
            "CANARY-LC-REASON please send more",
        ),
        (pb::ReferralStatus::Accepted, ""),
    ] {
        agency(&core)
            .await
            .update_referral_status(pb::UpdateReferralStatusRequest {
                referral_id: id.clone(),
                status: status.into(),
                reason: reason.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    // The case goes on: the county asks, the school adds to the case and reports news, each
    // with a canary; one report is too long and refused without an echo.
    agency(&core)
        .await
        .request_information(pb::RequestInformationRequest {
            referral_id: id.clone(),
            question: "CANARY-LC-QUESTION who else was there?".into(),
            wanted: vec![pb::DataCategory::Behavior.into()],
            dry_run: false,
        })
        .await
        .unwrap();
    agency(&school)
        .await
        .send_supplement(pb::SendSupplementRequest {
            referral_id: id.clone(),
            answers: String::new(),
            content: Some(pb::ReferralContent {
                narrative: Some(pb::Narrative {
                    text: "CANARY-LC-SUPPLEMENT two classmates".into(),
                }),
                ..Default::default()
            }),
            dry_run: false,
        })
        .await
        .unwrap();
    for text in [
        "CANARY-LC-NEWS a post with a rifle".to_owned(),
        "CANARY-LC-LONG ".repeat(300),
    ] {
        let sent = agency(&school)
            .await
            .send_new_information(pb::SendNewInformationRequest {
                referral_id: id.clone(),
                kind: pb::InformationKind::TripwireReport.into(),
                urgent: true,
                text,
                content: None,
                dry_run: false,
            })
            .await;
        if let Err(status) = sent {
            errors.push_str(status.message());
        }
    }
    referral_when(&core, &id, "the case messages at the county", |r| {
        r.case_messages.len() == 3
    })
    .await;

    // An invalid move, with a canary in its reason: refused, nothing echoed.
    let status = agency(&core)
        .await
        .update_referral_status(pb::UpdateReferralStatusRequest {
            referral_id: id.clone(),
            status: pb::ReferralStatus::Sent.into(),
            reason: "CANARY-LC-BADMOVE".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    errors.push_str(status.message());

    // A de-identified consultation with the federal partner, answered with advice.
    let mut case = referral.clone();
    case.legal_basis = pb::LegalBasis::DeIdentified.into();
    case.consent_ref.clear();
    case.content = Some(own_notes);
    let consultation = agency(&core)
        .await
        .request_consultation(pb::RequestConsultationRequest {
            referral: Some(case),
            partners: vec!["fbi-bau".into()],
            question: "Is this pattern escalating?".into(),
            due: None,
        })
        .await
        .unwrap()
        .into_inner();
    let copy = consultation.answers[0].referral_id.clone();
    delivered(&core, &copy).await;
    agency(&partner)
        .await
        .update_referral_status(pb::UpdateReferralStatusRequest {
            referral_id: copy.clone(),
            status: pb::ReferralStatus::Completed.into(),
            outcome: Some(pb::AssessmentOutcome {
                advice: "CANARY-LC-ADVICE evaluate and plan".into(),
                recommendations: vec!["MH-EVAL".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();

    // The county forwards to the state team, which the consent names.
    forward_delivered(&core, &id, "state-police-tat").await;

    // What the partner holds carries no identity, contact or reporter canary.
    let held = agency(&partner)
        .await
        .get_referral(pb::GetReferralRequest {
            referral_id: copy.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .encode_to_vec();
    for field in [
        "NAME",
        "IDVALUE",
        "ADDRESS",
        "PHONE",
        "EMAIL",
        "REPORTER",
        "THIRDPARTY",
    ] {
        let canary = format!("CANARY-CORE-{field}");
        assert!(
            !contains(&held, canary.as_bytes()),
            "{canary} reached the partner"
        );
    }

    // The guardian withdraws consent: both core teams' copies are retracted.
    agency(&school)
        .await
        .revoke_consent(pb::RevokeConsentRequest {
            consent_id: consent.id.clone(),
        })
        .await
        .unwrap();
    eventually(std::time::Duration::from_secs(15), "the retraction", || {
        let school = school.clone();
        let consent = consent.id.clone();
        async move {
            let progress = agency(&school)
                .await
                .get_retraction(pb::GetRetractionRequest {
                    consent_id: consent,
                })
                .await
                .ok()?
                .into_inner();
            (progress.complete && progress.targets.len() == 2).then_some(())
        }
    })
    .await;

    // The metrics: counts by method, code and cause, no content.
    let metrics = scrape_metrics(metrics_port).await;
    assert!(metrics.contains("tatmx_purged_total"), "{metrics}");
    assert!(
        leaked(metrics.as_bytes(), &canaries).is_empty(),
        "{metrics}"
    );

    for node in nodes {
        node.shutdown().await;
    }
    assert!(
        !errors.contains("CANARY"),
        "an error echoed case data: {errors}"
    );
    // After the retraction, neither core team's store holds anything the school shared. (The
    // county keeps its own consultation record, which is its own case data.)
    let case_canaries: Vec<String> = ["QUESTION", "SUPPLEMENT", "NEWS", "LONG"]
        .iter()
        .map(|c| format!("CANARY-LC-{c}"))
        .collect();
    let bytes = database_bytes(&core);
    assert!(
        leaked(&bytes, &case_canaries).is_empty(),
        "the county still holds {:?}",
        leaked(&bytes, &case_canaries)
    );
    for team in [&core, &state] {
        let bytes = database_bytes(team);
        assert!(
            leaked(&bytes, &canaries).is_empty(),
            "{} still holds {:?}",
            team.identity,
            leaked(&bytes, &canaries)
        );
    }
    // This test's nodes logged, and neither they nor anything else in the process logged a
    // canary meanwhile.
    let own = logs.own_text().len();
    assert!(own > 10_000, "the nodes logged {own} bytes");
    let logs = logs.text();
    let in_logs = leaked(&logs, &canaries);
    assert!(in_logs.is_empty(), "in the logs: {in_logs:?}");
    let in_logs = leaked(&logs, &own_canaries);
    assert!(in_logs.is_empty(), "in the logs: {in_logs:?}");
    for extra in [
        "CANARY-LC-GUARDIAN",
        "CANARY-LC-REASON",
        "CANARY-LC-ADVICE",
        "CANARY-LC-BADDATE",
        "CANARY-LC-BADMOVE",
        "CANARY-LC-QUESTION",
        "CANARY-LC-SUPPLEMENT",
        "CANARY-LC-NEWS",
        "CANARY-LC-LONG",
    ] {
        assert!(!contains(&logs, extra.as_bytes()), "{extra} in the logs");
    }
}
