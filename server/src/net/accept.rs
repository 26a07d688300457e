//! The listener's accept loop: admits each connection under the caps ([`Connections`]), runs
//! its handshake (TLS or none) on its own task under the handshake deadline, and hands the
//! ready stream to tonic, so a stalled handshake holds only its own task and permit.
//!
//! Accept errors other than those about the one connection being accepted (out of file
//! descriptors: `EMFILE`, `ENFILE`; out of buffers or memory) are retried with a doubling
//! delay, logged once per [`LOG_EVERY`]: the pending connection stays in the kernel's queue,
//! so retrying at once would spin a core, while open connections keep being served.

use super::caps::{Connections, Permit};
use super::idle::Conn;
use super::opening::OpeningDeadline;
use crate::metrics::Metrics;
use futures::Stream;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::server::Connected;

/// How often a repeated accept problem (or refusal) is logged at most.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// First delay after an accept error that is not about one connection.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest such delay.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What turns an accepted TCP stream into the stream HTTP/2 is read from.
pub trait Handshake: Clone + Send + Sync + 'static {
    /// The resulting stream.
    type Io: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static;
    /// Runs the handshake (the caller bounds it by the handshake deadline).
    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// No handshake: plain HTTP/2.
#[derive(Debug, Clone, Copy)]
pub struct Plain;

impl Handshake for Plain {
    type Io = TcpStream;
    async fn handshake(&self, tcp: TcpStream) -> io::Result<TcpStream> {
        Ok(tcp)
    }
}

/// Where connections come from (a [`TcpListener`]; a scripted one in tests).
pub trait Accept: Send + 'static {
    /// The next connection, or the error `accept(2)` gave.
    fn accept(&mut self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    fn accept(&mut self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        TcpListener::accept(self)
    }
}

/// A stream handed to tonic: admitted, handshaken, with its opening deadline and idle timeout.
pub type Accepted<IO> = Conn<OpeningDeadline<IO>>;

/// Per-connection timing.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// From accept to the end of the HTTP/2 opening (TLS handshake included).
    pub handshake: Duration,
    /// Without a call for this long, the connection is closed (`ZERO`: never).
    pub idle: Duration,
}

/// Accepts from `listener` on a task of its own; the returned stream yields the connections
/// ready for HTTP/2. Dropping the stream stops accepting and closes the listener.
pub fn incoming<A: Accept, H: Handshake>(
    listener: A,
    handshake: H,
    connections: Arc<Connections>,
    metrics: Arc<Metrics>,
    timing: Timing,
) -> impl Stream<Item = io::Result<Accepted<H::Io>>> {
    use futures::StreamExt;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(accept_loop(
        listener,
        handshake,
        connections,
        metrics,
        timing,
        tx,
    ));
    tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok)
}

/// Whether an accept error is about the one connection being accepted (reset or aborted
/// before it was taken, or a network error Linux reports on it): retried at once.
pub fn about_one_connection(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted
            | ConnectionReset
            | ConnectionRefused
            | Interrupted
            | WouldBlock
            | TimedOut
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
    )
}

/// The delay before retrying accept after errors not about one connection: doubling from
/// [`BACKOFF_MIN`] to [`BACKOFF_MAX`], back to the minimum after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: BACKOFF_MIN }
    }
}

