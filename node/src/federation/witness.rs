//! Witnessing: peers keep each other's audit checkpoints, so a node cannot quietly rewrite its
//! own history, even with its own key.
//!
//! Every message and every receipt carries the sender's latest signed checkpoint. The first
//! one a node sees from a peer is kept. A later one must extend it: the node asks the peer for
//! the leaf hashes of the entries in between (`Federation.GetAuditConsistency`), chains them
//! onto the head it holds, and must arrive at the new head. If it does not, or the peer shows a
//! different head for the same entry, the peer's history contradicts what it showed before:
//! the conflict is recorded, logged, counted (`tatmx_witness_conflicts_total`), and shown in
//! `tatmx trust status`. As in
//! Certificate Transparency gossip, no central party is involved; each node is a witness of the
//! nodes it talks to.

use std::sync::Arc;

use tatmx_certs::{CertificateSummary, TeamIdentity};
use tatmx_proto::v1 as pb;

use super::client::PeerClient;
use crate::audit::{self, Checkpoint};
use crate::config::DeliverySettings;
use crate::store::{Store, WitnessConflict};
use crate::trust::Trust;

/// The most entries a peer is asked to prove in one call.
const MAX_PROOF: u64 = 100_000;

/// The newest checkpoint checked, per peer identity: its seq and head hash.
type Checked = std::collections::HashMap<String, (u64, Vec<u8>)>;

/// Checks the checkpoints peers show this node.
#[derive(Debug, Clone)]
pub struct Witness {
    /// Where witnessed checkpoints and conflicts are kept.
    store: Store,
    /// Where peers are reached.
    trust: Trust,
    /// Timeouts for asking a peer for a proof.
    delivery: DeliverySettings,
    /// One check at a time, so two messages from a peer cannot race over its checkpoint.
    lock: Arc<tokio::sync::Mutex<()>>,
    /// The newest checkpoint checked per peer (seq and head), so the same checkpoint, carried
    /// by every message until the next one is signed, is checked once. A different head for the
    /// same seq is checked again: that is exactly what a rewrite looks like.
    checked: Arc<std::sync::Mutex<Checked>>,
}

impl Witness {
    /// A witness over the node's store and trust.
    pub fn new(store: Store, trust: Trust, delivery: DeliverySettings) -> Self {
        Self {
            store,
            trust,
            delivery,
            lock: Arc::default(),
            checked: Arc::default(),
        }
    }

    /// Checks, in the background, an audit tree head `peer` showed in protocol version 2.
    pub fn observe_tree_head(
        &self,
        peer: &TeamIdentity,
        shown: Option<tatmx_proto::v2::SignedTreeHead>,
    ) {
        // Filled in by the Merkle audit log; until then version 2 peers are witnessed only
        // through version 1's checkpoints.
        let _ = (peer, shown);
    }

    /// This node's latest signed audit tree head, as version 2 messages and receipts show it.
    pub async fn own_tree_head(&self) -> Option<tatmx_proto::v2::SignedTreeHead> {
        None
    }

    /// Checks, in the background, a checkpoint `peer` showed.
    pub fn observe(&self, peer: &TeamIdentity, shown: Option<pb::SignedCheckpoint>) {
        let Some(shown) = shown else { return };
        let seen = self
            .checked
            .lock()
            .ok()
            .and_then(|checked| checked.get(&peer.uri()).cloned());
        if seen.is_some_and(|(seq, head)| {
            shown.seq < seq || (shown.seq == seq && shown.head_hash == head)
        }) {
            return;
        }
        let witness = self.clone();
        let peer = peer.clone();
        tokio::spawn(async move {
            let seen = (shown.seq, shown.head_hash.clone());
            match witness.check(&peer, shown).await {
                Ok(()) => {
                    if let Ok(mut checked) = witness.checked.lock() {
                        checked.insert(peer.uri(), seen);
                    }
                }
                Err(problem) => {
                    tracing::debug!(%peer, %problem, "a peer's checkpoint could not be checked now");
                }
            }
        });
    }

    async fn check(&self, peer: &TeamIdentity, shown: pb::SignedCheckpoint) -> Result<(), String> {
        let shown = crate::convert::checkpoint_from_proto(shown);
        shown
            .signature_holds()
            .map_err(|e| format!("checkpoint signature {e}"))?;
        let signer = CertificateSummary::from_der(&shown.certificate)
            .ok()
            .and_then(|s| s.identity);
        if shown.team != peer.uri() || signer.as_ref() != Some(peer) {
            return Err("the checkpoint is not the peer's own".into());
        }
        let _guard = self.lock.lock().await;
        let held = self
            .store
            .witnessed(&shown.team)
            .await
            .map_err(|e| e.to_string())?;
        let Some(held) = held else {
            return self
                .store
                .put_witnessed(&shown)
                .await
                .map_err(|e| e.to_string());
        };
        if shown.seq < held.seq {
            // An older checkpoint from a delayed message; the newer one was already checked.
            return Ok(());
        }
        if shown.seq == held.seq {
            if shown.head_hash != held.head_hash {
                return self
                    .conflict(peer, &held, &shown, "a different head for the same entry")
                    .await;
            }
            return Ok(());
        }
        if shown.seq - held.seq > MAX_PROOF {
            // Too far apart to prove in one call; start again from the newer checkpoint.
            return self
                .store
                .put_witnessed(&shown)
                .await
                .map_err(|e| e.to_string());
        }
        let leaves = self.leaves(peer, held.seq, shown.seq).await?;
        let mut head = held.head_hash.clone();
        for leaf in &leaves {
            head = audit::chain_hash(&head, leaf).to_vec();
        }
        if leaves.len() as u64 != shown.seq - held.seq || head != shown.head_hash {
            return self
                .conflict(
                    peer,
                    &held,
                    &shown,
                    "its entries since the held checkpoint do not lead to the new head: history was rewritten",
                )
                .await;
        }
        self.store
            .put_witnessed(&shown)
            .await
            .map_err(|e| e.to_string())
    }

    async fn leaves(
        &self,
        peer: &TeamIdentity,
        from: u64,
        to: u64,
    ) -> Result<Vec<Vec<u8>>, String> {
        PeerClient::admitted(&self.trust, peer, &self.delivery)
            .map_err(|e| e.to_string())?
            .audit_consistency(from, to)
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    }

    async fn conflict(
        &self,
        peer: &TeamIdentity,
        held: &Checkpoint,
        shown: &Checkpoint,
        problem: &str,
    ) -> Result<(), String> {
        let known = self
            .store
            .witness_conflicts()
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .any(|c| c.peer == held.team && c.held_seq == held.seq);
        if known {
            return Ok(());
        }
        crate::metrics::get().witness_conflicts.inc();
        tracing::error!(
            %peer,
            held_seq = held.seq,
            shown_seq = shown.seq,
            problem,
            "a peer's audit history contradicts a checkpoint this node witnessed"
        );
        self.store
            .add_witness_conflict(&WitnessConflict {
                peer: peer.uri(),
                held_seq: held.seq,
                shown_seq: shown.seq,
                problem: problem.to_owned(),
                detected_at: self.store.clock().now(),
            })
            .await
            .map_err(|e| e.to_string())
    }
}
