//! The `tatmx-node` binary as an admin runs it: from a config file, stopped by SIGTERM.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tatmx_certs::files::{write_public, write_secret};
use tatmx_certs::{CertificateAuthority, FederationId, NodeKey, TeamId, TeamIdentity};

const BIN: &str = env!("CARGO_BIN_EXE_tatmx-node");

fn enrol(dir: &Path) {
    let federation = FederationId::new("county-mdt.example").unwrap();
    let ca = CertificateAuthority::create(federation.clone(), 2).unwrap();
    write_public(&dir.join("ca.pem"), ca.cert_pem()).unwrap();
    let identity = TeamIdentity::new(federation, TeamId::new("county-core").unwrap());
    let key = NodeKey::generate(&identity).unwrap();
    write_secret(&dir.join("node.key"), &key.key_pem).unwrap();
    let issued = ca.sign_csr(&key.csr_pem, identity.team, 2).unwrap();
    write_public(&dir.join("node.pem"), &issued.cert_pem).unwrap();
}

fn config(role: &str) -> String {
    format!(
        r#"[node]
federation = "county-mdt.example"
team = "county-core"
role = "{role}"
discipline = "law-enforcement"
data_dir = "data"

[tls]
ca = "ca.pem"
cert = "node.pem"
key = "node.key"

[federation_api]
listen = "127.0.0.1:0"
"#
    )
}

#[test]
fn an_invalid_config_stops_start_up_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, config("boss")).unwrap();
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("node.role"), "{stderr}");
    assert!(stderr.contains("core, affiliate, partner"), "{stderr}");
}

#[test]
fn a_missing_certificate_stops_start_up_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, config("core")).unwrap();
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("node.pem"), "{stderr}");
    assert!(stderr.contains("No such file"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_serves_from_its_config_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    enrol(dir.path());
    let path = dir.path().join("node.toml");
    std::fs::write(&path, config("core")).unwrap();
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .env("TATMX_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let socket = dir.path().join("data").join("agency.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut client = loop {
        if let Ok(client) = tatmx_node::client::agency(&socket).await {
            break client;
        }
        assert!(Instant::now() < deadline, "the node did not start serving");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let inbox = client
        .list_inbox(tatmx_proto::v1::ListInboxRequest { limit: 0 })
        .await
        .unwrap()
        .into_inner();
    assert!(inbox.items.is_empty());
    assert!(dir.path().join("data").join("tatmx.db").exists());
    drop(client);

    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "exit: {:?}", output.status);
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(logs.contains("node serving"), "{logs}");
    assert!(logs.contains("node stopped"), "{logs}");
    assert!(!socket.exists(), "the socket is removed on a clean stop");
}

#[test]
fn an_invalid_policy_stops_start_up_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    enrol(dir.path());
    std::fs::write(
        dir.path().join("local.cedar"),
        "@id(\"local-typo\")\n@reason(\"x\")\npermit (principal, action == Action::\"disclose\", resource)\nwhen { context.purpse == \"consultation\" };\n",
    )
    .unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(
        &path,
        format!("{}\n[policy]\nfiles = [\"local.cedar\"]\n", config("core")),
    )
    .unwrap();
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("local.cedar:4"), "{stderr}");
    assert!(stderr.contains("purpse"), "{stderr}");
    assert!(
        !dir.path().join("data").join("agency.sock").exists(),
        "nothing serves"
    );
}
