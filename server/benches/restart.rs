//! Restart to SERVING: how long a node with a large list is blind after a deploy.
//!
//! A node's own log is filled with `RESTART_ENTRIES` random PDQ entries (default 10,000,000)
//! through `Node::submit` in batches of 10,000, its catalog snapshot saved, and the node
//! closed. Then the node is started twice with `redline_server::launch`, as `redline-node` is,
//! the clock running from the call to the moment it reports SERVING (`on_ready`, after which
//! health and `/readyz` say so):
//! 1. **baseline**, in the same run: the snapshot removed, so every leaf is replayed into the
//!    catalog (what every start did before snapshots);
//! 2. **snapshot**: the snapshot the baseline's graceful shutdown saved, loaded and checked
//!    against the store, nothing replayed.
//!
//! Printed: both times, their ratio, the snapshot's size and save time, and the match answers
//! of 100 queries after each start (they must be equal, or the bench fails).
//!
//! Run: `cargo bench -p redline-server --bench restart`
//! Options (env): `RESTART_ENTRIES` (default 10000000); `RUST_LOG` (e.g.
//! `redline_server::node=debug,redline_server::catalog=debug` prints the halves of the
//! snapshot load and the coverage check).

use rand::{Rng, SeedableRng};
use redline_proto::signal::SignalType;
use redline_server::node::{catalog_snapshot, Listing, NewSignal, Startup};
use redline_server::{Config, Node, NodeSource};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 10_000;

fn random_pdq(rng: &mut impl Rng) -> [u8; 32] {
    let mut h = [0u8; 32];
    rng.fill(&mut h);
    h
}

fn listing() -> Listing {
    Listing {
        labels: vec!["ncii".into()],
        legal_basis: "consent withdrawn".into(),
        case_ref: String::new(),
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// Starts the node in `config.data_dir` as `redline-node` does; returns the time to SERVING,
/// how the catalog came back, the answers to `queries`, and the time the graceful shutdown took
/// (it saves the snapshot).
async fn start_and_stop(
    config: &Config,
    queries: &[[u8; 32]],
) -> (Duration, Startup, Vec<Vec<u64>>, Duration) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Arc<Node>>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let source = NodeSource::Open(Box::new(config.clone()));
    let task = tokio::spawn(redline_server::launch(
        source,
        listener,
        None,
        async {
            let _ = stop_rx.await;
        },
        move |node| {
            let _ = ready_tx.send(node.clone());
        },
    ));
    let node = ready_rx.await.expect("node serves");
    let to_serving = started.elapsed();
    let startup = node.startup();
    let mut answers = Vec::new();
    for q in queries {
        let hits = node.matching().search(SignalType::Pdq, q, 31);
        answers.push(hits.iter().map(|h| h.index).collect());
    }
    drop(node);
    let stopping = Instant::now();
    stop_tx.send(()).unwrap();
    task.await.unwrap().expect("node stops cleanly");
    (to_serving, startup, answers, stopping.elapsed())
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let entries: usize = std::env::var("RESTART_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new("hotline-a.example", dir.path());
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut queries = Vec::new();

    let fill = Instant::now();
    rt.block_on(async {
        let node = Node::open(config.clone()).await.unwrap();
        let mut done = 0;
        while done < entries {
            let n = BATCH.min(entries - done);
            let hashes: Vec<[u8; 32]> = (0..n).map(|_| random_pdq(&mut rng)).collect();
            if queries.len() < 100 {
                let mut q = hashes[0];
                q[3] ^= 0x11;
                queries.push(q);
            }
            let signals = hashes
                .iter()
                .map(|h| NewSignal {
                    signal_type: SignalType::Pdq,
                    hash: h.to_vec(),
                    quality: 100,
                })
                .collect();
            node.submit(signals, listing()).await.unwrap();
            done += n;
            if done % 1_000_000 == 0 {
                eprintln!("  filled {done} in {:.0?}", fill.elapsed());
            }
        }
        node.flush().unwrap();
    });
    let store_bytes = dir_bytes(&dir.path().join("db"));
    println!(
        "filled {entries} PDQ entries in {:.1?}; store {:.2} GiB ({:.0} bytes/entry)",
        fill.elapsed(),
        store_bytes as f64 / (1u64 << 30) as f64,
        store_bytes as f64 / entries as f64
    );

    let snapshot = dir.path().join(catalog_snapshot::FILE);
    let _ = std::fs::remove_file(&snapshot);
    let (replay, s_replay, a_replay, save) = rt.block_on(start_and_stop(&config, &queries));
    assert!(!s_replay.from_snapshot && s_replay.replayed_leaves == entries as u64);
    let snapshot_bytes = std::fs::metadata(&snapshot).expect("shutdown saved").len();
    println!(
        "baseline (no snapshot, every leaf replayed): {:.2?} to SERVING; graceful shutdown \
         (saves the snapshot) {save:.2?}; snapshot {:.2} GiB ({:.0} bytes/entry)",
        replay,
        snapshot_bytes as f64 / (1u64 << 30) as f64,
        snapshot_bytes as f64 / entries as f64
    );
    let (fast, s_fast, a_fast, _) = rt.block_on(start_and_stop(&config, &queries));
    assert!(
        s_fast.from_snapshot && s_fast.replayed_leaves == 0,
        "{s_fast:?}"
    );
    assert_eq!(a_fast, a_replay, "same answers after either start");
    assert!(a_fast.iter().all(|a| !a.is_empty()), "every query matches");
    println!(
        "snapshot: {:.2?} to SERVING (catalog {} ms); baseline / snapshot = {:.1}x",
        fast,
        s_fast.catalog_ms,
        replay.as_secs_f64() / fast.as_secs_f64()
    );
}
