//! The Admin API: the `tatmx` CLI managing its own node's trust, audit and console accounts.
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

use crate::app::audit::{AuditQuery, DisclosureRecord, audit_kind, entry_time};
pub use crate::app::trust::{EXPIRY_WARNING_DAYS, warnings};
use crate::app::{App, IssuedAccount};
use crate::convert::{role_from_proto, role_to_proto, timestamp_to_proto};
use crate::federation::store_status;
use crate::refusal::{Reason, refuse, refuse_field};
use crate::staff::StaffRole;
use crate::store::Store;
use crate::tls::Credentials;
use crate::trust::{
    Anchor, DirectoryRecord, Discipline, Peer, PeerEntry, RevocationList, Trust, TrustChangeError,
    TrustState,
};

/// The admin-facing gRPC service.
#[derive(Debug, Clone)]
pub struct AdminService {
    /// The trust it manages.
    trust: Trust,
    /// Where the console accounts and witness conflicts are.
    store: Store,
    /// The audit use cases it adapts.
    app: App,
}

impl AdminService {
    /// Builds the service over the node's trust and store, and the use cases it adapts.
    pub fn new(trust: Trust, store: Store, app: App) -> Self {
        Self { trust, store, app }
    }

    fn identity(&self, team: &str) -> Result<TeamIdentity, Status> {
        self.trust.state().identity_of(team).map_err(|e| {
            refuse_field(
                Reason::InvalidMessage,
                e.to_string(),
                "team",
                "is not a team URI",
            )
        })
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

/// The reason code of each refusal of a trust change; the gRPC code follows from it.
fn change_status(error: TrustChangeError) -> Status {
    use tatmx_certs::directory::DirectoryError as D;
    let reason = match &error {
        TrustChangeError::Invalid(_) | TrustChangeError::Tls(_) => Reason::InvalidMessage,
        TrustChangeError::NotFound(_) => Reason::UnknownRecord,
        TrustChangeError::Conflict(_) | TrustChangeError::Build(_) => Reason::NotAllowedNow,
        TrustChangeError::Directory(D::Rollback { .. } | D::NotNewer { .. }) => {
            Reason::NotAllowedNow
        }
        TrustChangeError::Directory(
            D::BadSignature | D::UnknownSigner { .. } | D::WrongFederation { .. },
        ) => Reason::DirectoryUntrusted,
        TrustChangeError::Directory(_) => Reason::InvalidMessage,
        TrustChangeError::Store(e) => return crate::federation::store_status(e),
    };
    refuse(reason, error.to_string())
}

/// A request field that did not convert to its domain type.
fn invalid(e: crate::convert::ConversionError) -> Status {
    refuse_field(Reason::InvalidMessage, e.to_string(), &e.field, &e.problem)
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
            witness_conflicts: self
                .store
                .witness_conflicts()
                .await
                .map_err(|e| store_status(&e))?
                .into_iter()
                .map(|c| pb::WitnessConflict {
                    peer: c.peer,
                    held_seq: c.held_seq,
                    shown_seq: c.shown_seq,
                    problem: c.problem,
                    detected_at: Some(timestamp_to_proto(c.detected_at)),
                })
                .collect(),
        }))
    }

    async fn verify_audit(
        &self,
        _request: Request<pb::VerifyAuditRequest>,
    ) -> Result<Response<pb::AuditVerification>, Status> {
        let found = self.app.verify_audit().await?;
        Ok(Response::new(pb::AuditVerification {
            ok: found.first_bad.is_none(),
            entries: found.entries,
            checkpoints: found.checkpoints,
            first_bad_seq: found.first_bad.as_ref().map_or(0, |b| b.0),
            problem: found.first_bad.map(|b| b.1).unwrap_or_default(),
            last_checkpoint_at: found
                .last_checkpoint_at_ms
                .and_then(entry_time)
                .map(timestamp_to_proto),
            tree_heads: found.tree_heads,
            last_tree_size: found.last_tree_head.map_or(0, |(size, _)| size),
            last_tree_head_at: found
                .last_tree_head
                .and_then(|(_, at_ms)| entry_time(at_ms))
                .map(timestamp_to_proto),
        }))
    }

    async fn prove_disclosure(
        &self,
        request: Request<pb::ProveDisclosureRequest>,
    ) -> Result<Response<pb::DisclosureProof>, Status> {
        let proof = self
            .app
            .prove_disclosure(&request.into_inner().disclosure)
            .await?;
        tracing::info!(
            seq = proof.entry.seq,
            tree_size = proof.head.tree_size,
            "inclusion proof of a disclosure given"
        );
        Ok(Response::new(crate::convert::inclusion_proof_to_proto(
            &proof,
        )))
    }

    async fn query_audit(
        &self,
        request: Request<pb::QueryAuditRequest>,
    ) -> Result<Response<pb::QueryAuditResponse>, Status> {
        let r = request.into_inner();
        let since = r
            .since
            .map(|t| crate::convert::timestamp_from_proto(Some(t), "since"))
            .transpose()
            .map_err(invalid)?;
        let kind = match r.kind.as_str() {
            "" => None,
            name => Some(audit_kind(name)?),
        };
        let query = AuditQuery {
            since,
            kind,
            peer: Some(r.peer),
            limit: r.limit,
            ..AuditQuery::default()
        };
        let entries = self.app.audit_entries(query).await?;
        Ok(Response::new(pb::QueryAuditResponse {
            entries: entries.iter().map(audit_entry).collect(),
        }))
    }

    async fn account_disclosures(
        &self,
        request: Request<pb::AccountDisclosuresRequest>,
    ) -> Result<Response<pb::AccountDisclosuresResponse>, Status> {
        let r = request.into_inner();
        let since = r
            .since
            .map(|t| crate::convert::timestamp_from_proto(Some(t), "since"))
            .transpose()
            .map_err(invalid)?;
        let records = self.app.disclosures(&r.subject, since).await?;
        Ok(Response::new(pb::AccountDisclosuresResponse {
            disclosures: records.iter().map(disclosure_record).collect(),
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
        let entry = state.peer(&identity).ok_or_else(|| {
            refuse_field(
                Reason::UnknownRecord,
                format!("{identity} is not a peer of this node"),
                "team",
                "is not a peer of this node",
            )
        })?;
        Ok(Response::new(self.peer_info(entry)))
    }

    async fn add_peer(
        &self,
        request: Request<pb::AddPeerRequest>,
    ) -> Result<Response<pb::PeerInfo>, Status> {
        let actor = crate::agency::caller(&request);
        let r = request.into_inner();
        let identity = self.identity(&r.team)?;
        let endpoint = crate::config::parse_endpoint(&r.endpoint).map_err(|e| {
            let problem = e.to_string();
            refuse_field(
                Reason::InvalidMessage,
                format!("endpoint: {problem}"),
                "endpoint",
                &problem,
            )
        })?;
        let role = role_from_proto(r.role).ok_or_else(|| {
            refuse_field(
                Reason::InvalidMessage,
                "role: expected core, affiliate or partner",
                "role",
                "expected core, affiliate or partner",
            )
        })?;
        let discipline = Discipline::parse(&r.discipline).ok_or_else(|| {
            let names: Vec<&str> = Discipline::ALL.iter().map(|d| d.as_str()).collect();
            let problem = format!("expected one of {}", names.join(", "));
            refuse_field(
                Reason::InvalidMessage,
                format!("discipline: {problem}"),
                "discipline",
                &problem,
            )
        })?;
        let entry = self
            .trust
            .add_peer(
                Peer {
                    identity,
                    endpoint,
                    role,
                    discipline,
                    jurisdiction: r.jurisdiction,
                    cjis_authorized: r.cjis_authorized,
                },
                &actor,
            )
            .await
            .map_err(change_status)?;
        tracing::info!(peer = %entry.peer.identity, "peer added by admin");
        Ok(Response::new(self.peer_info(&entry)))
    }

    async fn remove_peer(
        &self,
        request: Request<pb::PeerRef>,
    ) -> Result<Response<pb::PeerInfo>, Status> {
        let actor = crate::agency::caller(&request);
        let identity = self.identity(&request.into_inner().team)?;
        let entry = self
            .trust
            .remove_peer(&identity, &actor)
            .await
            .map_err(change_status)?;
        tracing::info!(peer = %identity, "peer removed by admin");
        Ok(Response::new(self.peer_info(&entry)))
    }

    async fn block_peer(
        &self,
        request: Request<pb::BlockPeerRequest>,
    ) -> Result<Response<pb::PeerInfo>, Status> {
        let actor = crate::agency::caller(&request);
        let r = request.into_inner();
        let identity = self.identity(&r.team)?;
        let entry = self
            .trust
            .set_blocked(&identity, r.blocked, &actor)
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
        let actor = crate::agency::caller(&request);
        let added = self
            .trust
            .add_anchor(&request.into_inner().certificate_pem, &actor)
            .await
            .map_err(change_status)?;
        let first = added.first().ok_or_else(|| {
            refuse_field(
                Reason::InvalidMessage,
                "certificate_pem: holds no certificate",
                "certificate_pem",
                "holds no certificate",
            )
        })?;
        tracing::info!(federation = %first.federation, fingerprint = %first.fingerprint, "trust anchor added by admin");
        Ok(Response::new(anchor_info(first)))
    }

    async fn remove_anchor(
        &self,
        request: Request<pb::RemoveAnchorRequest>,
    ) -> Result<Response<pb::AnchorInfo>, Status> {
        let actor = crate::agency::caller(&request);
        let removed = self
            .trust
            .remove_anchor(&request.into_inner().fingerprint, &actor)
            .await
            .map_err(change_status)?;
        tracing::info!(federation = %removed.federation, fingerprint = %removed.fingerprint, "trust anchor removed by admin");
        Ok(Response::new(anchor_info(&removed)))
    }

    async fn import_directory(
        &self,
        request: Request<pb::ImportDirectoryRequest>,
    ) -> Result<Response<pb::ImportDirectoryResponse>, Status> {
        let actor = crate::agency::caller(&request);
        let (record, unchanged) = self
            .trust
            .import_directory(&request.into_inner().document, &actor)
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
        let actor = crate::agency::caller(&request);
        let pem = request.into_inner().crl_pem;
        let state = self
            .trust
            .import_crl(&pem, &actor)
            .await
            .map_err(change_status)?;
        let summary = tatmx_certs::revocation::CrlSummary::from_pem(&pem).map_err(|e| {
            let problem = e.to_string();
            refuse_field(Reason::InvalidMessage, problem.clone(), "crl_pem", &problem)
        })?;
        let crl = state
            .crls()
            .find(|c| c.crl_number == summary.crl_number)
            .ok_or_else(|| refuse(Reason::Internal, "the CRL did not apply"))?;
        tracing::info!(federation = %crl.federation, crl_number = crl.crl_number, revoked = crl.revoked.len(), "CRL imported");
        Ok(Response::new(crl_info(crl)))
    }

    async fn install_certificate(
        &self,
        request: Request<pb::InstallCertificateRequest>,
    ) -> Result<Response<pb::CertificateInfo>, Status> {
        let actor = crate::agency::caller(&request);
        let r = request.into_inner();
        let credentials = self
            .trust
            .install_certificate(&r.certificate_pem, &PathBuf::from(r.key_path), &actor)
            .await
            .map_err(change_status)?;
        Ok(Response::new(certificate_info(&credentials)))
    }

    async fn add_user(
        &self,
        request: Request<pb::AddUserRequest>,
    ) -> Result<Response<pb::IssuedCredentials>, Status> {
        let actor = crate::agency::caller(&request);
        let r = request.into_inner();
        let role = StaffRole::parse(&r.role).ok_or_else(|| {
            refuse_field(
                Reason::InvalidMessage,
                "role: expected one of case-worker, chair, auditor, admin",
                "role",
                "expected one of case-worker, chair, auditor, admin",
            )
        })?;
        let issued = self
            .app
            .add_account(&r.username, role, &actor)
            .await?
            .ok_or_else(|| {
                refuse_field(
                    Reason::AlreadyExists,
                    format!(
                        "there is already an account {}; `tatmx user reset {}` issues it new credentials",
                        r.username, r.username
                    ),
                    "username",
                    "is the name of an account already",
                )
            })?;
        Ok(Response::new(self.issued_credentials(&issued)))
    }

    async fn list_users(
        &self,
        _request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let accounts = self.app.accounts().await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: accounts
                .iter()
                .map(|account| user_info(account, self.store.clock().now()))
                .collect(),
        }))
    }

    async fn disable_user(
        &self,
        request: Request<pb::UserRef>,
    ) -> Result<Response<pb::UserInfo>, Status> {
        let actor = crate::agency::caller(&request);
        let username = request.into_inner().username;
        let account = self
            .app
            .disable_account(&username, &actor)
            .await?
            .ok_or_else(|| no_account(&username))?;
        Ok(Response::new(user_info(&account, self.store.clock().now())))
    }

    async fn reset_user(
        &self,
        request: Request<pb::UserRef>,
    ) -> Result<Response<pb::IssuedCredentials>, Status> {
        let actor = crate::agency::caller(&request);
        let username = request.into_inner().username;
        let issued = self
            .app
            .reset_account(&username, &actor)
            .await?
            .ok_or_else(|| no_account(&username))?;
        Ok(Response::new(self.issued_credentials(&issued)))
    }
}

