//! `tatmx audit verify --disclosure`, as a security officer runs it: the real binary against a
//! real node, proving that a referral's disclosure is in the log the node signed, and refusing
//! to once someone with the database has edited the entry.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_tatmx");

/// Runs `tatmx` against a team's Admin socket; returns success, stdout and stderr.
async fn tatmx(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(BIN)
        .arg("--admin-socket")
        .arg(dir.join("data").join("admin.sock"))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disclosure_is_proven_in_the_signed_log_until_its_entry_is_edited() {
    let (fed, core, school) = tatmx_tests::core_and_school();
    fed.write_config(
        &school,
        &[&core],
        "[audit]\ncheckpoint_interval = \"200ms\"\n",
    );
    let core_node = tatmx_tests::start(&core).await;
    let school_node = tatmx_tests::start(&school).await;
    let id = tatmx_tests::submit(
        &mut tatmx_tests::agency(&school).await,
        tatmx_tests::draft("county-core"),
    )
    .await;
    tatmx_tests::delivered(&school, &id).await;

    // Once the next tree head covers it, the referral's disclosure is proven by its id.
    let proven = tatmx_tests::eventually(Duration::from_secs(10), "a proof", || async {
        let (ok, stdout, _) = tatmx(&school.dir, &["audit", "verify", "--disclosure", &id]).await;
        ok.then_some(stdout)
    })
    .await;
    assert!(proven.starts_with("Proven: audit entry "), "{proven}");
    assert!(
        proven.contains("a disclosure (referral) to county-core"),
        "{proven}"
    );
    assert!(proven.contains(&format!("referral {id}")), "{proven}");
    assert!(proven.contains("inclusion proof of"), "{proven}");
    assert!(proven.contains(&school.identity.uri()), "{proven}");
    let (ok, json, stderr) = tatmx(
        &school.dir,
        &["audit", "verify", "--disclosure", &id, "--json"],
    )
    .await;
    assert!(ok, "{stderr}");
    let proof: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(proof["proven"], true, "{proof}");
    let seq = proof["entry"]["seq"].as_u64().unwrap();
    assert!(proof["tree_head"]["tree_size"].as_u64().unwrap() >= seq);
    assert!(
        !proof["tree_head"]["certificate_der"]
            .as_str()
            .unwrap()
            .is_empty()
    );

    // An entry that is not a disclosure is refused by name.
    let (ok, _, stderr) = tatmx(
        &school.dir,
        &["audit", "verify", "--disclosure", "nonsense"],
    )
    .await;
    assert!(!ok && stderr.contains("disclosure:"), "{stderr}");

    // Someone with the database edits the entry: the node still hands over what it has, and
    // the command finds that it does not lead to the signed root.
    school_node.shutdown().await;
    let mut db = tatmx_tests::store_connection(&school, true).await;
    sqlx::query(
        "UPDATE audit_log SET detail = replace(detail, 'referral', 'forward') WHERE seq = $1",
    )
    .bind(seq as i64)
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::Connection::close(db).await.unwrap();
    let school_node = tatmx_tests::start(&school).await;
    let (ok, stdout, stderr) = tatmx(
        &school.dir,
        &["audit", "verify", "--disclosure", &seq.to_string()],
    )
    .await;
    assert!(!ok, "a tampered entry must not verify:\n{stdout}");
    assert!(stdout.starts_with("NOT PROVEN"), "{stdout}");
    assert!(
        stdout.contains("was changed after it was written"),
        "{stdout}"
    );
    assert!(stderr.contains("not proven"), "{stderr}");
    school_node.shutdown().await;
    core_node.shutdown().await;
}
