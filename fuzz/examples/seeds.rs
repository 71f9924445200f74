//! Writes the checked-in seed corpus: a few small valid inputs per target, so that libFuzzer
//! starts from messages the node accepts instead of from nothing.
//!
//! Run from `fuzz/`: `cargo run --example seeds`. It keeps the test CA in
//! `fuzz-targets/fixtures/` (where the targets' crate compiles it in) if there is one, so seeds
//! signed earlier stay valid, and creates it otherwise; it overwrites only the seeds it writes
//! itself. Ids and times are fixed, so running it twice gives the same bytes
//! except for signatures and the CRL's own dates.

use std::fs;
use std::path::{Path, PathBuf};

use prost::Message;
use tatmx_certs::directory::{Directory, Member};
use tatmx_certs::{
    CertificateAuthority, FederationId, RevocationReason, RevokedCertificate, TeamIdentity,
};
use tatmx_fuzz_targets::FEDERATION;
use tatmx_node::case_message::{CaseBody, CaseMessage, Intervention, InterventionCode, Plan};
use tatmx_node::convert;
use tatmx_node::referral::*;
use tatmx_node::retraction::{Copy, Retraction, RetractionAck, RetractionCause};
use time::OffsetDateTime;
use uuid::Uuid;

/// 2026-09-21, a fixed creation time for every message.
const AT: i64 = 1_790_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ca = test_ca(&root.join("../fuzz-targets/fixtures"))?;

    let corpus = |target: &str| -> Result<PathBuf, std::io::Error> {
        let dir = root.join("corpus").join(target);
        fs::create_dir_all(&dir)?;
        Ok(dir)
    };

    // inbound_referral: the first byte picks the message, as the target reads it.
    let dir = corpus("inbound_referral")?;
    let tagged = |tag: u8, body: Vec<u8>| [vec![tag], body].concat();
    for (name, referral) in referrals() {
        let body = convert::referral_to_proto(&referral).encode_to_vec();
        fs::write(dir.join(format!("referral-{name}")), tagged(0, body))?;
    }
    for (name, update) in status_updates() {
        let body = convert::status_update_to_proto(&update).encode_to_vec();
        fs::write(dir.join(format!("status-update-{name}")), tagged(1, body))?;
    }
    let retraction = convert::retraction_to_proto(&retraction()).encode_to_vec();
    fs::write(dir.join("retraction"), tagged(2, retraction))?;
    for (name, ack) in retraction_acks() {
        let body = convert::retraction_ack_to_proto(&ack).encode_to_vec();
        fs::write(dir.join(format!("retraction-ack-{name}")), tagged(3, body))?;
    }
    for (name, message) in case_messages() {
        let body = convert::case_message_to_proto(&message).encode_to_vec();
        fs::write(dir.join(format!("case-message-{name}")), tagged(4, body))?;
    }

    // filter: a bare referral, no tag byte.
    let dir = corpus("filter")?;
    for (name, referral) in referrals() {
        let body = convert::referral_to_proto(&referral).encode_to_vec();
        fs::write(dir.join(name), body)?;
    }

    // crl: one empty and one listing two serials, each as PEM and DER.
    let dir = corpus("crl")?;
    let revoked = [
        revoke("5f3a01", RevocationReason::KeyCompromise),
        revoke("00ff10", RevocationReason::Superseded),
    ];
    let empty_crl = ca.sign_crl(&[], 1, 30)?;
    let crl = ca.sign_crl(&revoked, 2, 30)?;
    for (name, pem) in [("empty", &empty_crl), ("two-revoked", &crl)] {
        fs::write(dir.join(format!("{name}.pem")), pem)?;
        let der = tatmx_certs::CrlSummary::from_pem(pem)?.der;
        fs::write(dir.join(format!("{name}.der")), der)?;
    }

    // directory: signed documents, and the bare directory the target also reads.
    let dir = corpus("directory")?;
    let small = directory(
        &ca,
        1,
        vec![member("county-core", "core", "law-enforcement")],
        None,
    )?;
    let full = directory(
        &ca,
        2,
        vec![
            member("county-core", "core", "law-enforcement"),
            member("lincoln-high", "affiliate", "education"),
            Member {
                cert_fingerprint_sha256: Some("ab".repeat(32)),
                endpoint: "https://[::1]:7443".into(),
                ..member("fbi-btac", "partner", "federal-partner")
            },
        ],
        Some(crl.clone()),
    )?;
    fs::write(
        dir.join("signed-one-member.json"),
        ca.sign_directory(&small)?.to_json(),
    )?;
    fs::write(
        dir.join("signed-with-crl.json"),
        ca.sign_directory(&full)?.to_json(),
    )?;
    fs::write(
        dir.join("bare-one-member.json"),
        serde_json::to_string(&small)?,
    )?;

    // config and policy: the deployment examples, and the smallest file that loads.
    let examples = root.join("../deploy/examples");
    let dir = corpus("config")?;
    for name in ["county-core.toml", "lincoln-high.toml"] {
        fs::copy(examples.join(name), dir.join(name))?;
    }
    fs::write(dir.join("minimal.toml"), MINIMAL_CONFIG)?;
    let dir = corpus("policy")?;
    fs::copy(
        examples.join("local-policy.cedar"),
        dir.join("local-policy.cedar"),
    )?;
    fs::write(dir.join("permit-when.cedar"), PERMIT_POLICY)?;

    check(root, &ca)
}