impl AdminService {
    /// The answer to an add or reset: the account, and its new credentials, shown this once.
    fn issued_credentials(&self, issued: &IssuedAccount) -> pb::IssuedCredentials {
        pb::IssuedCredentials {
            user: Some(user_info(&issued.account, self.store.clock().now())),
            password: issued.password.clone().unwrap_or_default(),
            totp_secret: issued.totp_secret.clone(),
            totp_uri: issued.totp_uri.clone(),
        }
    }
}

fn no_account(username: &str) -> Status {
    refuse_field(
        Reason::UnknownRecord,
        format!("there is no console account {username}; `tatmx user list` shows them"),
        "username",
        "names no console account",
    )
}

/// A console account on the wire, without its credentials.
fn user_info(account: &crate::store::accounts::Account, now: OffsetDateTime) -> pb::UserInfo {
    pb::UserInfo {
        username: account.username.clone(),
        role: account.role.as_str().into(),
        disabled: account.disabled,
        failed_logins: account.failed_logins,
        locked_until: account
            .locked_until
            .filter(|until| *until > now)
            .map(timestamp_to_proto),
        created_at: Some(timestamp_to_proto(account.created_at)),
        last_sign_in: account.last_sign_in.map(timestamp_to_proto),
    }
}

fn audit_entry(e: &crate::audit::AuditEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        seq: e.seq,
        at: entry_time(e.at_ms).map(timestamp_to_proto),
        kind: e.kind.clone(),
        actor: e.actor.clone(),
        peer: e.peer.clone().unwrap_or_default(),
        referral_id: e.referral_id.clone().unwrap_or_default(),
        subject: e.subject.clone().unwrap_or_default(),
        detail_json: e.detail.clone(),
        hash: hex::encode(&e.hash),
    }
}

/// One line of the accounting of disclosures on the wire.
fn disclosure_record(r: &DisclosureRecord) -> pb::DisclosureRecord {
    pb::DisclosureRecord {
        at: r.at.map(timestamp_to_proto),
        recipient: r.recipient.clone().unwrap_or_default(),
        referral_id: r.referral_id.clone().unwrap_or_default(),
        kind: r.kind.clone(),
        purpose: r
            .purpose
            .map(crate::convert::purpose_to_proto)
            .unwrap_or(pb::Purpose::Unspecified)
            .into(),
        legal_basis: r
            .legal_basis
            .map(crate::convert::basis_to_proto)
            .unwrap_or(pb::LegalBasis::Unspecified)
            .into(),
        consent_id: r.consent_id.clone().unwrap_or_default(),
        categories: categories(&r.categories),
        withheld: categories(&r.withheld),
        rules: r.rules.clone(),
        audit_seq: r.audit_seq,
    }
}

fn categories(categories: &[crate::category::DataCategory]) -> Vec<i32> {
    categories
        .iter()
        .map(|c| crate::convert::category_to_proto(*c).into())
        .collect()
}
