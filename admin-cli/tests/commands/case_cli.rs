//! `tatmx referral ask|answer|inform|plan|reassess|due|show` as staff run them: the real
//! binary against two real nodes, from the county's question to the school reading its
//! reassessment.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::path::Path;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tatmx");

/// Runs `tatmx` against a team's sockets; returns success, stdout and stderr.
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

/// Runs a command that must succeed, and returns its standard output.
async fn ok(dir: &Path, args: &[&str]) -> String {
    let (ok, stdout, stderr) = tatmx(dir, args).await;
    assert!(ok, "tatmx {args:?} failed: {stderr}");
    stdout
}

async fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(dir, args).await).unwrap()
}

fn date_in(days: i64) -> String {
    let date = time::OffsetDateTime::now_utc().date() + time::Duration::days(days);
    let format = time::macros::format_description!("[year]-[month]-[day]");
    date.format(&format).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_is_asked_answered_managed_and_reassessed_from_the_command_line() {
    let (_fed, core, school) = tatmx_tests::core_and_school();
    let _core_node = tatmx_tests::start(&core).await;
    let _school_node = tatmx_tests::start(&school).await;
    let mut client = tatmx_tests::agency(&school).await;
    let id = tatmx_tests::submit(&mut client, tatmx_tests::draft("county-core")).await;
    tatmx_tests::delivered(&school, &id).await;

    // The chair previews a question: under the default policy its text stays, what is wanted
    // goes.
    let preview = ok(
        &core.dir,
        &[
            "referral",
            "ask",
            &id,
            "--question",
            "Who else saw it?",
            "--want",
            "behavior",
            "--dry-run",
        ],
    )
    .await;
    assert!(
        preview.contains("Preview only; nothing was sent"),
        "{preview}"
    );
    assert!(preview.contains("NARRATIVE"), "{preview}");
    assert!(preview.contains("wanted: BEHAVIOR"), "{preview}");
    let asked = json(
        &core.dir,
        &[
            "referral",
            "ask",
            &id,
            "--question",
            "Who else saw it?",
            "--want",
            "BEHAVIOR",
            "--json",
        ],
    )
    .await;
    let question = asked["message_id"].as_str().unwrap().to_owned();

    // The school reads it in the case and answers it.
    let shown = tatmx_tests::eventually(
        std::time::Duration::from_secs(10),
        "the question at the school",
        || {
            let dir = school.dir.clone();
            let id = id.clone();
            async move {
                let (_, stdout, _) = tatmx(&dir, &["referral", "show", &id]).await;
                stdout.contains("information-request").then_some(stdout)
            }
        },
    )
    .await;
    assert!(shown.contains("wanted: BEHAVIOR"), "{shown}");
    assert!(shown.contains("withheld: NARRATIVE"), "{shown}");
    let answered = ok(
        &school.dir,
        &[
            "referral",
            "answer",
            &id,
            "--to",
            &question,
            "--text",
            "Two classmates were at the table.",
        ],
    )
    .await;
    assert!(answered.contains("Supplement"), "{answered}");

    // The county completes the assessment and manages the case.
    ok(&core.dir, &["referral", "accept", &id]).await;
    ok(&core.dir, &["referral", "status", &id, "in-assessment"]).await;
    ok(
        &core.dir,
        &[
            "referral",
            "complete",
            &id,
            "--scheme",
            "CSTAG",
            "--level",
            "substantive",
            "--management-plan",
        ],
    )
    .await;
    let refused = tatmx(
        &core.dir,
        &[
            "referral",
            "plan",
            &id,
            "--intervention",
            "pep-talk:lincoln-high",
            "--next",
            &date_in(14),
        ],
    )
    .await;
    assert!(!refused.0);
    assert!(
        refused.2.contains("restrict-weapons-access"),
        "{}",
        refused.2
    );
    ok(
        &core.dir,
        &[
            "referral",
            "plan",
            &id,
            "--intervention",
            "check-ins:lincoln-high",
            "--intervention",
            "restrict-weapons-access:county-core",
            "--next",
            &date_in(14),
        ],
    )
    .await;
    ok(
        &core.dir,
        &[
            "referral",
            "reassess",
            &id,
            "--scheme",
            "CSTAG",
            "--level",
            "transient",
            "--intervention",
            "check-ins:lincoln-high",
            "--next",
            &date_in(5),
        ],
    )
    .await;
    let due = json(&core.dir, &["referral", "due", "--json"]).await;
    assert_eq!(due["coming_due"][0]["referral_id"], id.as_str(), "{due}");
    assert_eq!(due["coming_due"][0]["days"], 5, "{due}");

    // The school sends an urgent tripwire report; the county's inbox says so.
    ok(
        &school.dir,
        &[
            "referral",
            "inform",
            &id,
            "--kind",
            "tripwire-report",
            "--text",
            "A post with a photo of a rifle.",
            "--urgent",
        ],
    )
    .await;
    let inbox = tatmx_tests::eventually(
        std::time::Duration::from_secs(10),
        "the report in the county's inbox",
        || {
            let dir = core.dir.clone();
            async move {
                let (_, stdout, _) = tatmx(&dir, &["inbox"]).await;
                stdout.contains("URGENT").then_some(stdout)
            }
        },
    )
    .await;
    assert!(inbox.contains("new-information URGENT"), "{inbox}");

    // The school reads the reassessment, and the case's merged content.
    let shown = tatmx_tests::eventually(
        std::time::Duration::from_secs(10),
        "the reassessment at the school",
        || {
            let dir = school.dir.clone();
            let id = id.clone();
            async move {
                let (_, stdout, _) = tatmx(&dir, &["referral", "show", &id]).await;
                stdout.contains("reassessment").then_some(stdout)
            }
        },
    )
    .await;
    assert!(shown.contains("under-management"), "{shown}");
    assert!(
        shown.contains("level of concern: transient (CSTAG)"),
        "{shown}"
    );
    assert!(
        shown.contains("intervention: check-ins by lincoln-high"),
        "{shown}"
    );
    let record = json(&school.dir, &["referral", "show", &id, "--json"]).await;
    let kinds: Vec<&str> = record["case_messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "information-request",
            "supplement",
            "management-plan",
            "reassessment",
            "new-information"
        ]
    );
}
