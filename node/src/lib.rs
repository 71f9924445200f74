//! A tatmx node: one agency's end of a federated threat-assessment exchange.
//!
//! Each agency runs its own node. The node keeps the agency's case data in its own store and
//! sends other teams only what a referral carries, over gRPC with mutual TLS 1.3. Data flows one
//! way through these layers:
//!
//! ```text
//! staff --Agency API (Unix socket)--> agency --> store (referral + outbox, one transaction)
//!                                                  |
//!                                      outbox worker --Federation API (mTLS)--> peer's federation
//!                                                                                  --> peer's store
//! ```
//!
//! # Layout
//! - [`config`]: the TOML file, parsed into types once.
//! - [`category`]: the data categories every field carries.
//! - [`purpose`]: why a disclosure is made, and on what legal basis.
//! - [`referral`]: the referral and status update as domain types, with their rules.
//! - [`lifecycle`]: the closed loop: which status may follow which, and who may move it.
//! - [`case_message`]: what the two teams of a shared case say after the referral: questions
//!   and answers, new information, management plans, reassessments; who may send which, when.
//! - [`convert`]: the only place wire types become domain types and back.
//! - [`team`]: a team's role and discipline, and what the node knows of itself and its peers.
//! - [`wire`]: the canonical bytes of each message: what is signed, stored and sent.
//! - [`tls`]: the node's own certificates and keys, and the PEM files they live in.
//! - [`trust`]: anchors, revocation and peers, swapped live; makes the [`trust::VerifiedPeer`].
//! - [`consent`]: consent records after FHIR Consent, and what they permit.
//! - [`policy`]: the law as Cedar rules: may a category leave, may it be held.
//! - [`filter`]: applies consent and policy to a referral, outbound and inbound.
//! - [`vault`]: per-record data keys; purging deletes the key (crypto-shredding).
//! - [`retraction`]: consent revoked, data pulled back hop by hop, purges and tombstones.
//! - [`retention`]: how long a received referral is kept.
//! - [`jobs`]: the background jobs: retention purges, audit checkpoints.
//! - [`notification`]: what is new for staff (ids, the other team, the kind of event; never
//!   personal data), and each staff member's preferences.
//! - [`notify`]: emailing notifications through the agency's SMTP relay, in the background.
//! - [`signing`]: the node key's signatures over messages, receipts and checkpoints, and the
//!   proof kept of each message.
//! - [`received`]: a delivered message once its sender and signature were checked: the only
//!   thing the store's `receive_*` methods take.
//! - [`audit`]: the hash-chained audit log: what each entry records, checkpoints, verification.
//! - [`audit_tree`]: the same log as an RFC 9162 Merkle tree: signed tree heads, inclusion
//!   proofs, and checking the stored tree.
//! - [`store`]: SQLite, and the only module with SQL.
//! - [`outbox`]: the queue of outbound messages: the handle that wakes delivery, and watchers.
//! - [`delivery`]: durable, ordered, retried delivery to each peer: schedules and records.
//! - [`federation`]: the federation protocol: the peer-facing service, the client that calls
//!   peers, and the evidence (signatures, receipts) both keep.
//! - [`refusal`]: the stable reason codes every refusal carries in its details.
//! - [`actor`]: who did something, built once at the edge that authenticated them.
//! - [`app`]: the application layer: every staff use case, over domain types.
//! - [`agency`]: the staff-facing gRPC service, an adapter over [`app`].
//! - [`admin`]: the admin-facing gRPC service (trust management, console accounts).
//! - [`console`]: the staff console: HTTPS pages for browsers, an adapter over [`app`].
//! - [`staff`]: staff roles, what each may do, and their credentials (argon2id, TOTP).
//! - [`refresh`]: fetching newer federation directories from peers.
//! - [`metrics`]: Prometheus counters and gauges, served on a local endpoint when configured.
//! - [`scrape`]: the `/metrics` endpoint, reading the node's gauges at each scrape.
//! - [`health`]: gRPC health for probes, and the store check behind readiness.
//! - [`node`]: wiring everything together, and shutting it down.
//! - [`client`]: connecting to a node's own APIs.
//! - [`clock`]: where the node reads the date and time; tests move it with tokio's clock.
//! - [`loopback`]: a federation of real nodes on loopback, for the demo, the benchmark and the
//!   tests.
#![forbid(unsafe_code)]

pub mod actor;
pub mod admin;
pub mod agency;
pub mod app;
pub mod audit;
pub mod audit_tree;
pub mod case_message;
pub mod category;
pub mod client;
pub mod clock;
pub mod config;
pub mod consent;
pub mod console;
pub mod convert;
pub mod delivery;
pub mod federation;
pub mod filter;
pub mod health;
pub mod jobs;
pub mod lifecycle;
pub mod local_socket;
pub mod loopback;
pub mod merkle;
pub mod metrics;
pub mod node;
pub mod notification;
pub mod notify;
pub mod outbox;
pub mod policy;
pub mod purpose;
pub mod received;
pub mod referral;
pub mod refresh;
pub mod refusal;
pub mod retention;
pub mod retraction;
pub mod scrape;
pub mod signing;
pub mod staff;
pub mod store;
pub mod team;
pub mod tls;
pub mod trust;
pub mod vault;
pub mod version;
pub mod wire;

pub use category::DataCategory;
pub use config::Config;
pub use node::{RunningNode, StartError, start, start_with_clock, start_with_listener};
pub use referral::{NewReferral, Referral, ReferralContent, ReferralStatus};
pub use trust::{Discipline, Role};
