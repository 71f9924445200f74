//! Wiring: from a validated [`Config`] to a running node, and back down again.
//!
//! Start-up loads the certificates, opens the store and builds the trust state before anything
//! listens, so a node that cannot serve correctly does not serve at all. Then the delivery
//! workers, the directory refresher, the store check, the Federation listener (TCP, mutual
//! TLS), the Agency and Admin listeners (Unix sockets, 0600), and the optional metrics, health
//! and staff console listeners start, all sharing one shutdown signal.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tatmx_proto::v1::admin_server::AdminServer;
use tatmx_proto::v1::agency_server::AgencyServer;
use tatmx_proto::v1::federation_server::FederationServer;
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::admin::AdminService;
use crate::agency::AgencyService;
use crate::clock::Clock;
use crate::config::Config;
use crate::federation::FederationService;
use crate::federation::witness::Witness;
use crate::store::Store;
use crate::tls::{Credentials, Identities, TlsError};
use crate::trust::{Trust, TrustChangeError, TrustConfig};

/// Why a node could not start.
/// How soon a replica on a shared store sees trust changes made through another replica.
const TRUST_FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// TLS material was missing or unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The store could not be opened.
    #[error("{location}: {source}")]
    Store {
        /// The database file or (without credentials) URL.
        location: String,
        /// What went wrong.
        source: crate::store::StoreError,
    },
    /// A directory or socket could not be prepared.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The Federation listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Another node already serves the Agency socket.
    #[error("{0}: another tatmx node is already serving this socket")]
    SocketInUse(PathBuf),
    /// The policy files do not validate; every problem is listed with file and line.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// The trust state could not be built.
    #[error(transparent)]
    Trust(#[from] TrustChangeError),
    /// gRPC reflection could not be set up.
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The staff console could not start.
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    /// The `[email]` relay could not be set up (a password or CA file unreadable).
    #[error(transparent)]
    Email(#[from] crate::notify::MailError),
}

/// How long shutdown waits for in-flight calls and open connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A node that is serving. Dropping it does not stop it; call [`RunningNode::shutdown`].
pub struct RunningNode {
    /// Where the Federation API listens.
    federation_addr: SocketAddr,
    /// The Agency API socket.
    agency_socket: PathBuf,
    /// The Admin API socket.
    admin_socket: PathBuf,
    /// Where the staff console listens, when it is on.
    console_addr: Option<SocketAddr>,
    /// Stops every task.
    shutdown: CancellationToken,
    /// Servers and workers, awaited on shutdown.
    tasks: Vec<JoinHandle<()>>,
    /// Closed last, after every task has stopped.
    store: Store,
    /// Checks the audit checkpoints and tree heads peers show.
    witness: Witness,
}

impl RunningNode {
    /// The witness of peers' audit logs: what the delivery paths hand each checkpoint and tree
    /// head a peer shows. Tests hand it a head as a batch would.
    pub fn witness(&self) -> &Witness {
        &self.witness
    }

    /// The bound Federation address (useful when the config asked for port 0).
    pub fn federation_addr(&self) -> SocketAddr {
        self.federation_addr
    }

    /// The Agency API socket path.
    pub fn agency_socket(&self) -> &Path {
        &self.agency_socket
    }

    /// The Admin API socket path.
    pub fn admin_socket(&self) -> &Path {
        &self.admin_socket
    }

    /// The bound console address, when `[console]` is configured.
    pub fn console_addr(&self) -> Option<SocketAddr> {
        self.console_addr
    }

    /// A token that stops the node when cancelled, for signal handlers.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops listening, lets in-flight calls finish, stops the workers and closes the store.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the node stops (after its shutdown token is cancelled). Servers get
    /// [`SHUTDOWN_GRACE`] to finish in-flight calls; a client that keeps its connection open
    /// longer is cut off rather than allowed to hold the node up.
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        stop_all(self.tasks).await;
        self.store.close().await;
        let _ = std::fs::remove_file(&self.agency_socket);
        let _ = std::fs::remove_file(&self.admin_socket);
        tracing::info!("node stopped");
    }
}

