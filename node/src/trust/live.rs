//! The live trust handle: persists every change, then swaps in a new [`TrustState`].
//!
//! Changes are serialised by one lock, written to the store first, and only then made visible,
//! so a crash never leaves the node trusting something it has not recorded. Readers never
//! wait: each handshake and request loads the current view with one atomic read.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use serde_json::json;
use tatmx_certs::directory::{DirectoryError, SignedDirectory};
use tatmx_certs::{FederationId, TeamIdentity};
use time::OffsetDateTime;
use tokio::sync::watch;

use super::PeerCertificate;
use super::state::{TrustInputs, parse_anchors, parse_crl};
use super::{
    Anchor, DirectoryRecord, LocalTeam, Peer, PeerEntry, RevocationList, Source, TrustBuildError,
    TrustError, TrustState, VerifiedPeer,
};
use crate::actor::Actor;
use crate::audit;
use crate::store::{
    Store, StoreError, StoredAnchor, StoredCrl, StoredDirectory, StoredPeer, StoredTrust,
};
use crate::tls::{Credentials, Identities, TlsError};

/// A trust change was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum TrustChangeError {
    /// The request itself is wrong (bad identity, endpoint, certificate...).
    #[error("{0}")]
    Invalid(String),
    /// The thing to change does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with current trust (rollback, own identity...).
    #[error("{0}")]
    Conflict(String),
    /// A signed directory failed verification.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The resulting trust state would be unusable.
    #[error(transparent)]
    Build(#[from] TrustBuildError),
    /// Certificate or key problems.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The last contact with a peer, kept in memory for `tatmx trust status`.
#[derive(Debug, Clone, Default)]
pub struct PeerHealth {
    /// When a call to or from the peer last succeeded.
    pub last_contact: Option<OffsetDateTime>,
    /// The last failure, without message content.
    pub last_error: Option<(OffsetDateTime, String)>,
}

/// What the config file contributes to trust, read once at start-up.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// This node.
    pub local: LocalTeam,
    /// Anchors from the config: (file name, PEM).
    pub anchors: Vec<(String, String)>,
    /// Peers from the config.
    pub peers: Vec<Peer>,
    /// Where each membership's certificate and key live, so an installed one survives a
    /// restart.
    pub cert_files: BTreeMap<FederationId, (PathBuf, PathBuf)>,
    /// Directory staleness limit.
    pub max_directory_age: Duration,
}

struct Inner {
    /// The current view; swapped whole.
    state: Arc<ArcSwap<TrustState>>,
    /// The TLS server config built from the current view; swapped with it.
    server_config: Arc<ArcSwap<ServerConfig>>,
    /// Where changes are persisted.
    store: Store,
    /// What the store held when the current view was built, so a replica can tell when
    /// another replica has changed it.
    stored: Mutex<StoredTrust>,
    /// The config file's part.
    config: TrustConfig,
    /// Serialises changes.
    lock: tokio::sync::Mutex<()>,
    /// Bumped after every swap, for workers that follow trust (the outbox).
    changed: watch::Sender<u64>,
    /// Last contact per peer.
    health: Mutex<HashMap<TeamIdentity, PeerHealth>>,
    /// Asks the directory refresher to run now, after a peer's certificate failed to verify:
    /// the federation may have moved on (a new CA, a new member) since our last directory.
    refresh: tokio::sync::Notify,
}

/// The node's live trust. Cheap to clone.
#[derive(Clone)]
pub struct Trust {
    /// Shared state.
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("local", &self.inner.config.local.identity)
            .finish_non_exhaustive()
    }
}

impl Trust {
    /// Builds the starting trust from the config and the store.
    pub async fn load(
        config: TrustConfig,
        identities: Identities,
        store: Store,
    ) -> Result<Self, TrustChangeError> {
        let stored = store.load_trust().await?;
        let (state, server_config) = build_view(&config, identities, &stored)?;
        let (changed, _) = watch::channel(0);
        Ok(Self {
            inner: Arc::new(Inner {
                state: Arc::new(ArcSwap::new(state)),
                server_config: Arc::new(ArcSwap::new(server_config)),
                store,
                stored: Mutex::new(stored),
                config,
                lock: tokio::sync::Mutex::new(()),
                changed,
                health: Mutex::new(HashMap::new()),
                refresh: tokio::sync::Notify::new(),
            }),
        })
    }

