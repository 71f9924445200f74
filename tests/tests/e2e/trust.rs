//! Trust management against real nodes: changes apply without a restart, to new handshakes and
//! to open connections alike; directories and CRLs are verified before they apply; certificates
//! and CAs rotate without losing a message.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::time::{Duration, Instant};

use tatmx_certs::{CertificateAuthority, NodeKey, RevocationReason, RevokedCertificate};
use tatmx_proto::v1 as pb;
use tatmx_tests::*;

/// How quickly a trust change must reach new handshakes and open connections.
const TAKES_EFFECT_WITHIN: Duration = Duration::from_secs(1);

fn two_teams(core_knows_school: bool) -> (TestFederation, TeamSpec, TeamSpec) {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    if core_knows_school {
        fed.write_config(&core, &[&school], "");
    } else {
        fed.write_config(&core, &[], "");
    }
    fed.write_config(&school, &[&core], "");
    (fed, core, school)
}

async fn hello(
    client: &mut pb::federation_client::FederationClient<tonic::transport::Channel>,
) -> Result<(), tonic::Status> {
    client
        .hello(pb::HelloRequest {
            protocol_version: 1,
            ..Default::default()
        })
        .await
        .map(|_| ())
}

fn assert_tls_alert(status: &tonic::Status, alert: &str) {
    let text = format!("{status:?}");
    assert!(
        text.contains("alert") && text.contains(alert),
        "expected TLS alert {alert}: {text}"
    );
}

#[tokio::test]
async fn a_peer_added_by_an_admin_can_connect_at_once() {
    let (fed, core, school) = two_teams(false);
    let core_node = start(&core).await;
    let school_node = start(&school).await;

    let mut stranger = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    let status = hello(&mut stranger).await.unwrap_err();
    assert_tls_alert(&status, "AccessDenied");

    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    let added = Instant::now();
    admin(&core)
        .await
        .add_peer(add_peer_request(&school))
        .await
        .unwrap();
    let mut fresh = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    hello(&mut fresh)
        .await
        .expect("a new peer connects at once");
    assert!(
        added.elapsed() < TAKES_EFFECT_WITHIN,
        "{:?}",
        added.elapsed()
    );
    // The school's queued referral goes out on its next retry.
    delivered(&school, &id).await;

    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test]
