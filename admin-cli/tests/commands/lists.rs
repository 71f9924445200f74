//! The list commands' `--json` and the node's refusals, as scripts and people meet them: the
//! real `tatmx` binary against two real nodes that have exchanged a referral.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::path::Path;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const BIN: &str = env!("CARGO_BIN_EXE_tatmx");

/// Runs `tatmx` with both of a team's sockets; returns success, stdout and stderr.
async fn tatmx(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let data = dir.join("data");
    let output = tokio::process::Command::new(BIN)
        .arg("--socket")
        .arg(data.join("agency.sock"))
        .arg("--admin-socket")
        .arg(data.join("admin.sock"))
        .args(args)
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a `--json` command and parses its whole standard output as one JSON document.
async fn json(dir: &Path, args: &[&str]) -> Value {
    let (ok, stdout, stderr) = tatmx(dir, args).await;
    assert!(ok, "tatmx {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("tatmx {args:?} printed no single JSON document ({e}):\n{stdout}")
    })
}

/// Checks the promises of every list: an array of objects, keys in snake_case at every depth,
/// and every field named `*_at` (or `at`, `not_after`) a time in RFC 3339 or null.
fn assert_list(value: &Value, what: &str) -> Vec<Value> {
    let rows = value
        .as_array()
        .unwrap_or_else(|| panic!("{what}: not an array: {value}"));
    for row in rows {
        assert!(row.is_object(), "{what}: not an object: {row}");
        assert_shape(row, what);
    }
    rows.clone()
}

