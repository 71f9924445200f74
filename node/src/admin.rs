//! The Admin API: the `tatmx` CLI managing its own node's trust.
//!
//! It listens only on a Unix socket with mode 0600, so only the node's own user (and root) can
//! change what the node trusts. Every change is persisted and takes effect at once: new
//! handshakes and requests on open connections both see it.

use std::path::PathBuf;

use tatmx_certs::TeamIdentity;
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::admin_server::Admin;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use crate::convert::{role_from_proto, role_to_proto, timestamp_to_proto};
use crate::tls::Credentials;
use crate::trust::{
    Anchor, DirectoryRecord, Discipline, Peer, PeerEntry, RevocationList, Trust, TrustChangeError,
    TrustState,
};

/// How many days before expiry a certificate is worth a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// The admin-facing gRPC service.
#[derive(Debug, Clone)]
pub struct AdminService {
    /// The trust it manages.
    trust: Trust,
}

impl AdminService {
    /// Builds the service over the node's trust.
    pub fn new(trust: Trust) -> Self {
        Self { trust }
    }

    fn identity(&self, team: &str) -> Result<TeamIdentity, Status> {
        self.trust
            .state()
            .identity_of(team)
            .map_err(|e| Status::invalid_argument(e.to_string()))
    }

    fn peer_info(&self, entry: &PeerEntry) -> pb::PeerInfo {
        let health = self.trust.health(&entry.peer.identity);
        pb::PeerInfo {
            identity: entry.peer.identity.uri(),
            endpoint: entry.peer.endpoint.to_string(),
            role: role_to_proto(entry.peer.role).into(),
            discipline: entry.peer.discipline.as_str().into(),
            jurisdiction: entry.peer.jurisdiction.clone(),
            cjis_authorized: entry.peer.cjis_authorized,
            source: entry.source.as_str().into(),
            blocked: entry.blocked,
            last_contact: health.last_contact.map(timestamp_to_proto),
            last_error: health
                .last_error
                .as_ref()
                .map(|(_, e)| e.clone())
                .unwrap_or_default(),
            last_error_at: health.last_error.map(|(at, _)| timestamp_to_proto(at)),
        }
    }
}

fn change_status(error: TrustChangeError) -> Status {
    use tatmx_certs::directory::DirectoryError as D;
    match &error {
        TrustChangeError::Invalid(_) | TrustChangeError::Tls(_) => {
            Status::invalid_argument(error.to_string())
        }
        TrustChangeError::NotFound(_) => Status::not_found(error.to_string()),
        TrustChangeError::Conflict(_) | TrustChangeError::Build(_) => {
            Status::failed_precondition(error.to_string())
        }
        TrustChangeError::Directory(D::Rollback { .. } | D::NotNewer { .. }) => {
            Status::failed_precondition(error.to_string())
        }
        TrustChangeError::Directory(
            D::BadSignature | D::UnknownSigner { .. } | D::WrongFederation { .. },
        ) => Status::permission_denied(error.to_string()),
        TrustChangeError::Directory(_) => Status::invalid_argument(error.to_string()),
        TrustChangeError::Store(e) => crate::federation::store_status(e),
    }
}

fn anchor_info(anchor: &Anchor) -> pb::AnchorInfo {
    pb::AnchorInfo {
        federation: anchor.federation.to_string(),
        fingerprint_sha256: anchor.fingerprint.clone(),
        not_after: Some(timestamp_to_proto(anchor.not_after)),
        source: anchor.source.as_str().into(),
        subject: format!("tatmx federation CA {}", anchor.federation),
    }
}

fn crl_info(crl: &RevocationList) -> pb::CrlInfo {
    pb::CrlInfo {
        federation: crl.federation.to_string(),
        crl_number: crl.crl_number,
        this_update: Some(timestamp_to_proto(crl.this_update)),
        next_update: crl.next_update.map(timestamp_to_proto),
        revoked: u32::try_from(crl.revoked.len()).unwrap_or(u32::MAX),
    }
}

fn directory_info(state: &TrustState, directory: &DirectoryRecord) -> pb::DirectoryInfo {
    pb::DirectoryInfo {
        federation: directory.federation.to_string(),
        sequence: directory.sequence,
        issued_at: Some(timestamp_to_proto(directory.issued_at)),
        imported_at: Some(timestamp_to_proto(directory.imported_at)),
        members: directory.members,
        stale: state.is_stale(directory),
    }
}

