//! The one layer in front of every gRPC service, keyed by the request's path: it checks the
//! bearer token and its scope ([`auth`](super::auth)), charges the call to the token's rate
//! (handing the rest of the token's [`Budget`] to the handlers that charge per query), times
//! the call for metrics under a bounded label ([`methods`](super::methods)), until its
//! response body ends, so streams count their whole life, and bounds how long a stream lives.
//!
//! Streams: nothing else ends a MatchStream, a health `Watch` or a reflection stream (tonic's
//! request timeout only covers the wait for the response headers), so each streaming call
//! gets an idle limit (`[limits] stream_idle_ms`: no message either way for that long) and a
//! maximum lifetime (`stream_max_ms`), after which it ends with DEADLINE_EXCEEDED and the
//! client opens a new one. Health and reflection stay open to callers without a token,
//! because the tools that call them (load balancers' and gRPC clients' health checking,
//! grpcurl) carry none and what they tell is public (serving status, service names, the
//! protocol's descriptors); their streams get a short lifetime instead
//! (`open_stream_max_ms`), so an anonymous caller holds nothing for long. `WatchCheckpoints`
//! is the exception: it is the push path of federation, quiet for as long as no origin
//! grows, opened only with a `federate` token, and the follower's whole session hangs on it;
//! it is ended when the node shuts down (graceful shutdown waits for every open call), and
//! otherwise bounded by the connection's maximum age ([`crate::net`]).
//!
//! Connections themselves (TLS, the opening deadline, caps) are bounded below it, in
//! [`crate::net`].

use super::auth::{Budget, Tokens};
use super::methods;
use crate::config::Limits;
use crate::metrics::Metrics;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tonic::body::Body;
use tonic::Status;

/// The endless stream ended at shutdown.
const WATCH_PATH: &str = "/redline.v1.Federation/WatchCheckpoints";

/// How long streaming calls may live; zero turns a bound off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// A stream that sent and received no message for this long is ended.
    pub idle: Duration,
    /// A stream of a service that needs a token is ended this long after it opened.
    pub max: Duration,
    /// A stream of a service anyone may call (health, reflection) is ended this long after
    /// it opened.
    pub open_max: Duration,
}

impl StreamLimits {
    /// From `[limits]`.
    pub fn of(limits: &Limits) -> Self {
        Self {
            idle: Duration::from_millis(limits.stream_idle_ms),
            max: Duration::from_millis(limits.stream_max_ms),
            open_max: Duration::from_millis(limits.open_stream_max_ms),
        }
    }
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self::of(&Limits::default())
    }
}

/// Shared state of the layer.
#[derive(Debug)]
struct Shared {
    tokens: Tokens,
    metrics: Arc<Metrics>,
    stopping: watch::Receiver<bool>,
}

/// Builds [`GuardService`]s.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    shared: Arc<Shared>,
    streams: StreamLimits,
    public_tiles: bool,
}

impl GuardLayer {
    /// A guard checking `tokens`, recording into `metrics`, ending watch streams once
    /// `stopping` turns true, and other streams by the default [`StreamLimits`].
    pub fn new(tokens: Tokens, metrics: Arc<Metrics>, stopping: watch::Receiver<bool>) -> Self {
        Self {
            shared: Arc::new(Shared {
                tokens,
                metrics,
                stopping,
            }),
            streams: StreamLimits::default(),
            public_tiles: false,
        }
    }

    /// The same guard with `streams` as its stream limits.
    pub fn with_streams(self, streams: StreamLimits) -> Self {
        Self { streams, ..self }
    }

    /// The same guard serving tlog checkpoints and hash tiles without a token
    /// ([`crate::config::TilesConfig::public`]).
    pub fn with_public_tiles(self, public_tiles: bool) -> Self {
        Self {
            public_tiles,
            ..self
        }
    }
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = GuardService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            shared: self.shared.clone(),
            streams: self.streams,
            public_tiles: self.public_tiles,
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct GuardService<S> {
    inner: S,
    shared: Arc<Shared>,
    streams: StreamLimits,
    public_tiles: bool,
}

/// Snake-case name of a gRPC status code (`grpc-status` value).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "ok",
        Cancelled => "cancelled",
        Unknown => "unknown",
        InvalidArgument => "invalid_argument",
        DeadlineExceeded => "deadline_exceeded",
        NotFound => "not_found",
        AlreadyExists => "already_exists",
        PermissionDenied => "permission_denied",
        ResourceExhausted => "resource_exhausted",
        FailedPrecondition => "failed_precondition",
        Aborted => "aborted",
        OutOfRange => "out_of_range",
        Unimplemented => "unimplemented",
        Internal => "internal",
        Unavailable => "unavailable",
        DataLoss => "data_loss",
        Unauthenticated => "unauthenticated",
    }
}

