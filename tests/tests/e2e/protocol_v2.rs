//! Protocol version 2 on the wire, played by hand against a real node: version negotiation,
//! batches verified over the exact bytes that came, one refused message among accepted ones,
//! and the receipt that is the referral's `received` status.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use prost::Message;
use sha2::{Digest, Sha256};
use tatmx_node::merkle;
use tatmx_node::signing;
use tatmx_proto::v1 as pb;
use tatmx_proto::v2 as pb2;
use tatmx_proto::v2::federation_client::FederationClient as FederationV2Client;
use tatmx_tests::*;
use tonic::transport::Channel;

struct Setup {
    fed: TestFederation,
    core: TeamSpec,
    school: TeamSpec,
    riverside: TeamSpec,
}

fn setup() -> Setup {
    let mut fed = TestFederation::new("county-mdt.example");
    let core = fed.team("county-core", "core", "law-enforcement");
    let school = fed.team("lincoln-high", "affiliate", "education");
    let riverside = fed.team("riverside-mh", "affiliate", "mental-health");
    fed.write_config(&core, &[&school, &riverside], "");
    Setup {
        fed,
        core,
        school,
        riverside,
    }
}

/// The school calling the core team's version 2 service by hand.
fn school_v2(s: &Setup) -> FederationV2Client<Channel> {
    FederationV2Client::new(federation_channel(
        &s.school.dir,
        &[&s.fed.ca_path],
        &s.school.identity,
        &s.core,
    ))
}

fn now_ms() -> i64 {
    signing::millis(time::OffsetDateTime::now_utc())
}

/// A batch of `messages` (kind number and exact bytes) from `from` to `to`, signed as the
/// sender's node signs it, and the leaves its root is made of.
fn signed_batch(from: &TeamSpec, to: &TeamSpec, messages: &[(u32, Vec<u8>)]) -> pb2::Batch {
    let leaves: Vec<merkle::Hash> = messages
        .iter()
        .map(|(kind, payload)| merkle::leaf_hash(&signing::message_digest(*kind, payload)))
        .collect();
    let root = merkle::range_hash(&leaves);
    let sent_at_ms = now_ms();
    let signer = signer_of(from);
    let value = signer
        .sign(&signing::batch_payload(
            &from.identity.uri(),
            &to.identity.uri(),
            sent_at_ms,
            &root,
        ))
        .unwrap();
    pb2::Batch {
        messages: messages
            .iter()
            .map(|(kind, payload)| pb2::Envelope {
                kind: *kind as i32,
                payload: payload.clone(),
            })
            .collect(),
        sent_at_ms,
        signature: Some(pb2::Signature {
            scheme: signing::SCHEME_ECDSA_P256_SHA256,
            value,
            certificate_sha256: Sha256::digest(signer.certificate()).to_vec(),
            certificate: signer.certificate().to_vec(),
        }),
        tree_head: None,
    }
}

/// The bytes of a referral as a newer node would send it: a field this build does not know
/// (number 900, a string) after the ones it does.
fn with_future_field(referral: &pb::Referral) -> Vec<u8> {
    let mut bytes = referral.encode_to_vec();
    prost::encoding::string::encode(900, &"a field from a newer version".to_owned(), &mut bytes);
    bytes
}

