//! The Redline node: keeps its hotline's hash list as a signed, append-only Merkle log in sled,
//! holds other origins' logs, and serves them over gRPC.
//!
//! Layers point down only, with no cycles: `grpc` -> `node`/`federation` (federation calls the
//! node's services; the node knows nothing of federation) -> `log` -> `catalog` and `store` ->
//! `redline_proto`/`redline_index`; `config`, `metrics`, `hashing` and `identity`
//! sit below the node and import none of the layers above them.

pub mod catalog;
pub mod config;
pub mod federation;
pub mod grpc;
pub mod hashing;
pub mod http;
pub mod identity;
pub mod log;
pub mod metrics;
pub mod net;
pub mod node;
pub mod publish;
pub mod store;
pub mod telemetry;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;

pub use config::Config;
pub use node::Node;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The node to serve: one to open (serving health as NOT_SERVING while it loads), or one
/// already open.
#[derive(Debug)]
pub enum NodeSource {
    /// Open the node with this configuration once the listener serves.
    Open(Box<Config>),
    /// Serve this open node.
    Ready(Arc<Node>),
}

/// Runs a node on `listener` until `shutdown` completes, then finishes in-flight calls and
/// flushes the store. The listener serves health (NOT_SERVING) while the store and catalog
/// load. Tests pass a listener bound to `127.0.0.1:0`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BoxError> {
    let metrics = bind_metrics(&config).await?;
    launch(
        NodeSource::Open(Box::new(config)),
        listener,
        metrics,
        shutdown,
        |_| {},
    )
    .await
}

/// Serves an already opened node.
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BoxError> {
    let metrics = bind_metrics(node.config()).await?;
    launch(NodeSource::Ready(node), listener, metrics, shutdown, |_| {}).await
}

/// Binds `metrics_listen` when configured, after the exposure check
/// ([`Config::check_metrics_exposure`]).
pub async fn bind_metrics(config: &Config) -> Result<Option<TcpListener>, BoxError> {
    match config.metrics_listen {
        None => Ok(None),
        Some(addr) => {
            config.check_metrics_exposure(addr)?;
            Ok(Some(TcpListener::bind(addr).await.map_err(|e| {
                format!("cannot listen for metrics on {addr}: {e}")
            })?))
        }
    }
}

