//! The harness for end-to-end tests: a real federation on loopback.
//!
//! A [`TestFederation`] owns a temporary directory and a [`LoopbackFederation`] (the builder
//! `tatmx demo` and `tatmx bench` use too): a federation CA made with `tatmx-certs`, and any
//! number of teams, each with its own key, certificate, reserved port, TOML config and SQLite
//! file. Nodes are started with the same `tatmx_node::start_with_listener` the binary's start
//! uses, so every test goes through real mutual TLS, a real store and the real delivery worker.
#![forbid(unsafe_code)]

pub mod backend;
pub mod mail;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::Arc;
use tatmx_certs::{CertificateAuthority, TeamId, TeamIdentity};

use arc_swap::ArcSwap;
use tatmx_node::clock::Clock;
use tatmx_node::loopback::{self, LoopbackFederation, NodeToml};
use tatmx_node::store::StoredTrust;
use tatmx_node::tls::{Credentials, Identities};
use tatmx_node::trust::{LocalTeam, TrustInputs, TrustState};
use tatmx_node::{Config, RunningNode};
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::agency_client::AgencyClient;
use tatmx_proto::v1::federation_client::FederationClient;
use tonic::transport::Channel;

/// A federation under test: a [`LoopbackFederation`] (its CA, teams and reserved ports, read
/// through `Deref`: `fed.id`, `fed.ca`, `fed.ca_path`) in a temporary directory, with each
/// team's PostgreSQL database when the tests run on PostgreSQL.
pub struct TestFederation {
    /// The CA, the teams' reserved ports: the builder the demo and the benchmark share.
    loopback: LoopbackFederation,
    /// The PostgreSQL databases made for the teams, dropped with the federation.
    databases: Vec<String>,
    /// Everything lives here and is removed with it (declared last: dropped after the rest).
    pub dir: tempfile::TempDir,
}

impl std::ops::Deref for TestFederation {
    type Target = LoopbackFederation;

    fn deref(&self) -> &LoopbackFederation {
        &self.loopback
    }
}

/// A test may replace the CA (one that lives longer, say) before it enrols any team.
impl std::ops::DerefMut for TestFederation {
    fn deref_mut(&mut self) -> &mut LoopbackFederation {
        &mut self.loopback
    }
}

impl Drop for TestFederation {
    fn drop(&mut self) {
        if let Some(base) = backend::postgres() {
            backend::drop_databases(base, std::mem::take(&mut self.databases));
        }
    }
}

/// One team's files and place in the federation.
#[derive(Clone)]
pub struct TeamSpec {
    /// Its identity.
    pub identity: TeamIdentity,
    /// core, affiliate or partner.
    pub role: &'static str,
    /// Its discipline.
    pub discipline: &'static str,
    /// Its directory (keys, config, data).
    pub dir: PathBuf,
    /// Its Federation port, reserved for as long as its federation lives.
    pub port: u16,
    /// Whether it may hold criminal-justice information (law-enforcement teams).
    pub cjis: bool,
    /// Its PostgreSQL database's URL, when the tests run on PostgreSQL
    /// ([`backend::POSTGRES_VAR`]); otherwise its store is a SQLite file in its data directory.
    pub database: Option<String>,
}

impl TeamSpec {
    /// The node's config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("node.toml")
    }

    /// The node's Agency socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("data").join("agency.sock")
    }

    /// Where its Federation API listens.
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// How a peer's config lists it.
    pub fn as_peer(&self) -> loopback::Peer {
        loopback::Peer {
            team: self.identity.team.to_string(),
            federation: self.identity.federation.to_string(),
            port: self.port,
            role: self.role.into(),
            discipline: self.discipline.into(),
            cjis_authorized: self.cjis,
        }
    }
}

/// Fast retries, so tests of recovery do not wait long.
pub fn test_delivery() -> loopback::Delivery {
    loopback::Delivery {
        initial_backoff: Some(Duration::from_millis(50)),
        max_backoff: Some(Duration::from_millis(400)),
        request_timeout: Some(Duration::from_secs(5)),
        connect_timeout: Some(Duration::from_secs(2)),
    }
}