#[tokio::test]
async fn hello_agrees_on_the_highest_shared_version_and_ignores_unknown_ones() {
    let s = setup();
    let node = start(&s.core).await;
    let mut client = federation_client(
        &s.school.dir,
        &[&s.fed.ca_path],
        &s.school.identity,
        &s.core,
    );
    let hello = |versions: Vec<u32>| pb::HelloRequest {
        protocol_version: versions.iter().copied().max().unwrap_or(1),
        protocol_versions: versions,
    };
    // A node from the future that also speaks 1 and 2 is served at 2.
    let answer = client
        .hello(hello(vec![1, 2, 99]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.protocol_version, 2);
    assert_eq!(answer.protocol_versions, vec![1, 2]);
    // A version 1 node announces no list, and is served at 1.
    let answer = client.hello(hello(vec![])).await.unwrap().into_inner();
    assert_eq!(answer.protocol_version, 1);
    // A node that speaks only versions this one does not is told so, by code.
    let status = client.hello(hello(vec![98, 99])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        tatmx_node::refusal::reason(&status),
        Some(tatmx_node::refusal::Reason::NoCommonVersion)
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_newer_senders_extra_field_verifies_and_is_kept_as_sent() {
    let s = setup();
    let node = start(&s.core).await;
    let referral = outgoing(&s.school, &s.core);
    let bytes = with_future_field(&referral);
    let receipt = school_v2(&s)
        .deliver(signed_batch(&s.school, &s.core, &[(1, bytes.clone())]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        receipt.results[0].outcome,
        pb2::Outcome::Accepted as i32,
        "{receipt:?}"
    );
    // What the core team keeps is the bytes as the school sent them, extra field and all.
    let key = data_key(&s.core, &referral.id).await.expect("a data key");
    let mut db = store_connection(&s.core, false).await;
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT body FROM referrals WHERE id = $1")
        .bind(&referral.id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    let stored =
        tatmx_node::vault::open(&key, &format!("referrals/{}", referral.id), &sealed).unwrap();
    assert_eq!(stored, bytes);
    // And its proof names the digest of those bytes, at its place in the batch.
    let digest: Vec<u8> = sqlx::query_scalar(
        "SELECT digest FROM message_batch_proofs WHERE message_id = $1 AND direction = 'received'",
    )
    .bind(&referral.id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(digest, signing::message_digest(1, &bytes).to_vec());
    sqlx::Connection::close(db).await.unwrap();
    assert_eq!(inbox_len(&s.core).await, 1);
    node.shutdown().await;
}

#[tokio::test]
async fn one_bad_message_is_refused_alone_and_the_receipt_proves_the_rest() {
    let s = setup();
    let node = start(&s.core).await;
    let first = outgoing(&s.school, &s.core);
    // Addressed to another team: the core team must not keep it.
    let misaddressed = outgoing(&s.school, &s.riverside);
    let last = outgoing(&s.school, &s.core);
    let messages = vec![
        (1, first.encode_to_vec()),
        (1, misaddressed.encode_to_vec()),
        (1, last.encode_to_vec()),
        // A kind from a newer version: refused on its own, by code.
        (42, b"whatever a newer kind carries".to_vec()),
    ];
    let batch = signed_batch(&s.school, &s.core, &messages);
    let receipt = school_v2(&s).deliver(batch).await.unwrap().into_inner();
    let outcomes: Vec<i32> = receipt.results.iter().map(|r| r.outcome).collect();
    let (accepted, refused) = (pb2::Outcome::Accepted as i32, pb2::Outcome::Refused as i32);
    assert_eq!(outcomes, vec![accepted, refused, accepted, refused]);
    assert_eq!(receipt.results[1].reason, "WRONG_RECIPIENT");
    assert_eq!(receipt.results[3].reason, "INVALID_MESSAGE");
    assert!(
        receipt.results[3].message.contains("messages[3].kind"),
        "{receipt:?}"
    );
    assert_eq!(inbox_len(&s.core).await, 2);

    // The receipt is the core team's signature over the root of exactly what was sent, and
    // the outcomes; the school can prove each accepted message with its inclusion path.
    let leaves: Vec<merkle::Hash> = messages
        .iter()
        .map(|(kind, payload)| merkle::leaf_hash(&signing::message_digest(*kind, payload)))
        .collect();
    let root = merkle::range_hash(&leaves);
    assert_eq!(receipt.root, root.to_vec());
    let signature = receipt.signature.as_ref().unwrap();
    let outcome_bytes: Vec<u8> = outcomes.iter().map(|o| *o as u8).collect();
    let payload = signing::batch_receipt_payload(
        &s.core.identity.uri(),
        &s.school.identity.uri(),
        receipt.received_at_ms,
        &root,
        &outcome_bytes,
    );
    signing::verify(&signature.certificate, 1, &payload, &signature.value).unwrap();
    let path = merkle::inclusion_proof(&leaves, 2);
    merkle::verify_inclusion(&leaves[2], 2, 4, &path, &root).unwrap();
    // Claiming that a refused message was accepted does not verify.
    let mut claimed = outcome_bytes.clone();
    claimed[1] = 1;
    let forged = signing::batch_receipt_payload(
        &s.core.identity.uri(),
        &s.school.identity.uri(),
        receipt.received_at_ms,
        &root,
        &claimed,
    );
    assert!(signing::verify(&signature.certificate, 1, &forged, &signature.value).is_err());

    // Sent again after a lost receipt, the same batch's messages are duplicates, not new.
    let again = school_v2(&s)
        .deliver(signed_batch(&s.school, &s.core, &messages[..1]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.results[0].outcome, pb2::Outcome::Duplicate as i32);
    assert_eq!(inbox_len(&s.core).await, 2);
    node.shutdown().await;
}

#[tokio::test]
async fn a_batch_whose_signature_does_not_cover_its_bytes_is_refused_whole() {
    let s = setup();
    let node = start(&s.core).await;
    let referral = outgoing(&s.school, &s.core);
    let mut batch = signed_batch(&s.school, &s.core, &[(1, referral.encode_to_vec())]);
    // One byte changed after signing: the root no longer matches the signature.
    batch.messages[0].payload = with_future_field(&referral);
    let status = school_v2(&s).deliver(batch).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(
        tatmx_node::refusal::reason(&status),
        Some(tatmx_node::refusal::Reason::BadSignature)
    );
    // An empty batch, and one signed too long ago, are refused by name too.
    let empty = signed_batch(&s.school, &s.core, &[]);
    let status = school_v2(&s).deliver(empty).await.unwrap_err();
    assert!(status.message().contains("messages"), "{status:?}");
    let mut stale = signed_batch(&s.school, &s.core, &[(1, referral.encode_to_vec())]);
    stale.sent_at_ms -= 3_600_000;
    let status = school_v2(&s).deliver(stale).await.unwrap_err();
    assert_eq!(
        tatmx_node::refusal::reason(&status),
        Some(tatmx_node::refusal::Reason::ClockSkew)
    );
    assert_eq!(inbox_len(&s.core).await, 0);
    node.shutdown().await;
}

#[tokio::test]
async fn between_two_nodes_the_receipt_is_the_received_status_and_no_second_message_is_sent() {
    let (_fed, core, school) = core_and_school();
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &id).await;
    let record = referral_when(&school, &id, "received", |r| {
        r.status == pb::ReferralStatus::Received as i32
    })
    .await;
    assert_eq!(record.status, pb::ReferralStatus::Received as i32);
    // The core team queued nothing back: its receipt was the acknowledgement.
    let mut db = store_connection(&core, false).await;
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(queued, 0);
    sqlx::Connection::close(db).await.unwrap();
    // And the school keeps the batch evidence of its referral, with the receipt.
    let mut db = store_connection(&school, false).await;
    let (size, outcomes): (i64, Vec<u8>) = sqlx::query_as(
        "SELECT b.size, b.outcomes FROM message_batch_proofs m
         JOIN batch_proofs b ON b.id = m.batch
         WHERE m.message_id = $1 AND m.direction = 'sent'",
    )
    .bind(&id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!((size, outcomes), (1, vec![1]));
    sqlx::Connection::close(db).await.unwrap();
    school_node.shutdown().await;
    core_node.shutdown().await;
}
