//! A property test of the filter: for random referrals with a canary string in every field,
//! and random consents, bases and purposes, no withheld category's canary appears in what the
//! recipient holds, in either node's database files, or anywhere in either node's logs (which
//! must carry no case data at all, at any level).
//!
//! The seed is printed; set TATMX_CANARY_SEED to replay a failure.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::collections::{HashMap, HashSet};

use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tatmx_proto::v1 as pb;
use tatmx_tests::*;

const CASES: usize = 40;

fn canary(case: usize, category: &str) -> String {
    format!("CANARY{case:03}{category}")
}

/// A draft carrying a random subset of categories, each holding its canary.
fn random_content(rng: &mut StdRng, case: usize) -> (pb::ReferralContent, HashMap<i32, String>) {
    use pb::DataCategory as C;
    let mut content = pb::ReferralContent::default();
    let mut canaries = HashMap::new();
    let mut pick = |rng: &mut StdRng, category: C| -> Option<String> {
        rng.random_bool(0.6).then(|| {
            let c = canary(
                case,
                category.as_str_name().trim_start_matches("DATA_CATEGORY_"),
            );
            canaries.insert(category as i32, c.clone());
            c
        })
    };
    content.identity = pick(rng, C::Identity).map(|c| pb::SubjectIdentity {
        full_name: c,
        date_of_birth: String::new(),
        identifiers: vec![],
    });
    content.contact = pick(rng, C::Contact).map(|c| pb::SubjectContact {
        address: c,
        ..Default::default()
    });
    content.behavior = pick(rng, C::Behavior).map(|c| pb::Behavior {
        observations: vec![pb::ObservedBehavior {
            code: c,
            observed_on: String::new(),
        }],
    });
    content.narrative = pick(rng, C::Narrative).map(|text| pb::Narrative { text });
    content.mental_health = pick(rng, C::MentalHealth).map(|c| pb::MentalHealth {
        diagnoses: vec![c],
        treatment: String::new(),
    });
    content.substance_use =
        pick(rng, C::SubstanceUse).map(|treatment_record| pb::SubstanceUse { treatment_record });
    content.education_record = pick(rng, C::EducationRecord).map(|school| pb::EducationRecord {
        school,
        ..Default::default()
    });
    content.criminal_history = pick(rng, C::CriminalHistory).map(|c| pb::CriminalHistory {
        arrests: vec![c],
        ..Default::default()
    });
    content.reporter = pick(rng, C::ReporterIdentity).map(|name| pb::ReporterIdentity {
        name,
        ..Default::default()
    });
    if let Some(name) = pick(rng, C::ThirdParty) {
        content.third_parties = vec![pb::ThirdParty {
            name,
            role: "target".into(),
        }];
    }
    // Threat details are always there, so most drafts have something that may go.
    let threat = canary(case, "THREAT");
    canaries.insert(C::Threat as i32, threat.clone());
    content.threat = Some(pb::ThreatDetails {
        threat_type: threat,
        ..Default::default()
    });
    (content, canaries)
}

#[test]
fn no_withheld_canary_reaches_the_recipient_its_store_or_any_log() {
    Logs::run(no_withheld_canary_reaches_the_recipient_its_store_or_any_log_in);
}

