//! The node's configuration: a TOML file parsed into types once, at start-up.
//!
//! Nothing past this module sees raw strings from the file. Parsing happens in two passes: serde
//! reads the shape (and names an unknown or mistyped key), then [`Config::from_toml`] checks
//! every value and reports all invalid keys together, so an admin fixes the file in one go.
//! Relative paths are taken from the config file's directory (TLS files) or the data directory
//! (the Agency socket).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tatmx_certs::{FederationId, TeamId, TeamIdentity};

use crate::retention::RetentionSettings;
use crate::team::{Discipline, LocalTeam, Peer, Role};

pub use email::{EmailSettings, MailTls};

/// The default limit on one decoded gRPC message.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// A config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The TOML was malformed, had an unknown key, or a value of the wrong type.
    #[error("{path}: {message}")]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// toml's message, which names the key and line.
        message: String,
    },
    /// One or more values were invalid; each entry names its key.
    #[error("{path}: invalid configuration:\n  {}", .problems.join("\n  "))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// `key: problem`, one per invalid key.
        problems: Vec<String>,
    },
}

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's team.
    pub local: LocalTeam,
    /// Where the node keeps its database and sockets.
    pub data_dir: PathBuf,
    /// TLS files.
    pub tls: TlsFiles,
    /// This node's identities in other federations, each with its own CA and certificate.
    pub memberships: Vec<Membership>,
    /// The Federation API listener.
    pub federation: FederationListener,
    /// The Agency API listener.
    pub agency: AgencyListener,
    /// The Admin API socket.
    pub admin_socket: PathBuf,
    /// Directory freshness and refresh.
    pub directory: DirectorySettings,
    /// How the outbox delivers.
    pub delivery: DeliverySettings,
    /// How long received referrals are kept, per purpose.
    pub retention: RetentionSettings,
    /// Audit checkpoints and audit retention.
    pub audit: AuditSettings,
    /// Where `/metrics` is served; off when `None`.
    pub metrics_listen: Option<SocketAddr>,
    /// The plaintext gRPC health listener for probes, and the store check behind readiness.
    pub health: HealthSettings,
    /// The staff console in the browser; off when `None` (no `[console]` section).
    pub console: Option<ConsoleSettings>,
    /// The SMTP relay notifications are emailed through; off when `None` (no `[email]`).
    pub email: Option<EmailSettings>,
    /// Where the store is: SQLite in the data directory, or PostgreSQL.
    pub store: StoreLocation,
    /// The agency's policy files, added to the default pack.
    pub policy_files: Vec<PathBuf>,
    /// The teams this node exchanges messages with.
    pub peers: Vec<Peer>,
}

/// This node's membership of another federation.
#[derive(Debug, Clone)]
pub struct Membership {
    /// This node's identity there.
    pub identity: TeamIdentity,
    /// That federation's CA, and this node's certificate and key there.
    pub tls: TlsFiles,
}

/// Paths to the federation CA, this node's certificate, and its key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Federation CA certificate(s), PEM.
    pub ca: PathBuf,
    /// This node's certificate chain, PEM.
    pub cert: PathBuf,
    /// This node's private key, PEM.
    pub key: PathBuf,
}

/// The Federation API listener.
#[derive(Debug, Clone)]
pub struct FederationListener {
    /// Address to bind, such as `0.0.0.0:7443`.
    pub listen: SocketAddr,
    /// The largest message accepted, in bytes.
    pub max_message_bytes: usize,
    /// How long a TLS handshake may take before the connection is dropped.
    pub handshake_timeout: Duration,
}

/// The Agency API listener.
#[derive(Debug, Clone)]
pub struct AgencyListener {
    /// The Unix socket path; created with mode 0600.
    pub socket: PathBuf,
    /// The largest message accepted, in bytes.
    pub max_message_bytes: usize,
}

/// How the node keeps its federation directory fresh.
#[derive(Debug, Clone)]
pub struct DirectorySettings {
    /// A directory older than this is reported as stale (logs and `tatmx trust status`).
    pub max_age: Duration,
    /// How often to ask the `refresh_from` peers for a newer directory.
    pub refresh_interval: Duration,
    /// Peers (team ids in this federation) to fetch newer directories from, in order.
    pub refresh_from: Vec<TeamId>,
}