/// Every seed must be accepted by the parser it seeds: a seed that is refused only teaches the
/// fuzzer an error path it would find anyway.
fn check(root: &Path, ca: &CertificateAuthority) -> Result<(), Box<dyn std::error::Error>> {
    let seeds = |target: &str| -> Result<Vec<(String, Vec<u8>)>, std::io::Error> {
        let mut seeds = Vec::new();
        for entry in fs::read_dir(root.join("corpus").join(target))? {
            let path = entry?.path();
            seeds.push((path.display().to_string(), fs::read(&path)?));
        }
        Ok(seeds)
    };
    let refused = |name: &str, why: String| format!("seed {name} is refused: {why}");
    for (name, bytes) in seeds("inbound_referral")? {
        let (tag, body) = bytes
            .split_first()
            .ok_or_else(|| refused(&name, "empty".into()))?;
        let result = match tag {
            0 => convert::referral_from_proto(Message::decode(body)?).map(drop),
            1 => convert::status_update_from_proto(Message::decode(body)?).map(drop),
            2 => convert::retraction_from_proto(Message::decode(body)?).map(drop),
            3 => convert::retraction_ack_from_proto(Message::decode(body)?).map(drop),
            _ => convert::case_message_from_proto(Message::decode(body)?).map(drop),
        };
        result.map_err(|e| refused(&name, e.to_string()))?;
    }
    for (name, bytes) in seeds("filter")? {
        convert::referral_from_proto(Message::decode(bytes.as_slice())?)
            .map_err(|e| refused(&name, e.to_string()))?;
    }
    for (name, bytes) in seeds("crl")? {
        let crl = match std::str::from_utf8(&bytes) {
            Ok(pem) => tatmx_certs::CrlSummary::from_pem(pem),
            Err(_) => tatmx_certs::CrlSummary::from_der(&bytes),
        };
        crl.and_then(|crl| crl.verify_signed_by(ca.cert_pem()))
            .map_err(|e| refused(&name, e.to_string()))?;
    }
    let anchors = [ca.cert_pem().to_owned()];
    for (name, bytes) in seeds("directory")? {
        let text = String::from_utf8(bytes)?;
        match tatmx_certs::directory::SignedDirectory::from_json(&text) {
            Ok(signed) => signed.verify(&anchors).map(drop),
            Err(_) => serde_json::from_str::<Directory>(&text)?.validate(),
        }
        .map_err(|e| refused(&name, e.to_string()))?;
    }
    for (name, bytes) in seeds("config")? {
        tatmx_node::Config::from_toml(&String::from_utf8(bytes)?, Path::new("/tmp"))
            .map_err(|e| refused(&name, format!("{e:?}")))?;
    }
    for (name, bytes) in seeds("policy")? {
        tatmx_node::policy::Policy::from_sources(&[(name.clone(), String::from_utf8(bytes)?)])
            .map_err(|e| refused(&name, e.to_string()))?;
    }
    Ok(())
}

/// Loads the test CA from `dir`, or creates it there when there is none yet.
fn test_ca(dir: &Path) -> Result<CertificateAuthority, Box<dyn std::error::Error>> {
    let (cert, key) = (dir.join("test-ca.pem"), dir.join("test-ca.key"));
    if let (Ok(cert), Ok(key)) = (fs::read_to_string(&cert), fs::read_to_string(&key))
        && let Ok(ca) = CertificateAuthority::load(&cert, &key)
    {
        return Ok(ca);
    }
    // A century: nothing under fuzzing checks the CA's dates, and the seeds should not expire.
    let ca = CertificateAuthority::create(FederationId::new(FEDERATION)?, 36_500)?;
    fs::create_dir_all(dir)?;
    fs::write(&cert, ca.cert_pem())?;
    fs::write(&key, ca.key_pem())?;
    Ok(ca)
}