/// Starts a node, binding the Federation address from the config.
pub async fn start(config: Config) -> Result<RunningNode, StartError> {
    start_with_listener(config, None).await
}

/// Starts a node on an already-bound Federation listener, so a caller can learn the port
/// before the node exists (tests and the demo use this to wire peers to each other).
///
/// A start that fails part way stops everything it had spawned, and waits for it, before it
/// returns the error: no delivery worker, job or listener outlives a node that never ran.
pub async fn start_with_listener(
    config: Config,
    listener: Option<std::net::TcpListener>,
) -> Result<RunningNode, StartError> {
    start_with_clock(config, listener, Clock::system()).await
}

/// As [`start_with_listener`], with the node reading the date and time from `clock` rather
/// than the system's. Tests give it a [`Clock::tokio`], so that under tokio's paused time
/// retries, dead letters, session locks and checkpoints come due when the test says.
pub async fn start_with_clock(
    config: Config,
    listener: Option<std::net::TcpListener>,
    clock: Clock,
) -> Result<RunningNode, StartError> {
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    match serve(config, listener, clock, &shutdown, &mut tasks).await {
        Ok(serving) => Ok(RunningNode {
            federation_addr: serving.federation_addr,
            agency_socket: serving.agency_socket,
            admin_socket: serving.admin_socket,
            console_addr: serving.console_addr,
            shutdown,
            tasks,
            store: serving.store,
            witness: serving.witness,
        }),
        Err(e) => {
            tracing::error!(error = %e, spawned = tasks.len(), "start-up failed; stopping what it had started");
            shutdown.cancel();
            stop_all(tasks).await;
            Err(e)
        }
    }
}

/// What a successful [`serve`] hands to its [`RunningNode`].
struct Serving {
    /// Where the Federation API listens.
    federation_addr: SocketAddr,
    /// The Agency API socket.
    agency_socket: PathBuf,
    /// The Admin API socket.
    admin_socket: PathBuf,
    /// Where the staff console listens, when it is on.
    console_addr: Option<SocketAddr>,
    /// Closed last, after every task has stopped.
    store: Store,
    /// Checks the audit checkpoints and tree heads peers show.
    witness: Witness,
}

/// Waits up to [`SHUTDOWN_GRACE`] in all for `tasks`, whose shutdown was signalled, and aborts
/// any still running then.
async fn stop_all(tasks: Vec<JoinHandle<()>>) {
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    for mut task in tasks {
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "a node task ended abnormally"),
            Err(_) => {
                tracing::warn!("a node task did not stop within the grace period; aborting it");
                task.abort();
            }
        }
    }
}

