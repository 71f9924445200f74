//! Whether the node answers on its Admin socket, and whether each configured peer answers over
//! mutual TLS. The peer check is the handshake the node's delivery worker makes: the node's own
//! client configuration from [`tatmx_node::trust::handshake::client_config`], this node's certificate
//! offered, the peer's certificate checked against the configured CA and the identity the
//! config expects. Under TLS 1.3 the peer's verdict on this node's certificate arrives after
//! the handshake, so the check then opens HTTP/2 and reads the peer's first answer: its
//! settings when it admitted this node, an alert or a closed connection when it refused.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tatmx_node::Config;
use tatmx_node::client::ClientError;
use tatmx_node::store::StoredTrust;
use tatmx_node::tls::Identities;
use tatmx_node::trust::{Peer, TrustInputs, TrustState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::identity::Usable;
use super::{Check, Report, Verdict};
use crate::errors;

/// The HTTP/2 connection preface and an empty SETTINGS frame: the first bytes a gRPC client
/// sends. A peer that admitted this node answers with its own SETTINGS.
const HTTP2_PREFACE: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Whether the node runs: its Admin socket answers the standard gRPC health check.
pub async fn check_node(report: &mut Report, config: &Config, config_path: &Path, wait: Duration) {
    const CHECK: &str = "node running";
    let socket = &config.admin_socket;
    let start = format!(
        "start it with `tatmx-node --config {}` (or `systemctl start tatmx-node`), then run \
         tatmx doctor again",
        config_path.display()
    );
    let channel = match tatmx_node::client::local_channel(socket).await {
        Ok(channel) => channel,
        Err(e) if errors::permission_denied(socket, &e) => {
            let failure = errors::unreachable(errors::Api::Admin, socket, &e);
            report.warn(CHECK, failure.to_string(), failure.next());
            return;
        }
        Err(ClientError::NodeNotRunning(_)) => {
            report.warn(
                CHECK,
                format!(
                    "no: nothing answers at its Admin socket {}",
                    socket.display()
                ),
                start,
            );
            return;
        }
        Err(e) => {
            let failure = errors::unreachable(errors::Api::Admin, socket, &e);
            report.fail(CHECK, failure.to_string(), failure.next());
            return;
        }
    };
    let mut health = HealthClient::new(channel);
    let request = tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    };
    match tokio::time::timeout(wait, health.check(request)).await {
        Err(_) => report.fail(
            CHECK,
            format!(
                "its Admin socket {} took a connection but gave no answer within {}",
                socket.display(),
                humantime::format_duration(wait)
            ),
            "the node may be stuck: read its log, and restart it (`systemctl restart tatmx-node`)",
        ),
        Ok(Err(status)) => {
            let failure = errors::refused(status);
            report.fail(CHECK, failure.to_string(), failure.next());
        }
        Ok(Ok(answer)) => match answer.into_inner().status() {
            ServingStatus::Serving => report.ok(
                CHECK,
                format!(
                    "yes: its Admin socket {} answers (health SERVING)",
                    socket.display()
                ),
            ),
            other => report.fail(
                CHECK,
                format!(
                    "its Admin socket {} answers, but health is {}",
                    socket.display(),
                    other.as_str_name()
                ),
                "the node is starting or stopping: wait a moment and run tatmx doctor again; if \
                 it stays so, read its log",
            ),
        },
    }
}