fn assert_shape(value: &Value, what: &str) {
    match value {
        Value::Object(map) => {
            for (key, field) in map {
                // The audit entries' `detail` is the node's own JSON, passed through as it is.
                if key == "detail" {
                    continue;
                }
                assert!(
                    !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                    "{what}: key {key:?} is not snake_case"
                );
                if key == "at" || key.ends_with("_at") || key == "not_after" {
                    match field {
                        Value::Null => {}
                        Value::String(text) => {
                            OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| {
                                panic!("{what}: {key} = {text:?} is not RFC 3339: {e}")
                            });
                        }
                        other => panic!("{what}: {key} = {other} is not a time"),
                    }
                }
                assert_shape(field, what);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| assert_shape(i, what)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_prints_one_json_array_with_the_tables_fields() {
    let (_fed, core, school) = tatmx_tests::core_and_school();
    let _core_node = tatmx_tests::start(&core).await;
    let _school_node = tatmx_tests::start(&school).await;
    let consent = tatmx_tests::consent_for(&school, "CASE-2026-0042", &[&core]).await;
    let mut client = tatmx_tests::agency(&school).await;
    let id = tatmx_tests::submit(&mut client, tatmx_tests::draft("county-core")).await;
    tatmx_tests::delivered(&school, &id).await;

    let outbox = assert_list(&json(&school.dir, &["outbox", "--json"]).await, "outbox");
    let sent = outbox
        .iter()
        .find(|e| e["referral_id"] == id.as_str() && e["kind"] == "referral")
        .unwrap_or_else(|| panic!("no outbox entry for {id}: {outbox:?}"));
    assert_eq!(sent["state"], "delivered", "{sent}");
    assert_eq!(sent["peer"], core.identity.uri(), "{sent}");
    assert!(sent["delivered_at"].is_string(), "{sent}");
    assert!(sent["attempts"].is_u64(), "{sent}");

    let inbox = assert_list(&json(&core.dir, &["inbox", "--json"]).await, "inbox");
    let received = inbox
        .iter()
        .find(|i| i["referral_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no inbox item for {id}: {inbox:?}"));
    assert_eq!(received["sender"], school.identity.uri(), "{received}");
    assert_eq!(received["status"], "received", "{received}");
    assert_eq!(received["purpose"], "threat-assessment", "{received}");
    assert!(received["received_at"].is_string(), "{received}");
    assert!(
        received["categories"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{received}"
    );

    let consents = assert_list(
        &json(&school.dir, &["consent", "list", "--json"]).await,
        "consent list",
    );
    let recorded = consents
        .iter()
        .find(|c| c["id"] == consent.as_str())
        .unwrap();
    // The table's STATE column, which the JSON once lacked.
    assert_eq!(recorded["state"], "in force", "{recorded}");
    assert_eq!(recorded["subject"], "CASE-2026-0042", "{recorded}");

    let peers = assert_list(
        &json(&core.dir, &["peer", "list", "--json"]).await,
        "peer list",
    );
    let peer = peers
        .iter()
        .find(|p| p["identity"] == school.identity.uri())
        .unwrap();
    assert_eq!(peer["role"], "affiliate", "{peer}");
    assert_eq!(peer["blocked"], false, "{peer}");

    let audit = assert_list(
        &json(&core.dir, &["audit", "log", "--limit", "50", "--json"]).await,
        "audit log",
    );
    assert!(!audit.is_empty());
    assert!(
        audit
            .iter()
            .all(|e| e["seq"].is_u64() && e["at"].is_string())
    );

    // Disclosures take `--json` like every other list, besides `--format json`.
    let disclosures = json(
        &school.dir,
        &[
            "audit",
            "disclosures",
            "--subject",
            "CASE-2026-0042",
            "--json",
        ],
    )
    .await;
    assert_list(&disclosures, "audit disclosures");
    assert_eq!(
        disclosures,
        json(
            &school.dir,
            &[
                "audit",
                "disclosures",
                "--subject",
                "CASE-2026-0042",
                "--format",
                "json"
            ],
        )
        .await
    );

    for (dir, args) in [
        (&core.dir, vec!["purged", "--json"]),
        (&core.dir, vec!["consult", "list", "--json"]),
        (&core.dir, vec!["trust", "anchors", "list", "--json"]),
    ] {
        assert_list(&json(dir, &args).await, &args.join(" "));
    }
    let anchors = json(&core.dir, &["trust", "anchors", "list", "--json"]).await;
    assert_eq!(anchors[0]["federation"], "county-mdt.example", "{anchors}");

    let status = json(&core.dir, &["trust", "status", "--json"]).await;
    assert_shape(&status, "trust status");
    assert!(status["peers"].is_array(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_keeps_the_nodes_words_and_says_what_to_do_next() {
    let (_fed, core, school) = tatmx_tests::core_and_school();
    let _core_node = tatmx_tests::start(&core).await;
    let _school_node = tatmx_tests::start(&school).await;
    let mut client = tatmx_tests::agency(&school).await;
    let id = tatmx_tests::submit(&mut client, tatmx_tests::draft("county-core")).await;
    tatmx_tests::delivered(&school, &id).await;

    let missing = "0190f0e0-0000-7000-8000-000000000000";
    let (ok, _, stderr) = tatmx(&core.dir, &["referral", "show", missing]).await;
    assert!(!ok);
    assert!(stderr.contains("(NOT_FOUND)"), "{stderr}");
    assert!(stderr.contains("\n  next: check the id"), "{stderr}");
    assert!(stderr.contains("tatmx inbox"), "{stderr}");

    // Only the recipient accepts a referral.
    let (ok, _, stderr) = tatmx(&school.dir, &["referral", "accept", &id]).await;
    assert!(!ok);
    assert!(stderr.starts_with("error: the node refused: "), "{stderr}");
    assert!(stderr.contains("(PERMISSION_DENIED)"), "{stderr}");
    assert!(
        stderr.contains("\n  next: this team may not do that"),
        "{stderr}"
    );
}

#[test]
fn a_node_that_is_not_running_is_named_with_the_way_to_start_it() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for args in [vec!["inbox"], vec!["peer", "list", "--json"]] {
        let (ok, stdout, stderr) = runtime.block_on(tatmx(dir.path(), &args));
        assert!(!ok);
        assert!(stdout.is_empty(), "{stdout}");
        assert!(stderr.contains("no tatmx node is running at"), "{stderr}");
        assert!(stderr.contains("next: is tatmx-node running?"), "{stderr}");
        assert!(stderr.contains("tatmx-node --config"), "{stderr}");
    }
    // Each names the flag for its own socket.
    let (_, _, stderr) = runtime.block_on(tatmx(dir.path(), &["inbox"]));
    assert!(
        stderr.contains("--socket (or TATMX_AGENCY_SOCKET)"),
        "{stderr}"
    );
    let (_, _, stderr) = runtime.block_on(tatmx(dir.path(), &["peer", "list"]));
    assert!(
        stderr.contains("--admin-socket (or TATMX_ADMIN_SOCKET)"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_reads_the_question_it_is_asked_in_its_inbox_and_in_the_referral() {
    let mut fed = tatmx_tests::TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let partner = fed.team("fbi-bau", "partner", "federal-partner");
    fed.write_config(&core, &[&partner], "");
    fed.write_config(&partner, &[&core], "");
    let _core_node = tatmx_tests::start(&core).await;
    let _partner_node = tatmx_tests::start(&partner).await;
    let mut case = tatmx_tests::draft("ignored");
    case.legal_basis = tatmx_proto::v1::LegalBasis::DeIdentified.into();
    case.justification.clear();
    case.case_ref = "CASE-2026-0099".into();
    let question = "Does the pattern of leakage suggest escalation toward the school?";
    let consultation = tatmx_tests::agency(&core)
        .await
        .request_consultation(tatmx_proto::v1::RequestConsultationRequest {
            partners: vec!["fbi-bau".into()],
            question: question.into(),
            due: None,
            referral: Some(case),
        })
        .await
        .unwrap()
        .into_inner();
    let id = consultation.answers[0].referral_id.clone();
    tatmx_tests::referral_when(&partner, &id, "the partner's copy", |_| true).await;

    let (ok, inbox, stderr) = tatmx(&partner.dir, &["inbox"]).await;
    assert!(ok, "{stderr}");
    assert!(
        inbox.contains("consultation: Does the pattern of leakage suggest esca…"),
        "{inbox}"
    );
    let listed = json(&partner.dir, &["inbox", "--json"]).await;
    assert_eq!(listed[0]["question"], question, "{listed}");

    let (ok, shown, stderr) = tatmx(&partner.dir, &["referral", "show", &id]).await;
    assert!(ok, "{stderr}");
    assert!(
        shown.contains("Consultation requested by county-core"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("question:    {question}")),
        "{shown}"
    );
    assert!(
        shown.contains("de-identified, known here only as case-"),
        "{shown}"
    );
}
