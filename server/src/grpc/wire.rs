//! A pre-scan of request bytes as they arrive, before prost materialises them.
//!
//! Protobuf lets a small message stand for a large value: an empty `Signal` is 2 bytes on the
//! wire and 56 in memory (two `String`s and a `u32`, doubled again by `Vec` growth), so a
//! 21 MB Match of empty signals decoded into ~0.9 GiB before the handler could count them
//! (the issue measured +555 MiB of peak memory for 10,000,000 of them). The same holds for
//! every repeated field of a request. [`federation::bounded`](crate::federation::bounded)
//! answers this for checkpoint lists by decoding with a cap; requests here are refused
//! instead, since a request over the node's limits is answered with an error anyway.
//!
//! [`Scanner`] reads the gRPC framing (a 5-byte header per message) and the top-level protobuf
//! fields of every message as the bytes come in, chunk by chunk, keeping a few integers of
//! state: it counts each declared repeated field and checks each field's length against the
//! method's [`Shape`] (derived from `max_signals`, `max_batch`, the label and text limits and
//! the image size), and refuses a message as soon as a count or a length is over, a length
//! runs past its message, or the encoding is malformed. So a refused request costs the node
//! the bytes it read up to the first field over a limit, not the decoded message; a request
//! that passes is decoded by prost as before, within bounds the scan has already checked.
//! Field contents are not looked into: they are strings and bytes no longer than their
//! declared limit, which decode 1:1.

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use thiserror::Error;
use tonic::body::Body;
use tonic::server::NamedService;

/// A length-delimited field of a request message and what one message may carry of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Field number.
    pub number: u32,
    /// What it is, for errors (`signals`, `labels`, `image`).
    pub what: &'static str,
    /// Most occurrences in one message (a repeated field's count; `usize::MAX` for a singular
    /// field, whose later occurrences replace the earlier ones and so cost nothing more).
    pub max_count: usize,
    /// Longest occurrence, bytes.
    pub max_len: usize,
    /// Most bytes of all occurrences in one message together (`usize::MAX`: only the count and
    /// each length bound it). Lets a field take a few long values (vPDQ signals) without
    /// letting every occurrence be that long.
    pub max_total: usize,
}

impl Field {
    /// A repeated field: at most `max_count` occurrences of at most `max_len` bytes each.
    pub const fn repeated(
        number: u32,
        what: &'static str,
        max_count: usize,
        max_len: usize,
    ) -> Self {
        Field {
            number,
            what,
            max_count,
            max_len,
            max_total: usize::MAX,
        }
    }

    /// This field with at most `max_total` bytes of occurrences in one message.
    pub const fn with_total(self, max_total: usize) -> Self {
        Field { max_total, ..self }
    }

    /// A singular field of at most `max_len` bytes.
    pub const fn single(number: u32, what: &'static str, max_len: usize) -> Self {
        Self::repeated(number, what, usize::MAX, max_len)
    }
}

/// What one method's request messages may be. Fields not listed are skipped unread (prost
/// does the same with fields it does not know, so they cost no memory either).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// The method, for errors (`Match`, `Submit`).
    pub method: &'static str,
    /// Largest message, bytes.
    pub max_message: usize,
    /// The length-delimited fields with limits.
    pub fields: Vec<Field>,
}

/// Bytes a message may carry beyond its listed fields: scalar fields and fields from newer
/// clients that this node skips.
const SLACK: usize = 4096;

/// Most bytes a field's key and length prefix take (a 5-byte tag varint, a 10-byte length).
const FIELD_OVERHEAD: usize = 15;

impl Shape {
    /// A shape whose message limit is what its fields can add up to, plus [`SLACK`] bytes.
    pub fn new(method: &'static str, fields: Vec<Field>) -> Self {
        let max_message = fields
            .iter()
            .map(|f| {
                let count = if f.max_count == usize::MAX {
                    1
                } else {
                    f.max_count
                };
                count
                    .saturating_mul(f.max_len.saturating_add(FIELD_OVERHEAD))
                    .min(
                        f.max_total
                            .saturating_add(count.saturating_mul(FIELD_OVERHEAD)),
                    )
            })
            .fold(SLACK, usize::saturating_add);
        Shape {
            method,
            max_message,
            fields,
        }
    }
}

