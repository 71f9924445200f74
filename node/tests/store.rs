//! The store's public API against a real database: a temporary SQLite file always, and a fresh
//! PostgreSQL database as well when `TATMX_TEST_POSTGRES` names a server (as `.ci/run` sets it).
//!
//! These are the store's own promises, below the services: a submission is stored and queued
//! at once and only once, a delivery is claimed and settled, a received message is stored once
//! and a different message under its id is refused, a purge leaves nothing to read, dead
//! letters are found however old they are, and a case message is sent or kept only when the
//! case allows it, sealed, and purged with its referral. They live here, as an integration test, because
//! they use only what the rest of the node uses (`tatmx_node::store`), and because the
//! harness's `backend` module already knows how to make and drop a PostgreSQL database.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns; a panic is the failure report

use std::path::Path;

use sqlx::{AnyConnection, Connection};
use tatmx_certs::{CertificateAuthority, NodeKey, TeamIdentity};
use tatmx_node::actor::Actor;
use tatmx_node::case_message::{
    CaseBody, CaseMessage, CaseRefusal, InformationKind, Intervention, InterventionCode, Plan,
};
use tatmx_node::category::DataCategory;
use tatmx_node::config::Config;
use tatmx_node::filter::{self, CaseDisclosure, CaseKey, Disclosure};
use tatmx_node::lifecycle::Side;
use tatmx_node::notification::Event;
use tatmx_node::policy::{Exchange, Policy};
use tatmx_node::received::{Receivable, Received, SenderChecked};
use tatmx_node::referral::{
    AssessmentOutcome, LegalBasis, LevelOfConcern, Narrative, Purpose, Referral, ReferralContent,
    ReferralStatus, StatusUpdate,
};
use tatmx_node::retraction::PurgeCause;
use tatmx_node::signing;
use tatmx_node::store::{
    Backend, DeliveryState, Direction, Inbound, MessageKind, MessageProof, Store, StoreLocation,
    Submission, Submitted,
};
use tatmx_node::team::{Discipline, LocalTeam, Peer, Role};
use tatmx_node::tls::Credentials;
use tatmx_tests::backend;
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// One store under test, with what must be cleaned up after it.
struct TestStore {
    /// The store.
    store: Store,
    /// Where it lives, for reading its tables directly.
    url: String,
    /// The SQLite file's directory, removed when the test ends.
    _dir: Option<TempDir>,
    /// The PostgreSQL server and database to drop when the test ends.
    postgres: Option<(String, String)>,
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some((base, name)) = self.postgres.take() {
            backend::drop_databases(&base, vec![name]);
        }
    }
}

impl TestStore {
    /// A connection straight to the store's database, to check what is (not) left in it.
    async fn raw(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        AnyConnection::connect(&self.url).await.unwrap()
    }

    /// How many rows `sql` (a `SELECT COUNT(*) ... $1`) counts for `id`.
    async fn count(&self, sql: &str, id: Uuid) -> i64 {
        let mut connection = self.raw().await;
        let n = sqlx::query_scalar(sql)
            .bind(id.to_string())
            .fetch_one(&mut connection)
            .await
            .unwrap();
        connection.close().await.ok();
        n
    }
}

/// A new store on each backend under test: SQLite, and PostgreSQL when it is configured.
async fn stores() -> Vec<TestStore> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tatmx.db");
    let mut stores = vec![TestStore {
        store: Store::open(&file).await.unwrap(),
        url: format!("sqlite://{}?mode=rw", file.display()),
        _dir: Some(dir),
        postgres: None,
    }];
    if let Some(base) = backend::postgres() {
        let (url, name) = backend::create_database(base);
        let store = Store::open_at(&postgres_location(&url)).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        stores.push(TestStore {
            store,
            url,
            _dir: None,
            postgres: Some((base.to_owned(), name)),
        });
    }
    stores
}

/// A PostgreSQL location, made the way a node makes one: from its config. (A database URL may
/// hold a password, so its type has no other public way in.)
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

fn team(name: &str) -> TeamIdentity {
    TeamIdentity::parse_uri(&format!("spiffe://county-mdt.example/team/{name}")).unwrap()
}

/// A small referral from `sender` to `recipient`: one narrative, on the serious-and-imminent-
/// threat basis, which the default policy lets reach a core team.
fn referral(sender: &str, recipient: &str) -> Referral {
    Referral {
        id: Uuid::now_v7(),
        sender: team(sender),
        recipient: team(recipient),
        created_at: OffsetDateTime::now_utc(),
        purpose: Purpose::ThreatAssessment,
        level_of_concern: None,
        legal_basis: LegalBasis::SeriousImminentThreat,
        justification: Some("A specific plan against named classmates, this week.".into()),
        consent_ref: None,
        content: ReferralContent {
            narrative: Some(Narrative {
                text: "A teacher overheard a specific plan.".into(),
            }),
            ..ReferralContent::default()
        },
        labels: Default::default(),
        withheld: Vec::new(),
        case_handle: None,
        consultation: None,
        provenance: Vec::new(),
        consent_scope: None,
    }
}

/// The recipient's `received` acknowledgement of `referral`.
fn received(referral: &Referral) -> StatusUpdate {
    StatusUpdate {
        id: Uuid::now_v7(),
        referral_id: referral.id,
        author: referral.recipient.clone(),
        status: ReferralStatus::Received,
        at: OffsetDateTime::now_utc(),
        reason: None,
        reason_code: None,
        outcome: None,
        withheld: Vec::new(),
        forwarded_to: None,
    }
}