impl TestFederation {
    /// A new federation with its CA.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tatmx-test-")
            .tempdir()
            .expect("temp dir");
        let loopback = LoopbackFederation::create(dir.path(), name).expect("federation CA");
        Self {
            loopback,
            databases: Vec::new(),
            dir,
        }
    }

    /// Enrols a team: its own key and CSR, signed by the CA, and a reserved port.
    pub fn team(&mut self, team: &str, role: &'static str, discipline: &'static str) -> TeamSpec {
        let enrolled = self.loopback.enrol(team).expect("team enrolled");
        TeamSpec {
            identity: enrolled.identity,
            role,
            discipline,
            dir: enrolled.dir,
            port: enrolled.port,
            cjis: discipline == "law-enforcement",
            database: backend::postgres().map(|base| {
                let (url, name) = backend::create_database(base);
                self.databases.push(name);
                url
            }),
        }
    }

    /// Reserves a loopback port for as long as the federation lives: a second replica's
    /// Federation port, or a metrics or health listener.
    pub fn port(&mut self) -> u16 {
        self.loopback.reserve_port().expect("a loopback port")
    }

    /// `team`'s config as the harness writes it, with `peers` as its peers and the fast
    /// [`test_delivery`] timings; change it, then [`TestFederation::write`] it.
    pub fn config(&self, team: &TeamSpec, peers: &[&TeamSpec]) -> NodeToml {
        let mut toml = NodeToml::new(
            self.id.to_string(),
            team.identity.team.to_string(),
            team.role,
            team.discipline,
            &self.ca_path,
            team.port,
        );
        toml.cjis_authorized = Some(team.cjis);
        toml.store_url = team.database.clone();
        toml.delivery = Some(test_delivery());
        toml.peers = peers.iter().map(|p| p.as_peer()).collect();
        toml
    }

    /// Writes `toml` as `team`'s config, and returns it loaded.
    pub fn write(&self, team: &TeamSpec, toml: &NodeToml) -> Config {
        toml.write(&team.config_path()).expect("valid config")
    }

    /// Writes `team`'s config with `peers` as its peers, and extra TOML appended.
    pub fn write_config(&self, team: &TeamSpec, peers: &[&TeamSpec], extra: &str) -> Config {
        let mut toml = self.config(team, peers);
        toml.extra = extra.to_owned();
        self.write(team, &toml)
    }
}

/// A sender (school affiliate) and a receiver (county core team) that know each other.
pub fn core_and_school() -> (TestFederation, TeamSpec, TeamSpec) {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    fed.write_config(&core, &[&school], "");
    fed.write_config(&school, &[&core], "");
    (fed, core, school)
}

/// Makes `node.key`, `node.csr` and `node.pem` for `identity` in `dir`, signed by `ca`.
pub fn issue_into(ca: &CertificateAuthority, identity: &TeamIdentity, dir: &Path) {
    issue_named(ca, identity, dir, "node");
}

/// Makes `<stem>.key`, `<stem>.csr` and `<stem>.pem` for `identity` in `dir`, signed by `ca`.
pub fn issue_named(ca: &CertificateAuthority, identity: &TeamIdentity, dir: &Path, stem: &str) {
    loopback::issue(ca, identity, dir, stem).expect("certificate issued");
}

impl TestFederation {
    /// Enrols an existing node (its directory and port) into this federation as `team`, with
    /// its certificate in `<stem>.pem`; returns how this federation's members see it.
    pub fn enrol_existing(&self, node: &TeamSpec, team: &str, stem: &str) -> TeamSpec {
        let identity = TeamIdentity::new(self.id.clone(), TeamId::new(team).expect("team id"));
        issue_named(&self.ca, &identity, &node.dir, stem);
        TeamSpec {
            identity,
            ..node.clone()
        }
    }
}

