//! Every trust command of `tatmx`, as a federation admin and two agency admins would run them,
//! against real nodes.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tatmx_node::loopback::{self, Delivery, NodeToml, ReservedPort};

const BIN: &str = env!("CARGO_BIN_EXE_tatmx");

/// Runs `tatmx` and returns stdout, failing the test with stderr if it failed.
fn tatmx(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "tatmx {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs `tatmx` expecting failure and returns stderr.
fn tatmx_fails(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().unwrap();
    assert!(
        !output.status.success(),
        "tatmx {args:?} should have failed"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A node's config: no peers (they come from the signed directory), quick retries.
fn config(team: &str, role: &str, discipline: &str, ca: &Path, port: u16) -> NodeToml {
    let mut toml = NodeToml::new("county-mdt.example", team, role, discipline, ca, port);
    toml.delivery = Some(Delivery {
        initial_backoff: Some(Duration::from_millis(50)),
        max_backoff: Some(Duration::from_millis(300)),
        ..Default::default()
    });
    toml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_runs_a_federation_with_tatmx_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let p = |rel: &str| root.join(rel).display().to_string();
    let ca = p("ca");

    // The federation admin and two agency admins enrol their nodes.
    tatmx(&[
        "ca",
        "init",
        "--federation",
        "county-mdt.example",
        "--dir",
        &ca,
    ]);
    let teams = [
        ("county-core", "core", "law-enforcement"),
        ("lincoln-high", "affiliate", "education"),
    ];
    let mut nodes = Vec::new();
    let mut ports = Vec::new();
    // Held until the test ends, so the ports stay the nodes'.
    let mut reserved = Vec::new();
    for (team, role, discipline) in teams {
        let dir = p(team);
        tatmx(&[
            "node",
            "init",
            "--federation",
            "county-mdt.example",
            "--team",
            team,
            "--dir",
            &dir,
        ]);
        let out = tatmx(&[
            "ca",
            "sign",
            &format!("{dir}/node.csr"),
            "--team",
            team,
            "--ca-dir",
            &ca,
            "--days",
            "30",
            "--role",
            role,
            "--discipline",
            discipline,
            "--out",
            &format!("{dir}/node.pem"),
        ]);
        assert!(
            out.contains(&format!("spiffe://county-mdt.example/team/{team}")),
            "{out}"
        );
        let port = ReservedPort::new().unwrap();
        let config = config(
            team,
            role,
            discipline,
            &root.join("ca").join("ca.pem"),
            port.port(),
        )
        .write(&root.join(team).join("node.toml"))
        .unwrap();
        nodes.push(loopback::start(config).await.unwrap());
        ports.push(port.port());
        reserved.push(port);
    }
    let core_admin = p("county-core/data/admin.sock");
    let school_admin = p("lincoln-high/data/admin.sock");

    // The directory: drafted, shown, signed, verified and imported.
    for ((team, role, discipline), port) in teams.iter().zip(&ports) {
        let endpoint = format!("https://127.0.0.1:{port}");
        let mut args = vec![
            "directory",
            "add",
            "--ca-dir",
            &ca,
            "--team",
            team,
            "--endpoint",
            &endpoint,
            "--role",
            role,
            "--discipline",
            discipline,
            "--jurisdiction",
            "Lincoln County",
        ];
        if *discipline == "law-enforcement" {
            args.push("--cjis-authorized");
        }
        tatmx(&args);
    }
    tatmx(&[
        "directory",
        "add",
        "--ca-dir",
        &ca,
        "--team",
        "leaving",
        "--endpoint",
        "https://127.0.0.1:9",
        "--role",
        "partner",
        "--discipline",
        "federal-partner",
        "--jurisdiction",
        "State",
    ]);
    tatmx(&["directory", "remove", "--ca-dir", &ca, "--team", "leaving"]);
    let draft = tatmx(&["directory", "show", "--ca-dir", &ca]);
    assert!(!draft.contains("leaving"), "{draft}");
    assert!(
        draft.contains("lincoln-high") && draft.contains("next sequence 1"),
        "{draft}"
    );
    let bad = tatmx_fails(&[
        "directory",
        "add",
        "--ca-dir",
        &ca,
        "--team",
        "x",
        "--endpoint",
        "http://x:1",
        "--role",
        "core",
        "--discipline",
        "education",
        "--jurisdiction",
        "J",
    ]);
    assert!(bad.contains("endpoint"), "{bad}");
    let signed = tatmx(&["directory", "sign", "--ca-dir", &ca]);
    assert!(signed.contains("sequence 1, 2 members"), "{signed}");
    let directory = p("ca/directory.json");
    let shown = tatmx(&["directory", "show", "--ca-dir", &ca, "--signed", &directory]);
    assert!(shown.contains("signature verified"), "{shown}");
    for socket in [&core_admin, &school_admin] {
        let out = tatmx(&["--admin-socket", socket, "trust", "import", &directory]);
        assert!(out.contains("sequence 1 imported"), "{out}");
    }
    let again = tatmx(&["--admin-socket", &core_admin, "trust", "import", &directory]);
    assert!(again.contains("nothing changed"), "{again}");

    // Peers and status.
    let peers: serde_json::Value = serde_json::from_str(&tatmx(&[
        "--admin-socket",
        &core_admin,
        "peer",
        "list",
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        peers[0]["identity"],
        "spiffe://county-mdt.example/team/lincoln-high"
    );
    assert_eq!(peers[0]["source"], "directory");
    let one = tatmx(&[
        "--admin-socket",
        &core_admin,
        "peer",
        "show",
        "lincoln-high",
    ]);
    assert!(one.contains("lincoln-high"), "{one}");
    let status = tatmx(&["--admin-socket", &core_admin, "trust", "status"]);
    assert!(
        status.contains("sequence 1") && status.contains("Trust anchors"),
        "{status}"
    );
    let anchors: serde_json::Value = serde_json::from_str(&tatmx(&[
        "--admin-socket",
        &core_admin,
        "trust",
        "anchors",
        "list",
        "--json",
    ]))
    .unwrap();
    assert_eq!(anchors.as_array().unwrap().len(), 1);

    // A referral flows between directory members.
    let referral = root.join("referral.toml");
    std::fs::write(
        &referral,
        "recipient = \"county-core\"\npurpose = \"threat-assessment\"\nlegal_basis = \"serious-imminent-threat\"\njustification = \"A specific plan and date were stated to a teacher today.\"\n[content.threat]\nthreat_type = \"targeted-violence\"\n",
    )
    .unwrap();
    let school_socket = p("lincoln-high/data/agency.sock");
    tatmx(&[
        "--socket",
        &school_socket,
        "referral",
        "send",
        &referral.display().to_string(),
    ]);
    wait_for_delivery(&school_socket);

    // Revocation: by team at the CA, imported at the core; the school is refused.
    let revoked = tatmx(&[
        "ca",
        "revoke",
        "--team",
        "lincoln-high",
        "--reason",
        "key-compromise",
        "--ca-dir",
        &ca,
    ]);
    assert!(revoked.contains("Revoked"), "{revoked}");
    let listed = tatmx(&["ca", "list", "--ca-dir", &ca]);
    assert!(listed.contains("revoked (key-compromise)"), "{listed}");
    let out = tatmx(&[
        "--admin-socket",
        &core_admin,
        "trust",
        "import",
        &p("ca/crl.pem"),
    ]);
    assert!(out.contains("1 certificate(s) revoked"), "{out}");
    let bad_reason = tatmx_fails(&[
        "ca",
        "revoke",
        "--team",
        "county-core",
        "--reason",
        "bored",
        "--ca-dir",
        &ca,
    ]);
    assert!(
        bad_reason.contains("reason") || bad_reason.contains("bored"),
        "{bad_reason}"
    );
    tatmx(&["ca", "crl", "--ca-dir", &ca]);

    // Block, unblock, remove and add back.
    let out = tatmx(&[
        "--admin-socket",
        &core_admin,
        "peer",
        "block",
        "lincoln-high",
    ]);
    assert!(out.contains("blocked"), "{out}");
    tatmx(&[
        "--admin-socket",
        &core_admin,
        "peer",
        "block",
        "lincoln-high",
        "--unblock",
    ]);
    tatmx(&[
        "--admin-socket",
        &core_admin,
        "peer",
        "remove",
        "lincoln-high",
    ]);
    let missing = tatmx_fails(&[
        "--admin-socket",
        &core_admin,
        "peer",
        "show",
        "lincoln-high",
    ]);
    assert!(missing.contains("not a peer"), "{missing}");
    let endpoint = format!("https://127.0.0.1:{}", ports[1]);
    tatmx(&[
        "--admin-socket",
        &core_admin,
        "peer",
        "add",
        "--team",
        "lincoln-high",
        "--endpoint",
        &endpoint,
        "--role",
        "affiliate",
        "--discipline",
        "education",
    ]);

    // Certificate renewal without a restart.
    let core = p("county-core");
    tatmx(&[
        "cert",
        "renew",
        "--cert",
        &format!("{core}/node.pem"),
        "--dir",
        &core,
    ]);
    tatmx(&[
        "ca",
        "sign",
        &format!("{core}/node.next.csr"),
        "--team",
        "county-core",
        "--ca-dir",
        &ca,
        "--out",
        &format!("{core}/node.next.pem"),
    ]);
    let installed = tatmx(&[
        "--admin-socket",
        &core_admin,
        "cert",
        "install",
        &format!("{core}/node.next.pem"),
        "--key",
        &format!("{core}/node.next.key"),
    ]);
    assert!(installed.contains("installed"), "{installed}");

    // Anchors of another federation: added, listed apart, removed.
    let other = p("other-ca");
    tatmx(&[
        "ca",
        "init",
        "--federation",
        "state-fusion.example",
        "--dir",
        &other,
    ]);
    let added = tatmx(&[
        "--admin-socket",
        &core_admin,
        "trust",
        "anchors",
        "add",
        &format!("{other}/ca.pem"),
    ]);
    assert!(added.contains("state-fusion.example"), "{added}");
    let anchors: serde_json::Value = serde_json::from_str(&tatmx(&[
        "--admin-socket",
        &core_admin,
        "trust",
        "anchors",
        "list",
        "--json",
    ]))
    .unwrap();
    let other_fp = anchors
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["federation"] == "state-fusion.example")
        .unwrap()["fingerprint_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    tatmx(&[
        "--admin-socket",
        &core_admin,
        "trust",
        "anchors",
        "remove",
        &other_fp[..12],
    ]);
    let status: serde_json::Value = serde_json::from_str(&tatmx(&[
        "--admin-socket",
        &core_admin,
        "trust",
        "status",
        "--json",
    ]))
    .unwrap();
    assert_eq!(status["anchors"].as_array().unwrap().len(), 1);
    assert_eq!(status["crls"][0]["revoked"], 1);

    // Every one of those admin actions is in the audit log, and the chain is intact.
    let log: serde_json::Value = serde_json::from_str(&tatmx(&[
        "--admin-socket",
        &core_admin,
        "audit",
        "log",
        "--kind",
        "trust-change",
        "--json",
    ]))
    .unwrap();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"]["action"].as_str())
        .collect();
    for action in ["anchor-added", "anchor-removed", "crl-imported"] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    let verified = tatmx(&["--admin-socket", &core_admin, "audit", "verify"]);
    assert!(verified.contains("Audit chain intact"), "{verified}");
    let csv = tatmx(&[
        "--admin-socket",
        &core_admin,
        "audit",
        "disclosures",
        "--subject",
        "NOBODY",
        "--format",
        "csv",
    ]);
    assert!(csv.starts_with("at,recipient"), "{csv}");

    for node in nodes {
        node.shutdown().await;
    }
    let down = tatmx_fails(&["--admin-socket", &core_admin, "trust", "status"]);
    assert!(down.contains("no tatmx node is running"), "{down}");
}

fn wait_for_delivery(socket: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = tatmx(&["--socket", socket, "outbox", "--json"]);
        let entries: serde_json::Value = serde_json::from_str(&out).unwrap();
        if entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["state"] == "delivered")
        {
            return;
        }
        assert!(Instant::now() < deadline, "not delivered: {out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
