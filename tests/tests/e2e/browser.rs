//! The staff console in a real browser: Debian's headless Chromium, driven by playwright-core
//! from `tests/browser/console.mjs`, against a school's and a county core team's nodes with
//! their consoles on, over real HTTPS.
//!
//! This test starts the two nodes, makes the staff accounts through the Admin API (as `tatmx
//! user add` does), and runs the script with the consoles' addresses and the accounts'
//! passwords and TOTP secrets; the script signs in as each of them and plays the issue's
//! scenarios. Without Chromium, Node.js or the script's npm packages it prints `SKIPPED` with
//! how to install them, and passes, so `cargo test --workspace` passes on any machine; with
//! `TATMX_BROWSER_TESTS=require` (CI sets it) it fails instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tatmx_proto::v1 as pb;
use tatmx_tests::{TeamSpec, TestFederation, console_section, web_certificate};

/// The core team's console locks a session after this long idle: seconds rather than the
/// default half hour, so the idle-lock scenario waits only that long, yet long enough for the
/// chair to wait on a page for news from the school. The school keeps the default, since its
/// sessions sit idle while the core team works on the referral.
const CORE_IDLE_LOCK_MS: u64 = 30_000;

/// The county's own counsel, as in the demo: case questions and notes may go back to the
/// referring school, so the school can read the county's question.
const CASE_NOTES_TO_SCHOOLS: &str = r#"@id("local-case-notes-to-referring-schools")
@reason("this county's agreement with its school district: case questions and notes may go back to the referring school")
permit (principal, action == Action::"disclose", resource == Category::"NARRATIVE")
when { context.recipient.role == "affiliate" && context.recipient.discipline == "education" };
"#;
/// The longest the script may run; it takes well under a minute.
const SCRIPT_TIME_LIMIT: Duration = Duration::from_secs(240);
/// Set to `require` to fail, not skip, when the browser or the npm packages are missing.
const REQUIRE_VAR: &str = "TATMX_BROWSER_TESTS";

/// What the script needs on this machine.
struct Prerequisites {
    /// `tests/browser`: the script and its `node_modules`.
    dir: PathBuf,
    /// Debian's Chromium, or the one `TATMX_CHROMIUM` names.
    chromium: PathBuf,
}

impl Prerequisites {
    /// The prerequisites, or what is missing and how to install it.
    fn find() -> Result<Self, String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
        let chromium = std::env::var_os("TATMX_CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        let mut missing = Vec::new();
        if !chromium.is_file() {
            missing.push(format!("Chromium ({})", chromium.display()));
        }
        let node = Command::new("node").arg("--version").output();
        if !node.is_ok_and(|out| out.status.success()) {
            missing.push("Node.js (node on PATH)".to_owned());
        }
        for module in ["playwright-core/package.json", "axe-core/axe.min.js"] {
            if !dir.join("node_modules").join(module).is_file() {
                missing.push(format!("tests/browser/node_modules/{module}"));
            }
        }
        if missing.is_empty() {
            Ok(Self { dir, chromium })
        } else {
            Err(format!(
                "missing {}; install them with `tests/browser/setup` (as root, it runs \
                 `apt-get install chromium`; then `npm ci` in tests/browser)",
                missing.join(", ")
            ))
        }
    }
}

/// Where screenshots go: `target/browser-screenshots` in the workspace, which CI keeps.
fn screenshot_dir() -> PathBuf {
    std::env::var_os("TATMX_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
            tests
                .parent()
                .unwrap_or(tests)
                .join("target")
                .join("browser-screenshots")
        })
}

/// A new console account, as the script needs it.
async fn add_user(team: &TeamSpec, username: &str, role: &str) -> serde_json::Value {
    let issued = tatmx_tests::admin(team)
        .await
        .add_user(pb::AddUserRequest {
            username: username.into(),
            role: role.into(),
        })
        .await
        .expect("account added")
        .into_inner();
    serde_json::json!({
        "username": username,
        "role": role,
        "password": issued.password,
        "totp_secret": issued.totp_secret,
    })
}