/// Starts a node from its config file, on its reserved port.
pub async fn start(team: &TeamSpec) -> RunningNode {
    let config = Config::load(&team.config_path()).expect("config");
    loopback::start(config).await.expect("node starts")
}

/// Starts a node whose clock follows tokio's, starting from now: a test that pauses tokio's
/// time and advances it ([`skip_ahead`]) moves this node's dates and deadlines by as much, at
/// once.
pub async fn start_on_tokio_time(team: &TeamSpec) -> RunningNode {
    start_with_clock(team, Clock::tokio(time::OffsetDateTime::now_utc())).await
}

/// Starts a node that reads the time from `clock`.
pub async fn start_with_clock(team: &TeamSpec, clock: Clock) -> RunningNode {
    let config = Config::load(&team.config_path()).expect("config");
    loopback::start_with_clock(config, clock)
        .await
        .expect("node starts")
}

/// Moves tokio's clock, and with it every node started by [`start_on_tokio_time`], `by`
/// ahead at once: the timers due in that span fire, in order, and real time then goes on.
///
/// Needs the test's runtime to be tokio's current-thread one (`#[tokio::test]`'s default).
pub async fn skip_ahead(by: std::time::Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// The Agency API of a running node.
pub async fn agency(team: &TeamSpec) -> AgencyClient<Channel> {
    tatmx_node::client::agency(&team.socket())
        .await
        .expect("agency socket")
}

/// A Federation client that presents the certificate in `dir` (node.pem, node.key) claiming
/// `as_identity`, towards `target`, trusting the CA certificates in `anchors`. It plays another
/// node by hand, honest or not.
pub fn federation_client(
    dir: &Path,
    anchors: &[&Path],
    as_identity: &TeamIdentity,
    target: &TeamSpec,
) -> FederationClient<Channel> {
    FederationClient::new(federation_channel(dir, anchors, as_identity, target))
        .max_encoding_message_size(64 * 1024 * 1024)
}

/// The mTLS channel under [`federation_client`], for calls the typed client cannot make.
pub fn federation_channel(
    dir: &Path,
    anchors: &[&Path],
    as_identity: &TeamIdentity,
    target: &TeamSpec,
) -> Channel {
    let credentials = Credentials::load(&dir.join("node.pem"), &dir.join("node.key"), as_identity)
        .expect("client credentials");
    let anchors: Vec<(String, String)> = anchors
        .iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(p).expect("anchor file"),
            )
        })
        .collect();
    let state = TrustState::build(TrustInputs {
        local: LocalTeam {
            identity: as_identity.clone(),
            role: tatmx_node::Role::Affiliate,
            discipline: tatmx_node::Discipline::Education,
            jurisdiction: String::new(),
            cjis_authorized: false,
        },
        identities: Identities::new(credentials),
        config_anchors: &anchors,
        config_peers: &[],
        stored: &StoredTrust::default(),
        max_directory_age: Duration::from_secs(3600),
    })
    .expect("client trust");
    let states = Arc::new(ArcSwap::from_pointee(state));
    tonic::transport::Endpoint::from_shared(target.endpoint())
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_with_connector_lazy(tatmx_node::trust::handshake::connector(
            states,
            target.identity.clone(),
        ))
}

/// What `team`'s node signs with, loaded from its files.
pub fn signer_of(team: &TeamSpec) -> tatmx_node::signing::NodeSigner {
    Credentials::load(
        &team.dir.join("node.pem"),
        &team.dir.join("node.key"),
        &team.identity,
    )
    .expect("credentials")
    .signer()
    .clone()
}

/// The signature `team`'s node would put on `message`, a message of `kind`.
pub fn signature_of(
    team: &TeamSpec,
    kind: &str,
    message: &impl prost::Message,
) -> Option<pb::MessageSignature> {
    let payload = tatmx_node::signing::message_payload(kind, &message.encode_to_vec());
    let signer = signer_of(team);
    Some(pb::MessageSignature {
        scheme: tatmx_node::signing::SCHEME_ECDSA_P256_SHA256,
        value: signer.sign(&payload).expect("sign"),
        certificate: signer.certificate().to_vec(),
    })
}

