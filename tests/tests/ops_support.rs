//! Helpers shared by the `ops_*` tests that run the `redline-node` binary (included with
//! `#[path]`): the binary, built once per test process with the same cargo and profile.
#![allow(dead_code)]

pub use redline_e2e::node_bin;
use std::path::Path;

/// A `redline-node` command with a clean environment (no REDLINE_* or RUST_LOG from the caller).
pub fn node_cmd() -> std::process::Command {
    let mut c = std::process::Command::new(node_bin());
    c.env_remove("REDLINE_CONFIG").env_remove("RUST_LOG");
    c
}

/// Polls `cond` every 20 ms until it returns true; panics with `what` after `timeout`.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A config for `origin` in `dir` following `peers` and accepting the lists of `trusted`,
/// with sync timing suited to tests.
pub fn follower_config(
    origin: &str,
    dir: &Path,
    peers: Vec<redline_server::config::PeerConfig>,
    trusted: &[&redline_server::Node],
) -> redline_server::Config {
    let mut c = redline_server::Config::new(origin, dir);
    c.peers = peers;
    c.trust = trusted
        .iter()
        .map(|n| redline_server::config::TrustConfig {
            origin: n.origin().to_owned(),
            key: n.public_key().verifier_key(),
            policy: redline_server::config::Policy::Accept,
        })
        .collect();
    c.sync.poll_interval_ms = 100;
    c.sync.backoff_initial_ms = 20;
    c.sync.backoff_max_ms = 200;
    c
}

/// Committed `(size, root)` of `origin`'s log on `node` (`(0, zeros)` when it holds nothing).
pub fn head_of(node: &redline_server::Node, origin: &str) -> (u64, [u8; 32]) {
    node.log(origin).map_or((0, [0; 32]), |l| {
        let s = l.state();
        (s.size(), s.root().0)
    })
}

/// Committed size of `origin`'s log on `node`.
pub fn size_of(node: &redline_server::Node, origin: &str) -> u64 {
    head_of(node, origin).0
}
