//! The protocol's test vectors, `proto/vectors/v2.json`: the bytes `docs/PROTOCOL.md`
//! specifies, made by the node's own functions, for whoever implements a node in another
//! language.
//!
//! `regenerate` (ignored; `cargo test -p tatmx-node --test protocol_vectors -- --ignored
//! regenerate`) writes the file from fixed messages, keys and times. The other tests read the
//! committed file: every value in it is recomputed with `signing`, `merkle`, `audit`, `version`
//! and `wire` and compared, every signature is verified with `signing::verify`, a flipped byte
//! anywhere is shown to fail the check, and `proto/vectors/check.py`, which uses only Python's
//! standard library, recomputes everything but the signatures from the document alone.
//!
//! ECDSA signatures are randomized, so the check verifies them rather than comparing bytes.
//! Regenerating keeps the committed key pairs and certificates, and every signature that
//! still verifies, so an unchanged protocol regenerates an unchanged file.

#![allow(clippy::unwrap_used)] // fixtures and the generator outside #[test] fns; a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tatmx_certs::{CertificateSummary, TeamIdentity};
use tatmx_node::audit;
use tatmx_node::federation::v2::{BATCH_BYTES, MAX_BATCH_MESSAGES};
use tatmx_node::merkle::{self, Hash};
use tatmx_node::referral::{
    Behavior, EducationRecord, LegalBasis, LevelOfConcern, Narrative, ObservedBehavior, Purpose,
    ReasonCode, Referral, ReferralContent, ReferralStatus, StatusUpdate, ThreatDetails,
};
use tatmx_node::refusal::Reason;
use tatmx_node::signing::{self, MessageKind, NodeSigner};
use tatmx_node::{version, wire};
use time::OffsetDateTime;
use uuid::Uuid;

/// The federation every vector's identities belong to.
const FEDERATION: &str = "lincoln-county-mdt.example";
/// The team that sends the batch: an affiliate (a school).
const SENDER_TEAM: &str = "lincoln-high";
/// The team that receives it: the county's core team.
const RECEIVER_TEAM: &str = "county-core";
/// When the sender signed the batch: 2026-03-02T09:31:00Z.
const SENT_AT_MS: i64 = 1_772_443_860_000;
/// When the receiver received it, 412 ms later.
const RECEIVED_AT_MS: i64 = 1_772_443_860_412;
/// When the sender signed its audit tree head (and its version 1 checkpoint): 09:30:00Z.
const TREE_HEAD_AT_MS: i64 = 1_772_443_800_000;
/// The size of the sender's audit tree at its signed head.
const TREE_HEAD_SIZE: u64 = 7;
/// The audit inclusion proofs given: (leaf index, tree size).
const AUDIT_INCLUSIONS: [(u64, u64); 10] = [
    (0, 1),
    (0, 7),
    (1, 7),
    (2, 7),
    (3, 7),
    (4, 7),
    (5, 7),
    (6, 7),
    (5, 8),
    (7, 8),
];
/// The audit consistency proofs given: (old size, new size). The last two need no hashes.
const AUDIT_CONSISTENCIES: [(u64, u64); 7] =
    [(3, 7), (4, 8), (1, 5), (6, 8), (2, 3), (0, 5), (5, 5)];
/// The reason codes a receipt may give one message; every other code refuses a whole call.
const PER_MESSAGE_REASONS: [Reason; 10] = [
    Reason::InvalidMessage,
    Reason::SenderMismatch,
    Reason::RoleRefused,
    Reason::NotAMember,
    Reason::WrongRecipient,
    Reason::PolicyRefused,
    Reason::TransitionRefused,
    Reason::ConflictingContent,
    Reason::UnknownReferral,
    Reason::UnknownRetraction,
];

/// Where the committed vectors live.
fn vectors_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/vectors/v2.json")
}

fn identity(team: &str) -> TeamIdentity {
    TeamIdentity::parse_uri(&format!("spiffe://{FEDERATION}/team/{team}")).unwrap()
}

fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
}

