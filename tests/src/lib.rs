//! The harness for end-to-end tests: a real federation on loopback.
//!
//! A [`TestFederation`] owns a temporary directory, a federation CA made with `tatmx-certs`,
//! and any number of teams, each with its own key, certificate, TOML config and SQLite file.
//! Nodes are started with the same `tatmx_node::start*` functions the binary uses, so every
//! test goes through real mutual TLS, a real store and the real delivery worker.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::Arc;
use tatmx_certs::files::{write_public, write_secret};
use tatmx_certs::{CertificateAuthority, FederationId, NodeKey, TeamId, TeamIdentity};

use arc_swap::ArcSwap;
use tatmx_node::store::StoredTrust;
use tatmx_node::tls::Credentials;
use tatmx_node::trust::{LocalTeam, TrustInputs, TrustState};
use tatmx_node::{Config, RunningNode};
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::agency_client::AgencyClient;
use tatmx_proto::v1::federation_client::FederationClient;
use tonic::transport::Channel;

/// A federation under test.
pub struct TestFederation {
    /// Everything lives here and is removed with it.
    pub dir: tempfile::TempDir,
    /// The federation id.
    pub id: FederationId,
    /// The federation CA.
    pub ca: CertificateAuthority,
    /// ca.pem
    pub ca_path: PathBuf,
    /// The teams made so far.
    teams: Vec<TeamSpec>,
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
    /// Its Federation port.
    pub port: u16,
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
}

/// Fast retries, so tests of recovery do not wait long.
pub const TEST_DELIVERY: &str = r#"
[delivery]
initial_backoff = "50ms"
max_backoff = "400ms"
request_timeout = "5s"
connect_timeout = "2s"
"#;

impl TestFederation {
    /// A new federation with its CA.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tatmx-test-")
            .tempdir()
            .expect("temp dir");
        let id = FederationId::new(name).expect("federation id");
        let ca = CertificateAuthority::create(id.clone(), 2).expect("CA");
        let ca_path = dir.path().join("ca.pem");
        write_public(&ca_path, ca.cert_pem()).expect("write CA");
        Self {
            dir,
            id,
            ca,
            ca_path,
            teams: Vec::new(),
        }
    }

    /// Enrols a team: its own key and CSR, signed by the CA, and a free port.
    pub fn team(&mut self, team: &str, role: &'static str, discipline: &'static str) -> TeamSpec {
        let identity = TeamIdentity::new(self.id.clone(), TeamId::new(team).expect("team id"));
        let dir = self.dir.path().join(team);
        std::fs::create_dir_all(&dir).expect("team dir");
        issue_into(&self.ca, &identity, &dir);
        let spec = TeamSpec {
            identity,
            role,
            discipline,
            dir,
            port: free_port(),
        };
        self.teams.push(spec.clone());
        spec
    }

    /// Writes `team`'s config with `peers` as its peers, and extra TOML appended.
    pub fn write_config(&self, team: &TeamSpec, peers: &[&TeamSpec], extra: &str) -> Config {
        let mut text = format!(
            r#"[node]
federation = "{fed}"
team = "{team}"
role = "{role}"
discipline = "{discipline}"
data_dir = "data"

[tls]
ca = "{ca}"
cert = "node.pem"
key = "node.key"

[federation_api]
listen = "127.0.0.1:{port}"
{TEST_DELIVERY}
{extra}
"#,
            fed = self.id,
            team = team.identity.team,
            role = team.role,
            discipline = team.discipline,
            ca = self.ca_path.display(),
            port = team.port,
        );
        for peer in peers {
            text.push_str(&format!(
                r#"
[[peers]]
team = "{team}"
federation = "{fed}"
endpoint = "{endpoint}"
role = "{role}"
discipline = "{discipline}"
"#,
                team = peer.identity.team,
                fed = peer.identity.federation,
                endpoint = peer.endpoint(),
                role = peer.role,
                discipline = peer.discipline,
            ));
        }
        std::fs::write(team.config_path(), text).expect("write config");
        Config::load(&team.config_path()).expect("valid config")
    }
}

/// Makes `node.key`, `node.csr` and `node.pem` for `identity` in `dir`, signed by `ca`.
pub fn issue_into(ca: &CertificateAuthority, identity: &TeamIdentity, dir: &Path) {
    let key = NodeKey::generate(identity).expect("node key");
    write_secret(&dir.join("node.key"), &key.key_pem).expect("write key");
    write_public(&dir.join("node.csr"), &key.csr_pem).expect("write csr");
    let issued = ca
        .sign_csr(&key.csr_pem, identity.team.clone(), 2)
        .expect("sign");
    write_public(&dir.join("node.pem"), &issued.cert_pem).expect("write cert");
}

/// A port nobody is listening on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Starts a node from its config file.
pub async fn start(team: &TeamSpec) -> RunningNode {
    let config = Config::load(&team.config_path()).expect("config");
    tatmx_node::start(config).await.expect("node starts")
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
        },
        credentials: Arc::new(credentials),
        config_anchors: &anchors,
        config_peers: &[],
        stored: &StoredTrust::default(),
        max_directory_age: Duration::from_secs(3600),
    })
    .expect("client trust");
    let states = Arc::new(ArcSwap::from_pointee(state));
    let channel = tonic::transport::Endpoint::from_shared(target.endpoint())
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_with_connector_lazy(tatmx_node::tls::connector(states, target.identity.clone()));
    FederationClient::new(channel).max_encoding_message_size(64 * 1024 * 1024)
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
        legal_basis: pb::LegalBasis::Consent.into(),
        justification: String::new(),
        consent_ref: "CONSENT-1".into(),
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

/// The outbox entry of `referral_id` once it is delivered.
pub async fn delivered(team: &TeamSpec, referral_id: &str) -> pb::OutboxEntry {
    let socket = team.socket();
    eventually(Duration::from_secs(15), "delivery", || {
        let socket = socket.clone();
        let referral_id = referral_id.to_owned();
        async move {
            let mut client = tatmx_node::client::agency(&socket).await.ok()?;
            let entries = client
                .list_outbox(pb::ListOutboxRequest { limit: 0 })
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
    }
}
