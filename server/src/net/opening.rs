//! The opening deadline: hyper has no handshake timeout of its own, so a client that connects
//! and then trickles (or never sends) its HTTP/2 preface would hold a connection for ever.
//! HTTP/1.1 clients (of the HTTP API) open with a request instead: for them the opening is the
//! head of that first request, up to the blank line; later requests on a kept-alive
//! connection are bounded by the idle timeout ([`super::idle`]).
//!
//! [`OpeningDeadline`] wraps the stream hyper reads, which under TLS is the decrypted one:
//! counting raw TCP bytes there would let 33 bytes of a ClientHello switch the deadline off.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Instant;

/// The 24-byte HTTP/2 client preface.
const PREFACE: usize = 24;
/// An HTTP/2 frame header.
const FRAME_HEADER: usize = 9;
/// What a client sends first: the preface and the header of its first frame (SETTINGS).
const OPENING_HEAD: usize = PREFACE + FRAME_HEADER;
/// The largest first frame waited for: h2's default `SETTINGS_MAX_FRAME_SIZE`, beyond which
/// h2 refuses the frame itself.
const MAX_FIRST_FRAME: usize = 16_384;

/// A connection that fails its reads (so the server closes it) unless its opening, the
/// preface and the whole first frame (SETTINGS), has been read by `deadline`.
#[derive(Debug)]
pub struct OpeningDeadline<IO> {
    inner: IO,
    /// Bytes read so far, while the opening is incomplete.
    read: usize,
    /// The first [`OPENING_HEAD`] bytes, to learn the first frame's length.
    head: [u8; OPENING_HEAD],
    /// Cleared once the opening is complete.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// For an HTTP/1.1 opening: how much of the blank line ending its head (`\r\n\r\n`)
    /// the bytes read last end with.
    blank_line: usize,
}

/// The HTTP/2 preface's first bytes; anything else opens an HTTP/1.1 connection.
const PREFACE_START: &[u8; 4] = b"PRI ";
/// What ends an HTTP/1.1 request head.
const BLANK_LINE: &[u8; 4] = b"\r\n\r\n";
/// The longest HTTP/1.1 request head waited for (hyper refuses longer ones itself).
const MAX_HTTP1_HEAD: usize = 64 * 1024;

impl<IO> OpeningDeadline<IO> {
    /// Wraps `inner`, whose opening must be read by `deadline`.
    pub fn new(inner: IO, deadline: Instant) -> Self {
        Self {
            inner,
            read: 0,
            head: [0; OPENING_HEAD],
            timer: Some(Box::pin(tokio::time::sleep_until(deadline))),
            blank_line: 0,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &IO {
        &self.inner
    }

    /// Whether the opening has been read in full.
    pub fn opened(&self) -> bool {
        self.timer.is_none()
    }

    /// Notes `bytes` just read; clears the timer once the opening is complete.
    fn saw(&mut self, bytes: &[u8]) {
        let before = self.read;
        if self.read < OPENING_HEAD {
            let n = bytes.len().min(OPENING_HEAD - self.read);
            self.head[self.read..self.read + n].copy_from_slice(&bytes[..n]);
        }
        self.read = self.read.saturating_add(bytes.len());
        if self.read >= PREFACE_START.len() && &self.head[..PREFACE_START.len()] != PREFACE_START {
            self.saw_http1(bytes, before);
            return;
        }
        if self.read < OPENING_HEAD {
            return;
        }
        let [a, b, c] = [
            self.head[PREFACE],
            self.head[PREFACE + 1],
            self.head[PREFACE + 2],
        ];
        let len =
            (usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c)).min(MAX_FIRST_FRAME);
        if self.read >= OPENING_HEAD + len {
            self.timer = None;
        }
    }
}

impl<IO> OpeningDeadline<IO> {
    /// Notes `bytes` of an HTTP/1.1 opening (read after `before` bytes): complete at the end of
    /// the first request's head.
    fn saw_http1(&mut self, bytes: &[u8], before: usize) {
        let room = MAX_HTTP1_HEAD.saturating_sub(before);
        for &b in &bytes[..bytes.len().min(room)] {
            self.blank_line = if b == BLANK_LINE[self.blank_line] {
                self.blank_line + 1
            } else if b == BLANK_LINE[0] {
                1
            } else {
                0
            };
            if self.blank_line == BLANK_LINE.len() {
                self.timer = None;
                return;
            }
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

impl<IO: AsyncRead + Unpin> AsyncRead for OpeningDeadline<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.timer.is_some() {
            this.saw(&buf.filled()[before..]);
        }
        if let Some(timer) = &mut this.timer {
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client did not send its HTTP/2 opening (or HTTP/1.1 request head) in time",
                )));
            }
        }
        r
    }
}

super::forward_async_write!(OpeningDeadline);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn opening(settings_len: usize) -> Vec<u8> {
        let mut v = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        let l = settings_len as u32;
        v.extend([(l >> 16) as u8, (l >> 8) as u8, l as u8, 0x4, 0, 0, 0, 0, 0]);
        v.extend(std::iter::repeat_n(0u8, settings_len));
        v
    }

    /// Reads until EOF or an error; whether it was the deadline's error.
    async fn read_all(conn: &mut OpeningDeadline<tokio::io::DuplexStream>) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) => return e.kind() == std::io::ErrorKind::TimedOut,
            }
        }
    }

    /// An HTTP/1.1 client's opening is its first request head: a head cut before its blank
    /// line is closed at the deadline, a whole one (sent in pieces, `\r` split from `\n`)
    /// clears it.
    #[tokio::test(start_paused = true)]
    async fn an_http1_request_head_must_arrive_in_time() {
        let head = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
        let (mut client, server) = tokio::io::duplex(1024);
        let mut conn = OpeningDeadline::new(server, Instant::now() + Duration::from_secs(2));
        client.write_all(&head[..head.len() - 1]).await.unwrap();
        assert!(read_all(&mut conn).await, "cut at the deadline");
        assert!(!conn.opened());

        let (mut client, server) = tokio::io::duplex(1024);
        let mut conn = OpeningDeadline::new(server, Instant::now() + Duration::from_secs(2));
        let mut buf = vec![0u8; head.len()];
        let split = head.len() - 3;
        client.write_all(&head[..split]).await.unwrap();
        conn.read_exact(&mut buf[..split]).await.unwrap();
        assert!(!conn.opened());
        client.write_all(&head[split..]).await.unwrap();
        conn.read_exact(&mut buf[split..]).await.unwrap();
        assert!(conn.opened());
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(client);
        assert!(!read_all(&mut conn).await, "EOF, not the deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn the_whole_first_settings_frame_must_arrive_in_time() {
        // Preface and frame header complete, but 6 of the 12 SETTINGS payload bytes missing.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut conn = OpeningDeadline::new(server, Instant::now() + Duration::from_secs(2));
        let bytes = opening(12);
        client.write_all(&bytes[..bytes.len() - 6]).await.unwrap();
        assert!(read_all(&mut conn).await, "cut at the deadline");
        assert!(!conn.opened());

        // The complete opening clears the deadline: reads continue past it.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut conn = OpeningDeadline::new(server, Instant::now() + Duration::from_secs(2));
        client.write_all(&opening(12)).await.unwrap();
        let mut buf = vec![0u8; opening(12).len()];
        conn.read_exact(&mut buf).await.unwrap();
        assert!(conn.opened());
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(client);
        assert!(!read_all(&mut conn).await, "EOF, not the deadline");
    }
}
