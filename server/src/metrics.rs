//! Prometheus metrics of one node, served as text on `GET /metrics` on their own port
//! (`metrics_listen`), apart from gRPC so a scraper needs neither a token nor a gRPC client.
//!
//! Counters and histograms are updated where things happen (the gRPC guard, matching, evidence);
//! the per-origin and per-peer gauges are read from the node at each scrape ([`GaugeSource`]), so
//! they can never drift from the store.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Every series the node exports, in its own registry (several nodes can share a process).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    started: Instant,
    /// 1 once the catalog is loaded, the services serve and the node has caught up with its
    /// peers after start (`node::Readiness`); what `/readyz` answers.
    ready: IntGauge,
    /// Committed tree size per origin.
    tree_size: IntGaugeVec,
    /// Active (matchable, not retracted) entries per origin.
    active_entries: IntGaugeVec,
    /// Seconds since the last successful exchange with each peer.
    sync_lag: prometheus::GaugeVec,
    /// Evidence records in the store.
    evidence: IntGauge,
    /// Signals looked up by `Matching`.
    match_queries: IntCounter,
    /// Matches returned by `Matching`.
    matches: IntCounter,
    /// Inputs refused, by where they came from (`rpc`, `peer`) and why.
    rejected: IntCounterVec,
    /// gRPC calls by method and status code.
    rpc_calls: IntCounterVec,
    /// gRPC call duration by method, from the request to the end of the response.
    rpc_duration: HistogramVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of series.
    pub fn new() -> Self {
        let registry = Registry::new();
        let ready = IntGauge::new(
            "redline_ready",
            "1 once the node has loaded its catalog, serves every service and has caught up with its peers after start ([sync] ready_after_first_sync)",
        )
        .expect("valid metric");
        let tree_size = IntGaugeVec::new(
            Opts::new(
                "redline_origin_tree_size",
                "Committed size of each origin's log on this node",
            ),
            &["origin"],
        )
        .expect("valid metric");
        let active_entries = IntGaugeVec::new(
            Opts::new(
                "redline_origin_active_entries",
                "Entries of each origin that are not retracted (matched if the origin is accepted)",
            ),
            &["origin"],
        )
        .expect("valid metric");
        let sync_lag = prometheus::GaugeVec::new(
            Opts::new(
                "redline_peer_sync_lag_seconds",
                "Seconds since the last successful sync with each peer (since start if never)",
            ),
            &["peer"],
        )
        .expect("valid metric");
        let evidence = IntGauge::new(
            "redline_evidence_records",
            "Refused peer material kept as evidence",
        )
        .expect("valid metric");
        let match_queries = IntCounter::new(
            "redline_match_queries_total",
            "Signals looked up by the Matching service (image signals included)",
        )
        .expect("valid metric");
        let matches = IntCounter::new(
            "redline_matches_total",
            "Matches returned by the Matching service",
        )
        .expect("valid metric");
        let rejected = IntCounterVec::new(
            Opts::new(
                "redline_rejected_inputs_total",
                "Inputs refused: calls (source=rpc) by status, peer material (source=peer) by evidence reason",
            ),
            &["source", "reason"],
        )
        .expect("valid metric");
        let rpc_calls = IntCounterVec::new(
            Opts::new(
                "redline_rpc_calls_total",
                "gRPC calls by method and status code",
            ),
            &["method", "code"],
        )
        .expect("valid metric");
        let rpc_duration = HistogramVec::new(
            HistogramOpts::new(
                "redline_rpc_duration_seconds",
                "gRPC call duration by method, until the response ends (streams: their whole life)",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["method"],
        )
        .expect("valid metric");
        for c in [
            Box::new(ready.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(tree_size.clone()),
            Box::new(active_entries.clone()),
            Box::new(sync_lag.clone()),
            Box::new(evidence.clone()),
            Box::new(match_queries.clone()),
            Box::new(matches.clone()),
            Box::new(rejected.clone()),
            Box::new(rpc_calls.clone()),
            Box::new(rpc_duration.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        Self {
            registry,
            started: Instant::now(),
            ready,
            tree_size,
            active_entries,
            sync_lag,
            evidence,
            match_queries,
            matches,
            rejected,
            rpc_calls,
            rpc_duration,
        }
    }

    /// Marks the node ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Whether the node is serving (store and index loaded, not shutting down).
    pub fn is_ready(&self) -> bool {
        self.ready.get() == 1
    }

    /// Counts one Matching lookup round: `queries` signals, `matches` results.
    pub fn matched(&self, queries: usize, matches: usize) {
        self.match_queries.inc_by(queries as u64);
        self.matches.inc_by(matches as u64);
    }

    /// Counts a refused input.
    pub fn rejected(&self, source: &str, reason: &str) {
        self.rejected.with_label_values(&[source, reason]).inc();
    }

    /// Records a finished gRPC call.
    pub fn rpc(&self, method: &str, code: &str, elapsed: Duration) {
        self.rpc_calls.with_label_values(&[method, code]).inc();
        self.rpc_duration
            .with_label_values(&[method])
            .observe(elapsed.as_secs_f64());
    }

    /// Sets the gauges read at a scrape.
    fn refresh(&self, gauges: &Gauges) {
        for (name, size, active) in &gauges.origins {
            self.tree_size
                .with_label_values(&[name])
                .set(i64::try_from(*size).unwrap_or(i64::MAX));
            self.active_entries
                .with_label_values(&[name])
                .set(i64::try_from(*active).unwrap_or(i64::MAX));
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        for (peer, last_sync_ms) in &gauges.peers {
            let lag = if *last_sync_ms == 0 {
                self.started.elapsed().as_secs_f64()
            } else {
                now_ms.saturating_sub(*last_sync_ms) as f64 / 1000.0
            };
            self.sync_lag.with_label_values(&[peer]).set(lag);
        }
        self.evidence
            .set(i64::try_from(gauges.evidence).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition, with the gauges of `source` read now (when the node is
    /// loaded).
    pub fn render(&self, source: Option<&dyn GaugeSource>) -> String {
        if let Some(source) = source {
            self.refresh(&source.gauges());
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

/// The gauges read from the node at each scrape.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// `(origin, committed tree size, active entries)` per log held.
    pub origins: Vec<(String, u64, u64)>,
    /// `(peer URL, last successful sync in ms since the epoch, 0 = never)`.
    pub peers: Vec<(String, u64)>,
    /// Evidence records kept.
    pub evidence: u64,
}

/// Where the gauges come from (the node, once it is open).
pub trait GaugeSource: Send + Sync + std::fmt::Debug {
    /// The gauges now.
    fn gauges(&self) -> Gauges;
}

/// What the metrics endpoint reads: the series, and the node once it is open.
#[derive(Debug, Clone)]
pub struct MetricsSource {
    /// The series.
    pub metrics: Arc<Metrics>,
    /// The node's gauges, set once it has loaded.
    pub gauges: Arc<OnceLock<Arc<dyn GaugeSource>>>,
}

/// Serves `GET /metrics`, `/livez` and `/readyz` on `listener` until `shutdown` completes.
///
/// The probes are plain HTTP on this port because orchestrators' built-in probes (kubelet's
/// `grpc:` probe) cannot speak TLS, and the gRPC port serves nothing else once `[tls]` is set.
/// `/livez` answers 200 while the process runs; `/readyz` 200 once the node serves and has
/// caught up with its peers after start (the same moment grpc.health.v1 turns `""` and
/// Matching SERVING), 503 while it loads its store and index, while it catches up
/// (`[sync] ready_after_first_sync`), and when it shuts down.
pub async fn serve(
    listener: tokio::net::TcpListener,
    source: MetricsSource,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let readiness = source.metrics.clone();
    let app = axum::Router::new()
        .route("/livez", get(|| async { "alive\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = readiness.is_ready();
                async move {
                    if ready {
                        (axum::http::StatusCode::OK, "ready\n")
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let source = source.clone();
                async move {
                    let gauges = source.gauges.get().cloned();
                    let text = tokio::task::spawn_blocking(move || {
                        source.metrics.render(gauges.as_deref())
                    })
                    .await
                    .unwrap_or_default();
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `GET path` over raw HTTP/1.1; returns the status code.
    async fn status_of(addr: std::net::SocketAddr, path: &str) -> u16 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out.split(' ').nth(1).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn probes_follow_readiness() {
        let metrics = Arc::new(Metrics::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let source = MetricsSource {
            metrics: metrics.clone(),
            gauges: Arc::new(OnceLock::new()),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, source, async {
            let _ = stopped.await;
        }));
        // Loading: alive, not ready.
        assert_eq!(status_of(addr, "/livez").await, 200);
        assert_eq!(status_of(addr, "/readyz").await, 503);
        metrics.set_ready(true);
        assert_eq!(status_of(addr, "/readyz").await, 200);
        // Shutting down: not ready again, still alive until the listener closes.
        metrics.set_ready(false);
        assert_eq!(status_of(addr, "/readyz").await, 503);
        assert_eq!(status_of(addr, "/livez").await, 200);
        assert_eq!(status_of(addr, "/nonexistent").await, 404);
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
