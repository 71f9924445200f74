//! The trust desk's store promises (issue 18) against a real database: a temporary SQLite file
//! always, and a fresh PostgreSQL database as well when `TATMX_TEST_POSTGRES` names a server.
//!
//! A consent's signed form is stored sealed, opened only with its audit entry, and replaced
//! whole; an account's lockout is cleared without new credentials; the audit log filters by
//! actor, time and page the same on both backends.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::path::Path;

use tatmx_node::actor::Actor;
use tatmx_node::config::Config;
use tatmx_node::consent::{Consent, Grantor, Provision, ProvisionKind};
use tatmx_node::staff::StaffRole;
use tatmx_node::store::accounts::{Credentials, LockoutPolicy};
use tatmx_node::store::{AuditFilter, Store, StoreLocation};
use tatmx_tests::backend;
use tempfile::TempDir;
use time::OffsetDateTime;
use uuid::Uuid;

/// One store under test, with what must be cleaned up after it.
struct TestStore {
    store: Store,
    /// Everything in it, as a thief with the database would read it.
    contents: Box<dyn Fn() -> Vec<u8>>,
    _dir: Option<TempDir>,
    postgres: Option<(String, String)>,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some((base, name)) = self.postgres.take() {
            backend::drop_databases(&base, vec![name]);
        }
    }
}

async fn stores() -> Vec<TestStore> {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let mut stores = vec![TestStore {
        store: Store::open(&data.join("tatmx.db")).await.unwrap(),
        contents: Box::new(move || backend::raw_contents(None, &data)),
        _dir: Some(dir),
        postgres: None,
    }];
    if let Some(base) = backend::postgres() {
        let (url, name) = backend::create_database(base);
        let store = Store::open_at(&postgres_location(&url)).await.unwrap();
        let dump = url.clone();
        stores.push(TestStore {
            store,
            contents: Box::new(move || backend::raw_contents(Some(&dump), Path::new("."))),
            _dir: None,
            postgres: Some((base.to_owned(), name)),
        });
    }
    stores
}

fn postgres_location(url: &str) -> StoreLocation {
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
    Config::from_toml(&text, Path::new("."))
        .map_err(|e| format!("{e:?}"))
        .unwrap()
        .store
}

fn consent() -> Consent {
    let now = OffsetDateTime::now_utc();
    Consent {
        id: Uuid::now_v7(),
        subject: "LHS-2026-0117".into(),
        grantor: Grantor::Subject,
        provision: Provision {
            kind: ProvisionKind::Permit,
            categories: vec![],
            recipients: vec![],
            purposes: vec![],
            provisions: vec![],
        },
        valid_from: now,
        valid_until: None,
        revoked_at: None,
        recorded_at: now,
    }
}

#[tokio::test]
async fn a_signed_form_is_sealed_read_only_with_its_audit_entry_and_replaced_whole() {
    for t in stores().await {
        let store = &t.store;
        let ivy = Actor::console("ivy");
        let c = consent();
        store.put_consent(&c, &ivy).await.unwrap();
        assert_eq!(
            store.consent_recorded_by(c.id).await.unwrap().as_deref(),
            Some("console ivy")
        );
        assert!(store.consent_form_info(c.id).await.unwrap().is_none());
        assert!(
            store
                .attach_consent_form(Uuid::now_v7(), "application/pdf", b"%PDF-x", &ivy)
                .await
                .unwrap()
                .is_none(),
            "no form without its consent"
        );

        let first = b"%PDF-1.7 CANARY-FORM-ONE".to_vec();
        let info = store
            .attach_consent_form(c.id, "application/pdf", &first, &ivy)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.size, first.len() as u64);
        assert!(
            !tatmx_tests::contains(&(t.contents)(), b"CANARY-FORM-ONE"),
            "the form is stored sealed"
        );
        let read = store.read_consent_form(c.id, &ivy).await.unwrap().unwrap();
        assert_eq!(read.bytes, first);
        assert_eq!(read.info.attached_by, "console ivy");

        let second = b"\x89PNG\r\n\x1a\nCANARY-FORM-TWO".to_vec();
        store
            .attach_consent_form(c.id, "image/png", &second, &ivy)
            .await
            .unwrap()
            .unwrap();
        let read = store.read_consent_form(c.id, &ivy).await.unwrap().unwrap();
        assert_eq!(read.bytes, second);
        assert_eq!(read.info.content_type, "image/png");

        let entries = store
            .audit_entries(&AuditFilter {
                kind: Some("consent-form-attached"),
                limit: 10,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(entries.len(), 2);
        assert!(
            entries[0].detail.contains(r#""replaced":true"#),
            "{}",
            entries[0].detail
        );
        let reads = store
            .audit_entries(&AuditFilter {
                kind: Some("consent-form-read"),
                limit: 10,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(reads.len(), 2, "every read is on the record");
    }
}

#[tokio::test]
async fn an_unlock_clears_the_lockout_and_keeps_the_credentials() {
    for t in stores().await {
        let store = &t.store;
        let admin = Actor::console("hal");
        let credentials = Credentials {
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
            totp_secret: &[7; 20],
        };
        assert!(
            store
                .add_account("ivy", StaffRole::CaseWorker, &credentials, &admin)
                .await
                .unwrap()
        );
        let policy = LockoutPolicy {
            max_failures: 2,
            lockout: time::Duration::minutes(15),
        };
        store
            .sign_in_failed(Some("ivy"), "wrong", policy)
            .await
            .unwrap();
        let locked = store
            .sign_in_failed(Some("ivy"), "wrong", policy)
            .await
            .unwrap();
        assert!(locked.is_some(), "two failures lock it");
        assert!(
            store
                .account("ivy")
                .await
                .unwrap()
                .unwrap()
                .locked_until
                .is_some()
        );

        let unlocked = store.unlock_account("ivy", &admin).await.unwrap().unwrap();
        assert_eq!(unlocked.locked_until, None);
        assert_eq!(unlocked.failed_logins, 0);
        assert_eq!(unlocked.password_hash, credentials.password_hash);
        assert_eq!(unlocked.totp_secret, credentials.totp_secret);
        assert!(
            store
                .unlock_account("nobody", &admin)
                .await
                .unwrap()
                .is_none()
        );

        let by_hal = store
            .audit_entries(&AuditFilter {
                actors: vec!["console hal".into()],
                limit: 10,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(by_hal.len(), 2, "added and unlocked: {by_hal:?}");
        assert!(by_hal.iter().all(|e| e.actor == "console hal"));
        assert!(by_hal[0].detail.contains("unlocked"));

        // Paging: the second of two, then nothing; a window in the past holds nothing.
        let second = store
            .audit_entries(&AuditFilter {
                actors: vec!["console hal".into(), "console nobody".into()],
                offset: 1,
                limit: 1,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].seq, by_hal[1].seq);
        let before = store
            .audit_entries(&AuditFilter {
                until: Some(OffsetDateTime::UNIX_EPOCH),
                limit: 10,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert!(before.is_empty());
    }
}