/// The audit log's checkpoints and retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// How often the chain head is signed (and always on shutdown). Default five minutes.
    pub checkpoint_interval: Duration,
    /// How long audit entries are kept, separately from case data. Default six years, the
    /// HIPAA documentation retention period.
    pub retention: Duration,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            checkpoint_interval: Duration::from_secs(300),
            retention: Duration::from_secs(6 * 365 * 24 * 3600),
        }
    }
}

/// Health for probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// Where a plaintext listener serves only `grpc.health.v1.Health`, for probes that cannot
    /// do mutual TLS (Kubernetes `grpc:` probes); off when `None`.
    pub listen: Option<SocketAddr>,
    /// How often the store is checked; readiness is off while the check fails.
    pub check_interval: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            listen: None,
            check_interval: Duration::from_secs(5),
        }
    }
}

/// The staff console: HTTPS for browsers, off unless the config has a `[console]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSettings {
    /// Where it listens; [`DEFAULT_CONSOLE_LISTEN`] (this host only) unless set. Anything
    /// else exposes the sign-in page to that network, so set it only behind the agency's
    /// firewall.
    pub listen: SocketAddr,
    /// A session left idle this long locks; the lock screen asks for the password and a new
    /// code. Default 30 minutes.
    pub idle_lock: Duration,
    /// A web certificate and key (PEM) that staff browsers trust, for a DNS name; without one
    /// the console presents the node's own federation certificate, which browsers warn about.
    pub certificate: Option<(PathBuf, PathBuf)>,
}

/// Where the console listens when `[console]` names no address: this host only.
pub const DEFAULT_CONSOLE_LISTEN: &str = "127.0.0.1:8443";

/// Outbox delivery tuning.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// First retry delay after a failed attempt.
    pub initial_backoff: Duration,
    /// The longest retry delay.
    pub max_backoff: Duration,
    /// How long one delivery attempt may take.
    pub request_timeout: Duration,
    /// How long connecting to a peer may take.
    pub connect_timeout: Duration,
    /// A message still undelivered after this long becomes a dead letter.
    pub max_age: Duration,
}