/// A delivery of `referral` signed by `team`, as its node would send it.
pub fn signed_referral(team: &TeamSpec, referral: pb::Referral) -> pb::DeliverReferralRequest {
    pb::DeliverReferralRequest {
        signature: signature_of(team, "referral", &referral),
        referral: Some(referral),
        checkpoint: None,
    }
}

/// A status update signed by `team`.
pub fn signed_update(team: &TeamSpec, update: pb::StatusUpdate) -> pb::UpdateStatusRequest {
    pb::UpdateStatusRequest {
        signature: signature_of(team, "status-update", &update),
        update: Some(update),
        checkpoint: None,
    }
}

/// A case message signed by `team`.
pub fn signed_case_message(
    team: &TeamSpec,
    message: pb::CaseMessage,
) -> pb::DeliverCaseMessageRequest {
    pb::DeliverCaseMessageRequest {
        signature: signature_of(team, "case-message", &message),
        message: Some(message),
        checkpoint: None,
    }
}

/// A retraction signed by `team`.
pub fn signed_retraction(team: &TeamSpec, retraction: pb::Retraction) -> pb::RetractRequest {
    pb::RetractRequest {
        signature: signature_of(team, "retraction", &retraction),
        retraction: Some(retraction),
        checkpoint: None,
    }
}

/// A retraction acknowledgement signed by `team`.
pub fn signed_ack(team: &TeamSpec, ack: pb::RetractionAck) -> pb::AcknowledgeRetractionRequest {
    pb::AcknowledgeRetractionRequest {
        signature: signature_of(team, "retraction-ack", &ack),
        ack: Some(ack),
        checkpoint: None,
    }
}

/// A node's /metrics page, over plain HTTP on loopback.
pub async fn scrape_metrics(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("metrics endpoint");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut page = String::new();
    stream.read_to_string(&mut page).await.expect("response");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    page
}

/// The log lines of one test that searches the logs, from a capture shared by the whole
/// process: the end-to-end tests run side by side in one binary, and a process has one
/// tracing subscriber.
///
/// A test run with [`Logs::run`] gets a runtime of its own whose threads carry a name of their
/// own, so the lines its nodes log are told apart from other tests' lines: [`Logs::own_text`]
/// holds only those, and [`Logs::text`] holds every line the process logged while the test ran
/// (its own and any other test's), for checks that nothing was logged that should not be.
#[derive(Clone)]
pub struct Logs(Arc<LogSink>);

/// Where one test's lines go.
struct LogSink {
    /// The name of every thread of the test's runtime.
    runtime: String,
    /// The name of the thread the test itself runs on (libtest names it after the test).
    caller: Option<String>,
    /// Lines from the test's own threads.
    own: std::sync::Mutex<Vec<u8>>,
    /// Every line of the process.
    all: std::sync::Mutex<Vec<u8>>,
}

