//! Generates the `redline.v1` code: the prost messages always, the tonic client and server code
//! only with the `grpc` feature. protoc comes from the `protoc-bin-vendored` crate so that a fresh
//! machine builds without a system protoc.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        // SAFETY-free: build scripts are single-threaded; set_var is how prost-build finds protoc.
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // The edition-2024 `unsafe` marker is not needed on edition 2021.
        std::env::set_var("PROTOC", protoc);
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "redline/v1/log.proto",
        "redline/v1/submission.proto",
        "redline/v1/audit.proto",
        "redline/v1/matching.proto",
        "redline/v1/federation.proto",
        "redline/v1/node.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_server(grpc)
        .build_client(grpc)
        .file_descriptor_set_path(out_dir.join("redline_v1_descriptor.bin"))
        .compile_protos(&protos, &["."])?;
    Ok(())
}
