//! What accountability costs per referral: the audit entries, the message and receipt
//! signatures and the stored proofs, against the same path without them, in the same run.
//!
//! Each iteration carries one referral through both ends' stores, on real SQLite files at the
//! durability the node ships with (WAL, synchronous=FULL): the sender stores and queues it,
//! the receiver stores it and queues its acknowledgement, the sender marks it delivered. With
//! accountability on, the sender also signs it, the receiver verifies that and signs a receipt,
//! the sender verifies the receipt, and both write their audit entries and proofs in the same
//! transactions. The network is left out: it costs the same either way, so the ratio shown is
//! the least favourable one.
//!
//! Run: cargo bench -p tatmx-node --features bench-internals --bench accountability

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sha2::{Digest, Sha256};
use tatmx_node::referral::{ReferralStatus, StatusUpdate};
use tatmx_node::signing::{self, NodeSigner};
use tatmx_node::store::{MessageProof, Store, Submission};
use time::OffsetDateTime;
use uuid::Uuid;

mod common;
use common::{identity, referral};

fn signer(team: &str) -> NodeSigner {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![format!("{team}.example")])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
    let loaded = tatmx_node::tls::provider()
        .key_provider
        .load_private_key(der)
        .expect("signing key");
    NodeSigner::new(loaded, cert.der().clone()).expect("signer")
}

/// The two ends: their stores on disk, their keys.
struct Ends {
    sender: Store,
    receiver: Store,
    sender_key: NodeSigner,
    receiver_key: NodeSigner,
    _dir: tempfile::TempDir,
}

async fn ends() -> Ends {
    let dir = tempfile::tempdir().expect("temp dir");
    Ends {
        sender: Store::open(&dir.path().join("sender.db"))
            .await
            .expect("sender store"),
        receiver: Store::open(&dir.path().join("receiver.db"))
            .await
            .expect("receiver store"),
        sender_key: signer("riverside-mh"),
        receiver_key: signer("county-core"),
        _dir: dir,
    }
}

/// One referral from submission to the sender's record of its delivery.
async fn one_referral(ends: &Ends, accountable: bool) {
    let referral = referral();
    let recipient = identity("county-core");
    ends.sender
        .submit_referral(
            &referral,
            &[],
            &Submission {
                forwarded_from: None,
                subject: Some("CASE-1"),
                actor: "uid 1000",
                idempotency: None,
                references: None,
            },
        )
        .await
        .expect("submit");
    let due = ends
        .sender
        .next_for_peer(&recipient)
        .await
        .expect("outbox")
        .expect("queued");
    let now = OffsetDateTime::now_utc();
    let digest = Sha256::digest(&due.body).to_vec();
    let mut proof = MessageProof {
        message_id: due.message_id,
        kind: "referral",
        peer: recipient.uri(),
        digest: digest.clone(),
        signature: Vec::new(),
        sender_certificate: Vec::new(),
        receipt_signature: None,
        receipt_certificate: None,
        received_at: Some(now),
    };
    if accountable {
        let payload = signing::message_payload("referral", &due.body);
        let signature = ends.sender_key.sign(&payload).expect("sign");
        signing::verify(ends.sender_key.certificate(), 1, &payload, &signature).expect("verify");
        let receipt_payload = signing::receipt_payload(
            &due.message_id.to_string(),
            &digest,
            (now.unix_timestamp_nanos() / 1_000_000) as i64,
        );
        let receipt = ends.receiver_key.sign(&receipt_payload).expect("receipt");
        signing::verify(
            ends.receiver_key.certificate(),
            1,
            &receipt_payload,
            &receipt,
        )
        .expect("verify receipt");
        proof.signature = signature;
        proof.sender_certificate = ends.sender_key.certificate().to_vec();
        proof.receipt_signature = Some(receipt);
        proof.receipt_certificate = Some(ends.receiver_key.certificate().to_vec());
    }
    let ack = StatusUpdate {
        id: Uuid::now_v7(),
        referral_id: referral.id,
        author: recipient.clone(),
        status: ReferralStatus::Received,
        at: now,
        reason: None,
        reason_code: None,
        outcome: None,
        withheld: Vec::new(),
        forwarded_to: None,
    };
    ends.receiver
        .receive_referral(&referral, &ack, now + time::Duration::days(365), &proof)
        .await
        .expect("receive");
    ends.sender
        .mark_delivered(due.seq, &proof)
        .await
        .expect("delivered");
    black_box(proof);
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("one referral through both stores");
    group.sample_size(30);
    let on = runtime.block_on(ends());
    group.bench_function("with audit, signatures and receipts", |b| {
        b.iter(|| runtime.block_on(one_referral(&on, true)));
    });
    // From here on this process writes no audit entries and no proofs.
    tatmx_node::store::disable_accountability_for_benchmarks();
    let off = runtime.block_on(ends());
    group.bench_function("baseline: without them", |b| {
        b.iter(|| runtime.block_on(one_referral(&off, false)));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