impl Backoff {
    /// After an error: how long to wait.
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
    }

    /// After a success.
    pub fn succeeded(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

/// Logs a repeated event at most once per period, with how many were not logged.
#[derive(Debug)]
pub struct RateLog {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLog {
    /// At most once per `period`.
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// The event happened: `Some(suppressed since the last log)` when it should be logged.
    pub fn tick(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|l| now < l + self.period) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

async fn accept_loop<A: Accept, H: Handshake>(
    mut listener: A,
    handshake: H,
    connections: Arc<Connections>,
    metrics: Arc<Metrics>,
    timing: Timing,
    tx: mpsc::Sender<Accepted<H::Io>>,
) where
    H::Io: Send,
{
    let mut backoff = Backoff::default();
    let mut trouble = RateLog::new(LOG_EVERY);
    let mut refusals = RateLog::new(LOG_EVERY);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = tx.closed() => return,
        };
        match accepted {
            Ok((tcp, remote)) => {
                backoff.succeeded();
                let deadline = Instant::now() + timing.handshake;
                match connections.admit(remote) {
                    Ok(permit) => {
                        tokio::spawn(open(
                            tcp,
                            permit,
                            handshake.clone(),
                            deadline,
                            timing.idle,
                            metrics.clone(),
                            tx.clone(),
                        ));
                    }
                    Err(refusal) => {
                        metrics.rejected("connection", refusal.reason());
                        if let Some(suppressed) = refusals.tick() {
                            tracing::warn!(
                                %remote,
                                reason = refusal.reason(),
                                open = connections.open(),
                                from_address = connections.open_from(remote.ip()),
                                suppressed,
                                "connection refused: over the connection cap \
                                 ([limits] max_connections, max_connections_per_address)"
                            );
                        }
                        // A reset, not a FIN: no TIME_WAIT left behind per refusal.
                        let _ = tcp.set_zero_linger();
                    }
                }
            }
            Err(e) if about_one_connection(&e) => {}
            Err(e) => {
                let wait = backoff.failed();
                if let Some(suppressed) = trouble.tick() {
                    tracing::error!(
                        error = %e,
                        retry_in_ms = wait.as_millis() as u64,
                        open = connections.open(),
                        suppressed,
                        "cannot accept connections (out of file descriptors?); retrying with \
                         backoff, open connections are still served"
                    );
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = tx.closed() => return,
                }
            }
        }
    }
}

/// One connection's way to HTTP/2: the handshake by `deadline`, then the stream to tonic
/// with the rest of the deadline for its opening.
async fn open<H: Handshake>(
    tcp: TcpStream,
    permit: Permit,
    handshake: H,
    deadline: Instant,
    idle: Duration,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<Accepted<H::Io>>,
) {
    let _ = tcp.set_nodelay(true);
    let remote = permit.remote();
    let io = match tokio::time::timeout_at(deadline, handshake.handshake(tcp)).await {
        Ok(Ok(io)) => io,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "handshake failed");
            metrics.rejected("connection", "handshake_failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "handshake not complete in handshake_timeout_ms");
            metrics.rejected("connection", "handshake_timeout");
            return;
        }
    };
    let conn = Conn::new(OpeningDeadline::new(io, deadline), permit, idle);
    let _ = tx.send(conn).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A listener out of file descriptors: every accept fails with `EMFILE`.
    struct Exhausted(Arc<AtomicU64>);

    impl Accept for Exhausted {
        async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(io::Error::from_raw_os_error(24)) // EMFILE
        }
    }

    #[test]
    fn resource_errors_back_off_and_connection_errors_do_not() {
        assert!(!about_one_connection(&io::Error::from_raw_os_error(24))); // EMFILE
        assert!(!about_one_connection(&io::Error::from_raw_os_error(23))); // ENFILE
        assert!(!about_one_connection(&io::Error::from_raw_os_error(105))); // ENOBUFS
        assert!(about_one_connection(&io::Error::from_raw_os_error(103))); // ECONNABORTED
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..10).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(), BACKOFF_MIN);
    }

    #[tokio::test(start_paused = true)]
    async fn an_accept_loop_out_of_file_descriptors_does_not_spin() {
        let tries = Arc::new(AtomicU64::new(0));
        let incoming = incoming(
            Exhausted(tries.clone()),
            Plain,
            Connections::new(10, 10),
            Arc::new(Metrics::new()),
            Timing {
                handshake: Duration::from_secs(1),
                idle: Duration::ZERO,
            },
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
        // 10+20+...+640 ms, then once a second: 8 tries in the first 1.27 s, then ~59 more.
        let n = tries.load(Ordering::Relaxed);
        assert!((60..=70).contains(&n), "{n} accept calls in 60 s");
        // Dropping the stream ends the loop.
        drop(incoming);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after = tries.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(tries.load(Ordering::Relaxed), after);
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_events_are_logged_once_per_period() {
        let mut log = RateLog::new(Duration::from_secs(10));
        assert_eq!(log.tick(), Some(0));
        for _ in 0..99 {
            assert_eq!(log.tick(), None);
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(log.tick(), Some(99));
    }
}
