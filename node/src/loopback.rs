//! A federation of real nodes on loopback, for the demo, the benchmark and the tests.
//!
//! Three things every local federation needs, in one place:
//! - [`ReservedPort`]: a Federation port that is the node's from the moment its team is made
//!   until the federation is dropped, so every config can name it before any node starts;
//! - [`NodeToml`]: the one writer of a loopback node's TOML config;
//! - [`LoopbackFederation`]: the federation CA and its teams' keys, CSRs and certificates, made
//!   with `tatmx-certs`, and [`start`], which starts a node in this process on its reserved port.
//!
//! # Ports
//! A port is reserved by a socket bound to `127.0.0.1:0` and kept bound, never listening, for
//! as long as the [`ReservedPort`] lives. Linux never gives a bound port to another socket's
//! `bind` without `SO_REUSEADDR`, nor to an outgoing connection's automatic port (so a node
//! that is down cannot have its port taken by a peer retrying towards it). A node binds its
//! listener on the same port with `SO_REUSEADDR`, which a bound socket that does not listen
//! allows; while it listens, no second listener can bind. A node stopped and started again
//! finds its port still free for it, and while it is down its peers are refused, as they would
//! be by a real node that is down. Nodes run as their own processes (the benchmark, the crash
//! and replica tests) bind the port from their config the same way: `tokio`'s listener sets
//! `SO_REUSEADDR` on Unix.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tatmx_certs::files::{write_public, write_secret};
use tatmx_certs::{CertError, CertificateAuthority, FederationId, NodeKey, TeamId, TeamIdentity};

use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::node::{RunningNode, StartError};

/// Why a loopback federation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    /// A key, certificate or id could not be made or written.
    #[error(transparent)]
    Certificate(#[from] CertError),
    /// A team or federation id is not valid.
    #[error(transparent)]
    Identity(#[from] tatmx_certs::IdentityError),
    /// A loopback port could not be reserved.
    #[error("cannot reserve a loopback port: {0}")]
    Port(std::io::Error),
    /// A directory or config file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The config written does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A loopback port held for one node; see the module docs. Dropping it releases the port.
#[derive(Debug)]
pub struct ReservedPort {
    /// The port the kernel chose.
    port: u16,
    /// Bound and never listening: it holds the port and accepts nothing.
    _holder: tokio::net::TcpSocket,
}

impl ReservedPort {
    /// Reserves a port on `127.0.0.1` that the kernel picks.
    pub fn new() -> std::io::Result<Self> {
        let holder = tokio::net::TcpSocket::new_v4()?;
        holder.set_reuseaddr(true)?;
        holder.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let port = holder.local_addr()?.port();
        Ok(Self {
            port,
            _holder: holder,
        })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Binds a listener on `addr`, beside the reservation that holds its port. Needs a tokio
/// runtime.
pub fn listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)?.into_std()
}

/// Starts a node in this process on the Federation port its config names (a reserved one).
pub async fn start(config: Config) -> Result<RunningNode, StartError> {
    start_with_clock(config, Clock::system()).await
}

/// As [`start`], with the node reading the time from `clock`.
pub async fn start_with_clock(config: Config, clock: Clock) -> Result<RunningNode, StartError> {
    let addr = config.federation.listen;
    let listener = listener(addr).map_err(|source| StartError::Bind { addr, source })?;
    crate::node::start_with_clock(config, Some(listener), clock).await
}

/// How a loopback node retries deliveries; `None` fields keep the node's defaults.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// The first wait before a retry.
    pub initial_backoff: Option<Duration>,
    /// The longest wait between retries.
    pub max_backoff: Option<Duration>,
    /// How long one delivery call may take.
    pub request_timeout: Option<Duration>,
    /// How long connecting to a peer may take.
    pub connect_timeout: Option<Duration>,
}

/// A peer as a node's config lists it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its team id.
    pub team: String,
    /// Its federation.
    pub federation: String,
    /// Its Federation port on loopback.
    pub port: u16,
    /// core, affiliate or partner.
    pub role: String,
    /// Its discipline.
    pub discipline: String,
    /// Whether it may hold criminal-justice information.
    pub cjis_authorized: bool,
}

/// One loopback node's config file. Every field is what the node's TOML says; the optional
/// ones are left out when `None`, so the node's defaults apply.
#[derive(Debug, Clone)]
pub struct NodeToml {
    /// A comment on the first line (the team's name, what the node is for).
    pub comment: Option<String>,
    /// The federation.
    pub federation: String,
    /// The team.
    pub team: String,
    /// core, affiliate or partner.
    pub role: String,
    /// Its discipline.
    pub discipline: String,
    /// Its jurisdiction.
    pub jurisdiction: Option<String>,
    /// Whether it may hold criminal-justice information.
    pub cjis_authorized: Option<bool>,
    /// The federation CA certificate.
    pub ca: PathBuf,
    /// Its Federation port on loopback: a [`ReservedPort`].
    pub port: u16,
    /// The store's URL (PostgreSQL); a SQLite file in the data directory when `None`.
    pub store_url: Option<String>,
    /// Delivery timings.
    pub delivery: Option<Delivery>,
    /// How often the audit chain is signed.
    pub checkpoint_interval: Option<Duration>,
    /// Its peers, when they come from the config rather than a signed directory.
    pub peers: Vec<Peer>,
    /// Any further TOML (tables the fields above do not cover), written before the peers.
    pub extra: String,
}

