//! The TOML file's shape, exactly as written, before any value is checked: serde reads it,
//! refusing unknown keys, and [`super::Config`] turns it into types.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) node: RawNode,
    pub(super) tls: RawTls,
    pub(super) federation_api: RawFederationApi,
    #[serde(default)]
    pub(super) agency_api: RawAgencyApi,
    #[serde(default)]
    pub(super) memberships: Vec<RawMembership>,
    #[serde(default)]
    pub(super) policy: RawPolicy,
    #[serde(default)]
    pub(super) admin_api: RawAdminApi,
    #[serde(default)]
    pub(super) directory: RawDirectory,
    #[serde(default)]
    pub(super) delivery: RawDelivery,
    #[serde(default)]
    pub(super) retention: RawRetention,
    #[serde(default)]
    pub(super) audit: RawAudit,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    #[serde(default)]
    pub(super) health: RawHealth,
    #[serde(default)]
    pub(super) store: RawStore,
    pub(super) console: Option<RawConsole>,
    pub(super) email: Option<super::email::RawEmail>,
    #[serde(default)]
    pub(super) peers: Vec<RawPeer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    pub(super) listen: Option<String>,
    pub(super) idle_lock: Option<String>,
    pub(super) cert: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) federation: String,
    pub(super) team: String,
    pub(super) role: String,
    pub(super) discipline: String,
    pub(super) jurisdiction: Option<String>,
    pub(super) cjis_authorized: Option<bool>,
    pub(super) data_dir: PathBuf,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(default)]
    pub(super) files: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) ca: PathBuf,
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFederationApi {
    pub(super) listen: String,
    pub(super) max_message_bytes: Option<u64>,
    pub(super) handshake_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgencyApi {
    pub(super) socket: Option<PathBuf>,
    pub(super) max_message_bytes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMembership {
    pub(super) federation: String,
    pub(super) team: String,
    pub(super) ca: PathBuf,
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdminApi {
    pub(super) socket: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDirectory {
    pub(super) max_age: Option<String>,
    pub(super) refresh_interval: Option<String>,
    #[serde(default)]
    pub(super) refresh_from: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    pub(super) initial_backoff: Option<String>,
    pub(super) max_backoff: Option<String>,
    pub(super) request_timeout: Option<String>,
    pub(super) connect_timeout: Option<String>,
    pub(super) max_age: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) url: Option<String>,
    pub(super) url_env: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub(super) listen: Option<String>,
    pub(super) check_interval: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    pub(super) checkpoint_interval: Option<String>,
    pub(super) retention: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    #[serde(rename = "threat-assessment")]
    pub(super) threat_assessment: Option<String>,
    #[serde(rename = "threat-management")]
    pub(super) threat_management: Option<String>,
    pub(super) consultation: Option<String>,
    pub(super) sweep_interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    pub(super) team: String,
    pub(super) federation: Option<String>,
    pub(super) endpoint: String,
    pub(super) role: String,
    pub(super) discipline: String,
    pub(super) jurisdiction: Option<String>,
    pub(super) cjis_authorized: Option<bool>,
}
