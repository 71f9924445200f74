//! `tatmx.v2.Federation/GetAuditConsistency`, server side: a peer holding one of this node's
//! signed tree heads asks for a newer one and the RFC 9162 consistency proof (section 2.1.4)
//! that the newer tree extends the one it holds.
//!
//! The proof is O(log n) subtree hashes read from the stored tree, whatever the distance
//! between the two sizes; version 1's answer to the same question lists every leaf in between.
//! The caller is authorized as for every federation call, and a refusal is on the audit log.
//! Hashes say nothing of the entries, so any peer may ask.

use tatmx_proto::v2 as pb2;
use tonic::{Request, Response, Status};

use super::server::{FederationService, claimed, store_status};
use crate::convert;
use crate::refusal::{Reason, refuse};

/// The method as the audit of refused calls and the metrics name it.
const METHOD: &str = "v2.GetAuditConsistency";

/// Answers, and puts a refusal on the audit log.
pub(super) async fn get_audit_consistency(
    service: &FederationService,
    request: Request<pb2::AuditConsistencyRequest>,
) -> Result<Response<pb2::AuditConsistencyProof>, Status> {
    // As its certificate claims it, trusted or not: the audit of a refusal names who tried.
    let who = claimed(&request);
    let result = answer(service, &request).await;
    service.audited(who, METHOD, result).await
}

/// The newest signed tree head (or the one over `to_size` entries, when it is kept) and the
/// proof from `from_size` to it.
async fn answer(
    service: &FederationService,
    request: &Request<pb2::AuditConsistencyRequest>,
) -> Result<Response<pb2::AuditConsistencyProof>, Status> {
    let (peer, _) = service.caller(request, METHOD)?;
    let asked = request.get_ref();
    if asked.to_size != 0 && asked.from_size > asked.to_size {
        return Err(refuse(
            Reason::AuditRangeInvalid,
            "from_size must not exceed to_size",
        ));
    }
    let store = &service.store;
    let latest = store
        .latest_tree_head()
        .await
        .map_err(|e| store_status(&e))?
        .ok_or_else(|| {
            refuse(
                Reason::AuditRangeMissing,
                "this node has not signed an audit tree head yet",
            )
        })?;
    if asked.to_size > latest.tree_size {
        return Err(refuse(
            Reason::AuditRangeMissing,
            format!(
                "to_size: this node's newest signed tree head covers {} entries",
                latest.tree_size
            ),
        ));
    }
    let head = if asked.to_size == 0 || asked.to_size == latest.tree_size {
        latest
    } else {
        // A head audit retention removed is answered with the newest, which extends it too.
        store
            .tree_head_at(asked.to_size)
            .await
            .map_err(|e| store_status(&e))?
            .unwrap_or(latest)
    };
    if asked.from_size > head.tree_size {
        return Err(refuse(
            Reason::AuditRangeMissing,
            format!(
                "from_size: this node's newest signed tree head covers {} entries",
                head.tree_size
            ),
        ));
    }
    let path = store
        .audit_consistency_proof(asked.from_size, head.tree_size)
        .await
        .map_err(|e| store_status(&e))?
        .ok_or_else(|| {
            refuse(
                Reason::AuditRangeMissing,
                format!(
                    "the audit tree's hashes from {} to {} entries are not all in this node's store",
                    asked.from_size, head.tree_size
                ),
            )
        })?;
    tracing::debug!(
        peer = %peer.identity(),
        from = asked.from_size,
        to = head.tree_size,
        hashes = path.len(),
        "audit consistency proof given"
    );
    Ok(Response::new(pb2::AuditConsistencyProof {
        tree_head: Some(convert::tree_head_to_proto(&head)),
        path: path.iter().map(|h| h.to_vec()).collect(),
    }))
}