impl NodeToml {
    /// A node of `team` in `federation`, on `port`, trusting the CA in `ca`: keys in `node.pem`
    /// and `node.key` and data in `data/`, beside the config.
    pub fn new(
        federation: impl Into<String>,
        team: impl Into<String>,
        role: impl Into<String>,
        discipline: impl Into<String>,
        ca: &Path,
        port: u16,
    ) -> Self {
        Self {
            comment: None,
            federation: federation.into(),
            team: team.into(),
            role: role.into(),
            discipline: discipline.into(),
            jurisdiction: None,
            cjis_authorized: None,
            ca: ca.to_owned(),
            port,
            store_url: None,
            delivery: None,
            checkpoint_interval: None,
            peers: Vec::new(),
            extra: String::new(),
        }
    }

    /// The TOML text.
    pub fn text(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        if let Some(comment) = &self.comment {
            let _ = writeln!(text, "# {comment}");
        }
        let _ = writeln!(text, "[node]");
        let _ = writeln!(text, "federation = {}", quoted(&self.federation));
        let _ = writeln!(text, "team = {}", quoted(&self.team));
        let _ = writeln!(text, "role = {}", quoted(&self.role));
        let _ = writeln!(text, "discipline = {}", quoted(&self.discipline));
        if let Some(jurisdiction) = &self.jurisdiction {
            let _ = writeln!(text, "jurisdiction = {}", quoted(jurisdiction));
        }
        if let Some(cjis) = self.cjis_authorized {
            let _ = writeln!(text, "cjis_authorized = {cjis}");
        }
        let _ = writeln!(text, "data_dir = \"data\"\n");
        let _ = writeln!(text, "[tls]");
        let _ = writeln!(text, "ca = {}", quoted(&self.ca.display().to_string()));
        let _ = writeln!(text, "cert = \"node.pem\"\nkey = \"node.key\"\n");
        let _ = writeln!(text, "[federation_api]");
        let _ = writeln!(text, "listen = \"127.0.0.1:{}\"\n", self.port);
        if let Some(url) = &self.store_url {
            let _ = writeln!(text, "[store]\nurl = {}\n", quoted(url));
        }
        if let Some(delivery) = &self.delivery {
            let _ = writeln!(text, "[delivery]");
            for (key, value) in [
                ("initial_backoff", delivery.initial_backoff),
                ("max_backoff", delivery.max_backoff),
                ("request_timeout", delivery.request_timeout),
                ("connect_timeout", delivery.connect_timeout),
            ] {
                if let Some(value) = value {
                    let _ = writeln!(text, "{key} = \"{}\"", humantime::format_duration(value));
                }
            }
            text.push('\n');
        }
        if let Some(interval) = self.checkpoint_interval {
            let _ = writeln!(
                text,
                "[audit]\ncheckpoint_interval = \"{}\"\n",
                humantime::format_duration(interval)
            );
        }
        if !self.extra.is_empty() {
            let _ = writeln!(text, "{}", self.extra.trim_end());
        }
        for peer in &self.peers {
            let _ = write!(
                text,
                "\n[[peers]]\nteam = {}\nfederation = {}\nendpoint = \"https://127.0.0.1:{}\"\n\
                 role = {}\ndiscipline = {}\ncjis_authorized = {}\n",
                quoted(&peer.team),
                quoted(&peer.federation),
                peer.port,
                quoted(&peer.role),
                quoted(&peer.discipline),
                peer.cjis_authorized,
            );
        }
        text
    }

    /// Writes the config to `path` and loads it back, as the node will.
    pub fn write(&self, path: &Path) -> Result<Config, LoopbackError> {
        std::fs::write(path, self.text()).map_err(|source| LoopbackError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Config::load(path)?)
    }
}

/// A TOML basic string.
fn quoted(value: &str) -> String {
    // TOML basic strings escape exactly like JSON's.
    serde_json::Value::from(value).to_string()
}

/// A team enrolled in a [`LoopbackFederation`].
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// Its identity.
    pub identity: TeamIdentity,
    /// Its directory: `node.key`, `node.csr`, `node.pem`, and later its config and data.
    pub dir: PathBuf,
    /// Its reserved Federation port.
    pub port: u16,
}

