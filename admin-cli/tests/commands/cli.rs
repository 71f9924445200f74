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

/// Runs `tatmx` and returns its stdout, failing the test with stderr when it fails.
fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "tatmx {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn enrolment_puts_in_only_the_dns_names_both_sides_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let ca_dir = format!("{d}/ca");
    let node_dir = format!("{d}/node");
    run_ok(&[
        "ca",
        "init",
        "--federation",
        "county-mdt.example",
        "--dir",
        &ca_dir,
    ]);

    // Wildcards and IP literals are refused before any key is made, and say why.
    for (bad, why) in [
        ("*.county-mdt.example", "wildcard"),
        ("192.0.2.7", "IP address"),
    ] {
        let refused = run(&[
            "node",
            "init",
            "--federation",
            "county-mdt.example",
            "--team",
            "county-core",
            "--dir",
            &node_dir,
            "--dns-name",
            bad,
        ]);
        assert!(!refused.status.success(), "{bad} was accepted");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(why), "{bad}: {stderr}");
        assert!(!std::path::Path::new(&format!("{node_dir}/node.key")).exists());
    }

    let made = run_ok(&[
        "node",
        "init",
        "--federation",
        "county-mdt.example",
        "--team",
        "county-core",
        "--dir",
        &node_dir,
        "--dns-name",
        "node.county-mdt.example",
        "--dns-name",
        "grpc.county-mdt.example",
    ]);
    assert!(made.contains("node.county-mdt.example"), "{made}");
    let csr = format!("{node_dir}/node.csr");
    let cert = format!("{node_dir}/node.pem");

    // A grant the CSR did not ask for is refused, and nothing is written.
    let foreign = run(&[
        "ca",
        "sign",
        &csr,
        "--team",
        "county-core",
        "--ca-dir",
        &ca_dir,
        "--out",
        &cert,
        "--dns-name",
        "elsewhere.example",
    ]);
    assert!(!foreign.status.success());
    let stderr = String::from_utf8_lossy(&foreign.stderr);
    assert!(stderr.contains("elsewhere.example"), "{stderr}");
    assert!(!std::path::Path::new(&cert).exists());

    // The admin grants one of the two; the other is reported as not granted.
    let signed = run_ok(&[
        "ca",
        "sign",
        &csr,
        "--team",
        "county-core",
        "--ca-dir",
        &ca_dir,
        "--out",
        &cert,
        "--dns-name",
        "Node.County-MDT.example",
    ]);
    assert!(
        signed.contains("DNS:     node.county-mdt.example"),
        "{signed}"
    );
    assert!(
        signed.contains("grpc.county-mdt.example, not granted"),
        "{signed}"
    );

    let shown = run_ok(&["cert", "inspect", &cert]);
    assert!(
        shown.contains("identity:    spiffe://county-mdt.example/team/county-core"),
        "{shown}"
    );
    assert!(
        shown.contains("DNS names:   node.county-mdt.example\n"),
        "{shown}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(&["cert", "inspect", &cert, "--json"])).unwrap();
    assert_eq!(
        json["dns_names"],
        serde_json::json!(["node.county-mdt.example"])
    );
    assert_eq!(
        json["identity"],
        "spiffe://county-mdt.example/team/county-core"
    );
    let register = std::fs::read_to_string(format!("{ca_dir}/register.json")).unwrap();
    assert!(register.contains("node.county-mdt.example"), "{register}");

    // Renewal asks for the current certificate's DNS names again unless told otherwise.
    let renew_dir = format!("{d}/renew");
    run_ok(&["cert", "renew", "--cert", &cert, "--dir", &renew_dir]);
    let renewed = format!("{renew_dir}/next.pem");
    run_ok(&[
        "ca",
        "sign",
        &format!("{renew_dir}/node.next.csr"),
        "--team",
        "county-core",
        "--ca-dir",
        &ca_dir,
        "--out",
        &renewed,
        "--dns-name",
        "node.county-mdt.example",
    ]);
    let shown = run_ok(&["cert", "inspect", &renewed]);
    assert!(
        shown.contains("DNS names:   node.county-mdt.example\n"),
        "{shown}"
    );

    // A CA certificate is shown as one, with no DNS names.
    let ca = run_ok(&["cert", "inspect", &format!("{ca_dir}/ca.pem")]);
    assert!(ca.contains("federation CA: county-mdt.example"), "{ca}");
    assert!(ca.contains("DNS names:   (none)"), "{ca}");
}
