//! Witnessing: peers keep each other's audit checkpoints and tree heads, so a node cannot
//! quietly rewrite its own history, even with its own key.
//!
//! In protocol version 1, every message and every receipt carries the sender's latest signed
//! checkpoint. The first one a node sees from a peer is kept. A later one must extend it: the
//! node asks the peer for the leaf hashes of the entries in between
//! (`tatmx.v1.Federation.GetAuditConsistency`), chains them onto the head it holds, and must
//! arrive at the new head.
//!
//! In version 2, batches and receipts carry the sender's latest signed tree head instead
//! ([`Witness::observe_tree_head`]). Its signature must hold with a certificate of the peer
//! that chains to a trusted anchor. The first is kept; for a later one the node asks the peer
//! for an RFC 9162 consistency proof from the size it holds (`tatmx.v2.Federation.
//! GetAuditConsistency`), O(log n) hashes however far apart, and checks it with
//! [`merkle::verify_consistency`].
//!
//! Either way, if the proof fails, or the peer shows a different head for the same size, the
//! peer's history contradicts what it showed before: the conflict is recorded, logged, counted
//! (`tatmx_witness_conflicts_total`), and shown in `tatmx trust status`. As in Certificate
//! Transparency gossip, no central party is involved; each node is a witness of the nodes it
//! talks to.

use std::sync::Arc;

use tatmx_certs::{CertificateSummary, TeamIdentity};
use tatmx_proto::v1 as pb;

