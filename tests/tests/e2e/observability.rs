//! Observability end to end: what `/metrics` shows about real deliveries, queues, refusals,
//! certificates, directories and the audit log, and what the plaintext gRPC health listener
//! answers while the store can and cannot take writes.
//!
//! The counters and the latency histogram are process-wide and the tests of this file run side
//! by side, so each test has a federation of its own name (its peers' labels are its own) and
//! checks that a count moved rather than what it is.

use std::time::Duration;

use tatmx_proto::v1 as pb;
use tatmx_tests::*;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The value of the sample of `name` whose labels include every pair of `labels`.
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = match series.split_once('{') {
            Some((metric, rest)) => (metric, rest),
            None => (series, ""),
        };
        if metric != name {
            return None;
        }
        labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.parse().ok())
            .flatten()
    })
}

/// Like [`sample`], with an absent sample read as zero: a counter nobody has touched yet.
fn count(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(page, name, labels).unwrap_or(0.0)
}

/// Polls `port`'s /metrics until `accept` finds what it wants in it.
async fn metrics_when<T>(port: u16, what: &str, accept: impl Fn(&str) -> Option<T>) -> T {
    let accept = &accept;
    eventually(Duration::from_secs(20), what, || async move {
        accept(&scrape_metrics(port).await)
    })
    .await
}

/// A core team and a school in a federation named `name`, the school's metrics on a port of
/// its own; `school_extra` is more of the school's config.
fn federation(name: &str, school_extra: &str) -> (TestFederation, TeamSpec, TeamSpec, u16) {
    let mut fed = TestFederation::new(name);
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    let metrics_port = fed.port();
    fed.write_config(&core, &[&school], "");
    fed.write_config(
        &school,
        &[&core],
        &format!("{school_extra}\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"),
    );
    (fed, core, school, metrics_port)
}

