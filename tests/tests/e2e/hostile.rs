//! Callers the Federation API must refuse, each with a precise status, nothing stored, and the
//! node still serving afterwards.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use tatmx_certs::{CertificateAuthority, FederationId, TeamId, TeamIdentity};
use tatmx_proto::v1 as pb;
use tatmx_proto::v1::federation_client::FederationClient;
use tatmx_tests::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tonic::transport::Channel;

struct Setup {
    fed: TestFederation,
    core: TeamSpec,
    school: TeamSpec,
    riverside: TeamSpec,
}

fn setup(extra_core_config: &str) -> Setup {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    let riverside = fed.team("riverside-mh", "affiliate", "mental-health");
    fed.write_config(&core, &[&school, &riverside], extra_core_config);
    Setup {
        fed,
        core,
        school,
        riverside,
    }
}

/// The call failed in the TLS layer: the server's fatal alert, not a gRPC status from a handler.
/// Under TLS 1.3 the client learns of a rejected client certificate only when it first reads,
/// so the alert arrives as the call's transport error.
fn assert_refused_by_tls(status: &tonic::Status) {
    assert!(
        matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown
        ),
        "{status:?}"
    );
    assert!(format!("{status:?}").contains("alert"), "{status:?}");
}

/// The school, a known peer with a valid certificate, calling the core team by hand.
fn school_client(s: &Setup) -> FederationClient<Channel> {
    federation_client(
        &s.school.dir,
        &[&s.fed.ca_path],
        &s.school.identity,
        &s.core,
    )
}