use super::client::PeerClient;
use crate::audit;
use crate::audit_tree::TreeHead;
use crate::config::DeliverySettings;
use crate::merkle;
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
    /// The same for tree heads: the newest checked per peer, its size and root.
    checked_heads: Arc<std::sync::Mutex<Checked>>,
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
            checked_heads: Arc::default(),
        }
    }

    /// Checks, in the background, an audit tree head `peer` showed in protocol version 2. A head
    /// already checked (the same size and root, or an older size) costs a map lookup.
    pub fn observe_tree_head(
        &self,
        peer: &TeamIdentity,
        shown: Option<tatmx_proto::v2::SignedTreeHead>,
    ) {
        let Some(shown) = shown else { return };
        let seen = self
            .checked_heads
            .lock()
            .ok()
            .and_then(|checked| checked.get(&peer.uri()).cloned());
        if seen.is_some_and(|(size, root)| {
            shown.tree_size < size || (shown.tree_size == size && shown.root_hash == root)
        }) {
            return;
        }
        let witness = self.clone();
        let peer = peer.clone();
        tokio::spawn(async move {
            let seen = (shown.tree_size, shown.root_hash.clone());
            match witness.check_tree_head(&peer, shown).await {
                Ok(()) => {
                    if let Ok(mut checked) = witness.checked_heads.lock() {
                        checked.insert(peer.uri(), seen);
                    }
                }
                Err(problem) => {
                    tracing::debug!(%peer, %problem, "a peer's tree head could not be checked now");
                }
            }
        });
    }

    /// This node's latest signed audit tree head, as version 2 messages and receipts show it,
    /// with the certificate that signed it. Read from memory.
    pub async fn own_tree_head(&self) -> Option<tatmx_proto::v2::SignedTreeHead> {
        self.store
            .cached_tree_head()
            .map(|head| crate::convert::tree_head_to_proto(&head))
    }

    /// Whether `head` is `peer`'s own: its signature holds, with a certificate that names the
    /// peer and chains to a trusted anchor of its federation, valid when the head was signed.
    fn peers_own(&self, peer: &TeamIdentity, head: &TreeHead) -> Result<(), String> {
        head.signature_holds()
            .map_err(|e| format!("tree head signature {e}"))?;
        let at = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_millis(
            u64::try_from(head.at_ms).unwrap_or(0),
        ));
        let signer = self
            .trust
            .state()
            .check_presented(&head.certificate, at, webpki::KeyUsage::client_auth())
            .map_err(|e| format!("tree head certificate: {e}"))?;
        if head.team != peer.uri() || &signer != peer {
            return Err("the tree head is not the peer's own".into());
        }
        Ok(())
    }

    async fn check_tree_head(
        &self,
        peer: &TeamIdentity,
        shown: tatmx_proto::v2::SignedTreeHead,
    ) -> Result<(), String> {
        let shown = crate::convert::tree_head_from_proto(shown).map_err(|e| e.to_string())?;
        self.peers_own(peer, &shown)?;
        let _guard = self.lock.lock().await;
        let held = self
            .store
            .witnessed_tree_head(&shown.team)
            .await
            .map_err(|e| e.to_string())?;
        let Some(held) = held else {
            return self
                .store
                .put_witnessed_tree_head(&shown)
                .await
                .map_err(|e| e.to_string());
        };
        if shown.tree_size < held.tree_size {
            // An older head from a delayed message; the newer one was already checked.
            return Ok(());
        }
        if shown.tree_size == held.tree_size {
            if shown.root_hash != held.root_hash {
                return self
                    .conflict(
                        peer,
                        held.tree_size,
                        shown.tree_size,
                        "a different tree head for the same number of entries",
                    )
                    .await;
            }
            return Ok(());
        }
        // The peer proves that the tree it showed extends the one held. It answers with the
        // head at the size asked for, or a newer one if it no longer keeps that.
        let answer = self
            .consistency(peer, held.tree_size, shown.tree_size)
            .await?;
        let (answered, path) = answer;
        self.peers_own(peer, &answered)?;
        if answered.tree_size < shown.tree_size {
            return Err("the peer answered with an older tree head than the one it showed".into());
        }
        if merkle::verify_consistency(
            held.tree_size,
            answered.tree_size,
            &held.root_hash,
            &answered.root_hash,
            &path,
        )
        .is_err()
        {
            return self
                .conflict(
                    peer,
                    held.tree_size,
                    answered.tree_size,
                    "its tree does not extend the tree head held: history was rewritten",
                )
                .await;
        }
        if answered.tree_size != shown.tree_size {
            // The head shown must be on the same history: prove it to the newer head too.
            let (newer, path) = self
                .consistency(peer, shown.tree_size, answered.tree_size)
                .await?;
            if newer.tree_size != answered.tree_size
                || newer.root_hash != answered.root_hash
                || merkle::verify_consistency(
                    shown.tree_size,
                    answered.tree_size,
                    &shown.root_hash,
                    &answered.root_hash,
                    &path,
                )
                .is_err()
            {
                return self
                    .conflict(
                        peer,
                        held.tree_size,
                        shown.tree_size,
                        "the tree head it showed is not on the history it proves: history was rewritten",
                    )
                    .await;
            }
        } else if answered.root_hash != shown.root_hash {
            return self
                .conflict(
                    peer,
                    held.tree_size,
                    shown.tree_size,
                    "a different tree head for the same number of entries",
                )
                .await;
        }
        self.store
            .put_witnessed_tree_head(&answered)
            .await
            .map_err(|e| e.to_string())
    }

    /// Asks `peer` for its tree head at `to` entries and the proof from `from` to it.
    async fn consistency(
        &self,
        peer: &TeamIdentity,
        from: u64,
        to: u64,
    ) -> Result<(TreeHead, Vec<merkle::Hash>), String> {
        let answer = PeerClient::admitted(&self.trust, peer, &self.delivery)
            .map_err(|e| e.to_string())?
            .audit_tree_consistency(from, to)
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
        let head = answer
            .tree_head
            .ok_or("the peer's consistency proof came without its tree head")
            .and_then(|h| {
                crate::convert::tree_head_from_proto(h)
                    .map_err(|_| "the peer's tree head is malformed")
            })?;
        let path = answer
            .path
            .into_iter()
            .map(|h| {
                <merkle::Hash>::try_from(h)
                    .map_err(|_| "a hash of the peer's proof is not 32 bytes".to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((head, path))
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
                    .conflict(
                        peer,
                        held.seq,
                        shown.seq,
                        "a different head for the same entry",
                    )
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
                    held.seq,
                    shown.seq,
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

    /// Records that `peer` showed a history contradicting the checkpoint or tree head held
    /// over its first `held` entries, once per held point of its history. A tree head over `n`
    /// entries and a checkpoint at seq `n` are the same point.
    async fn conflict(
        &self,
        peer: &TeamIdentity,
        held: u64,
        shown: u64,
        problem: &str,
    ) -> Result<(), String> {
        let known = self
            .store
            .witness_conflicts()
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .any(|c| c.peer == peer.uri() && c.held_seq == held);
        if known {
            return Ok(());
        }
        crate::metrics::get().witness_conflicts.inc();
        tracing::error!(
            %peer,
            held_seq = held,
            shown_seq = shown,
            problem,
            "a peer's audit history contradicts a checkpoint or tree head this node witnessed"
        );
        self.store
            .add_witness_conflict(&WitnessConflict {
                peer: peer.uri(),
                held_seq: held,
                shown_seq: shown,
                problem: problem.to_owned(),
                detected_at: self.store.clock().now(),
            })
            .await
            .map_err(|e| e.to_string())
    }
}
