//! Match RPC load: 64 concurrent `MatchStream` streams over loopback against a node whose
//! catalog holds 1,000,000 PDQ hashes; half the queries are near a stored hash (≤ 16 bits
//! flipped), half uniformly random. Reports requests/s and p50/p99 latency, with the same
//! queries answered by the in-process catalog in the same run as the baseline (the ratio is
//! the cost of gRPC + HTTP/2 + protobuf on top of the search).
//!
//! Run: `cargo bench -p redline-server --bench match_load` (env `MATCH_LOAD_N`, default 1000000;
//! `MATCH_LOAD_SECS`, default 10).

use rand::{Rng, SeedableRng};
use redline_proto::pb::{self, matching_client::MatchingClient, MatchRequest};
use redline_proto::signal::SignalType;
use redline_server::node::{Listing, NewSignal};
use redline_server::{Config, Node};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STREAMS: usize = 64;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn main() {
    let n = env("MATCH_LOAD_N", 1_000_000) as usize;
    let secs = env("MATCH_LOAD_SECS", 10);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = Config::new("bench.example", dir.path());
        config.listen = addr;
        let node = Node::open(config).await.unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let stored: Vec<[u8; 32]> = (0..n).map(|_| rng.gen()).collect();
        let load = Instant::now();
        for chunk in stored.chunks(10_000) {
            let signals = chunk
                .iter()
                .map(|h| NewSignal {
                    signal_type: SignalType::Pdq,
                    hash: h.to_vec(),
                    quality: 100,
                })
                .collect();
            node.submit(signals, Listing::default()).await.unwrap();
        }
        node.matching().compact();
        println!(
            "loaded {n} PDQ hashes in {:.1} s (submit + sign + flush + index)",
            load.elapsed().as_secs_f64()
        );
        // 1,000 queries: half near a stored hash, half random.
        let queries: Vec<[u8; 32]> = (0..1000)
            .map(|i| {
                if i % 2 == 0 {
                    let mut q = stored[rng.gen_range(0..n)];
                    for _ in 0..rng.gen_range(0..=16) {
                        let bit = rng.gen_range(0..256);
                        q[bit / 8] ^= 1 << (bit % 8);
                    }
                    q
                } else {
                    rng.gen()
                }
            })
            .collect();

        // Baseline: the same searches in process, one thread.
        let matching = node.clone();
        let start = Instant::now();
        let mut found = 0usize;
        let mut rounds = 0usize;
        while start.elapsed() < Duration::from_secs(2) {
            for q in &queries {
                found += matching.matching().search(SignalType::Pdq, q, 31).len();
            }
            rounds += 1;
        }
        let in_process = (rounds * queries.len()) as f64 / start.elapsed().as_secs_f64();
        println!(
            "in-process catalog search: {in_process:.0} queries/s on one thread ({} hits per round)",
            found / rounds
        );

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(redline_server::serve(node.clone(), listener, async {
            let _ = rx.await;
        }));
        let queries = Arc::new(queries);
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for s in 0..STREAMS {
            let queries = queries.clone();
            let url = format!("http://{addr}");
            tasks.push(tokio::spawn(async move {
                let mut client = MatchingClient::connect(url).await.unwrap();
                let (req_tx, req_rx) = tokio::sync::mpsc::channel::<MatchRequest>(1);
                let mut responses = client
                    .match_stream(tokio_stream::wrappers::ReceiverStream::new(req_rx))
                    .await
                    .unwrap()
                    .into_inner();
                let mut latencies = Vec::new();
                let mut i = s * 17;
                while Instant::now() < deadline {
                    let q = queries[i % queries.len()];
                    i += 1;
                    let sent = Instant::now();
                    req_tx
                        .send(MatchRequest {
                            signals: vec![pb::Signal {
                                signal_type: "pdq".into(),
                                value: hex::encode(q),
                                quality: 0,
                            }],
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    let resp = responses.message().await.unwrap().unwrap();
                    assert_eq!(resp.results.len(), 1);
                    latencies.push(sent.elapsed());
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort_unstable();
        let rps = all.len() as f64 / secs as f64;
        println!(
            "Match RPC over loopback, {STREAMS} streams, {secs} s: {rps:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms ({} requests)",
            percentile(&all, 0.50).as_secs_f64() * 1e3,
            percentile(&all, 0.99).as_secs_f64() * 1e3,
            all.len()
        );
        println!(
            "ratio gRPC requests/s / in-process one-thread queries/s: {:.2}",
            rps / in_process
        );
        let _ = tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    });
}
