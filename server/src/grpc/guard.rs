//! The one layer in front of every gRPC service, keyed by the request's path: it checks the
//! bearer token and its scope ([`auth`](super::auth)), applies the token's rate limit, times
//! the call for metrics (until its response body ends, so streams count their whole life),
//! and ends `WatchCheckpoints` streams when the node shuts down: they never end on their own,
//! and graceful shutdown waits for every open call.
//!
//! Connections themselves (TLS, the opening deadline, caps) are bounded below it, in
//! [`crate::net`].

use super::auth::Tokens;
use crate::metrics::Metrics;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::watch;
use tonic::body::Body;
use tonic::Status;

/// The endless stream ended at shutdown.
const WATCH_PATH: &str = "/redline.v1.Federation/WatchCheckpoints";

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
}

impl GuardLayer {
    /// A guard checking `tokens`, recording into `metrics`, ending watch streams once
    /// `stopping` turns true.
    pub fn new(tokens: Tokens, metrics: Arc<Metrics>, stopping: watch::Receiver<bool>) -> Self {
        Self {
            shared: Arc::new(Shared {
                tokens,
                metrics,
                stopping,
            }),
        }
    }
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = GuardService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct GuardService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Metric label for a path: known services keep their method, anything else is `other`, so a
/// client cannot create series at will.
fn method_label(path: &str) -> String {
    match super::auth::scope_for_path(path) {
        Some(crate::config::Scope::Admin) if !path.starts_with("/redline.v1.Node/") => {
            "other".to_owned()
        }
        _ if path.len() <= 96 => path.trim_start_matches('/').to_owned(),
        _ => "other".to_owned(),
    }
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
        let shared = self.shared.clone();
        let path = req.uri().path().to_owned();
        let method = method_label(&path);
        let auth = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        match shared.tokens.check(&path, auth) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
            }
            Err((refusal, status)) => {
                tracing::debug!(%path, reason = refusal.reason(), "call refused");
                shared.metrics.rejected("rpc", refusal.reason());
                shared
                    .metrics
                    .rpc(&method, code_name(status.code()), start.elapsed());
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let resp = inner.call(req).await?;
            let (parts, body) = resp.into_parts();
            let cut = (path == WATCH_PATH).then(|| {
                let mut stopping = shared.stopping.clone();
                Box::pin(async move {
                    let _ = stopping.wait_for(|s| *s).await;
                }) as Pin<Box<dyn Future<Output = ()> + Send>>
            });
            let body = Observed {
                code: grpc_code(&parts.headers),
                inner: body,
                cut,
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

/// A response body that records the call when it ends (or is dropped), and for watch streams
/// ends it with UNAVAILABLE once the node stops.
struct Observed {
    inner: Body,
    /// From the headers (a trailers-only error response), else from the trailers.
    code: Option<tonic::Code>,
    cut: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    ended: bool,
    recorded: bool,
    start: Instant,
    method: String,
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
            .rpc(&self.method, code_name(code), self.start.elapsed());
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
            if cut.as_mut().poll(cx).is_ready() {
                this.ended = true;
                let status = Status::unavailable("node shutting down");
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

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            method_label("/redline.v1.Matching/Match"),
            "redline.v1.Matching/Match"
        );
        assert_eq!(
            method_label("/redline.v1.Node/Status"),
            "redline.v1.Node/Status"
        );
        assert_eq!(method_label("/random/thing"), "other");
    }
}