/// Codes that mean the caller sent something refused (counted as rejected inputs).
fn is_rejection(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        InvalidArgument
            | OutOfRange
            | FailedPrecondition
            | ResourceExhausted
            | PermissionDenied
            | Unauthenticated
    )
}

fn grpc_code(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .map(|v| tonic::Code::from_bytes(v.as_bytes()))
}

/// When a stream last carried a message: milliseconds after it opened.
#[derive(Debug)]
struct Activity {
    opened: tokio::time::Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            opened: tokio::time::Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    fn stamp(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> tokio::time::Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

type Cut = Pin<Box<dyn Future<Output = Status> + Send>>;

/// Resolves with the status to end a stream with once it has been idle for `idle` or lived
/// for `max` (either zero: no such bound); never if both are zero.
async fn bounded(activity: Arc<Activity>, idle: Duration, max: Duration) -> Status {
    let lifetime = (!max.is_zero()).then(|| activity.opened + max);
    loop {
        let idle_at = (!idle.is_zero()).then(|| activity.last() + idle);
        let wake = match (idle_at, lifetime) {
            (Some(i), Some(l)) => i.min(l),
            (Some(i), None) => i,
            (None, Some(l)) => l,
            (None, None) => return std::future::pending().await,
        };
        tokio::time::sleep_until(wake).await;
        let now = tokio::time::Instant::now();
        if lifetime.is_some_and(|l| now >= l) {
            return Status::deadline_exceeded(format!(
                "the stream reached its maximum lifetime of {} s ([limits] stream_max_ms, \
                 open_stream_max_ms without a token); open a new one",
                max.as_secs_f64()
            ));
        }
        if !idle.is_zero() && now >= activity.last() + idle {
            return Status::deadline_exceeded(format!(
                "the stream carried no message for {} s ([limits] stream_idle_ms); open a new one",
                idle.as_secs_f64()
            ));
        }
    }
}

impl<S> tower::Service<http::Request<Body>> for GuardService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let start = Instant::now();
        if !is_grpc(&req) {
            return self.call_http(req, start);
        }
        let shared = self.shared.clone();
        let path = req.uri().path();
        let served = methods::lookup(path);
        let method = served.map_or(methods::OTHER, |m| m.label.as_str());
        let watch = path == WATCH_PATH;
        let streaming = served.is_some_and(|m| m.streaming());
        let open = super::auth::scope_for_path(path).is_none();
        let auth = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        match shared.tokens.admit(path, auth) {
            Ok((caller, budget)) => {
                req.extensions_mut().insert(caller);
                req.extensions_mut().insert::<Budget>(budget);
            }
            Err((refusal, status)) => {
                tracing::debug!(path = %path.chars().take(128).collect::<String>(), reason = refusal.reason(), "call refused");
                shared.metrics.rejected("rpc", refusal.reason());
                shared
                    .metrics
                    .rpc(method, code_name(status.code()), start.elapsed());
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        }
        let (cut, activity): (Option<Cut>, _) = if watch {
            let mut stopping = shared.stopping.clone();
            let cut = Box::pin(async move {
                let _ = stopping.wait_for(|s| *s).await;
                Status::unavailable("node shutting down")
            });
            (Some(cut), None)
        } else if streaming {
            let activity = Activity::new();
            let limits = self.streams;
            let max = if open { limits.open_max } else { limits.max };
            let stamped = activity.clone();
            req = req.map(|inner| {
                Body::new(Stamped {
                    inner,
                    activity: stamped,
                })
            });
            let cut = Box::pin(bounded(activity.clone(), limits.idle, max));
            (Some(cut), Some(activity))
        } else {
            (None, None)
        };
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let resp = inner.call(req).await?;
            let (parts, body) = resp.into_parts();
            let body = Observed {
                code: grpc_code(&parts.headers),
                inner: body,
                cut,
                activity,
                ended: false,
                recorded: false,
                start,
                method,
                metrics: shared.metrics.clone(),
            };
            Ok(http::Response::from_parts(parts, Body::new(body)))
        })
    }
}

/// Whether a request is a gRPC call (`application/grpc`, `application/grpc+proto`, …); every
/// other request is for the HTTP API.
fn is_grpc<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

