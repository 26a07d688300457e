//! Test harness: starts real Redline nodes in-process on `127.0.0.1:0`, each with its own
//! temporary sled directory, and stops them gracefully. No fixed ports, no mocks.
//!
//! Federation helpers: [`federated_config`] (peers, trust, fast sync timing), [`eventually`]
//! (poll a condition with a deadline instead of sleeping), and [`relay`], a lying Federation
//! relay for attack tests; [`curl`] calls the HTTP API from a client with no Redline code.
//! [`fuzz`] holds the bodies of the fuzz targets in `tests/fuzz/`, replayed over their
//! committed corpora by `tests/fuzz_regressions.rs`.

pub mod adversary;
pub mod browser;
pub mod crash;
pub mod curl;
pub mod fuzz;
pub mod go;
pub mod liar;
pub mod propagation;
pub mod relay;
pub mod tls;

use redline_proto::checkpoint::OriginKey;
use redline_server::config::{PeerConfig, Policy, Scope, TokenConfig, TrustConfig};
use redline_server::Config;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
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
    pub async fn start(config: Config) -> TestNode {
        let (listener, _) = reserve().await;
        Self::start_on(listener, config).await
    }

    /// Starts a node with `config` on `listener` (from [`reserve`]), so nodes that follow
    /// each other can all be configured before any of them starts.
    pub async fn start_on(listener: tokio::net::TcpListener, mut config: Config) -> TestNode {
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

/// Binds `127.0.0.1:0` for a node started later with [`TestNode::start_on`]; returns the
/// listener and the node's future URL.
pub async fn reserve() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    (listener, url)
}

/// Creates (or loads) the identity of `origin` in `dir` before its node first starts, so
/// other nodes' trust lists can name its key; returns the public key.
pub fn identity(dir: &Path, origin: &str) -> OriginKey {
    std::fs::create_dir_all(dir).expect("data dir");
    let (signer, _) =
        redline_server::identity::load_or_create(dir, origin).expect("identity created");
    signer.public().clone()
}

/// A gRPC request carrying the bearer token `secret`.
pub fn authed<T>(secret: &str, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    let value = tonic::metadata::MetadataValue::try_from(format!("Bearer {secret}"))
        .expect("a token is header-safe");
    req.metadata_mut().insert("authorization", value);
    req
}

/// A `[[tokens]]` entry named `name` for the bearer token `secret` with `scopes`, unlimited.
pub fn token_config(name: &str, secret: &str, scopes: Vec<Scope>) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        sha256: redline_server::grpc::auth::hash_token(secret),
        scopes,
        rate_per_sec: None,
        burst: None,
    }
}

