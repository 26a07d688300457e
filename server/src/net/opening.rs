//! Deadline for a connection's opening bytes (hyper has no handshake timeout of its own).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Bytes a client sends first: the 24-byte HTTP/2 preface and a SETTINGS frame header.
const OPENING_BYTES: u64 = 24 + 9;

/// Wraps every accepted connection of `incoming` in [`OpeningDeadline`].
pub fn opening_deadline<S, IO>(
    incoming: S,
    deadline: std::time::Duration,
) -> impl futures::Stream<Item = std::io::Result<OpeningDeadline<IO>>>
where
    S: futures::Stream<Item = std::io::Result<IO>>,
{
    use futures::StreamExt;
    incoming.map(move |r| r.map(|io| OpeningDeadline::new(io, deadline)))
}

/// A connection that fails its reads (so the server closes it) unless its first
/// [`OPENING_BYTES`] arrive within the deadline.
#[derive(Debug)]
pub struct OpeningDeadline<IO> {
    inner: IO,
    read: u64,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<IO> OpeningDeadline<IO> {
    fn new(inner: IO, deadline: std::time::Duration) -> Self {
        Self {
            inner,
            read: 0,
            timer: Some(Box::pin(tokio::time::sleep(deadline))),
        }
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected
    for OpeningDeadline<IO>
{
    type ConnectInfo = IO::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for OpeningDeadline<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Some(timer) = &mut this.timer {
            this.read += (buf.filled().len() - before) as u64;
            if this.read >= OPENING_BYTES {
                this.timer = None;
            } else if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client did not send its opening in time",
                )));
            }
        }
        r
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for OpeningDeadline<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
