//! The default policy pack, row by row, through real nodes: what the sender's filter lets
//! out, what the receiver ends up holding, and why.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::collections::HashMap;

use tatmx_proto::v1 as pb;
use tatmx_tests::*;

const JUSTIFICATION: &str = "The subject told a counsellor of a specific plan and date this week.";

/// Six teams, each running its node, every one a peer of every other.
struct County {
    _fed: TestFederation,
    teams: HashMap<&'static str, TeamSpec>,
    nodes: Vec<tatmx_node::RunningNode>,
}

impl County {
    async fn start() -> Self {
        let mut fed = TestFederation::new("county-mdt.example");
        let specs = [
            ("core", "county-core", "core", "law-enforcement"),
            ("core2", "state-police-tat", "core", "law-enforcement"),
            ("school", "lincoln-high", "affiliate", "education"),
            ("mh", "riverside-mh", "affiliate", "mental-health"),
            ("su", "harbor-recovery", "affiliate", "substance-use"),
            ("partner", "fbi-bau", "partner", "federal-partner"),
        ];
        let mut teams = HashMap::new();
        for (key, team, role, discipline) in specs {
            teams.insert(key, fed.team(team, role, discipline));
        }
        for key in teams.keys() {
            let peers: Vec<&TeamSpec> = teams
                .iter()
                .filter(|(k, _)| *k != key)
                .map(|(_, t)| t)
                .collect();
            fed.write_config(&teams[key], &peers, "");
        }
        let mut nodes = Vec::new();
        for team in teams.values() {
            nodes.push(start(team).await);
        }
        Self {
            _fed: fed,
            teams,
            nodes,
        }
    }

    fn team(&self, key: &str) -> &TeamSpec {
        &self.teams[key]
    }

    async fn stop(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
    }
}

/// One row of the table.
struct Row {
    name: &'static str,
    from: &'static str,
    to: &'static str,
    purpose: pb::Purpose,
    basis: pb::LegalBasis,
    justified: bool,
    consent: Option<Consent>,
    content: pb::ReferralContent,
    category: pb::DataCategory,
    expect: pb::DisclosureOutcome,
    rule: Option<&'static str>,
}

#[derive(Clone, Copy)]
enum Consent {
    /// Permits every category to the named recipient team.
    NamingRecipient,
    /// Permits every category to the recipient's discipline only.
    NamingDisciplineOnly,
    /// Like `NamingRecipient`, but revoked before use.
    Revoked,
}

fn with_threat(content: pb::ReferralContent) -> pb::ReferralContent {
    pb::ReferralContent {
        threat: Some(pb::ThreatDetails {
            threat_type: "targeted-violence".into(),
            ..Default::default()
        }),
        ..content
    }
}

fn mental_health() -> pb::ReferralContent {
    with_threat(pb::ReferralContent {
        mental_health: Some(pb::MentalHealth {
            diagnoses: vec!["CANARY-DIAGNOSIS".into()],
            treatment: String::new(),
        }),
        ..Default::default()
    })
}

fn substance_use() -> pb::ReferralContent {
    with_threat(pb::ReferralContent {
        substance_use: Some(pb::SubstanceUse {
            treatment_record: "CANARY-TREATMENT".into(),
        }),
        ..Default::default()
    })
}

