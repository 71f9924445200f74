//! One node in two federations: a county MDT and a state fusion centre. Each federation's CA
//! vouches only for its own teams, and the node speaks to each with the identity that
//! federation gave it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use tatmx_proto::v1 as pb;
use tatmx_tests::*;

#[tokio::test]
async fn a_node_in_two_federations_exchanges_with_both_under_the_right_identity() {
    let mut county = TestFederation::new("county-mdt.example");
    let mut state = TestFederation::new("state-fusion.example");
    let core = county.team("county-core", "core", "law-enforcement");
    let school = county.team("lincoln-high", "affiliate", "education");
    let fusion = state.team("fusion-center", "core", "law-enforcement");
    // The county core team is also a member of the state federation, as "lincoln-county".
    let core_in_state = state.enrol_existing(&core, "lincoln-county", "state-node");
    let membership = format!(
        "[[memberships]]\nfederation = \"state-fusion.example\"\nteam = \"lincoln-county\"\nca = \"{}\"\ncert = \"state-node.pem\"\nkey = \"state-node.key\"\n",
        state.ca_path.display()
    );
    county.write_config(&core, &[&school, &fusion], &membership);
    county.write_config(&school, &[&core], "");
    state.write_config(&fusion, &[&core_in_state], "");
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let fusion_node = start(&fusion).await;

    // Each federation's member reaches the core, which answers with that federation's identity.
    let mut from_school =
        federation_client(&school.dir, &[&county.ca_path], &school.identity, &core);
    let hello = from_school
        .hello(pb::HelloRequest {
            protocol_version: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hello.identity, core.identity.uri());
    let mut from_fusion = federation_client(
        &fusion.dir,
        &[&state.ca_path],
        &fusion.identity,
        &core_in_state,
    );
    let hello = from_fusion
        .hello(pb::HelloRequest {
            protocol_version: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hello.identity, core_in_state.identity.uri());

    // Referrals flow both ways in both federations.
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &id).await;
    let id = submit(
        &mut agency(&fusion).await,
        draft(&core_in_state.identity.uri()),
    )
    .await;
    delivered(&fusion, &id).await;
    assert_eq!(inbox_len(&core).await, 2);
    let id = submit(&mut agency(&core).await, draft(&fusion.identity.uri())).await;
    delivered(&core, &id).await;
    let received = agency(&fusion)
        .await
        .get_referral(pb::GetReferralRequest { referral_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        received.referral.unwrap().sender,
        "spiffe://state-fusion.example/team/lincoln-county",
        "the core speaks to the state federation as its state identity"
    );

    // Anchors are not merged: the state's CA cannot vouch for a county identity.
    let forged_identity = school.identity.clone();
    let dir = school.dir.join("forged-as-county");
    std::fs::create_dir_all(&dir).unwrap();
    issue_named_with_foreign_ca(&state, &forged_identity, &dir);
    let cert = std::fs::read_to_string(dir.join("node.pem")).unwrap();
    let key = std::fs::read_to_string(dir.join("node.key")).unwrap();
    let verdict = raw_handshake_verdict(&cert, &key, &core).await;
    assert!(verdict.contains("alert"), "{verdict}");

    fusion_node.shutdown().await;
    school_node.shutdown().await;
    core_node.shutdown().await;
}

/// A certificate claiming a county identity, signed by the state federation's CA key.
fn issue_named_with_foreign_ca(
    state: &TestFederation,
    identity: &tatmx_certs::TeamIdentity,
    dir: &std::path::Path,
) {
    let ca_key = rcgen::KeyPair::from_pem(&state.ca.key_pem()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(state.ca.cert_pem(), ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(identity.uri().try_into().unwrap())];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("node.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("node.key"), key.serialize_pem()).unwrap();
}
