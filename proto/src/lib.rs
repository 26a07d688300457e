//! The Redline protocol: everything two parties must agree on byte for byte.
//!
//! - [`pb`]: the generated `redline.v1` messages, and with the `grpc` feature the tonic services.
//! - [`signal`]: signal types (`pdq`, `md5`, `vpdq`, …) and their hex codec.
//! - [`vpdq`]: the bytes of a vPDQ value (a list of frame hashes).
//! - [`entry`]: building, encoding and validating log leaves ([`pb::EntryBody`]).
//! - [`merkle`]: RFC 9162 tree hashing and proofs over stored hashes.
//! - [`checkpoint`]: C2SP tlog-checkpoints signed as C2SP signed-notes with Ed25519.
//! - [`replay`]: the log's rules (validity, retraction, the active set): one verifier for all.
//! - [`consistency`]: whether a verified checkpoint extends the head a holder has.
//! - [`tiles`]: C2SP tlog-tiles paths, which tiles a tree holds, and entry bundles.
//! - [`proof`]: C2SP tlog-proofs, an entry's offline-verifiable inclusion in a signed checkpoint.
//!
//! The server, the client's auditor and any platform use this one implementation.

pub mod checkpoint;
pub mod consistency;
pub mod entry;
pub mod merkle;
pub mod proof;
pub mod replay;
pub mod signal;
pub mod tiles;
pub mod vpdq;

/// Generated code for package `redline.v1`.
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod pb {
    // The prost messages always; the tonic client and server modules only with the `grpc`
    // feature (build.rs). Plain `include!` so that the messages need no tonic.
    include!(concat!(env!("OUT_DIR"), "/redline.v1.rs"));

    /// Encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/redline_v1_descriptor.bin"));
}

pub use merkle::Hash;