impl DeliverySettings {
    /// How long a replica's claim on the messages it is sending lasts: long enough to connect,
    /// send and record the outcome, after which another replica may take them over.
    pub fn claim_lease(&self) -> Duration {
        self.connect_timeout + self.request_timeout + Duration::from_secs(5)
    }
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, base).map_err(|e| match e {
            ParseFailure::Syntax(message) => ConfigError::Syntax {
                path: path.to_owned(),
                message,
            },
            ParseFailure::Invalid(problems) => ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            },
        })
    }

    /// Parses config text; relative TLS paths are taken from `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, ParseFailure> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ParseFailure::Syntax(e.to_string()))?;
        let mut p = Problems::default();

        let federation = p.parse("node.federation", &raw.node.federation, |s| {
            FederationId::new(s)
        });
        let team = p.parse("node.team", &raw.node.team, |s| TeamId::new(s));
        let role = p.parse("node.role", &raw.node.role, parse_role);
        let discipline = p.parse("node.discipline", &raw.node.discipline, parse_discipline);
        let listen = p.parse("federation_api.listen", &raw.federation_api.listen, |s| {
            s.parse::<SocketAddr>()
                .map_err(|_| "expected host:port, such as 0.0.0.0:7443")
        });
        let handshake_timeout = p.parse(
            "federation_api.handshake_timeout",
            raw.federation_api
                .handshake_timeout
                .as_deref()
                .unwrap_or("10s"),
            parse_duration,
        );
        let fed_max = p.size(
            "federation_api.max_message_bytes",
            raw.federation_api.max_message_bytes,
        );
        let agency_max = p.size(
            "agency_api.max_message_bytes",
            raw.agency_api.max_message_bytes,
        );
        let delivery = p.delivery(&raw.delivery);
        let retention = p.retention(&raw.retention);
        let metrics_listen = raw.metrics.listen.as_deref().and_then(|v| {
            p.parse("metrics.listen", v, |s| {
                s.parse::<SocketAddr>()
                    .map_err(|_| "expected host:port, such as 127.0.0.1:9464")
            })
        });
        let health_listen = raw.health.listen.as_deref().and_then(|v| {
            p.parse("health.listen", v, |s| {
                s.parse::<SocketAddr>()
                    .map_err(|_| "expected host:port, such as 0.0.0.0:9465")
            })
        });
        let health_check = match &raw.health.check_interval {
            Some(v) => p.parse("health.check_interval", v, parse_duration),
            None => Some(HealthSettings::default().check_interval),
        };
        let console = raw.console.as_ref().and_then(|c| p.console(c, base));
        let email = raw.email.as_ref().and_then(|e| p.email(e, base));
        let store_url = p.store_url(&raw.store);
        let audit_defaults = AuditSettings::default();
        let checkpoint_interval = match &raw.audit.checkpoint_interval {
            Some(v) => p.parse("audit.checkpoint_interval", v, parse_duration),
            None => Some(audit_defaults.checkpoint_interval),
        };
        let audit_retention = match &raw.audit.retention {
            Some(v) => p.parse("audit.retention", v, parse_duration),
            None => Some(audit_defaults.retention),
        };
        let max_age = p.parse(
            "directory.max_age",
            raw.directory.max_age.as_deref().unwrap_or("7d"),
            parse_duration,
        );
        let refresh_interval = p.parse(
            "directory.refresh_interval",
            raw.directory.refresh_interval.as_deref().unwrap_or("1h"),
            parse_duration,
        );
        let refresh_from: Vec<TeamId> = raw
            .directory
            .refresh_from
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                p.parse(&format!("directory.refresh_from[{i}]"), t, |s| {
                    TeamId::new(s)
                })
            })
            .collect();
        if raw.node.data_dir.as_os_str().is_empty() {
            p.push("node.data_dir", "is required");
        }

        let mut memberships = Vec::new();
        for (i, raw_membership) in raw.memberships.iter().enumerate() {
            let key = |k: &str| format!("memberships[{i}].{k}");
            let f = p.parse(&key("federation"), &raw_membership.federation, |s| {
                FederationId::new(s)
            });
            let t = p.parse(&key("team"), &raw_membership.team, |s| TeamId::new(s));
            if let (Some(f), Some(t)) = (f, t) {
                if Some(&f) == federation.as_ref()
                    || memberships
                        .iter()
                        .any(|m: &Membership| m.identity.federation == f)
                {
                    p.push(&key("federation"), format!("{f} is listed twice"));
                }
                memberships.push(Membership {
                    identity: TeamIdentity::new(f, t),
                    tls: TlsFiles {
                        ca: base.join(&raw_membership.ca),
                        cert: base.join(&raw_membership.cert),
                        key: base.join(&raw_membership.key),
                    },
                });
            }
        }

        let mut peers = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, raw_peer) in raw.peers.iter().enumerate() {
            let key = |k: &str| format!("peers[{i}].{k}");
            let team = p.parse(&key("team"), &raw_peer.team, |s| TeamId::new(s));
            let peer_federation = match &raw_peer.federation {
                Some(f) => p.parse(&key("federation"), f, |s| FederationId::new(s)),
                None => federation.clone(),
            };
            let endpoint = p.parse(&key("endpoint"), &raw_peer.endpoint, parse_endpoint);
            let role = p.parse(&key("role"), &raw_peer.role, parse_role);
            let discipline = p.parse(&key("discipline"), &raw_peer.discipline, parse_discipline);
            if let (Some(f), Some(t), Some(endpoint), Some(role), Some(discipline)) =
                (peer_federation, team, endpoint, role, discipline)
            {
                let identity = TeamIdentity::new(f, t);
                if !seen.insert(identity.clone()) {
                    p.push(&key("team"), format!("{identity} is listed twice"));
                }
                peers.push(Peer {
                    identity,
                    endpoint,
                    role,
                    discipline,
                    jurisdiction: raw_peer.jurisdiction.clone().unwrap_or_default(),
                    cjis_authorized: raw_peer.cjis_authorized.unwrap_or(false),
                });
            }
        }

        let (
            Some(federation),
            Some(team),
            Some(role),
            Some(discipline),
            Some(listen),
            Some(handshake_timeout),
            Some(delivery),
            Some(retention),
            Some(checkpoint_interval),
            Some(audit_retention),
            Some(max_age),
            Some(refresh_interval),
        ) = (
            federation,
            team,
            role,
            discipline,
            listen,
            handshake_timeout,
            delivery,
            retention,
            checkpoint_interval,
            audit_retention,
            max_age,
            refresh_interval,
        )
        else {
            return Err(ParseFailure::Invalid(p.0));
        };
        if !p.0.is_empty() {
            return Err(ParseFailure::Invalid(p.0));
        }
        let identity = TeamIdentity::new(federation, team);
        if peers.iter().any(|peer| {
            peer.identity == identity || memberships.iter().any(|m| m.identity == peer.identity)
        }) {
            return Err(ParseFailure::Invalid(vec![format!(
                "peers: this node's own team {identity} cannot be its own peer"
            )]));
        }
        let data_dir = base.join(&raw.node.data_dir);
        let store = match store_url {
            Some(url) => StoreLocation::Postgres(DatabaseUrl(url)),
            None => StoreLocation::Sqlite(data_dir.join("tatmx.db")),
        };
        let socket = data_dir.join(
            raw.agency_api
                .socket
                .unwrap_or_else(|| PathBuf::from("agency.sock")),
        );
        let admin_socket = data_dir.join(
            raw.admin_api
                .socket
                .unwrap_or_else(|| PathBuf::from("admin.sock")),
        );
        Ok(Self {
            admin_socket,
            directory: DirectorySettings {
                max_age,
                refresh_interval,
                refresh_from,
            },
            local: LocalTeam {
                identity,
                role,
                discipline,
                jurisdiction: raw.node.jurisdiction.unwrap_or_default(),
                cjis_authorized: raw.node.cjis_authorized.unwrap_or(false),
            },
            policy_files: raw.policy.files.iter().map(|f| base.join(f)).collect(),
            data_dir,
            memberships,
            tls: TlsFiles {
                ca: base.join(raw.tls.ca),
                cert: base.join(raw.tls.cert),
                key: base.join(raw.tls.key),
            },
            federation: FederationListener {
                listen,
                max_message_bytes: fed_max.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
                handshake_timeout,
            },
            agency: AgencyListener {
                socket,
                max_message_bytes: agency_max.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
            },
            delivery,
            retention,
            audit: AuditSettings {
                checkpoint_interval,
                retention: audit_retention,
            },
            metrics_listen,
            health: HealthSettings {
                listen: health_listen,
                // A value that did not parse was reported above, and returned before here.
                check_interval: health_check.unwrap_or(HealthSettings::default().check_interval),
            },
            console,
            email,
            store,
            peers,
        })
    }

    /// The SQLite database file, when the store is SQLite.
    pub fn database_path(&self) -> Option<&Path> {
        match &self.store {
            StoreLocation::Sqlite(path) => Some(path),
            StoreLocation::Postgres(_) => None,
        }
    }
}