/// Why request bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The gRPC header announces a message over the method's limit.
    #[error(
        "{method}: a request message of {len} bytes is over this method's limit of {max} bytes"
    )]
    TooLarge {
        method: &'static str,
        len: usize,
        max: usize,
    },
    /// A repeated field occurs more often than allowed.
    #[error("{method}: more than {max} {what} in one request (the node's limit)")]
    TooMany {
        method: &'static str,
        what: &'static str,
        max: usize,
    },
    /// A repeated field's occurrences are longer together than allowed.
    #[error("{method}: the request's {what} are over {max} bytes together (the node's limit)")]
    TooMuch {
        method: &'static str,
        what: &'static str,
        max: usize,
    },
    /// One occurrence of a field is longer than allowed.
    #[error("{method}: one of the request's {what} is {len} bytes, over the limit of {max}")]
    TooLong {
        method: &'static str,
        what: &'static str,
        len: u64,
        max: usize,
    },
    /// Not valid protobuf (or a kind of field this protocol never sends).
    #[error("{method}: malformed request at byte {offset} of message {message}: {reason}")]
    Malformed {
        method: &'static str,
        message: u64,
        offset: usize,
        reason: &'static str,
    },
    /// The compressed-flag is set; this node accepts no compression, and could not scan it.
    #[error("{method}: compressed request messages are not accepted")]
    Compressed { method: &'static str },
}

/// Where the scanner is within the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the 5-byte gRPC message header; `have` bytes so far.
    Header { have: usize },
    /// Reading a field key varint.
    Key { value: u64, shift: u32 },
    /// Skipping a varint value.
    Varint { read: u32 },
    /// Reading the length varint of field `field` (an index into `Shape::fields`, if listed).
    Length {
        field: Option<usize>,
        value: u64,
        shift: u32,
    },
    /// Skipping `left` bytes of a field's value.
    Skip { left: usize },
    /// Refused: everything after is ignored.
    Failed,
}

/// The scan of one request body (any number of messages); see the module documentation.
#[derive(Debug, Clone)]
pub struct Scanner {
    shape: Arc<Shape>,
    state: State,
    header: [u8; 5],
    /// Bytes of the current message not yet read.
    left: usize,
    /// Its length.
    len: usize,
    /// Messages started so far (the current one's number, from 1).
    messages: u64,
    /// Occurrences of each listed field in the current message.
    counts: Vec<usize>,
    /// Bytes of each listed field's occurrences in the current message.
    totals: Vec<usize>,
}

/// Wire types (protobuf encoding spec).
const VARINT: u64 = 0;
const I64: u64 = 1;
const LEN: u64 = 2;
const SGROUP: u64 = 3;
const EGROUP: u64 = 4;
const I32: u64 = 5;

impl Scanner {
    /// A scanner for a body of `shape` messages.
    pub fn new(shape: Arc<Shape>) -> Self {
        let counts = vec![0; shape.fields.len()];
        let totals = counts.clone();
        Scanner {
            shape,
            state: State::Header { have: 0 },
            header: [0; 5],
            left: 0,
            len: 0,
            messages: 0,
            counts,
            totals,
        }
    }

    /// Whether the bytes so far end exactly between messages.
    pub fn at_boundary(&self) -> bool {
        self.state == State::Header { have: 0 }
    }

    fn malformed(&mut self, reason: &'static str) -> WireError {
        self.state = State::Failed;
        WireError::Malformed {
            method: self.shape.method,
            message: self.messages,
            offset: self.len - self.left,
            reason,
        }
    }

    fn fail(&mut self, e: WireError) -> WireError {
        self.state = State::Failed;
        e
    }

    /// The state after a field ends: the next key, or the next message's header.
    fn next_field(&self) -> State {
        if self.left == 0 {
            State::Header { have: 0 }
        } else {
            State::Key { value: 0, shift: 0 }
        }
    }