    /// The current view.
    pub fn state(&self) -> Arc<TrustState> {
        self.inner.state.load_full()
    }

    /// The swappable view, for the TLS connector, which reads it at every connection.
    pub fn states(&self) -> Arc<ArcSwap<TrustState>> {
        self.inner.state.clone()
    }

    /// The swappable TLS server config, for the accept loop.
    pub fn server_configs(&self) -> Arc<ArcSwap<ServerConfig>> {
        self.inner.server_config.clone()
    }

    /// A receiver that changes after every trust swap.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Checks a caller against current trust.
    pub fn authorize(
        &self,
        certificate: Option<&PeerCertificate>,
    ) -> Result<VerifiedPeer, TrustError> {
        let verdict = self.state().authorize(certificate);
        if let Ok(peer) = &verdict {
            self.record_contact(peer.identity(), Ok(()));
        }
        verdict
    }

    /// Asks for a directory refresh now.
    pub fn request_refresh(&self) {
        self.inner.refresh.notify_one();
    }

    /// Waits until a refresh is requested.
    pub async fn refresh_requested(&self) {
        self.inner.refresh.notified().await;
    }

    /// Records the outcome of a call to or from a peer.
    pub fn record_contact(&self, peer: &TeamIdentity, outcome: Result<(), &str>) {
        let Ok(mut health) = self.inner.health.lock() else {
            return;
        };
        let entry = health.entry(peer.clone()).or_default();
        let now = OffsetDateTime::now_utc();
        match outcome {
            Ok(()) => entry.last_contact = Some(now),
            Err(reason) => entry.last_error = Some((now, reason.to_owned())),
        }
    }