fn id(text: &str) -> Uuid {
    Uuid::parse_str(text).unwrap()
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// One message of the batch, as its sender's node encodes it, and what the receiver answers.
struct Fixture {
    /// A name for people reading the file.
    name: &'static str,
    kind: MessageKind,
    /// Its message id (the referral's or the update's own id).
    message_id: Uuid,
    /// Its exact bytes: the `tatmx.v1` protobuf encoding, from the domain type through `wire`.
    payload: Vec<u8>,
    /// The outcome byte the receiver gives it.
    outcome: u8,
    /// For a refusal, why.
    reason: Option<Reason>,
}

/// A new referral, accepted.
fn new_referral() -> Referral {
    Referral {
        id: id("019cade2-11c0-7000-8000-000000000001"),
        sender: identity(SENDER_TEAM),
        recipient: identity(RECEIVER_TEAM),
        created_at: at_ms(1_772_443_800_000),
        purpose: Purpose::ThreatAssessment,
        level_of_concern: Some(LevelOfConcern {
            scheme: "NTAC".into(),
            value: "moderate".into(),
        }),
        legal_basis: LegalBasis::SeriousImminentThreat,
        justification: Some("A stated plan with a date, reported to a counsellor today.".into()),
        consent_ref: None,
        content: ReferralContent {
            behavior: Some(Behavior {
                observations: vec![ObservedBehavior {
                    code: "MOB-LEAKAGE".into(),
                    observed_on: "2026-02-27".into(),
                }],
            }),
            threat: Some(ThreatDetails {
                threat_type: "targeted-violence".into(),
                target_type: "school".into(),
                weapons_access: false,
                grievance_code: "GRV-PEER".into(),
            }),
            narrative: Some(Narrative {
                text: "Fictional test vector: a student told a counsellor of a plan.".into(),
            }),
            ..ReferralContent::default()
        },
        labels: Default::default(),
        withheld: Vec::new(),
        case_handle: None,
        consultation: None,
        provenance: Vec::new(),
        consent_scope: None,
    }
}

/// A referral sent earlier whose receipt the sender never got: sent again, a duplicate.
fn earlier_referral() -> Referral {
    Referral {
        id: id("019c9f6a-c2e0-7000-8000-000000000002"),
        sender: identity(SENDER_TEAM),
        recipient: identity(RECEIVER_TEAM),
        created_at: at_ms(1_772_201_100_000),
        purpose: Purpose::ThreatAssessment,
        level_of_concern: None,
        legal_basis: LegalBasis::Consent,
        justification: None,
        consent_ref: Some("CONSENT-2026-0007".into()),
        content: ReferralContent {
            education_record: Some(EducationRecord {
                school: "Lincoln High (fictional)".into(),
                grade: "10".into(),
                iep_or_504: true,
                discipline: Vec::new(),
            }),
            ..ReferralContent::default()
        },
        labels: Default::default(),
        withheld: Vec::new(),
        case_handle: None,
        consultation: None,
        provenance: Vec::new(),
        consent_scope: None,
    }
}

/// The sender cancels a third referral, which the receiver had closed already: refused.
fn cancellation() -> StatusUpdate {
    StatusUpdate {
        id: id("019caddd-7de0-7000-8000-000000000003"),
        referral_id: id("019c9000-0000-7000-8000-000000000004"),
        author: identity(SENDER_TEAM),
        status: ReferralStatus::Cancelled,
        at: at_ms(1_772_443_500_000),
        reason: Some("The district's own team has taken the case.".into()),
        reason_code: Some(ReasonCode::ReferredElsewhere),
        outcome: None,
        withheld: Vec::new(),
        forwarded_to: None,
    }
}

fn fixtures() -> Vec<Fixture> {
    let new = new_referral();
    let earlier = earlier_referral();
    let cancel = cancellation();
    vec![
        Fixture {
            name: "a new referral (accepted)",
            kind: MessageKind::Referral,
            message_id: new.id,
            payload: wire::encode_referral(&new),
            outcome: 1,
            reason: None,
        },
        Fixture {
            name: "a referral sent again after a lost receipt (duplicate)",
            kind: MessageKind::Referral,
            message_id: earlier.id,
            payload: wire::encode_referral(&earlier),
            outcome: 2,
            reason: None,
        },
        Fixture {
            name: "a cancellation of a referral the receiver closed (refused)",
            kind: MessageKind::StatusUpdate,
            message_id: cancel.id,
            payload: wire::encode_status_update(&cancel),
            outcome: 3,
            reason: Some(Reason::TransitionRefused),
        },
    ]
}

/// Decodes `payload` as its kind's domain type and encodes it again: the payload must be the
/// node's own canonical encoding of a valid message.
fn round_trip(kind: MessageKind, payload: &[u8]) -> Result<Vec<u8>, String> {
    let invalid = |e: wire::WireError| format!("the payload is not a valid {}: {e}", kind.as_str());
    match kind {
        MessageKind::Referral => wire::decode_referral(payload)
            .map(|m| wire::encode_referral(&m))
            .map_err(invalid),
        MessageKind::StatusUpdate => wire::decode_status_update(payload)
            .map(|m| wire::encode_status_update(&m))
            .map_err(invalid),
        other => Err(format!("no fixture of kind {}", other.as_str())),
    }
}

/// One audit entry's columns, as the store keeps them (`detail` is JSON text, hashed exactly
/// as stored).
struct AuditColumns {
    seq: u64,
    at_ms: i64,
    kind: &'static str,
    actor: &'static str,
    peer: Option<String>,
    referral_id: Option<&'static str>,
    subject: Option<&'static str>,
    detail: &'static str,
}

impl AuditColumns {
    /// The entry's own hash, as the audit log makes it: SHA-256 of its canonical JSON.
    fn entry_leaf(&self) -> [u8; 32] {
        audit::leaf_hash(
            self.seq,
            self.at_ms,
            self.kind,
            self.actor,
            self.peer.as_deref(),
            self.referral_id,
            self.subject,
            self.detail,
        )
    }

    /// The columns as the vectors carry them, with the entry's hashes.
    fn json(&self) -> Value {
        let canonical = json!([
            self.seq,
            self.at_ms,
            self.kind,
            self.actor,
            self.peer,
            self.referral_id,
            self.subject,
            self.detail
        ])
        .to_string();
        let entry_leaf = self.entry_leaf();
        json!({
            "seq": self.seq,
            "at_ms": self.at_ms,
            "kind": self.kind,
            "actor": self.actor,
            "peer": self.peer,
            "referral_id": self.referral_id,
            "subject": self.subject,
            "detail": self.detail,
            "canonical_json": canonical,
            "entry_leaf": hex::encode(entry_leaf),
            "leaf_hash": hex::encode(merkle::leaf_hash(&entry_leaf)),
        })
    }
}

/// The eight entries of the sender's audit log whose leaves make the audit vectors. The fifth
/// has a detail with non-ASCII text, quotes and a backslash, to pin the JSON escaping.
fn audit_entries() -> Vec<AuditColumns> {
    let core = || Some(identity(RECEIVER_TEAM).uri());
    let referral = Some("019cade2-11c0-7000-8000-000000000001");
    let cancelled = Some("019c9000-0000-7000-8000-000000000004");
    let entry = |seq, at_ms, kind, actor, peer, referral_id, subject, detail| AuditColumns {
        seq,
        at_ms,
        kind,
        actor,
        peer,
        referral_id,
        subject,
        detail,
    };
    vec![
        entry(
            1,
            1_772_200_000_000,
            "trust-change",
            "node",
            None,
            None,
            None,
            r#"{"action":"directory-imported","sequence":4}"#,
        ),
        entry(
            2,
            1_772_201_100_000,
            "disclosure",
            "console staff-17",
            core(),
            Some("019c9f6a-c2e0-7000-8000-000000000002"),
            Some("CASE-2026-0042"),
            r#"{"message":"referral","purpose":"threat-assessment","legal_basis":"consent","categories":["education-record"]}"#,
        ),
        entry(
            3,
            1_772_300_000_000,
            "status-change",
            "spiffe://lincoln-county-mdt.example/team/county-core",
            core(),
            cancelled,
            None,
            r#"{"status":"closed","direction":"received"}"#,
        ),
        entry(
            4,
            1_772_443_500_000,
            "status-change",
            "console staff-17",
            core(),
            cancelled,
            Some("CASE-2026-0031"),
            r#"{"status":"cancelled","direction":"sent","reason_code":"referred-elsewhere"}"#,
        ),
        entry(
            5,
            1_772_443_800_000,
            "disclosure",
            "console staff-17",
            core(),
            referral,
            Some("CASE-2026-0057"),
            r#"{"message":"referral","purpose":"threat-assessment","legal_basis":"serious-imminent-threat","categories":["behavior","threat","narrative","assessment"],"note":"Zoë's \"quoted\" path a/b\\c"}"#,
        ),
        entry(
            6,
            1_772_443_801_000,
            "case-read",
            "console staff-17",
            None,
            referral,
            None,
            "{}",
        ),
        entry(
            7,
            1_772_443_802_000,
            "inbox-read",
            "uid 1000 (chair)",
            None,
            None,
            None,
            r#"{"count":3}"#,
        ),
        entry(
            8,
            1_772_443_900_000,
            "inbound-rejected",
            "spiffe://lincoln-county-mdt.example/team/riverside-mh",
            Some(identity("riverside-mh").uri()),
            None,
            None,
            r#"{"method":"Deliver","code":"PermissionDenied"}"#,
        ),
    ]
}

/// A node's key and certificate for the vectors.
struct NodeKeys {
    identity: TeamIdentity,
    pkcs8: Vec<u8>,
    certificate: Vec<u8>,
}

impl NodeKeys {
    /// The committed key pair of `team` when `existing` holds one, else a new one with a
    /// self-signed certificate carrying the team's SPIFFE URI SAN.
    fn of(existing: Option<&Value>, role: &str, team: &str) -> Self {
        let identity = identity(team);
        let kept = existing.and_then(|v| {
            let node = v.pointer(&format!("/nodes/{role}"))?;
            (node.get("identity")?.as_str()? == identity.uri()).then_some(())?;
            let pkcs8 = hex::decode(node.get("private_key_pkcs8")?.as_str()?).ok()?;
            let certificate = hex::decode(node.get("certificate")?.as_str()?).ok()?;
            Some((pkcs8, certificate))
        });
        let (pkcs8, certificate) = kept.unwrap_or_else(|| {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = rcgen::CertificateParams::default();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, team);
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, FEDERATION);
            params.subject_alt_names =
                vec![rcgen::SanType::URI(identity.uri().try_into().unwrap())];
            params.is_ca = rcgen::IsCa::ExplicitNoCa;
            params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![
                rcgen::ExtendedKeyUsagePurpose::ServerAuth,
                rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let serial: u8 = if role == "sender" { 1 } else { 2 };
            params.serial_number = Some(rcgen::SerialNumber::from(vec![serial]));
            params.not_before = at_ms(1_767_225_600_000); // 2026-01-01
            params.not_after = at_ms(2_082_758_400_000); // 2036-01-01
            let certificate = params.self_signed(&key).unwrap();
            (key.serialize_der(), certificate.der().to_vec())
        });
        Self {
            identity,
            pkcs8,
            certificate,
        }
    }

    fn signer(&self) -> Result<NodeSigner, String> {
        signer(&self.pkcs8, &self.certificate)
    }

    fn json(&self) -> Value {
        json!({
            "identity": self.identity.uri(),
            "private_key_pkcs8": hex::encode(&self.pkcs8),
            "certificate": hex::encode(&self.certificate),
            "certificate_sha256": hex::encode(sha256(&self.certificate)),
        })
    }
}

