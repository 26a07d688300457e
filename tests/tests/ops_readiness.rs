//! Readiness after start, against the real `redline-node` binary (a child process): a new,
//! empty follower must not be sent Match traffic before it holds its lists.
//!
//! - An empty follower of a 200,000-entry origin (a [`Hostile`] peer following
//!   `Script::honest` once released; until then dripping its entries, so the "not yet" phase
//!   is not a race): `/readyz` answers 503 and gRPC health reports `""` and
//!   `redline.v1.Matching` NOT_SERVING for as long as it does not hold the origin's
//!   checkpoint (Status and Submission serve meanwhile); once ready, it holds all 200,000.
//!   The bound: ready implies caught up, at every observation.
//! - A node without peers is ready at once (the first observation after it serves), and so is
//!   one with `ready_after_first_sync = false`; one whose only peer is unreachable becomes
//!   ready after `ready_timeout_ms`, not before, with a warning naming the origin.

use redline_e2e::adversary::{head, Hostile, Script, Serve};
use redline_e2e::crash::NodeProcess;
use redline_proto::checkpoint::OriginKey;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::health_check_response::ServingStatus;

const ENTRIES: u64 = 200_000;

/// A free loopback port for the metrics listener (the node prints the gRPC one it gets).
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// `GET /readyz`: its status code.
async fn readyz(metrics: SocketAddr) -> u16 {
    let mut s = tokio::net::TcpStream::connect(metrics).await.unwrap();
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split(' ').nth(1).unwrap().parse().unwrap()
}

/// gRPC health of `service` on the node at `url`.
async fn health(url: &str, service: &str) -> ServingStatus {
    let channel = redline_client::connect(url).await.unwrap();
    let mut c = tonic_health::pb::health_client::HealthClient::new(channel);
    let r = c
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner();
    r.status()
}

/// Whether the node reports ready: `/readyz` 200, and then (health is switched first, so
/// this order has no race) health SERVING for `""` and Matching.
async fn ready(url: &str, metrics: SocketAddr) -> bool {
    let code = readyz(metrics).await;
    if code != 200 {
        return false;
    }
    for service in ["", "redline.v1.Matching"] {
        assert_eq!(
            health(url, service).await,
            ServingStatus::Serving,
            "{service:?}"
        );
    }
    true
}

/// Whether every signal says not ready: `/readyz` 503 and health NOT_SERVING.
async fn not_ready(url: &str, metrics: SocketAddr) -> bool {
    readyz(metrics).await == 503
        && health(url, "").await == ServingStatus::NotServing
        && health(url, "redline.v1.Matching").await == ServingStatus::NotServing
}

/// Starts a node whose config is `toml` (with its data dir and metrics address set here).
async fn start(dir: &Path, toml: &str) -> (NodeProcess, String, SocketAddr) {
    let metrics = free_port();
    let text = format!(
        "origin = \"follower.example\"\ndata_dir = {:?}\nlisten = \"127.0.0.1:0\"\n\
         metrics_listen = \"{metrics}\"\n{toml}",
        dir.join("data").display().to_string()
    );
    let config = dir.join("node.toml");
    std::fs::write(&config, text).unwrap();
    tokio::task::spawn_blocking(redline_e2e::node_bin)
        .await
        .unwrap();
    let mut node = NodeProcess::spawn(&config, &dir.join("node.log"));
    let url = node.serving(Duration::from_secs(60)).await;
    (node, url, metrics)
}

fn peer_and_trust(url: &str, key: &OriginKey) -> String {
    format!(
        "\n[[peers]]\nurl = \"{url}\"\n\n[[trust]]\norigin = \"{}\"\nkey = \"{}\"\npolicy = \"accept\"\n",
        key.name(),
        key.verifier_key()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_follower_is_not_ready_until_caught_up() {
    let built = Instant::now();
    let dripping = Script {
        serve: Serve::Drip {
            every: Duration::from_millis(20),
        },
        ..Script::honest()
    };
    let origin = Hostile::start("origin.example", ENTRIES, dripping).await;
    eprintln!("origin of {ENTRIES} entries built in {:?}", built.elapsed());
    let dir = tempfile::tempdir().unwrap();
    // A dripping fetch is cut after 2 s and the session retried (quickly) from scratch.
    let toml = format!(
        "{}\n[sync]\npoll_interval_ms = 200\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\n\
         fetch_timeout_ms = 2000\n",
        peer_and_trust(&origin.url, origin.key())
    );
    let (node, url, metrics) = start(dir.path(), &toml).await;

    // Not caught up: not ready, for as long as that lasts (here 2.5 s, past one cut fetch).
    let phase = Instant::now();
    let mut polls = 0;
    while phase.elapsed() < Duration::from_millis(2500) {
        assert!(
            not_ready(&url, metrics).await,
            "ready while holding nothing"
        );
        assert_eq!(head(&url, origin.origin()).await.0, 0);
        polls += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The rest of the node serves meanwhile.
    assert_eq!(
        health(&url, "redline.v1.Submission").await,
        ServingStatus::Serving
    );
    assert!(redline_e2e::adversary::status(&url).await.is_some());

    // Released: ready only once it holds every entry.
    origin.set(Script::honest());
    let released = Instant::now();
    loop {
        if ready(&url, metrics).await {
            break;
        }
        assert!(
            released.elapsed() < Duration::from_secs(45),
            "not ready 45 s after release; holds {} of {ENTRIES}",
            head(&url, origin.origin()).await.0
        );
        polls += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ready_after = released.elapsed();
    assert_eq!(
        head(&url, origin.origin()).await,
        origin.honest_head(),
        "ready implies caught up"
    );
    eprintln!(
        "READINESS follower of {ENTRIES} entries: not ready for {polls} polls; ready {ready_after:?} \
         after the origin served honestly"
    );
    drop(node);
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_without_peers_or_waiting_are_ready_at_once() {
    // No peers (an origin node): ready as soon as it serves.
    let dir = tempfile::tempdir().unwrap();
    let (node, url, metrics) = start(dir.path(), "").await;
    assert!(ready(&url, metrics).await, "an origin without peers");
    drop(node);

    // A peer that is not there.
    let gone = format!("http://{}", free_port());
    let key = redline_proto::checkpoint::OriginSigner::generate("absent.example").unwrap();
    let trust = peer_and_trust(&gone, key.public());

    // ... with `ready_after_first_sync = false`: ready at once.
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("{trust}\n[sync]\nready_after_first_sync = false\n");
    let (node, url, metrics) = start(dir.path(), &toml).await;
    assert!(ready(&url, metrics).await, "not waiting for the first sync");
    drop(node);

    // ... with a timeout: not ready before it, ready after it, with a warning.
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{trust}\n[sync]\nready_timeout_ms = 1500\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\n"
    );
    let started = Instant::now();
    let (node, url, metrics) = start(dir.path(), &toml).await;
    assert!(not_ready(&url, metrics).await, "ready before the timeout");
    while !ready(&url, metrics).await {
        assert!(started.elapsed() < Duration::from_secs(20), "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(1500));
    drop(node);
    let log = std::fs::read_to_string(dir.path().join("node.log")).unwrap();
    assert!(
        log.contains("ready_timeout_ms") && log.contains("absent.example"),
        "{log}"
    );
}
