//! Exact Hamming-distance range search for Redline's perceptual-hash lists.
//!
//! Platforms check uploads against the merged lists of every trusted
//! hotline on their upload path, so a match query must be exact (a missed
//! near-duplicate is a missed victim) and fast (it sits in front of every
//! upload). [`HammingIndex`] answers "every stored id within distance `d`"
//! exactly for any `d`, using multi-index hashing with flat substring
//! tables for the small radii that matter (PDQ's 31 and below) and a
//! popcount scan otherwise. [`ExactIndex`] covers md5/sha256-style
//! equality lookups with the same shape.
//!
//! The crate is pure data structures: no I/O, no async, no unsafe code.
//!
//! Memory: about 32 bytes for a PDQ hash itself plus ~70 bytes of ids,
//! id map and substring tables at a million hashes (see the benchmark
//! in `benches/match_vs_faiss.rs`).

mod bits;
mod core;
mod error;
mod exact;
mod hamming;
mod idmap;
mod plan;
mod segment;
mod store;
mod table;

pub use bits::hamming_distance;
pub use error::IndexError;
pub use exact::ExactIndex;
pub use hamming::{HammingIndex, IndexOptions, Strategy};