/// The node's signer over a PKCS#8 key and its certificate, loaded as the node loads its own.
fn signer(pkcs8: &[u8], certificate: &[u8]) -> Result<NodeSigner, String> {
    let der = PrivateKeyDer::try_from(pkcs8.to_vec()).map_err(|e| format!("the key: {e}"))?;
    let key = tatmx_node::tls::provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("the key: {e}"))?;
    NodeSigner::new(key, CertificateDer::from(certificate.to_vec())).map_err(|e| e.to_string())
}

/// A signature over `payload`: the one `existing` holds at `pointer` when it still verifies,
/// so that regenerating an unchanged protocol changes no byte; else a new one.
fn signature(
    existing: Option<&Value>,
    pointer: &str,
    keys: &NodeKeys,
    payload: &[u8],
    with_fingerprint: bool,
) -> Value {
    let kept = existing
        .and_then(|v| v.pointer(&format!("{pointer}/value")))
        .and_then(Value::as_str)
        .and_then(|value| hex::decode(value).ok())
        .filter(|value| signing::verify(&keys.certificate, 1, payload, value).is_ok());
    let value = kept.unwrap_or_else(|| keys.signer().unwrap().sign(payload).unwrap());
    let mut out = json!({
        "scheme": signing::SCHEME_ECDSA_P256_SHA256,
        "value": hex::encode(value),
    });
    if with_fingerprint {
        out["certificate_sha256"] = json!(hex::encode(sha256(&keys.certificate)));
    }
    out
}

fn hex_list(hashes: &[Hash]) -> Value {
    json!(hashes.iter().map(hex::encode).collect::<Vec<_>>())
}