/// A trust entry for `key`'s origin with `policy`.
pub fn trust_key(key: &OriginKey, policy: Policy) -> TrustConfig {
    TrustConfig {
        origin: key.name().to_owned(),
        key: key.verifier_key(),
        policy,
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

/// Polls `cond` every 20 ms until it returns true; panics with `what` after `timeout`.
/// Returns how long it took. This is the only way tests wait for another node.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return start.elapsed();
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A trust entry for `node`'s origin with `policy`.
pub fn trust_of(node: &TestNode, policy: Policy) -> TrustConfig {
    trust_key(node.node.public_key(), policy)
}

/// A config for `origin` in `dir` following `peers` (URLs) and trusting `trust`, with sync
/// timing suited to tests: pull every `poll_ms`, retry quickly after a failure.
pub fn federated_config(
    origin: &str,
    dir: &Path,
    peers: &[&str],
    trust: Vec<TrustConfig>,
    poll_ms: u64,
) -> Config {
    let mut c = Config::new(origin, dir);
    c.peers = peers
        .iter()
        .map(|u| PeerConfig::new((*u).to_owned()))
        .collect();
    c.trust = trust;
    c.sync.poll_interval_ms = poll_ms;
    c.sync.backoff_initial_ms = 20;
    c.sync.backoff_max_ms = 200;
    c
}

impl TestNode {
    /// Committed size of `origin`'s log on this node (0 when it holds nothing yet).
    pub fn size_of(&self, origin: &str) -> u64 {
        self.node.log(origin).map_or(0, |l| l.state().size())
    }

    /// Committed `(size, root)` of `origin`'s log on this node.
    pub fn head_of(&self, origin: &str) -> (u64, [u8; 32]) {
        self.node.log(origin).map_or((0, [0; 32]), |l| {
            let s = l.state();
            (s.size(), s.root().0)
        })
    }
}

/// Submits `hashes` as PDQ ADDs (quality 100, label `ncii`, legal basis "consent withdrawn")
/// through `node`'s own API, in one batch: the white-box way tests and their background
/// writers grow an origin's log.
pub async fn submit_pdq(
    node: &redline_server::Node,
    hashes: &[[u8; 32]],
) -> redline_server::node::Submitted {
    use redline_server::node::{Listing, NewSignal};
    let signals = hashes
        .iter()
        .map(|h| NewSignal {
            signal_type: redline_proto::signal::SignalType::Pdq,
            hash: h.to_vec(),
            quality: 100,
        })
        .collect();
    let listing = Listing {
        labels: vec!["ncii".into()],
        legal_basis: "consent withdrawn".into(),
        case_ref: String::new(),
    };
    node.submit(signals, listing).await.expect("submit")
}

/// Path of the `redline-node` binary, built once per test binary by [`cargo_bin`]; every test
/// that runs the node as a child process starts it from here.
pub fn node_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| cargo_bin("redline-server", "redline-node"))
}

/// Builds binary `bin` of workspace package `package` (in the profile the tests run in) and
/// returns its path. Test crates do not build their dependencies' binaries, so tests that run
/// `redline` or `redline-node` as child processes build them once through cargo.
pub fn cargo_bin(package: &str, bin: &str) -> PathBuf {
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "-p",
        package,
        "--bin",
        bin,
        "--message-format=json-render-diagnostics",
    ]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    // Cargo sets these for the test binary. Passed on to the nested cargo they reach build
    // scripts that track them (ring's has `rerun-if-env-changed=CARGO_MANIFEST_DIR`,
    // `CARGO_PKG_NAME`...), so every switch between `cargo test` and this build would rebuild
    // ring, rustls, tonic and everything above them: minutes on a small CI machine.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name == "OUT_DIR"
            || name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_")
            || matches!(
                name.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
            )
        {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    let out = cmd.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build of {bin} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == bin)
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no {bin} executable"))
}

/// `key`'s log on the node at `url`, audited the way `redline audit` does (streamed through the
/// protocol's verifier against `previous`), with every verified leaf kept for white-box checks.
pub async fn audited_log(
    url: &str,
    key: &OriginKey,
    previous: Option<&redline_client::TrustedSize>,
) -> Result<(redline_client::VerifiedLog, Vec<Vec<u8>>), redline_client::AuditError> {
    let mut auditor = redline_client::Auditor::connect(url).await?;
    let mut leaves = Vec::new();
    let verified = auditor
        .audit_origin_with(key, previous, Some(16), |_, data, _| {
            leaves.push(data.to_vec());
            Ok(())
        })
        .await?;
    Ok((verified, leaves))
}

/// A tonic server of scripted services (a lying relay, a hostile peer, a lying Audit node) on an
/// ephemeral loopback port. They keep endless streams open, so stopping one aborts its task
/// rather than waiting for a graceful shutdown.
#[derive(Debug)]
pub struct ScriptedServer {
    /// Its `http://127.0.0.1:PORT` URL.
    pub url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ScriptedServer {
    /// Binds `127.0.0.1:0` and serves `router` there until [`ScriptedServer::stop`].
    pub async fn start(router: tonic::transport::server::Router) -> ScriptedServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let _ = router
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = rx.await;
                    },
                )
                .await;
        });
        ScriptedServer {
            url: format!("http://{addr}"),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops serving, cutting every open stream.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}
