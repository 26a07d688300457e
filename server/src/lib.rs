//! The Redline node: keeps its hotline's hash list as a signed, append-only Merkle log in sled,
//! holds other origins' logs, and serves them over gRPC.
//!
//! Layers point down only: `grpc` -> `node` -> `log`/`store` -> `redline_proto`.

pub mod config;
pub mod federation;
pub mod grpc;
pub mod hashing;
pub mod identity;
pub mod index;
pub mod log;
pub mod matching;
pub mod node;
pub mod store;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

pub use config::Config;
pub use node::Node;

/// Runs a node on `listener` until `shutdown` completes, then finishes in-flight calls and
/// flushes the store. Tests pass a listener bound to `127.0.0.1:0`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let node = Node::open(config).await?;
    serve(node, listener, shutdown).await
}

/// Serves an already opened node.
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        origin = node.origin(),
        key = %node.public_key().verifier_key(),
        "redline node serving"
    );
    let router = grpc::router(node.clone()).await?;
    let (stop_sync, stop_rx) = tokio::sync::watch::channel(false);
    let sync_tasks = federation::sync::spawn_all(node.clone(), stop_rx);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let served = router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    let _ = stop_sync.send(true);
    for t in sync_tasks {
        let _ = t.await;
    }
    served?;
    node.flush()?;
    tracing::info!("redline node stopped; store flushed");
    Ok(())
}
