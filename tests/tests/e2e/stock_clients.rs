//! Stock gRPC clients on the local sockets (issue 20): a case system written against gRPC's own
//! Python library (grpcio, gRPC's C core underneath, as in C++, Ruby, C# and PHP) reaches the
//! Agency and Admin APIs with `grpc.insecure_channel("unix:" + path)` and no options. Such a
//! client names the socket path, percent-encoded, as the HTTP/2 `:authority`, which the node's
//! HTTP/2 server would refuse on its own.
//!
//! `tests/python/setup` installs grpcio and grpcio-tools into `tests/python/.venv`. Without it the
//! test prints `SKIPPED` and passes, unless `TATMX_PYTHON_TESTS=require` (or
//! `TATMX_BROWSER_TESTS=require`, which CI sets) asks for it.

use std::path::{Path, PathBuf};
use std::process::Command;

use tatmx_tests::*;

/// Set to `require` to fail, not skip, when grpcio is missing.
const REQUIRE_VAR: &str = "TATMX_PYTHON_TESTS";

fn required() -> bool {
    [REQUIRE_VAR, "TATMX_BROWSER_TESTS"]
        .iter()
        .any(|var| std::env::var(var).is_ok_and(|v| v == "require"))
}

/// `tests/python/.venv`'s Python, if it has grpcio and grpcio-tools.
fn python() -> Result<PathBuf, String> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/.venv/bin/python");
    let has = Command::new(&python)
        .args(["-c", "import grpc, grpc_tools.protoc"])
        .output()
        .is_ok_and(|out| out.status.success());
    if has {
        Ok(python)
    } else {
        Err(format!(
            "grpcio is missing ({} cannot import grpc and grpc_tools); install it with \
             `tests/python/setup`",
            python.display()
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_with_no_options_reaches_both_sockets() {
    let python = match python() {
        Ok(python) => python,
        Err(missing) if required() => panic!("{REQUIRE_VAR}=require, but {missing}"),
        Err(missing) => {
            println!("SKIPPED: the stock gRPC client test: {missing}");
            return;
        }
    };
    let (_fed, _core, school) = core_and_school();
    let node = start(&school).await;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = manifest.join("python/stock_client.py");
    let protos = manifest.join("../proto");
    let (agency, admin) = (
        node.agency_socket().to_owned(),
        node.admin_socket().to_owned(),
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(protos)
            .arg(agency)
            .arg(admin)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!(
        "stock_client.py exited {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    // The school has sent and received nothing yet, and knows one peer: the core team.
    assert_eq!(
        lines,
        ["agency inbox OK items=0", "admin peers OK peers=1"],
        "{report}"
    );
    assert!(out.status.success(), "{report}");
    node.shutdown().await;
}
