//! A case in motion between real nodes: the county asks and the school answers, new
//! information arrives after the assessment with urgent items first, the county manages and
//! reassesses and the school sees it, every bad input is refused precisely with nothing stored
//! or queued, and what a node received is shredded with its referral.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::time::Duration;

use pb::case_message::Body;
use tatmx_proto::v1 as pb;
use tatmx_tests::*;

/// The county's own counsel: case questions and notes may go back to the referring school.
/// Without it the default policy withholds free text from an affiliate.
const CASE_NOTES_TO_SCHOOLS: &str = r#"@id("local-case-notes-to-referring-schools")
@reason("this county's agreement with its school district: case questions and notes may go back to the referring school")
permit (principal, action == Action::"disclose", resource == Category::"NARRATIVE")
when { context.recipient.role == "affiliate" && context.recipient.discipline == "education" };
"#;

/// A county core team with [`CASE_NOTES_TO_SCHOOLS`], and a school.
fn county_with_case_notes() -> (TestFederation, TeamSpec, TeamSpec) {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    let local = core.dir.join("local.cedar");
    std::fs::write(&local, CASE_NOTES_TO_SCHOOLS).unwrap();
    let policy = format!("[policy]\nfiles = [\"{}\"]\n", local.display());
    fed.write_config(&core, &[&school], &policy);
    fed.write_config(&school, &[&core], "");
    (fed, core, school)
}

type Sent = Result<pb::CaseMessageResponse, tonic::Status>;

async fn ask(
    team: &TeamSpec,
    id: &str,
    question: &str,
    wanted: &[pb::DataCategory],
    dry_run: bool,
) -> Sent {
    agency(team)
        .await
        .request_information(pb::RequestInformationRequest {
            referral_id: id.to_owned(),
            question: question.to_owned(),
            wanted: wanted.iter().map(|c| *c as i32).collect(),
            dry_run,
        })
        .await
        .map(|r| r.into_inner())
}

async fn answer(
    team: &TeamSpec,
    id: &str,
    answers: &str,
    content: pb::ReferralContent,
    dry_run: bool,
) -> Sent {
    agency(team)
        .await
        .send_supplement(pb::SendSupplementRequest {
            referral_id: id.to_owned(),
            answers: answers.to_owned(),
            content: Some(content),
            dry_run,
        })
        .await
        .map(|r| r.into_inner())
}

async fn inform(
    team: &TeamSpec,
    id: &str,
    kind: pb::InformationKind,
    urgent: bool,
    text: &str,
) -> Sent {
    agency(team)
        .await
        .send_new_information(pb::SendNewInformationRequest {
            referral_id: id.to_owned(),
            kind: kind.into(),
            urgent,
            text: text.to_owned(),
            content: None,
            dry_run: false,
        })
        .await
        .map(|r| r.into_inner())
}

fn plan_of(interventions: &[(&str, &str)], next: &str) -> pb::ManagementPlan {
    pb::ManagementPlan {
        interventions: interventions
            .iter()
            .map(|(code, team)| pb::Intervention {
                code: (*code).to_owned(),
                responsible_team: (*team).to_owned(),
            })
            .collect(),
        next_reassessment: next.to_owned(),
    }
}

async fn plan(team: &TeamSpec, id: &str, interventions: &[(&str, &str)], next: &str) -> Sent {
    agency(team)
        .await
        .record_management_plan(pb::RecordManagementPlanRequest {
            referral_id: id.to_owned(),
            plan: Some(plan_of(interventions, next)),
            dry_run: false,
        })
        .await
        .map(|r| r.into_inner())
}

async fn reassess(
    team: &TeamSpec,
    id: &str,
    level: &str,
    interventions: &[(&str, &str)],
    next: &str,
) -> Sent {
    agency(team)
        .await
        .record_reassessment(pb::RecordReassessmentRequest {
            referral_id: id.to_owned(),
            level_of_concern: Some(pb::LevelOfConcern {
                scheme: "CSTAG".into(),
                value: level.to_owned(),
            }),
            plan: Some(plan_of(interventions, next)),
            dry_run: false,
        })
        .await
        .map(|r| r.into_inner())
}