async fn no_withheld_canary_reaches_the_recipient_its_store_or_any_log_in(logs: Logs) {
    let seed: u64 = std::env::var("TATMX_CANARY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261126);
    println!(
        "canary property test: seed {seed}, {CASES} cases (replay with TATMX_CANARY_SEED={seed})"
    );
    let mut rng = StdRng::seed_from_u64(seed);

    let mut fed = TestFederation::new("county-mdt.example");
    let specs = [
        ("county-core", "core", "law-enforcement"),
        ("state-police-tat", "core", "law-enforcement"),
        ("lincoln-high", "affiliate", "education"),
        ("riverside-mh", "affiliate", "mental-health"),
        ("harbor-recovery", "affiliate", "substance-use"),
        ("fbi-bau", "partner", "federal-partner"),
    ];
    let teams: Vec<TeamSpec> = specs.iter().map(|(t, r, d)| fed.team(t, r, d)).collect();
    for team in &teams {
        let peers: Vec<&TeamSpec> = teams
            .iter()
            .filter(|t| t.identity != team.identity)
            .collect();
        fed.write_config(team, &peers, "");
    }
    let mut nodes = Vec::new();
    for team in &teams {
        nodes.push(start(team).await);
    }

    let bases = [
        pb::LegalBasis::Consent,
        pb::LegalBasis::SeriousImminentThreat,
        pb::LegalBasis::HealthSafetyEmergency,
        pb::LegalBasis::LawEnforcement,
        pb::LegalBasis::DeIdentified,
    ];
    let purposes = [
        pb::Purpose::ThreatAssessment,
        pb::Purpose::ThreatManagement,
        pb::Purpose::Consultation,
    ];
    let mut withheld_canaries: Vec<(usize, String)> = Vec::new();
    let mut all_canaries: Vec<String> = Vec::new();
    let mut sent: Vec<(usize, usize, String)> = Vec::new();
    let mut withheld_total = 0;
    for case in 0..CASES {
        let from = rng.random_range(0..teams.len());
        let mut to = rng.random_range(0..teams.len());
        while to == from {
            to = rng.random_range(0..teams.len());
        }
        let (content, canaries) = random_content(&mut rng, case);
        all_canaries.extend(canaries.values().cloned());
        let basis = bases[rng.random_range(0..bases.len())];
        let consent_ref = if basis == pb::LegalBasis::Consent || rng.random_bool(0.3) {
            let provision = match rng.random_range(0..3) {
                0 => pb::Provision {
                    r#type: pb::ProvisionType::Permit.into(),
                    recipient_teams: vec![teams[to].identity.uri()],
                    ..Default::default()
                },
                1 => pb::Provision {
                    r#type: pb::ProvisionType::Permit.into(),
                    recipient_disciplines: vec![teams[to].discipline.into()],
                    provisions: vec![pb::Provision {
                        r#type: pb::ProvisionType::Deny.into(),
                        categories: vec![pb::DataCategory::MentalHealth.into()],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                _ => pb::Provision {
                    r#type: pb::ProvisionType::Permit.into(),
                    ..Default::default()
                },
            };
            let mut client = agency(&teams[from]).await;
            let consent = client
                .record_consent(pb::RecordConsentRequest {
                    consent: Some(pb::Consent {
                        subject: format!("SUBJECT{case}"),
                        grantor: pb::Grantor::Self_.into(),
                        provision: Some(provision),
                        ..Default::default()
                    }),
                })
                .await
                .unwrap()
                .into_inner();
            if rng.random_bool(0.2) {
                client
                    .revoke_consent(pb::RevokeConsentRequest {
                        consent_id: consent.id.clone(),
                    })
                    .await
                    .unwrap();
            }
            consent.id
        } else {
            String::new()
        };
        let draft = pb::NewReferral {
            recipient: teams[to].identity.uri(),
            purpose: purposes[rng.random_range(0..purposes.len())].into(),
            level_of_concern: None,
            legal_basis: basis.into(),
            justification: if rng.random_bool(0.7) {
                "A specific plan and date were stated; the team judged it imminent.".into()
            } else {
                String::new()
            },
            consent_ref,
            content: Some(content),
            case_ref: format!("CASE{case}"),
            reidentify: rng.random_bool(0.2),
            subject_ref: format!("SUBJECT{case}"),
        };
        let response = agency(&teams[from])
            .await
            .submit_referral(pb::SubmitReferralRequest {
                referral: Some(draft),
                dry_run: false,
                ..Default::default()
            })
            .await;
        let response = match response {
            Ok(response) => response.into_inner(),
            Err(status) => {
                // Refused outright (nothing may go, or no justification): nothing left.
                assert!(
                    matches!(
                        status.code(),
                        tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument
                    ),
                    "case {case}: {status:?}"
                );
                assert!(
                    !status.message().contains("CANARY"),
                    "case {case}: {status:?}"
                );
                continue;
            }
        };
        let decided: HashSet<i32> = response.decisions.iter().map(|d| d.category).collect();
        assert_eq!(
            decided.len(),
            canaries.len(),
            "case {case}: one decision per category"
        );
        for decision in &response.decisions {
            if decision.outcome != pb::DisclosureOutcome::Disclose as i32 {
                withheld_total += 1;
                withheld_canaries.push((to, canaries[&decision.category].clone()));
            }
        }
        sent.push((from, to, response.referral_id));
    }
    assert!(
        withheld_total > 20,
        "the random cases must exercise withholding: {withheld_total}"
    );
    assert!(
        sent.len() > CASES / 2,
        "most cases must send something: {}",
        sent.len()
    );

    for (from, to, id) in &sent {
        delivered(&teams[*from], id).await;
        let held = agency(&teams[*to])
            .await
            .get_referral(pb::GetReferralRequest {
                referral_id: id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let bytes = held.encode_to_vec();
        for (_, canary) in withheld_canaries.iter() {
            assert!(
                !contains(&bytes, canary.as_bytes()),
                "{canary} reached the recipient of {id}"
            );
        }
    }
    for node in nodes {
        node.shutdown().await;
    }
    // Every database file, sender's and recipient's alike.
    for team in &teams {
        let bytes = database_bytes(team);
        assert!(!bytes.is_empty());
        for (_, canary) in &withheld_canaries {
            assert!(
                !contains(&bytes, canary.as_bytes()),
                "{canary} is in the store of {}",
                team.identity
            );
        }
    }
    // The logs carry no case data at all: this test's nodes' logs, and every other line the
    // process logged meanwhile.
    let own = logs.own_text().len();
    assert!(own > 1000, "the nodes logged: {own} bytes");
    let logs = logs.text();
    for canary in &all_canaries {
        assert!(
            !contains(&logs, canary.as_bytes()),
            "{canary} appears in the logs"
        );
    }
    println!(
        "canary property test: {} referrals sent, {withheld_total} categories withheld, {} log bytes checked",
        sent.len(),
        logs.len()
    );
}
