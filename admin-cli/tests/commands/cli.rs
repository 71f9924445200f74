//! The `tatmx` binary as people run it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tatmx");

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

#[test]
fn the_demo_delivers_a_referral_over_mutual_tls_and_exits_zero() {
    let output = run(&["demo"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Delivered to county-core over mutual TLS"),
        "{stdout}"
    );
    assert!(stdout.contains("status \"received\""), "{stdout}");
    assert!(stdout.contains("The county team's inbox"), "{stdout}");
    assert!(stdout.contains("lincoln-high"), "{stdout}");
    assert!(stdout.contains("REPORTER_IDENTITY  withhold"), "{stdout}");
    assert!(stdout.contains("completed      by county-core"), "{stdout}");
    assert!(stdout.contains("only the case handle case-"), "{stdout}");
    assert!(stdout.contains("The partner answered"), "{stdout}");
    assert!(
        stdout.contains("provenance names the original sender, riverside-mh"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 of 2 copies purged and acknowledged; complete"),
        "{stdout}"
    );
    assert!(stdout.contains("consent revoked"), "{stdout}");
    assert!(stdout.contains("LHS-2026-0117"), "{stdout}");
    assert_eq!(stdout.matches("Audit chain intact").count(), 4, "{stdout}");
}

#[test]
fn commands_against_a_stopped_node_say_so_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agency.sock");
    let socket = socket.to_str().unwrap();
    for args in [
        vec!["--socket", socket, "inbox"],
        vec!["--socket", socket, "outbox", "--json"],
        vec!["--socket", socket, "referral", "show", "x"],
    ] {
        let output = run(&args);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("no tatmx node is running"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn enrolment_keeps_keys_private_and_never_overwrites_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let ca_dir = format!("{d}/ca");
    let node_dir = format!("{d}/node");
    assert!(
        run(&[
            "ca",
            "init",
            "--federation",
            "county-mdt.example",
            "--dir",
            &ca_dir
        ])
        .status
        .success()
    );
    assert!(
        run(&[
            "node",
            "init",
            "--federation",
            "county-mdt.example",
            "--team",
            "lincoln-high",
            "--dir",
            &node_dir
        ])
        .status
        .success()
    );
    let csr = format!("{node_dir}/node.csr");
    let signed = run(&[
        "ca",
        "sign",
        &csr,
        "--team",
        "lincoln-high",
        "--ca-dir",
        &ca_dir,
        "--days",
        "30",
    ]);
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let stdout = String::from_utf8_lossy(&signed.stdout);
    assert!(
        stdout.contains("spiffe://county-mdt.example/team/lincoln-high"),
        "{stdout}"
    );

    for key in [format!("{ca_dir}/ca.key"), format!("{node_dir}/node.key")] {
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let before = std::fs::read(format!("{ca_dir}/ca.key")).unwrap();
    let again = run(&[
        "ca",
        "init",
        "--federation",
        "county-mdt.example",
        "--dir",
        &ca_dir,
    ]);
    assert!(!again.status.success());
    assert_eq!(std::fs::read(format!("{ca_dir}/ca.key")).unwrap(), before);

    let bad = run(&[
        "ca",
        "sign",
        &csr,
        "--team",
        "Not_Valid",
        "--ca-dir",
        &ca_dir,
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid team id"));
}