/// The test draft, with a reporter: the default policy never lets the reporter's identity
/// leave, so the filter withholds REPORTER_IDENTITY from it.
fn draft_with_reporter(recipient: &str) -> pb::NewReferral {
    let mut draft = draft(recipient);
    if let Some(content) = draft.content.as_mut() {
        content.reporter = Some(pb::ReporterIdentity {
            name: "CANARY-REPORTER-5d21".into(),
            relationship: "teacher".into(),
            contact: String::new(),
        });
    }
    draft
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_referral_shows_its_latency_an_empty_queue_and_what_was_withheld() {
    let (mut fed, core, school, port) = federation("obs-delivered.example", "");
    let core_metrics = fed.port();
    // The core team signs audit checkpoints five times a second; the school keeps the
    // default five minutes, so its new entries stay uncovered during the test.
    fed.write_config(
        &core,
        &[&school],
        &format!(
            "[audit]\ncheckpoint_interval = \"200ms\"\n[metrics]\nlisten = \"127.0.0.1:{core_metrics}\"\n"
        ),
    );
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let peer = core.identity.uri();
    let federation = fed.id.to_string();
    let withheld = [("category", "REPORTER_IDENTITY"), ("outcome", "withhold")];

    let before = scrape_metrics(port).await;
    let id = submit(
        &mut agency(&school).await,
        draft_with_reporter("county-core"),
    )
    .await;
    delivered(&school, &id).await;
    let page = scrape_metrics(port).await;

    let latency = [("peer", peer.as_str()), ("kind", "referral")];
    assert!(
        count(&page, "tatmx_delivery_latency_seconds_count", &latency)
            >= count(&before, "tatmx_delivery_latency_seconds_count", &latency) + 1.0,
        "{page}"
    );
    assert!(
        sample(&page, "tatmx_delivery_latency_seconds_sum", &latency).is_some_and(|s| s > 0.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "tatmx_outbox_depth", &[("peer", &peer)]),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "tatmx_outbox_oldest_age_seconds", &[("peer", &peer)]),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "tatmx_outbox_dead_letters", &[("peer", &peer)]),
        Some(0.0),
        "{page}"
    );
    assert!(
        count(&page, "tatmx_withheld_total", &withheld)
            >= count(&before, "tatmx_withheld_total", &withheld) + 1.0,
        "{page}"
    );
    // The test CA issues node certificates for two days.
    let days = sample(
        &page,
        "tatmx_certificate_expiry_days",
        &[("federation", &federation)],
    )
    .unwrap_or_else(|| panic!("no certificate expiry: {page}"));
    assert!(days > 1.9 && days <= 2.0, "{days}");
    // The submission and the delivery wrote audit entries no checkpoint covers yet.
    let lag = sample(&page, "tatmx_audit_checkpoint_lag_entries", &[]);
    assert!(lag.is_some_and(|l| l >= 1.0), "{page}");
    assert!(
        sample(&page, "tatmx_audit_checkpoint_lag_seconds", &[]).is_some_and(|s| s >= 0.0),
        "{page}"
    );
    assert_eq!(sample(&page, "tatmx_store_up", &[]), Some(1.0), "{page}");
    // Nothing about the subject or the reporter is in the page.
    assert!(!page.contains("CANARY"), "{page}");
    assert!(!page.contains(&id), "{page}");

    // The core team's checkpoints soon cover everything it wrote.
    metrics_when(
        core_metrics,
        "the core team's checkpoint to catch up",
        |page| {
            (sample(page, "tatmx_audit_checkpoint_lag_entries", &[]) == Some(0.0)
                && sample(page, "tatmx_audit_checkpoint_lag_seconds", &[]) == Some(0.0)
                && sample(page, "tatmx_audit_checkpoint_age_seconds", &[]).is_some())
            .then_some(())
        },
    )
    .await;

    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_gauges_appear_once_a_directory_is_imported() {
    let (fed, core, school, port) = federation("obs-directory.example", "");
    let school_node = start(&school).await;
    let federation = fed.id.to_string();
    let labels = [("federation", federation.as_str())];

    let page = scrape_metrics(port).await;
    assert_eq!(
        sample(&page, "tatmx_directory_present", &labels),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "tatmx_directory_age_seconds", &labels),
        None,
        "no directory, no age: {page}"
    );

    let document = signed_directory(&fed.ca, 1, &[&core, &school], &[&fed.ca]);
    admin(&school)
        .await
        .import_directory(pb::ImportDirectoryRequest { document })
        .await
        .expect("directory imported");
    let page = scrape_metrics(port).await;
    assert_eq!(
        sample(&page, "tatmx_directory_present", &labels),
        Some(1.0),
        "{page}"
    );
    let age = sample(&page, "tatmx_directory_age_seconds", &labels)
        .unwrap_or_else(|| panic!("no directory age: {page}"));
    assert!((0.0..60.0).contains(&age), "{age}");
    school_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_is_down_shows_a_growing_queue_until_it_is_back() {
    let (_fed, core, school, port) = federation("obs-down.example", "");
    let school_node = start(&school).await;
    let peer = core.identity.uri();
    let labels = [("peer", peer.as_str())];

    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    metrics_when(
        port,
        "the queue to show a message older than a second",
        |page| {
            (sample(page, "tatmx_outbox_depth", &labels) == Some(1.0)
                && sample(page, "tatmx_outbox_oldest_age_seconds", &labels)
                    .is_some_and(|a| a >= 1.0))
            .then_some(())
        },
    )
    .await;

    // The peer comes back: the queue drains, and the latency counts the time it waited.
    let core_node = start(&core).await;
    delivered(&school, &id).await;
    let page = scrape_metrics(port).await;
    assert_eq!(
        sample(&page, "tatmx_outbox_depth", &labels),
        Some(0.0),
        "{page}"
    );
    let latency = [("peer", peer.as_str()), ("kind", "referral")];
    assert!(
        sample(&page, "tatmx_delivery_latency_seconds_sum", &latency).is_some_and(|s| s >= 1.0),
        "{page}"
    );
    school_node.shutdown().await;
    core_node.shutdown().await;
}