/// Where the node's store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file in the data directory: the default, for a single process.
    Sqlite(PathBuf),
    /// A PostgreSQL database, which several replicas of one team's node may share.
    Postgres(DatabaseUrl),
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => write!(f, "{url:?}"),
        }
    }
}

/// A `postgres://` URL. It may carry a password, so it is never printed: `Debug` shows the
/// host and database only.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The whole URL, credentials included, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Everything after the last '@' is host, port, database and options; before it may
        // be a password.
        let rest = self.0.rsplit_once('@').map_or_else(
            || self.0.split_once("://").map_or("", |(_, rest)| rest),
            |(_, rest)| rest,
        );
        write!(f, "postgres://…@{rest}")
    }
}

/// Why config text was refused, before the file name is attached.
#[derive(Debug)]
pub enum ParseFailure {
    /// Malformed TOML, an unknown key or a mistyped value.
    Syntax(String),
    /// Invalid values, one entry per key.
    Invalid(Vec<String>),
}

#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, key: &str, problem: impl std::fmt::Display) {
        self.0.push(format!("{key}: {problem}"));
    }

    fn parse<T, E: std::fmt::Display>(
        &mut self,
        key: &str,
        value: &str,
        f: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        f(value).map_err(|e| self.push(key, e)).ok()
    }

    fn size(&mut self, key: &str, value: Option<u64>) -> Option<usize> {
        let value = value?;
        // 64 MiB is far past any referral; beyond it a typo is more likely than intent.
        if (1024..=64 * 1024 * 1024).contains(&value) {
            usize::try_from(value).ok()
        } else {
            self.push(key, "must be between 1024 and 67108864 bytes");
            None
        }
    }

    fn delivery(&mut self, raw: &RawDelivery) -> Option<DeliverySettings> {
        let defaults = DeliverySettings::default();
        let mut pick = |key: &str, value: &Option<String>, default: Duration| match value {
            Some(v) => self.parse(&format!("delivery.{key}"), v, parse_duration),
            None => Some(default),
        };
        let settings = DeliverySettings {
            initial_backoff: pick(
                "initial_backoff",
                &raw.initial_backoff,
                defaults.initial_backoff,
            )?,
            max_backoff: pick("max_backoff", &raw.max_backoff, defaults.max_backoff)?,
            request_timeout: pick(
                "request_timeout",
                &raw.request_timeout,
                defaults.request_timeout,
            )?,
            connect_timeout: pick(
                "connect_timeout",
                &raw.connect_timeout,
                defaults.connect_timeout,
            )?,
            max_age: pick("max_age", &raw.max_age, defaults.max_age)?,
        };
        if settings.max_backoff < settings.initial_backoff {
            self.push(
                "delivery.max_backoff",
                "must not be shorter than initial_backoff",
            );
        }
        Some(settings)
    }
}