/// The whole life of a node: refuses an exposed listener without tokens and TLS, serves gRPC
/// (and `/metrics` on `metrics_listener`), opens the node if needed and then its services,
/// calls `on_ready`, starts federation, and on `shutdown`: reports NOT_SERVING, stops
/// accepting, stops sync, lets in-flight calls finish (ending watch streams, at most
/// `limits.shutdown_grace_ms`), and flushes the store.
pub async fn launch(
    source: NodeSource,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(&Arc<Node>) + Send,
) -> Result<(), BoxError> {
    let addr = listener.local_addr()?;
    let (config, metrics) = match &source {
        NodeSource::Open(c) => ((**c).clone(), Arc::new(metrics::Metrics::new())),
        NodeSource::Ready(n) => (n.config().clone(), n.metrics().clone()),
    };
    config.check_exposure(addr)?;
    if let Some(a) = metrics_listener.as_ref().and_then(|l| l.local_addr().ok()) {
        config.check_metrics_exposure(a)?;
    }
    // Before anything serves: a [tls] that does not load stops the node here.
    let certificates = config
        .tls
        .as_ref()
        .map(net::Certificates::load)
        .transpose()?;
    if config.tokens.is_empty() {
        tracing::warn!(
            %addr,
            "no [[tokens]] configured: every caller that reaches this port may submit, match, \
             audit, federate and read status; serving on loopback only"
        );
    }

    let (stop_tx, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = {
        let stopping = stopping.clone();
        move || {
            let mut s = stopping.clone();
            async move {
                let _ = s.wait_for(|stop| *stop).await;
            }
        }
    };

    // Connections are accepted, capped, handshaken (TLS) and bounded in time by `net`, then
    // served by tonic.
    net::check_open_file_limit(&config.limits);
    let connections = net::connections(&config.limits);
    let (router, services) = grpc::router(
        &config,
        metrics.clone(),
        stopping.clone(),
        connections.clone(),
    )
    .await?;
    let timing = net::timing(&config.limits);
    let mut server = match certificates {
        Some(certs) => {
            certs.watch(stopping.clone());
            let incoming = net::incoming(listener, certs, connections, metrics.clone(), timing);
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, stopped()))
        }
        None => {
            let incoming =
                net::incoming(listener, net::Plain, connections, metrics.clone(), timing);
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, stopped()))
        }
    };

    let gauges: Arc<OnceLock<Arc<dyn metrics::GaugeSource>>> = Arc::new(OnceLock::new());
    let metrics_task = metrics_listener.map(|l| {
        if let Ok(a) = l.local_addr() {
            tracing::info!(addr = %a, "metrics on http://{a}/metrics");
        }
        tokio::spawn(metrics::serve(
            l,
            metrics::MetricsSource {
                metrics: metrics.clone(),
                gauges: gauges.clone(),
            },
            stopped(),
        ))
    });

    let node = match source {
        NodeSource::Ready(n) => n,
        NodeSource::Open(config) => {
            tracing::info!(%addr, "listening; health reports NOT_SERVING while the node loads");
            match node::Node::open_with_metrics(*config, metrics.clone()).await {
                Ok(n) => n,
                Err(e) => {
                    server.abort();
                    return Err(e.into());
                }
            }
        }
    };
    let _ = gauges.set(node.clone());
    let mut sync_tasks = Vec::new();
    let mut readiness_task = None;
    if !*stopping.borrow() {
        services.open(&node).await;
        if node.peers().readiness().is_ready() {
            services.set_caught_up(true).await;
            metrics.set_ready(true);
        } else {
            services.set_caught_up(false).await;
            readiness_task = Some(tokio::spawn(await_caught_up(
                node.clone(),
                services.clone(),
                metrics.clone(),
            )));
        }
        tracing::info!(
            %addr,
            origin = node.origin(),
            key = %node.public_key().verifier_key(),
            tls = config.tls.is_some(),
            tokens = config.tokens.len(),
            "redline node serving"
        );
        on_ready(&node);
        sync_tasks = federation::sync::spawn_all(node.clone(), stopping.clone());
        if let Some(dir) = &config.tiles.publish_dir {
            sync_tasks.push(tokio::spawn(publish::publish_tiles(
                node.clone(),
                dir.clone(),
                stopping.clone(),
            )));
        }
        if config.matching.snapshot_interval_s > 0 {
            sync_tasks.push(tokio::spawn(save_snapshots(
                node.clone(),
                Duration::from_secs(config.matching.snapshot_interval_s),
                stopping.clone(),
            )));
        }
    }

    let served = tokio::select! {
        r = &mut server => Some(r),
        _ = stopped() => None,
    };
    if let Some(t) = readiness_task {
        // Before NOT_SERVING below, so it cannot report SERVING after it.
        t.abort();
        let _ = t.await;
    }
    services.set_serving(false).await;
    metrics.set_ready(false);
    for t in sync_tasks {
        let _ = t.await;
    }
    let served = match served {
        Some(r) => r,
        None => {
            let grace = Duration::from_millis(config.limits.shutdown_grace_ms);
            match tokio::time::timeout(grace, &mut server).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!(
                        grace_ms = grace.as_millis() as u64,
                        "in-flight calls did not finish in time; closing their connections"
                    );
                    server.abort();
                    Ok(Ok(()))
                }
            }
        }
    };
    if let Some(t) = metrics_task {
        // Scrapes are instant; nothing to drain.
        t.abort();
    }
    // After the last call: what the next start loads instead of replaying every log.
    if let Err(e) = node.save_catalog_snapshot().await {
        tracing::warn!(error = %e, "catalog snapshot not saved; the next start replays the logs");
    }
    node.flush()?;
    served.map_err(|e| format!("server task: {e}"))??;
    tracing::info!("redline node stopped; store flushed");
    Ok(())
}

/// Saves the catalog snapshot every `every` while the logs grow, until `stopping` (the shutdown
/// saves the last one).
async fn save_snapshots(
    node: Arc<Node>,
    every: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut saved_at = node.total_leaves();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        let leaves = node.total_leaves();
        if leaves == saved_at {
            continue;
        }
        match node.save_catalog_snapshot().await {
            Ok(_) => saved_at = leaves,
            Err(e) => tracing::warn!(error = %e, "periodic catalog snapshot failed"),
        }
    }
}

/// Turns `/readyz` and health SERVING once the node has caught up with its peers
/// (`node::Readiness`), or after `[sync] ready_timeout_ms` (when set) with a warning.
async fn await_caught_up(
    node: Arc<Node>,
    services: grpc::Services,
    metrics: Arc<metrics::Metrics>,
) {
    let readiness = node.peers().readiness();
    let timeout_ms = node.config().sync.ready_timeout_ms;
    tracing::info!(
        waiting_for = ?readiness.waiting(),
        "not ready until caught up with the peers ([sync] ready_after_first_sync)"
    );
    let timed_out = if timeout_ms == 0 {
        readiness.wait().await;
        false
    } else {
        tokio::time::timeout(Duration::from_millis(timeout_ms), readiness.wait())
            .await
            .is_err()
    };
    if timed_out {
        tracing::warn!(
            timeout_ms,
            not_caught_up = ?readiness.give_up(),
            "ready without having caught up with these origins ([sync] ready_timeout_ms): \
             Match will not find what the node has not replicated yet"
        );
    }
    services.set_caught_up(true).await;
    metrics.set_ready(true);
}
