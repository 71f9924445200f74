//! Counsel's and staff's policy and consent commands, through the real `tatmx` binary.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tatmx");

fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples"))
}

fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN).args(args).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_scenarios_pass_and_a_wrong_expectation_is_reported() {
    let scenarios = examples().join("policy-scenarios.toml");
    let local = examples().join("local-policy.cedar");
    let (ok, stdout, stderr) = run(&[
        "policy",
        "test",
        scenarios.to_str().unwrap(),
        "--policy",
        local.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(!stdout.contains("MISMATCH"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        r#"[[scenario]]
name = "counsel believes criminal history may go to a school"
category = "CRIMINAL_HISTORY"
sender = { role = "core", discipline = "law-enforcement", cjis_authorized = true }
recipient = { role = "affiliate", discipline = "education" }
purpose = "threat-assessment"
basis = "law-enforcement"
expect = "permit"
"#,
    )
    .unwrap();
    let (ok, stdout, _) = run(&["policy", "test", wrong.to_str().unwrap()]);
    assert!(!ok);
    assert!(stdout.contains("MISMATCH"), "{stdout}");
    assert!(stdout.contains("cjis-recipient-not-authorized"), "{stdout}");
}

#[test]
fn policy_validate_names_file_line_and_reason() {
    let (ok, stdout, _) = run(&[
        "policy",
        "validate",
        examples().join("local-policy.cedar").to_str().unwrap(),
    ]);
    assert!(ok);
    assert!(stdout.contains("valid"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.cedar");
    std::fs::write(
        &bad,
        "@id(\"x\")\npermit (principal, action == Action::\"disclose\", resource)\nwhen { context.recipent.role == \"core\" };\n",
    )
    .unwrap();
    let (ok, _, stderr) = run(&["policy", "validate", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("bad.cedar:3"), "{stderr}");
    assert!(stderr.contains("recipent"), "{stderr}");
    let (ok, stdout, _) = run(&["policy", "rules"]);
    assert!(ok);
    assert!(
        stdout.contains("part2-consent-must-name-recipient"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consents_are_recorded_named_in_a_referral_and_revoked() {
    let mut fed = tatmx_tests::TestFederation::new("county-mdt.example");
    let root = fed.dir.path().to_owned();
    let riverside = fed.team("riverside-mh", "affiliate", "mental-health");
    let core = fed.team("county-core", "core", "law-enforcement");
    fed.write_config(&riverside, &[&core], "");
    fed.write_config(&core, &[&riverside], "");
    let nodes = vec![
        tatmx_tests::start(&riverside).await,
        tatmx_tests::start(&core).await,
    ];
    let socket = riverside.socket();
    let socket = socket.to_str().unwrap();

    // The example consent permits everything to the county team except mental health.
    let (ok, stdout, stderr) = run(&[
        "--socket",
        socket,
        "consent",
        "record",
        examples().join("consent.toml").to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let consent: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let id = consent["id"].as_str().unwrap().to_owned();
    let (ok, listed, _) = run(&["--socket", socket, "consent", "list"]);
    assert!(
        ok && listed.contains(&id) && listed.contains("in force"),
        "{listed}"
    );

    let referral = root.join("referral.toml");
    std::fs::write(
        &referral,
        format!(
            "recipient = \"county-core\"\npurpose = \"threat-assessment\"\nlegal_basis = \"consent\"\nconsent_ref = \"{id}\"\nsubject_ref = \"CASE-2026-0042\"\n[content.threat]\nthreat_type = \"targeted-violence\"\n[content.contact]\nphone = \"CANARY-PHONE\"\n[content.mental_health]\ndiagnoses = [\"CANARY-DX\"]\n"
        ),
    )
    .unwrap();
    let (ok, preview, stderr) = run(&[
        "--socket",
        socket,
        "referral",
        "preview",
        referral.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        preview.contains("MENTAL_HEALTH") && preview.contains("withhold"),
        "{preview}"
    );
    assert!(
        preview.contains("CONTACT") && preview.contains("[consent]"),
        "{preview}"
    );
    assert!(preview.contains("Preview only"), "{preview}");

    let (ok, _, _) = run(&["--socket", socket, "consent", "revoke", &id]);
    assert!(ok);
    let (_, shown, _) = run(&["--socket", socket, "consent", "show", &id]);
    assert!(shown.contains("revoked"), "{shown}");
    assert!(shown.contains("Retraction"), "{shown}");
    let (ok, progress, _) = run(&[
        "--socket",
        socket,
        "consent",
        "retraction",
        &id,
        "--wait",
        "10",
        "--json",
    ]);
    assert!(ok, "{progress}");
    let progress: serde_json::Value = serde_json::from_str(&progress).unwrap();
    assert_eq!(progress["complete"], true, "{progress}");
    let (ok, preview, _) = run(&[
        "--socket",
        socket,
        "referral",
        "preview",
        referral.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok);
    let preview: serde_json::Value = serde_json::from_str(&preview).unwrap();
    let contact = preview["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["category"] == "CONTACT")
        .unwrap();
    assert_eq!(
        contact["outcome"], "withhold",
        "a revoked consent is no consent"
    );

    for node in nodes {
        node.shutdown().await;
    }
}
