//! Compiles the protocol with the pure-Rust `protox`, so no system `protoc` is needed, and writes
//! the descriptor set that gRPC server reflection serves.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "tatmx/v1/referral.proto",
        "tatmx/v1/federation.proto",
        "tatmx/v1/agency.proto",
        "tatmx/v1/admin.proto",
        "tatmx/v2/federation.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(protos, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // compile_fds ignores file_descriptor_set_path, so the reflection descriptor is written here.
    std::fs::write(out_dir.join("tatmx_descriptor.bin"), fds.encode_to_vec())?;
    // Bytes that do not decode are refused as INVALID_ARGUMENT with a reason code, not
    // tonic's INTERNAL: see src/codec.rs.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::TatmxCodec")
        .compile_fds(fds)?;

    // Compiled on its own so that the protocol's reflection descriptor never lists it. It
    // keeps tonic's own codec: it measures the bare transport, and no node serves it.
    let bench = "tatmx/bench/v1/echo.proto";
    println!("cargo:rerun-if-changed={bench}");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(protox::compile([bench], ["."])?)?;
    Ok(())
}