    /// Reads the next bytes of the body. After an error, every later call returns `Ok` and
    /// reads nothing (the caller has already refused the request).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), WireError> {
        while !bytes.is_empty() {
            match self.state {
                State::Failed => return Ok(()),
                State::Header { have } => {
                    self.header[have] = bytes[0];
                    bytes = &bytes[1..];
                    if have + 1 < 5 {
                        self.state = State::Header { have: have + 1 };
                        continue;
                    }
                    self.messages += 1;
                    if self.header[0] != 0 {
                        let method = self.shape.method;
                        return Err(self.fail(WireError::Compressed { method }));
                    }
                    let len = u32::from_be_bytes([
                        self.header[1],
                        self.header[2],
                        self.header[3],
                        self.header[4],
                    ]) as usize;
                    if len > self.shape.max_message {
                        let (method, max) = (self.shape.method, self.shape.max_message);
                        return Err(self.fail(WireError::TooLarge { method, len, max }));
                    }
                    self.len = len;
                    self.left = len;
                    self.counts.iter_mut().for_each(|c| *c = 0);
                    self.totals.iter_mut().for_each(|c| *c = 0);
                    self.state = self.next_field();
                }
                State::Skip { left } => {
                    let n = left.min(bytes.len());
                    bytes = &bytes[n..];
                    self.left -= n;
                    self.state = if n == left {
                        self.next_field()
                    } else {
                        State::Skip { left: left - n }
                    };
                }
                State::Key { .. } | State::Varint { .. } | State::Length { .. } => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    self.left -= 1;
                    self.byte(b)?;
                    // The message ended with a varint or a value still wanting bytes (a
                    // complete field has moved on to the next message's header already).
                    if self.left == 0 && !self.at_boundary() {
                        return Err(self.malformed("a field runs past the end of its message"));
                    }
                }
            }
        }
        Ok(())
    }

    /// One byte of a varint (key, value or length).
    fn byte(&mut self, b: u8) -> Result<(), WireError> {
        let more = b & 0x80 != 0;
        let bits = u64::from(b & 0x7f);
        match self.state {
            State::Key { value, shift } => {
                let value = value | bits << shift;
                if more {
                    if shift >= 28 {
                        return Err(self.malformed("a field key longer than 5 bytes"));
                    }
                    self.state = State::Key {
                        value,
                        shift: shift + 7,
                    };
                    return Ok(());
                }
                if value > u64::from(u32::MAX) {
                    return Err(self.malformed("a field key over 32 bits"));
                }
                self.key(value)
            }
            State::Varint { read } => {
                if !more {
                    self.state = self.next_field();
                } else if read + 1 >= 10 {
                    return Err(self.malformed("a varint longer than 10 bytes"));
                } else {
                    self.state = State::Varint { read: read + 1 };
                }
                Ok(())
            }
            State::Length {
                field,
                value,
                shift,
            } => {
                if shift == 63 && (b & 0x7e) != 0 {
                    return Err(self.malformed("a length over 64 bits"));
                }
                let value = value | bits << shift;
                if more {
                    if shift >= 63 {
                        return Err(self.malformed("a varint longer than 10 bytes"));
                    }
                    self.state = State::Length {
                        field,
                        value,
                        shift: shift + 7,
                    };
                    return Ok(());
                }
                if let Some(i) = field {
                    let f = &self.shape.fields[i];
                    if value > f.max_len as u64 {
                        let (method, what, max) = (self.shape.method, f.what, f.max_len);
                        return Err(self.fail(WireError::TooLong {
                            method,
                            what,
                            len: value,
                            max,
                        }));
                    }
                    self.totals[i] = self.totals[i].saturating_add(value as usize);
                    if self.totals[i] > f.max_total {
                        let (method, what, max) = (self.shape.method, f.what, f.max_total);
                        return Err(self.fail(WireError::TooMuch { method, what, max }));
                    }
                }
                if value > self.left as u64 {
                    return Err(self.malformed("a field's length runs past the end of its message"));
                }
                self.state = if value == 0 {
                    self.next_field()
                } else {
                    State::Skip {
                        left: value as usize,
                    }
                };
                Ok(())
            }
            State::Header { .. } | State::Skip { .. } | State::Failed => {
                unreachable!("byte() is only called while reading a varint")
            }
        }
    }

    /// A complete field key.
    fn key(&mut self, key: u64) -> Result<(), WireError> {
        let (number, wire_type) = ((key >> 3) as u32, key & 7);
        if number == 0 {
            return Err(self.malformed("field number 0"));
        }
        let listed = self.shape.fields.iter().position(|f| f.number == number);
        if let Some(i) = listed {
            if wire_type != LEN {
                return Err(self.malformed("a listed field that is not length-delimited"));
            }
            self.counts[i] += 1;
            let f = &self.shape.fields[i];
            if self.counts[i] > f.max_count {
                let (method, what, max) = (self.shape.method, f.what, f.max_count);
                return Err(self.fail(WireError::TooMany { method, what, max }));
            }
        }
        self.state = match wire_type {
            VARINT => State::Varint { read: 0 },
            I64 => State::Skip { left: 8 },
            LEN => State::Length {
                field: listed,
                value: 0,
                shift: 0,
            },
            I32 => State::Skip { left: 4 },
            SGROUP | EGROUP => return Err(self.malformed("a group (this protocol has none)")),
            _ => return Err(self.malformed("an invalid wire type")),
        };
        if let State::Skip { left } = self.state {
            if left > self.left {
                return Err(self.malformed("a field's length runs past the end of its message"));
            }
        }
        Ok(())
    }
}

