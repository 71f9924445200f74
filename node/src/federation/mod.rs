//! The federation protocol, both ends of it: what peers may ask of this node ([`server`]),
//! every call this node makes to a peer ([`client`]), the evidence both keep of each
//! message: the sender's signature and the receiver's receipt ([`evidence`]), and the
//! witnessing of each other's audit logs ([`witness`]).
//!
//! # Layout
//! - [`server`]: the peer-facing gRPC service; every refusal carries a [`crate::refusal`]
//!   code.
//! - [`client`]: delivering messages, asking for audit consistency proofs and directories;
//!   sorts a peer's refusal by its code.
//! - [`evidence`]: sign a message, verify a sender's signature, sign and check a receipt.
//! - [`v2`]: the peer-facing gRPC service of protocol version 2 (batches, Merkle proofs).
//! - [`consistency`]: version 2's consistency proofs of this node's audit tree.
//! - [`witness`]: checking that peers' audit checkpoints only ever extend each other; both
//!   ends show their checkpoint, so both ends witness.

pub mod client;
pub mod consistency;
pub mod evidence;
pub mod server;
pub mod v2;
pub mod witness;

pub use client::{DeliveryError, PeerClient};
pub(crate) use server::store_status;
pub use server::{FederationService, MAX_CLOCK_SKEW};

/// The header in which a sender states when it sent a call, Unix milliseconds.
pub const SENT_AT_HEADER: &str = "x-tatmx-sent-at";
