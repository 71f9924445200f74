//! `tatmx user add|list|disable|reset` against a real node's Admin socket: the credentials are
//! printed once and work, the list never shows them, and disabling and resetting take effect.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tatmx");

/// Runs `tatmx` against `admin_socket`; returns (success, stdout, stderr).
fn tatmx(admin_socket: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .env("TATMX_ADMIN_SOCKET", admin_socket)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The value printed after `label` on its line.
fn printed<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label} in:\n{stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_lists_disables_and_resets_console_accounts() {
    let (_fed, core, _school) = tatmx_tests::core_and_school();
    let node = tatmx_tests::start(&core).await;
    let socket = node.admin_socket().to_owned();

    let (ok, added, err) = tatmx(&socket, &["user", "add", "alice", "--role", "chair"]);
    assert!(ok, "{err}");
    let password = printed(&added, "initial password:").to_owned();
    let secret = printed(&added, "TOTP secret:").to_owned();
    assert!(printed(&added, "TOTP URI:").starts_with("otpauth://totp/"));
    assert_eq!(password.len(), 23, "{added}");
    let account = node_store_account(&core, "alice").await;
    assert!(account.0.starts_with("$argon2id$"), "the node keeps a hash");
    assert!(!account.0.contains(&password));
    assert_eq!(
        tatmx_node::staff::credentials::secret_base32(&account.1),
        secret
    );

    let (ok, _, err) = tatmx(&socket, &["user", "add", "alice", "--role", "chair"]);
    assert!(!ok && err.contains("already an account"), "{err}");
    let (ok, _, err) = tatmx(&socket, &["user", "add", "bob", "--role", "boss"]);
    assert!(!ok && err.contains("role"), "{err}");
    let (ok, _, err) = tatmx(&socket, &["user", "add", "Bob:1", "--role", "chair"]);
    assert!(!ok && err.contains("username"), "{err}");

    let (ok, listed, err) = tatmx(&socket, &["user", "list", "--json"]);
    assert!(ok, "{err}");
    let users: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(users[0]["username"], "alice");
    assert_eq!(users[0]["role"], "chair");
    assert_eq!(users[0]["state"], "active");
    assert!(!listed.contains(&password) && !listed.contains(&secret));

    let (ok, _, err) = tatmx(&socket, &["user", "disable", "alice"]);
    assert!(ok, "{err}");
    let (_, listed, _) = tatmx(&socket, &["user", "list"]);
    assert!(listed.contains("disabled"), "{listed}");

    let (ok, reset, err) = tatmx(&socket, &["user", "reset", "alice"]);
    assert!(ok, "{err}");
    assert_ne!(printed(&reset, "initial password:"), password);
    assert_ne!(printed(&reset, "TOTP secret:"), secret);
    let (_, listed, _) = tatmx(&socket, &["user", "list", "--json"]);
    let users: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(users[0]["state"], "active");

    let (ok, _, err) = tatmx(&socket, &["user", "disable", "nobody"]);
    assert!(!ok && err.contains("no console account"), "{err}");
    node.shutdown().await;
}

/// The stored password hash and TOTP secret of `username`, read beside the running node.
async fn node_store_account(team: &tatmx_tests::TeamSpec, username: &str) -> (String, Vec<u8>) {
    use sqlx::Row;
    let mut connection = tatmx_tests::store_connection(team, false).await;
    let row =
        sqlx::query("SELECT password_hash, totp_secret FROM console_accounts WHERE username = $1")
            .bind(username)
            .fetch_one(&mut connection)
            .await
            .unwrap();
    let account = (row.get("password_hash"), row.get("totp_secret"));
    sqlx::Connection::close(connection).await.ok();
    account
}
