//! Test harness: starts real Redline nodes in-process on `127.0.0.1:0`, each with its own
//! temporary sled directory, and stops them gracefully. No fixed ports, no mocks.

use redline_server::Config;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running node.
#[derive(Debug)]
pub struct TestNode {
    /// Its `http://127.0.0.1:PORT` URL.
    pub url: String,
    /// Its address.
    pub addr: SocketAddr,
    /// The node itself, for white-box checks.
    pub node: Arc<redline_server::Node>,
    /// Its config (data dir included), to restart it.
    pub config: Config,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestNode {
    /// Starts a node with `config` on an ephemeral loopback port.
    pub async fn start(mut config: Config) -> TestNode {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        config.listen = addr;
        let node = redline_server::Node::open(config.clone())
            .await
            .expect("node opens");
        let (tx, rx) = oneshot::channel();
        let n = node.clone();
        let task = tokio::spawn(async move {
            redline_server::serve(n, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("node serves");
        });
        TestNode {
            url: format!("http://{addr}"),
            addr,
            node,
            config,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Starts a fresh node named `origin` in `dir`.
    pub async fn start_in(origin: &str, dir: &Path) -> TestNode {
        Self::start(Config::new(origin, dir)).await
    }

    /// Stops the node gracefully and waits until its store is flushed and closed, so the same
    /// data dir can be reopened.
    pub async fn stop(self) -> Config {
        let TestNode {
            node,
            config,
            shutdown,
            task,
            ..
        } = self;
        if let Some(tx) = shutdown {
            let _ = tx.send(());
        }
        if let Some(task) = task {
            task.await.expect("node task");
        }
        let weak = Arc::downgrade(&node);
        drop(node);
        for _ in 0..500 {
            if weak.strong_count() == 0 {
                return config;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("node still referenced 5 s after shutdown");
    }
}

/// A temporary directory for a node's data.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("redline-e2e-")
        .tempdir()
        .expect("temp dir")
}

/// Path of the `shared/` folder (PDQ reference images), if present.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("REDLINE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    dir.is_dir().then_some(dir)
}