/// Runs `node console.mjs` with `env` until it ends or [`SCRIPT_TIME_LIMIT`] passes, and
/// returns whether it passed and what it printed.
fn run_script(dir: &Path, env: &[(&str, String)], log_dir: &Path) -> (bool, String) {
    let stdout_path = log_dir.join("browser-stdout.txt");
    let stderr_path = log_dir.join("browser-stderr.txt");
    let mut command = Command::new("node");
    command
        .arg("console.mjs")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"));
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("node starts");
    let deadline = Instant::now() + SCRIPT_TIME_LIMIT;
    let passed = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status.success();
        }
        if Instant::now() > deadline {
            // Killing node closes its pipe to Chromium, which then exits too.
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut output = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    if !stderr.trim().is_empty() {
        output.push_str("--- stderr ---\n");
        output.push_str(&stderr);
    }
    if Instant::now() > deadline {
        output.push_str(&format!(
            "--- killed after {} s ---\n",
            SCRIPT_TIME_LIMIT.as_secs()
        ));
    }
    (passed, output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let prerequisites = match Prerequisites::find() {
        Ok(found) => found,
        Err(missing) if std::env::var(REQUIRE_VAR).as_deref() == Ok("require") => {
            panic!("{REQUIRE_VAR}=require, but {missing}")
        }
        Err(missing) => {
            println!("SKIPPED: the browser tests: {missing}");
            return;
        }
    };

    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    for team in [&core, &school] {
        web_certificate(&fed, team);
    }
    let core_idle = format!("{CORE_IDLE_LOCK_MS}ms");
    let local = core.dir.join("local.cedar");
    std::fs::write(&local, CASE_NOTES_TO_SCHOOLS).expect("the county's local rules");
    let policy = format!("[policy]\nfiles = [\"{}\"]\n", local.display());
    fed.write_config(
        &core,
        &[&school],
        &format!("{policy}{}", console_section(&core_idle)),
    );
    fed.write_config(&school, &[&core], &console_section("30m"));
    let core_node = tatmx_tests::start(&core).await;
    let school_node = tatmx_tests::start(&school).await;

    let accounts = serde_json::json!({
        "school": {
            "worker": add_user(&school, "sam", "case-worker").await,
            "lockout": add_user(&school, "lee", "case-worker").await,
            "auditor": add_user(&school, "ada", "auditor").await,
            "admin": add_user(&school, "tess", "admin").await,
            "holder": add_user(&school, "pat", "chair").await,
        },
        "core": {
            "worker": add_user(&core, "wes", "case-worker").await,
            "chair": add_user(&core, "cody", "chair").await,
        },
    });
    let url = |node: &tatmx_node::RunningNode| {
        let addr = node.console_addr().expect("console on");
        format!("https://localhost:{}", addr.port())
    };
    let certificates =
        std::env::join_paths([school.dir.join("console.pem"), core.dir.join("console.pem")])
            .expect("certificate paths");
    let screenshots = screenshot_dir();
    std::fs::create_dir_all(&screenshots).expect("screenshot folder");
    let env = [
        ("TATMX_SCHOOL_CONSOLE", url(&school_node)),
        ("TATMX_CORE_CONSOLE", url(&core_node)),
        ("TATMX_CORE_TEAM", core.identity.team.to_string()),
        ("TATMX_CORE_IDLE_LOCK_MS", CORE_IDLE_LOCK_MS.to_string()),
        (
            "TATMX_CONSOLE_CERTS",
            certificates.to_string_lossy().into_owned(),
        ),
        ("TATMX_ACCOUNTS", accounts.to_string()),
        ("TATMX_SCREENSHOTS", screenshots.display().to_string()),
        (
            "TATMX_CHROMIUM",
            prerequisites.chromium.display().to_string(),
        ),
    ];

    let started = Instant::now();
    let dir = prerequisites.dir.clone();
    let log_dir = fed.dir.path().to_owned();
    // The nodes serve on this runtime's other thread while the script runs.
    let (passed, output) = tokio::task::spawn_blocking(move || run_script(&dir, &env, &log_dir))
        .await
        .expect("script runner");
    println!("{output}");
    println!(
        "browser scenarios took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        screenshots.display()
    );
    assert!(
        passed,
        "the browser scenarios failed: see their output above"
    );
    core_node.shutdown().await;
    school_node.shutdown().await;
}
