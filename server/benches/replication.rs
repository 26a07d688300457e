//! Replication throughput: a follower node replicating 1,000,000 entries from a source node on
//! loopback, over the real Federation service, verified (signature, every leaf against the
//! signed root) and durably committed (sled batch + flush, catalog updated).
//!
//! The source submits in batches of 10,000 (one signed checkpoint per batch), so its last
//! checkpoint covers 1M. The follower starts afterwards; the clock runs from its start until
//! its committed size of the source's log is 1M.
//!
//! Printed beside it, the bound: the same leaf bytes written to a raw sled tree, batches of
//! 10,000 with a flush after each, once with one key per leaf and once in bundles of 256 leaves
//! per key as the store lays them out. Ratios are printed against both: the first is the plain
//! batch insert of the same entries, the second (the faster bound) the stricter one. For
//! reference, also the raw rate of writing what the store really writes: the bundled leaves plus
//! the Merkle tree's stored hashes (~2 × 32 bytes per leaf, next to ~77-byte leaves).
//!
//! Run: `cargo bench -p redline-server --bench replication`
//! Options (env): `REPLICATION_ENTRIES` (default 1000000), `RUST_LOG=redline_server=debug`
//! for the follower's per-phase timings.

use rand::{Rng, SeedableRng};
use redline_proto::signal::SignalType;
use redline_server::config::{PeerConfig, Policy, TrustConfig};
use redline_server::node::{Listing, NewSignal};
use redline_server::{Config, Node};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 10_000;