/// The whole vectors document.
fn generate(existing: Option<&Value>) -> Value {
    let sender = NodeKeys::of(existing, "sender", SENDER_TEAM);
    let receiver = NodeKeys::of(existing, "receiver", RECEIVER_TEAM);
    let (from, to) = (sender.identity.uri(), receiver.identity.uri());
    let fixtures = fixtures();

    let digests: Vec<[u8; 32]> = fixtures
        .iter()
        .map(|f| signing::message_digest(f.kind.number(), &f.payload))
        .collect();
    let leaves: Vec<Hash> = digests.iter().map(|d| merkle::leaf_hash(d)).collect();
    let root = merkle::range_hash(&leaves);
    let size = leaves.len() as u64;
    let messages: Vec<Value> = fixtures
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let kind = tatmx_proto::v2::MessageKind::try_from(f.kind.number() as i32).unwrap();
            json!({
                "name": f.name,
                "kind": kind.as_str_name(),
                "kind_number": f.kind.number(),
                "message_id": f.message_id.to_string(),
                "payload": hex::encode(&f.payload),
                "digest_input": hex::encode(signing::frame_v2(
                    "message",
                    &[&f.kind.number().to_be_bytes(), &f.payload],
                )),
                "digest": hex::encode(digests[i]),
                "leaf_hash": hex::encode(leaves[i]),
                "inclusion_path": hex_list(&merkle::inclusion_proof(&leaves, i as u64)),
            })
        })
        .collect();

    let batch_payload = signing::batch_payload(&from, &to, SENT_AT_MS, &root);
    let outcomes: Vec<u8> = fixtures.iter().map(|f| f.outcome).collect();
    let results: Vec<Value> = fixtures
        .iter()
        .map(|f| {
            let outcome = tatmx_proto::v2::Outcome::try_from(i32::from(f.outcome)).unwrap();
            match f.reason {
                Some(reason) => {
                    json!({"outcome": outcome.as_str_name(), "reason": reason.as_str()})
                }
                None => json!({"outcome": outcome.as_str_name()}),
            }
        })
        .collect();
    let receipt_payload =
        signing::batch_receipt_payload(&to, &from, RECEIVED_AT_MS, &root, &outcomes);
    let batch_signature = signature(existing, "/batch/signature", &sender, &batch_payload, true);
    let receipt_signature = signature(
        existing,
        "/receipt/signature",
        &receiver,
        &receipt_payload,
        true,
    );
    let proofs: Vec<Value> = fixtures
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({
                "message": i,
                "digest": hex::encode(digests[i]),
                "root": hex::encode(root),
                "index": i,
                "size": size,
                "path": hex_list(&merkle::inclusion_proof(&leaves, i as u64)),
                "sender": from,
                "recipient": to,
                "sent_at_ms": SENT_AT_MS,
                "batch_signature": batch_signature["value"],
                "sender_certificate_sha256": hex::encode(sha256(&sender.certificate)),
                "received_at_ms": RECEIVED_AT_MS,
                "outcomes": hex::encode(&outcomes),
                "receipt_signature": receipt_signature["value"],
                "receiver_certificate_sha256": hex::encode(sha256(&receiver.certificate)),
                "acknowledged": matches!(f.outcome, 1 | 2),
            })
        })
        .collect();

    let entries = audit_entries();
    let entry_json: Vec<Value> = entries.iter().map(AuditColumns::json).collect();
    let audit_leaves: Vec<Hash> = entries
        .iter()
        .map(|entry| merkle::leaf_hash(&entry.entry_leaf()))
        .collect();
    let roots: Vec<Value> = (0..=audit_leaves.len())
        .map(|n| json!({"size": n, "root": hex::encode(merkle::range_hash(&audit_leaves[..n]))}))
        .collect();
    let inclusions: Vec<Value> = AUDIT_INCLUSIONS
        .iter()
        .map(|&(index, size)| {
            json!({
                "index": index,
                "size": size,
                "leaf_hash": hex::encode(audit_leaves[index as usize]),
                "root": hex::encode(merkle::range_hash(&audit_leaves[..size as usize])),
                "path": hex_list(&merkle::inclusion_proof(&audit_leaves[..size as usize], index)),
            })
        })
        .collect();
    let consistencies: Vec<Value> = AUDIT_CONSISTENCIES
        .iter()
        .map(|&(old, new)| {
            json!({
                "old_size": old,
                "new_size": new,
                "old_root": hex::encode(merkle::range_hash(&audit_leaves[..old as usize])),
                "new_root": hex::encode(merkle::range_hash(&audit_leaves[..new as usize])),
                "proof": hex_list(&merkle::consistency_proof(&audit_leaves[..new as usize], old)),
            })
        })
        .collect();
    let head_root = merkle::range_hash(&audit_leaves[..TREE_HEAD_SIZE as usize]);
    let head_payload =
        signing::tree_head_payload(&from, TREE_HEAD_SIZE, &head_root, TREE_HEAD_AT_MS);

    // Version 1, for comparison: the first message as version 1 signs and receipts it, and
    // the hash chain's checkpoint over the same audit entries.
    let first = &fixtures[0];
    let v1_digest = sha256(&first.payload);
    let v1_message = signing::message_payload(first.kind.as_str(), &first.payload);
    let v1_receipt =
        signing::receipt_payload(&first.message_id.to_string(), &v1_digest, RECEIVED_AT_MS);
    let mut chain = audit::GENESIS;
    let mut heads = Vec::new();
    for entry in &entries {
        chain = audit::chain_hash(&chain, &entry.entry_leaf());
        heads.push(hex::encode(chain));
    }
    let head = &heads[TREE_HEAD_SIZE as usize - 1];
    let v1_checkpoint = signing::checkpoint_payload(
        &from,
        TREE_HEAD_SIZE,
        &hex::decode(head).unwrap(),
        TREE_HEAD_AT_MS,
    );

    json!({
        "about": "Test vectors of the tatmx federation protocol, version 2 (and version 1's layouts, legacy). \
                  docs/PROTOCOL.md specifies every value. Byte strings are lowercase hex; times are Unix \
                  milliseconds. ECDSA signatures are randomized: verify them, do not compare them. \
                  proto/vectors/check.py recomputes every value but the signatures with Python's standard library. \
                  The keys are for these vectors only. The people and cases are fictional.",
        "generated_by": "cargo test -p tatmx-node --test protocol_vectors -- --ignored regenerate",
        "nodes": {
            "sender": sender.json(),
            "receiver": receiver.json(),
        },
        "messages": messages,
        "batch": {
            "sender": from,
            "recipient": to,
            "sent_at_ms": SENT_AT_MS,
            "leaves": hex_list(&leaves),
            "root": hex::encode(root),
            "payload": hex::encode(&batch_payload),
            "signature": batch_signature,
        },
        "receipt": {
            "receiver": to,
            "sender": from,
            "received_at_ms": RECEIVED_AT_MS,
            "root": hex::encode(root),
            "results": results,
            "outcomes": hex::encode(&outcomes),
            "payload": hex::encode(&receipt_payload),
            "signature": receipt_signature,
        },
        "proofs": proofs,
        "audit_log": {
            "team": from,
            "entries": entry_json,
            "roots": roots,
            "inclusion": inclusions,
            "consistency": consistencies,
            "tree_head": {
                "team": from,
                "tree_size": TREE_HEAD_SIZE,
                "root": hex::encode(head_root),
                "at_ms": TREE_HEAD_AT_MS,
                "payload": hex::encode(&head_payload),
                "signature": signature(existing, "/audit_log/tree_head/signature", &sender, &head_payload, true),
            },
        },
        "version_negotiation": {
            "ours": tatmx_proto::PROTOCOL_VERSIONS,
            "cases": [
                {"theirs": [1, 2], "agreed": 2},
                {"theirs": [2], "agreed": 2},
                {"theirs": [2, 1], "agreed": 2},
                {"theirs": [1], "agreed": 1},
                {"theirs": [], "agreed": 1},
                {"theirs": [1, 2, 3], "agreed": 2},
                {"theirs": [3, 2], "agreed": 2},
                {"theirs": [3, 4], "agreed": null},
            ],
        },
        "v1": {
            "message": 0,
            "kind": first.kind.as_str(),
            "message_id": first.message_id.to_string(),
            "digest": hex::encode(&v1_digest),
            "message_payload": hex::encode(&v1_message),
            "message_signature": signature(existing, "/v1/message_signature", &sender, &v1_message, false),
            "received_at_ms": RECEIVED_AT_MS,
            "receipt_payload": hex::encode(&v1_receipt),
            "receipt_signature": signature(existing, "/v1/receipt_signature", &receiver, &v1_receipt, false),
            "chain_heads": heads,
            "checkpoint": {
                "team": from,
                "seq": TREE_HEAD_SIZE,
                "head_hash": head,
                "at_ms": TREE_HEAD_AT_MS,
                "payload": hex::encode(&v1_checkpoint),
                "signature": signature(existing, "/v1/checkpoint/signature", &sender, &v1_checkpoint, false),
            },
        },
    })
}

// ---- reading the document ----

fn at<'a>(v: &'a Value, pointer: &str) -> Result<&'a Value, String> {
    v.pointer(pointer)
        .ok_or_else(|| format!("{pointer}: missing"))
}

fn text<'a>(v: &'a Value, pointer: &str) -> Result<&'a str, String> {
    at(v, pointer)?
        .as_str()
        .ok_or_else(|| format!("{pointer}: not a string"))
}

fn bytes(v: &Value, pointer: &str) -> Result<Vec<u8>, String> {
    hex::decode(text(v, pointer)?).map_err(|e| format!("{pointer}: not hex: {e}"))
}

fn hash(v: &Value, pointer: &str) -> Result<Hash, String> {
    bytes(v, pointer)?
        .try_into()
        .map_err(|_| format!("{pointer}: not 32 bytes"))
}

fn hashes(v: &Value, pointer: &str) -> Result<Vec<Hash>, String> {
    let list = at(v, pointer)?
        .as_array()
        .ok_or_else(|| format!("{pointer}: not a list"))?;
    (0..list.len())
        .map(|i| hash(v, &format!("{pointer}/{i}")))
        .collect()
}

fn uint(v: &Value, pointer: &str) -> Result<u64, String> {
    at(v, pointer)?
        .as_u64()
        .ok_or_else(|| format!("{pointer}: not an unsigned integer"))
}

fn int(v: &Value, pointer: &str) -> Result<i64, String> {
    at(v, pointer)?
        .as_i64()
        .ok_or_else(|| format!("{pointer}: not an integer"))
}

fn count(v: &Value, pointer: &str) -> Result<usize, String> {
    Ok(at(v, pointer)?
        .as_array()
        .ok_or_else(|| format!("{pointer}: not a list"))?
        .len())
}

/// Counts the checks made, and says which failed.
#[derive(Default)]
struct Checks(usize);

