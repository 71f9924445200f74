//! Refusal codes on the wire: a real node refuses bad deliveries with a stable reason code in
//! the status details, and a sender sorts the refusal by that code.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::time::Duration;

use tatmx_node::federation::DeliveryError;
use tatmx_node::federation::client::{classify, tls_error};
use tatmx_node::refusal::{self, Reason};
use tatmx_proto::v1 as pb;
use tatmx_tests::*;

/// A delivery stamped as sent `offset` ago.
fn sent_before(
    request: pb::DeliverReferralRequest,
    offset: Duration,
) -> tonic::Request<pb::DeliverReferralRequest> {
    let then = time::OffsetDateTime::now_utc() - offset;
    let mut request = tonic::Request::new(request);
    request.metadata_mut().insert(
        "x-tatmx-sent-at",
        ((then.unix_timestamp_nanos() / 1_000_000) as i64)
            .to_string()
            .parse()
            .unwrap(),
    );
    request
}

#[tokio::test]
async fn every_refused_delivery_names_its_reason_in_the_details() {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    let riverside = fed.team("riverside-mh", "affiliate", "mental-health");
    fed.write_config(&core, &[&school, &riverside], "");
    let node = start(&core).await;
    let mut client = federation_client(&school.dir, &[&fed.ca_path], &school.identity, &core);
    let referral = outgoing(&school, &core);

    // A clock ten minutes behind: retried, with the hint to check the clocks.
    let status = client
        .deliver_referral(sent_before(
            signed_referral(&school, referral.clone()),
            Duration::from_secs(600),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refusal::reason(&status),
        Some(Reason::ClockSkew),
        "{status:?}"
    );
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    match classify(&status) {
        DeliveryError::Transient { reason, .. } => {
            assert!(reason.contains("check both nodes' clocks"), "{reason}")
        }
        other => panic!("a skewed clock must be retried: {other:?}"),
    }

    // No signature, then a signature over other bytes: given up.
    let status = client
        .deliver_referral(pb::DeliverReferralRequest {
            referral: Some(referral.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        refusal::reason(&status),
        Some(Reason::BadSignature),
        "{status:?}"
    );
    assert!(matches!(classify(&status), DeliveryError::Permanent { .. }));
    let mut forged = signed_referral(&school, referral.clone());
    if let Some(signature) = forged.signature.as_mut() {
        signature.value[10] ^= 1;
    }
    let status = client.deliver_referral(forged).await.unwrap_err();
    assert_eq!(
        refusal::reason(&status),
        Some(Reason::BadSignature),
        "{status:?}"
    );

    // Another team's signature, and a body naming another sender.
    let mut borrowed = signed_referral(&school, referral.clone());
    borrowed.signature = signature_of(&riverside, "referral", &referral);
    let status = client.deliver_referral(borrowed).await.unwrap_err();
    assert_eq!(
        refusal::reason(&status),
        Some(Reason::SenderMismatch),
        "{status:?}"
    );
    let mut impostor = referral.clone();
    impostor.sender = riverside.identity.uri();
    let status = client
        .deliver_referral(signed_referral(&school, impostor))
        .await
        .unwrap_err();
    assert_eq!(
        refusal::reason(&status),
        Some(Reason::SenderMismatch),
        "{status:?}"
    );

    // A message without its referral.
    let status = client
        .deliver_referral(pb::DeliverReferralRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        refusal::reason(&status),
        Some(Reason::InvalidMessage),
        "{status:?}"
    );

    // The genuine referral goes through; its id again with other content is a replay.
    client
        .deliver_referral(signed_referral(&school, referral.clone()))
        .await
        .unwrap();
    let mut replay = referral.clone();
    replay.justification = "something else entirely".into();
    let status = client
        .deliver_referral(signed_referral(&school, replay))
        .await
        .unwrap_err();
    assert_eq!(
        refusal::reason(&status),
        Some(Reason::ConflictingContent),
        "{status:?}"
    );
    assert!(matches!(classify(&status), DeliveryError::Permanent { .. }));
    // Its details carry the message id and nothing of the referral's content.
    let details = String::from_utf8_lossy(status.details()).into_owned();
    assert!(details.contains(&referral.id), "{details}");
    assert!(!details.contains("something else"), "{details}");

    // A status update about a referral the two do not share.
    let status = client
        .update_status(signed_update(
            &school,
            pb::StatusUpdate {
                id: uuid::Uuid::now_v7().to_string(),
                referral_id: uuid::Uuid::now_v7().to_string(),
                author: school.identity.uri(),
                status: pb::ReferralStatus::Cancelled.into(),
                reason: "withdrawn".into(),
                reason_code: pb::ReasonCode::Other.into(),
                at: Some(prost_types::Timestamp {
                    seconds: 1_790_000_000,
                    nanos: 0,
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refusal::reason(&status),
        Some(Reason::UnknownReferral),
        "{status:?}"
    );
    assert_eq!(inbox_len(&core).await, 1);
    node.shutdown().await;
}

#[tokio::test]
async fn a_peer_certificate_that_fails_to_verify_is_recognised_by_its_type() {
    let (_fed, core, school) = core_and_school();
    let node = start(&core).await;
    // The federation's CA as this sender knew it before a rotation: core's certificate, issued
    // by the new CA, no longer chains to the anchor the sender holds.
    let stale = TestFederation::new("county-mdt.example");
    let mut client = federation_client(&school.dir, &[&stale.ca_path], &school.identity, &core);
    let status = client.hello(pb::HelloRequest::default()).await.unwrap_err();
    assert_eq!(refusal::reason(&status), None, "{status:?}");
    match classify(&status) {
        DeliveryError::Transient {
            certificates,
            reason,
        } => {
            assert!(
                certificates,
                "a certificate failure must ask for a refresh: {reason}"
            )
        }
        other => panic!("a TLS failure must be retried: {other:?}"),
    }
    // A peer that is not listening at all is retried, with no refresh.
    node.shutdown().await;
    let status = client.hello(pb::HelloRequest::default()).await.unwrap_err();
    assert!(
        matches!(
            classify(&status),
            DeliveryError::Transient {
                certificates: false,
                ..
            }
        ),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_handshake_the_peer_refuses_is_recognised_by_its_type() {
    let (fed, core, school) = core_and_school();
    let node = start(&core).await;
    // The school's certificate from a CA that core's federation does not (or no longer) use.
    let other = TestFederation::new("county-mdt.example");
    let dir = tempfile::tempdir().unwrap();
    issue_into(&other.ca, &school.identity, dir.path());
    let mut client = federation_client(dir.path(), &[&fed.ca_path], &school.identity, &core);
    let status = client.hello(pb::HelloRequest::default()).await.unwrap_err();
    // rustls sends decrypt_error for a chain that does not verify. The alert arrives after the
    // handshake, through h2, which keeps only its text; the sender still gets the typed alert.
    assert_eq!(
        tls_error(&status),
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::DecryptError
        )),
        "{status:?}"
    );
    assert!(
        matches!(classify(&status), DeliveryError::Transient { .. }),
        "{status:?}"
    );
    node.shutdown().await;
}