async fn set(team: &TeamSpec, id: &str, status: pb::ReferralStatus) {
    let outcome = (status == pb::ReferralStatus::Completed).then(|| pb::AssessmentOutcome {
        level_of_concern: Some(pb::LevelOfConcern {
            scheme: "CSTAG".into(),
            value: "serious substantive".into(),
        }),
        management_plan: true,
        ..Default::default()
    });
    agency(team)
        .await
        .update_referral_status(pb::UpdateReferralStatusRequest {
            referral_id: id.to_owned(),
            status: status.into(),
            outcome,
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn inbox(team: &TeamSpec) -> pb::ListInboxResponse {
    agency(team)
        .await
        .list_inbox(pb::ListInboxRequest { limit: 0 })
        .await
        .unwrap()
        .into_inner()
}

async fn due(team: &TeamSpec) -> pb::ListDueReassessmentsResponse {
    agency(team)
        .await
        .list_due_reassessments(pb::ListDueReassessmentsRequest { within_days: 0 })
        .await
        .unwrap()
        .into_inner()
}

/// Every outbox entry of `team`, any kind.
async fn outbox(team: &TeamSpec) -> Vec<pb::OutboxEntry> {
    agency(team)
        .await
        .list_outbox(pb::ListOutboxRequest {
            limit: 0,
            dead_only: false,
        })
        .await
        .unwrap()
        .into_inner()
        .entries
}

/// A date `days` from today (UTC, the nodes' clock), as a plan is written.
fn date_in(days: i64) -> String {
    let date = time::OffsetDateTime::now_utc().date() + time::Duration::days(days);
    let format = time::macros::format_description!("[year]-[month]-[day]");
    date.format(&format).unwrap()
}

/// The case message `message_id` once `team` holds it.
async fn arrived(team: &TeamSpec, id: &str, message_id: &str) -> pb::CaseMessageRecord {
    let record = referral_when(team, id, "the case message", |r| {
        r.case_messages
            .iter()
            .any(|m| m.message.as_ref().is_some_and(|m| m.id == message_id))
    })
    .await;
    record
        .case_messages
        .into_iter()
        .find(|m| m.message.as_ref().is_some_and(|m| m.id == message_id))
        .unwrap()
}

fn decision(response: &pb::CaseMessageResponse, category: pb::DataCategory) -> &pb::FieldDecision {
    response
        .decisions
        .iter()
        .find(|d| d.category == category as i32)
        .unwrap_or_else(|| panic!("no decision for {category:?}: {response:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_county_asks_and_the_school_answers_into_one_filtered_case() {
    use pb::DataCategory as C;
    let (_fed, core, school) = county_with_case_notes();
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let mut referral = draft("county-core");
    referral.case_ref = "CASE-QA".into();
    let id = submit(&mut agency(&school).await, referral).await;
    delivered(&school, &id).await;

    // The chair previews the question: it would go, by the county's own rule, and nothing is
    // queued.
    let queued = outbox(&core).await.len();
    let question = "What happened at lunch on Friday, and who saw it?";
    let preview = ask(
        &core,
        &id,
        question,
        &[C::Behavior, C::EducationRecord],
        true,
    )
    .await
    .unwrap();
    assert!(preview.dry_run);
    let narrative = decision(&preview, C::Narrative);
    assert_eq!(narrative.outcome, pb::DisclosureOutcome::Disclose as i32);
    assert_eq!(narrative.rules, ["local-case-notes-to-referring-schools"]);
    assert_eq!(
        outbox(&core).await.len(),
        queued,
        "a preview queued something"
    );

    let asked = ask(
        &core,
        &id,
        question,
        &[C::Behavior, C::EducationRecord],
        false,
    )
    .await
    .unwrap();
    assert_eq!(asked.recipient, school.identity.uri());

    // The school's inbox lists it, unread, without its text.
    let listed = eventually(Duration::from_secs(10), "the question in the inbox", || {
        let school = school.clone();
        let asked = asked.message_id.clone();
        async move {
            inbox(&school)
                .await
                .messages
                .into_iter()
                .find(|m| m.message_id == asked)
        }
    })
    .await;
    assert_eq!(listed.kind, pb::CaseMessageKind::InformationRequest as i32);
    assert_eq!(listed.referral_id, id);
    assert!(!listed.seen);
    assert_eq!(listed.categories, [C::Narrative as i32]);
    // The case shows the question and what is wanted.
    let held = arrived(&school, &id, &asked.message_id).await;
    assert_eq!(held.direction, pb::Direction::Inbound as i32);
    let Some(Body::InformationRequest(request)) = held.message.and_then(|m| m.body) else {
        panic!("not a question")
    };
    assert_eq!(request.question, question);
    assert_eq!(
        request.wanted,
        [C::Behavior as i32, C::EducationRecord as i32]
    );
    // Reading the case marked it seen.
    assert!(
        inbox(&school)
            .await
            .messages
            .iter()
            .all(|m| m.seen && m.referral_id == id)
    );

    // The school previews its answer: education records do not reach the county on a
    // serious-threat basis (FERPA needs a health-or-safety emergency), the rest does.
    let content = pb::ReferralContent {
        behavior: Some(pb::Behavior {
            observations: vec![pb::ObservedBehavior {
                code: "MOB-LEAKAGE".into(),
                observed_on: "2026-11-20".into(),
            }],
        }),
        education_record: Some(pb::EducationRecord {
            school: "CANARY-QA-EDUCATION".into(),
            ..Default::default()
        }),
        narrative: Some(pb::Narrative {
            text: "CANARY-QA-ANSWER two classmates overheard it".into(),
        }),
        ..Default::default()
    };
    let queued = outbox(&school).await.len();
    let preview = answer(&school, &id, &asked.message_id, content.clone(), true)
        .await
        .unwrap();
    let education = decision(&preview, C::EducationRecord);
    assert_eq!(education.outcome, pb::DisclosureOutcome::Withhold as i32);
    assert!(!education.reasons.is_empty(), "{education:?}");
    let outgoing = preview.outgoing.as_ref().unwrap();
    assert!(
        outgoing
            .withheld
            .iter()
            .any(|w| w.category == C::EducationRecord as i32)
    );
    assert!(!format!("{outgoing:?}").contains("CANARY-QA-EDUCATION"));
    assert_eq!(
        outbox(&school).await.len(),
        queued,
        "a preview queued something"
    );

    let answered = answer(&school, &id, &asked.message_id, content, false)
        .await
        .unwrap();

    // At the county: the supplement in the case's timeline, with the manifest of what was
    // withheld, and the content merged, each section saying where it came from.
    let held = arrived(&core, &id, &answered.message_id).await;
    let supplement = held.message.unwrap();
    let Some(Body::Supplement(body)) = &supplement.body else {
        panic!("not a supplement")
    };
    assert_eq!(body.answers, asked.message_id);
    assert!(body.content.as_ref().unwrap().education_record.is_none());
    assert_eq!(
        supplement
            .withheld
            .iter()
            .map(|w| w.category)
            .collect::<Vec<_>>(),
        [C::EducationRecord as i32]
    );
    let record = referral_when(&core, &id, "the case", |_| true).await;
    let kinds: Vec<bool> = record
        .case_messages
        .iter()
        .map(|m| m.direction == pb::Direction::Outbound as i32)
        .collect();
    assert_eq!(kinds, [true, false], "the question, then the answer");
    let merged = record.merged_content.unwrap();
    assert!(merged.behavior.is_some() && merged.threat.is_some());
    assert!(
        merged
            .narrative
            .unwrap()
            .text
            .starts_with("CANARY-QA-ANSWER")
    );
    let source = |category: C| {
        record
            .content_parts
            .iter()
            .find(|p| p.category == category as i32)
            .map(|p| p.message_id.clone())
    };
    assert_eq!(source(C::Behavior), Some(answered.message_id.clone()));
    assert_eq!(source(C::Narrative), Some(answered.message_id.clone()));
    assert_eq!(source(C::Threat), Some(String::new()), "the referral's own");
    // Sealed at rest: the answer's text is not in the county's database file.
    assert!(!contains(&database_bytes(&core), b"CANARY-QA-ANSWER"));

    // The accounting of disclosures lists the supplement, with its categories and rules.
    let accounting = admin(&school)
        .await
        .account_disclosures(pb::AccountDisclosuresRequest {
            subject: "CASE-QA".into(),
            since: None,
        })
        .await
        .unwrap()
        .into_inner()
        .disclosures;
    let supplement = accounting
        .iter()
        .find(|d| d.kind == "supplement")
        .unwrap_or_else(|| panic!("no supplement in {accounting:?}"));
    assert_eq!(supplement.referral_id, id);
    assert!(supplement.categories.contains(&(C::Behavior as i32)));
    assert!(supplement.withheld.contains(&(C::EducationRecord as i32)));
    assert!(!supplement.rules.is_empty());
    assert!(
        audit_entries(&core, "disclosure")
            .await
            .iter()
            .any(|e| e.detail_json.contains("\"information-request\""))
    );

    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_case_is_managed_urgent_news_comes_first_and_a_reassessment_reaches_the_school()
{
    use pb::ReferralStatus as S;
    let (_fed, core, school) = core_and_school();
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let older = submit(&mut agency(&school).await, draft("county-core")).await;
    let newer = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &newer).await;

    // Under the default policy a question's text does not reach a school; what is wanted
    // does, and the manifest says why the text did not.
    let preview = ask(
        &core,
        &newer,
        "Who else was there?",
        &[pb::DataCategory::ThirdParty],
        true,
    )
    .await
    .unwrap();
    let text = decision(&preview, pb::DataCategory::Narrative);
    assert_eq!(text.outcome, pb::DisclosureOutcome::Withhold as i32);
    let asked = ask(
        &core,
        &newer,
        "Who else was there?",
        &[pb::DataCategory::ThirdParty],
        false,
    )
    .await
    .unwrap();
    let held = arrived(&school, &newer, &asked.message_id)
        .await
        .message
        .unwrap();
    let Some(Body::InformationRequest(request)) = &held.body else {
        panic!("not a question")
    };
    assert!(request.question.is_empty());
    assert_eq!(request.wanted, [pb::DataCategory::ThirdParty as i32]);
    assert_eq!(
        held.withheld[0].category,
        pb::DataCategory::Narrative as i32
    );

    // The county assesses the older case and completes it; the plan puts it under management
    // at both nodes.
    for status in [S::Accepted, S::InAssessment, S::Completed] {
        set(&core, &older, status).await;
    }
    let planned = plan(
        &core,
        &older,
        &[
            ("check-ins", "lincoln-high"),
            ("mental-health-referral", "county-core"),
        ],
        &date_in(30),
    )
    .await
    .unwrap();
    let record = referral_when(&school, &older, "the plan", |r| {
        r.status == S::UnderManagement as i32 && !r.case_messages.is_empty()
    })
    .await;
    let Some(Body::ManagementPlan(received)) = record.case_messages[0]
        .message
        .as_ref()
        .and_then(|m| m.body.clone())
    else {
        panic!("not a plan")
    };
    let received = received.plan.unwrap();
    assert_eq!(received.interventions[0].code, "check-ins");
    assert_eq!(
        received.interventions[0].responsible_team,
        school.identity.uri()
    );
    assert_eq!(received.next_reassessment, date_in(30));
    assert!(
        record
            .timeline
            .iter()
            .any(|e| e.status == S::UnderManagement as i32)
    );
    assert_eq!(
        referral_when(&core, &older, "the county's status", |_| true)
            .await
            .status,
        S::UnderManagement as i32
    );

    // New information after the assessment: a protective factor on the newer case, then an
    // urgent tripwire report on the older one. The urgent one comes first.
    inform(
        &school,
        &newer,
        pb::InformationKind::ProtectiveFactor,
        false,
        "Joined the robotics club and sees a counsellor weekly.",
    )
    .await
    .unwrap();
    let urgent = inform(
        &school,
        &older,
        pb::InformationKind::TripwireReport,
        true,
        "A classmate reports a post showing a rifle, captioned 'soon'.",
    )
    .await
    .unwrap();
    let listed = eventually(Duration::from_secs(10), "both reports", || {
        let core = core.clone();
        async move {
            let listed = inbox(&core).await;
            (listed.messages.len() == 2).then_some(listed)
        }
    })
    .await;
    assert_eq!(listed.messages[0].message_id, urgent.message_id);
    assert!(listed.messages[0].urgent);
    assert_eq!(
        listed.messages[0].information_kind,
        pb::InformationKind::TripwireReport as i32
    );
    assert_eq!(listed.items[0].referral_id, older, "the urgent case first");
    assert!(listed.items[0].urgent);
    assert_eq!(listed.items[0].unseen_messages, 1);
    // Once the chair has read it, the newest case is first again.
    let report = arrived(&core, &older, &urgent.message_id).await;
    let Some(Body::NewInformation(news)) = report.message.and_then(|m| m.body) else {
        panic!("not new information")
    };
    assert!(news.urgent && news.text.contains("rifle"));
    let listed = inbox(&core).await;
    assert_eq!(listed.items[0].referral_id, newer);
    assert!(!listed.items.iter().any(|i| i.urgent));

    // The county reassesses: the level of concern goes down, and the school sees it.
    let reassessed = reassess(
        &core,
        &older,
        "transient",
        &[("check-ins", "lincoln-high")],
        &date_in(7),
    )
    .await
    .unwrap();
    let held = arrived(&school, &older, &reassessed.message_id).await;
    let Some(Body::Reassessment(reassessment)) = held.message.and_then(|m| m.body) else {
        panic!("not a reassessment")
    };
    assert_eq!(reassessment.level_of_concern.unwrap().value, "transient");
    // Both teams see the next reassessment coming due, by the latest plan.
    for team in [&core, &school] {
        let listed = due(team).await;
        assert!(listed.overdue.is_empty(), "{listed:?}");
        assert_eq!(listed.coming_due.len(), 1, "{listed:?}");
        assert_eq!(listed.coming_due[0].referral_id, older);
        assert_eq!(listed.coming_due[0].days, 7);
        assert_eq!(listed.coming_due[0].message_id, reassessed.message_id);
    }
    assert_ne!(planned.message_id, reassessed.message_id);

    // A closed case takes nothing more, and the refusal names its state.
    set(&core, &older, S::Closed).await;
    referral_when(&school, &older, "the closing", |r| {
        r.status == S::Closed as i32
    })
    .await;
    let refused = inform(
        &school,
        &older,
        pb::InformationKind::TripwireReport,
        true,
        "Another post.",
    )
    .await
    .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(refused.message().contains("closed"), "{refused:?}");
    assert!(
        due(&core).await.coming_due.is_empty(),
        "a closed case is not due"
    );

    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_case_messages_are_refused_precisely_and_nothing_is_stored_or_queued() {
    use pb::ReferralStatus as S;
    let (fed, core, school) = core_and_school();
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &id).await;
    let mut messages = String::new();
    let mut refused = |result: Sent, code: tonic::Code, says: &str| {
        let status = result.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(says), "{says}: {status:?}");
        messages.push_str(status.message());
    };

    let behavior = pb::ReferralContent {
        behavior: Some(pb::Behavior {
            observations: vec![pb::ObservedBehavior {
                code: "MOB-LEAKAGE".into(),
                observed_on: String::new(),
            }],
        }),
        ..Default::default()
    };
    // A referral this team does not share.
    let elsewhere = uuid::Uuid::now_v7().to_string();
    refused(
        inform(
            &school,
            &elsewhere,
            pb::InformationKind::TripwireReport,
            true,
            "x",
        )
        .await,
        tonic::Code::NotFound,
        &elsewhere,
    );
    // Text over the limit, with the limit named and nothing of the text echoed.
    let long = "CANARY-BAD-LONG ".repeat(300);
    refused(
        inform(
            &school,
            &id,
            pb::InformationKind::TripwireReport,
            false,
            &long,
        )
        .await,
        tonic::Code::InvalidArgument,
        "at most 4000 characters",
    );
    refused(
        ask(&core, &id, &long, &[], false).await,
        tonic::Code::InvalidArgument,
        "question: at most 4000 characters",
    );
    // Only the sender answers, only the recipient asks, only a core team plans, and only once
    // the case is accepted.
    refused(
        answer(&core, &id, "", behavior.clone(), false).await,
        tonic::Code::PermissionDenied,
        "only the sender",
    );
    refused(
        plan(&school, &id, &[("check-ins", "lincoln-high")], &date_in(3)).await,
        tonic::Code::PermissionDenied,
        "only a core team",
    );
    refused(
        plan(&core, &id, &[("check-ins", "lincoln-high")], &date_in(3)).await,
        tonic::Code::FailedPrecondition,
        "the referral is received",
    );
    // An answer to a question never asked.
    refused(
        answer(
            &school,
            &id,
            &uuid::Uuid::now_v7().to_string(),
            behavior.clone(),
            false,
        )
        .await,
        tonic::Code::NotFound,
        "no information request",
    );
    for status in [S::Accepted, S::InAssessment, S::Completed] {
        set(&core, &id, status).await;
    }
    // A reassessment date in the past, and a code outside the vocabulary.
    refused(
        reassess(
            &core,
            &id,
            "low",
            &[("check-ins", "lincoln-high")],
            &date_in(-1),
        )
        .await,
        tonic::Code::InvalidArgument,
        "next_reassessment: is in the past",
    );
    refused(
        reassess(
            &core,
            &id,
            "low",
            &[("CANARY-BAD-CODE", "lincoln-high")],
            &date_in(3),
        )
        .await,
        tonic::Code::InvalidArgument,
        "restrict-weapons-access",
    );
    // An answer to a closed case names the state.
    set(&core, &id, S::Closed).await;
    referral_when(&school, &id, "the closing", |r| {
        r.status == S::Closed as i32
    })
    .await;
    refused(
        answer(&school, &id, "", behavior, false).await,
        tonic::Code::FailedPrecondition,
        "the referral is closed",
    );
    assert!(!messages.contains("CANARY"), "{messages}");

    // Nothing was stored or queued on either side.
    for team in [&core, &school] {
        let record = referral_when(team, &id, "the case", |_| true).await;
        assert!(
            record.case_messages.is_empty(),
            "{:?}",
            record.case_messages
        );
        assert!(
            !outbox(team)
                .await
                .iter()
                .any(|e| e.kind == pb::MessageKind::CaseMessage as i32)
        );
    }

    // The receiving node checks too: a plan forged by the school, or a supplement by the
    // county, signed by its own node and sent straight to the other node, is refused there.
    let now = prost_types::Timestamp {
        seconds: time::OffsetDateTime::now_utc().unix_timestamp(),
        nanos: 0,
    };
    let reopened = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &reopened).await;
    let mut to_core = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    let forged = to_core
        .deliver_case_message(signed_case_message(
            &school,
            pb::CaseMessage {
                id: uuid::Uuid::now_v7().to_string(),
                referral_id: reopened.clone(),
                author: school.identity.uri(),
                at: Some(now),
                body: Some(Body::ManagementPlan(pb::ManagementPlanRecord {
                    plan: Some(plan_of(
                        &[("check-ins", &school.identity.uri())],
                        &date_in(3),
                    )),
                })),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), tonic::Code::PermissionDenied, "{forged:?}");
    let mut to_school = federation_client(&core.dir, &[&fed.ca_path], &core.identity, &school);
    let forged = to_school
        .deliver_case_message(signed_case_message(
            &core,
            pb::CaseMessage {
                id: uuid::Uuid::now_v7().to_string(),
                referral_id: reopened.clone(),
                author: core.identity.uri(),
                at: Some(now),
                body: Some(Body::NewInformation(pb::NewInformation {
                    kind: pb::InformationKind::ProtectiveFactor.into(),
                    text: "x".into(),
                    ..Default::default()
                })),
                ..Default::default()
            },
        ))
        .await;
    assert!(
        forged.is_ok(),
        "new information from the county is allowed: {forged:?}"
    );
    let forged = to_school
        .deliver_case_message(signed_case_message(
            &core,
            pb::CaseMessage {
                id: uuid::Uuid::now_v7().to_string(),
                referral_id: reopened.clone(),
                author: core.identity.uri(),
                at: Some(now),
                body: Some(Body::Supplement(pb::Supplement {
                    answers: String::new(),
                    content: Some(pb::ReferralContent {
                        narrative: Some(pb::Narrative { text: "x".into() }),
                        ..Default::default()
                    }),
                })),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), tonic::Code::FailedPrecondition, "{forged:?}");
    assert!(forged.message().contains("only the sender"), "{forged:?}");

    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_case_texts_are_sealed_and_shredded_with_their_referral() {
    const ANSWER: &str = "CANARY-CASE-ANSWER-61c2";
    const NEWS: &str = "CANARY-CASE-NEWS-0b7e";
    let (_fed, core, school) = core_and_school();
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let consent = consent_for(&school, "CASE-SHRED", &[&core]).await;
    let mut referral = draft("county-core");
    referral.legal_basis = pb::LegalBasis::Consent.into();
    referral.justification.clear();
    referral.consent_ref = consent.clone();
    referral.subject_ref = "CASE-SHRED".into();
    let id = submit(&mut agency(&school).await, referral).await;
    delivered(&school, &id).await;

    // The school adds to the case twice, each time with free text the consent lets go.
    let supplement = answer(
        &school,
        &id,
        "",
        pb::ReferralContent {
            narrative: Some(pb::Narrative {
                text: ANSWER.into(),
            }),
            ..Default::default()
        },
        false,
    )
    .await
    .unwrap();
    let news = inform(
        &school,
        &id,
        pb::InformationKind::PrecipitatingEvent,
        true,
        NEWS,
    )
    .await
    .unwrap();
    for message in [&supplement.message_id, &news.message_id] {
        let held = arrived(&core, &id, message).await;
        assert!(format!("{held:?}").contains("CANARY-CASE"), "{held:?}");
    }
    // Sealed on disk under the referral's own key: the texts are not in the file, the key is,
    // and the key opens each stored row.
    let key = data_key(&core, &id).await.expect("the referral's data key");
    let bytes = database_bytes(&core);
    assert!(contains(&bytes, &key));
    assert!(!contains(&bytes, ANSWER.as_bytes()) && !contains(&bytes, NEWS.as_bytes()));
    let mut connection = store_connection(&core, false).await;
    let rows: Vec<(String, Vec<u8>, Option<String>)> =
        sqlx::query_as("SELECT id, body, data_key FROM case_messages WHERE referral_id = $1")
            .bind(&id)
            .fetch_all(&mut connection)
            .await
            .unwrap();
    sqlx::Connection::close(connection).await.ok();
    assert_eq!(rows.len(), 2);
    for (message_id, body, key_id) in &rows {
        assert_eq!(key_id.as_deref(), Some(id.as_str()));
        let opened =
            tatmx_node::vault::open(&key, &format!("case_messages/{message_id}"), body).unwrap();
        assert!(contains(&opened, b"CANARY-CASE"));
    }

    // The subject withdraws consent: the county purges the referral, and its case messages
    // with it.
    agency(&school)
        .await
        .revoke_consent(pb::RevokeConsentRequest {
            consent_id: consent.clone(),
        })
        .await
        .unwrap();
    eventually(Duration::from_secs(15), "the purge at the county", || {
        let core = core.clone();
        let id = id.clone();
        async move { data_key(&core, &id).await.is_none().then_some(()) }
    })
    .await;
    eventually(
        Duration::from_secs(10),
        "the key's bytes to leave the disk",
        || {
            let gone = !contains(&database_bytes(&core), &key);
            async move { gone.then_some(()) }
        },
    )
    .await;
    let mut connection = store_connection(&core, false).await;
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM case_messages WHERE referral_id = $1")
        .bind(&id)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    sqlx::Connection::close(connection).await.ok();
    assert_eq!(left, 0, "the purged referral's case messages are gone");
    let bytes = database_bytes(&core);
    assert!(!contains(&bytes, ANSWER.as_bytes()) && !contains(&bytes, NEWS.as_bytes()));
    let gone = agency(&core)
        .await
        .get_referral(pb::GetReferralRequest {
            referral_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);

    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_a_case_was_forwarded_to_sends_new_information_back_to_the_team_that_forwarded_it() {
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
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &id).await;
    let forward = forward_delivered(&core, &id, "state-police-tat").await;

    // The state team talks to the county on the forward, the case they share.
    let news = inform(
        &state,
        &forward,
        pb::InformationKind::PrecipitatingEvent,
        false,
        "The subject was suspended from a second school this week.",
    )
    .await
    .unwrap();
    assert_eq!(news.recipient, core.identity.uri());
    let held = arrived(&core, &forward, &news.message_id).await;
    assert_eq!(held.direction, pb::Direction::Inbound as i32);
    let message = held.message.unwrap();
    assert_eq!(message.author, state.identity.uri());
    let Some(Body::NewInformation(body)) = message.body else {
        panic!("not new information")
    };
    assert!(body.text.contains("suspended"), "{body:?}");
    // The school's referral is not shared with the state team: it cannot write on it.
    let refused = inform(
        &state,
        &id,
        pb::InformationKind::PrecipitatingEvent,
        false,
        "x",
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    for node in nodes {
        node.shutdown().await;
    }
}