impl Checks {
    fn equal<T: PartialEq + std::fmt::Debug>(
        &mut self,
        what: &str,
        got: T,
        want: T,
    ) -> Result<(), String> {
        self.0 += 1;
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "{what}: the file has {got:?}, the node makes {want:?}"
            ))
        }
    }

    fn bytes(&mut self, what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
        self.equal(what, hex::encode(got), hex::encode(want))
    }

    fn holds(
        &mut self,
        what: &str,
        result: Result<(), impl std::fmt::Display>,
    ) -> Result<(), String> {
        self.0 += 1;
        result.map_err(|e| format!("{what}: {e}"))
    }

    /// The signature at `pointer` verifies over `payload` with `certificate`, by scheme 1, and
    /// names that certificate by its SHA-256 when `with_fingerprint`.
    fn signature(
        &mut self,
        v: &Value,
        pointer: &str,
        certificate: &[u8],
        payload: &[u8],
        with_fingerprint: bool,
    ) -> Result<(), String> {
        let scheme = uint(v, &format!("{pointer}/scheme"))?;
        self.equal(
            &format!("{pointer}/scheme"),
            scheme,
            u64::from(signing::SCHEME_ECDSA_P256_SHA256),
        )?;
        if with_fingerprint {
            self.bytes(
                &format!("{pointer}/certificate_sha256"),
                &bytes(v, &format!("{pointer}/certificate_sha256"))?,
                &sha256(certificate),
            )?;
        }
        let value = bytes(v, &format!("{pointer}/value"))?;
        self.holds(
            &format!("{pointer}/value"),
            signing::verify(certificate, scheme as u32, payload, &value),
        )
    }
}

/// A node's key pair and certificate as the file gives them, checked: the certificate proves
/// the identity, its fingerprint is given right, and the key is the certificate's.
fn check_node(v: &Value, role: &str, team: &str, checks: &mut Checks) -> Result<Vec<u8>, String> {
    let base = format!("/nodes/{role}");
    let uri = text(v, &format!("{base}/identity"))?;
    checks.equal(
        &format!("{base}/identity"),
        uri,
        identity(team).uri().as_str(),
    )?;
    let certificate = bytes(v, &format!("{base}/certificate"))?;
    let summary = CertificateSummary::from_der(&certificate)
        .map_err(|e| format!("{base}/certificate: {e}"))?;
    checks.equal(
        &format!("{base}/certificate identity"),
        summary.identity.map(|i| i.uri()),
        Some(uri.to_owned()),
    )?;
    checks.bytes(
        &format!("{base}/certificate_sha256"),
        &bytes(v, &format!("{base}/certificate_sha256"))?,
        &sha256(&certificate),
    )?;
    let signer = signer(
        &bytes(v, &format!("{base}/private_key_pkcs8"))?,
        &certificate,
    )?;
    let probe = signing::frame_v2("probe", &[uri.as_bytes()]);
    let signed = signer.sign(&probe).map_err(|e| format!("{base}: {e}"))?;
    checks.holds(
        &format!("{base}/private_key_pkcs8 is the certificate's key"),
        signing::verify(&certificate, 1, &probe, &signed),
    )?;
    Ok(certificate)
}

