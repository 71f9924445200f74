//! `tatmx completions` and `tatmx man`: what a packager installs, made by the real binary.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tatmx");

fn stdout(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "tatmx {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn completions_know_the_commands_in_every_shell() {
    let bash = stdout(&["completions", "bash"]);
    assert!(bash.contains("complete -F _tatmx"), "{bash}");
    for word in ["referral", "doctor", "inbox", "--admin-socket", "--json"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    // The other shells, each in its own form.
    for (shell, mark) in [
        ("zsh", "#compdef tatmx"),
        ("fish", "complete -c tatmx"),
        ("elvish", "edit:completion:arg-completer[tatmx]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = stdout(&["completions", shell]);
        assert!(script.contains(mark), "{shell}: {script}");
        assert!(script.contains("referral"), "{shell} lacks referral");
    }
    let unknown = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
}

#[test]
fn the_manual_page_is_roff_titled_tatmx_and_lists_every_command() {
    let page = stdout(&["man"]);
    assert!(page.contains(".TH TATMX 1"), "{page}");
    for command in ["doctor", "referral", "inbox", "completions", "audit"] {
        assert!(page.contains(command), "the page lacks {command}");
    }
}

#[test]
fn man_out_writes_one_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let said = stdout(&["man", "--out", out.to_str().unwrap()]);
    assert!(said.contains("manual pages"), "{said}");
    for (name, title) in [
        ("tatmx.1", ".TH TATMX 1"),
        ("tatmx-doctor.1", ".TH TATMX-DOCTOR 1"),
        ("tatmx-referral-send.1", ".TH TATMX-REFERRAL-SEND 1"),
        ("tatmx-audit-disclosures.1", ".TH TATMX-AUDIT-DISCLOSURES 1"),
    ] {
        let page =
            std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(page.contains(title), "{name}: {page}");
    }
    let doctor = std::fs::read_to_string(out.join("tatmx-doctor.1")).unwrap();
    assert!(doctor.contains("warn\\-days"), "{doctor}");
    // clap's `help` pseudo-command gets no pages.
    assert!(!out.join("tatmx-help.1").exists());
    let pages = std::fs::read_dir(&out).unwrap().count();
    assert!(pages > 40, "only {pages} pages");
}