/// Loads, opens and binds everything, spawning each task into `tasks` as it goes, all under
/// `shutdown`.
async fn serve(
    config: Config,
    listener: Option<std::net::TcpListener>,
    clock: Clock,
    shutdown: &CancellationToken,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<Serving, StartError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| StartError::Io { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .map_err(io(&config.data_dir))?;

    let mut identities = Identities::new(Credentials::load(
        &config.tls.cert,
        &config.tls.key,
        &config.local.identity,
    )?);
    let mut anchors = vec![(
        config.tls.ca.display().to_string(),
        crate::tls::read_pem_file(&config.tls.ca)?,
    )];
    let mut cert_files = BTreeMap::from([(
        config.local.identity.federation.clone(),
        (config.tls.cert.clone(), config.tls.key.clone()),
    )]);
    for membership in &config.memberships {
        identities = identities.with(Credentials::load(
            &membership.tls.cert,
            &membership.tls.key,
            &membership.identity,
        )?);
        anchors.push((
            membership.tls.ca.display().to_string(),
            crate::tls::read_pem_file(&membership.tls.ca)?,
        ));
        cert_files.insert(
            membership.identity.federation.clone(),
            (membership.tls.cert.clone(), membership.tls.key.clone()),
        );
    }
    let policy = Arc::new(crate::policy::Policy::load(&config.policy_files)?);
    let case_key_path = config.data_dir.join("case-handle.key");
    let case_key = Arc::new(
        crate::filter::CaseKey::load_or_create(&case_key_path).map_err(io(&case_key_path))?,
    );
    let store = Store::open_at(&config.store)
        .await
        .map_err(|source| StartError::Store {
            location: config.store.to_string(),
            source,
        })?
        .with_clock(clock);
    let trust = Trust::load(
        TrustConfig {
            local: config.local.clone(),
            anchors,
            peers: config.peers.clone(),
            cert_files,
            max_directory_age: config.directory.max_age,
        },
        identities,
        store.clone(),
    )
    .await?;
    for warning in crate::admin::warnings(&trust.state()) {
        tracing::warn!("{warning}");
    }
    let witness = Witness::new(store.clone(), trust.clone(), config.delivery.clone());
    let (outbox, supervisor) = crate::delivery::start(
        store.clone(),
        trust.clone(),
        config.delivery.clone(),
        witness.clone(),
        shutdown.clone(),
    );
    tasks.push(supervisor);
    tasks.push(tokio::spawn(crate::refresh::run(
        trust.clone(),
        config.directory.clone(),
        config.delivery.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(crate::jobs::retention::run(
        store.clone(),
        config.retention.clone(),
        shutdown.clone(),
    )));
    if store.backend() == crate::store::Backend::Postgres {
        // Replicas share the store: a trust change made through one reaches the others.
        tasks.push(tokio::spawn(
            trust
                .clone()
                .follow_store(TRUST_FOLLOW_INTERVAL, shutdown.clone()),
        ));
    }
    let store_up = crate::health::StoreUp::default();
    if let Some(addr) = config.metrics_listen {
        let listener = crate::scrape::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        if !addr.ip().is_loopback() {
            // The page names peer teams and federations, and has no authentication.
            tracing::warn!(%addr, "metrics are served beyond this host; firewall the port");
        }
        tasks.push(tokio::spawn(crate::scrape::serve(
            listener,
            crate::scrape::Sources {
                store: store.clone(),
                trust: trust.clone(),
                store_up: store_up.clone(),
            },
            shutdown.clone(),
        )));
    }
    // Bound now so that a taken port stops start-up; it serves once the statuses are set.
    let health_tcp = match config.health.listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?,
        ),
        None => None,
    };
    tasks.push(tokio::spawn(crate::jobs::audit_checkpoints::run(
        store.clone(),
        trust.clone(),
        config.audit.clone(),
        shutdown.clone(),
    )));
    if let Some(email) = &config.email {
        let relay = crate::notify::Relay::new(email)?;
        tasks.push(tokio::spawn(crate::notify::run(
            store.clone(),
            relay,
            email.interval,
            shutdown.clone(),
        )));
    }

    let tcp = match listener {
        Some(listener) => listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(listener)),
        None => TcpListener::bind(config.federation.listen).await,
    }
    .map_err(|source| StartError::Bind {
        addr: config.federation.listen,
        source,
    })?;
    let federation_addr = tcp.local_addr().map_err(|source| StartError::Bind {
        addr: config.federation.listen,
        source,
    })?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<FederationServer<FederationService>>()
        .await;
    health.set_serving::<AgencyServer<AgencyService>>().await;
    health.set_serving::<AdminServer<AdminService>>().await;
    crate::health::start_serving(&health).await;
    tasks.push(tokio::spawn(crate::health::watch_store(
        store.clone(),
        health.clone(),
        store_up,
        config.health.check_interval,
        shutdown.clone(),
    )));
    if let Some(tcp) = health_tcp {
        // Plaintext and health only: Kubernetes `grpc:` probes cannot do mutual TLS, and
        // this listener answers nothing but whether the node is alive and ready.
        let health_server = Server::builder()
            .add_service(health_service.clone())
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(tcp),
                shutdown.clone().cancelled_owned(),
            );
        tasks.push(tokio::spawn(async move {
            if let Err(e) = health_server.await {
                tracing::error!(error = %e, "health server failed");
            }
        }));
    }
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tatmx_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
    };

    let federation_service = FederationService::new(
        trust.clone(),
        store.clone(),
        outbox.clone(),
        policy.clone(),
        config.retention.clone(),
        witness.clone(),
    );
    let federation_v2 = tatmx_proto::v2::federation_server::FederationServer::new(
        crate::federation::v2::FederationV2::new(federation_service.clone()),
    )
    .max_decoding_message_size(crate::federation::v2::max_batch_bytes(
        config.federation.max_message_bytes,
    ));
    let federation = FederationServer::new(federation_service)
        .max_decoding_message_size(config.federation.max_message_bytes);
    let incoming = crate::trust::handshake::accept(
        tcp,
        trust.server_configs(),
        trust.states(),
        trust.subscribe(),
        config.federation.handshake_timeout,
        shutdown.clone(),
    );
    let federation_server = Server::builder()
        .max_concurrent_streams(Some(128))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(health_service.clone())
        .add_service(reflection()?)
        .add_service(federation)
        .add_service(federation_v2)
        .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = federation_server.await {
            tracing::error!(error = %e, "federation server failed");
        }
    }));

    // One application layer under the Agency and Admin APIs and the staff console.
    let app = crate::app::App::new(trust.clone(), store.clone(), outbox, policy, case_key);
    let agency_service = AgencyService::new(app.clone());
    let console_addr = match config.console.clone() {
        Some(settings) => {
            let services = crate::console::Services {
                store: store.clone(),
                trust: trust.clone(),
                app: app.clone(),
                email: config.email.is_some(),
            };
            // A second less than the node's own grace, so the console is done before the node
            // stops waiting for it.
            let grace = SHUTDOWN_GRACE.saturating_sub(Duration::from_secs(1));
            let (addr, task) =
                crate::console::start(settings, services, shutdown.clone(), grace).await?;
            tasks.push(task);
            Some(addr)
        }
        None => None,
    };
    let socket = config.agency.socket.clone();
    let uds = bind_private_socket(&socket).await?;
    let agency = AgencyServer::new(agency_service)
        .max_decoding_message_size(config.agency.max_message_bytes);
    let agency_server = Server::builder()
        .add_service(health_service.clone())
        .add_service(reflection()?)
        .add_service(agency)
        // Through the relay that lets stock gRPC clients in: see crate::local_socket.
        .serve_with_incoming_shutdown(
            crate::local_socket::incoming(uds),
            shutdown.clone().cancelled_owned(),
        );
    tasks.push(tokio::spawn(async move {
        if let Err(e) = agency_server.await {
            tracing::error!(error = %e, "agency server failed");
        }
    }));

    let admin_socket = config.admin_socket.clone();
    let admin_uds = bind_private_socket(&admin_socket).await?;
    let admin_server = Server::builder()
        .add_service(health_service)
        .add_service(reflection()?)
        .add_service(AdminServer::new(AdminService::new(
            trust.clone(),
            store.clone(),
            app,
        )))
        .serve_with_incoming_shutdown(
            crate::local_socket::incoming(admin_uds),
            shutdown.clone().cancelled_owned(),
        );
    tasks.push(tokio::spawn(async move {
        if let Err(e) = admin_server.await {
            tracing::error!(error = %e, "admin server failed");
        }
    }));

    tracing::info!(
        team = %config.local.identity,
        federation_addr = %federation_addr,
        agency_socket = %socket.display(),
        peers = config.peers.len(),
        "node serving"
    );
    Ok(Serving {
        federation_addr,
        agency_socket: socket,
        admin_socket,
        console_addr,
        store,
        witness,
    })
}

/// Binds a local API socket with mode 0600. A stale socket left by a crash is replaced; a live
/// one means another node is running, which is refused rather than hijacked.
async fn bind_private_socket(path: &Path) -> Result<UnixListener, StartError> {
    let io = |source| StartError::Io {
        path: path.to_owned(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            )));
        }
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(StartError::SocketInUse(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    // The parent directory is 0700 as well, which closes the window before this chmod.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}
