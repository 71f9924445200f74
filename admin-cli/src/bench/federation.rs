//! The benchmark's federation: a CA, teams with their own keys and certificates, a signed
//! directory, and each team's node running as its own `tatmx-node` process.
//!
//! Everything goes through the same steps an admin takes (`ca init`, `node init`, `ca sign`,
//! `directory add|sign`, `trust import`), so the nodes measured are configured exactly as
//! deployed ones, with the durability they ship with. Processes, not tasks in this one, so that
//! each node's memory and start-up time are its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tatmx_node::loopback::{Delivery, NodeToml, ReservedPort};
use tatmx_proto::v1 as pb;
use tokio::process::{Child, Command};

use super::footprint::StoreAt;
use crate::{directory, pki, trust};

/// The federation every benchmark node belongs to.
pub const FEDERATION: &str = "bench-mdt.example";

/// How long a node may take to start before the benchmark gives up on it.
const START_LIMIT: Duration = Duration::from_secs(30);

/// One team of the benchmark federation.
#[derive(Debug, Clone)]
pub struct Team {
    /// Its team id.
    pub id: String,
    /// core, affiliate or partner.
    pub role: &'static str,
    /// Its discipline.
    pub discipline: &'static str,
    /// Its Federation API port on loopback.
    pub port: u16,
    /// Its own directory: keys, certificate, config, data.
    pub dir: PathBuf,
    /// Where its node keeps its store.
    pub store: StoreAt,
}

impl Team {
    /// Its Agency API socket.
    pub fn agency_socket(&self) -> PathBuf {
        self.dir.join("data").join("agency.sock")
    }

    /// Its Admin API socket.
    pub fn admin_socket(&self) -> PathBuf {
        self.dir.join("data").join("admin.sock")
    }

    /// Its certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.join("node.pem")
    }

    /// Its private key (PEM).
    pub fn key(&self) -> PathBuf {
        self.dir.join("node.key")
    }

    fn config(&self) -> PathBuf {
        self.dir.join("node.toml")
    }
}

/// The CA, the teams and the signed directory, on disk under one root.
pub struct Federation {
    /// Where the CA and its directory draft live.
    pub ca_dir: PathBuf,
    /// Every enrolled team.
    pub teams: Vec<Team>,
    /// The node binary.
    node_bin: PathBuf,
    /// With `--postgres`: the server, and the databases made for the nodes.
    postgres: Option<(String, Vec<String>)>,
    /// Every team's Federation port, held until the benchmark ends: a node stopped for the
    /// outage phase finds its port free for it again, and no outgoing connection of the
    /// thousands the benchmark makes can take it meanwhile.
    _ports: Vec<ReservedPort>,
}

impl Federation {
    /// Makes the CA and enrols `teams` (id, role, discipline), each with a reserved loopback
    /// port and, with `postgres` (a server URL without a database), a database of its own there.
    pub async fn create(
        root: &Path,
        node_bin: PathBuf,
        teams: &[(String, &'static str, &'static str)],
        postgres: Option<&str>,
    ) -> anyhow::Result<Self> {
        let mut databases = Vec::new();
        let ca_dir = root.join("federation-ca");
        pki::ca_init(&pki::CaInitArgs {
            federation: FEDERATION.into(),
            dir: ca_dir.clone(),
            days: 30,
        })?;
        let mut enrolled = Vec::new();
        let mut ports = Vec::new();
        for (id, role, discipline) in teams {
            let dir = root.join(id);
            let files = pki::node_init(&pki::NodeInitArgs {
                federation: FEDERATION.into(),
                team: id.clone(),
                dir: dir.clone(),
                dns_names: Vec::new(),
            })?;
            pki::ca_sign(&pki::CaSignArgs {
                csr: files.csr,
                team: id.clone(),
                ca_dir: ca_dir.clone(),
                days: 7,
                role: Some((*role).into()),
                discipline: Some((*discipline).into()),
                out: Some(dir.join("node.pem")),
                dns_names: Vec::new(),
            })?;
            let reserved = ReservedPort::new().context("cannot reserve a loopback port")?;
            let port = reserved.port();
            ports.push(reserved);
            let mut team = Team {
                id: id.clone(),
                role,
                discipline,
                port,
                store: StoreAt::Sqlite(dir.join("data").join("tatmx.db")),
                dir,
            };
            let mut config = node_config(&team, &ca_dir);
            if let Some(server) = postgres {
                let name = create_database(server, id).await?;
                let url = format!("{}/{name}", server.trim_end_matches('/'));
                config.store_url = Some(url.clone());
                team.store = StoreAt::Postgres(url);
                databases.push(name);
            }
            config.write(&team.config())?;
            enrolled.push(team);
        }
        let federation = Self {
            ca_dir,
            teams: enrolled,
            node_bin,
            postgres: postgres.map(|server| (server.to_owned(), databases)),
            _ports: ports,
        };
        for team in &federation.teams {
            federation.list(&team.id, team.role, team.discipline, team.port)?;
        }
        Ok(federation)
    }

    /// The team called `id`.
    pub fn team(&self, id: &str) -> anyhow::Result<&Team> {
        self.teams
            .iter()
            .find(|t| t.id == id)
            .with_context(|| format!("no team {id} in the benchmark federation"))
    }

    /// Adds a member to the directory draft.
    pub fn list(&self, id: &str, role: &str, discipline: &str, port: u16) -> anyhow::Result<()> {
        directory::add(&directory::AddArgs {
            location: self.location(),
            team: id.into(),
            endpoint: format!("https://127.0.0.1:{port}"),
            role: role.into(),
            discipline: discipline.into(),
            jurisdiction: "Bench County".into(),
            cjis_authorized: discipline == "law-enforcement",
            fingerprint: None,
        })
    }