fn identity(team: &str) -> TeamIdentity {
    TeamIdentity::parse_uri(&format!("spiffe://{FEDERATION}/team/{team}")).expect("team URI")
}

/// A fixed UUIDv7, so the seeds are the same bytes on every run.
fn id(n: u8) -> Uuid {
    Uuid::parse_str(&format!("019a0000-0000-7000-8000-0000000000{n:02x}")).expect("UUIDv7")
}

fn at(offset_secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(AT + offset_secs).expect("a 2026 time")
}

fn text(s: &str) -> String {
    s.to_owned()
}

/// Four referrals: every category under consent, a justified exception with little content, a
/// de-identified consultation, and a forward with provenance, labels and a withheld manifest.
fn referrals() -> Vec<(&'static str, Referral)> {
    let base = Referral {
        id: id(1),
        sender: identity("riverside-mh"),
        recipient: identity("county-core"),
        created_at: at(0),
        purpose: Purpose::ThreatAssessment,
        level_of_concern: Some(LevelOfConcern {
            scheme: text("CSTAG"),
            value: text("serious"),
        }),
        legal_basis: LegalBasis::Consent,
        justification: None,
        consent_ref: Some(id(9).to_string()),
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
                observations: vec![ObservedBehavior {
                    code: text("LEAKAGE"),
                    observed_on: text("2026-09-20"),
                }],
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
    };
    let exception = Referral {
        id: id(2),
        legal_basis: LegalBasis::SeriousImminentThreat,
        justification: Some(text(
            "The student named a date and a target and has access to a firearm at home.",
        )),
        consent_ref: None,
        content: ReferralContent {
            identity: base.content.identity.clone(),
            threat: base.content.threat.clone(),
            ..Default::default()
        },
        ..base.clone()
    };
    let consultation = Referral {
        id: id(3),
        sender: identity("county-core"),
        recipient: identity("fbi-btac"),
        purpose: Purpose::Consultation,
        legal_basis: LegalBasis::DeIdentified,
        consent_ref: None,
        content: ReferralContent {
            behavior: base.content.behavior.clone(),
            ..Default::default()
        },
        case_handle: Some(text("case-0123456789abcdef0123456789abcdef")),
        consultation: Some(ConsultationDetails {
            id: id(4),
            question: text("Is the fixation escalating?"),
            due: Some(at(7 * 86_400)),
        }),
        withheld: vec![Withheld {
            category: tatmx_node::DataCategory::Identity,
            reasons: vec![text("a consultation is de-identified")],
            rules: vec![text("minimization")],
            pseudonymized: true,
        }],
        ..base.clone()
    };
    let forward = Referral {
        id: id(5),
        sender: identity("county-core"),
        recipient: identity("lincoln-high"),
        provenance: vec![Hop {
            team: identity("riverside-mh"),
            at: at(0),
        }],
        labels: [(
            tatmx_node::DataCategory::SubstanceUse,
            vec![text(NO_REDISCLOSURE)],
        )]
        .into(),
        content: ReferralContent {
            mental_health: None,
            ..base.content.clone()
        },
        withheld: vec![Withheld {
            category: tatmx_node::DataCategory::MentalHealth,
            reasons: vec![text("HIPAA: no consent for this recipient")],
            rules: vec![text("hipaa-mental-health")],
            pseudonymized: false,
        }],
        ..base.clone()
    };
    vec![
        ("consent-every-category", base),
        ("serious-threat-justified", exception),
        ("consultation-de-identified", consultation),
        ("forward-with-provenance", forward),
    ]
}

fn status_updates() -> Vec<(&'static str, StatusUpdate)> {
    let accepted = StatusUpdate {
        id: id(10),
        referral_id: id(1),
        author: identity("county-core"),
        status: ReferralStatus::Accepted,
        at: at(60),
        reason: None,
        reason_code: None,
        outcome: None,
        withheld: vec![],
        forwarded_to: None,
    };
    let completed = StatusUpdate {
        id: id(11),
        status: ReferralStatus::Completed,
        at: at(86_400),
        reason: Some(text("Plan in place with the school.")),
        reason_code: None,
        outcome: Some(AssessmentOutcome {
            level_of_concern: Some(LevelOfConcern {
                scheme: text("CSTAG"),
                value: text("low"),
            }),
            management_plan: true,
            advice: String::new(),
            recommendations: vec![text("weekly check-in")],
        }),
        forwarded_to: Some(identity("lincoln-high")),
        ..accepted.clone()
    };
    vec![("accepted", accepted), ("completed", completed)]
}

