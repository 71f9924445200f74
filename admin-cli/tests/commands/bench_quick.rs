//! `tatmx bench --quick`, as CI runs it: every phase of the benchmark at small sizes, between
//! real node processes. It fails only on a functional error (a referral lost, duplicated or
//! undelivered, a partner never reached), never on a timing. With `TATMX_TEST_POSTGRES` set (as
//! in CI's PostgreSQL pass) the nodes' stores are on that server (`--postgres`).

#![allow(clippy::unwrap_used)] // a panic is the failure report

use std::path::PathBuf;
use std::process::Command;

/// The `tatmx-node` binary beside this package's `tatmx`, built first if `cargo test` was run
/// for this package alone.
fn node_binary() -> PathBuf {
    let node = PathBuf::from(env!("CARGO_BIN_EXE_tatmx")).with_file_name("tatmx-node");
    if !node.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--locked",
                "-p",
                "tatmx-node",
                "--bin",
                "tatmx-node",
            ])
            .status()
            .unwrap();
        assert!(status.success(), "cannot build tatmx-node");
    }
    node
}

#[test]
fn the_quick_benchmark_loses_nothing() {
    let postgres = std::env::var("TATMX_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.is_empty());
    let mut command = Command::new(env!("CARGO_BIN_EXE_tatmx"));
    command
        .args(["bench", "--quick", "--json", "--node-bin"])
        .arg(node_binary());
    if let Some(url) = &postgres {
        command.args(["--postgres", url]);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "tatmx bench --quick failed:\n{stderr}\n{stdout}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    println!("{stdout}");

    for run in ["max_rate", "/fixed_rate/outcome", "/registry/outcome"] {
        let pointer = if run.starts_with('/') {
            run.to_owned()
        } else {
            format!("/{run}")
        };
        let outcome = report
            .pointer(&pointer)
            .unwrap_or_else(|| panic!("{run} missing"));
        let sent = outcome["sent"].as_u64().unwrap();
        assert!(sent > 0, "{run}: nothing was sent");
        assert_eq!(outcome["acknowledged"].as_u64(), Some(sent), "{run}");
        assert_eq!(
            outcome["confirmed_by_receiver"].as_u64(),
            Some(sent),
            "{run}"
        );
        assert_eq!(outcome["lost"].as_u64(), Some(0), "{run}");
        assert_eq!(outcome["duplicated"].as_u64(), Some(0), "{run}");
        assert_eq!(outcome["latency"]["samples"].as_u64(), Some(sent), "{run}");
    }
    let drain = &report["drain"];
    assert_eq!(drain["lost"].as_u64(), Some(0));
    assert_eq!(drain["acknowledged"], drain["queued"]);
    for node in ["sender", "receiver"] {
        assert!(
            drain[format!("rss_after_{node}")].as_u64().unwrap() > 0,
            "{node}"
        );
        // Each delivered referral leaves at least its own bytes at both ends.
        let stored = &report["stored"][node];
        let per_referral = stored["bytes_per_referral"].as_f64().unwrap();
        assert!(
            per_referral > 500.0,
            "{node} stored {per_referral} bytes a referral"
        );
        assert!(
            stored["bytes_after"].as_u64().unwrap() > stored["bytes_before"].as_u64().unwrap(),
            "{node}"
        );
        assert!(!stored["tables"].as_array().unwrap().is_empty(), "{node}");
    }
    assert_eq!(
        report["stored"]["delivered"],
        report["max_rate"]["acknowledged"]
    );
    let fan_out = &report["fan_out"];
    assert_eq!(fan_out["acknowledged"], fan_out["partners"]);
    assert!(report["ceiling"]["per_second"].as_f64().unwrap() > 0.0);
    assert!(report["handshakes"]["per_second"].as_f64().unwrap() > 0.0);
    assert!(report["memory"]["idle_receiver"].as_u64().unwrap() > 0);
    assert!(report["ratio_to_ceiling"].as_f64().is_some());
    assert_eq!(report["setting"]["mode"], "quick");
    let durability = report["setting"]["durability"].as_str().unwrap();
    assert_eq!(
        durability.starts_with("PostgreSQL"),
        postgres.is_some(),
        "{durability}"
    );
}