/// How many tests collect logs now.
static COLLECTING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for LogSink {
    fn drop(&mut self) {
        COLLECTING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The tests collecting logs now.
static SINKS: std::sync::Mutex<Vec<std::sync::Weak<LogSink>>> = std::sync::Mutex::new(Vec::new());

/// Where the process's subscriber writes: one event at a time, on the thread that logged it.
struct SinkWriter {
    /// The name of that thread.
    thread: Option<String>,
}

impl std::io::Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let sinks: Vec<Arc<LogSink>> = SINKS
            .lock()
            .map(|sinks| sinks.iter().filter_map(std::sync::Weak::upgrade).collect())
            .unwrap_or_default();
        for sink in sinks {
            let own = self.thread.as_deref().is_some_and(|thread| {
                thread == sink.runtime || Some(thread) == sink.caller.as_deref()
            });
            if own && let Ok(mut lines) = sink.own.lock() {
                lines.extend_from_slice(buf);
            }
            if let Ok(mut lines) = sink.all.lock() {
                lines.extend_from_slice(buf);
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Runs `test` on a runtime of its own (two worker threads, as
    /// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` gives), with every log
    /// line at every level of the tatmx crates collected from its start.
    pub fn run<F, Fut>(test: F)
    where
        F: FnOnce(Logs) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        install_log_capture();
        let runtime = format!("tatmx-logs-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let sink = Arc::new(LogSink {
            runtime: runtime.clone(),
            caller: std::thread::current().name().map(str::to_owned),
            own: Default::default(),
            all: Default::default(),
        });
        COLLECTING.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut sinks) = SINKS.lock() {
            sinks.retain(|sink| sink.strong_count() > 0);
            sinks.push(Arc::downgrade(&sink));
        }
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(runtime)
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(test(Logs(sink)));
    }

    /// Everything the process logged since the test began: its own lines and other tests'.
    pub fn text(&self) -> Vec<u8> {
        self.0.all.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// What the test's own threads logged.
    pub fn own_text(&self) -> Vec<u8> {
        self.0.own.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// Installs the process's subscriber once. It formats events only while some test collects
/// them, so the other tests do not pay for trace-level logging.
fn install_log_capture() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let collecting = tracing_subscriber::filter::filter_fn(|_| {
            COLLECTING.load(std::sync::atomic::Ordering::Relaxed) > 0
        });
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(|| SinkWriter {
                thread: std::thread::current().name().map(str::to_owned),
            })
            .with_ansi(false)
            .with_filter(collecting);
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("info,tatmx_node=trace"))
            .with(layer);
        tracing_subscriber::util::SubscriberInitExt::try_init(subscriber)
            .expect("the process's only subscriber");
    });
}