/// Checks every value of the vectors document against the node; the number of checks made.
fn check(v: &Value) -> Result<usize, String> {
    let mut checks = Checks::default();
    let sender_cert = check_node(v, "sender", SENDER_TEAM, &mut checks)?;
    let receiver_cert = check_node(v, "receiver", RECEIVER_TEAM, &mut checks)?;
    let (from, to) = (identity(SENDER_TEAM).uri(), identity(RECEIVER_TEAM).uri());

    // The messages and their digests.
    let fixtures = fixtures();
    checks.equal("/messages count", count(v, "/messages")?, fixtures.len())?;
    let mut leaves = Vec::new();
    let mut payloads = Vec::new();
    let mut total = 0;
    for (i, f) in fixtures.iter().enumerate() {
        let base = format!("/messages/{i}");
        checks.equal(
            &format!("{base}/name"),
            text(v, &format!("{base}/name"))?,
            f.name,
        )?;
        let number = uint(v, &format!("{base}/kind_number"))?;
        checks.equal(
            &format!("{base}/kind_number"),
            number,
            u64::from(f.kind.number()),
        )?;
        let number = number as u32;
        checks.equal(
            &format!("{base}/kind_number names the kind"),
            MessageKind::from_number(number),
            Some(f.kind),
        )?;
        let kind = tatmx_proto::v2::MessageKind::try_from(number as i32)
            .map_err(|e| format!("{base}/kind_number: {e}"))?;
        checks.equal(
            &format!("{base}/kind"),
            text(v, &format!("{base}/kind"))?,
            kind.as_str_name(),
        )?;
        checks.equal(
            &format!("{base}/message_id"),
            text(v, &format!("{base}/message_id"))?,
            f.message_id.to_string().as_str(),
        )?;
        let payload = bytes(v, &format!("{base}/payload"))?;
        checks.bytes(&format!("{base}/payload"), &payload, &f.payload)?;
        checks.bytes(
            &format!("{base}/payload decoded and encoded again"),
            &round_trip(f.kind, &payload)?,
            &payload,
        )?;
        let framed = signing::frame_v2("message", &[&number.to_be_bytes(), &payload]);
        checks.bytes(
            &format!("{base}/digest_input"),
            &bytes(v, &format!("{base}/digest_input"))?,
            &framed,
        )?;
        let digest = signing::message_digest(number, &payload);
        checks.bytes(
            &format!("{base}/digest is SHA-256 of digest_input"),
            &digest,
            &sha256(&framed),
        )?;
        checks.bytes(
            &format!("{base}/digest"),
            &bytes(v, &format!("{base}/digest"))?,
            &digest,
        )?;
        let leaf = merkle::leaf_hash(&digest);
        checks.bytes(
            &format!("{base}/leaf_hash"),
            &bytes(v, &format!("{base}/leaf_hash"))?,
            &leaf,
        )?;
        leaves.push(leaf);
        total += payload.len();
        payloads.push((number, payload));
    }
    let size = leaves.len() as u64;
    checks.holds(
        "the batch's size",
        if (1..=MAX_BATCH_MESSAGES).contains(&leaves.len()) && total <= BATCH_BYTES {
            Ok(())
        } else {
            Err("outside the limits")
        },
    )?;
    let root = merkle::range_hash(&leaves);
    for i in 0..leaves.len() {
        let pointer = format!("/messages/{i}/inclusion_path");
        let path = hashes(v, &pointer)?;
        checks.equal(
            &pointer,
            hex_list(&path),
            hex_list(&merkle::inclusion_proof(&leaves, i as u64)),
        )?;
        checks.holds(
            &pointer,
            merkle::verify_inclusion(&leaves[i], i as u64, size, &path, &root),
        )?;
    }

    // The batch.
    checks.equal("/batch/sender", text(v, "/batch/sender")?, from.as_str())?;
    checks.equal(
        "/batch/recipient",
        text(v, "/batch/recipient")?,
        to.as_str(),
    )?;
    checks.equal(
        "/batch/sent_at_ms",
        int(v, "/batch/sent_at_ms")?,
        SENT_AT_MS,
    )?;
    checks.equal(
        "/batch/leaves",
        hex_list(&hashes(v, "/batch/leaves")?),
        hex_list(&leaves),
    )?;
    checks.bytes("/batch/root", &hash(v, "/batch/root")?, &root)?;
    let batch_payload = signing::batch_payload(&from, &to, SENT_AT_MS, &root);
    checks.bytes(
        "/batch/payload",
        &bytes(v, "/batch/payload")?,
        &batch_payload,
    )?;
    checks.signature(v, "/batch/signature", &sender_cert, &batch_payload, true)?;

    // The receipt.
    checks.equal(
        "/receipt/receiver",
        text(v, "/receipt/receiver")?,
        to.as_str(),
    )?;
    checks.equal(
        "/receipt/sender",
        text(v, "/receipt/sender")?,
        from.as_str(),
    )?;
    checks.equal(
        "/receipt/received_at_ms",
        int(v, "/receipt/received_at_ms")?,
        RECEIVED_AT_MS,
    )?;
    checks.bytes("/receipt/root", &hash(v, "/receipt/root")?, &root)?;
    checks.equal(
        "/receipt/results count",
        count(v, "/receipt/results")?,
        fixtures.len(),
    )?;
    let mut outcomes = Vec::new();
    for (i, f) in fixtures.iter().enumerate() {
        let base = format!("/receipt/results/{i}");
        let name = text(v, &format!("{base}/outcome"))?;
        let outcome = tatmx_proto::v2::Outcome::from_str_name(name)
            .ok_or_else(|| format!("{base}/outcome: {name} is not an outcome"))?;
        checks.equal(
            &format!("{base}/outcome"),
            outcome as i32,
            i32::from(f.outcome),
        )?;
        outcomes.push(outcome as i32 as u8);
        let reason = v.pointer(&format!("{base}/reason")).and_then(Value::as_str);
        checks.equal(
            &format!("{base}/reason"),
            reason,
            f.reason.map(Reason::as_str),
        )?;
        if let Some(reason) = reason {
            let reason: Reason = reason.parse().map_err(|e| format!("{base}/reason: {e}"))?;
            checks.equal(
                &format!("{base}/reason is one a message may get"),
                PER_MESSAGE_REASONS.contains(&reason),
                true,
            )?;
        }
    }
    checks.bytes(
        "/receipt/outcomes",
        &bytes(v, "/receipt/outcomes")?,
        &outcomes,
    )?;
    let receipt_payload =
        signing::batch_receipt_payload(&to, &from, RECEIVED_AT_MS, &root, &outcomes);
    checks.bytes(
        "/receipt/payload",
        &bytes(v, "/receipt/payload")?,
        &receipt_payload,
    )?;
    checks.signature(
        v,
        "/receipt/signature",
        &receiver_cert,
        &receipt_payload,
        true,
    )?;

    // Each message's proof, verified offline as docs/PROTOCOL.md says, from its own fields.
    checks.equal("/proofs count", count(v, "/proofs")?, fixtures.len())?;
    for (i, f) in fixtures.iter().enumerate() {
        let base = format!("/proofs/{i}");
        let message = uint(v, &format!("{base}/message"))? as usize;
        checks.equal(&format!("{base}/message"), message, i)?;
        let (number, payload) = &payloads[message];
        let digest = hash(v, &format!("{base}/digest"))?;
        checks.bytes(
            &format!("{base}/digest"),
            &digest,
            &signing::message_digest(*number, payload),
        )?;
        let proof_root = hash(v, &format!("{base}/root"))?;
        let index = uint(v, &format!("{base}/index"))?;
        let proof_size = uint(v, &format!("{base}/size"))?;
        checks.equal(&format!("{base}/index"), index, i as u64)?;
        checks.holds(
            &format!("{base}/path"),
            merkle::verify_inclusion(
                &merkle::leaf_hash(&digest),
                index,
                proof_size,
                &hashes(v, &format!("{base}/path"))?,
                &proof_root,
            ),
        )?;
        let sender = text(v, &format!("{base}/sender"))?;
        let recipient = text(v, &format!("{base}/recipient"))?;
        let sent_at = int(v, &format!("{base}/sent_at_ms"))?;
        checks.bytes(
            &format!("{base}/sender_certificate_sha256"),
            &bytes(v, &format!("{base}/sender_certificate_sha256"))?,
            &sha256(&sender_cert),
        )?;
        checks.holds(
            &format!("{base}/batch_signature"),
            signing::verify(
                &sender_cert,
                1,
                &signing::batch_payload(sender, recipient, sent_at, &proof_root),
                &bytes(v, &format!("{base}/batch_signature"))?,
            ),
        )?;
        let received_at = int(v, &format!("{base}/received_at_ms"))?;
        let proof_outcomes = bytes(v, &format!("{base}/outcomes"))?;
        checks.bytes(
            &format!("{base}/receiver_certificate_sha256"),
            &bytes(v, &format!("{base}/receiver_certificate_sha256"))?,
            &sha256(&receiver_cert),
        )?;
        checks.holds(
            &format!("{base}/receipt_signature"),
            signing::verify(
                &receiver_cert,
                1,
                &signing::batch_receipt_payload(
                    recipient,
                    sender,
                    received_at,
                    &proof_root,
                    &proof_outcomes,
                ),
                &bytes(v, &format!("{base}/receipt_signature"))?,
            ),
        )?;
        checks.equal(
            &format!("{base}/outcomes has one per message"),
            proof_outcomes.len() as u64,
            proof_size,
        )?;
        let acknowledged = matches!(proof_outcomes.get(index as usize), Some(1 | 2));
        checks.equal(
            &format!("{base}/acknowledged"),
            at(v, &format!("{base}/acknowledged"))?.as_bool(),
            Some(acknowledged),
        )?;
        checks.equal(
            &format!("{base} acknowledged as the fixture"),
            acknowledged,
            f.outcome != 3,
        )?;
    }

    // The audit log: entries, leaves, roots, proofs, and the signed tree head.
    checks.equal(
        "/audit_log/team",
        text(v, "/audit_log/team")?,
        from.as_str(),
    )?;
    let entries = audit_entries();
    checks.equal(
        "/audit_log/entries count",
        count(v, "/audit_log/entries")?,
        entries.len(),
    )?;
    let mut audit_leaves = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let base = format!("/audit_log/entries/{i}");
        let want = entry.json();
        let got = at(v, &base)?;
        for key in [
            "seq",
            "at_ms",
            "kind",
            "actor",
            "peer",
            "referral_id",
            "subject",
            "detail",
        ] {
            checks.equal(&format!("{base}/{key}"), got.get(key), want.get(key))?;
        }
        let canonical = text(v, &format!("{base}/canonical_json"))?;
        checks.equal(
            &format!("{base}/canonical_json"),
            Some(canonical),
            want["canonical_json"].as_str(),
        )?;
        let entry_leaf = hash(v, &format!("{base}/entry_leaf"))?;
        checks.bytes(
            &format!("{base}/entry_leaf is SHA-256 of canonical_json"),
            &entry_leaf,
            &sha256(canonical.as_bytes()),
        )?;
        checks.bytes(
            &format!("{base}/entry_leaf"),
            &entry_leaf,
            &entry.entry_leaf(),
        )?;
        let leaf = merkle::leaf_hash(&entry_leaf);
        checks.bytes(
            &format!("{base}/leaf_hash"),
            &hash(v, &format!("{base}/leaf_hash"))?,
            &leaf,
        )?;
        audit_leaves.push(leaf);
    }
    checks.equal(
        "/audit_log/roots count",
        count(v, "/audit_log/roots")?,
        audit_leaves.len() + 1,
    )?;
    for n in 0..=audit_leaves.len() {
        let base = format!("/audit_log/roots/{n}");
        checks.equal(
            &format!("{base}/size"),
            uint(v, &format!("{base}/size"))?,
            n as u64,
        )?;
        checks.bytes(
            &format!("{base}/root"),
            &hash(v, &format!("{base}/root"))?,
            &merkle::range_hash(&audit_leaves[..n]),
        )?;
    }
    checks.equal(
        "/audit_log/inclusion count",
        count(v, "/audit_log/inclusion")?,
        AUDIT_INCLUSIONS.len(),
    )?;
    for (i, &(index, size)) in AUDIT_INCLUSIONS.iter().enumerate() {
        let base = format!("/audit_log/inclusion/{i}");
        checks.equal(
            &format!("{base}/index"),
            uint(v, &format!("{base}/index"))?,
            index,
        )?;
        checks.equal(
            &format!("{base}/size"),
            uint(v, &format!("{base}/size"))?,
            size,
        )?;
        let tree = &audit_leaves[..size as usize];
        let leaf = hash(v, &format!("{base}/leaf_hash"))?;
        checks.bytes(&format!("{base}/leaf_hash"), &leaf, &tree[index as usize])?;
        let root = hash(v, &format!("{base}/root"))?;
        checks.bytes(&format!("{base}/root"), &root, &merkle::range_hash(tree))?;
        let path = hashes(v, &format!("{base}/path"))?;
        checks.equal(
            &format!("{base}/path"),
            hex_list(&path),
            hex_list(&merkle::inclusion_proof(tree, index)),
        )?;
        checks.holds(
            &format!("{base}/path verifies"),
            merkle::verify_inclusion(&leaf, index, size, &path, &root),
        )?;
    }
    checks.equal(
        "/audit_log/consistency count",
        count(v, "/audit_log/consistency")?,
        AUDIT_CONSISTENCIES.len(),
    )?;
    for (i, &(old, new)) in AUDIT_CONSISTENCIES.iter().enumerate() {
        let base = format!("/audit_log/consistency/{i}");
        checks.equal(
            &format!("{base}/old_size"),
            uint(v, &format!("{base}/old_size"))?,
            old,
        )?;
        checks.equal(
            &format!("{base}/new_size"),
            uint(v, &format!("{base}/new_size"))?,
            new,
        )?;
        let old_root = hash(v, &format!("{base}/old_root"))?;
        let new_root = hash(v, &format!("{base}/new_root"))?;
        checks.bytes(
            &format!("{base}/old_root"),
            &old_root,
            &merkle::range_hash(&audit_leaves[..old as usize]),
        )?;
        checks.bytes(
            &format!("{base}/new_root"),
            &new_root,
            &merkle::range_hash(&audit_leaves[..new as usize]),
        )?;
        let proof = hashes(v, &format!("{base}/proof"))?;
        checks.equal(
            &format!("{base}/proof"),
            hex_list(&proof),
            hex_list(&merkle::consistency_proof(
                &audit_leaves[..new as usize],
                old,
            )),
        )?;
        checks.holds(
            &format!("{base}/proof verifies"),
            merkle::verify_consistency(old, new, &old_root, &new_root, &proof),
        )?;
    }
    let base = "/audit_log/tree_head";
    checks.equal(
        &format!("{base}/team"),
        text(v, &format!("{base}/team"))?,
        from.as_str(),
    )?;
    checks.equal(
        &format!("{base}/tree_size"),
        uint(v, &format!("{base}/tree_size"))?,
        TREE_HEAD_SIZE,
    )?;
    checks.equal(
        &format!("{base}/at_ms"),
        int(v, &format!("{base}/at_ms"))?,
        TREE_HEAD_AT_MS,
    )?;
    let head_root = merkle::range_hash(&audit_leaves[..TREE_HEAD_SIZE as usize]);
    checks.bytes(
        &format!("{base}/root"),
        &hash(v, &format!("{base}/root"))?,
        &head_root,
    )?;
    let head_payload =
        signing::tree_head_payload(&from, TREE_HEAD_SIZE, &head_root, TREE_HEAD_AT_MS);
    checks.bytes(
        &format!("{base}/payload"),
        &bytes(v, &format!("{base}/payload"))?,
        &head_payload,
    )?;
    checks.signature(
        v,
        &format!("{base}/signature"),
        &sender_cert,
        &head_payload,
        true,
    )?;

    // Version negotiation.
    let ours: Vec<u32> = serde_json::from_value(at(v, "/version_negotiation/ours")?.clone())
        .map_err(|e| format!("/version_negotiation/ours: {e}"))?;
    checks.equal(
        "/version_negotiation/ours",
        ours.as_slice(),
        tatmx_proto::PROTOCOL_VERSIONS,
    )?;
    let cases = count(v, "/version_negotiation/cases")?;
    checks.holds(
        "/version_negotiation/cases",
        if cases >= 5 { Ok(()) } else { Err("too few") },
    )?;
    for i in 0..cases {
        let base = format!("/version_negotiation/cases/{i}");
        let theirs: Vec<u32> = serde_json::from_value(at(v, &format!("{base}/theirs"))?.clone())
            .map_err(|e| format!("{base}/theirs: {e}"))?;
        let agreed: Option<u32> = serde_json::from_value(at(v, &format!("{base}/agreed"))?.clone())
            .map_err(|e| format!("{base}/agreed: {e}"))?;
        checks.equal(&format!("{base}/agreed"), agreed, version::agree(&theirs))?;
    }

    // Version 1, legacy.
    let first = &fixtures[0];
    checks.equal("/v1/message", uint(v, "/v1/message")?, 0)?;
    checks.equal("/v1/kind", text(v, "/v1/kind")?, first.kind.as_str())?;
    checks.equal(
        "/v1/message_id",
        text(v, "/v1/message_id")?,
        first.message_id.to_string().as_str(),
    )?;
    let v1_digest = sha256(&first.payload);
    checks.bytes("/v1/digest", &bytes(v, "/v1/digest")?, &v1_digest)?;
    let v1_message = signing::message_payload(first.kind.as_str(), &first.payload);
    checks.bytes(
        "/v1/message_payload",
        &bytes(v, "/v1/message_payload")?,
        &v1_message,
    )?;
    checks.signature(v, "/v1/message_signature", &sender_cert, &v1_message, false)?;
    checks.equal(
        "/v1/received_at_ms",
        int(v, "/v1/received_at_ms")?,
        RECEIVED_AT_MS,
    )?;
    let v1_receipt =
        signing::receipt_payload(&first.message_id.to_string(), &v1_digest, RECEIVED_AT_MS);
    checks.bytes(
        "/v1/receipt_payload",
        &bytes(v, "/v1/receipt_payload")?,
        &v1_receipt,
    )?;
    checks.signature(
        v,
        "/v1/receipt_signature",
        &receiver_cert,
        &v1_receipt,
        false,
    )?;
    checks.equal(
        "/v1/chain_heads count",
        count(v, "/v1/chain_heads")?,
        entries.len(),
    )?;
    let mut chain = audit::GENESIS;
    for (i, entry) in entries.iter().enumerate() {
        chain = audit::chain_hash(&chain, &entry.entry_leaf());
        checks.bytes(
            &format!("/v1/chain_heads/{i}"),
            &hash(v, &format!("/v1/chain_heads/{i}"))?,
            &chain,
        )?;
    }
    let head = hash(v, &format!("/v1/chain_heads/{}", TREE_HEAD_SIZE - 1))?;
    checks.equal(
        "/v1/checkpoint/team",
        text(v, "/v1/checkpoint/team")?,
        from.as_str(),
    )?;
    checks.equal(
        "/v1/checkpoint/seq",
        uint(v, "/v1/checkpoint/seq")?,
        TREE_HEAD_SIZE,
    )?;
    checks.bytes(
        "/v1/checkpoint/head_hash",
        &hash(v, "/v1/checkpoint/head_hash")?,
        &head,
    )?;
    checks.equal(
        "/v1/checkpoint/at_ms",
        int(v, "/v1/checkpoint/at_ms")?,
        TREE_HEAD_AT_MS,
    )?;
    let v1_checkpoint = signing::checkpoint_payload(&from, TREE_HEAD_SIZE, &head, TREE_HEAD_AT_MS);
    checks.bytes(
        "/v1/checkpoint/payload",
        &bytes(v, "/v1/checkpoint/payload")?,
        &v1_checkpoint,
    )?;
    checks.signature(
        v,
        "/v1/checkpoint/signature",
        &sender_cert,
        &v1_checkpoint,
        false,
    )?;

    Ok(checks.0)
}

