//! The Redline protocol: everything two parties must agree on byte for byte.
//!
//! - [`pb`]: the generated `redline.v1` gRPC messages and services.
//! - [`signal`]: signal types (`pdq`, `md5`, …) and their hex codec.
//! - [`entry`]: building, encoding and validating log leaves ([`pb::EntryBody`]).
//! - [`merkle`]: RFC 9162 tree hashing and proofs over stored hashes.
//! - [`checkpoint`]: C2SP tlog-checkpoints signed as C2SP signed-notes with Ed25519.
//!
//! The server, the client's auditor and any platform use this one implementation.

pub mod checkpoint;
pub mod entry;
pub mod merkle;
pub mod signal;

/// Generated code for package `redline.v1`.
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod pb {
    tonic::include_proto!("redline.v1");

    /// Encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("redline_v1_descriptor");
}

pub use merkle::Hash;
