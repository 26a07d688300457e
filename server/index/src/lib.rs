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
//! An index can be saved to and loaded from any `Write`/`Read` ([`HammingIndex::save`],
//! [`snapshot`]), so a restart copies what a build took minutes to make.
//!
//! The crate is pure data structures: no files, no async, no unsafe code
//! (prefetching goes through the tiny `prefetch-index` crate). Distances
//! use `u64::count_ones`, which is a single `popcnt` only when the build
//! targets `x86-64-v2` or newer (`-C target-cpu=...`); the plain `x86-64`
//! baseline falls back to a slower bit-twiddling popcount.
//!
//! ```
//! use redline_index::HammingIndex;
//! let mut index = HammingIndex::new(256)?; // PDQ
//! index.insert(7, &[0u8; 32])?;
//! index.insert(9, &[0xFF; 32])?;
//! let mut query = [0u8; 32];
//! query[0] = 0b101;
//! assert_eq!(index.range_search(&query, 31)?, vec![(7, 2)]);
//! # Ok::<(), redline_index::IndexError>(())
//! ```
//!
//! Memory ([`HammingIndex::heap_bytes`]), measured by the benchmark in
//! `benches/match_vs_faiss.rs`: 117 bytes a PDQ hash at 1M (the 32-byte hash,
//! 8-byte id, ~8-byte id map, 16 tables × 4 bytes, ~4 bytes of
//! directories), i.e. 85 bytes beyond the hash; 104 bytes (72 beyond) at 10M
//! with 13 tables. A linear-scan-only index needs ~48.

mod bits;
mod blocked;
mod core;
mod error;
mod exact;
mod hamming;
mod idmap;
mod merge;
mod plan;
mod segment;
pub mod snapshot;
mod store;
mod table;

pub use bits::hamming_distance;
pub use error::IndexError;
pub use exact::ExactIndex;
pub use hamming::{BuiltRun, HammingIndex, IndexOptions, LiveEntries, RunBuilder, Strategy};
pub use merge::{BuiltMerge, MergeJob, MergeStats};