/// A core team's reassessment with its plan, and a school's supplement answering a question,
/// with a manifest of what its filter withheld.
fn case_messages() -> Vec<(&'static str, CaseMessage)> {
    let reassessment = CaseMessage {
        id: id(30),
        referral_id: id(1),
        author: identity("county-core"),
        at: at(172_800),
        body: CaseBody::Reassessment {
            level_of_concern: Some(LevelOfConcern {
                scheme: text("CSTAG"),
                value: text("transient"),
            }),
            plan: Some(Plan {
                interventions: vec![Intervention {
                    code: InterventionCode::CheckIns,
                    responsible: identity("lincoln-high"),
                }],
                next_reassessment: time::Date::from_calendar_date(2027, time::Month::January, 15)
                    .expect("a date"),
            }),
        },
        labels: Default::default(),
        withheld: vec![],
    };
    let supplement = CaseMessage {
        id: id(31),
        author: identity("riverside-mh"),
        at: at(3_600),
        body: CaseBody::Supplement {
            answers: Some(id(32)),
            content: ReferralContent {
                narrative: Some(Narrative {
                    text: text("Two classmates saw it."),
                }),
                ..Default::default()
            },
        },
        withheld: vec![Withheld {
            category: tatmx_node::DataCategory::EducationRecord,
            reasons: vec![text("FERPA 34 CFR 99.36 needs a health or safety emergency")],
            rules: vec![],
            pseudonymized: false,
        }],
        ..reassessment.clone()
    };
    vec![
        ("reassessment", reassessment),
        ("supplement-with-manifest", supplement),
    ]
}

fn retraction() -> Retraction {
    Retraction {
        id: id(20),
        retraction_id: id(21),
        referral_id: id(1),
        author: identity("riverside-mh"),
        cause: RetractionCause::ConsentRevoked,
        at: at(2 * 86_400),
    }
}

fn retraction_acks() -> Vec<(&'static str, RetractionAck)> {
    let purged = RetractionAck {
        id: id(22),
        retraction_id: id(21),
        purged: Copy {
            team: identity("county-core"),
            referral_id: id(1),
        },
        held: true,
        purged_at: at(2 * 86_400 + 5),
        downstream: vec![Copy {
            team: identity("lincoln-high"),
            referral_id: id(5),
        }],
        author: identity("county-core"),
    };
    let not_held = RetractionAck {
        id: id(23),
        held: false,
        downstream: vec![],
        ..purged.clone()
    };
    vec![("purged-with-downstream", purged), ("not-held", not_held)]
}

fn revoke(serial_hex: &str, reason: RevocationReason) -> RevokedCertificate {
    RevokedCertificate {
        serial_hex: serial_hex.to_owned(),
        revoked_at: OffsetDateTime::now_utc() - time::Duration::hours(1),
        reason,
    }
}

fn member(team: &str, role: &str, discipline: &str) -> Member {
    Member {
        team: team.parse().expect("team id"),
        endpoint: format!("https://{team}.{FEDERATION}:7443"),
        role: role.into(),
        discipline: discipline.into(),
        jurisdiction: "Lincoln County, NE".into(),
        cjis_authorized: role == "core",
        cert_fingerprint_sha256: None,
    }
}

fn directory(
    ca: &CertificateAuthority,
    sequence: u64,
    members: Vec<Member>,
    crl: Option<String>,
) -> Result<Directory, Box<dyn std::error::Error>> {
    Ok(Directory {
        federation: FederationId::new(FEDERATION)?,
        sequence,
        issued_at: at(0),
        members,
        anchors: vec![ca.cert_pem().to_owned()],
        crl,
    })
}

/// The smallest config the node accepts: identity, TLS files and the federation listener.
const MINIMAL_CONFIG: &str = r#"[node]
federation = "county-mdt.example"
team = "lincoln-high"
role = "affiliate"
discipline = "education"
jurisdiction = "Lincoln County"
data_dir = "data"

[tls]
ca = "tls/ca.pem"
cert = "tls/node.pem"
key = "tls/node.key"

[federation_api]
listen = "127.0.0.1:7443"
"#;

/// One rule in the schema's terms, with a `when` clause for the evaluator.
const PERMIT_POLICY: &str = r#"@id("local-threat-to-core")
@reason("threat details may go to the core team")
permit (principal, action == Action::"disclose", resource == Category::"THREAT")
when { context.recipient.role == "core" && context.basis == "consent" };
"#;
