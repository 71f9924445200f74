//! A node that fails to start part way leaves nothing of itself running.
//!
//! Start-up spawns the delivery workers, the jobs and the Federation server before it binds the
//! Agency socket; a socket another node is serving stops start-up there. Everything spawned
//! before must be stopped by the time `start` returns its error, or a supervisor that retries
//! start-up would pile up workers and listeners in one process.

use tatmx_node::StartError;
use tatmx_tests::TestFederation;

#[tokio::test]
async fn a_failed_start_stops_everything_it_had_spawned() {
    let mut fed = TestFederation::new("failed-start");
    let school = fed.team("school", "affiliate", "education");
    let config = fed.write_config(&school, &[], "");
    // Another process serves the Agency socket already.
    std::fs::create_dir_all(school.socket().parent().expect("socket dir")).expect("data dir");
    let _squatter = tokio::net::UnixListener::bind(school.socket()).expect("squat the socket");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let federation_addr = listener.local_addr().expect("address");

    let refused = tatmx_node::start_with_listener(config, Some(listener)).await;

    assert!(
        matches!(refused, Err(StartError::SocketInUse(_))),
        "start-up should stop at the Agency socket, got {:?}",
        refused.err()
    );
    // The Federation server had been serving on the listener it was given; it must be gone,
    // and its listener closed with it.
    let dialled = tokio::net::TcpStream::connect(federation_addr).await;
    assert!(
        dialled.is_err(),
        "the Federation listener of a node that failed to start still accepts connections"
    );
}
