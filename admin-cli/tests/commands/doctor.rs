//! `tatmx doctor` as an agency admin runs it: the real binary, against config files, keys and
//! certificates made by a test CA, with real nodes running where a check needs one. Each broken
//! setup is made from a healthy one by changing one thing, and the test looks for the one line
//! that names it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tatmx_certs::CertificateAuthority;
use tatmx_tests::{TeamSpec, TestFederation};
use time::{Duration, OffsetDateTime};

const BIN: &str = env!("CARGO_BIN_EXE_tatmx");

/// Runs `tatmx doctor --config CONFIG ARGS...`; returns the exit code and standard output.
async fn doctor(config: &Path, args: &[&str]) -> (i32, String) {
    let output = tokio::process::Command::new(BIN)
        .arg("doctor")
        .arg("--config")
        .arg(config)
        .args(["--timeout", "3s"])
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.is_empty(),
        "doctor wrote to stderr: {stderr}\n{stdout}"
    );
    (output.status.code().unwrap(), stdout)
}

/// The report's line for `check` (its status, name and detail, with any lines the detail
/// continues on) and the next step under it.
fn line<'a>(report: &'a str, check: &str) -> (String, Option<&'a str>) {
    let mut lines = report.lines().peekable();
    while let Some(l) = lines.next() {
        let name = l.get(6..).unwrap_or("").split("  ").next().unwrap_or("");
        if name.trim_end() != check {
            continue;
        }
        let mut detail = l.to_owned();
        while let Some(more) = lines.next_if(|m| m.starts_with(' ')) {
            match more.trim_start().strip_prefix("next: ") {
                Some(next) => return (detail, Some(next)),
                None => {
                    detail.push('\n');
                    detail.push_str(more.trim_start());
                }
            }
        }
        return (detail, None);
    }
    panic!("no line for {check:?} in:\n{report}");
}

/// A federation whose CA lives ten years, so only what a test changes is near expiry (the
/// harness's own CA lives two days, for tests that want it so).
fn federation() -> TestFederation {
    let mut fed = TestFederation::new("county-mdt.example");
    fed.ca = CertificateAuthority::create(fed.id.clone(), 3650).unwrap();
    std::fs::write(&fed.ca_path, fed.ca.cert_pem()).unwrap();
    fed
}

/// Gives `team` a certificate from the federation's CA valid from an hour ago until
/// `not_after`, with a new key (mode 0600).
fn certify(fed: &TestFederation, team: &TeamSpec, not_after: OffsetDateTime) {
    certify_between(
        fed,
        team,
        OffsetDateTime::now_utc() - Duration::hours(1),
        not_after,
    );
}

fn certify_between(
    fed: &TestFederation,
    team: &TeamSpec,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) {
    let (cert, key) =
        tatmx_tests::certificate_valid_between(&fed.ca, &team.identity, not_before, not_after);
    std::fs::write(team.dir.join("node.pem"), cert).unwrap();
    let key_path = team.dir.join("node.key");
    std::fs::write(&key_path, key).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn in_a_year() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::days(365)
}

/// One team with a year-long certificate and no peers, whose node is not running.
fn lone_team() -> (TestFederation, TeamSpec) {
    let mut fed = federation();
    let core = fed.team("county-core", "core", "law-enforcement");
    certify(&fed, &core, in_a_year());
    fed.write_config(&core, &[], "");
    (fed, core)
}