fn committed() -> Value {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run the ignored `regenerate` test", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Writes `proto/vectors/v2.json`, keeping its key pairs and still-valid signatures.
#[test]
#[ignore = "writes proto/vectors/v2.json; run it when the protocol's bytes change on purpose"]
fn regenerate() {
    let path = vectors_path();
    let existing = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok());
    let vectors = generate(existing.as_ref());
    let checked = check(&vectors).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&vectors).unwrap() + "\n",
    )
    .unwrap();
    println!("wrote {} ({checked} checks hold)", path.display());
}

#[test]
fn the_committed_vectors_hold_for_this_node() {
    let checked = check(&committed()).unwrap_or_else(|problem| panic!("{problem}"));
    println!("{checked} checks hold");
}

#[test]
fn the_committed_vectors_are_what_the_generator_makes() {
    // Regenerating from the committed file keeps its keys and its signatures, so an unchanged
    // protocol gives an unchanged file; a difference means the bytes changed.
    let vectors = committed();
    if let Some(pointer) = first_difference(&generate(Some(&vectors)), &vectors, String::new()) {
        panic!("{pointer}: the generator makes another value than the file holds");
    }
}

/// The JSON pointer of the first value where `a` and `b` differ.
fn first_difference(a: &Value, b: &Value, pointer: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.keys()
                .chain(y.keys())
                .find_map(|key| match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) => first_difference(p, q, format!("{pointer}/{key}")),
                    _ => Some(format!("{pointer}/{key}")),
                })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, format!("{pointer}/{i}"))),
        _ => (a != b).then_some(pointer),
    }
}