// On the current-thread runtime, whose time the test can pause.
#[tokio::test]
async fn a_message_past_its_maximum_age_counts_as_a_dead_letter_of_its_peer() {
    let (_fed, core, school, port) = federation("obs-dead.example", "");
    let school_node = start_on_tokio_time(&school).await;
    let peer = core.identity.uri();
    let labels = [("peer", peer.as_str())];
    let before = scrape_metrics(port).await;

    submit(&mut agency(&school).await, draft("county-core")).await;
    // Past the default maximum age of seven days, with the county's node down throughout.
    skip_ahead(Duration::from_secs(8 * 24 * 3600)).await;
    let page = metrics_when(port, "the message to become a dead letter", |page| {
        (sample(page, "tatmx_outbox_dead_letters", &labels) == Some(1.0)).then(|| page.to_owned())
    })
    .await;
    assert_eq!(
        sample(&page, "tatmx_outbox_depth", &labels),
        Some(0.0),
        "{page}"
    );
    assert!(
        count(&page, "tatmx_dead_letters_total", &[])
            >= count(&before, "tatmx_dead_letters_total", &[]) + 1.0,
        "{page}"
    );
    school_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_calls_are_counted_by_reason() {
    let (fed, core, school, port) = federation("obs-refused.example", "");
    let school_node = start(&school).await;
    let before = scrape_metrics(port).await;
    // The core team's node, played by hand over one open connection.
    let mut open = federation_client(&core.dir, &[&fed.ca_path], &core.identity, &school);
    open.hello(pb::HelloRequest {
        protocol_version: 1,
        ..Default::default()
    })
    .await
    .expect("a peer is welcome");

    let invalid = [
        ("method", "DeliverReferral"),
        ("code", "InvalidArgument"),
        ("reason", "invalid_argument"),
    ];
    let status = open
        .deliver_referral(pb::DeliverReferralRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // Once it is no longer a peer, its open connection is refused call by call (a new one
    // would be refused in the handshake, before any method is called).
    admin(&school)
        .await
        .remove_peer(pb::PeerRef {
            team: "county-core".into(),
        })
        .await
        .expect("peer removed");
    let unknown = [
        ("method", "Hello"),
        ("code", "PermissionDenied"),
        ("reason", "unknown_peer"),
    ];
    let status = open
        .hello(pb::HelloRequest {
            protocol_version: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    // And a new connection is refused in the handshake, before any call.
    let cert = std::fs::read_to_string(core.dir.join("node.pem")).expect("core cert");
    let key = std::fs::read_to_string(core.dir.join("node.key")).expect("core key");
    let verdict = raw_handshake_verdict(&cert, &key, &school).await;
    assert!(verdict.contains("alert"), "{verdict}");

    let page = scrape_metrics(port).await;
    let handshake = [("reason", "unknown_peer")];
    assert!(
        count(&page, "tatmx_handshakes_refused_total", &handshake)
            >= count(&before, "tatmx_handshakes_refused_total", &handshake) + 1.0,
        "{page}"
    );
    for labels in [&invalid[..], &unknown[..]] {
        assert!(
            count(&page, "tatmx_inbound_rejected_total", labels)
                >= count(&before, "tatmx_inbound_rejected_total", labels) + 1.0,
            "{labels:?}: {page}"
        );
    }
    // The label says what kind of refusal it was, never which team or certificate.
    assert!(
        !page
            .lines()
            .any(|l| l.starts_with("tatmx_inbound_rejected") && l.contains("county-core")),
        "{page}"
    );
    school_node.shutdown().await;
}

/// Asks the health service at `port`, over plaintext, about `service`.
async fn health_of(port: u16, service: &str) -> Result<ServingStatus, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?
        .into_inner();
    Ok(ServingStatus::try_from(reply.status).unwrap_or(ServingStatus::Unknown))
}

/// `team`'s node cut off from its store, for real, until [`Outage::end`].
///
/// On SQLite the store is a file the node already holds open, so removing it or taking away
/// its permissions changes nothing for the node. What does leave a node unable to work is
/// another process holding the database locked, as a `sqlite3` shell left in a transaction or
/// a backup script taking an exclusive lock would: every write the node tries fails "busy"
/// after the busy timeout, so it can accept nothing, while reads still work (WAL), which is
/// why the store check begins a write. On PostgreSQL the outage is the server refusing the
/// node, as when it goes away: the node's database stops accepting connections and the
/// connections it has are ended.
struct Outage {
    /// The connection that holds the lock (SQLite), or that administers the server.
    connection: sqlx::AnyConnection,
    /// On PostgreSQL, the node's database.
    postgres_database: Option<String>,
}

impl Outage {
    async fn begin(team: &TeamSpec) -> Self {
        match (&team.database, backend::postgres()) {
            (Some(url), Some(base)) => {
                let name = url.rsplit('/').next().expect("a database name").to_owned();
                let mut connection =
                    backend::connect(Some(&format!("{base}/postgres")), &team.dir, true).await;
                for statement in [
                    format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
                    format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                    ),
                ] {
                    sqlx::query(&statement)
                        .execute(&mut connection)
                        .await
                        .expect("cut the node off from its database");
                }
                Self {
                    connection,
                    postgres_database: Some(name),
                }
            }
            _ => {
                let mut connection = store_connection(team, true).await;
                sqlx::query("BEGIN EXCLUSIVE")
                    .execute(&mut connection)
                    .await
                    .expect("lock the database");
                Self {
                    connection,
                    postgres_database: None,
                }
            }
        }
    }

    async fn end(mut self) {
        let statement = match &self.postgres_database {
            Some(name) => format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
            None => "ROLLBACK".to_owned(),
        };
        sqlx::query(&statement)
            .execute(&mut self.connection)
            .await
            .expect("end the outage");
        sqlx::Connection::close(self.connection)
            .await
            .expect("close the connection");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_listener_answers_probes_and_readiness_follows_the_store() {
    // Reserved before the federation exists, which is made with the listener in its config.
    let health = tatmx_node::loopback::ReservedPort::new().expect("a loopback port");
    let health_port = health.port();
    let (_fed, core, school, metrics_port) = federation(
        "obs-health.example",
        &format!("[health]\nlisten = \"127.0.0.1:{health_port}\"\ncheck_interval = \"200ms\"\n"),
    );
    let school_node = start(&school).await;
    for service in ["", "liveness", "readiness", "tatmx.v1.Federation"] {
        assert_eq!(
            health_of(health_port, service).await.unwrap(),
            ServingStatus::Serving,
            "{service:?}"
        );
    }
    assert_eq!(
        health_of(health_port, "no.such.Service")
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );
    // Health and nothing else: the Federation API is not served without mutual TLS.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{health_port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let status = tatmx_proto::v1::federation_client::FederationClient::new(channel)
        .hello(pb::HelloRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");

    let outage = Outage::begin(&school).await;
    eventually(Duration::from_secs(20), "readiness to turn off", || async {
        (health_of(health_port, "readiness").await.ok()? == ServingStatus::NotServing).then_some(())
    })
    .await;
    assert_eq!(
        health_of(health_port, "").await.unwrap(),
        ServingStatus::NotServing
    );
    assert_eq!(
        health_of(health_port, "tatmx.v1.Federation").await.unwrap(),
        ServingStatus::NotServing
    );
    // Alive all the same: a liveness probe must not restart a node that waits for its store.
    assert_eq!(
        health_of(health_port, "liveness").await.unwrap(),
        ServingStatus::Serving
    );
    let page = scrape_metrics(metrics_port).await;
    assert_eq!(sample(&page, "tatmx_store_up", &[]), Some(0.0), "{page}");

    outage.end().await;
    eventually(
        Duration::from_secs(20),
        "readiness to come back",
        || async {
            (health_of(health_port, "readiness").await.ok()? == ServingStatus::Serving)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        health_of(health_port, "").await.unwrap(),
        ServingStatus::Serving
    );
    let page = scrape_metrics(metrics_port).await;
    assert_eq!(sample(&page, "tatmx_store_up", &[]), Some(1.0), "{page}");
    let _ = core;
    school_node.shutdown().await;
}