/// The node still answers a legitimate caller.
async fn still_serving(s: &Setup) {
    let mut client = school_client(s);
    let hello = client
        .hello(pb::HelloRequest {
            protocol_version: 1,
            ..Default::default()
        })
        .await
        .expect("a legitimate peer is still served")
        .into_inner();
    assert_eq!(hello.identity, s.core.identity.uri());
    assert_eq!(hello.role, pb::Role::Core as i32);
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_at_the_handshake() {
    let s = setup("");
    let node = start(&s.core).await;

    // Same team name, but certified by a CA the node has never heard of.
    let rogue_ca = CertificateAuthority::create(s.fed.id.clone(), 2).unwrap();
    let rogue_dir = s.fed.dir.path().join("rogue");
    std::fs::create_dir_all(&rogue_dir).unwrap();
    issue_into(&rogue_ca, &s.school.identity, &rogue_dir);
    let mut client = federation_client(&rogue_dir, &[&s.fed.ca_path], &s.school.identity, &s.core);
    let status = client
        .deliver_referral(pb::DeliverReferralRequest {
            referral: Some(outgoing(&s.school, &s.core)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_refused_by_tls(&status);
    assert_eq!(inbox_len(&s.core).await, 0);
    still_serving(&s).await;
    node.shutdown().await;
}

#[tokio::test]
async fn an_envelope_sender_that_is_not_the_certificate_identity_is_refused() {
    let s = setup("");
    let node = start(&s.core).await;
    // The school, a known peer with a valid certificate, claims to be Riverside.
    let mut client = school_client(&s);
    let status = client
        .deliver_referral(signed_referral(&s.school, outgoing(&s.riverside, &s.core)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("referral.sender"), "{status:?}");
    assert!(!status.message().contains("CANARY"), "{status:?}");
    assert_eq!(inbox_len(&s.core).await, 0);
    still_serving(&s).await;
    node.shutdown().await;
}

#[tokio::test]
async fn a_certified_team_that_is_not_a_peer_is_refused() {
    let mut s = setup("");
    let stranger = s.fed.team("stranger", "affiliate", "social-services");
    let node = start(&s.core).await;
    let mut client = federation_client(
        &stranger.dir,
        &[&s.fed.ca_path],
        &stranger.identity,
        &s.core,
    );
    let status = client
        .hello(pb::HelloRequest {
            protocol_version: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    // Refused in the handshake itself: no request of an unknown team reaches a handler.
    assert_refused_by_tls(&status);
    assert!(format!("{status:?}").contains("AccessDenied"), "{status:?}");
    let status = client
        .deliver_referral(signed_referral(&stranger, outgoing(&stranger, &s.core)))
        .await
        .unwrap_err();
    assert_refused_by_tls(&status);
    assert_eq!(inbox_len(&s.core).await, 0);
    still_serving(&s).await;
    node.shutdown().await;
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused_and_others_still_get_through() {
    let s = setup("");
    let node = start(&s.core).await;
    let mut client = school_client(&s);
    let mut big = outgoing(&s.school, &s.core);
    if let Some(content) = big.content.as_mut() {
        content.narrative = Some(pb::Narrative {
            text: "x".repeat(2 * 1024 * 1024),
        });
    }
    let status = client
        .deliver_referral(signed_referral(&s.school, big))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
    assert_eq!(inbox_len(&s.core).await, 0);

    let receipt = client
        .deliver_referral(signed_referral(&s.school, outgoing(&s.school, &s.core)))
        .await
        .expect("a normal message after the oversized one")
        .into_inner();
    assert!(!receipt.duplicate);
    assert_eq!(inbox_len(&s.core).await, 1);
    node.shutdown().await;
}

#[tokio::test]
async fn tls_1_2_is_refused() {
    let s = setup("");
    let node = start(&s.core).await;

    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(&s.fed.ca_path).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain: Vec<_> =
        rustls_pki_types::CertificateDer::pem_file_iter(s.school.dir.join("node.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key =
        rustls_pki_types::PrivateKeyDer::from_pem_file(s.school.dir.join("node.key")).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(tatmx_node::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr(&s.core)).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let err = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect_err("a TLS 1.2 handshake must fail");
    assert!(
        err.to_string().contains("ProtocolVersion"),
        "expected a protocol version alert, got {err}"
    );
    still_serving(&s).await;
    node.shutdown().await;
}

#[tokio::test]
async fn a_status_update_for_a_referral_never_sent_to_the_caller_is_refused() {
    let s = setup("");
    let node = start(&s.core).await;
    let mut client = school_client(&s);
    let status = client
        .update_status(signed_update(
            &s.school,
            pb::StatusUpdate {
                id: uuid::Uuid::now_v7().to_string(),
                referral_id: uuid::Uuid::now_v7().to_string(),
                author: s.school.identity.uri(),
                status: pb::ReferralStatus::Received.into(),
                at: Some(prost_types::Timestamp {
                    seconds: 1_790_000_000,
                    nanos: 0,
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    still_serving(&s).await;
    node.shutdown().await;
}

/// A way to spoil a valid referral.
type Breakage = Box<dyn Fn(&mut pb::Referral)>;

#[tokio::test]
async fn malformed_referrals_are_refused_by_field_without_echoing_content() {
    let s = setup("");
    let node = start(&s.core).await;
    let mut client = school_client(&s);
    let cases: Vec<(&str, Breakage)> = vec![
        ("referral.id", Box::new(|r| r.id = "not-a-uuid".into())),
        ("referral.purpose", Box::new(|r| r.purpose = 77)),
        ("referral.legal_basis", Box::new(|r| r.legal_basis = 0)),
        ("referral.created_at", Box::new(|r| r.created_at = None)),
        (
            "date_of_birth",
            Box::new(|r| {
                if let Some(identity) = r.content.as_mut().and_then(|c| c.identity.as_mut()) {
                    identity.date_of_birth = "CANARY-DOB".into();
                }
            }),
        ),
        (
            "referral.recipient",
            Box::new(|r| r.recipient = "spiffe://county-mdt.example/team/someone-else".into()),
        ),
    ];
    for (field, break_it) in cases {
        let mut referral = outgoing(&s.school, &s.core);
        break_it(&mut referral);
        let status = client
            .deliver_referral(signed_referral(&s.school, referral))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{field}: {status:?}"
        );
        assert!(status.message().contains(field), "{field}: {status:?}");
        assert!(!status.message().contains("CANARY"), "{field}: {status:?}");
    }
    assert_eq!(inbox_len(&s.core).await, 0);
    still_serving(&s).await;
    node.shutdown().await;
}

#[tokio::test]
async fn a_certificate_from_our_ca_claiming_another_federation_is_refused() {
    let s = setup("");
    let node = start(&s.core).await;
    // Our own CA signs (by mistake or compromise) a certificate for an identity in another
    // federation. It chains to our anchor, but it proves nothing about our federation's teams.
    let other = TeamIdentity::new(
        FederationId::new("state-fusion.example").unwrap(),
        TeamId::new("lincoln-high").unwrap(),
    );
    let dir = s.fed.dir.path().join("other-fed");
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = rcgen::KeyPair::from_pem(&s.fed.ca.key_pem()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(s.fed.ca.cert_pem(), ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(other.uri().try_into().unwrap())];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    ];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("node.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("node.key"), key.serialize_pem()).unwrap();

    let verdict = raw_handshake_verdict(&cert.pem(), &key.serialize_pem(), &s.core).await;
    // Anchors are never merged: our CA proves nothing about state-fusion.example's teams.
    assert!(verdict.contains("UnknownCA"), "{verdict}");
    still_serving(&s).await;
    node.shutdown().await;
}

#[tokio::test]
async fn unsigned_forged_and_borrowed_signatures_are_refused() {
    let s = setup("");
    let node = start(&s.core).await;
    let mut client = school_client(&s);
    let referral = outgoing(&s.school, &s.core);
    // No signature at all.
    let status = client
        .deliver_referral(pb::DeliverReferralRequest {
            referral: Some(referral.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("signature"), "{status:?}");
    // A signature over other bytes.
    let mut forged = signed_referral(&s.school, referral.clone());
    if let Some(signature) = forged.signature.as_mut() {
        signature.value[10] ^= 1;
    }
    let status = client.deliver_referral(forged).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    // Another team's valid signature, with its certificate, over the school's referral.
    let mut borrowed = signed_referral(&s.school, referral.clone());
    borrowed.signature = signature_of(&s.riverside, "referral", &referral);
    let status = client.deliver_referral(borrowed).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("signature.certificate"),
        "{status:?}"
    );
    assert_eq!(inbox_len(&s.core).await, 0);
    // The genuine one still goes through.
    client
        .deliver_referral(signed_referral(&s.school, referral))
        .await
        .unwrap();
    assert_eq!(inbox_len(&s.core).await, 1);
    still_serving(&s).await;
    node.shutdown().await;
}

/// A DeliverReferral request as raw bytes: what a broken or hostile peer can put on the wire.
#[derive(Clone, PartialEq, prost::Message)]
struct RawDelivery {
    #[prost(bytes = "vec", tag = "1")]
    referral: Vec<u8>,
}

#[tokio::test]
async fn garbage_bytes_invalid_utf8_and_a_million_entries_are_refused() {
    let s = setup("");
    let node = start(&s.core).await;
    let channel = federation_channel(
        &s.school.dir,
        &[&s.fed.ca_path],
        &s.school.identity,
        &s.core,
    );
    let call = |referral: Vec<u8>| {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        let request = tonic::Request::new(RawDelivery { referral });
        async move {
            grpc.ready().await.unwrap();
            grpc.unary::<_, pb::DeliveryReceipt, _>(
                request,
                http::uri::PathAndQuery::from_static("/tatmx.v1.Federation/DeliverReferral"),
                tonic_prost::ProstCodec::default(),
            )
            .await
        }
    };
    // Not protobuf at all.
    let garbage: Vec<u8> = (0..512u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let status = call(garbage).await.unwrap_err();
    assert_refused(&status, tatmx_node::refusal::Reason::InvalidMessage);
    // Field 1 (the referral id, a string) with bytes that are not UTF-8.
    let status = call(vec![0x0a, 0x04, 0xff, 0xfe, 0xfd, 0xfc])
        .await
        .unwrap_err();
    assert_refused(&status, tatmx_node::refusal::Reason::InvalidMessage);
    assert!(!status.message().contains('\u{fffd}'), "{status:?}");
    // A repeated field with a million entries: the provenance chain, one empty hop each.
    let mut referral = outgoing(&s.school, &s.core);
    referral.provenance = vec![pb::Hop::default(); 1_000_000];
    let mut client = school_client(&s);
    let status = client
        .deliver_referral(signed_referral(&s.school, referral))
        .await
        .unwrap_err();
    assert!(
        matches!(
            status.code(),
            tonic::Code::OutOfRange | tonic::Code::InvalidArgument
        ),
        "{status:?}"
    );
    assert_eq!(inbox_len(&s.core).await, 0);
    still_serving(&s).await;
    node.shutdown().await;
}

/// The resident memory of this process, in KiB (the node runs inside it).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_trickling_and_flooding_connections_are_cut_off_and_memory_stays_bounded() {
    let s = setup("");
    // A short handshake deadline for the test; the default is ten seconds.
    let config = std::fs::read_to_string(s.core.config_path()).unwrap();
    let config = config.replacen(
        "[federation_api]\n",
        "[federation_api]\nhandshake_timeout = \"500ms\"\n",
        1,
    );
    std::fs::write(s.core.config_path(), config).unwrap();
    let node = start(&s.core).await;
    // A peer with its channel already open, as peers keep them.
    let mut peer = school_client(&s);
    peer.hello(pb::HelloRequest {
        protocol_version: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let before = rss_kib();

    // A flood from another address than the peers' 127.0.0.1: more connections than handshake
    // slots, each saying nothing. All but that address's share are closed at once.
    let mut idle = Vec::new();
    for _ in 0..600 {
        if let Ok(stream) = connect_from([127, 0, 1, 2], addr(&s.core)).await {
            idle.push(stream);
        }
    }
    // A slowloris: a TLS ClientHello one byte at a time, slower than the deadline allows.
    let mut trickle = tokio::net::TcpStream::connect(addr(&s.core)).await.unwrap();
    let trickler = tokio::spawn(async move {
        for byte in [0x16u8, 0x03, 0x01, 0x00, 0x10] {
            if trickle.write_all(&[byte]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // Cut off by now: the write fails or the peer has closed.
        let mut buf = [0u8; 1];
        use tokio::io::AsyncReadExt;
        matches!(
            tokio::time::timeout(Duration::from_secs(2), trickle.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    });
    // Meanwhile the peer is still served on its open channel.
    peer.hello(pb::HelloRequest {
        protocol_version: 1,
        ..Default::default()
    })
    .await
    .expect("a peer with an open channel is served during the flood");
    assert!(
        trickler.await.unwrap(),
        "the trickling connection was not cut off"
    );

    // The idle ones are closed once the deadline passes.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut closed = 0;
    for stream in &mut idle {
        let mut buf = [0u8; 1];
        use tokio::io::AsyncReadExt;
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert_eq!(closed, idle.len(), "every idle connection is closed");
    let grown = rss_kib().saturating_sub(before);
    println!(
        "connection flood: {} connections, RSS grew {grown} KiB",
        idle.len()
    );
    assert!(
        grown < 64 * 1024,
        "RSS grew by {grown} KiB under a connection flood"
    );
    still_serving(&s).await;
    node.shutdown().await;
}

/// A TCP connection to `target` from `source`. Linux routes all of 127/8 to the loopback
/// interface, so a flood can come from other addresses, and other /24 networks, than the
/// 127.0.0.1 every test peer shares.
async fn connect_from(source: [u8; 4], target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(target).await
}

/// Whether the node closed `stream` within `wait` without sending a byte: shed at accept,
/// rather than waiting in a handshake for a ClientHello.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(wait, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// The first bytes of a TLS 1.3 ClientHello: a record header announcing 512 bytes, and the
/// handshake message's header. The rest never comes.
const PARTIAL_CLIENT_HELLO: [u8; 11] = [
    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
];

/// `tatmx_handshakes_shed_total` for `reason` on a metrics page; zero when never counted.
fn shed_count(page: &str, reason: &str) -> u64 {
    let series = format!("tatmx_handshakes_shed_total{{reason=\"{reason}\"}} ");
    page.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// The log message of a shed summary, from `trust/admission.rs`.
const SHED_SUMMARY: &str = "federation connections shed at accept";

#[test]
fn a_new_peer_is_served_at_once_while_slow_handshakes_from_elsewhere_flood_the_node() {
    Logs::run(|logs| async move {
        let mut s = setup("");
        let metrics_port = s.fed.port();
        s.fed.write_config(
            &s.core,
            &[&s.school, &s.riverside],
            &format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"),
        );
        // The default ten-second handshake deadline: the flood holds its slots for the whole
        // test unless the node sheds it.
        let node = start(&s.core).await;
        let target = addr(&s.core);
        let before = scrape_metrics(metrics_port).await;

        // Eight /24 networks (127.0.1.0 to 127.0.8.0), three addresses in each, 24 slow
        // handshakes from each address: 576 connections, more than all 256 slots, none from
        // the peers' 127.0.0.1. Half say nothing, half start a ClientHello and stop.
        let mut flood = Vec::new();
        for network in 1..=8u8 {
            for host in 1..=3u8 {
                for n in 0..24 {
                    let mut stream = connect_from([127, 0, network, host], target).await.unwrap();
                    if n % 2 == 1 {
                        // A shed connection may already be closed; that is the point.
                        let _ = stream.write_all(&PARTIAL_CLIENT_HELLO).await;
                    }
                    flood.push(stream);
                }
            }
        }
        // The node accepts in order, so once this newcomer is answered the whole flood has
        // been: from an unknown address of a fresh network, it finds the general share full.
        let mut newcomer = connect_from([127, 0, 9, 1], target).await.unwrap();
        assert!(
            closed_within(&mut newcomer, Duration::from_secs(2)).await,
            "an unknown address is shed while the flood holds the general share"
        );

        // A peer with no connection open: a fresh channel, a full mutual-TLS handshake.
        let started = Instant::now();
        let hello = tokio::time::timeout(
            Duration::from_secs(2),
            school_client(&s).hello(pb::HelloRequest {
                protocol_version: 1,
                ..Default::default()
            }),
        )
        .await
        .expect("a new peer is served within 2 s during the flood")
        .expect("a new peer is served during the flood")
        .into_inner();
        let took = started.elapsed();
        assert_eq!(hello.identity, s.core.identity.uri());

        let after = scrape_metrics(metrics_port).await;
        let shed: Vec<u64> = ["per_address", "per_network", "full"]
            .iter()
            .map(|reason| shed_count(&after, reason) - shed_count(&before, reason))
            .collect();
        // Per network: two addresses fill its 32, the third is shed whole; per address: 8 of
        // each 24 beyond 16; six networks fill the 192 general slots, the last two find it
        // full. Other tests' floods can only add to the process-wide counts.
        assert!(shed[0] >= 96, "per-address sheds: {shed:?}");
        assert!(shed[1] >= 144, "per-network sheds: {shed:?}");
        assert!(shed[2] >= 144, "sheds at a full pool: {shed:?}");

        let text = String::from_utf8_lossy(&logs.own_text()).into_owned();
        let summaries = text.lines().filter(|l| l.contains(SHED_SUMMARY)).count();
        assert!(
            (3..=6).contains(&summaries),
            "{summaries} shed summaries for {} sheds",
            shed.iter().sum::<u64>()
        );
        assert!(
            text.lines()
                .filter(|l| l.contains(SHED_SUMMARY))
                .all(|l| l.contains("reason=") && l.contains("shed=") && l.contains("addresses=")),
            "{text}"
        );
        println!(
            "slow-handshake flood: {} connections, {} shed (per address {}, per network {}, \
             full {}), a new peer's Hello in {took:?}, {summaries} summary lines",
            flood.len(),
            shed.iter().sum::<u64>(),
            shed[0],
            shed[1],
            shed[2],
        );

        // A peer added during the flood: the trust change adds its endpoint's address to the
        // known ones, and with them to the reserved share.
        let harbor = s.fed.team("harbor-ems", "affiliate", "mental-health");
        let harbor_address = [127, 0, 20, 20];
        let mut unknown_yet = connect_from(harbor_address, target).await.unwrap();
        assert!(
            closed_within(&mut unknown_yet, Duration::from_secs(2)).await,
            "an address of no peer is shed while the general share is full"
        );
        let mut request = add_peer_request(&harbor);
        request.endpoint = format!("https://127.0.20.20:{}", harbor.port);
        admin(&s.core).await.add_peer(request).await.unwrap();
        eventually(
            Duration::from_secs(5),
            "the added peer's address to take a reserved slot",
            || async move {
                let mut stream = connect_from(harbor_address, target).await.ok()?;
                (!closed_within(&mut stream, Duration::from_millis(200)).await).then_some(())
            },
        )
        .await;

        // Once the flood leaves, its slots are free again, for unknown addresses too.
        drop(flood);
        eventually(
            Duration::from_secs(5),
            "the flood's slots to be given back",
            || async move {
                let mut stream = connect_from([127, 0, 9, 2], target).await.ok()?;
                (!closed_within(&mut stream, Duration::from_millis(200)).await).then_some(())
            },
        )
        .await;
        still_serving(&s).await;
        node.shutdown().await;
    });
}

#[tokio::test]
async fn an_affiliate_cannot_ask_for_a_consultation() {
    let s = setup("");
    let node = start(&s.core).await;
    let mut client = school_client(&s);
    let mut referral = outgoing(&s.school, &s.core);
    referral.purpose = pb::Purpose::Consultation.into();
    referral.consultation = Some(pb::ConsultationDetails {
        consultation_id: uuid::Uuid::now_v7().to_string(),
        question: "What do you think?".into(),
        due: None,
    });
    let status = client
        .deliver_referral(signed_referral(&s.school, referral))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("core team"), "{status:?}");
    assert_eq!(inbox_len(&s.core).await, 0);
    still_serving(&s).await;
    node.shutdown().await;
}
