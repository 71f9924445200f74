//! The audit log's Merkle tree between the wire and the domain: signed tree heads as protocol
//! version 2 carries them, and the inclusion proof of one entry the Admin API gives.

use sha2::{Digest, Sha256};
use tatmx_proto::v1 as pb;
use tatmx_proto::v2 as pb2;

use super::{ConversionError, invalid, required};
use crate::audit::AuditEntry;
use crate::audit_tree::{InclusionProof, TreeHead};
use crate::merkle::Hash;

/// Unix milliseconds as a protobuf time, exactly.
fn millis_to_proto(at_ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at_ms.div_euclid(1000),
        // Below 1e9, so the cast cannot truncate.
        nanos: (at_ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A protobuf time as Unix milliseconds; a head is signed over whole milliseconds, so finer
/// nanoseconds are refused rather than dropped.
fn millis_from_proto(
    at: Option<prost_types::Timestamp>,
    field: &str,
) -> Result<i64, ConversionError> {
    let at = required(at, field)?;
    if !(0..1_000_000_000).contains(&at.nanos) || at.nanos % 1_000_000 != 0 {
        return Err(invalid(field, "is not a whole number of milliseconds"));
    }
    at.seconds
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(i64::from(at.nanos / 1_000_000)))
        .ok_or_else(|| invalid(field, "is out of range"))
}

fn hash(bytes: Vec<u8>, field: &str) -> Result<Hash, ConversionError> {
    bytes
        .try_into()
        .map_err(|_| invalid(field, "must be 32 bytes (SHA-256)"))
}

/// A signed tree head to wire, with the signer's certificate: a peer checks the head later,
/// offline, and the connection it came over proves nothing then.
pub fn tree_head_to_proto(head: &TreeHead) -> pb2::SignedTreeHead {
    pb2::SignedTreeHead {
        team: head.team.clone(),
        tree_size: head.tree_size,
        root_hash: head.root_hash.to_vec(),
        at: Some(millis_to_proto(head.at_ms)),
        signature: Some(pb2::Signature {
            scheme: head.scheme,
            value: head.signature.clone(),
            certificate_sha256: Sha256::digest(&head.certificate).to_vec(),
            certificate: head.certificate.clone(),
        }),
    }
}

/// A wire tree head as shown. It must carry its signer's certificate, which must match the
/// digest beside it; whether the signature holds, and whose certificate it is, the witness
/// checks.
pub fn tree_head_from_proto(head: pb2::SignedTreeHead) -> Result<TreeHead, ConversionError> {
    let signature = required(head.signature, "tree_head.signature")?;
    if signature.certificate.is_empty() {
        return Err(invalid(
            "tree_head.signature.certificate",
            "is required: a tree head is kept and checked apart from the connection it came over",
        ));
    }
    if !signature.certificate_sha256.is_empty()
        && signature.certificate_sha256 != Sha256::digest(&signature.certificate).as_slice()
    {
        return Err(invalid(
            "tree_head.signature.certificate_sha256",
            "is not the SHA-256 of the certificate",
        ));
    }
    if head.team.is_empty() {
        return Err(invalid("tree_head.team", "is required"));
    }
    Ok(TreeHead {
        team: head.team,
        tree_size: head.tree_size,
        root_hash: hash(head.root_hash, "tree_head.root_hash")?,
        at_ms: millis_from_proto(head.at, "tree_head.at")?,
        scheme: signature.scheme,
        signature: signature.value,
        certificate: signature.certificate,
    })
}

/// An entry's hashed columns to wire.
pub fn proven_entry_to_proto(entry: &AuditEntry) -> pb::ProvenEntry {
    pb::ProvenEntry {
        seq: entry.seq,
        at_ms: entry.at_ms,
        kind: entry.kind.clone(),
        actor: entry.actor.clone(),
        peer: entry.peer.clone(),
        referral_id: entry.referral_id.clone(),
        subject: entry.subject.clone(),
        detail_json: entry.detail.clone(),
    }
}

/// An entry's hashed columns from wire; its chain hashes are not carried, nor needed to
/// recompute its leaf.
pub fn proven_entry_from_proto(entry: pb::ProvenEntry) -> AuditEntry {
    AuditEntry {
        seq: entry.seq,
        at_ms: entry.at_ms,
        kind: entry.kind,
        actor: entry.actor,
        peer: entry.peer,
        referral_id: entry.referral_id,
        subject: entry.subject,
        detail: entry.detail_json,
        prev_hash: Vec::new(),
        hash: Vec::new(),
    }
}

/// An entry's inclusion proof to wire.
pub fn inclusion_proof_to_proto(proof: &InclusionProof) -> pb::DisclosureProof {
    pb::DisclosureProof {
        entry: Some(proven_entry_to_proto(&proof.entry)),
        path: proof.path.iter().map(|h| h.to_vec()).collect(),
        tree_head: Some(tree_head_to_proto(&proof.head)),
    }
}

/// An entry's inclusion proof from wire, as the node gave it; whether it holds is for
/// [`InclusionProof::check`] to say.
pub fn inclusion_proof_from_proto(
    proof: pb::DisclosureProof,
) -> Result<InclusionProof, ConversionError> {
    Ok(InclusionProof {
        entry: proven_entry_from_proto(required(proof.entry, "entry")?),
        path: proof
            .path
            .into_iter()
            .map(|h| hash(h, "path"))
            .collect::<Result<_, _>>()?,
        head: tree_head_from_proto(required(proof.tree_head, "tree_head")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> TreeHead {
        TreeHead {
            team: "spiffe://f.example/team/core".into(),
            tree_size: 7,
            root_hash: [3; 32],
            at_ms: 1_764_000_000_123,
            scheme: 1,
            signature: vec![1, 2, 3],
            certificate: vec![4, 5, 6],
        }
    }

    #[test]
    fn a_tree_head_round_trips_to_the_millisecond_with_its_certificate() {
        let wire = tree_head_to_proto(&head());
        let signature = wire.signature.clone().unwrap();
        assert_eq!(signature.certificate, vec![4, 5, 6]);
        assert_eq!(
            signature.certificate_sha256,
            Sha256::digest([4u8, 5, 6]).to_vec()
        );
        assert_eq!(tree_head_from_proto(wire), Ok(head()));
    }

    #[test]
    fn a_tree_head_without_its_certificate_or_with_another_digest_is_refused() {
        let mut wire = tree_head_to_proto(&head());
        wire.signature.as_mut().unwrap().certificate.clear();
        assert_eq!(
            tree_head_from_proto(wire).unwrap_err().field,
            "tree_head.signature.certificate"
        );
        let mut wire = tree_head_to_proto(&head());
        wire.signature.as_mut().unwrap().certificate_sha256 = vec![0; 32];
        assert_eq!(
            tree_head_from_proto(wire).unwrap_err().field,
            "tree_head.signature.certificate_sha256"
        );
        let mut wire = tree_head_to_proto(&head());
        wire.root_hash.pop();
        assert_eq!(
            tree_head_from_proto(wire).unwrap_err().field,
            "tree_head.root_hash"
        );
        let mut wire = tree_head_to_proto(&head());
        wire.at.as_mut().unwrap().nanos += 1;
        assert_eq!(
            tree_head_from_proto(wire).unwrap_err().field,
            "tree_head.at"
        );
    }

    #[test]
    fn an_entry_keeps_absent_and_empty_apart() {
        let entry = AuditEntry {
            seq: 4,
            at_ms: 1_764_000_000_000,
            kind: "disclosure".into(),
            actor: "uid 1000".into(),
            peer: Some(String::new()),
            referral_id: None,
            subject: Some("CASE-1".into()),
            detail: "{}".into(),
            prev_hash: Vec::new(),
            hash: Vec::new(),
        };
        let back = proven_entry_from_proto(proven_entry_to_proto(&entry));
        assert_eq!(back, entry);
        assert_eq!(back.leaf(), entry.leaf());
    }
}