/// A federation CA and its teams, under one directory the caller owns.
pub struct LoopbackFederation {
    /// Where everything is written.
    pub root: PathBuf,
    /// The federation id.
    pub id: FederationId,
    /// The federation CA, for tests that issue more certificates or sign directories.
    pub ca: CertificateAuthority,
    /// `ca.pem` under the root.
    pub ca_path: PathBuf,
    /// Every port reserved so far, held until the federation is dropped.
    ports: Vec<ReservedPort>,
}

impl LoopbackFederation {
    /// Makes the CA of `federation` (valid two days) and writes its certificate to
    /// `root/ca.pem`.
    pub fn create(root: &Path, federation: &str) -> Result<Self, LoopbackError> {
        let id = FederationId::new(federation)?;
        let ca = CertificateAuthority::create(id.clone(), 2)?;
        let ca_path = root.join("ca.pem");
        write_public(&ca_path, ca.cert_pem())?;
        Ok(Self {
            root: root.to_owned(),
            id,
            ca,
            ca_path,
            ports: Vec::new(),
        })
    }

    /// Enrols `team`: its own key and CSR in `root/<team>`, a certificate from the CA, and a
    /// reserved port.
    pub fn enrol(&mut self, team: &str) -> Result<Enrolled, LoopbackError> {
        let identity = TeamIdentity::new(self.id.clone(), TeamId::new(team)?);
        let dir = self.root.join(team);
        std::fs::create_dir_all(&dir).map_err(|source| LoopbackError::Io {
            path: dir.clone(),
            source,
        })?;
        issue(&self.ca, &identity, &dir, "node")?;
        let port = self.reserve_port()?;
        Ok(Enrolled {
            identity,
            dir,
            port,
        })
    }

    /// Reserves one more loopback port for as long as the federation lives (a second replica's
    /// Federation port, a metrics or health listener).
    pub fn reserve_port(&mut self) -> Result<u16, LoopbackError> {
        let reserved = ReservedPort::new().map_err(LoopbackError::Port)?;
        let port = reserved.port();
        self.ports.push(reserved);
        Ok(port)
    }
}

/// Makes `<stem>.key`, `<stem>.csr` and `<stem>.pem` for `identity` in `dir`, signed by `ca`
/// for two days: the key never leaves `dir`, as with `tatmx node init` and `tatmx ca sign`.
pub fn issue(
    ca: &CertificateAuthority,
    identity: &TeamIdentity,
    dir: &Path,
    stem: &str,
) -> Result<(), LoopbackError> {
    let key = NodeKey::generate(identity)?;
    write_secret(&dir.join(format!("{stem}.key")), &key.key_pem)?;
    write_public(&dir.join(format!("{stem}.csr")), &key.csr_pem)?;
    let issued = ca.sign_csr(&key.csr_pem, identity.team.clone(), 2)?;
    write_public(&dir.join(format!("{stem}.pem")), &issued.cert_pem)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_port_refuses_connections_and_lets_one_listener_bind_it_again_and_again() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let reserved = ReservedPort::new().unwrap();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, reserved.port()));
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "nothing listens"
        );
        for _ in 0..2 {
            let first = listener(addr).unwrap();
            std::net::TcpStream::connect(addr).unwrap();
            assert!(listener(addr).is_err(), "a second listener on a taken port");
            assert!(std::net::TcpListener::bind(addr).is_err(), "a plain bind");
            drop(first);
            assert!(std::net::TcpStream::connect(addr).is_err(), "stopped");
        }
    }

    #[test]
    fn the_config_written_loads_with_every_option() {
        let dir = tempfile::tempdir().unwrap();
        let mut toml = NodeToml::new(
            "county-mdt.example",
            "county-core",
            "core",
            "law-enforcement",
            &dir.path().join("ca.pem"),
            4443,
        );
        toml.comment = Some("Lincoln County \"core\" team".into());
        toml.jurisdiction = Some("Lincoln County".into());
        toml.cjis_authorized = Some(true);
        toml.delivery = Some(Delivery {
            initial_backoff: Some(Duration::from_millis(50)),
            max_backoff: Some(Duration::from_secs(2)),
            request_timeout: None,
            connect_timeout: Some(Duration::from_secs(2)),
        });
        toml.checkpoint_interval = Some(Duration::from_millis(300));
        toml.extra = "[retention]\nsweep_interval = \"1s\"\n".into();
        toml.peers.push(Peer {
            team: "lincoln-high".into(),
            federation: "county-mdt.example".into(),
            port: 4444,
            role: "affiliate".into(),
            discipline: "education".into(),
            cjis_authorized: false,
        });
        let config = toml.write(&dir.path().join("node.toml")).unwrap();
        assert_eq!(config.federation.listen.port(), 4443);
        assert_eq!(config.peers.len(), 1);
        assert_eq!(config.delivery.initial_backoff, Duration::from_millis(50));
        assert_eq!(config.audit.checkpoint_interval, Duration::from_millis(300));
        assert!(toml.text().contains("connect_timeout = \"2s\""));
    }
}
