//! The audit log: what it records, that tampering is named, signed receipts, witnessing, and
//! the accounting of disclosures, through real nodes and their real stores.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::time::Duration;

use tatmx_proto::v1 as pb;
use tatmx_tests::*;

const FAST_CHECKPOINTS: &str = "[audit]\ncheckpoint_interval = \"200ms\"\n";

/// A school and a core team that have exchanged a few referrals, both stopped, with signed
/// checkpoints; returns the specs.
async fn history() -> (TestFederation, TeamSpec, TeamSpec, Vec<String>) {
    let (fed, core, school) = core_and_school();
    fed.write_config(&core, &[&school], FAST_CHECKPOINTS);
    fed.write_config(&school, &[&core], FAST_CHECKPOINTS);
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let mut ids = Vec::new();
    for case in ["CASE-A", "CASE-B", "CASE-A"] {
        let mut d = draft("county-core");
        d.case_ref = case.into();
        let id = submit(&mut agency(&school).await, d).await;
        delivered(&school, &id).await;
        ids.push(id);
    }
    // The county reads one, accepts another.
    referral_when(&core, &ids[0], "the referral", |_| true).await;
    agency(&core)
        .await
        .update_referral_status(pb::UpdateReferralStatusRequest {
            referral_id: ids[1].clone(),
            status: pb::ReferralStatus::Accepted.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // The school cancels the third, with a reason: a status update that carries free text.
    agency(&school)
        .await
        .update_referral_status(pb::UpdateReferralStatusRequest {
            referral_id: ids[2].clone(),
            status: pb::ReferralStatus::Cancelled.into(),
            reason: "CANARY-REASON-31 the family moved away".into(),
            reason_code: pb::ReasonCode::OutsideJurisdiction.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    referral_when(&core, &ids[2], "the cancellation", |r| {
        r.status == pb::ReferralStatus::Cancelled as i32
    })
    .await;
    // Once the county has signed a tree head, its receipt for one more message carries it to
    // the school.
    tokio::time::sleep(Duration::from_millis(400)).await;
    agency(&core)
        .await
        .update_referral_status(pb::UpdateReferralStatusRequest {
            referral_id: ids[1].clone(),
            status: pb::ReferralStatus::InAssessment.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let county = core.identity.uri();
    eventually(
        Duration::from_secs(10),
        "the school to witness a tree head",
        || {
            let (school, county) = (school.clone(), county.clone());
            async move {
                let mut db = store_connection(&school, false).await;
                let held: Option<i64> = sqlx::query_scalar(
                    "SELECT tree_size FROM witnessed_tree_heads WHERE peer = $1",
                )
                .bind(county)
                .fetch_optional(&mut db)
                .await
                .ok()?;
                sqlx::Connection::close(db).await.ok();
                held.map(|_| ())
            }
        },
    )
    .await;
    core_node.shutdown().await;
    school_node.shutdown().await;
    (fed, core, school, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_records_every_disclosure_receipt_read_and_refusal_and_no_content() {
    let (_fed, core, school, ids) = history().await;
    let core_node = start(&core).await;
    let school_node = start(&school).await;

    let disclosures = audit_entries(&school, "disclosure").await;
    assert_eq!(disclosures.len(), 3);
    let first = disclosures
        .iter()
        .find(|e| e.referral_id == ids[0])
        .unwrap();
    let detail: serde_json::Value = serde_json::from_str(&first.detail_json).unwrap();
    assert_eq!(first.peer, core.identity.uri());
    assert_eq!(first.subject, "CASE-A");
    assert_eq!(detail["legal_basis"], "serious-imminent-threat");
    assert!(
        detail["categories"].as_array().unwrap().len() >= 2,
        "{detail}"
    );
    assert!(
        first.actor.starts_with("uid "),
        "staff are named by uid: {}",
        first.actor
    );

    let receipts = audit_entries(&core, "receipt").await;
    assert_eq!(receipts.len(), 3);
    assert!(receipts.iter().all(|e| e.peer == school.identity.uri()));
    let reads = audit_entries(&core, "case-read").await;
    assert!(reads.iter().any(|e| e.referral_id == ids[0]), "{reads:?}");
    assert!(!audit_entries(&core, "status-change").await.is_empty());

    // A call the node refuses is on record: who, which method, why.
    let mut client = federation_client(&school.dir, &[&_fed.ca_path], &school.identity, &core);
    let status = client
        .deliver_referral(pb::DeliverReferralRequest {
            referral: Some(outgoing(&school, &core)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("signature"), "{status:?}");
    let refused = audit_entries(&core, "inbound-rejected").await;
    let refusal = refused
        .iter()
        .find(|e| e.detail_json.contains("DeliverReferral"))
        .unwrap();
    assert_eq!(refusal.peer, school.identity.uri());
    assert!(refusal.detail_json.contains("signature"));

    // Nothing of the content is in any entry, at either node.
    for team in [&core, &school] {
        let all = admin(team)
            .await
            .query_audit(pb::QueryAuditRequest {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .entries;
        assert!(all.len() > 5);
        let text = format!("{all:?}");
        assert!(
            !text.contains("CANARY"),
            "content in the audit log of {}",
            team.identity
        );
        assert!(verify(team).await.ok, "{:?}", verify(team).await);
    }
    core_node.shutdown().await;
    school_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accounting_of_disclosures_lists_exactly_what_left_about_a_subject() {
    let (_fed, core, school, ids) = history().await;
    let school_node = start(&school).await;
    let account = |subject: &str| {
        let school = school.clone();
        let subject = subject.to_owned();
        async move {
            admin(&school)
                .await
                .account_disclosures(pb::AccountDisclosuresRequest {
                    subject,
                    since: None,
                })
                .await
                .unwrap()
                .into_inner()
                .disclosures
        }
    };
    let a = account("CASE-A").await;
    let listed: Vec<(&str, &str)> = a
        .iter()
        .map(|d| (d.referral_id.as_str(), d.kind.as_str()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (ids[0].as_str(), "referral"),
            (ids[2].as_str(), "referral"),
            (ids[2].as_str(), "status-update"),
        ]
    );
    assert!(a.iter().all(|d| d.recipient == core.identity.uri()));
    assert_eq!(
        a[0].legal_basis,
        pb::LegalBasis::SeriousImminentThreat as i32
    );
    assert!(
        a[0].categories
            .contains(&(pb::DataCategory::Identity as i32))
    );
    assert!(!a[0].rules.is_empty());
    assert_eq!(a[2].categories, vec![pb::DataCategory::Narrative as i32]);
    let b = account("CASE-B").await;
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].referral_id, ids[1]);
    assert!(account("CASE-NOBODY").await.is_empty());
    let status = admin(&school)
        .await
        .account_disclosures(pb::AccountDisclosuresRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    school_node.shutdown().await;
}

/// An audit row as the attacker reads it: seq, at, kind, actor, peer, referral, subject, detail.
type StoredEntry = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

/// One way to tamper with the stopped node's audit log, and the entry verify must name.
struct Tampering {
    name: &'static str,
    /// Statements; `ZEROS` stands for 32 zero bytes in the backend's dialect.
    sql: &'static [&'static str],
    first_bad: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_the_store_is_named_by_verify() {
    let (_fed, core, _school, _) = history().await;
    let pristine = backend::Snapshot::take(core.database.as_deref(), &core.dir.join("data"));
    let zeros = if core.database.is_some() {
        "decode(repeat('00', 32), 'hex')"
    } else {
        "zeroblob(32)"
    };
    let cases = [
        Tampering {
            name: "edited",
            sql: &["UPDATE audit_log SET detail = detail || ' ' WHERE seq = 3"],
            first_bad: 3,
        },
        Tampering {
            name: "deleted",
            sql: &["DELETE FROM audit_log WHERE seq = 4"],
            first_bad: 4,
        },
        Tampering {
            name: "inserted",
            sql: &[
                "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 3",
                "UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1003",
                "INSERT INTO audit_log (seq, at, kind, actor, peer, referral_id, subject, detail, prev_hash, hash)
                 SELECT 3, at, kind, actor, peer, referral_id, subject, detail, prev_hash, hash FROM audit_log WHERE seq = 2",
            ],
            first_bad: 3,
        },
        Tampering {
            name: "reordered",
            sql: &[
                "UPDATE audit_log SET seq = -1 WHERE seq = 2",
                "UPDATE audit_log SET seq = 2 WHERE seq = 5",
                "UPDATE audit_log SET seq = 5 WHERE seq = -1",
            ],
            first_bad: 2,
        },
        Tampering {
            name: "a forged checkpoint",
            sql: &["UPDATE audit_checkpoints SET head_hash = ZEROS WHERE seq = (SELECT MIN(seq) FROM audit_checkpoints)"],
            first_bad: 0,
        },
    ];
    for case in &cases {
        pristine.restore();
        let mut db = store_connection(&core, true).await;
        for statement in case.sql {
            sqlx::query(&statement.replace("ZEROS", zeros))
                .execute(&mut db)
                .await
                .unwrap();
        }
        sqlx::Connection::close(db).await.unwrap();
        let node = start(&core).await;
        let found = verify(&core).await;
        node.shutdown().await;
        assert!(!found.ok, "{}: {found:?}", case.name);
        if case.first_bad == 0 {
            assert!(found.problem.contains("forged"), "{}: {found:?}", case.name);
        } else {
            assert_eq!(
                found.first_bad_seq, case.first_bad,
                "{}: {found:?}",
                case.name
            );
        }
    }
    // And untouched, it verifies.
    pristine.restore();
    let node = start(&core).await;
    let found = verify(&core).await;
    assert!(found.ok && found.checkpoints > 0, "{found:?}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_keep_signed_proof_of_what_was_sent_and_received() {
    use tatmx_node::{merkle, signing};
    let (_fed, core, school, ids) = history().await;
    // The school's evidence of its referral: its place in the batch it travelled in, the
    // school's signature over the batch and the county's receipt over it.
    let proof_query =
        "SELECT m.digest, m.leaf_index, m.path, b.root, b.size, b.sent_at, b.signature,
                sc.der, b.receipt_signature, rc.der, b.received_at, b.outcomes
         FROM message_batch_proofs m JOIN batch_proofs b ON b.id = m.batch
         JOIN certificates sc ON sc.sha256 = b.sender_certificate
         LEFT JOIN certificates rc ON rc.sha256 = b.receipt_certificate
         WHERE m.message_id = $1 AND m.direction = $2";
    type Row = (
        Vec<u8>,
        i64,
        Vec<u8>,
        Vec<u8>,
        i64,
        i64,
        Vec<u8>,
        Vec<u8>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<i64>,
        Option<Vec<u8>>,
    );
    let mut school_db = store_connection(&school, false).await;
    let sent: Row = sqlx::query_as(proof_query)
        .bind(&ids[0])
        .bind("sent")
        .fetch_one(&mut school_db)
        .await
        .unwrap();
    let (
        digest,
        index,
        path,
        root,
        size,
        sent_at,
        signature,
        sender_der,
        receipt,
        receipt_der,
        received_at,
        outcomes,
    ) = sent;
    let body: Vec<u8> =
        sqlx::query_scalar("SELECT body FROM outbox WHERE message_id = $1 AND kind = 'referral'")
            .bind(&ids[0])
            .fetch_one(&mut school_db)
            .await
            .unwrap();
    // The digest is of the exact bytes sent, and its path leads to the signed root.
    assert_eq!(digest, signing::message_digest(1, &body).to_vec());
    let root: merkle::Hash = root.try_into().unwrap();
    let path: Vec<merkle::Hash> = path.chunks(32).map(|h| h.try_into().unwrap()).collect();
    merkle::verify_inclusion(
        &merkle::leaf_hash(&digest),
        index as u64,
        size as u64,
        &path,
        &root,
    )
    .unwrap();
    let (school_uri, core_uri) = (school.identity.uri(), core.identity.uri());
    let batch = signing::batch_payload(&school_uri, &core_uri, sent_at, &root);
    signing::verify(&sender_der, 1, &batch, &signature).unwrap();
    // The county's receipt proves it received exactly this batch, and accepted this message.
    let (receipt, receipt_der, received_at, outcomes) = (
        receipt.unwrap(),
        receipt_der.unwrap(),
        received_at.unwrap(),
        outcomes.unwrap(),
    );
    assert_eq!(outcomes[index as usize], 1);
    let payload =
        signing::batch_receipt_payload(&core_uri, &school_uri, received_at, &root, &outcomes);
    signing::verify(&receipt_der, 1, &payload, &receipt).unwrap();
    let mut changed = root;
    changed[0] ^= 1;
    let forged =
        signing::batch_receipt_payload(&core_uri, &school_uri, received_at, &changed, &outcomes);
    assert!(signing::verify(&receipt_der, 1, &forged, &receipt).is_err());
    let summary = tatmx_certs::CertificateSummary::from_der(&receipt_der).unwrap();
    assert_eq!(summary.identity.as_ref(), Some(&core.identity));

    // And the county holds the school's signature over the batch, with the same digest.
    let mut core_db = store_connection(&core, false).await;
    let held: Row = sqlx::query_as(proof_query)
        .bind(&ids[0])
        .bind("received")
        .fetch_one(&mut core_db)
        .await
        .unwrap();
    assert_eq!(held.0, digest);
    assert_eq!(held.3, root.to_vec());
    // Its own copy of the batch, which is the same one unless a lost receipt made the school
    // send the referral again.
    let held_batch = signing::batch_payload(&school_uri, &core_uri, held.5, &root);
    signing::verify(&held.7, 1, &held_batch, &held.6).unwrap();
    let summary = tatmx_certs::CertificateSummary::from_der(&held.7).unwrap();
    assert_eq!(summary.identity.as_ref(), Some(&school.identity));
}

/// What an admin with the node's key and its stopped database does to rewrite history: changes
/// entry 2, recomputes every chain hash after it, replaces the checkpoints with one signed
/// with the node's own key, and drops the Merkle tree and its heads, which the node builds and
/// signs again from the rewritten entries when it starts. The node's own verify passes then.
async fn rewrite_history(core: &TeamSpec) {
    let mut db = store_connection(core, true).await;
    let rows: Vec<StoredEntry> =
        sqlx::query_as(
            "SELECT seq, at, kind, actor, peer, referral_id, subject, detail FROM audit_log ORDER BY seq",
        )
        .fetch_all(&mut db)
        .await
        .unwrap();
    let mut head = tatmx_node::audit::GENESIS.to_vec();
    for (seq, at, kind, actor, peer, referral_id, subject, detail) in rows {
        let detail = if seq == 2 {
            format!("{detail} ")
        } else {
            detail
        };
        let leaf = tatmx_node::audit::leaf_hash(
            seq as u64,
            at,
            &kind,
            &actor,
            peer.as_deref(),
            referral_id.as_deref(),
            subject.as_deref(),
            &detail,
        );
        let hash = tatmx_node::audit::chain_hash(&head, &leaf).to_vec();
        sqlx::query("UPDATE audit_log SET detail = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
            .bind(&detail)
            .bind(&head)
            .bind(&hash)
            .bind(seq)
            .execute(&mut db)
            .await
            .unwrap();
        head = hash;
    }
    let last: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM audit_log")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let forged = tatmx_node::audit::Checkpoint::sign(
        &signer_of(core),
        &core.identity.uri(),
        last as u64,
        &head,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    for table in ["audit_checkpoints", "audit_tree", "audit_tree_heads"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut db)
            .await
            .unwrap();
    }
    sqlx::query(
        "INSERT INTO audit_checkpoints (seq, head_hash, at, signer, scheme, signature, certificate)
         VALUES ($1, $2, $3, $4, 1, $5, $6)",
    )
    .bind(last)
    .bind(&forged.head_hash)
    .bind(forged.at_ms)
    .bind(&forged.team)
    .bind(&forged.signature)
    .bind(&forged.certificate)
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::Connection::close(db).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_rewrites_its_history_after_a_delivery_showed_its_tree_head_is_caught() {
    let (mut _fed, core, school, _) = history().await;
    // The school has witnessed a tree head of the county's log, shown with a receipt.
    let mut db = store_connection(&school, false).await;
    let held: i64 =
        sqlx::query_scalar("SELECT tree_size FROM witnessed_tree_heads WHERE peer = $1")
            .bind(core.identity.uri())
            .fetch_one(&mut db)
            .await
            .unwrap();
    sqlx::Connection::close(db).await.unwrap();
    assert!(held > 0);

    // The county's admin rewrites an early entry, recomputes every hash after it, drops the
    // old checkpoints and signs a new one with the county's own key: its own verify passes.
    rewrite_history(&core).await;

    let metrics_port = _fed.port();
    _fed.write_config(
        &school,
        &[&core],
        &format!("{FAST_CHECKPOINTS}\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"),
    );
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    assert!(
        verify(&core).await.ok,
        "the rewrite fools the county's own check"
    );
    // Once the county has signed a head over its rewritten log, the receipt of the next
    // delivery shows it to the school; until then, each try sends one more referral.
    let conflicts = eventually(Duration::from_secs(15), "the witness to notice", || {
        let school = school.clone();
        async move {
            let status = admin(&school)
                .await
                .trust_status(pb::TrustStatusRequest {})
                .await
                .ok()?
                .into_inner();
            if status.witness_conflicts.is_empty() {
                submit(&mut agency(&school).await, draft("county-core")).await;
                return None;
            }
            Some(status.witness_conflicts)
        }
    })
    .await;
    assert_eq!(conflicts[0].peer, core.identity.uri());
    assert_eq!(conflicts[0].held_seq, held as u64);
    // And the metric says so.
    let metrics = scrape_metrics(metrics_port).await;
    let count: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tatmx_witness_conflicts_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(count >= 1.0, "{metrics}");
    core_node.shutdown().await;
    school_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_retention_removes_old_entries_and_the_chain_still_verifies() {
    let (fed, core, school) = core_and_school();
    fed.write_config(
        &core,
        &[&school],
        "[audit]\ncheckpoint_interval = \"100ms\"\nretention = \"1s\"\n",
    );
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &id).await;
    eventually(Duration::from_secs(15), "old entries to be removed", || {
        let core = core.clone();
        async move {
            // Staff keep working, so the log keeps growing past the old entries.
            inbox_len(&core).await;
            let removed = audit_entries(&core, "audit-retention").await;
            (!removed.is_empty()).then_some(())
        }
    })
    .await;
    assert!(
        audit_entries(&core, "receipt").await.is_empty(),
        "the receipt entry is past retention"
    );
    let found = verify(&core).await;
    assert!(found.ok, "{found:?}");
    core_node.shutdown().await;
    school_node.shutdown().await;
}

/// The newest signed checkpoint of `team`'s audit log: its seq and its time in milliseconds.
async fn latest_checkpoint(team: &TeamSpec) -> Option<(i64, i64)> {
    let mut db = store_connection(team, false).await;
    let latest = sqlx::query_as("SELECT seq, at FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut db)
        .await
        .unwrap();
    sqlx::Connection::close(db).await.ok();
    latest
}

#[tokio::test]
async fn a_checkpoint_comes_due_on_the_node_clock_and_carries_its_time() {
    let (_fed, _core, school) = core_and_school();
    let started = time::OffsetDateTime::now_utc();
    let node = start_with_clock(&school, tatmx_node::clock::Clock::tokio(started)).await;
    submit(&mut agency(&school).await, draft("county-core")).await;
    // The default interval is five minutes: nothing is signed yet.
    assert_eq!(latest_checkpoint(&school).await, None);

    skip_ahead(Duration::from_secs(5 * 60 + 1)).await;
    let (seq, at_ms) = eventually(Duration::from_secs(10), "a checkpoint", || {
        latest_checkpoint(&school)
    })
    .await;
    assert!(seq > 0);
    let due = started + time::Duration::minutes(5);
    assert!(
        at_ms >= (due.unix_timestamp_nanos() / 1_000_000) as i64,
        "the checkpoint is dated by the node's clock, five minutes on: {at_ms}"
    );
    node.shutdown().await;
}

// ---- the Merkle tree (protocol version 2) ----

/// The size of the newest signed tree head of `team`'s audit log, if any.
async fn latest_tree_size(team: &TeamSpec) -> Option<u64> {
    let mut db = store_connection(team, false).await;
    let size: Option<i64> = sqlx::query_scalar("SELECT MAX(tree_size) FROM audit_tree_heads")
        .fetch_one(&mut db)
        .await
        .unwrap();
    sqlx::Connection::close(db).await.ok();
    size.map(|s| s as u64)
}

/// The size of `peer`'s tree head that `team` witnessed, if any.
async fn witnessed_tree_size(team: &TeamSpec, peer: &TeamSpec) -> Option<u64> {
    let mut db = store_connection(team, false).await;
    let size: Option<i64> =
        sqlx::query_scalar("SELECT tree_size FROM witnessed_tree_heads WHERE peer = $1")
            .bind(peer.identity.uri())
            .fetch_optional(&mut db)
            .await
            .unwrap();
    sqlx::Connection::close(db).await.ok();
    size.map(|s| s as u64)
}

/// Waits until `team` has signed a tree head over more than `than` entries, and returns the
/// newest as its node would show it.
async fn tree_head_after(
    node: &tatmx_node::RunningNode,
    team: &TeamSpec,
    than: u64,
) -> tatmx_proto::v2::SignedTreeHead {
    eventually(Duration::from_secs(10), "a newer tree head", || async {
        let size = latest_tree_size(team).await?;
        let shown = node.witness().own_tree_head().await?;
        (size > than && shown.tree_size == size).then_some(shown)
    })
    .await
}

/// Hands `to`'s witness the tree head `from` shows, as a version 2 batch or receipt carries it
/// (the batch path hands it over so), and waits until it is witnessed at that size.
async fn witnessed(
    to: (&tatmx_node::RunningNode, &TeamSpec),
    from: (&tatmx_node::RunningNode, &TeamSpec),
    than: u64,
) -> u64 {
    let head = tree_head_after(from.0, from.1, than).await;
    let size = head.tree_size;
    to.0.witness()
        .observe_tree_head(&from.1.identity, Some(head));
    eventually(
        Duration::from_secs(10),
        "the tree head to be witnessed",
        || {
            let (team, peer) = (to.1.clone(), from.1.clone());
            async move { (witnessed_tree_size(&team, &peer).await? == size).then_some(()) }
        },
    )
    .await;
    size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_witness_each_others_tree_heads_through_consistency_proofs() {
    let (fed, core, school) = core_and_school();
    fed.write_config(&core, &[&school], FAST_CHECKPOINTS);
    fed.write_config(&school, &[&core], FAST_CHECKPOINTS);
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &id).await;

    // Each keeps the first head it is shown of the other's log.
    let county_first = witnessed((&school_node, &school), (&core_node, &core), 0).await;
    let school_first = witnessed((&core_node, &core), (&school_node, &school), 0).await;

    // Both logs grow; each newer head is checked against the one held by a proof from the
    // peer, and replaces it.
    for _ in 0..3 {
        inbox_len(&core).await;
        inbox_len(&school).await;
    }
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &id).await;
    let county_next = witnessed((&school_node, &school), (&core_node, &core), county_first).await;
    let school_next = witnessed((&core_node, &core), (&school_node, &school), school_first).await;
    assert!(county_next > county_first && school_next > school_first);
    for team in [&core, &school] {
        let status = admin(team)
            .await
            .trust_status(pb::TrustStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(status.witness_conflicts.is_empty(), "{status:?}");
    }

    // The proof the county gives is RFC 9162's, O(log n) hashes, and checks against its
    // signed heads by anyone's code.
    let channel = federation_channel(&school.dir, &[&fed.ca_path], &school.identity, &core);
    let mut county = tatmx_proto::v2::federation_client::FederationClient::new(channel);
    let first_root: Vec<u8> = {
        let head = county
            .get_audit_consistency(tatmx_proto::v2::AuditConsistencyRequest {
                from_size: 0,
                to_size: county_first,
            })
            .await
            .unwrap()
            .into_inner()
            .tree_head
            .unwrap();
        assert_eq!(head.tree_size, county_first);
        head.root_hash
    };
    let proof = county
        .get_audit_consistency(tatmx_proto::v2::AuditConsistencyRequest {
            from_size: county_first,
            to_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let newest = proof.tree_head.unwrap();
    assert!(newest.tree_size >= county_next);
    let path: Vec<[u8; 32]> = proof
        .path
        .iter()
        .map(|h| h.as_slice().try_into().unwrap())
        .collect();
    assert!(path.len() <= 2 * 64);
    tatmx_node::merkle::verify_consistency(
        county_first,
        newest.tree_size,
        &first_root.try_into().unwrap(),
        &newest.root_hash.clone().try_into().unwrap(),
        &path,
    )
    .unwrap();
    let head = tatmx_node::convert::tree_head_from_proto(newest).unwrap();
    head.signature_holds().unwrap();
    assert_eq!(head.team, core.identity.uri());

    // A reversed range, or one beyond what the county signed, is refused by its code.
    let reversed = county
        .get_audit_consistency(tatmx_proto::v2::AuditConsistencyRequest {
            from_size: 5,
            to_size: 2,
        })
        .await
        .unwrap_err();
    assert_eq!(
        tatmx_node::refusal::reason(&reversed),
        Some(tatmx_node::refusal::Reason::AuditRangeInvalid)
    );
    let beyond = county
        .get_audit_consistency(tatmx_proto::v2::AuditConsistencyRequest {
            from_size: 1,
            to_size: 1_000_000,
        })
        .await
        .unwrap_err();
    assert_eq!(
        tatmx_node::refusal::reason(&beyond),
        Some(tatmx_node::refusal::Reason::AuditRangeMissing)
    );
    core_node.shutdown().await;
    school_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_rewrites_its_history_after_a_tree_head_was_witnessed_is_caught() {
    let (fed, core, school) = core_and_school();
    fed.write_config(&core, &[&school], FAST_CHECKPOINTS);
    fed.write_config(&school, &[&core], FAST_CHECKPOINTS);
    let core_node = start(&core).await;
    let school_node = start(&school).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &id).await;
    // The rewrite changes entry 2: the head the school holds covers it.
    inbox_len(&core).await;
    let held = witnessed((&school_node, &school), (&core_node, &core), 1).await;

    // The county rewrites entry 2 and everything that hashes it, tree included, re-signed
    // with its own key; its own check passes.
    core_node.shutdown().await;
    rewrite_history(&core).await;
    let core_node = start(&core).await;
    assert!(
        verify(&core).await.ok,
        "the rewrite fools the county's own check"
    );
    // Its staff go on working, so its log grows past the head the school holds; the next
    // batch shows the school the new head, and no version 1 message is involved.
    for _ in 0..3 {
        inbox_len(&core).await;
    }
    let shown = tree_head_after(&core_node, &core, held).await;
    school_node
        .witness()
        .observe_tree_head(&core.identity, Some(shown.clone()));
    let conflicts = eventually(Duration::from_secs(15), "the witness to notice", || {
        let school = school.clone();
        async move {
            let status = admin(&school)
                .await
                .trust_status(pb::TrustStatusRequest {})
                .await
                .ok()?
                .into_inner();
            (!status.witness_conflicts.is_empty()).then_some(status.witness_conflicts)
        }
    })
    .await;
    assert_eq!(conflicts[0].peer, core.identity.uri());
    assert_eq!(conflicts[0].held_seq, held);
    assert_eq!(conflicts[0].shown_seq, shown.tree_size);
    assert!(
        conflicts[0].problem.contains("tree does not extend"),
        "{conflicts:?}"
    );
    // The school still holds the head it witnessed first.
    assert_eq!(witnessed_tree_size(&school, &core).await, Some(held));
    core_node.shutdown().await;
    school_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disclosure_is_proven_in_the_signed_log_and_a_tampered_one_is_not() {
    let (fed, _core, school) = core_and_school();
    fed.write_config(&school, &[&_core], FAST_CHECKPOINTS);
    let core_node = start(&_core).await;
    let school_node = start(&school).await;
    let id = submit(&mut agency(&school).await, draft("county-core")).await;
    delivered(&school, &id).await;
    let prove = |disclosure: String| {
        let school = school.clone();
        async move {
            admin(&school)
                .await
                .prove_disclosure(pb::ProveDisclosureRequest { disclosure })
                .await
                .map(tonic::Response::into_inner)
        }
    };
    // Once a tree head covers the disclosure, the node proves it by the referral's id and by
    // the entry's number alike.
    let proof = eventually(Duration::from_secs(10), "a signed head over it", || {
        let attempt = prove(id.clone());
        async move { attempt.await.ok() }
    })
    .await;
    let checked = tatmx_node::convert::inclusion_proof_from_proto(proof.clone()).unwrap();
    checked.check().unwrap();
    assert_eq!(checked.entry.kind, "disclosure");
    assert_eq!(checked.entry.referral_id.as_deref(), Some(id.as_str()));
    assert_eq!(checked.head.team, school.identity.uri());
    let seq = checked.entry.seq;
    let by_seq = prove(seq.to_string()).await.unwrap();
    assert_eq!(by_seq.entry, proof.entry);
    // A proof of another entry's leaf does not prove this one.
    let mut moved = checked.clone();
    moved.entry.seq += 1;
    assert!(moved.check().is_err());
    // Not a disclosure, not an id: refused by name.
    let not_an_id = prove("nonsense".into()).await.unwrap_err();
    assert_eq!(not_an_id.code(), tonic::Code::InvalidArgument);

    // Someone with the database edits the disclosure's entry: the proof no longer holds.
    school_node.shutdown().await;
    let mut db = store_connection(&school, true).await;
    sqlx::query(
        "UPDATE audit_log SET detail = replace(detail, 'referral', 'forward') WHERE seq = $1",
    )
    .bind(seq as i64)
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::Connection::close(db).await.unwrap();
    let school_node = start(&school).await;
    let tampered = prove(seq.to_string()).await.unwrap();
    let problem = tatmx_node::convert::inclusion_proof_from_proto(tampered)
        .unwrap()
        .check()
        .unwrap_err();
    assert!(
        problem
            .to_string()
            .contains("was changed after it was written"),
        "{problem}"
    );
    let found = verify(&school).await;
    assert!(!found.ok && found.first_bad_seq == seq, "{found:?}");
    school_node.shutdown().await;
    core_node.shutdown().await;
}
