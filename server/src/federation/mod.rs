//! Federation: replicating other origins' logs from peers, trusting nothing but origin keys.
//! It calls the node's services (judging and applying checkpoints, keeping evidence, reporting
//! peer status); the node knows nothing of it.
//!
//! - [`replicate`]: what to make of a checkpoint a peer offers (verify the origin's signature,
//!   compare with what we hold: stale, current, ahead, or equivocation), fetching the entries we
//!   lack, and what to keep as evidence. The node's replica service commits them.
//! - [`sync`]: one task per configured peer: subscribe to its pushed checkpoints, pull and
//!   gossip periodically as a fallback, reconnect with exponential backoff.
//! - [`backoff`]: reconnect delays with jitter, reset after a good session.
//! - [`client`]: connections to peers (TLS, client certificates, bearer tokens), with message
//!   size limits per kind of answer.
//! - [`gossip`]: checkpoints a peer tells us it holds, considered like pulled ones.
//! - [`bounded`]: checkpoint lists decoded with a cap on how many are kept.
//! - [`peers`]: what the sync loop remembers of offers (rollbacks, checkpoints too large).

pub mod backoff;
pub mod bounded;
pub mod client;
pub mod gossip;
pub mod peers;
pub mod replicate;
pub mod sync;