impl<S> GuardService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    /// A request for the HTTP API ([`crate::http`]): the same tokens, scopes and rate buckets
    /// as gRPC, by the API's route table; refusals and unknown paths answered here in the API's
    /// JSON shape; every call recorded in the same metrics under its path (a fixed set) and
    /// HTTP status, when its response body ends.
    fn call_http(
        &mut self,
        mut req: http::Request<Body>,
        start: Instant,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>> {
        let shared = self.shared.clone();
        let Some(route) = crate::http::access(req.uri().path(), self.public_tiles) else {
            let resp = crate::http::error::not_found(req.uri().path());
            shared.metrics.rpc(
                crate::http::OTHER_LABEL,
                resp.status().as_str(),
                start.elapsed(),
            );
            return Box::pin(std::future::ready(Ok(resp)));
        };
        let auth = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        match shared.tokens.admit_any(route.scopes, auth) {
            Ok((caller, budget)) => {
                req.extensions_mut().insert(caller);
                req.extensions_mut().insert::<Budget>(budget);
            }
            Err((refusal, status)) => {
                shared.metrics.rejected("http", refusal.reason());
                let resp = crate::http::error::refusal(&status);
                shared
                    .metrics
                    .rpc(route.path, resp.status().as_str(), start.elapsed());
                return Box::pin(std::future::ready(Ok(resp)));
            }
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let resp = inner.call(req).await?;
            let (parts, body) = resp.into_parts();
            let body = HttpTimed {
                inner: body,
                label: route.path,
                status: parts.status,
                start,
                metrics: Some(shared.metrics.clone()),
            };
            Ok(http::Response::from_parts(parts, Body::new(body)))
        })
    }
}

/// An HTTP API response body that records its call when it ends (or is dropped unfinished),
/// so a streamed NDJSON batch counts its whole life.
struct HttpTimed {
    inner: Body,
    label: &'static str,
    status: http::StatusCode,
    start: Instant,
    /// Taken when recorded.
    metrics: Option<Arc<Metrics>>,
}

impl HttpTimed {
    fn record(&mut self) {
        if let Some(m) = self.metrics.take() {
            m.rpc(self.label, self.status.as_str(), self.start.elapsed());
        }
    }
}

impl HttpBody for HttpTimed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None | Some(Err(_)))) {
            self.record();
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

impl Drop for HttpTimed {
    fn drop(&mut self) {
        self.record();
    }
}

/// A request body that stamps its stream's [`Activity`] at every message the client sends.
struct Stamped {
    inner: Body,
    activity: Arc<Activity>,
}

impl HttpBody for Stamped {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &frame {
            if f.is_data() {
                self.activity.stamp();
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that records the call when it ends (or is dropped), and ends a stream with
/// the status its `cut` resolves to (shutdown, idle, lifetime).
struct Observed {
    inner: Body,
    /// From the headers (a trailers-only error response), else from the trailers.
    code: Option<tonic::Code>,
    cut: Option<Cut>,
    /// Stamped at every message sent, for the idle limit.
    activity: Option<Arc<Activity>>,
    ended: bool,
    recorded: bool,
    start: Instant,
    method: &'static str,
    metrics: Arc<Metrics>,
}

impl Observed {
    fn record(&mut self, code: Option<tonic::Code>) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        // A response that ends without a status was cut off (client gone, shutdown).
        let code = self.code.or(code).unwrap_or(tonic::Code::Cancelled);
        if is_rejection(code) {
            self.metrics.rejected("rpc", code_name(code));
        }
        self.metrics
            .rpc(self.method, code_name(code), self.start.elapsed());
    }
}

impl HttpBody for Observed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if let Some(cut) = &mut this.cut {
            if let Poll::Ready(status) = cut.as_mut().poll(cx) {
                this.ended = true;
                let mut trailers = http::HeaderMap::new();
                let _ = status.add_header(&mut trailers);
                this.record(Some(status.code()));
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_code(trailers);
                    this.record(code);
                } else if let Some(activity) = &this.activity {
                    activity.stamp();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.record(Some(e.code()));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.ended = true;
                this.record(None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || (self.cut.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        // Ended before its status (e.g. an empty trailers-only body is dropped unpolled).
        let code = self.code;
        self.record(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn streams_end_when_idle_or_too_old() {
        let s = Duration::from_secs;
        // Idle: ends 60 s after the last message.
        let a = Activity::new();
        let cut = tokio::spawn(bounded(a.clone(), s(60), s(3600)));
        tokio::time::sleep(s(50)).await;
        a.stamp();
        tokio::time::sleep(s(50)).await;
        assert!(!cut.is_finished(), "a message 50 s in keeps it open");
        tokio::time::sleep(s(11)).await;
        let status = cut.await.unwrap();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(status.message().contains("stream_idle_ms"), "{status:?}");
        // Lifetime: ends at the maximum however busy.
        let a = Activity::new();
        let cut = tokio::spawn(bounded(a.clone(), s(60), s(100)));
        for _ in 0..9 {
            tokio::time::sleep(s(10)).await;
            a.stamp();
        }
        tokio::time::sleep(s(11)).await;
        let status = cut.await.unwrap();
        assert!(status.message().contains("maximum lifetime"), "{status:?}");
        // Both off: never.
        let never = tokio::spawn(bounded(Activity::new(), s(0), s(0)));
        tokio::time::sleep(s(100_000)).await;
        assert!(!never.is_finished());
        never.abort();
    }
}