async fn serve(node: Arc<Node>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        redline_server::serve(node, listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (url, tx)
}

/// Raw sled: `leaves` in batches of `BATCH`, each batch one `apply_batch` + flush; one key per
/// leaf, or `bundle` leaves concatenated per key. With `tree_hashes`, each batch also writes
/// two 32-byte hashes per leaf, 256 per key, as the store does for the Merkle tree (Go-tlog
/// stores ~2 hashes per leaf). Returns entries/s.
fn raw_sled(leaves: &[Vec<u8>], bundle: usize, tree_hashes: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(256 * 1024 * 1024)
        .open()
        .unwrap();
    let tree = db.open_tree("raw").unwrap();
    let hash_bundle = vec![0x5au8; 256 * 32];
    let start = Instant::now();
    let (mut key, mut hash_key) = (0u64, 1u64 << 63);
    for batch in leaves.chunks(BATCH) {
        let mut b = sled::Batch::default();
        for group in batch.chunks(bundle) {
            let mut v = Vec::with_capacity(group.iter().map(|l| l.len() + 2).sum());
            for l in group {
                v.extend_from_slice(&(l.len() as u16).to_be_bytes());
                v.extend_from_slice(l);
            }
            b.insert(&key.to_be_bytes(), v);
            key += 1;
        }
        if tree_hashes {
            for _ in 0..(2 * batch.len()).div_ceil(256) {
                b.insert(&hash_key.to_be_bytes(), hash_bundle.as_slice());
                hash_key += 1;
            }
        }
        tree.apply_batch(b).unwrap();
        db.flush().unwrap();
    }
    leaves.len() as f64 / start.elapsed().as_secs_f64()
}

/// The follower's commit path, phase by phase, without the network: `prepare_append` (decode,
/// active-set plan, leaf and tree hashes, root), the sled commit with flush, and the catalog
/// update. Seconds each.
fn phases(leaves: &[Vec<u8>]) -> (f64, f64, f64) {
    use redline_server::catalog::Catalog;
    use redline_server::log::{prepare_append, LogState, Validation};
    use redline_server::store::Store;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let catalog = Catalog::new();
    catalog.set_origin(0, "source.example", true);
    let state = LogState {
        id: 0,
        name: "source.example".into(),
        registered: false,
        checkpoint: None,
    };
    let leaves = leaves.to_vec();
    let t = Instant::now();
    let prepared =
        prepare_append(&store, &catalog, &state, leaves, Validation::Replicated).unwrap();
    let verify = t.elapsed().as_secs_f64();
    let t = Instant::now();
    store.commit_blocking(prepared.commit).unwrap();
    let commit = t.elapsed().as_secs_f64();
    let t = Instant::now();
    catalog.apply(0, &prepared.plan.activate, &prepared.plan.deactivate);
    (verify, commit, t.elapsed().as_secs_f64())
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let total: usize = std::env::var("REPLICATION_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "replication bench: {total} entries, batches of {BATCH}; load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    rt.block_on(async move {
        let (ds, df) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let source = Node::open(Config::new("source.example", ds.path()))
            .await
            .unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let t = Instant::now();
        for _ in 0..total.div_ceil(BATCH) {
            let signals = (0..BATCH)
                .map(|_| NewSignal {
                    signal_type: SignalType::Pdq,
                    hash: rng.gen::<[u8; 32]>().to_vec(),
                    quality: 100,
                })
                .collect();
            source
                .submit(
                    signals,
                    Listing {
                        labels: vec!["ncii".into()],
                        legal_basis: "consent withdrawn".into(),
                        case_ref: String::new(),
                    },
                )
                .await
                .unwrap();
        }
        let origin = source.origin().to_owned();
        let head = source.log(&origin).unwrap().state();
        let n = head.size();
        println!(
            "source: {n} entries submitted in {:.1} s ({:.0}/s)",
            t.elapsed().as_secs_f64(),
            n as f64 / t.elapsed().as_secs_f64()
        );
        let leaves: Vec<Vec<u8>> = {
            use futures::StreamExt;
            let chunks: Vec<_> = source
                .logs()
                .entries(&origin, 0, n)
                .unwrap()
                .collect()
                .await;
            chunks
                .into_iter()
                .flat_map(|c| c.unwrap())
                .map(|(_, leaf)| leaf)
                .collect()
        };
        let mean = leaves.iter().map(Vec::len).sum::<usize>() as f64 / n as f64;
        let (url, stop_source) = serve(source.clone()).await;

        let mut config = Config::new("follower.example", df.path());
        config.peers = vec![PeerConfig::new(url)];
        config.trust = vec![TrustConfig {
            origin: origin.clone(),
            key: source.public_key().verifier_key(),
            policy: Policy::Accept,
        }];
        let t = Instant::now();
        let follower = Node::open(config).await.unwrap();
        let (_, stop_follower) = serve(follower.clone()).await;
        let log = follower.log(&origin).unwrap();
        while log.state().size() < n {
            assert!(t.elapsed() < Duration::from_secs(600), "replication stalled");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let took = t.elapsed().as_secs_f64();
        assert_eq!(log.state().root(), head.root(), "identical root");
        assert_eq!(follower.evidence_count(), 0);
        let rate = n as f64 / took;
        let _ = stop_follower.send(());
        let _ = stop_source.send(());
        drop(follower);

        let phases = tokio::task::block_in_place(|| phases(&leaves));
        let per_key = tokio::task::block_in_place(|| raw_sled(&leaves, 1, false));
        let bundled = tokio::task::block_in_place(|| raw_sled(&leaves, 256, false));
        let with_tree = tokio::task::block_in_place(|| raw_sled(&leaves, 256, true));
        let bound = per_key.max(bundled);
        println!("leaf bytes: mean {mean:.1} B");
        println!("replication (verified + durably committed): {n} entries in {took:.2} s = {rate:.0} entries/s");
        println!("raw sled bound, one key per leaf:       {per_key:.0} entries/s");
        println!("raw sled bound, 256 leaves per key:     {bundled:.0} entries/s");
        println!(
            "for reference, raw sled writing what the store writes (256 leaves per key plus 2 \
             tree hashes per leaf): {with_tree:.0} entries/s ({:.0}% of it)",
            100.0 * rate / with_tree
        );
        println!(
            "where the follower's time goes, measured alone on the same leaves (s): \
             verify (decode, plan, leaf + tree hashes, root) {:.2}, sled commit + flush {:.2}, \
             catalog update {:.2}",
            phases.0, phases.1, phases.2
        );
        println!(
            "ratio to raw sled inserting the same entries one key each: {:.0}%; to the faster \
             raw bound (stricter: the store's bundled layout): {:.0}%   (target: >= 200000 \
             entries/s and >= 50%)",
            100.0 * rate / per_key,
            100.0 * rate / bound
        );
    });
}
