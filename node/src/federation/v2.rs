//! The Federation API, protocol version 2, server side: batches of signed bytes, answered with
//! one signed receipt, and Merkle consistency proofs of the audit log.
//!
//! Served beside version 1 on the same port; two nodes agree on the version with
//! `tatmx.v1.Federation.Hello` ([`crate::version`]). The checks are version 1's, message by
//! message, through the same handlers of [`super::server`]: what changes is how messages
//! travel and how their evidence is kept (docs/PROTOCOL.md).

use tatmx_proto::v2 as pb2;
use tatmx_proto::v2::federation_server::Federation;
use tonic::{Request, Response, Status};

use super::server::FederationService;

/// The most messages one batch may carry.
pub const MAX_BATCH_MESSAGES: usize = 256;

/// The most payload bytes a sender puts in one batch of several messages. A message larger
/// than this travels in a batch of its own, up to the node's largest message.
pub const BATCH_BYTES: usize = 1 << 20;

/// The largest batch a node with messages of at most `max_message_bytes` accepts: a batch of
/// one largest message, or of many smaller ones up to [`BATCH_BYTES`], with room for the
/// envelopes, signature and tree head around them.
pub fn max_batch_bytes(max_message_bytes: usize) -> usize {
    max_message_bytes.max(BATCH_BYTES).saturating_add(64 * 1024)
}

/// The peer-facing gRPC service of protocol version 2.
#[derive(Debug, Clone)]
pub struct FederationV2 {
    /// Version 1's service, whose checks and state every message goes through.
    inner: FederationService,
}

impl FederationV2 {
    /// Serves version 2 over the same state as `inner`.
    pub fn new(inner: FederationService) -> Self {
        Self { inner }
    }
}

#[tonic::async_trait]
impl Federation for FederationV2 {
    async fn deliver(
        &self,
        request: Request<pb2::Batch>,
    ) -> Result<Response<pb2::BatchReceipt>, Status> {
        let _ = (&self.inner, request);
        Err(Status::unimplemented("batches are not served yet"))
    }

    async fn get_audit_consistency(
        &self,
        request: Request<pb2::AuditConsistencyRequest>,
    ) -> Result<Response<pb2::AuditConsistencyProof>, Status> {
        super::consistency::get_audit_consistency(&self.inner, request).await
    }
}