/// A node of `identity`'s team, with a key and a certificate `ca` issued for it, as
/// `tatmx node init` and `tatmx ca sign` make them.
fn node(ca: &CertificateAuthority, identity: &TeamIdentity) -> Credentials {
    let key = NodeKey::generate(identity).unwrap();
    let issued = ca.sign_csr(&key.csr_pem, identity.team.clone(), 1).unwrap();
    Credentials::from_pem(&issued.cert_pem, &key.key_pem, identity, "test").unwrap()
}

/// `referral` as the Federation server hands it to the store: decoded from the bytes its
/// sender signed, with its sender checked, its signature verified and the recipient's receipt
/// signed, by keys a test federation's CA certified. The store takes a received message in no
/// other form.
fn as_received(referral: &Referral) -> Received<Referral> {
    let ca = CertificateAuthority::create(referral.sender.federation.clone(), 1).unwrap();
    let (sender, recipient) = (node(&ca, &referral.sender), node(&ca, &referral.recipient));
    let bytes = tatmx_node::wire::encode_referral(referral);
    let signature = sender
        .signer()
        .sign(&signing::message_payload(
            MessageKind::Referral.as_str(),
            &bytes,
        ))
        .unwrap();
    SenderChecked::<Referral>::decode(bytes, &referral.sender)
        .unwrap()
        .verify_signature(
            sender.signer().certificate().to_vec(),
            signing::SCHEME_ECDSA_P256_SHA256,
            signature,
        )
        .unwrap()
        .receipt(recipient.signer(), OffsetDateTime::now_utc())
        .unwrap()
}

/// The evidence kept beside a message sent and delivered. The store keeps it as given; the
/// delivery worker checks the receipt before it gets here.
fn proof(message_id: Uuid, kind: MessageKind, peer: &TeamIdentity) -> MessageProof {
    MessageProof {
        message_id,
        kind: kind.as_str(),
        peer: peer.uri(),
        digest: vec![7; 32],
        signature: vec![1; 64],
        sender_certificate: vec![2; 16],
        receipt_signature: Some(vec![3; 64]),
        receipt_certificate: Some(vec![4; 16]),
        received_at: Some(OffsetDateTime::now_utc()),
        batch: None,
    }
}

/// The actor of every submission here.
static CASE_WORKER: std::sync::LazyLock<Actor> =
    std::sync::LazyLock::new(|| Actor::staff(Some(1000), Some("case-worker")));

fn submission(key: &'static str, draft: &'static str) -> Submission<'static> {
    Submission {
        forwarded_from: None,
        subject: None,
        actor: &CASE_WORKER,
        idempotency: Some((key, draft)),
        references: None,
    }
}

fn plain_submission() -> Submission<'static> {
    Submission {
        forwarded_from: None,
        subject: None,
        actor: &CASE_WORKER,
        idempotency: None,
        references: None,
    }
}

/// `referral` through the real filter, with the default policy, from a mental-health team to
/// a law-enforcement core team: the store takes nothing else. Returns the disclosure and what
/// it sends.
fn disclosed(referral: Referral) -> (Disclosure, Referral) {
    let policy = Policy::default_pack().unwrap();
    let recipient = Peer {
        identity: referral.recipient.clone(),
        endpoint: "https://127.0.0.1:1".parse().unwrap(),
        role: Role::Core,
        discipline: Discipline::LawEnforcement,
        jurisdiction: String::new(),
        cjis_authorized: true,
    };
    let local = LocalTeam {
        identity: referral.sender.clone(),
        role: Role::Affiliate,
        discipline: Discipline::MentalHealth,
        jurisdiction: String::new(),
        cjis_authorized: false,
    };
    let exchange = Exchange {
        sender: filter::local_party(&local, &referral.sender),
        recipient: filter::party_of_peer(&recipient),
        purpose: referral.purpose,
        basis: referral.legal_basis,
        justified: filter::justified(referral.justification.as_deref()),
        reidentify: false,
    };
    let keys = TempDir::new().unwrap();
    let case_key = CaseKey::load_or_create(&keys.path().join("case.key")).unwrap();
    let disclosure = filter::filter_outbound(
        &policy, &exchange, &recipient, None, &case_key, None, referral,
    );
    let sent = disclosure.outgoing().clone();
    (disclosure, sent)
}

