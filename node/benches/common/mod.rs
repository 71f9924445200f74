//! What the benchmarks share: a realistic referral and the team identities around it.

use tatmx_certs::TeamIdentity;
use tatmx_node::referral::*;
use time::OffsetDateTime;
use uuid::Uuid;

/// A team of the benchmark federation.
pub fn identity(team: &str) -> TeamIdentity {
    TeamIdentity::parse_uri(&format!("spiffe://county-mdt.example/team/{team}")).expect("identity")
}

/// About twenty fields across eleven categories.
pub fn referral() -> Referral {
    let text = |s: &str| s.to_owned();
    Referral {
        id: Uuid::now_v7(),
        sender: identity("riverside-mh"),
        recipient: identity("county-core"),
        created_at: OffsetDateTime::now_utc(),
        purpose: Purpose::ThreatAssessment,
        level_of_concern: Some(LevelOfConcern {
            scheme: text("CSTAG"),
            value: text("serious"),
        }),
        legal_basis: LegalBasis::Consent,
        justification: None,
        consent_ref: Some(Uuid::now_v7().to_string()),
        content: ReferralContent {
            identity: Some(SubjectIdentity {
                full_name: text("Jordan Example"),
                date_of_birth: text("2010-03-14"),
                identifiers: vec![ExternalId {
                    system: text("student-id"),
                    value: text("S-1"),
                }],
            }),
            contact: Some(SubjectContact {
                address: text("1 Main St"),
                phone: text("555-0100"),
                email: text("j@example.org"),
            }),
            behavior: Some(Behavior {
                observations: vec![
                    ObservedBehavior {
                        code: text("LEAKAGE"),
                        observed_on: text("2026-11-20"),
                    },
                    ObservedBehavior {
                        code: text("FIXATION"),
                        observed_on: text("2026-11-18"),
                    },
                ],
            }),
            threat: Some(ThreatDetails {
                threat_type: text("targeted-violence"),
                target_type: text("school"),
                weapons_access: true,
                grievance_code: text("PEER"),
            }),
            narrative: Some(Narrative {
                text: text("A teacher overheard a specific plan."),
            }),
            mental_health: Some(MentalHealth {
                diagnoses: vec![text("F43.1")],
                treatment: text("weekly"),
            }),
            substance_use: Some(SubstanceUse {
                treatment_record: text("outpatient"),
            }),
            education_record: Some(EducationRecord {
                school: text("Lincoln High"),
                grade: text("10"),
                iep_or_504: false,
                discipline: vec![],
            }),
            criminal_history: Some(CriminalHistory {
                arrests: vec![text("2025")],
                protective_orders: vec![],
                firearm_records: vec![],
            }),
            reporter: Some(ReporterIdentity {
                name: text("A teacher"),
                relationship: text("teacher"),
                contact: text("x"),
            }),
            third_parties: vec![ThirdParty {
                name: text("A classmate"),
                role: text("target"),
            }],
        },
        labels: Default::default(),
        withheld: vec![],
        case_handle: None,
        consultation: None,
        provenance: vec![],
        consent_scope: None,
    }
}