/// Each configured peer: reachable, and a mutual-TLS handshake accepted by both sides. Peers
/// are tried at once, each with its own timeout, and reported in the config's order.
pub async fn check_peers(
    report: &mut Report,
    config: &Config,
    usable: Vec<Usable>,
    wait: Duration,
) {
    if config.peers.is_empty() {
        report.ok(
            "peers",
            "none in the config file (peers added with `tatmx peer add` or from a directory are \
             in the node's store; `tatmx peer list` shows their last contact)",
        );
        return;
    }
    let state = trust_state(config, usable).map(Arc::new);
    let mut probes = tokio::task::JoinSet::new();
    let mut checks: Vec<Option<Check>> = vec![None; config.peers.len()];
    for (i, peer) in config.peers.iter().enumerate() {
        let name = peer_name(config, peer);
        let member = state
            .as_ref()
            .filter(|s| s.identities.get(&peer.identity.federation).is_some());
        let Some(state) = member.cloned() else {
            checks[i] = Some(Check {
                check: name,
                status: Verdict::Skip,
                detail: format!(
                    "this node's certificate or key for {} is not usable (see above)",
                    peer.identity.federation
                ),
                next: Some("fix the failure above, then run tatmx doctor again".into()),
            });
            continue;
        };
        let peer = peer.clone();
        let local = config.local.identity.to_string();
        probes.spawn(async move { (i, probe(&state, &peer, name, i, &local, wait).await) });
    }
    while let Some(done) = probes.join_next().await {
        // A probe panics only on a bug; its peer is then left out rather than the whole report.
        if let Ok((i, check)) = done
            && let Some(slot) = checks.get_mut(i)
        {
            *slot = Some(check);
        }
    }
    for check in checks.into_iter().flatten() {
        report.record(check);
    }
}

/// The peer's name in the report: its team id in this node's federation, else its identity.
fn peer_name(config: &Config, peer: &Peer) -> String {
    if peer.identity.federation == config.local.identity.federation {
        format!("peer {}", peer.identity.team)
    } else {
        format!("peer {}", peer.identity)
    }
}

/// The trust a freshly started node would have from its config file alone: its certificates,
/// the configured CAs and peers, an empty store.
fn trust_state(config: &Config, usable: Vec<Usable>) -> Option<TrustState> {
    let mut usable = usable.into_iter();
    let first = usable.next()?;
    let mut anchors = vec![first.ca];
    let mut identities = Identities::new(first.credentials);
    for more in usable {
        anchors.push(more.ca);
        identities = identities.with(more.credentials);
    }
    TrustState::build(TrustInputs {
        local: config.local.clone(),
        identities,
        config_anchors: &anchors,
        config_peers: &config.peers,
        stored: &StoredTrust::default(),
        max_directory_age: config.directory.max_age,
    })
    .ok()
}

