//! Submit throughput: hashes appended + checkpoint signed + flushed per second, for batches of
//! 1, 100 and 10,000, through the node's domain API and over gRPC on loopback. Baseline measured
//! in the same run: a raw sled batch insert of the same leaf bytes plus flush (no validation,
//! no tree hashing, no signature), the bound the node's write path can approach.
//!
//! Run: `cargo bench -p redline-server --bench submit_throughput`

use rand::{Rng, SeedableRng};
use redline_proto::pb::{self, submission_client::SubmissionClient, SubmitRequest};
use redline_proto::signal::SignalType;
use redline_server::node::{Listing, NewSignal};
use redline_server::{Config, Node};
use std::time::{Duration, Instant};

fn signals(rng: &mut impl Rng, n: usize) -> Vec<NewSignal> {
    (0..n)
        .map(|_| NewSignal {
            signal_type: SignalType::Pdq,
            hash: rng.gen::<[u8; 32]>().to_vec(),
            quality: 100,
        })
        .collect()
}

fn listing() -> Listing {
    Listing {
        labels: vec!["ncii".into()],
        legal_basis: "consent withdrawn".into(),
        case_ref: String::new(),
    }
}

/// Raw sled: the same number of ~110-byte values, one batch + flush per submit batch.
fn raw_sled(batch: usize, batches: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let tree = db.open_tree("raw").unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut key = 0u64;
    let start = Instant::now();
    for _ in 0..batches {
        let mut b = sled::Batch::default();
        for _ in 0..batch {
            let value: [u8; 32] = rng.gen();
            let mut v = value.to_vec();
            v.resize(110, 7);
            b.insert(&key.to_be_bytes(), v);
            key += 1;
        }
        tree.apply_batch(b).unwrap();
        db.flush().unwrap();
    }
    (batch * batches) as f64 / start.elapsed().as_secs_f64()
}

async fn node_domain(batch: usize, batches: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(Config::new("bench.example", dir.path()))
        .await
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let inputs: Vec<_> = (0..batches).map(|_| signals(&mut rng, batch)).collect();
    let start = Instant::now();
    for s in inputs {
        node.submit(s, listing()).await.unwrap();
    }
    (batch * batches) as f64 / start.elapsed().as_secs_f64()
}

async fn node_grpc(batch: usize, batches: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::new("bench.example", dir.path());
    config.listen = addr;
    let node = Node::open(config).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(redline_server::serve(node, listener, async {
        let _ = rx.await;
    }));
    let mut client = SubmissionClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let requests: Vec<SubmitRequest> = (0..batches)
        .map(|_| SubmitRequest {
            signals: (0..batch)
                .map(|_| pb::Signal {
                    signal_type: "pdq".into(),
                    value: hex::encode(rng.gen::<[u8; 32]>()),
                    quality: 100,
                })
                .collect(),
            labels: vec!["ncii".into()],
            legal_basis: "consent withdrawn".into(),
            ..Default::default()
        })
        .collect();
    let start = Instant::now();
    for r in requests {
        client.submit(r).await.unwrap();
    }
    let rate = (batch * batches) as f64 / start.elapsed().as_secs_f64();
    let _ = tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    rate
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("submit throughput (hashes/s: appended + checkpoint signed + flushed to disk)");
    println!(
        "{:>8} {:>8} {:>14} {:>14} {:>14} {:>10}",
        "batch", "batches", "raw sled", "node", "node gRPC", "node/raw"
    );
    for (batch, batches) in [(1usize, 300usize), (100, 100), (10_000, 10)] {
        let raw = raw_sled(batch, batches);
        let domain = rt.block_on(node_domain(batch, batches));
        let grpc = rt.block_on(node_grpc(batch, batches));
        println!(
            "{batch:>8} {batches:>8} {raw:>14.0} {domain:>14.0} {grpc:>14.0} {:>10.2}",
            domain / raw
        );
    }
}