    /// Signs the draft as the next directory, and returns its file.
    pub fn sign(&self) -> anyhow::Result<PathBuf> {
        let (file, _) = directory::sign(&directory::SignArgs {
            location: self.location(),
            also_anchor: vec![],
            out: None,
        })?;
        Ok(file)
    }

    /// Starts `team`'s node and waits until its Agency API answers.
    pub async fn start(&self, team: &Team) -> anyhow::Result<NodeProcess> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(team.dir.join("node.log"))
            .context("cannot open the node's log file")?;
        let started = Instant::now();
        let child = Command::new(&self.node_bin)
            .arg("--config")
            .arg(team.config())
            .env("TATMX_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", self.node_bin.display()))?;
        let mut node = NodeProcess {
            team: team.clone(),
            child,
            cold_start: Duration::ZERO,
        };
        node.wait_until_serving().await?;
        node.cold_start = started.elapsed();
        Ok(node)
    }

    fn location(&self) -> directory::Location {
        directory::Location {
            ca_dir: self.ca_dir.clone(),
            draft: None,
        }
    }
}

/// A running node process.
pub struct NodeProcess {
    /// Whose node it is.
    pub team: Team,
    child: Child,
    /// From spawning the process to its Agency and Admin APIs answering.
    pub cold_start: Duration,
}

impl NodeProcess {
    /// Imports a signed directory (or CRL) through the node's Admin API.
    pub async fn import(&self, file: &Path) -> anyhow::Result<()> {
        let mut admin = trust::client(&self.team.admin_socket()).await?;
        trust::import(&mut admin, file).await?;
        Ok(())
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the node has exited")
    }

    /// Resident memory now, in bytes, from `/proc`.
    pub fn rss(&self) -> anyhow::Result<u64> {
        rss_of(self.pid()?)
    }

    /// Stops the node as systemd would (SIGTERM), and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => self.child.kill().await?,
        }
        Ok(())
    }

    async fn wait_until_serving(&mut self) -> anyhow::Result<()> {
        let socket = self.team.agency_socket();
        let admin = self.team.admin_socket();
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the {} node exited at start-up ({status}); see {}",
                    self.team.id,
                    self.team.dir.join("node.log").display()
                );
            }
            // The Admin API is bound last, so both answering means the node is fully up.
            if socket.exists()
                && admin.exists()
                && let Ok(mut agency) = tatmx_node::client::agency(&socket).await
                && agency
                    .list_outbox(pb::ListOutboxRequest {
                        limit: 1,
                        dead_only: false,
                    })
                    .await
                    .is_ok()
                && let Ok(mut admin) = tatmx_node::client::admin(&admin).await
                && admin.trust_status(pb::TrustStatusRequest {}).await.is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("the {} node did not start within 30 s", self.team.id);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// The `tatmx-node` binary: the one given, else the one beside this `tatmx`.
pub fn node_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(path) => path,
        None => std::env::current_exe()
            .context("cannot find this program's own path")?
            .with_file_name("tatmx-node"),
    };
    if !path.is_file() {
        bail!(
            "the node binary {} is missing; build it with `cargo build --release --bins`, or \
             pass --node-bin",
            path.display()
        );
    }
    Ok(path)
}

/// Resident memory of process `pid`, in bytes.
pub fn rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("cannot read the process's memory (Linux /proc only)")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .context("/proc/PID/status has no VmRSS line")?;
    Ok(kib * 1024)
}

/// Makes an empty database for the benchmark node `team` on `server` and returns its name.
async fn create_database(server: &str, team: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = format!(
        "tatmx_bench_{}_{}",
        std::process::id(),
        team.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let admin = format!("{}/postgres", server.trim_end_matches('/'));
    let mut connection = sqlx::PgConnection::connect(&admin)
        .await
        .with_context(|| format!("cannot reach PostgreSQL at {server} (--postgres)"))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut connection)
        .await
        .with_context(|| format!("cannot create the database {name} (--postgres)"))?;
    connection.close().await.ok();
    Ok(name)
}

impl Federation {
    /// Drops the databases `--postgres` made, once every node has stopped.
    pub async fn drop_databases(&self) -> anyhow::Result<()> {
        use sqlx::Connection;
        let Some((server, names)) = &self.postgres else {
            return Ok(());
        };
        let admin = format!("{}/postgres", server.trim_end_matches('/'));
        let mut connection = sqlx::PgConnection::connect(&admin).await?;
        for name in names {
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut connection)
                .await?;
        }
        connection.close().await.ok();
        Ok(())
    }
}

/// A port for a team that is listed in the directory and never runs: free a moment ago, and
/// never connected to, so it need not stay reserved.
pub fn quiet_port() -> anyhow::Result<u16> {
    Ok(ReservedPort::new()
        .context("cannot reserve a loopback port")?
        .port())
}

/// The config of a benchmark node: as shipped, with delivery retrying quickly so the drain
/// phase measures delivery rather than the backoff left over from the outage.
fn node_config(team: &Team, ca_dir: &Path) -> NodeToml {
    let mut toml = NodeToml::new(
        FEDERATION,
        team.id.as_str(),
        team.role,
        team.discipline,
        &ca_dir.join("ca.pem"),
        team.port,
    );
    toml.comment = Some(format!("Benchmark node {}", team.id));
    toml.jurisdiction = Some("Bench County".into());
    toml.delivery = Some(Delivery {
        initial_backoff: Some(Duration::from_millis(50)),
        max_backoff: Some(Duration::from_millis(500)),
        ..Default::default()
    });
    toml
}