/// Connects to one peer and makes the handshake; says what was found.
async fn probe(
    state: &Arc<TrustState>,
    peer: &Peer,
    name: String,
    index: usize,
    local: &str,
    wait: Duration,
) -> Check {
    let endpoint = peer.endpoint.to_string();
    let endpoint = endpoint.trim_end_matches('/');
    let waited = humantime::format_duration(wait);
    let key = format!("peers[{index}].endpoint");
    let fail = |detail: String, next: String| Check {
        check: name.clone(),
        status: Verdict::Fail,
        detail,
        next: Some(next),
    };
    let refused_next = format!(
        "the peer's node must list {local} among its peers (`[[peers]]` in its config, its \
         federation directory, or `tatmx peer add`), not block it, and trust the CA that signed \
         this node's certificate; ask its admin, and ask the federation admin whether this \
         node's certificate was revoked"
    );
    let host = peer
        .endpoint
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let Some(port) = peer.endpoint.port_u16() else {
        return fail(
            format!("{endpoint}: no port"),
            format!("give `{key}` a port, such as https://host:7443"),
        );
    };
    let client = match tatmx_node::trust::handshake::client_config(state, peer.identity.clone()) {
        Ok(client) => client,
        Err(e) => {
            return fail(
                format!("cannot make this node's TLS client for it: {e}"),
                "fix the certificate problems reported above".into(),
            );
        }
    };
    let tcp = match tokio::time::timeout(wait, TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(tcp)) => tcp,
        Err(_) => {
            return fail(
                format!("{endpoint}: no answer within {waited}"),
                format!(
                    "the host is down, or a firewall drops the traffic: check the route to \
                     {host}:{port} from this host, and that the peer's node listens there (its \
                     `federation_api.listen`); check `{key}`"
                ),
            );
        }
        Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => {
            return fail(
                format!("{endpoint}: connection refused; nothing listens at {host}:{port}"),
                format!("is the peer's node running? Ask its admin; check the port in `{key}`"),
            );
        }
        Ok(Err(e)) => {
            return fail(
                format!("{endpoint}: cannot connect: {e}"),
                format!("check the host and port in `{key}`, and this host's DNS and network"),
            );
        }
    };
    let _ = tcp.set_nodelay(true);
    // tatmx clients name the federation in SNI, so a node in several federations presents the
    // right certificate; where the peer is hosted plays no part in who it is.
    let Ok(server_name) = ServerName::try_from(peer.identity.federation.to_string()) else {
        return fail(
            format!(
                "{} is not usable as a TLS server name",
                peer.identity.federation
            ),
            "correct the peer's federation in the config".into(),
        );
    };
    let connector = tokio_rustls::TlsConnector::from(client);
    let mut tls = match tokio::time::timeout(wait, connector.connect(server_name, tcp)).await {
        Ok(Ok(tls)) => tls,
        Err(_) => {
            return fail(
                format!(
                    "{endpoint}: connected, but the TLS handshake did not finish within {waited}"
                ),
                format!(
                    "something other than a tatmx node may listen there; check `{key}` against \
                     the peer's `federation_api.listen`"
                ),
            );
        }
        Ok(Err(e)) => {
            let (detail, next) = match tls_error(&e) {
                Some(rustls::Error::InvalidCertificate(why)) => (
                    format!("{endpoint}: this node refuses the peer's certificate: {why:?}"),
                    "the peer's certificate must be issued by this federation's CA, in date and \
                     not revoked: ask the peer's admin to run `tatmx doctor`"
                        .to_owned(),
                ),
                Some(rustls::Error::General(why)) => (
                    format!("{endpoint}: {why}"),
                    format!("`{key}` reaches another team's node; correct the endpoint"),
                ),
                Some(rustls::Error::AlertReceived(alert)) => (
                    format!("{endpoint}: the peer refused the handshake (TLS alert {alert:?})"),
                    refused_next.clone(),
                ),
                _ => (
                    format!("{endpoint}: the TLS handshake failed: {e}"),
                    format!(
                        "check that `{key}` is the peer's Federation API (`federation_api.listen`)"
                    ),
                ),
            };
            return fail(detail, next);
        }
    };
    let verdict = async {
        tls.write_all(HTTP2_PREFACE).await?;
        tls.flush().await?;
        let mut first = [0u8; 64];
        tls.read(&mut first).await
    };
    match tokio::time::timeout(wait, verdict).await {
        Ok(Ok(n)) if n > 0 => Check {
            check: name.clone(),
            status: Verdict::Ok,
            detail: format!(
                "{endpoint}: mutual TLS accepted both ways ({} proved, this node admitted)",
                peer.identity
            ),
            next: None,
        },
        Ok(Ok(_)) => fail(
            format!(
                "{endpoint}: the peer closed the connection after the handshake: it refused \
                 this node"
            ),
            refused_next,
        ),
        Ok(Err(e)) => match tls_error(&e) {
            Some(rustls::Error::AlertReceived(alert)) => fail(
                format!(
                    "{endpoint}: the peer refused this node's certificate (TLS alert {alert:?})"
                ),
                refused_next,
            ),
            _ => fail(
                format!("{endpoint}: the connection failed after the handshake: {e}"),
                refused_next,
            ),
        },
        Err(_) => fail(
            format!("{endpoint}: handshake made, but the peer said nothing within {waited}"),
            "the peer's node may be overloaded or stuck; ask its admin to read its log".into(),
        ),
    }
}

/// The TLS error inside an I/O error from tokio-rustls, if that is what it is.
fn tls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}