#[tokio::test]
async fn a_submission_is_stored_and_queued_once() {
    for t in stores().await {
        let store = &t.store;
        let (sent_disclosure, sent) = disclosed(referral("riverside-mh", "county-core"));
        let first = store
            .submit_referral(&sent_disclosure, &submission("key-1", "draft-a"))
            .await
            .unwrap();
        assert_eq!(first, Submitted::New);
        let (stored, timeline) = store.referral(sent.id).await.unwrap().unwrap();
        assert_eq!(stored.referral, sent);
        assert_eq!(stored.direction, Direction::Outbound);
        assert_eq!(stored.status, ReferralStatus::Sent);
        assert_eq!(timeline.len(), 1);
        let queued = store.outbox_entry(sent.id).await.unwrap().unwrap();
        assert_eq!(queued.kind, MessageKind::Referral);
        assert_eq!(queued.state, DeliveryState::Pending);
        assert_eq!(queued.peer, sent.recipient.uri());

        // The same key and draft again, even as a new referral, names the first one.
        let (again_disclosure, again) = disclosed(referral("riverside-mh", "county-core"));
        let resubmitted = store
            .submit_referral(&again_disclosure, &submission("key-1", "draft-a"))
            .await
            .unwrap();
        assert_eq!(resubmitted, Submitted::Earlier(sent.id));
        // The same key for another draft is refused.
        let reused = store
            .submit_referral(&again_disclosure, &submission("key-1", "draft-b"))
            .await
            .unwrap();
        assert_eq!(reused, Submitted::KeyReused);
        assert_eq!(store.count_referrals(Direction::Outbound).await.unwrap(), 1);
        assert!(store.outbox_entry(again.id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_queued_message_is_claimed_then_settled_by_its_acknowledgement() {
    for t in stores().await {
        let store = &t.store;
        let (sent_disclosure, sent) = disclosed(referral("riverside-mh", "county-core"));
        store
            .submit_referral(&sent_disclosure, &submission("key-1", "draft-a"))
            .await
            .unwrap();
        let window = store.queued_for_peer(&sent.recipient, 10).await.unwrap();
        assert_eq!(window.len(), 1);
        assert_eq!(window[0].message_id, sent.id);
        assert_eq!(window[0].body, tatmx_node::wire::encode_referral(&sent));
        let seqs = [window[0].seq];
        let until = OffsetDateTime::now_utc() + Duration::minutes(1);
        assert_eq!(
            store.claim(&seqs, "replica-a", until).await.unwrap(),
            seqs.to_vec()
        );
        if store.backend() == Backend::Postgres {
            // Another replica finds it held; the holder may claim it again.
            assert!(
                store
                    .claim(&seqs, "replica-b", until)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(
                store.claim(&seqs, "replica-a", until).await.unwrap(),
                seqs.to_vec()
            );
        }

        store
            .mark_delivered(
                seqs[0],
                &proof(sent.id, MessageKind::Referral, &sent.recipient),
            )
            .await
            .unwrap();
        let delivered = store.outbox_entry(sent.id).await.unwrap().unwrap();
        assert_eq!(delivered.state, DeliveryState::Delivered);
        assert_eq!(delivered.attempts, 1);
        assert!(delivered.delivered_at.is_some());
        assert!(
            store
                .queued_for_peer(&sent.recipient, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // Once settled, nobody can claim it.
        if store.backend() == Backend::Postgres {
            assert!(
                store
                    .claim(&seqs, "replica-a", until)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }
}

#[tokio::test]
async fn a_received_referral_is_stored_once_and_a_different_one_under_its_id_is_refused() {
    for t in stores().await {
        let store = &t.store;
        let delivered = referral("riverside-mh", "county-core");
        let ack = received(&delivered);
        let keep_until = OffsetDateTime::now_utc() + Duration::days(30);
        let first = store
            .receive_referral(&as_received(&delivered), Some(&ack), keep_until)
            .await
            .unwrap();
        assert_eq!(first, Inbound::Stored);
        let inbox = store.inbox(10).await.unwrap();
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0].referral, delivered);
        assert_eq!(inbox[0].status, ReferralStatus::Received);
        let acknowledgement = store.outbox_entry(ack.id).await.unwrap().unwrap();
        assert_eq!(acknowledgement.kind, MessageKind::StatusUpdate);
        assert_eq!(acknowledgement.peer, delivered.sender.uri());

        // The sender's retry of the same message changes nothing, not even its ack.
        let replay = store
            .receive_referral(
                &as_received(&delivered),
                Some(&received(&delivered)),
                keep_until,
            )
            .await
            .unwrap();
        assert_eq!(replay, Inbound::Duplicate);
        // Different content under the same id is refused, and the first content stays.
        let mut altered = delivered.clone();
        altered.justification = Some("Another account of the plan, from a parent.".into());
        let conflict = store
            .receive_referral(
                &as_received(&altered),
                Some(&received(&altered)),
                keep_until,
            )
            .await
            .unwrap();
        assert_eq!(conflict, Inbound::Conflict);
        assert_eq!(store.count_referrals(Direction::Inbound).await.unwrap(), 1);
        let (kept, _) = store.referral(delivered.id).await.unwrap().unwrap();
        assert_eq!(kept.referral, delivered);
        assert_eq!(
            t.count(
                "SELECT COUNT(*) FROM outbox WHERE referral_id = $1",
                delivered.id
            )
            .await,
            1
        );
        // Staff hear of it once, whatever the sender retried: by ids and the team alone.
        let notifications = store.notifications(10).await.unwrap();
        assert_eq!(notifications.len(), 1, "{notifications:?}");
        assert_eq!(notifications[0].event, Event::ReferralReceived);
        assert_eq!(notifications[0].referral_id, delivered.id);
        assert_eq!(notifications[0].team, delivered.sender.uri());
    }
}

#[tokio::test]
async fn purging_an_expired_referral_removes_its_body_and_its_data_key() {
    for t in stores().await {
        let store = &t.store;
        let now = OffsetDateTime::now_utc();
        let expiring = referral("riverside-mh", "county-core");
        let kept = referral("riverside-mh", "county-core");
        for (referral, until) in [
            (&expiring, now + Duration::hours(1)),
            (&kept, now + Duration::days(30)),
        ] {
            store
                .receive_referral(&as_received(referral), Some(&received(referral)), until)
                .await
                .unwrap();
        }
        let key = "SELECT COUNT(*) FROM data_keys WHERE id = $1";
        assert_eq!(t.count(key, expiring.id).await, 1);

        // Nothing is due yet; two hours on, one is.
        assert_eq!(store.purge_expired(now).await.unwrap(), 0);
        assert_eq!(
            store.purge_expired(now + Duration::hours(2)).await.unwrap(),
            1
        );

        assert!(store.referral(expiring.id).await.unwrap().is_none());
        assert_eq!(
            t.count("SELECT COUNT(*) FROM referrals WHERE id = $1", expiring.id)
                .await,
            0
        );
        assert_eq!(t.count(key, expiring.id).await, 0);
        // Its acknowledgement's body is emptied too, sent or not.
        assert_eq!(
            t.count(
                "SELECT COUNT(*) FROM outbox WHERE referral_id = $1 AND LENGTH(body) > 0",
                expiring.id
            )
            .await,
            0
        );
        let tombstone = store.tombstone(expiring.id).await.unwrap().unwrap();
        assert_eq!(tombstone.cause, PurgeCause::Retention);
        assert!(tombstone.inbound);
        // The other referral is untouched.
        assert!(store.referral(kept.id).await.unwrap().is_some());
        assert_eq!(t.count(key, kept.id).await, 1);
        // Purging again finds nothing more.
        assert_eq!(
            store.purge_expired(now + Duration::hours(2)).await.unwrap(),
            0
        );
    }
}

#[tokio::test]
async fn a_dead_letter_is_listed_however_many_messages_came_after_it() {
    for t in stores().await {
        let store = &t.store;
        let (dead_disclosure, dead) = disclosed(referral("riverside-mh", "lincoln-high"));
        store
            .submit_referral(&dead_disclosure, &plain_submission())
            .await
            .unwrap();
        let seq = store.next_for_peer(&dead.recipient).await.unwrap().unwrap();
        assert!(store.mark_dead(seq.seq, "refused", true).await.unwrap());
        // Staff hear of a message that will not arrive, once.
        assert!(!store.mark_dead(seq.seq, "refused", true).await.unwrap());
        let notifications = store.notifications(10).await.unwrap();
        assert_eq!(notifications.len(), 1, "{notifications:?}");
        assert_eq!(notifications[0].event, Event::DeliveryFailed);
        assert_eq!(notifications[0].referral_id, dead.id);
        assert_eq!(notifications[0].team, dead.recipient.uri());

        // 150 newer messages, half of them delivered, half still pending.
        for n in 0..150 {
            let (later_disclosure, later) = disclosed(referral("riverside-mh", "county-core"));
            store
                .submit_referral(&later_disclosure, &plain_submission())
                .await
                .unwrap();
            if n % 2 == 0 {
                let queued = store.outbox_entry(later.id).await.unwrap().unwrap();
                store
                    .mark_delivered(
                        queued.seq,
                        &proof(later.id, MessageKind::Referral, &later.recipient),
                    )
                    .await
                    .unwrap();
            }
        }

        // The newest 100 of the whole outbox do not reach it...
        let newest = store.outbox(100).await.unwrap();
        assert!(newest.iter().all(|e| e.message_id != dead.id));
        // ...but the dead letters do.
        let letters = store.dead_letters(100).await.unwrap();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].message_id, dead.id);
        assert_eq!(letters[0].state, DeliveryState::Dead);
        assert_eq!(letters[0].last_error.as_deref(), Some("refused"));
        // Retried, it is no longer one.
        assert_eq!(
            store.retry_dead(dead.id).await.unwrap(),
            Some(dead.recipient.uri())
        );
        assert!(store.dead_letters(100).await.unwrap().is_empty());
    }
}

// ---- case messages ----

/// `message`, sent by its author to `to`, as the Federation server hands it to the store:
/// decoded from the bytes its author's node signed, checked, and receipted by `to`'s node.
fn arrived<M: Receivable + Encoded>(message: &M, to: &TeamIdentity) -> Received<M> {
    let from = message.sender().clone();
    let ca = CertificateAuthority::create(from.federation.clone(), 1).unwrap();
    let (sender, recipient) = (node(&ca, &from), node(&ca, to));
    let bytes = message.bytes();
    let signature = sender
        .signer()
        .sign(&signing::message_payload(M::KIND.as_str(), &bytes))
        .unwrap();
    SenderChecked::<M>::decode(bytes, &from)
        .unwrap()
        .verify_signature(
            sender.signer().certificate().to_vec(),
            signing::SCHEME_ECDSA_P256_SHA256,
            signature,
        )
        .unwrap()
        .receipt(recipient.signer(), OffsetDateTime::now_utc())
        .unwrap()
}

/// A message's canonical bytes, as its sender's node signs them.
trait Encoded {
    fn bytes(&self) -> Vec<u8>;
}

impl Encoded for CaseMessage {
    fn bytes(&self) -> Vec<u8> {
        tatmx_node::wire::encode_case_message(self)
    }
}

impl Encoded for StatusUpdate {
    fn bytes(&self) -> Vec<u8> {
        tatmx_node::wire::encode_status_update(self)
    }
}

/// The policy's parties for a case message from `author` (with `role`) to `to`.
fn case_exchange(author: &TeamIdentity, role: Role, to: &Peer, on: &Referral) -> Exchange {
    let local = LocalTeam {
        identity: author.clone(),
        role,
        discipline: Discipline::LawEnforcement,
        jurisdiction: String::new(),
        cjis_authorized: true,
    };
    Exchange {
        sender: filter::local_party(&local, author),
        recipient: filter::party_of_peer(to),
        purpose: on.purpose,
        basis: on.legal_basis,
        justified: filter::justified(on.justification.as_deref()),
        reidentify: false,
    }
}

fn peer(identity: &TeamIdentity, role: Role) -> Peer {
    Peer {
        identity: identity.clone(),
        endpoint: "https://127.0.0.1:1".parse().unwrap(),
        role,
        discipline: Discipline::MentalHealth,
        jurisdiction: String::new(),
        cjis_authorized: false,
    }
}

fn case_message(on: &Referral, author: &TeamIdentity, body: CaseBody) -> CaseMessage {
    CaseMessage {
        id: Uuid::now_v7(),
        referral_id: on.id,
        author: author.clone(),
        at: OffsetDateTime::now_utc(),
        body,
        labels: Default::default(),
        withheld: Vec::new(),
    }
}

/// `message` from the core team that received `on`, through the real filter, to its sender.
fn from_core(on: &Referral, body: CaseBody) -> CaseDisclosure {
    let to = peer(&on.sender, Role::Affiliate);
    filter::filter_case_message(
        &Policy::default_pack().unwrap(),
        &case_exchange(&on.recipient, Role::Core, &to, on),
        &to,
        None,
        case_message(on, &on.recipient, body),
    )
}

fn plan_until(date: time::Date, team: &TeamIdentity) -> Plan {
    Plan {
        interventions: vec![Intervention {
            code: InterventionCode::CheckIns,
            responsible: team.clone(),
        }],
        next_reassessment: date,
    }
}

/// The recipient's status change of `on`, as stored by the recipient's store.
async fn move_to(store: &Store, on: &Referral, status: ReferralStatus) {
    let update = StatusUpdate {
        id: Uuid::now_v7(),
        referral_id: on.id,
        author: on.recipient.clone(),
        status,
        at: OffsetDateTime::now_utc(),
        reason: None,
        outcome: (status == ReferralStatus::Completed).then(|| AssessmentOutcome {
            level_of_concern: None,
            management_plan: true,
            advice: String::new(),
            recommendations: Vec::new(),
        }),
        reason_code: None,
        withheld: Vec::new(),
        forwarded_to: None,
    };
    store
        .change_status(&update, Side::Recipient, &on.sender, &CASE_WORKER)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_case_message_is_sent_with_its_record_and_refused_when_the_case_does_not_allow_it() {
    for t in stores().await {
        let store = &t.store;
        let held = referral("riverside-mh", "county-core");
        let until = OffsetDateTime::now_utc() + Duration::days(30);
        store
            .receive_referral(&as_received(&held), Some(&received(&held)), until)
            .await
            .unwrap();

        let question = from_core(
            &held,
            CaseBody::InformationRequest {
                question: Some("What did the teacher overhear?".into()),
                wanted: [DataCategory::Behavior].into(),
            },
        );
        store
            .send_case_message(&question, &held, &CASE_WORKER)
            .await
            .unwrap()
            .unwrap();
        let queued = store
            .outbox_entry(question.outgoing().id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(queued.kind, MessageKind::CaseMessage);
        assert_eq!(queued.peer, held.sender.uri());
        // The default policy withholds free text from a mental-health affiliate: what left is
        // the categories wanted and the manifest; the county's own record keeps the question.
        let window = store.queued_for_peer(&held.sender, 10).await.unwrap();
        let sent = window
            .iter()
            .find(|m| m.message_id == question.outgoing().id)
            .unwrap();
        let left = tatmx_node::wire::decode_case_message(&sent.body).unwrap();
        assert_eq!(left, *question.outgoing());
        assert_eq!(left.withheld[0].category, DataCategory::Narrative);
        let kept = store.case_messages(held.id).await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].direction, Direction::Outbound);
        assert_eq!(kept[0].message, *question.written());
        assert_eq!(kept[0].decisions.len(), 1);
        // Sealed under the received referral's key, in the record and the outbox.
        assert_eq!(
            t.count(
                "SELECT COUNT(*) FROM case_messages WHERE referral_id = $1 AND data_key IS NOT NULL",
                held.id
            )
            .await,
            1
        );

        // The recipient cannot answer its own question, nor plan before accepting; a referral
        // not held here is not shared.
        let wrong = from_core(
            &held,
            CaseBody::Supplement {
                answers: None,
                content: ReferralContent {
                    narrative: Some(Narrative { text: "x".into() }),
                    ..Default::default()
                },
            },
        );
        assert!(matches!(
            store
                .send_case_message(&wrong, &held, &CASE_WORKER)
                .await
                .unwrap(),
            Err(CaseRefusal::WrongParty {
                allowed: "sender",
                ..
            })
        ));
        let early = from_core(
            &held,
            CaseBody::ManagementPlan {
                plan: Some(plan_until(OffsetDateTime::now_utc().date(), &held.sender)),
            },
        );
        assert!(matches!(
            store
                .send_case_message(&early, &held, &CASE_WORKER)
                .await
                .unwrap(),
            Err(CaseRefusal::NotYet {
                state: ReferralStatus::Received,
                ..
            })
        ));
        let stranger = referral("riverside-mh", "county-core");
        let unshared = from_core(
            &stranger,
            CaseBody::InformationRequest {
                question: None,
                wanted: [DataCategory::Threat].into(),
            },
        );
        assert!(matches!(
            store
                .send_case_message(&unshared, &stranger, &CASE_WORKER)
                .await
                .unwrap(),
            Err(CaseRefusal::NotShared(_))
        ));
        assert_eq!(store.case_messages(held.id).await.unwrap().len(), 1);
        for refused in [&wrong, &early, &unshared] {
            assert!(
                store
                    .outbox_entry(refused.outgoing().id)
                    .await
                    .unwrap()
                    .is_none()
            );
        }
    }
}

#[tokio::test]
async fn a_received_case_message_is_stored_once_comes_first_until_read_and_is_purged_with_its_referral()
 {
    for t in stores().await {
        let store = &t.store;
        let now = OffsetDateTime::now_utc();
        let first = referral("riverside-mh", "county-core");
        let second = referral("riverside-mh", "county-core");
        for (held, until) in [
            (&first, now + Duration::hours(1)),
            (&second, now + Duration::days(30)),
        ] {
            store
                .receive_referral(&as_received(held), Some(&received(held)), until)
                .await
                .unwrap();
        }
        let news = case_message(
            &first,
            &first.sender,
            CaseBody::NewInformation {
                kind: InformationKind::TripwireReport,
                urgent: true,
                text: Some("A post showing a rifle.".into()),
                content: ReferralContent::default(),
            },
        );
        let stored = store
            .receive_case_message(&arrived(&news, &first.recipient))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored, Inbound::Stored);
        // Once: a redelivery changes nothing, other content under its id is refused, and a
        // team the referral is not shared with is told so.
        let again = store
            .receive_case_message(&arrived(&news, &first.recipient))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again, Inbound::Duplicate);
        let mut altered = news.clone();
        altered.body = CaseBody::NewInformation {
            kind: InformationKind::TripwireReport,
            urgent: false,
            text: Some("Something else.".into()),
            content: ReferralContent::default(),
        };
        assert_eq!(
            store
                .receive_case_message(&arrived(&altered, &first.recipient))
                .await
                .unwrap()
                .unwrap(),
            Inbound::Conflict
        );
        let mut stranger = news.clone();
        stranger.id = Uuid::now_v7();
        stranger.author = team("lincoln-high");
        assert_eq!(
            store
                .receive_case_message(&arrived(&stranger, &first.recipient))
                .await
                .unwrap()
                .unwrap(),
            Inbound::UnknownReferral
        );
        let kept = store.case_messages(first.id).await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].message, news);
        assert!(!kept[0].seen);

        // Urgent and unread: its referral comes first, though the other arrived later.
        let inbox = store.inbox(10).await.unwrap();
        assert_eq!(inbox[0].referral.id, first.id);
        let unseen = store.unseen_case_messages().await.unwrap();
        assert_eq!(unseen[&first.id].count, 1);
        assert!(unseen[&first.id].urgent);
        let listed = store.received_case_messages(10).await.unwrap();
        assert_eq!(listed[0].id, news.id);
        assert_eq!(
            listed[0].information_kind,
            Some(InformationKind::TripwireReport)
        );
        // The inbox read as one snapshot says the same as the three reads.
        let snapshot = store.inbox_snapshot(10).await.unwrap();
        assert_eq!(snapshot.referrals[0].referral.id, first.id);
        assert_eq!(snapshot.referrals.len(), inbox.len());
        assert_eq!(snapshot.unseen[&first.id].count, 1);
        assert_eq!(snapshot.messages[0].id, news.id);
        assert_eq!(store.mark_case_seen(first.id, now).await.unwrap(), 1);
        assert!(store.unseen_case_messages().await.unwrap().is_empty());
        assert_eq!(store.inbox(10).await.unwrap()[0].referral.id, second.id);

        // Retention purges the referral, and its case message with it.
        let key = "SELECT COUNT(*) FROM data_keys WHERE id = $1";
        assert_eq!(t.count(key, first.id).await, 1);
        assert_eq!(
            store.purge_expired(now + Duration::hours(2)).await.unwrap(),
            1
        );
        assert!(store.case_messages(first.id).await.unwrap().is_empty());
        assert_eq!(
            t.count(
                "SELECT COUNT(*) FROM case_messages WHERE referral_id = $1",
                first.id
            )
            .await,
            0
        );
        assert_eq!(t.count(key, first.id).await, 0);
    }
}

#[tokio::test]
async fn a_plan_puts_a_completed_case_under_management_and_the_latest_says_when_it_is_due() {
    for t in stores().await {
        let store = &t.store;
        let today = OffsetDateTime::now_utc().date();
        let held = referral("riverside-mh", "county-core");
        store
            .receive_referral(
                &as_received(&held),
                Some(&received(&held)),
                OffsetDateTime::now_utc() + Duration::days(30),
            )
            .await
            .unwrap();
        for status in [
            ReferralStatus::Accepted,
            ReferralStatus::InAssessment,
            ReferralStatus::Completed,
        ] {
            move_to(store, &held, status).await;
        }
        let plan = from_core(
            &held,
            CaseBody::ManagementPlan {
                plan: Some(plan_until(today + Duration::days(30), &held.sender)),
            },
        );
        store
            .send_case_message(&plan, &held, &CASE_WORKER)
            .await
            .unwrap()
            .unwrap();
        let (stored, timeline) = store.referral(held.id).await.unwrap().unwrap();
        assert_eq!(stored.status, ReferralStatus::UnderManagement);
        assert_eq!(
            timeline.last().map(|e| e.status),
            Some(ReferralStatus::UnderManagement)
        );
        let reassessment = from_core(
            &held,
            CaseBody::Reassessment {
                level_of_concern: Some(LevelOfConcern {
                    scheme: "CSTAG".into(),
                    value: "transient".into(),
                }),
                plan: Some(plan_until(today - Duration::days(2), &held.sender)),
            },
        );
        store
            .send_case_message(&reassessment, &held, &CASE_WORKER)
            .await
            .unwrap()
            .unwrap();
        // The latest plan decides: two days overdue, whatever the first one said.
        let due = store.due_reassessments(today).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].referral_id, held.id);
        assert_eq!(due[0].message_id, reassessment.outgoing().id);
        assert_eq!(due[0].next_reassessment, today - Duration::days(2));
        assert_eq!(due[0].status, ReferralStatus::UnderManagement);
        assert_eq!(due[0].other_team, held.sender.uri());
        assert!(
            store
                .due_reassessments(today - Duration::days(3))
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn a_plan_received_on_a_referral_sent_from_here_is_sealed_under_a_key_made_for_the_case() {
    for t in stores().await {
        let store = &t.store;
        let (disclosure, sent) = disclosed(referral("riverside-mh", "county-core"));
        store
            .submit_referral(&disclosure, &plain_submission())
            .await
            .unwrap();
        let accepted = StatusUpdate {
            status: ReferralStatus::Accepted,
            ..received(&sent)
        };
        store
            .receive_status_update(&arrived(&accepted, &sent.sender))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            t.count("SELECT COUNT(*) FROM data_keys WHERE id = $1", sent.id)
                .await,
            0
        );
        let plan = case_message(
            &sent,
            &sent.recipient,
            CaseBody::ManagementPlan {
                plan: Some(plan_until(
                    OffsetDateTime::now_utc().date() + Duration::days(7),
                    &sent.sender,
                )),
            },
        );
        assert_eq!(
            store
                .receive_case_message(&arrived(&plan, &sent.sender))
                .await
                .unwrap()
                .unwrap(),
            Inbound::Stored
        );
        // The referral is only accepted: the plan does not move it.
        let (stored, _) = store.referral(sent.id).await.unwrap().unwrap();
        assert_eq!(stored.status, ReferralStatus::Accepted);
        assert_eq!(
            t.count("SELECT COUNT(*) FROM data_keys WHERE id = $1", sent.id)
                .await,
            1
        );
        let kept = store.case_messages(sent.id).await.unwrap();
        assert_eq!(kept[0].message, plan);
        assert_eq!(kept[0].direction, Direction::Inbound);
        // A supplement from the core team is not the recipient's to send.
        let wrong = case_message(
            &sent,
            &sent.recipient,
            CaseBody::Supplement {
                answers: None,
                content: ReferralContent {
                    narrative: Some(Narrative { text: "x".into() }),
                    ..Default::default()
                },
            },
        );
        assert!(matches!(
            store
                .receive_case_message(&arrived(&wrong, &sent.sender))
                .await
                .unwrap(),
            Err(CaseRefusal::WrongParty { .. })
        ));
        assert_eq!(store.case_messages(sent.id).await.unwrap().len(), 1);
    }
}

/// The case numbers of a page of "My cases", in order.
fn numbers(page: &tatmx_node::store::CasePage) -> Vec<Option<String>> {
    page.rows
        .iter()
        .map(|r| r.references.case_number.clone())
        .collect()
}

#[tokio::test]
async fn my_cases_pages_in_the_database_finds_by_digest_and_is_new_for_each_reader_until_opened() {
    use tatmx_node::store::{CaseQuery, CaseReferences, CaseSort, IndexedReferences};
    for t in stores().await {
        let store = &t.store;
        // Twelve cases sent with this team's case numbers (given as their digests would be),
        // and three received.
        for n in 1..=12 {
            let (disclosure, _) = disclosed(referral("riverside-mh", "county-core"));
            let indexed = IndexedReferences {
                references: CaseReferences {
                    case_number: Some(format!("RMH-{n}")),
                    local_reference: (n == 7).then(|| "CANARY-PERSON-7".to_owned()),
                },
                digests: vec![format!("digest-{n}"), "digest-every".into()],
            };
            let submitted = store
                .submit_referral(
                    &disclosure,
                    &Submission {
                        references: Some(&indexed),
                        ..plain_submission()
                    },
                )
                .await
                .unwrap();
            assert_eq!(submitted, Submitted::New);
        }
        let until = OffsetDateTime::now_utc() + Duration::days(30);
        let mut held = Vec::new();
        for _ in 0..3 {
            let case = referral("lincoln-high", "county-core");
            store
                .receive_referral(&as_received(&case), Some(&received(&case)), until)
                .await
                .unwrap();
            held.push(case);
        }
        let query = |page, sort| CaseQuery {
            reader: "console erin".into(),
            search: None,
            open: None,
            direction: None,
            status: None,
            sort,
            page,
            per_page: 5,
        };

        // Paged by the database: every case once over three pages; past the last, the last.
        let first = store.cases(&query(1, CaseSort::Priority)).await.unwrap();
        assert_eq!((first.total, first.pages, first.rows.len()), (15, 3, 5));
        let mut every = std::collections::HashSet::new();
        for page in 1..=3 {
            for row in store
                .cases(&query(page, CaseSort::Activity))
                .await
                .unwrap()
                .rows
            {
                assert!(every.insert(row.referral_id), "a case on two pages");
            }
        }
        assert_eq!(every.len(), 15);
        let past = store.cases(&query(9, CaseSort::Activity)).await.unwrap();
        assert_eq!((past.page, past.rows.len()), (3, 5));

        // By case number, numbers by value, across pages; the cases without one last.
        let mut sorted = Vec::new();
        for page in 1..=3 {
            sorted.extend(numbers(
                &store
                    .cases(&query(page, CaseSort::CaseNumber))
                    .await
                    .unwrap(),
            ));
        }
        let mut expected: Vec<Option<String>> =
            (1..=12).map(|n| Some(format!("RMH-{n}"))).collect();
        expected.extend([None, None, None]);
        assert_eq!(sorted, expected);

        // Found by a digest, on whichever page; the references come back opened.
        let found = store
            .cases(&CaseQuery {
                search: Some("digest-7".into()),
                ..query(1, CaseSort::Priority)
            })
            .await
            .unwrap();
        assert_eq!(found.total, 1);
        assert_eq!(
            found.rows[0].references,
            CaseReferences {
                case_number: Some("RMH-7".into()),
                local_reference: Some("CANARY-PERSON-7".into()),
            }
        );
        let shared = CaseQuery {
            search: Some("digest-every".into()),
            ..query(3, CaseSort::Priority)
        };
        let shared = store.cases(&shared).await.unwrap();
        assert_eq!((shared.total, shared.pages, shared.rows.len()), (12, 3, 2));
        // Sealed: the database holds no readable reference.
        let mut raw = t.raw().await;
        let plain: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM case_references WHERE case_number = $1 OR local_reference = $2",
        )
        .bind(b"RMH-7".to_vec())
        .bind(b"CANARY-PERSON-7".to_vec())
        .fetch_one(&mut raw)
        .await
        .unwrap();
        assert_eq!(plain, 0);
        raw.close().await.ok();

        // What was received is new for each reader until they open it; what this team sent
        // has nothing new (its recipient's acknowledgement is not news).
        let received_only = CaseQuery {
            direction: Some(Direction::Inbound),
            ..query(1, CaseSort::Activity)
        };
        let page = store.cases(&received_only).await.unwrap();
        assert_eq!(page.total, 3);
        assert!(page.rows.iter().all(|r| r.unread
            && r.direction == Direction::Inbound
            && r.other_team == team("lincoln-high").uri()));
        store
            .mark_case_opened("console erin", held[0].id)
            .await
            .unwrap();
        let page = store.cases(&received_only).await.unwrap();
        let unread: Vec<Uuid> = page
            .rows
            .iter()
            .filter(|r| r.unread)
            .map(|r| r.referral_id)
            .collect();
        assert_eq!(unread.len(), 2);
        assert!(!unread.contains(&held[0].id));
        let finn = CaseQuery {
            reader: "console finn".into(),
            ..received_only.clone()
        };
        assert!(
            store
                .cases(&finn)
                .await
                .unwrap()
                .rows
                .iter()
                .all(|r| r.unread)
        );
        let sent_only = CaseQuery {
            direction: Some(Direction::Outbound),
            per_page: 20,
            ..query(1, CaseSort::Activity)
        };
        let sent = store.cases(&sent_only).await.unwrap();
        assert_eq!(sent.total, 12);
        assert!(sent.rows.iter().all(|r| !r.unread));

        // Urgent new information comes first, and is news again for the reader who had
        // opened the case, until they open it again.
        let news = case_message(
            &held[0],
            &held[0].sender,
            CaseBody::NewInformation {
                kind: InformationKind::TripwireReport,
                urgent: true,
                text: Some("A post showing a rifle.".into()),
                content: ReferralContent::default(),
            },
        );
        // The arrival is after the open, by this node's clock.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        store
            .receive_case_message(&arrived(&news, &held[0].recipient))
            .await
            .unwrap()
            .unwrap();
        let top = store.cases(&query(1, CaseSort::Priority)).await.unwrap();
        assert_eq!(top.rows[0].referral_id, held[0].id);
        assert!(top.rows[0].urgent && top.rows[0].unread);
        store
            .mark_case_opened("console erin", held[0].id)
            .await
            .unwrap();
        let top = store.cases(&query(1, CaseSort::Priority)).await.unwrap();
        let row = top.rows.iter().find(|r| r.referral_id == held[0].id);
        assert!(row.is_none_or(|r| !r.urgent && !r.unread));

        // Closed cases: after the open ones, and filtered apart.
        for status in [
            ReferralStatus::Accepted,
            ReferralStatus::InAssessment,
            ReferralStatus::Completed,
        ] {
            move_to(store, &held[1], status).await;
        }
        let closed = CaseQuery {
            open: Some(false),
            ..query(1, CaseSort::Priority)
        };
        let closed = store.cases(&closed).await.unwrap();
        assert_eq!(closed.total, 1);
        assert_eq!(closed.rows[0].status, ReferralStatus::Completed);
        let mut last = None;
        for page in 1..=3 {
            if let Some(row) = store
                .cases(&query(page, CaseSort::Priority))
                .await
                .unwrap()
                .rows
                .last()
            {
                last = Some(row.referral_id);
            }
        }
        assert_eq!(last, Some(held[1].id), "a closed case is listed last");
        let open = CaseQuery {
            open: Some(true),
            status: Some(ReferralStatus::Sent),
            ..query(1, CaseSort::Status)
        };
        assert_eq!(store.cases(&open).await.unwrap().total, 12);

        // Changed, then cleared: the digests go with the values.
        let changed = IndexedReferences {
            references: CaseReferences {
                case_number: Some("CC-1".into()),
                local_reference: None,
            },
            digests: vec!["digest-cc".into()],
        };
        assert!(
            store
                .set_case_references(held[2].id, &changed)
                .await
                .unwrap()
        );
        assert_eq!(
            store.case_references(held[2].id).await.unwrap(),
            changed.references
        );
        let by_new = CaseQuery {
            search: Some("digest-cc".into()),
            ..query(1, CaseSort::Priority)
        };
        assert_eq!(store.cases(&by_new).await.unwrap().total, 1);
        assert!(
            store
                .set_case_references(held[2].id, &IndexedReferences::default())
                .await
                .unwrap()
        );
        assert_eq!(store.cases(&by_new).await.unwrap().total, 0);
        assert!(
            !store
                .set_case_references(Uuid::now_v7(), &changed)
                .await
                .unwrap()
        );

        // A purge takes a received case's references, their digests and who read it.
        assert!(
            store
                .set_case_references(held[2].id, &changed)
                .await
                .unwrap()
        );
        store
            .mark_case_opened("console erin", held[2].id)
            .await
            .unwrap();
        store
            .purge_expired(until + Duration::days(1))
            .await
            .unwrap();
        for table in ["case_references", "case_reference_digests", "case_reads"] {
            let left = t
                .count(
                    &format!("SELECT COUNT(*) FROM {table} WHERE referral_id = $1"),
                    held[2].id,
                )
                .await;
            assert_eq!(left, 0, "{table}");
        }
        assert_eq!(store.cases(&by_new).await.unwrap().total, 0);
    }
}
