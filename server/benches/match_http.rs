//! Matching throughput by way in: batch HTTP (`POST /v1/match/batch`, 10,000 hashes a call,
//! NDJSON back), single HTTP (`POST /v1/match`, one hash a call, 64 keep-alive connections)
//! and single gRPC (`Matching.Match`, one hash a call, 64 concurrent calls), against a node
//! whose catalog holds 1,000,000 PDQ hashes, all over loopback. The baseline, measured in the
//! same run, is the same queries answered by the in-process catalog on one thread; each way
//! in is reported as hashes/s and as a ratio of it (issue target: batch HTTP >= 0.5).
//!
//! The batch is sent with `curl` (one call per batch, so its start-up is noise); the single
//! HTTP client is a minimal keep-alive HTTP/1.1 client here, so that the figure is the
//! node's cost and not a client library's.
//!
//! Run: `cargo bench -p redline-server --bench match_http` (env `MATCH_HTTP_N`, default
//! 1000000; `MATCH_HTTP_SECS` per way in, default 5).

use rand::{Rng, SeedableRng};
use redline_proto::pb::{self, matching_client::MatchingClient, MatchRequest};
use redline_proto::signal::SignalType;
use redline_server::node::{Listing, NewSignal};
use redline_server::{Config, Node};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const CONCURRENCY: usize = 64;
const BATCH: usize = 10_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn body(queries: &[[u8; 32]]) -> String {
    let signals: Vec<_> = queries
        .iter()
        .map(|q| serde_json::json!({"signal_type": "pdq", "value": hex::encode(q)}))
        .collect();
    serde_json::json!({ "signals": signals }).to_string()
}

/// One keep-alive HTTP/1.1 connection posting `/v1/match` until `deadline`; calls answered.
async fn http_singles(
    addr: std::net::SocketAddr,
    queries: Arc<Vec<[u8; 32]>>,
    first: usize,
    deadline: Instant,
) -> u64 {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut conn = BufReader::new(stream);
    let mut answered = 0;
    let mut i = first;
    let mut line = String::new();
    let mut response = Vec::new();
    while Instant::now() < deadline {
        let b = body(&queries[i % queries.len()..][..1]);
        i += 1;
        let req = format!(
            "POST /v1/match HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
            b.len()
        );
        conn.get_mut().write_all(req.as_bytes()).await.unwrap();
        let mut length = None;
        line.clear();
        conn.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        loop {
            line.clear();
            conn.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
        }
        response.resize(length.expect("a content-length"), 0);
        conn.read_exact(&mut response).await.unwrap();
        answered += 1;
    }
    answered
}

fn main() {
    let n = env("MATCH_HTTP_N", 1_000_000) as usize;
    let secs = env("MATCH_HTTP_SECS", 5);
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
        // 10,000 queries: half near a stored hash (<= 16 bits flipped), half random.
        let queries: Vec<[u8; 32]> = (0..BATCH)
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
        println!("{n} PDQ hashes listed; {} distinct queries", queries.len());

        let start = Instant::now();
        let mut done = 0usize;
        while start.elapsed() < Duration::from_secs(2) {
            for q in &queries {
                std::hint::black_box(node.matching().search(SignalType::Pdq, q, 31));
            }
            done += queries.len();
        }
        let baseline = done as f64 / start.elapsed().as_secs_f64();
        println!("in-process catalog search, 1 thread (baseline): {baseline:>9.0} hashes/s");

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(redline_server::serve(node.clone(), listener, async {
            let _ = rx.await;
        }));
        let queries = Arc::new(queries);
        let report = |what: &str, hashes: u64, took: Duration| {
            let rate = hashes as f64 / took.as_secs_f64();
            println!(
                "{what:<46} {rate:>9.0} hashes/s  ratio {:.2}",
                rate / baseline
            );
        };

        // Batch HTTP: two clients, each posting the 10,000 queries again and again.
        let file = dir.path().join("batch.json");
        std::fs::write(&file, body(&queries)).unwrap();
        let url = format!("http://{addr}/v1/match/batch");
        let start = Instant::now();
        let deadline = start + Duration::from_secs(secs);
        let mut clients = Vec::new();
        for _ in 0..2 {
            let (file, url) = (file.clone(), url.clone());
            clients.push(tokio::task::spawn_blocking(move || {
                let mut lines = 0u64;
                while Instant::now() < deadline {
                    let out = std::process::Command::new("curl")
                        .args(["-sS", "--fail", "-H", "content-type: application/json"])
                        .arg("--data-binary")
                        .arg(format!("@{}", file.display()))
                        .arg(&url)
                        .output()
                        .expect("curl runs");
                    assert!(out.status.success(), "{out:?}");
                    let n = out.stdout.iter().filter(|&&b| b == b'\n').count();
                    assert_eq!(n, BATCH, "one line per hash");
                    lines += n as u64;
                }
                lines
            }));
        }
        let mut hashes = 0;
        for c in clients {
            hashes += c.await.unwrap();
        }
        report(
            "batch HTTP /v1/match/batch (10,000, 2 clients)",
            hashes,
            start.elapsed(),
        );

        // Single HTTP.
        let start = Instant::now();
        let deadline = start + Duration::from_secs(secs);
        let tasks: Vec<_> = (0..CONCURRENCY)
            .map(|c| tokio::spawn(http_singles(addr, queries.clone(), c * 157, deadline)))
            .collect();
        let mut hashes = 0;
        for t in tasks {
            hashes += t.await.unwrap();
        }
        report(
            "single HTTP /v1/match (64 connections)",
            hashes,
            start.elapsed(),
        );

        // Single gRPC.
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(secs);
        let tasks: Vec<_> = (0..CONCURRENCY)
            .map(|c| {
                let (mut client, queries) = (MatchingClient::new(channel.clone()), queries.clone());
                tokio::spawn(async move {
                    let (mut i, mut answered) = (c * 157, 0u64);
                    while Instant::now() < deadline {
                        let q = queries[i % queries.len()];
                        i += 1;
                        let resp = client
                            .r#match(MatchRequest {
                                signals: vec![pb::Signal {
                                    signal_type: "pdq".into(),
                                    value: hex::encode(q),
                                    quality: 0,
                                }],
                                ..Default::default()
                            })
                            .await
                            .unwrap();
                        assert_eq!(resp.into_inner().results.len(), 1);
                        answered += 1;
                    }
                    answered
                })
            })
            .collect();
        let mut hashes = 0;
        for t in tasks {
            hashes += t.await.unwrap();
        }
        report(
            "single gRPC Matching.Match (64 concurrent)",
            hashes,
            start.elapsed(),
        );

        let _ = tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    });
}