    /// The last contact with a peer.
    pub fn health(&self, peer: &TeamIdentity) -> PeerHealth {
        self.inner
            .health
            .lock()
            .map(|h| h.get(peer).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Adds (or replaces) a peer; it can connect at once.
    pub async fn add_peer(&self, peer: Peer, actor: &Actor) -> Result<PeerEntry, TrustChangeError> {
        let _guard = self.inner.lock.lock().await;
        if self.state().own_identity_in(&peer.identity.federation) == Some(&peer.identity) {
            return Err(TrustChangeError::Conflict(
                "a node cannot be its own peer".into(),
            ));
        }
        self.inner
            .store
            .put_peer(
                &StoredPeer {
                    identity: peer.identity.uri(),
                    endpoint: peer.endpoint.to_string(),
                    role: peer.role.as_str().into(),
                    discipline: peer.discipline.as_str().into(),
                    jurisdiction: peer.jurisdiction.clone(),
                    cjis_authorized: peer.cjis_authorized,
                    pinned_sha256: None,
                    source: Source::Admin.as_str().into(),
                },
                &audit::trust_change(
                    "peer-added",
                    json!({
                        "identity": peer.identity.uri(),
                        "endpoint": peer.endpoint.to_string(),
                        "role": peer.role.as_str(),
                        "discipline": peer.discipline.as_str(),
                    }),
                    actor,
                ),
            )
            .await?;
        self.reload().await?;
        self.peer_entry(&peer.identity)
    }

    /// Removes a peer; it is refused at its next handshake and its next request.
    pub async fn remove_peer(
        &self,
        identity: &TeamIdentity,
        actor: &Actor,
    ) -> Result<PeerEntry, TrustChangeError> {
        let _guard = self.inner.lock.lock().await;
        let entry = self.peer_entry(identity)?;
        let record =
            audit::trust_change("peer-removed", json!({ "identity": identity.uri() }), actor);
        self.inner
            .store
            .remove_peer(&identity.uri(), &record)
            .await?;
        self.reload().await?;
        Ok(entry)
    }

    /// Blocks or unblocks a peer, whatever its source.
    pub async fn set_blocked(
        &self,
        identity: &TeamIdentity,
        blocked: bool,
        actor: &Actor,
    ) -> Result<PeerEntry, TrustChangeError> {
        let _guard = self.inner.lock.lock().await;
        self.peer_entry(identity)?;
        let action = if blocked {
            "peer-blocked"
        } else {
            "peer-unblocked"
        };
        let record = audit::trust_change(action, json!({ "identity": identity.uri() }), actor);
        self.inner
            .store
            .set_blocked(&identity.uri(), blocked, &record)
            .await?;
        self.reload().await?;
        self.peer_entry(identity)
    }

    /// Adds a federation CA certificate as an anchor of the federation it names.
    pub async fn add_anchor(
        &self,
        pem: &str,
        actor: &Actor,
    ) -> Result<Vec<Anchor>, TrustChangeError> {
        let _guard = self.inner.lock.lock().await;
        let parsed = parse_anchors(pem, Source::Admin).map_err(TrustChangeError::Invalid)?;
        for anchor in &parsed {
            self.inner
                .store
                .put_anchor(
                    &StoredAnchor {
                        fingerprint: anchor.fingerprint.clone(),
                        federation: anchor.federation.to_string(),
                        pem: anchor.pem.clone(),
                        source: Source::Admin.as_str().into(),
                    },
                    &audit::trust_change(
                        "anchor-added",
                        json!({
                            "fingerprint": anchor.fingerprint,
                            "federation": anchor.federation.to_string(),
                        }),
                        actor,
                    ),
                )
                .await?;
        }
        self.reload().await?;
        Ok(parsed)
    }

    /// Removes an anchor added by an admin or a directory. Anchors from the config file must be
    /// removed from the file.
    pub async fn remove_anchor(
        &self,
        fingerprint: &str,
        actor: &Actor,
    ) -> Result<Anchor, TrustChangeError> {
        let _guard = self.inner.lock.lock().await;
        let fingerprint = fingerprint.to_ascii_lowercase();
        if fingerprint.len() < 8 {
            return Err(TrustChangeError::Invalid(
                "give at least 8 hex digits of the fingerprint".into(),
            ));
        }
        let state = self.state();
        let matches: Vec<&Anchor> = state
            .anchors()
            .into_iter()
            .filter(|a| a.fingerprint.starts_with(&fingerprint))
            .collect();
        let anchor = match matches.as_slice() {
            [one] => (*one).clone(),
            [] => {
                return Err(TrustChangeError::NotFound(format!(
                    "no anchor {fingerprint}"
                )));
            }
            _ => {
                return Err(TrustChangeError::Invalid(format!(
                    "{fingerprint} matches several anchors; give more digits"
                )));
            }
        };
        if anchor.source == Source::Config {
            return Err(TrustChangeError::Conflict(format!(
                "anchor {} comes from the config file; remove it there",
                anchor.fingerprint
            )));
        }
        let record = audit::trust_change(
            "anchor-removed",
            json!({
                "fingerprint": anchor.fingerprint,
                "federation": anchor.federation.to_string(),
            }),
            actor,
        );
        self.inner
            .store
            .remove_anchor(&anchor.fingerprint, &record)
            .await?;
        self.reload().await?;
        Ok(anchor)
    }

    /// Imports a CRL signed by a trusted anchor; revoked certificates are refused at once.
    pub async fn import_crl(
        &self,
        pem: &str,
        actor: &Actor,
    ) -> Result<Arc<TrustState>, TrustChangeError> {
        let _guard = self.inner.lock.lock().await;
        let state = self.state();
        let anchors = state.anchors().into_iter().fold(
            HashMap::new(),
            |mut map: HashMap<_, Vec<Anchor>>, a| {
                map.entry(a.federation.clone()).or_default().push(a.clone());
                map
            },
        );
        let crl: RevocationList = parse_crl(pem, &anchors).map_err(TrustChangeError::Invalid)?;
        if let Some(current) = state.crl(&crl.federation)
            && current.crl_number >= crl.crl_number
        {
            return Err(TrustChangeError::Conflict(format!(
                "this node already holds CRL number {} for {}; the offered one is {}",
                current.crl_number, crl.federation, crl.crl_number
            )));
        }
        self.inner
            .store
            .put_crl(
                &StoredCrl {
                    federation: crl.federation.to_string(),
                    crl_number: crl.crl_number,
                    pem: pem.to_owned(),
                },
                &audit::trust_change(
                    "crl-imported",
                    json!({
                        "federation": crl.federation.to_string(),
                        "crl_number": crl.crl_number,
                    }),
                    actor,
                ),
            )
            .await?;
        self.reload().await?;
        Ok(self.state())
    }

    /// Verifies and applies a signed federation directory. Returns the record and whether it
    /// was already the current one (then nothing changed).
    pub async fn import_directory(
        &self,
        document: &str,
        actor: &Actor,
    ) -> Result<(DirectoryRecord, bool), TrustChangeError> {
        let _guard = self.inner.lock.lock().await;
        let signed = SignedDirectory::from_json(document)?;
        let state = self.state();
        let trusted: Vec<String> = state.anchors().iter().map(|a| a.pem.clone()).collect();
        let directory = signed.verify(&trusted)?;
        let current = state.directory(&directory.federation);
        match tatmx_certs::directory::check_successor(current.map(|d| d.sequence), &directory) {
            Ok(()) => {}
            Err(DirectoryError::NotNewer { .. }) => {
                if let Some(current) = current {
                    return Ok((current.clone(), true));
                }
            }
            Err(e) => return Err(e.into()),
        }
        let federation = directory.federation.to_string();
        let local = state
            .own_identity_in(&directory.federation)
            .cloned()
            .unwrap_or_else(|| state.local.identity.clone());
        let peers: Vec<StoredPeer> = directory
            .members
            .iter()
            .map(|m| StoredPeer {
                identity: TeamIdentity::new(directory.federation.clone(), m.team.clone()).uri(),
                endpoint: m.endpoint.clone(),
                role: m.role.clone(),
                discipline: m.discipline.clone(),
                jurisdiction: m.jurisdiction.clone(),
                cjis_authorized: m.cjis_authorized,
                pinned_sha256: m.cert_fingerprint_sha256.clone(),
                source: Source::Directory.as_str().into(),
            })
            .filter(|p| p.identity != local.uri())
            .collect();
        let mut anchors = Vec::new();
        for pem in &directory.anchors {
            for anchor in
                parse_anchors(pem, Source::Directory).map_err(TrustChangeError::Invalid)?
            {
                if anchor.federation != directory.federation {
                    return Err(TrustChangeError::Invalid(format!(
                        "the directory of {} lists an anchor of {}",
                        directory.federation, anchor.federation
                    )));
                }
                anchors.push(StoredAnchor {
                    fingerprint: anchor.fingerprint,
                    federation: federation.clone(),
                    pem: anchor.pem,
                    source: Source::Directory.as_str().into(),
                });
            }
        }
        let crl = match &directory.crl {
            Some(pem) => {
                let summary = tatmx_certs::revocation::CrlSummary::from_pem(pem)
                    .map_err(|e| TrustChangeError::Invalid(format!("the directory's CRL: {e}")))?;
                Some(StoredCrl {
                    federation: federation.clone(),
                    crl_number: summary.crl_number,
                    pem: pem.clone(),
                })
            }
            None => None,
        };
        let record = StoredDirectory {
            federation,
            sequence: directory.sequence,
            issued_at: directory.issued_at,
            imported_at: OffsetDateTime::now_utc(),
            document: document.to_owned(),
        };
        self.inner
            .store
            .apply_directory(
                &record,
                &peers,
                &anchors,
                crl.as_ref(),
                &audit::trust_change(
                    "directory-imported",
                    json!({
                        "federation": record.federation,
                        "sequence": record.sequence,
                        "members": peers.len(),
                        "anchors": anchors.len(),
                    }),
                    actor,
                ),
            )
            .await?;
        self.reload().await?;
        let state = self.state();
        let applied = state
            .directory(&directory.federation)
            .cloned()
            .ok_or_else(|| TrustChangeError::Conflict("the directory did not apply".into()))?;
        tracing::info!(
            federation = %applied.federation,
            sequence = applied.sequence,
            members = applied.members,
            "federation directory imported"
        );
        Ok((applied, false))
    }

    /// Installs a new certificate and key for this node, for new connections, without
    /// dropping the ones in flight. The files named in the config are replaced, so the new
    /// certificate survives a restart.
    pub async fn install_certificate(
        &self,
        cert_pem: &str,
        key_path: &std::path::Path,
        actor: &Actor,
    ) -> Result<Arc<Credentials>, TrustChangeError> {
        let _guard = self.inner.lock.lock().await;
        let state = self.state();
        let claimed = tatmx_certs::CertificateSummary::from_pem(cert_pem)
            .ok()
            .and_then(|s| s.identity)
            .ok_or_else(|| {
                TrustChangeError::Invalid("the new certificate carries no team identity".into())
            })?;
        let own = state
            .own_identity_in(&claimed.federation)
            .filter(|own| **own == claimed)
            .cloned()
            .ok_or_else(|| {
                TrustChangeError::Invalid(format!(
                    "the new certificate is for {claimed}, which is not this node"
                ))
            })?;
        let (cert_file, key_file) = self
            .inner
            .config
            .cert_files
            .get(&own.federation)
            .cloned()
            .ok_or_else(|| TrustChangeError::Invalid(format!("no certificate files for {own}")))?;
        let key_pem = std::fs::read_to_string(key_path).map_err(|e| {
            TrustChangeError::Invalid(format!("cannot read {}: {e}", key_path.display()))
        })?;
        let credentials = Credentials::from_pem(cert_pem, &key_pem, &own, "the new certificate")?;
        let checked = state.check_certificate(
            &credentials.chain()[0],
            &credentials.chain()[1..],
            rustls::pki_types::UnixTime::now(),
            webpki::KeyUsage::server_auth(),
        );
        if let Err(e) = checked {
            return Err(TrustChangeError::Invalid(format!(
                "the new certificate does not chain to a trusted anchor of {}: {e}",
                own.federation
            )));
        }
        crate::tls::replace_file(&cert_file, cert_pem.as_bytes())?;
        crate::tls::replace_file(&key_file, key_pem.as_bytes())?;
        let serial = credentials.serial_hex().to_owned();
        let not_after = credentials.not_after().unix_timestamp();
        let identities = state.identities.clone().with(credentials);
        self.rebuild_with(identities).await?;
        self.inner
            .store
            .record_audit(&audit::trust_change(
                "certificate-installed",
                json!({ "identity": own.uri(), "serial": serial, "not_after": not_after }),
                actor,
            ))
            .await?;
        tracing::info!(identity = %own, %serial, "node certificate installed");
        self.state()
            .identities
            .get(&own.federation)
            .cloned()
            .ok_or_else(|| TrustChangeError::Conflict("the certificate did not apply".into()))
    }

    fn peer_entry(&self, identity: &TeamIdentity) -> Result<PeerEntry, TrustChangeError> {
        self.state().peer(identity).cloned().ok_or_else(|| {
            TrustChangeError::NotFound(format!("{identity} is not a peer of this node"))
        })
    }

    /// Follows changes that other replicas make to a shared store: every `every`, rereads the
    /// stored trust and rebuilds this replica's view if it differs from the one in use, so a
    /// peer removed, blocked or revoked through one replica is refused by all of them within
    /// `every`. Runs until `shutdown`.
    pub async fn follow_store(
        self,
        every: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => return,
            }
            let stored = match self.inner.store.load_trust().await {
                Ok(stored) => stored,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the shared trust failed");
                    continue;
                }
            };
            let unchanged = self.inner.stored.lock().is_ok_and(|last| *last == stored);
            if unchanged {
                continue;
            }
            let _serialised = self.inner.lock.lock().await;
            match self.reload().await {
                Ok(()) => tracing::info!("trust changed by another replica; view rebuilt"),
                Err(e) => tracing::error!(error = %e, "rebuilding trust from the store failed"),
            }
        }
    }

    /// Rebuilds the view from the store with the current certificates.
    async fn reload(&self) -> Result<(), TrustChangeError> {
        let identities = self.state().identities.clone();
        self.rebuild_with(identities).await
    }

    async fn rebuild_with(&self, identities: Identities) -> Result<(), TrustChangeError> {
        let stored = self.inner.store.load_trust().await?;
        let (state, server_config) = build_view(&self.inner.config, identities, &stored)?;
        if let Ok(mut last) = self.inner.stored.lock() {
            *last = stored;
        }
        self.inner.state.store(state);
        self.inner.server_config.store(server_config);
        self.inner
            .changed
            .send_modify(|generation| *generation += 1);
        Ok(())
    }
}

/// Builds a view of the stored trust, with the TLS server config that enforces it.
fn build_view(
    config: &TrustConfig,
    identities: Identities,
    stored: &StoredTrust,
) -> Result<(Arc<TrustState>, Arc<ServerConfig>), TrustChangeError> {
    let state = Arc::new(TrustState::build(TrustInputs {
        local: config.local.clone(),
        identities,
        config_anchors: &config.anchors,
        config_peers: &config.peers,
        stored,
        max_directory_age: config.max_directory_age,
    })?);
    let server_config = super::handshake::server_config(state.clone())?;
    Ok((state, server_config))
}
