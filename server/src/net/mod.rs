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

/// `AsyncWrite` for a connection wrapper that only watches reads (the opening deadline, the
/// idle timer): every write call goes straight to its `inner` stream.
macro_rules! forward_async_write {
    ($wrapper:ident) => {
        impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<IO> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}
pub(crate) use forward_async_write;

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

/// Warns when `max_connections` cannot be reached: past the process's open-file limit (less
/// what the store and the runtime hold) accepts fail with `EMFILE` instead, which the accept
/// loop survives ([`accept`]) but which refuses callers without a count or a reason. Linux
/// only (`/proc/self/limits`); elsewhere nothing is checked.
pub fn check_open_file_limit(limits: &Limits) {
    const RESERVE: u64 = 64;
    let Some(soft) = open_file_limit() else {
        return;
    };
    if (limits.max_connections as u64).saturating_add(RESERVE) > soft {
        tracing::warn!(
            max_connections = limits.max_connections,
            open_file_limit = soft,
            "[limits] max_connections is above what the open-file limit allows (less {RESERVE} \
             for the store and the runtime): raise the limit (systemd LimitNOFILE, ulimit -n) \
             or lower max_connections"
        );
    }
}

/// The soft `Max open files` of this process, from `/proc/self/limits`.
fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The per-connection timing of `limits`.
pub fn timing(limits: &Limits) -> Timing {
    Timing {
        handshake: Duration::from_millis(limits.handshake_timeout_ms),
        idle: Duration::from_millis(limits.idle_timeout_ms),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_open_file_limit_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(super::open_file_limit().is_some_and(|n| n > 0));
        }
    }
}