/// Every hex string and every number in the document, as a JSON pointer, except the peers'
/// announced versions: a changed announcement is another case, not a wrong answer.
fn values(v: &Value, pointer: String, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (key, value) in map {
                values(value, format!("{pointer}/{key}"), out);
            }
        }
        Value::Array(list) if !pointer.ends_with("/theirs") => {
            for (i, value) in list.iter().enumerate() {
                values(value, format!("{pointer}/{i}"), out);
            }
        }
        Value::String(s) if !s.is_empty() && s.len() % 2 == 0 && hex::decode(s).is_ok() => {
            out.push(pointer)
        }
        Value::Number(_) => out.push(pointer),
        _ => {}
    }
}

#[test]
fn changing_any_byte_or_number_fails_the_check() {
    let vectors = committed();
    let mut pointers = Vec::new();
    values(&vectors, String::new(), &mut pointers);
    assert!(pointers.len() > 150, "only {} values found", pointers.len());
    let mut tried = 0;
    for pointer in &pointers {
        let original = vectors.pointer(pointer).unwrap().clone();
        let changes: Vec<Value> = match &original {
            Value::String(s) => {
                let bytes = hex::decode(s).unwrap();
                // The first, a middle and the last byte, each with one bit flipped.
                let mut at = vec![0, bytes.len() / 2, bytes.len() - 1];
                at.dedup();
                at.into_iter()
                    .map(|i| {
                        let mut changed = bytes.clone();
                        changed[i] ^= 0x01;
                        json!(hex::encode(changed))
                    })
                    .collect()
            }
            Value::Number(n) => vec![json!(n.as_i64().unwrap() + 1)],
            _ => unreachable!(),
        };
        for change in changes {
            let mut mutated = vectors.clone();
            *mutated.pointer_mut(pointer).unwrap() = change.clone();
            assert!(
                check(&mutated).is_err(),
                "{pointer} changed to {change} still passes the check"
            );
            tried += 1;
        }
    }
    println!("{tried} changes to {} values, each refused", pointers.len());
}

/// Runs `proto/vectors/check.py` on `file`; `None` when there is no python3 to run it.
fn python_check(file: &Path) -> Option<std::process::Output> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/vectors/check.py");
    match Command::new("python3").arg(script).arg(file).output() {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("running python3: {e}"),
    }
}

#[test]
fn the_standard_library_python_checker_agrees() {
    let Some(output) = python_check(&vectors_path()) else {
        println!("NOTE: python3 is not on PATH; proto/vectors/check.py was not run");
        return;
    };
    let report = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "check.py failed:\n{report}");
    println!("{report}");

    // And it is a check: one flipped bit in a Merkle root, and it fails.
    let mut vectors = committed();
    let root = vectors
        .pointer("/audit_log/roots/5/root")
        .unwrap()
        .as_str()
        .unwrap();
    let mut changed = hex::decode(root).unwrap();
    changed[31] ^= 0x01;
    vectors["audit_log"]["roots"][5]["root"] = json!(hex::encode(changed));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v2.json");
    std::fs::write(&file, serde_json::to_string(&vectors).unwrap()).unwrap();
    let output = python_check(&file).unwrap();
    assert!(!output.status.success(), "check.py accepted a changed root");
}