/// Records at `team`'s node the subject's consent to share with `recipients`, and returns its id.
pub async fn consent_for(team: &TeamSpec, subject: &str, recipients: &[&TeamSpec]) -> String {
    agency(team)
        .await
        .record_consent(pb::RecordConsentRequest {
            consent: Some(pb::Consent {
                subject: subject.to_owned(),
                grantor: pb::Grantor::Self_.into(),
                provision: Some(pb::Provision {
                    r#type: pb::ProvisionType::Permit.into(),
                    recipient_teams: recipients.iter().map(|t| t.identity.uri()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .expect("consent recorded")
        .into_inner()
        .id
}

/// A small valid referral draft for `recipient`, with a canary in every free-text field.
pub fn draft(recipient: &str) -> pb::NewReferral {
    pb::NewReferral {
        recipient: recipient.to_owned(),
        purpose: pb::Purpose::ThreatAssessment.into(),
        level_of_concern: Some(pb::LevelOfConcern {
            scheme: "CSTAG".into(),
            value: "serious substantive".into(),
        }),
        legal_basis: pb::LegalBasis::SeriousImminentThreat.into(),
        justification: "The subject described a specific plan and date to a counsellor.".into(),
        consent_ref: String::new(),
        case_ref: String::new(),
        reidentify: false,
        subject_ref: String::new(),
        content: Some(pb::ReferralContent {
            identity: Some(pb::SubjectIdentity {
                full_name: "CANARY-NAME-7f3a".into(),
                date_of_birth: "2010-01-02".into(),
                identifiers: vec![],
            }),
            threat: Some(pb::ThreatDetails {
                threat_type: "targeted-violence".into(),
                target_type: "school".into(),
                weapons_access: false,
                grievance_code: "G1".into(),
            }),
            narrative: Some(pb::Narrative {
                text: "CANARY-NARRATIVE-91bc".into(),
            }),
            ..Default::default()
        }),
    }
}

/// Submits `draft` and returns the new referral's id.
pub async fn submit(client: &mut AgencyClient<Channel>, draft: pb::NewReferral) -> String {
    client
        .submit_referral(pb::SubmitReferralRequest {
            referral: Some(draft),
            dry_run: false,
            ..Default::default()
        })
        .await
        .expect("submit accepted")
        .into_inner()
        .referral_id
}

/// Polls `check` every 20 ms until it yields a value or `limit` passes.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Forwards referral `id`, which `team` received, to `recipient` (a team id), and waits until
/// the forward is delivered; returns the forward's referral id.
pub async fn forward_delivered(team: &TeamSpec, id: &str, recipient: &str) -> String {
    let forward = agency(team)
        .await
        .forward_referral(pb::ForwardReferralRequest {
            referral_id: id.to_owned(),
            recipient: recipient.to_owned(),
            ..Default::default()
        })
        .await
        .expect("forward accepted")
        .into_inner()
        .referral_id;
    delivered(team, &forward).await;
    forward
}

/// Polls `team`'s view of referral `id` until `accept` holds, and returns that record.
pub async fn referral_when(
    team: &TeamSpec,
    id: &str,
    what: &str,
    accept: impl Fn(&pb::ReferralRecord) -> bool,
) -> pb::ReferralRecord {
    let socket = team.socket();
    let accept = &accept;
    eventually(Duration::from_secs(10), what, || {
        let socket = socket.clone();
        let id = id.to_owned();
        async move {
            let record = tatmx_node::client::agency(&socket)
                .await
                .ok()?
                .get_referral(pb::GetReferralRequest { referral_id: id })
                .await
                .ok()?
                .into_inner();
            accept(&record).then_some(record)
        }
    })
    .await
}

/// The outbox entry of `referral_id` once it is delivered.
pub async fn delivered(team: &TeamSpec, referral_id: &str) -> pb::OutboxEntry {
    let socket = team.socket();
    eventually(Duration::from_secs(15), "delivery", || {
        let socket = socket.clone();
        let referral_id = referral_id.to_owned();
        async move {
            let mut client = tatmx_node::client::agency(&socket).await.ok()?;
            let entries = client
                .list_outbox(pb::ListOutboxRequest {
                    limit: 0,
                    dead_only: false,
                })
                .await
                .ok()?
                .into_inner()
                .entries;
            entries.into_iter().find(|e| {
                e.referral_id == referral_id
                    && e.kind == pb::MessageKind::Referral as i32
                    && e.state == pb::DeliveryState::Delivered as i32
            })
        }
    })
    .await
}

/// How many referrals `team`'s node holds in its inbox.
pub async fn inbox_len(team: &TeamSpec) -> usize {
    agency(team)
        .await
        .list_inbox(pb::ListInboxRequest { limit: 0 })
        .await
        .expect("inbox")
        .into_inner()
        .items
        .len()
}

/// Everything in `team`'s store, as a thief with the database would read it: the SQLite file
/// and its WAL, or a dump of the PostgreSQL database.
pub fn database_bytes(team: &TeamSpec) -> Vec<u8> {
    backend::raw_contents(team.database.as_deref(), &team.dir.join("data"))
}

/// A connection straight to `team`'s store, beside its running node (read-only on SQLite
/// unless `writable`), for tests that inspect or tamper with it.
pub async fn store_connection(team: &TeamSpec, writable: bool) -> sqlx::AnyConnection {
    backend::connect(team.database.as_deref(), &team.dir.join("data"), writable).await
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The data key `team`'s node sealed a received referral under, read straight from its
/// database file (read-only, beside the running node), or `None` once it is purged.
pub async fn data_key(team: &TeamSpec, referral_id: &str) -> Option<Vec<u8>> {
    let mut connection = store_connection(team, false).await;
    let key: Option<Vec<u8>> = sqlx::query_scalar("SELECT key FROM data_keys WHERE id = $1")
        .bind(referral_id)
        .fetch_optional(&mut connection)
        .await
        .expect("read data_keys");
    sqlx::Connection::close(connection).await.ok();
    key
}

/// Up to 1,000 of `team`'s audit entries of one kind (`tatmx audit log --kind`), oldest first.
pub async fn audit_entries(team: &TeamSpec, kind: &str) -> Vec<pb::AuditEntry> {
    admin(team)
        .await
        .query_audit(pb::QueryAuditRequest {
            kind: kind.into(),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("audit query")
        .into_inner()
        .entries
}

/// `team`'s node checks its audit chain (`tatmx audit verify`).
pub async fn verify(team: &TeamSpec) -> pb::AuditVerification {
    admin(team)
        .await
        .verify_audit(pb::VerifyAuditRequest {})
        .await
        .expect("VerifyAudit")
        .into_inner()
}

/// A web certificate for `localhost` from the federation's test CA, in the team's directory
/// as console.pem and console.key, as an agency would configure one its browsers trust.
pub fn web_certificate(fed: &TestFederation, team: &TeamSpec) {
    let ca_key = rcgen::KeyPair::from_pem(&fed.ca.key_pem()).expect("ca key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(fed.ca.cert_pem(), ca_key).expect("issuer");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(2);
    let cert = params.signed_by(&key, &issuer).expect("sign");
    std::fs::write(team.dir.join("console.pem"), cert.pem()).expect("write cert");
    std::fs::write(team.dir.join("console.key"), key.serialize_pem()).expect("write key");
}

/// The `[console]` section for a test node: on a free port, with this idle lock, presenting
/// the certificate [`web_certificate`] wrote.
pub fn console_section(idle_lock: &str) -> String {
    format!(
        "[console]\nlisten = \"127.0.0.1:0\"\nidle_lock = \"{idle_lock}\"\n\
         cert = \"console.pem\"\nkey = \"console.key\"\n"
    )
}

/// The loopback address of a team.
pub fn addr(team: &TeamSpec) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], team.port))
}

/// A well-formed wire referral from `from` to `to`, as the sender's node would build it.
pub fn outgoing(from: &TeamSpec, to: &TeamSpec) -> pb::Referral {
    let draft = draft(to.identity.team.as_str());
    pb::Referral {
        id: uuid::Uuid::now_v7().to_string(),
        sender: from.identity.uri(),
        recipient: to.identity.uri(),
        created_at: Some(prost_types::Timestamp {
            seconds: 1_790_000_000,
            nanos: 0,
        }),
        purpose: draft.purpose,
        level_of_concern: draft.level_of_concern,
        legal_basis: draft.legal_basis,
        justification: draft.justification,
        consent_ref: draft.consent_ref,
        content: draft.content,
        labels: vec![],
        withheld: vec![],
        case_handle: String::new(),
        consultation: None,
        ..Default::default()
    }
}

/// The Admin API of a running node.
pub async fn admin(team: &TeamSpec) -> tatmx_proto::v1::admin_client::AdminClient<Channel> {
    tatmx_node::client::admin(&team.dir.join("data").join("admin.sock"))
        .await
        .expect("admin socket")
}

/// The serial (hex) of the certificate in `dir/node.pem`.
pub fn serial_of(dir: &Path) -> String {
    let pem = std::fs::read_to_string(dir.join("node.pem")).expect("node.pem");
    tatmx_certs::CertificateSummary::from_pem(&pem)
        .expect("certificate")
        .serial_hex
}

/// The wire form of a peer for `Admin.AddPeer`.
pub fn add_peer_request(team: &TeamSpec) -> pb::AddPeerRequest {
    pb::AddPeerRequest {
        team: team.identity.uri(),
        endpoint: team.endpoint(),
        role: match team.role {
            "core" => pb::Role::Core,
            "partner" => pb::Role::Partner,
            _ => pb::Role::Affiliate,
        }
        .into(),
        discipline: team.discipline.into(),
        jurisdiction: "Lincoln County".into(),
        cjis_authorized: false,
    }
}

/// A directory member entry for a team.
pub fn member(team: &TeamSpec) -> tatmx_certs::directory::Member {
    tatmx_certs::directory::Member {
        team: team.identity.team.clone(),
        endpoint: team.endpoint(),
        role: team.role.into(),
        discipline: team.discipline.into(),
        jurisdiction: "Lincoln County".into(),
        cjis_authorized: team.discipline == "law-enforcement",
        cert_fingerprint_sha256: None,
    }
}

/// A directory of `members` with `anchors`, signed by `ca`, as the document nodes import.
pub fn signed_directory(
    ca: &CertificateAuthority,
    sequence: u64,
    members: &[&TeamSpec],
    anchors: &[&CertificateAuthority],
) -> String {
    let directory = tatmx_certs::directory::Directory {
        federation: ca.federation().clone(),
        sequence,
        issued_at: time::OffsetDateTime::now_utc(),
        members: members.iter().map(|t| member(t)).collect(),
        anchors: anchors.iter().map(|a| a.cert_pem().to_owned()).collect(),
        crl: None,
    };
    ca.sign_directory(&directory)
        .expect("sign directory")
        .to_json()
}

/// Connects with a raw TLS 1.3 client presenting `cert_pem`/`key_pem`, skipping every check of
/// the server, and returns the error of the first read: the server's verdict on the client
/// certificate arrives as an alert there under TLS 1.3. Used for certificates the node's own
/// client code would refuse to present (expired ones).
pub async fn raw_handshake_verdict(cert_pem: &str, key_pem: &str, target: &TeamSpec) -> String {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let chain: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("chain");
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
    let mut config = rustls::ClientConfig::builder_with_provider(tatmx_node::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer))
        .with_client_auth_cert(chain, key)
        .expect("client auth");
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr(target))
        .await
        .expect("tcp");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut tls = match tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
    {
        Ok(tls) => tls,
        Err(e) => return e.to_string(),
    };
    let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let mut buf = [0u8; 64];
    match tls.read(&mut buf).await {
        Ok(n) => format!("read {n} bytes"),
        Err(e) => e.to_string(),
    }
}

#[derive(Debug)]
struct AcceptAnyServer;

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        tatmx_node::tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A certificate for `identity` signed by `ca`, valid only in the past (already expired).
pub fn expired_certificate(ca: &CertificateAuthority, identity: &TeamIdentity) -> (String, String) {
    certificate_valid_between(
        ca,
        identity,
        time::OffsetDateTime::now_utc() - time::Duration::days(10),
        time::OffsetDateTime::now_utc() - time::Duration::days(1),
    )
}

/// A certificate for `identity`, signed by `ca`, valid only from `not_before` to `not_after`;
/// returns the certificate and key, PEM.
pub fn certificate_valid_between(
    ca: &CertificateAuthority,
    identity: &TeamIdentity,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> (String, String) {
    let ca_key = rcgen::KeyPair::from_pem(&ca.key_pem()).expect("ca key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca.cert_pem(), ca_key).expect("issuer");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(identity.uri().try_into().expect("uri"))];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    ];
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

/// Asserts that `status` is a refusal with the tatmx reason code `reason` (and its gRPC
/// code), as a case system reads it: from the details, never from the message.
#[track_caller]
pub fn assert_refused(status: &tonic::Status, reason: tatmx_node::refusal::Reason) {
    assert_eq!(
        tatmx_node::refusal::reason(status),
        Some(reason),
        "reason code: {status:?}"
    );
    assert_eq!(status.code(), reason.code(), "gRPC code: {status:?}");
}

/// [`assert_refused`], and that the refusal names `field` as at fault, in a description that
/// does not hold `not_echoed` (a value the request carried).
#[track_caller]
pub fn assert_refused_at(
    status: &tonic::Status,
    reason: tatmx_node::refusal::Reason,
    field: &str,
    not_echoed: &str,
) {
    assert_refused(status, reason);
    let (named, description) = tatmx_node::refusal::field_at_fault(status)
        .unwrap_or_else(|| panic!("no BadRequest field violation: {status:?}"));
    assert_eq!(named, field, "{status:?}");
    assert!(!description.is_empty(), "{status:?}");
    assert!(
        not_echoed.is_empty() || !description.contains(not_echoed),
        "the description echoes the value: {status:?}"
    );
}
