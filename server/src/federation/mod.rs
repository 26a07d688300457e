//! Federation: replicating other origins' logs from peers, trusting nothing but origin keys.
//!
//! - [`replicate`]: what to make of a checkpoint a peer offers (verify the origin's signature,
//!   compare with what we hold: stale, current, ahead, or equivocation), and how to fetch,
//!   verify and commit the entries we lack. Anything refused is kept as evidence.
//! - [`sync`]: one task per configured peer: subscribe to its pushed checkpoints, pull and
//!   gossip periodically as a fallback, reconnect with exponential backoff.
//! - [`client`]: connections to peers (TLS, client certificates, bearer tokens), with message
//!   size limits per kind of answer.
//! - [`bounded`]: checkpoint lists decoded with a cap on how many are kept.
//! - [`peers`]: what operators see of each peer and of origins offered but not trusted.

pub mod bounded;
pub mod client;
pub mod peers;
pub mod replicate;
pub mod sync;

pub use peers::PeerTable;