impl Problems {
    /// The `[console]` section; relative certificate paths are taken from `base`.
    fn console(&mut self, raw: &RawConsole, base: &Path) -> Option<ConsoleSettings> {
        let listen = self.parse(
            "console.listen",
            raw.listen.as_deref().unwrap_or(DEFAULT_CONSOLE_LISTEN),
            |s| {
                s.parse::<SocketAddr>()
                    .map_err(|_| "expected host:port, such as 127.0.0.1:8443")
            },
        );
        let idle_lock = self.parse(
            "console.idle_lock",
            raw.idle_lock.as_deref().unwrap_or("30m"),
            parse_duration,
        );
        let certificate = match (&raw.cert, &raw.key) {
            (Some(cert), Some(key)) => Some((base.join(cert), base.join(key))),
            (None, None) => None,
            _ => {
                self.push(
                    "console",
                    "set both cert and key, or neither to use the node's own certificate",
                );
                None
            }
        };
        Some(ConsoleSettings {
            listen: listen?,
            idle_lock: idle_lock?,
            certificate,
        })
    }

    /// The PostgreSQL URL, from `store.url` or the environment variable `store.url_env` names
    /// (so a secret need not sit in the config file); `None` means SQLite.
    fn store_url(&mut self, raw: &RawStore) -> Option<String> {
        let (key, url) = match (&raw.url, &raw.url_env) {
            (None, None) => return None,
            (Some(_), Some(_)) => {
                self.push("store", "set url or url_env, not both");
                return None;
            }
            (Some(url), None) => ("store.url", url.clone()),
            (None, Some(var)) => match std::env::var(var) {
                Ok(url) => ("store.url_env", url),
                Err(_) => {
                    self.push(
                        "store.url_env",
                        format!("the environment variable {var} is not set (or not UTF-8)"),
                    );
                    return None;
                }
            },
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(url)
        } else {
            // Never echo the value: it may hold a password.
            self.push(
                key,
                "must be a postgres:// URL (leave [store] out to use SQLite in node.data_dir)",
            );
            None
        }
    }

    fn retention(&mut self, raw: &RawRetention) -> Option<RetentionSettings> {
        let defaults = RetentionSettings::default();
        let mut pick = |key: &str, value: &Option<String>, default: Duration| match value {
            Some(v) => self.parse(&format!("retention.{key}"), v, parse_duration),
            None => Some(default),
        };
        Some(RetentionSettings {
            threat_assessment: pick(
                "threat-assessment",
                &raw.threat_assessment,
                defaults.threat_assessment,
            )?,
            threat_management: pick(
                "threat-management",
                &raw.threat_management,
                defaults.threat_management,
            )?,
            consultation: pick("consultation", &raw.consultation, defaults.consultation)?,
            sweep_interval: pick(
                "sweep_interval",
                &raw.sweep_interval,
                defaults.sweep_interval,
            )?,
        })
    }
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "core" => Ok(Role::Core),
        "affiliate" => Ok(Role::Affiliate),
        "partner" => Ok(Role::Partner),
        _ => Err("expected one of core, affiliate, partner".into()),
    }
}

fn parse_discipline(s: &str) -> Result<Discipline, String> {
    Discipline::ALL
        .into_iter()
        .find(|d| d.as_str() == s)
        .ok_or_else(|| {
            let names: Vec<&str> = Discipline::ALL.iter().map(|d| d.as_str()).collect();
            format!("expected one of {}", names.join(", "))
        })
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e}; write a duration such as 500ms, 10s or 5m"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

pub(crate) fn parse_endpoint(s: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = s
        .parse()
        .map_err(|_| "expected a URL such as https://core.example:7443".to_string())?;
    if uri.scheme_str() != Some("https") {
        return Err("must use https://; federation traffic is always mutual TLS".into());
    }
    if uri.host().is_none() || uri.port_u16().is_none() {
        return Err("must name a host and a port, such as https://core.example:7443".into());
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err("must not have a path".into());
    }
    Ok(uri)
}

