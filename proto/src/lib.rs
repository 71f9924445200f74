//! The tatmx wire protocol, versions 1 and 2: generated gRPC services and messages.
//!
//! These types are the wire format only. In the node they stop at the edges that speak gRPC (the
//! Agency and Admin services and the federation protocol), which convert them to the node's own
//! domain types through `tatmx_node::convert`. The application layer, the policy, the console
//! and the store never see them: the store keeps a message's canonical bytes, which it gets from
//! `tatmx_node::wire` as plain bytes (see the project's `docs/ARCHITECTURE.md`).
#![forbid(unsafe_code)]

pub mod codec;

/// Package `tatmx.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("tatmx.v1");

    /// The encoded `FileDescriptorSet` of the protocol, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/tatmx_descriptor.bin"));
}

/// Package `tatmx.v2`: the federation protocol's version 2 (batches of signed bytes, receipts
/// over their Merkle root, Merkle audit logs). Its messages carry `tatmx.v1` messages as bytes.
pub mod v2 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("tatmx.v2");
}

/// Package `tatmx.bench.v1`: the bare echo `tatmx bench` measures its ceiling with. Not part of
/// the protocol; no node serves it.
pub mod bench {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("tatmx.bench.v1");
}

/// The newest protocol version this build speaks, exchanged in `Federation.Hello`.
pub const PROTOCOL_VERSION: u32 = 2;

/// Every protocol version this build speaks, oldest first; `Federation.Hello` announces them
/// and two nodes use the highest they share.
pub const PROTOCOL_VERSIONS: &[u32] = &[1, 2];