fn certificate_info(credentials: &Credentials) -> pb::CertificateInfo {
    pb::CertificateInfo {
        identity: credentials.identity().uri(),
        serial: credentials.serial_hex().into(),
        not_before: Some(timestamp_to_proto(credentials.not_before())),
        not_after: Some(timestamp_to_proto(credentials.not_after())),
        days_until_expiry: (credentials.not_after() - OffsetDateTime::now_utc()).whole_days(),
    }
}

/// What an admin should act on, in plain words.
pub fn warnings(state: &TrustState) -> Vec<String> {
    let now = OffsetDateTime::now_utc();
    let mut warnings = Vec::new();
    for credentials in state.identities.all() {
        let days = (credentials.not_after() - now).whole_days();
        if days < EXPIRY_WARNING_DAYS {
            warnings.push(format!(
                "this node's certificate for {} expires in {days} days ({}); run `tatmx cert renew`",
                credentials.identity().federation,
                credentials.not_after().date()
            ));
        }
    }
    for anchor in state.anchors() {
        let days = (anchor.not_after - now).whole_days();
        if days < EXPIRY_WARNING_DAYS {
            warnings.push(format!(
                "trust anchor {} of {} expires in {days} days; plan the CA rotation",
                &anchor.fingerprint[..16],
                anchor.federation
            ));
        }
    }
    for directory in state.directories() {
        let age = now - directory.issued_at;
        let max_age =
            time::Duration::try_from(state.max_directory_age).unwrap_or(time::Duration::MAX);
        if !state.is_stale(directory) && age > max_age * 3 / 4 {
            warnings.push(format!(
                "the directory of {} (sequence {}) becomes stale in {} hours; import a newer one",
                directory.federation,
                directory.sequence,
                (max_age - age).whole_hours()
            ));
        }
        if state.is_stale(directory) {
            warnings.push(format!(
                "the directory of {} (sequence {}) was issued {} days ago and is stale; import a newer one",
                directory.federation,
                directory.sequence,
                (now - directory.issued_at).whole_days()
            ));
        }
    }
    for crl in state.crls() {
        if crl.next_update.is_some_and(|next| next < now) {
            warnings.push(format!(
                "the CRL of {} (number {}) is past its next update; import a newer one",
                crl.federation, crl.crl_number
            ));
        }
    }
    warnings
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn trust_status(
        &self,
        _request: Request<pb::TrustStatusRequest>,
    ) -> Result<Response<pb::TrustStatusResponse>, Status> {
        let state = self.trust.state();
        Ok(Response::new(pb::TrustStatusResponse {
            certificate: Some(certificate_info(state.identities.primary())),
            memberships: state
                .identities
                .all()
                .into_iter()
                .map(|c| certificate_info(c))
                .collect(),
            anchors: state.anchors().into_iter().map(anchor_info).collect(),
            crls: state.crls().map(crl_info).collect(),
            directories: state
                .directories()
                .map(|d| directory_info(&state, d))
                .collect(),
            peers: state
                .peers()
                .into_iter()
                .map(|p| self.peer_info(p))
                .collect(),
            warnings: warnings(&state),
        }))
    }

    async fn list_peers(
        &self,
        _request: Request<pb::ListPeersRequest>,
    ) -> Result<Response<pb::ListPeersResponse>, Status> {
        let state = self.trust.state();
        Ok(Response::new(pb::ListPeersResponse {
            peers: state
                .peers()
                .into_iter()
                .map(|p| self.peer_info(p))
                .collect(),
        }))
    }

    async fn show_peer(
        &self,
        request: Request<pb::PeerRef>,
    ) -> Result<Response<pb::PeerInfo>, Status> {
        let identity = self.identity(&request.into_inner().team)?;
        let state = self.trust.state();
        let entry = state
            .peer(&identity)
            .ok_or_else(|| Status::not_found(format!("{identity} is not a peer of this node")))?;
        Ok(Response::new(self.peer_info(entry)))
    }

    async fn add_peer(
        &self,
        request: Request<pb::AddPeerRequest>,
    ) -> Result<Response<pb::PeerInfo>, Status> {
        let r = request.into_inner();
        let identity = self.identity(&r.team)?;
        let endpoint = crate::config::parse_endpoint(&r.endpoint)
            .map_err(|e| Status::invalid_argument(format!("endpoint: {e}")))?;
        let role = role_from_proto(r.role)
            .ok_or_else(|| Status::invalid_argument("role: expected core, affiliate or partner"))?;
        let discipline = Discipline::parse(&r.discipline).ok_or_else(|| {
            let names: Vec<&str> = Discipline::ALL.iter().map(|d| d.as_str()).collect();
            Status::invalid_argument(format!("discipline: expected one of {}", names.join(", ")))
        })?;
        let entry = self
            .trust
            .add_peer(Peer {
                identity,
                endpoint,
                role,
                discipline,
                jurisdiction: r.jurisdiction,
                cjis_authorized: r.cjis_authorized,
            })
            .await
            .map_err(change_status)?;
        tracing::info!(peer = %entry.peer.identity, "peer added by admin");
        Ok(Response::new(self.peer_info(&entry)))
    }

    async fn remove_peer(
        &self,
        request: Request<pb::PeerRef>,
    ) -> Result<Response<pb::PeerInfo>, Status> {
        let identity = self.identity(&request.into_inner().team)?;
        let entry = self
            .trust
            .remove_peer(&identity)
            .await
            .map_err(change_status)?;
        tracing::info!(peer = %identity, "peer removed by admin");
        Ok(Response::new(self.peer_info(&entry)))
    }

    async fn block_peer(
        &self,
        request: Request<pb::BlockPeerRequest>,
    ) -> Result<Response<pb::PeerInfo>, Status> {
        let r = request.into_inner();
        let identity = self.identity(&r.team)?;
        let entry = self
            .trust
            .set_blocked(&identity, r.blocked)
            .await
            .map_err(change_status)?;
        tracing::info!(peer = %identity, blocked = r.blocked, "peer block changed by admin");
        Ok(Response::new(self.peer_info(&entry)))
    }

    async fn list_anchors(
        &self,
        _request: Request<pb::ListAnchorsRequest>,
    ) -> Result<Response<pb::ListAnchorsResponse>, Status> {
        let state = self.trust.state();
        Ok(Response::new(pb::ListAnchorsResponse {
            anchors: state.anchors().into_iter().map(anchor_info).collect(),
        }))
    }

    async fn add_anchor(
        &self,
        request: Request<pb::AddAnchorRequest>,
    ) -> Result<Response<pb::AnchorInfo>, Status> {
        let added = self
            .trust
            .add_anchor(&request.into_inner().certificate_pem)
            .await
            .map_err(change_status)?;
        let first = added
            .first()
            .ok_or_else(|| Status::invalid_argument("certificate_pem: holds no certificate"))?;
        tracing::info!(federation = %first.federation, fingerprint = %first.fingerprint, "trust anchor added by admin");
        Ok(Response::new(anchor_info(first)))
    }

    async fn remove_anchor(
        &self,
        request: Request<pb::RemoveAnchorRequest>,
    ) -> Result<Response<pb::AnchorInfo>, Status> {
        let removed = self
            .trust
            .remove_anchor(&request.into_inner().fingerprint)
            .await
            .map_err(change_status)?;
        tracing::info!(federation = %removed.federation, fingerprint = %removed.fingerprint, "trust anchor removed by admin");
        Ok(Response::new(anchor_info(&removed)))
    }

    async fn import_directory(
        &self,
        request: Request<pb::ImportDirectoryRequest>,
    ) -> Result<Response<pb::ImportDirectoryResponse>, Status> {
        let (record, unchanged) = self
            .trust
            .import_directory(&request.into_inner().document)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "directory import refused");
                change_status(e)
            })?;
        let state = self.trust.state();
        Ok(Response::new(pb::ImportDirectoryResponse {
            directory: Some(directory_info(&state, &record)),
            unchanged,
        }))
    }

    async fn import_crl(
        &self,
        request: Request<pb::ImportCrlRequest>,
    ) -> Result<Response<pb::CrlInfo>, Status> {
        let pem = request.into_inner().crl_pem;
        let state = self.trust.import_crl(&pem).await.map_err(change_status)?;
        let summary = tatmx_certs::revocation::CrlSummary::from_pem(&pem)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let crl = state
            .crls()
            .find(|c| c.crl_number == summary.crl_number)
            .ok_or_else(|| Status::internal("the CRL did not apply"))?;
        tracing::info!(federation = %crl.federation, crl_number = crl.crl_number, revoked = crl.revoked.len(), "CRL imported");
        Ok(Response::new(crl_info(crl)))
    }

    async fn install_certificate(
        &self,
        request: Request<pb::InstallCertificateRequest>,
    ) -> Result<Response<pb::CertificateInfo>, Status> {
        let r = request.into_inner();
        let credentials = self
            .trust
            .install_certificate(&r.certificate_pem, &PathBuf::from(r.key_path))
            .await
            .map_err(change_status)?;
        Ok(Response::new(certificate_info(&credentials)))
    }
}