async fn a_removed_or_blocked_peer_is_refused_on_open_connections_and_new_handshakes() {
    let (fed, core, school) = two_teams(true);
    let core_node = start(&core).await;
    let mut open = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    hello(&mut open).await.unwrap();

    // Removal.
    let changed = Instant::now();
    admin(&core)
        .await
        .remove_peer(pb::PeerRef {
            team: "lincoln-high".into(),
        })
        .await
        .unwrap();
    let status = hello(&mut open).await.unwrap_err();
    assert!(
        changed.elapsed() < TAKES_EFFECT_WITHIN,
        "{:?}",
        changed.elapsed()
    );
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("not a known peer"), "{status:?}");
    let mut fresh = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    assert_tls_alert(&hello(&mut fresh).await.unwrap_err(), "AccessDenied");

    // Back again, then blocked.
    admin(&core)
        .await
        .add_peer(add_peer_request(&school))
        .await
        .unwrap();
    let mut open = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    hello(&mut open).await.unwrap();
    let changed = Instant::now();
    let blocked = admin(&core)
        .await
        .block_peer(pb::BlockPeerRequest {
            team: "lincoln-high".into(),
            blocked: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(blocked.blocked);
    let status = hello(&mut open).await.unwrap_err();
    assert!(
        changed.elapsed() < TAKES_EFFECT_WITHIN,
        "{:?}",
        changed.elapsed()
    );
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("blocked"), "{status:?}");
    let mut fresh = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    assert_tls_alert(&hello(&mut fresh).await.unwrap_err(), "AccessDenied");

    // The block survives a restart, and lifting it readmits the peer.
    core_node.shutdown().await;
    let core_node = start(&core).await;
    let mut fresh = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    assert_tls_alert(&hello(&mut fresh).await.unwrap_err(), "AccessDenied");
    admin(&core)
        .await
        .block_peer(pb::BlockPeerRequest {
            team: "lincoln-high".into(),
            blocked: false,
        })
        .await
        .unwrap();
    let mut fresh = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    hello(&mut fresh).await.unwrap();
    core_node.shutdown().await;
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_at_the_handshake_and_on_open_connections() {
    let (fed, core, school) = two_teams(true);
    let core_node = start(&core).await;
    let mut open = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    hello(&mut open).await.unwrap();

    let revoked = [RevokedCertificate {
        serial_hex: serial_of(&school.dir),
        revoked_at: time::OffsetDateTime::now_utc(),
        reason: RevocationReason::KeyCompromise,
    }];
    let crl = fed.ca.sign_crl(&revoked, 2, 7).unwrap();
    let changed = Instant::now();
    let info = admin(&core)
        .await
        .import_crl(pb::ImportCrlRequest { crl_pem: crl })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.revoked, 1);
    let status = hello(&mut open).await.unwrap_err();
    assert!(
        changed.elapsed() < TAKES_EFFECT_WITHIN,
        "{:?}",
        changed.elapsed()
    );
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("revoked"), "{status:?}");
    let mut fresh = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    assert_tls_alert(&hello(&mut fresh).await.unwrap_err(), "CertificateRevoked");

    // An older CRL cannot undo the revocation.
    let older = fed.ca.sign_crl(&[], 1, 7).unwrap();
    let status = admin(&core)
        .await
        .import_crl(pb::ImportCrlRequest { crl_pem: older })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    // A CRL from a CA the node does not trust is refused.
    let rogue = CertificateAuthority::create(fed.id.clone(), 2).unwrap();
    let status = admin(&core)
        .await
        .import_crl(pb::ImportCrlRequest {
            crl_pem: rogue.sign_crl(&[], 9, 7).unwrap(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    core_node.shutdown().await;
}

#[tokio::test]
async fn directories_are_verified_and_only_move_forward() {
    let (fed, core, school) = two_teams(false);
    let core_node = start(&core).await;

    let v2 = signed_directory(&fed.ca, 2, &[&core, &school], &[&fed.ca]);
    let reply = admin(&core)
        .await
        .import_directory(pb::ImportDirectoryRequest {
            document: v2.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!reply.unchanged);
    assert_eq!(
        reply.directory.unwrap().members,
        1,
        "the node itself is not its own peer"
    );
    let mut client = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    hello(&mut client)
        .await
        .expect("a directory member can connect");

    // The same document again changes nothing.
    let again = admin(&core)
        .await
        .import_directory(pb::ImportDirectoryRequest { document: v2 })
        .await
        .unwrap()
        .into_inner();
    assert!(again.unchanged);

    // Rollback.
    let v1 = signed_directory(&fed.ca, 1, &[&core], &[&fed.ca]);
    let status = admin(&core)
        .await
        .import_directory(pb::ImportDirectoryRequest { document: v1 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("rollback") || status.message().contains("older"),
        "{status:?}"
    );

    // Tampered: the payload edited after signing.
    let v3 = signed_directory(&fed.ca, 3, &[&core], &[&fed.ca]);
    let tampered = tamper(&v3);
    let status = admin(&core)
        .await
        .import_directory(pb::ImportDirectoryRequest { document: tampered })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // Signed by a CA the node does not trust.
    let rogue = CertificateAuthority::create(fed.id.clone(), 2).unwrap();
    let forged = signed_directory(&rogue, 4, &[&core, &school], &[&rogue]);
    let status = admin(&core)
        .await
        .import_directory(pb::ImportDirectoryRequest { document: forged })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("does not trust"), "{status:?}");

    // None of the refused documents changed anything: the school is still a member.
    hello(&mut client).await.unwrap();
    // The genuine next directory drops the school, which is refused at once.
    let status = admin(&core)
        .await
        .import_directory(pb::ImportDirectoryRequest { document: v3 })
        .await;
    status.unwrap();
    let status = hello(&mut client).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // Peers can fetch the directory from each other.
    core_node.shutdown().await;
}

/// Changes one character of a member's endpoint inside the signed payload.
fn tamper(document: &str) -> String {
    use base64::Engine;
    let mut json: serde_json::Value = serde_json::from_str(document).unwrap();
    let payload = json["payload"].as_str().unwrap().to_owned();
    let engine = base64::engine::general_purpose::STANDARD;
    let decoded = String::from_utf8(engine.decode(payload).unwrap()).unwrap();
    let changed = decoded.replacen("127.0.0.1", "127.0.0.2", 1);
    assert_ne!(decoded, changed);
    json["payload"] = serde_json::Value::String(engine.encode(changed));
    json.to_string()
}

#[tokio::test]
async fn an_expired_peer_certificate_is_refused_and_the_alert_says_so() {
    let (fed, core, school) = two_teams(true);
    let core_node = start(&core).await;
    let (cert, key) = expired_certificate(&fed.ca, &school.identity);
    let verdict = raw_handshake_verdict(&cert, &key, &core).await;
    assert!(verdict.contains("CertificateExpired"), "{verdict}");
    core_node.shutdown().await;
}

#[tokio::test]
async fn a_peer_certificate_not_valid_yet_is_refused_and_the_alert_says_so() {
    let (fed, core, school) = two_teams(true);
    let core_node = start(&core).await;
    let now = time::OffsetDateTime::now_utc();
    let (cert, key) = certificate_valid_between(
        &fed.ca,
        &school.identity,
        now + time::Duration::days(1),
        now + time::Duration::days(30),
    );
    let verdict = raw_handshake_verdict(&cert, &key, &core).await;
    assert!(
        verdict.contains("CertificateExpired") || verdict.contains("BadCertificate"),
        "{verdict}"
    );
    core_node.shutdown().await;
}

#[tokio::test]
async fn a_node_with_an_expired_certificate_refuses_to_start_and_names_file_and_date() {
    let (fed, core, _school) = two_teams(true);
    let (cert, key) = expired_certificate(&fed.ca, &core.identity);
    std::fs::write(core.dir.join("node.pem"), cert).unwrap();
    std::fs::write(core.dir.join("node.key"), key).unwrap();
    let config = tatmx_node::Config::load(&core.config_path()).unwrap();
    let error = tatmx_node::start(config)
        .await
        .err()
        .expect("start must fail")
        .to_string();
    assert!(error.contains("node.pem"), "{error}");
    assert!(error.contains("expired on"), "{error}");
}

#[tokio::test]
async fn a_node_certificate_is_replaced_without_dropping_open_connections() {
    let (fed, core, school) = two_teams(true);
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let mut open = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    hello(&mut open).await.unwrap();
    let old_serial = serial_of(&core.dir);

    // `tatmx cert renew` on the core's host, `tatmx ca sign` at the federation admin.
    let next = NodeKey::generate(&core.identity).unwrap();
    let key_path = core.dir.join("node.next.key");
    std::fs::write(&key_path, &next.key_pem).unwrap();
    let issued = fed
        .ca
        .sign_csr(&next.csr_pem, core.identity.team.clone(), 2)
        .unwrap();
    let info = admin(&core)
        .await
        .install_certificate(pb::InstallCertificateRequest {
            certificate_pem: issued.cert_pem.clone(),
            key_path: key_path.display().to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.serial, issued.serial_hex);
    assert_ne!(info.serial, old_serial);

    // The open connection keeps working; new work flows over new connections.
    hello(&mut open)
        .await
        .expect("in-flight connection survives");
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &id).await;
    let status = admin(&core)
        .await
        .trust_status(pb::TrustStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.certificate.unwrap().serial, issued.serial_hex);
    // The files were replaced, so a restart keeps the new certificate.
    assert_eq!(serial_of(&core.dir), issued.serial_hex);
    core_node.shutdown().await;
    let core_node = start(&core).await;
    let mut fresh = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    hello(&mut fresh).await.unwrap();

    // A certificate for another team is refused.
    let other = NodeKey::generate(&school.identity).unwrap();
    std::fs::write(&key_path, &other.key_pem).unwrap();
    let wrong = fed
        .ca
        .sign_csr(&other.csr_pem, school.identity.team.clone(), 2)
        .unwrap();
    let status = admin(&core)
        .await
        .install_certificate(pb::InstallCertificateRequest {
            certificate_pem: wrong.cert_pem,
            key_path: key_path.display().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test]
async fn the_ca_rotates_from_old_through_both_to_new_without_losing_a_message() {
    let (fed, core, school) = two_teams(true);
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let import = |team: &TeamSpec, document: String| {
        let team = team.clone();
        async move {
            admin(&team)
                .await
                .import_directory(pb::ImportDirectoryRequest { document })
                .await
                .unwrap();
        }
    };
    let send = |n: usize| {
        let school = school.clone();
        let core = core.clone();
        async move {
            let id = submit(&mut agency(&school).await, draft("county-core")).await;
            delivered(&school, &id).await;
            assert_eq!(inbox_len(&core).await, n);
        }
    };

    // Old CA only.
    let d1 = signed_directory(&fed.ca, 1, &[&core, &school], &[&fed.ca]);
    import(&core, d1.clone()).await;
    import(&school, d1).await;
    send(1).await;

    // Both: the old CA announces the new anchor.
    let new_ca = CertificateAuthority::create(fed.id.clone(), 2).unwrap();
    let d2 = signed_directory(&fed.ca, 2, &[&core, &school], &[&fed.ca, &new_ca]);
    import(&core, d2.clone()).await;
    import(&school, d2).await;
    let old_school_dir = school.dir.join("old-cert");
    std::fs::create_dir_all(&old_school_dir).unwrap();
    std::fs::copy(school.dir.join("node.pem"), old_school_dir.join("node.pem")).unwrap();
    std::fs::copy(school.dir.join("node.key"), old_school_dir.join("node.key")).unwrap();
    for team in [&core, &school] {
        let next = NodeKey::generate(&team.identity).unwrap();
        let key_path = team.dir.join("node.next.key");
        std::fs::write(&key_path, &next.key_pem).unwrap();
        let issued = new_ca
            .sign_csr(&next.csr_pem, team.identity.team.clone(), 2)
            .unwrap();
        admin(team)
            .await
            .install_certificate(pb::InstallCertificateRequest {
                certificate_pem: issued.cert_pem,
                key_path: key_path.display().to_string(),
            })
            .await
            .unwrap();
    }
    send(2).await;

    // New CA only, announced by the new CA itself.
    let d3 = signed_directory(&new_ca, 3, &[&core, &school], &[&new_ca]);
    import(&core, d3.clone()).await;
    import(&school, d3).await;
    send(3).await;

    // The old CA's certificates no longer get in (the client trusts both CAs, so the refusal
    // is the node's).
    let new_ca_path = school.dir.join("new-ca.pem");
    std::fs::write(&new_ca_path, new_ca.cert_pem()).unwrap();
    let mut old = federation_client(
        &old_school_dir,
        &[&fed.ca_path, &new_ca_path],
        &school.identity,
        &core,
    );
    let status = hello(&mut old).await.unwrap_err();
    assert_tls_alert(&status, "alert");
    let status = admin(&core)
        .await
        .trust_status(pb::TrustStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.anchors.len(),
        1,
        "only the new anchor remains: {:?}",
        status.anchors
    );

    school_node.shutdown().await;
    core_node.shutdown().await;
}

#[tokio::test]
async fn trust_status_reports_certificate_anchors_directory_and_peers() {
    let (fed, core, school) = two_teams(true);
    let core_node = start(&core).await;
    let document = signed_directory(&fed.ca, 1, &[&core, &school], &[&fed.ca]);
    admin(&core)
        .await
        .import_directory(pb::ImportDirectoryRequest { document })
        .await
        .unwrap();
    let status = admin(&core)
        .await
        .trust_status(pb::TrustStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let certificate = status.certificate.unwrap();
    assert_eq!(certificate.identity, core.identity.uri());
    assert!(certificate.days_until_expiry <= 2);
    assert_eq!(status.anchors.len(), 1);
    assert_eq!(status.directories[0].sequence, 1);
    assert!(!status.directories[0].stale);
    assert_eq!(status.peers.len(), 1);
    assert_eq!(status.peers[0].source, "directory");
    // The CA and this node's certificate expire within 30 days: both are warned about.
    assert!(
        status
            .warnings
            .iter()
            .any(|w| w.contains("this node's certificate for county-mdt.example expires")),
        "{:?}",
        status.warnings
    );
    core_node.shutdown().await;
}

#[tokio::test]
async fn a_node_fetches_a_newer_directory_from_a_peer() {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    let riverside = fed.team("riverside-mh", "affiliate", "mental-health");
    fed.write_config(
        &core,
        &[&school],
        "[directory]\nrefresh_from = [\"lincoln-high\"]\nrefresh_interval = \"200ms\"\n",
    );
    fed.write_config(&school, &[&core], "");
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let v1 = signed_directory(&fed.ca, 1, &[&core, &school], &[&fed.ca]);
    for team in [&core, &school] {
        admin(team)
            .await
            .import_directory(pb::ImportDirectoryRequest {
                document: v1.clone(),
            })
            .await
            .unwrap();
    }
    // Only the school gets the next directory, which enrols Riverside.
    let v2 = signed_directory(&fed.ca, 2, &[&core, &school, &riverside], &[&fed.ca]);
    admin(&school)
        .await
        .import_directory(pb::ImportDirectoryRequest { document: v2 })
        .await
        .unwrap();
    let core_spec = core.clone();
    eventually(
        Duration::from_secs(10),
        "the core to fetch sequence 2",
        || {
            let core = core_spec.clone();
            async move {
                let status = admin(&core)
                    .await
                    .trust_status(pb::TrustStatusRequest {})
                    .await
                    .ok()?
                    .into_inner();
                (status.directories.first()?.sequence == 2).then_some(())
            }
        },
    )
    .await;
    let mut client = federation_client(&riverside.dir, &[&fed.ca_path], &riverside.identity, &core);
    hello(&mut client)
        .await
        .expect("the member enrolled in the fetched directory connects");
    school_node.shutdown().await;
    core_node.shutdown().await;
}