/// The statuses of every line of a report, for asserting that nothing else went wrong.
fn problems(report: &str) -> Vec<&str> {
    report
        .lines()
        .filter(|l| l.starts_with("WARN") || l.starts_with("FAIL") || l.starts_with("SKIP"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_node_and_its_peer_pass_every_check() {
    let mut fed = federation();
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    certify(&fed, &core, in_a_year());
    certify(&fed, &school, in_a_year());
    fed.write_config(&core, &[&school], "");
    fed.write_config(&school, &[&core], "");
    let _core = tatmx_tests::start(&core).await;
    let _school = tatmx_tests::start(&school).await;

    let (code, report) = doctor(&core.config_path(), &[]).await;
    assert_eq!(code, 0, "{report}");
    assert!(problems(&report).is_empty(), "{report}");
    for check in [
        "config",
        "ca certificate",
        "ca certificate expiry",
        "certificate",
        "certificate expiry",
        "key file mode",
        "key file",
        "key matches certificate",
        "certificate chain",
        "store",
        "node running",
        "peer lincoln-high",
    ] {
        assert!(
            line(&report, check).0.starts_with("OK "),
            "{check}: {report}"
        );
    }
    // The harness puts the store on PostgreSQL when TATMX_TEST_POSTGRES names a server.
    let store = if tatmx_tests::backend::postgres().is_some() {
        "PostgreSQL answers (SELECT 1)"
    } else {
        "SQLite database, quick_check ok"
    };
    assert!(line(&report, "store").0.contains(store), "{report}");
    assert!(
        line(&report, "peer lincoln-high")
            .0
            .contains("mutual TLS accepted both ways"),
        "{report}"
    );
    assert!(report.contains("All 12 checks passed."), "{report}");

    let (code, json) = doctor(&core.config_path(), &["--json"]).await;
    assert_eq!(code, 0, "{json}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["healthy"], true, "{json}");
    let checks = json["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 12, "{json}");
    for check in checks {
        assert_eq!(check["status"], "ok", "{check}");
        assert!(check["next"].is_null(), "{check}");
    }
}

#[tokio::test]
async fn a_key_readable_by_others_fails_with_the_chmod_that_fixes_it() {
    let (_fed, core) = lone_team();
    let key = core.dir.join("node.key");
    let (code, report) = doctor(&core.config_path(), &[]).await;
    assert_eq!(code, 0, "{report}");
    assert!(
        line(&report, "key file mode").0.starts_with("OK "),
        "{report}"
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, report) = doctor(&core.config_path(), &[]).await;
    assert_eq!(code, 1, "{report}");
    let (mode, next) = line(&report, "key file mode");
    assert!(mode.starts_with("FAIL "), "{report}");
    assert!(mode.contains("mode 0644"), "{report}");
    assert!(
        next.unwrap()
            .contains(&format!("chmod 600 {}", key.display())),
        "{report}"
    );
    // The key itself is still good; only its mode is wrong.
    assert!(
        line(&report, "key matches certificate")
            .0
            .starts_with("OK "),
        "{report}"
    );
    assert_eq!(problems(&report).len(), 2, "{report}"); // the mode, and the node not running
}

#[tokio::test]
async fn a_node_that_is_not_running_is_a_warning_with_the_command_that_starts_it() {
    let (_fed, core) = lone_team();
    let (code, report) = doctor(&core.config_path(), &[]).await;
    assert_eq!(code, 0, "{report}");
    let (running, next) = line(&report, "node running");
    assert!(running.starts_with("WARN "), "{report}");
    assert!(
        next.unwrap().contains(&format!(
            "tatmx-node --config {}",
            core.config_path().display()
        )),
        "{report}"
    );
    assert_eq!(problems(&report), vec![running.as_str()], "{report}");
}

#[tokio::test]
async fn a_certificate_near_its_end_warns_and_an_expired_one_fails() {
    let (fed, core) = lone_team();
    certify(&fed, &core, OffsetDateTime::now_utc() + Duration::days(10));
    let (code, report) = doctor(&core.config_path(), &[]).await;
    assert_eq!(code, 0, "{report}");
    let (expiry, next) = line(&report, "certificate expiry");
    assert!(expiry.starts_with("WARN "), "{report}");
    assert!(
        expiry.contains("in 9 day(s)") || expiry.contains("in 10 day(s)"),
        "{report}"
    );
    assert!(next.unwrap().contains("tatmx cert renew"), "{report}");

    let (cert, key) = tatmx_tests::expired_certificate(&fed.ca, &core.identity);
    std::fs::write(core.dir.join("node.pem"), cert).unwrap();
    std::fs::write(core.dir.join("node.key"), key).unwrap();
    let (code, report) = doctor(&core.config_path(), &[]).await;
    assert_eq!(code, 1, "{report}");
    let (expiry, next) = line(&report, "certificate expiry");
    assert!(expiry.starts_with("FAIL "), "{report}");
    assert!(expiry.contains("expired on"), "{report}");
    assert!(next.unwrap().contains("tatmx ca sign"), "{report}");
    // Its dates are the only thing wrong with it.
    assert!(
        line(&report, "certificate chain").0.starts_with("OK "),
        "{report}"
    );
    assert!(
        line(&report, "key matches certificate")
            .0
            .starts_with("OK "),
        "{report}"
    );
}

#[tokio::test]
async fn a_ca_near_its_end_warns_and_says_who_rotates_it() {
    // The harness's own CA lives two days.
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    fed.write_config(&core, &[], "");
    let (code, report) = doctor(&core.config_path(), &[]).await;
    assert_eq!(code, 0, "{report}");
    let (expiry, next) = line(&report, "ca certificate expiry");
    assert!(expiry.starts_with("WARN "), "{report}");
    assert!(
        next.unwrap().contains("federation admin must rotate"),
        "{report}"
    );
}

#[tokio::test]
async fn a_key_that_is_not_the_certificates_fails() {
    let (fed, core) = lone_team();
    // Another key of the same team's, as after a `tatmx cert renew` whose certificate never came.
    let (_, other_key) = tatmx_tests::certificate_valid_between(
        &fed.ca,
        &core.identity,
        OffsetDateTime::now_utc() - Duration::hours(1),
        in_a_year(),
    );
    std::fs::write(core.dir.join("node.key"), other_key).unwrap();
    let (code, report) = doctor(&core.config_path(), &[]).await;
    assert_eq!(code, 1, "{report}");
    let (matched, next) = line(&report, "key matches certificate");
    assert!(matched.starts_with("FAIL "), "{report}");
    assert!(
        matched.contains("does not belong to the certificate"),
        "{report}"
    );
    assert!(next.unwrap().contains("CSR"), "{report}");
    assert!(line(&report, "key file").0.starts_with("OK "), "{report}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_the_chain_check() {
    let (fed, core) = lone_team();
    let stranger = TestFederation::new("county-mdt.example");
    let (cert, key) = tatmx_tests::certificate_valid_between(
        &stranger.ca,
        &core.identity,
        OffsetDateTime::now_utc() - Duration::hours(1),
        in_a_year(),
    );
    std::fs::write(core.dir.join("node.pem"), cert).unwrap();
    std::fs::write(core.dir.join("node.key"), key).unwrap();
    let (code, report) = doctor(&core.config_path(), &[]).await;
    assert_eq!(code, 1, "{report}");
    let (chain, _) = line(&report, "certificate chain");
    assert!(chain.starts_with("FAIL "), "{report}");
    assert!(
        chain.contains(&format!(
            "was not issued by the CA in {}",
            fed.ca_path.display()
        )),
        "{report}"
    );
}

#[tokio::test]
async fn an_unreachable_peer_fails_and_says_where_it_was_looked_for() {
    let mut fed = federation();
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    certify(&fed, &core, in_a_year());
    fed.write_config(&core, &[&school], "");
    // The school's node is never started: nothing listens on its port.
    let (code, report) = doctor(&core.config_path(), &[]).await;
    assert_eq!(code, 1, "{report}");
    let (peer, next) = line(&report, "peer lincoln-high");
    assert!(peer.starts_with("FAIL "), "{report}");
    assert!(peer.contains(&school.endpoint()), "{report}");
    assert!(peer.contains("connection refused"), "{report}");
    assert!(next.unwrap().contains("peers[0].endpoint"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_know_this_node_is_reported_as_refusing_it() {
    let mut fed = federation();
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    certify(&fed, &core, in_a_year());
    certify(&fed, &school, in_a_year());
    fed.write_config(&core, &[&school], "");
    // The school lists nobody, so its node refuses the county team at the handshake.
    fed.write_config(&school, &[], "");
    let _school = tatmx_tests::start(&school).await;
    let (code, report) = doctor(&core.config_path(), &[]).await;
    assert_eq!(code, 1, "{report}");
    let (peer, next) = line(&report, "peer lincoln-high");
    assert!(peer.starts_with("FAIL "), "{report}");
    assert!(peer.contains("refused this node"), "{report}");
    assert!(next.unwrap().contains(&core.identity.uri()), "{report}");
}

#[tokio::test]
async fn an_invalid_config_is_named_by_file_line_and_key() {
    let (_fed, core) = lone_team();
    let path = core.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("role = \"core\"", "role = \"boss\"")).unwrap();
    let (code, report) = doctor(&path, &[]).await;
    assert_eq!(code, 1, "{report}");
    let (config, next) = line(&report, "config");
    assert!(config.starts_with("FAIL "), "{report}");
    // `role` is on line 4 of the harness's config.
    assert!(
        config.contains(&format!("{}:4: node.role: expected one of", path.display())),
        "{report}"
    );
    assert!(next.unwrap().contains("county-core.toml"), "{report}");

    let (code, report) = doctor(&core.dir.join("missing.toml"), &[]).await;
    assert_eq!(code, 1, "{report}");
    assert!(
        line(&report, "config").0.contains("no such file"),
        "{report}"
    );
}

#[tokio::test]
async fn a_postgres_store_that_does_not_answer_fails_without_showing_its_password() {
    let mut fed = federation();
    let core = fed.team("county-core", "core", "law-enforcement");
    certify(&fed, &core, in_a_year());
    fed.write_config(&core, &[], "");
    // Port 1 on loopback: nothing listens there. It replaces the store the harness may have
    // given the team (TATMX_TEST_POSTGRES).
    let path = core.config_path();
    let text: String = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| *l != "[store]" && !l.starts_with("url = "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(
        &path,
        format!("{text}\n[store]\nurl = \"postgres://tatmx:PW-7d1e@127.0.0.1:1/tatmx\"\n"),
    )
    .unwrap();
    let (code, report) = doctor(&core.config_path(), &[]).await;
    assert_eq!(code, 1, "{report}");
    let (store, next) = line(&report, "store");
    assert!(store.starts_with("FAIL "), "{report}");
    assert!(store.contains("127.0.0.1:1/tatmx"), "{report}");
    assert!(next.unwrap().contains("store.url"), "{report}");
    assert!(!report.contains("PW-7d1e"), "{report}");
}