fn education() -> pb::ReferralContent {
    with_threat(pb::ReferralContent {
        education_record: Some(pb::EducationRecord {
            school: "CANARY-SCHOOL".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn criminal_history() -> pb::ReferralContent {
    with_threat(pb::ReferralContent {
        criminal_history: Some(pb::CriminalHistory {
            arrests: vec!["CANARY-ARREST".into()],
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn reporter() -> pb::ReferralContent {
    with_threat(pb::ReferralContent {
        reporter: Some(pb::ReporterIdentity {
            name: "CANARY-REPORTER".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn identity() -> pb::ReferralContent {
    with_threat(pb::ReferralContent {
        identity: Some(pb::SubjectIdentity {
            full_name: "CANARY-SUBJECT".into(),
            date_of_birth: "2010-01-02".into(),
            identifiers: vec![],
        }),
        ..Default::default()
    })
}

fn rows() -> Vec<Row> {
    use pb::DataCategory as C;
    use pb::DisclosureOutcome as O;
    use pb::LegalBasis as B;
    use pb::Purpose as P;
    let row = |name, from, to, basis, justified, consent, content, category, expect, rule| Row {
        name,
        from,
        to,
        purpose: P::ThreatAssessment,
        basis,
        justified,
        consent,
        content,
        category,
        expect,
        rule,
    };
    vec![
        row(
            "MH to core on serious imminent threat",
            "mh",
            "core",
            B::SeriousImminentThreat,
            true,
            None,
            mental_health(),
            C::MentalHealth,
            O::Disclose,
            Some("hipaa-serious-imminent-threat"),
        ),
        row(
            "MH to school without consent or basis",
            "mh",
            "school",
            B::DeIdentified,
            false,
            None,
            mental_health(),
            C::MentalHealth,
            O::Withhold,
            None,
        ),
        row(
            "MH to core with consent",
            "mh",
            "core",
            B::Consent,
            false,
            Some(Consent::NamingRecipient),
            mental_health(),
            C::MentalHealth,
            O::Disclose,
            Some("consent"),
        ),
        row(
            "SU to core on serious imminent threat",
            "su",
            "core",
            B::SeriousImminentThreat,
            true,
            None,
            substance_use(),
            C::SubstanceUse,
            O::Withhold,
            Some("part2-consent-must-name-recipient"),
        ),
        row(
            "SU to core with consent naming the core team",
            "su",
            "core",
            B::Consent,
            false,
            Some(Consent::NamingRecipient),
            substance_use(),
            C::SubstanceUse,
            O::Disclose,
            Some("consent"),
        ),
        row(
            "SU to core with consent naming only law enforcement",
            "su",
            "core",
            B::Consent,
            false,
            Some(Consent::NamingDisciplineOnly),
            substance_use(),
            C::SubstanceUse,
            O::Withhold,
            Some("part2-consent-must-name-recipient"),
        ),
        row(
            "education record to core in an emergency",
            "school",
            "core",
            B::HealthSafetyEmergency,
            true,
            None,
            education(),
            C::EducationRecord,
            O::Disclose,
            Some("ferpa-health-safety-emergency"),
        ),
        row(
            "education record to MH without consent or basis",
            "school",
            "mh",
            B::DeIdentified,
            false,
            None,
            education(),
            C::EducationRecord,
            O::Withhold,
            None,
        ),
        row(
            "criminal history to a school, whatever the consent",
            "core",
            "school",
            B::Consent,
            false,
            Some(Consent::NamingRecipient),
            criminal_history(),
            C::CriminalHistory,
            O::Withhold,
            Some("cjis-recipient-not-authorized"),
        ),
        row(
            "criminal history between CJIS core teams",
            "core",
            "core2",
            B::LawEnforcement,
            false,
            None,
            criminal_history(),
            C::CriminalHistory,
            O::Disclose,
            Some("cjis-between-criminal-justice-agencies"),
        ),
        row(
            "revoked consent is no consent",
            "mh",
            "core",
            B::Consent,
            false,
            Some(Consent::Revoked),
            mental_health(),
            C::MentalHealth,
            O::Withhold,
            None,
        ),
        row(
            "the subject cannot consent for the reporter",
            "school",
            "core",
            B::Consent,
            false,
            Some(Consent::NamingRecipient),
            reporter(),
            C::ReporterIdentity,
            O::Withhold,
            Some("reporter-protected"),
        ),
        Row {
            purpose: P::Consultation,
            ..row(
                "a consultation replaces identity with the case handle",
                "core",
                "partner",
                B::DeIdentified,
                false,
                None,
                identity(),
                C::Identity,
                O::Pseudonymize,
                Some("minimization-consultation-de-identified"),
            )
        },
    ]
}

async fn record_consent(team: &TeamSpec, recipient: &TeamSpec, kind: Consent) -> String {
    let provision = match kind {
        Consent::NamingRecipient | Consent::Revoked => pb::Provision {
            r#type: pb::ProvisionType::Permit.into(),
            recipient_teams: vec![recipient.identity.uri()],
            ..Default::default()
        },
        Consent::NamingDisciplineOnly => pb::Provision {
            r#type: pb::ProvisionType::Permit.into(),
            recipient_disciplines: vec![recipient.discipline.into()],
            ..Default::default()
        },
    };
    let mut client = agency(team).await;
    let consent = client
        .record_consent(pb::RecordConsentRequest {
            consent: Some(pb::Consent {
                subject: "CASE-2026-0042".into(),
                grantor: pb::Grantor::Guardian.into(),
                grantor_name: "CANARY-GUARDIAN".into(),
                provision: Some(provision),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    if matches!(kind, Consent::Revoked) {
        client
            .revoke_consent(pb::RevokeConsentRequest {
                consent_id: consent.id.clone(),
            })
            .await
            .unwrap();
    }
    consent.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_policy_table_holds_through_real_nodes() {
    let county = County::start().await;
    for row in rows() {
        let from = county.team(row.from);
        let to = county.team(row.to);
        let consent_ref = match row.consent {
            Some(kind) => record_consent(from, to, kind).await,
            None => String::new(),
        };
        let draft = pb::NewReferral {
            recipient: to.identity.uri(),
            purpose: row.purpose.into(),
            level_of_concern: None,
            legal_basis: row.basis.into(),
            justification: if row.justified {
                JUSTIFICATION.into()
            } else {
                String::new()
            },
            consent_ref,
            content: Some(row.content.clone()),
            case_ref: "CASE-2026-0042".into(),
            reidentify: false,
            subject_ref: "CASE-2026-0042".into(),
        };
        let response = agency(from)
            .await
            .submit_referral(pb::SubmitReferralRequest {
                referral: Some(draft),
                dry_run: false,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{}: submit refused: {e:?}", row.name))
            .into_inner();
        let decision = response
            .decisions
            .iter()
            .find(|d| d.category == row.category as i32)
            .unwrap_or_else(|| panic!("{}: no decision for the category", row.name));
        assert_eq!(
            decision.outcome, row.expect as i32,
            "{}: {decision:?}",
            row.name
        );
        if let Some(rule) = row.rule {
            assert!(
                decision.rules.iter().any(|r| r == rule),
                "{}: expected rule {rule}: {decision:?}",
                row.name
            );
        }
        assert!(
            !decision.reasons.is_empty(),
            "{}: every decision is explained",
            row.name
        );

        // What the recipient holds matches the decision.
        delivered(from, &response.referral_id).await;
        let held = agency(to)
            .await
            .get_referral(pb::GetReferralRequest {
                referral_id: response.referral_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let present = held.categories.contains(&(row.category as i32));
        let referral = held.referral.unwrap();
        let manifest = referral
            .withheld
            .iter()
            .find(|w| w.category == row.category as i32);
        match row.expect {
            pb::DisclosureOutcome::Disclose => {
                assert!(
                    present,
                    "{}: the recipient should hold the category",
                    row.name
                );
                assert!(manifest.is_none(), "{}", row.name);
            }
            _ => {
                assert!(
                    !present,
                    "{}: the recipient must not hold the category",
                    row.name
                );
                let manifest =
                    manifest.unwrap_or_else(|| panic!("{}: the manifest must list it", row.name));
                assert!(!manifest.reasons.is_empty(), "{}", row.name);
                assert!(
                    !format!("{manifest:?}").contains("CANARY"),
                    "{}: the manifest carries no content",
                    row.name
                );
            }
        }
        if row.category == pb::DataCategory::SubstanceUse
            && row.expect == pb::DisclosureOutcome::Disclose
        {
            let labels = referral
                .labels
                .iter()
                .find(|l| l.category == row.category as i32)
                .unwrap();
            assert_eq!(
                labels.labels,
                vec!["NO_REDISCLOSURE".to_owned()],
                "{}",
                row.name
            );
        }
        if row.expect == pb::DisclosureOutcome::Pseudonymize {
            assert!(
                referral.case_handle.starts_with("case-"),
                "{}: {}",
                row.name,
                referral.case_handle
            );
            assert!(manifest.unwrap().pseudonymized);
        }
        if row.basis == pb::LegalBasis::SeriousImminentThreat
            && row.expect == pb::DisclosureOutcome::Disclose
        {
            // The basis and its justification travel and are kept with the message.
            assert_eq!(
                referral.legal_basis,
                pb::LegalBasis::SeriousImminentThreat as i32
            );
            assert_eq!(referral.justification, JUSTIFICATION);
        }
        if row.category == pb::DataCategory::EducationRecord
            && row.expect == pb::DisclosureOutcome::Disclose
        {
            // The FERPA disclosure is recorded at the school with the rule that allowed it.
            let sent = agency(from)
                .await
                .get_referral(pb::GetReferralRequest {
                    referral_id: response.referral_id.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            assert!(
                sent.decisions
                    .iter()
                    .any(|d| d.rules.iter().any(|r| r == "ferpa-health-safety-emergency"))
            );
        }
    }
    county.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_purpose_shares_nothing() {
    let county = County::start().await;
    let school = county.team("school");
    let mut draft = draft("county-core");
    draft.purpose = 42;
    let status = agency(school)
        .await
        .submit_referral(pb::SubmitReferralRequest {
            referral: Some(draft),
            dry_run: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("purpose"), "{status:?}");
    let outbox = agency(school)
        .await
        .list_outbox(pb::ListOutboxRequest {
            limit: 0,
            dead_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(outbox.entries.is_empty());
    county.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_skips_its_filter_is_stopped_by_the_receiver() {
    let county = County::start().await;
    let core = county.team("core");
    let school = county.team("school");
    // The core team's node "forgets" to filter: criminal history straight to a school.
    let mut raw = outgoing(core, school);
    raw.content = Some(criminal_history());
    let mut client = federation_client(&core.dir, &[&county._fed.ca_path], &core.identity, school);
    let status = client
        .deliver_referral(signed_referral(core, raw.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("CRIMINAL_HISTORY"), "{status:?}");
    assert!(!status.message().contains("CANARY"), "{status:?}");
    assert_eq!(inbox_len(school).await, 0);

    // Substance-use records without their NO_REDISCLOSURE label are refused too.
    let su = county.team("su");
    let mut raw = outgoing(su, core);
    raw.content = Some(substance_use());
    let mut client = federation_client(&su.dir, &[&county._fed.ca_path], &su.identity, core);
    let status = client
        .deliver_referral(signed_referral(su, raw))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("SUBSTANCE_USE"), "{status:?}");
    assert_eq!(inbox_len(core).await, 0);
    county.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_shows_every_decision_and_sends_nothing() {
    let county = County::start().await;
    let school = county.team("school");
    let mut draft = draft("county-core");
    if let Some(content) = draft.content.as_mut() {
        content.reporter = Some(pb::ReporterIdentity {
            name: "CANARY-REPORTER".into(),
            ..Default::default()
        });
    }
    let preview = agency(school)
        .await
        .submit_referral(pb::SubmitReferralRequest {
            referral: Some(draft),
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let reporter = preview
        .decisions
        .iter()
        .find(|d| d.category == pb::DataCategory::ReporterIdentity as i32)
        .unwrap();
    assert_eq!(reporter.outcome, pb::DisclosureOutcome::Withhold as i32);
    assert_eq!(reporter.rules, vec!["reporter-protected".to_owned()]);
    assert!(reporter.reasons[0].contains("reporter"));
    let outgoing = preview.outgoing.unwrap();
    assert!(
        outgoing.content.unwrap().reporter.is_none(),
        "the preview shows what would really go"
    );
    let outbox = agency(school)
        .await
        .list_outbox(pb::ListOutboxRequest {
            limit: 0,
            dead_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(outbox.entries.is_empty());
    county.stop().await;
}
