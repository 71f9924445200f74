//! DNS names in node certificates (issue 20, item 6): a standard TLS client, which checks the
//! host name it dialled against the certificate's DNS names and knows nothing of SPIFFE, reaches
//! a node enrolled with `--dns-name` by that name and refuses it under any other. The client
//! here is rustls with its default webpki verifier and the federation CA as its only root, then
//! `openssl s_client -verify_hostname`; both present a client certificate, since the Federation
//! API is mutual TLS. The node itself still names its callers by their URI SAN alone.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::io;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tatmx_certs::files::{write_public, write_secret};
use tatmx_certs::{DnsName, NodeKey};
use tatmx_tests::*;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The name the county team's node is enrolled under.
const NODE_NAME: &str = "tatmx.county-core.example";

/// Re-enrols `team` with `names` as DNS names, asked for in its CSR and granted by the CA, in
/// place of the certificate the harness gave it.
fn enrol_with_dns_names(fed: &TestFederation, team: &TeamSpec, names: &[&str]) {
    let names: Vec<DnsName> = names.iter().map(|n| DnsName::new(*n).unwrap()).collect();
    let key = NodeKey::generate_with_dns_names(&team.identity, &names).unwrap();
    let issued = fed
        .ca
        .sign_csr_with_dns_names(&key.csr_pem, team.identity.team.clone(), 2, &names)
        .unwrap();
    assert_eq!(issued.dns_names, names);
    for file in ["node.key", "node.pem"] {
        std::fs::remove_file(team.dir.join(file)).unwrap();
    }
    write_secret(&team.dir.join("node.key"), &key.key_pem).unwrap();
    write_public(&team.dir.join("node.pem"), &issued.cert_pem).unwrap();
}

/// A stock rustls client config: webpki's standard server verification (chain to the
/// federation CA, then host name) and `client`'s certificate for the mutual TLS.
fn standard_client(fed: &TestFederation, client: &TeamSpec) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for anchor in CertificateDer::pem_file_iter(&fed.ca_path).unwrap() {
        roots.add(anchor.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(client.dir.join("node.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(client.dir.join("node.key")).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(tatmx_node::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// A gRPC channel to `target`'s Federation port on 127.0.0.1 that verifies the server as
/// `name`, the way a client that dials `https://<name>:<port>` would.
fn channel_as(
    config: Arc<rustls::ClientConfig>,
    target: &TeamSpec,
    name: &str,
) -> tonic::transport::Channel {
    let port = target.port;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let connector = tower::service_fn(move |_: http::Uri| {
        let (config, name) = (config.clone(), name.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_with_connector_lazy(connector)
}

async fn health_as(
    config: Arc<rustls::ClientConfig>,
    target: &TeamSpec,
    name: &str,
) -> Result<i32, tonic::Status> {
    HealthClient::new(channel_as(config, target, name))
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|r| r.into_inner().status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_client_checks_the_host_name_a_node_was_enrolled_with() {
    let (fed, core, school) = core_and_school();
    enrol_with_dns_names(&fed, &core, &[NODE_NAME]);
    let node = start(&core).await;
    let config = standard_client(&fed, &school);

    // By its DNS name: the handshake verifies and a real call is answered.
    let status = health_as(config.clone(), &core, NODE_NAME).await.unwrap();
    assert_eq!(status, ServingStatus::Serving as i32);

    // By any other name, the client refuses the node's certificate: the CA is right, the name
    // is not. The federation id, which tatmx's own clients send, is not a DNS name it carries.
    for other in ["other.county-core.example", "county-mdt.example"] {
        let refused = health_as(config.clone(), &core, other).await.unwrap_err();
        let chain = format!("{refused:?}");
        assert!(chain.contains("NotValidForName"), "{other}: {chain}");
    }

    // tatmx's own clients still name the node by its URI alone: the school, dialling the
    // federation id as ever, delivers to it.
    let school_node = start(&school).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    let entry = delivered(&school, &id).await;
    assert_eq!(entry.peer, core.identity.uri());
    drop(school_node);
    drop(node);
}

/// Runs `openssl s_client` against `target` as `name`, with hostname verification, and
/// returns whether the handshake verified and what openssl printed.
fn openssl_as(
    fed: &TestFederation,
    client: &TeamSpec,
    target: &TeamSpec,
    name: &str,
) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{}", target.port))
        .args(["-servername", name, "-verify_hostname", name])
        .arg("-CAfile")
        .arg(&fed.ca_path)
        .arg("-cert")
        .arg(client.dir.join("node.pem"))
        .arg("-key")
        .arg(client.dir.join("node.key"))
        .args(["-verify_return_error", "-alpn", "h2", "-brief"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn has_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|out| out.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_verifies_the_host_name_a_node_was_enrolled_with() {
    if !has_openssl() {
        println!("SKIPPED: openssl is not installed");
        return;
    }
    let (fed, core, school) = core_and_school();
    enrol_with_dns_names(&fed, &core, &[NODE_NAME]);
    let node = start(&core).await;
    let (fed_ref, school_ref, core_ref) = (&fed, &school, &core);
    let (ok, text) =
        tokio::task::block_in_place(|| openssl_as(fed_ref, school_ref, core_ref, NODE_NAME));
    assert!(ok, "{text}");
    assert!(text.contains("Verification: OK"), "{text}");
    assert!(text.contains(NODE_NAME), "{text}");

    let (ok, text) =
        tokio::task::block_in_place(|| openssl_as(fed_ref, school_ref, core_ref, "other.example"));
    assert!(!ok, "{text}");
    assert!(text.contains("hostname mismatch"), "{text}");
    drop(node);
}
