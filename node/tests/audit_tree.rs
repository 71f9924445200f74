//! The audit log's Merkle tree as the store keeps it, against a real database: a temporary
//! SQLite file always, and a fresh PostgreSQL database as well when `TATMX_TEST_POSTGRES`
//! names a server. Every root and every proof the store reads from its stored subtrees must be
//! the one RFC 9162 computes from all the leaves at once (`tatmx_node::merkle`, checked against
//! Certificate Transparency's vectors).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::path::Path;

use tatmx_node::audit::{AuditKind, AuditRecord};
use tatmx_node::audit_tree::entry_leaf;
use tatmx_node::config::Config;
use tatmx_node::merkle::{self, Hash};
use tatmx_node::store::{AuditFilter, Store, StoreLocation};
use tatmx_tests::backend;

/// A store on each backend under test, with the PostgreSQL database to drop afterwards.
struct Stores {
    stores: Vec<Store>,
    _dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl Drop for Stores {
    fn drop(&mut self) {
        if let Some((base, name)) = self.postgres.take() {
            backend::drop_databases(&base, vec![name]);
        }
    }
}

async fn stores() -> Stores {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec![Store::open(&dir.path().join("tree.db")).await.unwrap()];
    let mut postgres = None;
    if let Some(base) = backend::postgres() {
        let (url, name) = backend::create_database(base);
        // A database URL may hold a password, so a location is made only from a config.
        let text = format!(
            r#"
            [node]
            federation = "county-mdt.example"
            team = "county-core"
            role = "core"
            discipline = "law-enforcement"
            data_dir = "data"

            [tls]
            ca = "ca.pem"
            cert = "node.pem"
            key = "node.key"

            [federation_api]
            listen = "127.0.0.1:7443"

            [store]
            url = "{url}"
            "#
        );
        let location: StoreLocation = Config::from_toml(&text, Path::new("."))
            .map_err(|e| format!("{e:?}"))
            .unwrap()
            .store;
        stores.push(Store::open_at(&location).await.unwrap());
        postgres = Some((base.to_owned(), name));
    }
    Stores {
        stores,
        _dir: dir,
        postgres,
    }
}

fn record(n: u64) -> AuditRecord {
    AuditRecord {
        kind: AuditKind::InboxRead,
        actor: "uid 1000".into(),
        peer: None,
        referral_id: None,
        subject: None,
        detail: serde_json::json!({ "referrals_listed": n }),
    }
}

/// Every entry's Merkle leaf, oldest first, recomputed from the entries as the store reads
/// them back.
async fn leaves(store: &Store) -> Vec<Hash> {
    let mut entries = store
        .audit_entries(&AuditFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    entries.reverse();
    entries.iter().map(entry_leaf).collect()
}

#[tokio::test]
async fn stored_roots_and_proofs_are_the_ones_the_whole_tree_gives_for_every_size_to_70() {
    let under_test = stores().await;
    for store in &under_test.stores {
        for n in 1..=70 {
            assert_eq!(store.record_audit(&record(n)).await.unwrap(), n);
        }
        let all = leaves(store).await;
        assert_eq!(all.len(), 70);
        for size in 1..=70u64 {
            let tree = &all[..size as usize];
            assert_eq!(
                store.audit_tree_root(size).await.unwrap(),
                Some(merkle::range_hash(tree)),
                "{:?}: root at {size}",
                store.backend()
            );
            for seq in 1..=size {
                assert_eq!(
                    store.audit_inclusion_proof(seq, size).await.unwrap(),
                    Some(merkle::inclusion_proof(tree, seq - 1)),
                    "{:?}: inclusion of {seq} in {size}",
                    store.backend()
                );
            }
            for old in 0..=size {
                assert_eq!(
                    store.audit_consistency_proof(old, size).await.unwrap(),
                    Some(merkle::consistency_proof(tree, old)),
                    "{:?}: consistency from {old} to {size}",
                    store.backend()
                );
            }
        }
        // Beyond the tree there is nothing to prove.
        assert_eq!(store.audit_tree_root(71).await.unwrap(), None);
        assert_eq!(store.audit_inclusion_proof(3, 71).await.unwrap(), None);
        assert_eq!(store.audit_consistency_proof(3, 71).await.unwrap(), None);
        assert_eq!(store.audit_consistency_proof(9, 8).await.unwrap(), None);
        assert_eq!(store.audit_inclusion_proof(0, 5).await.unwrap(), None);
        store.close().await;
    }
}
