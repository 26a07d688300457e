//! Connections to the gRPC listener, and what bounds each one below the request guard:
//!
//! - [`accept`]: the accept loop (backs off when out of file descriptors) and each
//!   connection's handshake on its own task;
//! - [`caps`]: global and per-address connection caps, checked at accept;
//! - [`tls`]: TLS with a handshake deadline and certificates reloaded from disk;
//! - [`opening`]: the HTTP/2 preface and first SETTINGS, on the decrypted stream, by the same
//!   deadline (`[limits] handshake_timeout_ms` from accept);
//! - [`idle`]: connections without a call for `idle_timeout_ms` are closed.
//!
//! The maximum connection age is hyper's graceful GOAWAY, set on tonic's server builder
//! ([`crate::grpc::router`]).
//!
//! This layer knows the configuration and metrics only; the gRPC router imports it (for the
//! call tracker), never the other way.

pub mod accept;
pub mod caps;
pub mod idle;
pub mod opening;
pub mod tls;

pub use accept::{incoming, Accepted, Handshake, Plain, Timing};
pub use caps::{Connections, Refusal};
pub use idle::CallTracker;
pub use opening::OpeningDeadline;
pub use tls::{Certificates, TlsError};

use crate::config::Limits;
use std::sync::Arc;
use std::time::Duration;

/// The connection registry sized by `limits`.
pub fn connections(limits: &Limits) -> Arc<Connections> {
    Connections::new(limits.max_connections, limits.max_connections_per_address)
}

/// The per-connection timing of `limits`.
pub fn timing(limits: &Limits) -> Timing {
    Timing {
        handshake: Duration::from_millis(limits.handshake_timeout_ms),
        idle: Duration::from_millis(limits.idle_timeout_ms),
    }
}
