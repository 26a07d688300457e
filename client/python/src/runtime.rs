//! The tokio runtime a client object holds, and running the Rust clients' async calls on it
//! with the GIL released (other Python threads run while a call waits on the network).

use crate::errors::NodeError;
use pyo3::prelude::*;
use std::future::Future;
use std::time::Duration;

/// A small runtime of its own per client: one worker thread drives the connection (tonic's
/// channel runs a background task on it); calls block the calling Python thread only.
pub fn new_runtime() -> PyResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("redline-client")
        .enable_all()
        .build()
        .map_err(|e| NodeError::new_err(format!("cannot start the client's runtime: {e}")))
}

/// Runs `fut` to completion on `rt` with the GIL released, giving up after `timeout` (if any)
/// with a `NodeError` that says how long it waited.
pub fn block_on<T, F>(
    py: Python<'_>,
    rt: &tokio::runtime::Runtime,
    timeout: Option<Duration>,
    what: &str,
    fut: F,
) -> PyResult<T>
where
    F: Future<Output = PyResult<T>> + Send,
    T: Send,
{
    py.detach(|| {
        rt.block_on(async {
            match timeout {
                None => fut.await,
                Some(t) => match tokio::time::timeout(t, fut).await {
                    Ok(r) => r,
                    Err(_) => Err(NodeError::new_err(format!(
                        "{what}: the node did not answer within {:.1} s (Client(timeout=...))",
                        t.as_secs_f64()
                    ))),
                },
            }
        })
    })
}