mod email;
mod raw;

use raw::*;

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const VALID: &str = r#"
        [node]
        federation = "county-mdt.example"
        team = "county-core"
        role = "core"
        discipline = "law-enforcement"
        data_dir = "data"

        [tls]
        ca = "ca.pem"
        cert = "node.pem"
        key = "node.key"

        [federation_api]
        listen = "127.0.0.1:7443"

        [[peers]]
        team = "lincoln-high"
        endpoint = "https://127.0.0.1:7444"
        role = "affiliate"
        discipline = "education"
    "#;

    #[test]
    fn parses_a_valid_config_with_defaults() {
        let config = Config::from_toml(VALID, Path::new("/etc/tatmx")).unwrap();
        assert_eq!(
            config.local.identity.uri(),
            "spiffe://county-mdt.example/team/county-core"
        );
        assert_eq!(config.tls.ca, Path::new("/etc/tatmx/ca.pem"));
        assert_eq!(
            config.agency.socket,
            Path::new("/etc/tatmx/data/agency.sock")
        );
        assert_eq!(
            config.federation.max_message_bytes,
            DEFAULT_MAX_MESSAGE_BYTES
        );
        assert_eq!(config.peers.len(), 1);
        assert_eq!(config.peers[0].role, Role::Affiliate);
    }

    #[test]
    fn reports_every_invalid_key_at_once() {
        let text = VALID
            .replace("\"core\"", "\"boss\"")
            .replace("https://127.0.0.1:7444", "http://127.0.0.1:7444")
            .replace("\"127.0.0.1:7443\"", "\"nowhere\"");
        let Err(ParseFailure::Invalid(problems)) = Config::from_toml(&text, Path::new(".")) else {
            panic!("expected invalid values");
        };
        let joined = problems.join("\n");
        assert!(joined.contains("node.role"), "{joined}");
        assert!(joined.contains("peers[0].endpoint"), "{joined}");
        assert!(joined.contains("federation_api.listen"), "{joined}");
        assert_eq!(problems.len(), 3, "{joined}");
    }

    #[test]
    fn the_shipped_examples_are_valid() {
        for text in [
            include_str!("../../../deploy/examples/county-core.toml"),
            include_str!("../../../deploy/examples/lincoln-high.toml"),
        ] {
            Config::from_toml(text, Path::new("/etc/tatmx")).unwrap();
        }
    }

    #[test]
    fn the_health_listener_is_off_unless_set_and_a_bad_address_is_named() {
        let config = Config::from_toml(VALID, Path::new(".")).unwrap();
        assert_eq!(config.health, HealthSettings::default());
        assert_eq!(config.metrics_listen, None);
        let text =
            format!("{VALID}\n[health]\nlisten = \"0.0.0.0:9465\"\ncheck_interval = \"2s\"\n");
        let config = Config::from_toml(&text, Path::new(".")).unwrap();
        assert_eq!(config.health.listen, Some("0.0.0.0:9465".parse().unwrap()));
        assert_eq!(config.health.check_interval, Duration::from_secs(2));
        let text = format!("{VALID}\n[health]\nlisten = \"everywhere\"\n");
        let Err(ParseFailure::Invalid(problems)) = Config::from_toml(&text, Path::new(".")) else {
            panic!("expected an invalid address");
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("health.listen: expected host:port"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_console_is_off_unless_configured_and_defaults_to_this_host() {
        let config = Config::from_toml(VALID, Path::new(".")).unwrap();
        assert_eq!(config.console, None);
        let config =
            Config::from_toml(&format!("{VALID}\n[console]\n"), Path::new("/etc/tatmx")).unwrap();
        let console = config.console.unwrap();
        assert_eq!(console.listen, DEFAULT_CONSOLE_LISTEN.parse().unwrap());
        assert_eq!(console.idle_lock, Duration::from_secs(1800));
        assert_eq!(console.certificate, None);
        let text = format!("{VALID}\n[console]\nlisten = \"here\"\ncert = \"web.pem\"\n");
        let Err(ParseFailure::Invalid(problems)) = Config::from_toml(&text, Path::new(".")) else {
            panic!("expected invalid values");
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn names_an_unknown_key() {
        let text = VALID.replace("[tls]", "[tls]\nsecret = 1");
        let Err(ParseFailure::Syntax(message)) = Config::from_toml(&text, Path::new(".")) else {
            panic!("expected a syntax error");
        };
        assert!(message.contains("secret"), "{message}");
    }
}
