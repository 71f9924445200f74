//! What the fuzz targets share: the test CA the seed directories and CRLs are signed by, the
//! default policy pack, and the one exchange the `filter` and `policy` targets ask about.
//!
//! Everything here is built once per process (`OnceLock`), so that each execution pays only for
//! the parser under test, under libFuzzer and under the smoke test alike.

use std::sync::OnceLock;

use tatmx_certs::{CertificateAuthority, TeamIdentity};
use tatmx_node::consent::{Consent, Grantor, Provision, ProvisionKind, Recipient};
use tatmx_node::filter::CaseKey;
use tatmx_node::policy::{Exchange, Party, Policy};
use tatmx_node::referral::Referral;
use tatmx_node::trust::{Discipline, Peer, Role};
use time::OffsetDateTime;
use uuid::Uuid;

/// The federation of the test CA and of every seed.
pub const FEDERATION: &str = "county-mdt.example";

/// The test CA's certificate. Checked in rather than created per process: a fresh CA would
/// never match the signer of a seed directory or CRL, so the fuzzer could not get past the
/// signer check from any seed.
const TEST_CA_PEM: &str = include_str!("../fixtures/test-ca.pem");
/// The test CA's private key. It signs nothing but fuzz seeds; it is no secret.
const TEST_CA_KEY: &str = include_str!("../fixtures/test-ca.key");

/// The test CA, for the `directory` and `crl` targets.
pub fn test_ca() -> &'static CertificateAuthority {
    static CA: OnceLock<CertificateAuthority> = OnceLock::new();
    CA.get_or_init(|| {
        // The fixture is checked in with this crate; a failure is a broken checkout, which
        // must stop the run rather than fuzz against nothing.
        CertificateAuthority::load(TEST_CA_PEM, TEST_CA_KEY).expect(
            "fuzz-targets/fixtures/test-ca.{pem,key} must hold a CA; run `cargo run --example seeds` in fuzz/",
        )
    })
}

/// The trusted anchors a node would pass to a verifier: the test CA alone.
pub fn anchors() -> &'static [String] {
    static ANCHORS: OnceLock<Vec<String>> = OnceLock::new();
    ANCHORS.get_or_init(|| vec![test_ca().cert_pem().to_owned()])
}

/// The node's built-in policy pack, loaded once.
pub fn default_policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    // The pack is compiled into the node and validated by its own tests; if it fails here, no
    // target result would mean anything.
    POLICY.get_or_init(|| Policy::default_pack().expect("the default policy pack loads"))
}

/// A team of the test federation.
pub fn identity(team: &str) -> TeamIdentity {
    // A fixed, well-formed URI: parsing it cannot fail.
    TeamIdentity::parse_uri(&format!("spiffe://{FEDERATION}/team/{team}"))
        .expect("a well-formed team URI")
}

/// One outbound exchange, as `node/benches/filter.rs` sets it up: a mental-health affiliate
/// sends to the law-enforcement core team, which the subject's consent names.
pub struct Outbound {
    /// The core team, as this node's peer list has it.
    pub recipient: Peer,
    /// The sender as the policy sees it.
    pub sender: Party,
    /// The recipient as the policy sees it.
    pub recipient_party: Party,
    /// A consent in force that permits everything to the recipient.
    pub consent: Consent,
    /// The node's case-handle key.
    pub case_key: CaseKey,
}

impl Outbound {
    /// The exchange for `draft`: its own purpose, basis and justification, as the Agency API
    /// builds it.
    pub fn exchange(&self, draft: &Referral) -> Exchange {
        Exchange {
            sender: self.sender.clone(),
            recipient: self.recipient_party.clone(),
            purpose: draft.purpose,
            basis: draft.legal_basis,
            justified: tatmx_node::filter::justified(draft.justification.as_deref()),
            reidentify: false,
        }
    }
}

/// The fixed exchange, built once.
pub fn outbound() -> &'static Outbound {
    static OUTBOUND: OnceLock<Outbound> = OnceLock::new();
    OUTBOUND.get_or_init(|| {
        let recipient = Peer {
            identity: identity("county-core"),
            // A literal URI: parsing it cannot fail.
            endpoint: "https://127.0.0.1:7443".parse().expect("a literal URI"),
            role: Role::Core,
            discipline: Discipline::LawEnforcement,
            jurisdiction: String::new(),
            cjis_authorized: true,
        };
        let party = |team: &TeamIdentity, role, discipline, cjis_authorized| Party {
            team: team.uri(),
            federation: FEDERATION.into(),
            role,
            discipline,
            cjis_authorized,
        };
        let now = OffsetDateTime::now_utc();
        Outbound {
            sender: party(
                &identity("riverside-mh"),
                Role::Affiliate,
                Discipline::MentalHealth,
                false,
            ),
            recipient_party: party(
                &recipient.identity,
                Role::Core,
                Discipline::LawEnforcement,
                true,
            ),
            consent: Consent {
                id: Uuid::now_v7(),
                subject: "CASE-1".into(),
                grantor: Grantor::Subject,
                provision: Provision {
                    kind: ProvisionKind::Permit,
                    categories: vec![],
                    recipients: vec![Recipient::Team(recipient.identity.clone())],
                    purposes: vec![],
                    provisions: vec![],
                },
                valid_from: now - time::Duration::days(1),
                valid_until: None,
                revoked_at: None,
                recorded_at: now,
            },
            case_key: CaseKey::from_bytes([9; 32]),
            recipient,
        }
    })
}
