//! Idle connections are closed: one with no call in flight for `idle_timeout_ms`, counted
//! from its opening or from the end of its last call (gRPC's `MAX_CONNECTION_IDLE`).
//!
//! Calls, not bytes, because the server's own HTTP/2 keepalive PINGs are answered by every
//! client, so an idle connection is never silent. The [`CallTracker`] layer in front of the
//! services counts the calls of each connection (found by its remote address in
//! [`Connections`]); [`Conn`], the stream hyper reads, fails its read once the connection has
//! been idle long enough, which closes it. Nothing is in flight then, so no call is cut; a
//! request racing the close fails like one on any dropped connection, and clients reconnect.
//! (Closing with a GOAWAY instead would need hyper's connection handle, which tonic keeps.)

use super::caps::{Connections, Permit};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Instant;
use tonic::body::Body;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

/// Calls in flight on one connection, and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    calls: AtomicUsize,
    /// Milliseconds after `epoch` when `calls` last fell to zero (or the connection opened).
    idle_since_ms: AtomicU64,
}

impl Activity {
    /// A connection opened now, with no call.
    pub fn new(epoch: Instant) -> Self {
        let a = Self {
            epoch,
            calls: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        };
        a.touch();
        a
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.idle_since_ms.store(ms, Ordering::Release);
    }

    /// Counts a call until the guard is dropped.
    pub fn call(self: &Arc<Self>) -> CallGuard {
        self.calls.fetch_add(1, Ordering::AcqRel);
        CallGuard(self.clone())
    }

    /// Calls in flight.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Acquire)
    }

    /// When the connection will have been idle for `idle`: `None` while a call is in flight.
    pub fn idle_deadline(&self, idle: Duration) -> Option<Instant> {
        if self.calls() > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.epoch + since + idle)
    }
}

/// One call in flight; see [`Activity::call`].
#[derive(Debug)]
pub struct CallGuard(Arc<Activity>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        // Touch first: a reader that sees zero calls also sees the new idle start.
        self.0.touch();
        self.0.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An accepted connection as hyper sees it: holds its [`Permit`] (its place under the caps)
/// for as long as its stream lives, and fails its reads once it has been idle too long.
#[derive(Debug)]
pub struct Conn<IO> {
    inner: IO,
    permit: Permit,
    /// `None`: no idle timeout.
    idle: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
}

impl<IO> Conn<IO> {
    /// Wraps `inner`, admitted with `permit`; closed after `idle` without a call (`ZERO`:
    /// never).
    pub fn new(inner: IO, permit: Permit, idle: Duration) -> Self {
        let idle = (!idle.is_zero()).then(|| {
            let at = permit
                .activity()
                .idle_deadline(idle)
                .unwrap_or_else(|| Instant::now() + idle);
            (idle, Box::pin(tokio::time::sleep_until(at)))
        });
        Self {
            inner,
            permit,
            idle,
        }
    }

    /// Whether the idle timeout has passed (registers the timer's wakeup when not).
    fn idle_expired(&mut self, cx: &mut Context<'_>, read_something: bool) -> bool {
        let Some((idle, timer)) = &mut self.idle else {
            return false;
        };
        while timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            match self.permit.activity().idle_deadline(*idle) {
                // Bytes that arrive as the timer fires may be the next call: let it start.
                Some(at) if at <= now && !read_something => return true,
                Some(at) if at > now => timer.as_mut().reset(at),
                _ => timer.as_mut().reset(now + *idle),
            }
        }
        false
    }
}

impl<IO: Connected> Connected for Conn<IO> {
    type ConnectInfo = IO::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Conn<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read_something = buf.filled().len() > before;
        if this.idle_expired(cx, read_something) {
            tracing::debug!(remote = %this.permit.remote(), "closing an idle connection");
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the connection was idle for idle_timeout_ms",
            )));
        }
        r
    }
}

super::forward_async_write!(Conn);

/// The remote address tonic put in a request's extensions (plain or TLS connection).
fn remote_addr(req: &http::Request<Body>) -> Option<SocketAddr> {
    let ext = req.extensions();
    ext.get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
}

/// Layer counting each connection's calls in flight (until the response body ends).
#[derive(Debug, Clone)]
pub struct CallTracker {
    connections: Arc<Connections>,
}

impl CallTracker {
    /// Counts calls into the [`Activity`] of `connections`.
    pub fn new(connections: Arc<Connections>) -> Self {
        Self { connections }
    }
}

impl<S> tower::Layer<S> for CallTracker {
    type Service = Tracked<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Tracked {
            inner,
            connections: self.connections.clone(),
        }
    }
}

/// See [`CallTracker`].
#[derive(Debug, Clone)]
pub struct Tracked<S> {
    inner: S,
    connections: Arc<Connections>,
}

impl<S> tower::Service<http::Request<Body>> for Tracked<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let guard = remote_addr(&req)
            .and_then(|a| self.connections.activity(a))
            .map(|a| a.call());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            Ok(match guard {
                None => resp,
                Some(guard) => resp.map(|body| {
                    Body::new(TrackedBody {
                        inner: body,
                        guard: Some(guard),
                    })
                }),
            })
        })
    }
}

/// A response body that holds its call's [`CallGuard`] until it ends or is dropped.
struct TrackedBody {
    inner: Body,
    guard: Option<CallGuard>,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) {
            self.guard = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_calls_is_closed_after_the_idle_timeout() {
        let conns = Connections::new(10, 10);
        let permit = conns.admit("10.0.0.1:5".parse().unwrap()).unwrap();
        let activity = permit.activity().clone();
        let (mut client, server) = tokio::io::duplex(64);
        let mut conn = Conn::new(server, permit, Duration::from_secs(10));
        let start = tokio::time::Instant::now();

        // A call in flight from 5 s to 25 s keeps it open; PINGs (bytes) do not count.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) => return Err("eof"),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Ok(()),
                    Err(_) => return Err("other error"),
                }
            }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        let call = activity.call();
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            client.write_all(b"p").await.unwrap();
        }
        drop(call);
        assert!(!reader.is_finished());
        reader.await.unwrap().unwrap();
        let closed = start.elapsed();
        assert!(
            closed >= Duration::from_secs(35) && closed < Duration::from_secs(36),
            "{closed:?}"
        );
        // Its place is freed with the stream.
        assert_eq!(conns.open(), 0);
    }
}