/// A request body read through a [`Scanner`]: the bytes pass on unchanged until the scan
/// refuses them, and then the body fails with the refusal's status, which tonic answers the
/// call with (its decoder stops reading at the error, so what it buffered is what came before).
#[derive(Debug)]
pub struct ScannedBody {
    inner: Body,
    scanner: Scanner,
    failed: bool,
}

impl HttpBody for ScannedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame {
            if let Some(data) = frame.data_ref() {
                if let Err(e) = this.scanner.feed(data) {
                    this.failed = true;
                    tracing::debug!(error = %e, "request refused before decoding");
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A service whose requests to the listed paths are read through a [`Scanner`] of the path's
/// [`Shape`]; other paths pass as they are.
#[derive(Debug, Clone)]
pub struct Scanned<S> {
    inner: S,
    shapes: Arc<[(&'static str, Arc<Shape>)]>,
}

impl<S> Scanned<S> {
    /// `inner`, with `shapes` by path (`/package.Service/Method`).
    pub fn new(inner: S, shapes: Vec<(&'static str, Shape)>) -> Self {
        Self {
            inner,
            shapes: shapes
                .into_iter()
                .map(|(path, shape)| (path, Arc::new(shape)))
                .collect(),
        }
    }

    /// The largest message any listed path accepts (the limit to give tonic's own decoder).
    pub fn max_message(shapes: &[(&'static str, Shape)]) -> usize {
        shapes.iter().map(|(_, s)| s.max_message).max().unwrap_or(0)
    }
}

impl<S: NamedService> NamedService for Scanned<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<Body>> for Scanned<S>
where
    S: tower::Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> S::Future {
        let shape = self
            .shapes
            .iter()
            .find(|(path, _)| *path == req.uri().path())
            .map(|(_, shape)| shape.clone());
        let req = match shape {
            Some(shape) => req.map(|inner| {
                Body::new(ScannedBody {
                    inner,
                    scanner: Scanner::new(shape),
                    failed: false,
                })
            }),
            None => req,
        };
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use redline_proto::pb::{MatchRequest, Signal, SubmitRequest};

    fn match_shape(max_signals: usize) -> Arc<Shape> {
        Arc::new(Shape::new(
            "Match",
            vec![
                Field {
                    number: 1,
                    what: "signals",
                    max_count: max_signals,
                    max_len: 256,
                    max_total: usize::MAX,
                },
                Field {
                    number: 2,
                    what: "image",
                    max_count: usize::MAX,
                    max_len: 1000,
                    max_total: usize::MAX,
                },
            ],
        ))
    }

    /// `message` in gRPC framing.
    fn framed(message: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    /// Scans `bytes` fed in pieces of `step` bytes.
    fn scan(shape: &Arc<Shape>, bytes: &[u8], step: usize) -> Result<bool, WireError> {
        let mut s = Scanner::new(shape.clone());
        for chunk in bytes.chunks(step.max(1)) {
            s.feed(chunk)?;
        }
        Ok(s.at_boundary())
    }

    /// The same answer whatever the chunking.
    fn scan_all_ways(shape: &Arc<Shape>, bytes: &[u8]) -> Result<bool, WireError> {
        let whole = scan(shape, bytes, bytes.len());
        for step in [1, 2, 3, 5, 7, 64] {
            assert_eq!(scan(shape, bytes, step), whole, "step {step}");
        }
        whole
    }

    fn signal(i: u8) -> Signal {
        Signal {
            signal_type: "pdq".into(),
            value: hex::encode([i; 32]),
            quality: 100,
        }
    }

    #[test]
    fn real_requests_pass() {
        let shape = match_shape(4);
        let req = MatchRequest {
            signals: (0..4).map(signal).collect(),
            image: vec![7; 1000],
            max_distance: 31,
            dihedral: true,
            max_hits: 100,
            ..Default::default()
        };
        // Two messages back to back (a MatchStream), and an empty one.
        let mut body = framed(&req.encode_to_vec());
        body.extend(framed(&MatchRequest::default().encode_to_vec()));
        body.extend(framed(&req.encode_to_vec()));
        assert_eq!(scan_all_ways(&shape, &body), Ok(true));
        // A body cut inside a message is not at a boundary (tonic reports the EOF).
        assert_eq!(scan_all_ways(&shape, &body[..body.len() - 3]), Ok(false));
    }

    #[test]
    fn counts_repeated_fields_before_decoding() {
        let shape = match_shape(1024);
        // Ten million empty signals: 20 MB on the wire. Only the first 1025 are read.
        let mut message = Vec::new();
        for _ in 0..1025 {
            message.extend_from_slice(&[0x0a, 0x00]);
        }
        let mut header = vec![0];
        header.extend_from_slice(&20_000_000u32.to_be_bytes());
        let shape = Arc::new(Shape {
            max_message: 30_000_000,
            ..(*shape).clone()
        });
        let mut s = Scanner::new(shape.clone());
        s.feed(&header).unwrap();
        assert_eq!(
            s.feed(&message),
            Err(WireError::TooMany {
                method: "Match",
                what: "signals",
                max: 1024
            })
        );
        // Once refused, nothing more is read.
        assert_eq!(s.feed(&[0xff; 64]), Ok(()));
        // The count is per message: a stream of messages of 1024 each passes.
        let full = MatchRequest {
            signals: vec![Signal::default(); 1024],
            ..Default::default()
        }
        .encode_to_vec();
        let body = [framed(&full), framed(&full)].concat();
        assert_eq!(scan_all_ways(&shape, &body), Ok(true));
    }

    #[test]
    fn refuses_long_fields_and_large_messages() {
        let shape = match_shape(4);
        let req = MatchRequest {
            image: vec![1; 1001],
            ..Default::default()
        };
        assert!(matches!(
            scan_all_ways(&shape, &framed(&req.encode_to_vec())),
            Err(WireError::TooLong {
                what: "image",
                len: 1001,
                ..
            })
        ));
        let long = Signal {
            signal_type: "x".repeat(300),
            ..Default::default()
        };
        let req = MatchRequest {
            signals: vec![long],
            ..Default::default()
        };
        assert!(matches!(
            scan_all_ways(&shape, &framed(&req.encode_to_vec())),
            Err(WireError::TooLong {
                what: "signals",
                ..
            })
        ));
        // The header alone is enough to refuse a message over the limit.
        let mut header = vec![0];
        header.extend_from_slice(&(shape.max_message as u32 + 1).to_be_bytes());
        assert!(matches!(
            scan(&shape, &header, 5),
            Err(WireError::TooLarge { .. })
        ));
        header[0] = 1;
        assert!(matches!(
            scan(&shape, &header, 5),
            Err(WireError::Compressed { .. })
        ));
    }

    #[test]
    fn shape_limits_follow_from_the_fields() {
        let s = Shape::new(
            "Submit",
            vec![Field {
                number: 1,
                what: "signals",
                max_count: 10,
                max_len: 100,
                max_total: usize::MAX,
            }],
        );
        assert_eq!(s.max_message, SLACK + 10 * (100 + FIELD_OVERHEAD));
        // A total below count x length bounds the message instead.
        let totalled = Shape::new(
            "Submit",
            vec![Field::repeated(1, "signals", 10, 100).with_total(250)],
        );
        assert_eq!(totalled.max_message, SLACK + 250 + 10 * FIELD_OVERHEAD);
        let mut scan = Scanner::new(Arc::new(totalled));
        let three_long = SubmitRequest {
            signals: (0..3)
                .map(|_| Signal {
                    signal_type: "x".repeat(90),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let e = scan.feed(&framed(&three_long.encode_to_vec())).unwrap_err();
        assert!(matches!(e, WireError::TooMuch { max: 250, .. }), "{e}");
        // The largest request the fields allow passes.
        let req = SubmitRequest {
            signals: vec![
                Signal {
                    signal_type: "x".repeat(90),
                    ..Default::default()
                };
                10
            ],
            ..Default::default()
        };
        assert_eq!(
            scan_all_ways(&Arc::new(s), &framed(&req.encode_to_vec())),
            Ok(true)
        );
    }

    fn malformed(shape: &Arc<Shape>, message: &[u8]) -> &'static str {
        match scan_all_ways(shape, &framed(message)) {
            Err(WireError::Malformed { reason, .. }) => reason,
            other => panic!("{message:02x?}: {other:?}"),
        }
    }

    #[test]
    fn malformed_and_huge_varints() {
        let shape = match_shape(4);
        // A key varint of 6 bytes; a key over 32 bits; field number 0.
        assert_eq!(
            malformed(&shape, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
            "a field key longer than 5 bytes"
        );
        assert_eq!(
            malformed(&shape, &[0x80, 0x80, 0x80, 0x80, 0x7f]),
            "a field key over 32 bits"
        );
        assert_eq!(malformed(&shape, &[0x02, 0x00]), "field number 0");
        // A value varint of 11 bytes (field 3, max_distance).
        let mut long = vec![0x18];
        long.extend_from_slice(&[0xff; 10]);
        long.push(0x01);
        assert_eq!(malformed(&shape, &long), "a varint longer than 10 bytes");
        // A 10-byte varint is fine.
        let mut ok = vec![0x18];
        ok.extend_from_slice(&[0xff; 9]);
        ok.push(0x01);
        assert_eq!(scan_all_ways(&shape, &framed(&ok)), Ok(true));
        // A length of 2^64 or more; a length of 2^63 (past any message).
        let mut huge = vec![0x2a]; // field 5, LEN (not listed)
        huge.extend_from_slice(&[0xff; 9]);
        huge.push(0x02);
        assert_eq!(malformed(&shape, &huge), "a length over 64 bits");
        let mut big = vec![0x2a];
        big.extend_from_slice(&[0x80; 9]);
        big.push(0x01);
        assert_eq!(
            malformed(&shape, &big),
            "a field's length runs past the end of its message"
        );
        // Groups and wire types 6 and 7.
        assert_eq!(
            malformed(&shape, &[0x2b, 0x2c]),
            "a group (this protocol has none)"
        );
        assert_eq!(malformed(&shape, &[0x2e]), "an invalid wire type");
        // A listed field sent as a varint.
        assert_eq!(
            malformed(&shape, &[0x08, 0x01]),
            "a listed field that is not length-delimited"
        );
        // A varint cut by the end of its message.
        assert_eq!(
            malformed(&shape, &[0x18, 0xff]),
            "a field runs past the end of its message"
        );
        assert_eq!(
            malformed(&shape, &[0x0a]),
            "a field runs past the end of its message"
        );
    }

    #[test]
    fn nested_lengths_must_fit_their_message() {
        let shape = match_shape(4);
        // A signal claiming 10 bytes in a message that has 3 left.
        assert_eq!(
            malformed(&shape, &[0x0a, 0x0a, 0x01, 0x02, 0x03]),
            "a field's length runs past the end of its message"
        );
        // Fixed-width values past the end.
        assert_eq!(
            malformed(&shape, &[0x39, 0x01, 0x02]),
            "a field's length runs past the end of its message"
        );
        assert_eq!(
            malformed(&shape, &[0x3d, 0x01]),
            "a field's length runs past the end of its message"
        );
        // A field may not run from one message into the next, even when the bytes are there:
        // the first message says it is 2 bytes, its signal says 3.
        let mut body = framed(&[0x0a, 0x03]);
        body.extend_from_slice(&framed(&[0x01, 0x02, 0x03]));
        assert!(matches!(
            scan_all_ways(&shape, &body),
            Err(WireError::Malformed { message: 1, .. })
        ));
        // Unknown fields of every wire type are skipped, and a zero-length field at the very
        // end of a message is fine.
        let ok = [
            0x48, 0x96, 0x01, // field 9 varint
            0x51, 1, 2, 3, 4, 5, 6, 7, 8, // field 10 i64
            0x5d, 1, 2, 3, 4, // field 11 i32
            0x62, 0x02, 0xaa, 0xbb, // field 12 len
            0x0a, 0x00, // an empty signal
        ];
        assert_eq!(scan_all_ways(&shape, &framed(&ok)), Ok(true));
        // What passes the scan decodes.
        assert!(MatchRequest::decode(&ok[..]).is_ok());
    }
}
