//! vPDQ matching at scale: a 60-frame query video against a node holding 1,000,000 listed frame
//! hashes (834 videos of 1,200 frames), through the node's own matching path (frame index ->
//! candidate videos -> each candidate's frames read from its leaf and compared as
//! python-threatexchange does), against, in the same run, the brute force that path replaces
//! (pytx's `match_VPDQ_hash_brute`, i.e. `redline_hashing::vpdq::compare`, over every listed
//! video), and against the 0.25 ms per query that Meta's vPDQ README gives for a flat FAISS
//! index of 1M frames.
//!
//! Listed videos are random walks in PDQ space (each frame 16 bits from the one before, so
//! neighbouring frames are near like a real video's). Half the queries are 60 frames of a
//! listed video (every 5th frame from a random start, each with up to 8 bits of noise: a
//! re-encode), half are 60 random frames (an upload that is not listed).
//!
//! Run: `cargo bench -p redline-server --bench video_match` (env `VIDEO_MATCH_FRAMES`, default
//! 1000000; `VIDEO_MATCH_QUERIES`, default 200).

use rand::{Rng, SeedableRng};
use redline_hashing::pdq::PdqHash;
use redline_hashing::vpdq::{self, VpdqFrame, VpdqMatchOptions};
use redline_proto::signal::SignalType;
use redline_server::node::{Listing, NewSignal, Query, SentSignal};
use redline_server::{Config, Node};
use std::time::{Duration, Instant};

/// Meta's vPDQ README: "0.25ms per query" for a 1M-frame flat index.
const REFERENCE_MS: f64 = 0.25;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn flip(h: &mut [u8; 32], bits: usize, rng: &mut impl Rng) {
    for _ in 0..bits {
        let b = rng.gen_range(0..256);
        h[b / 8] ^= 1 << (b % 8);
    }
}

fn frames_of(hashes: &[[u8; 32]]) -> Vec<VpdqFrame> {
    hashes
        .iter()
        .enumerate()
        .map(|(i, h)| VpdqFrame {
            frame_number: i as u64,
            quality: 90,
            pdq: PdqHash(*h),
            timestamp_s: i as f64 * 0.2,
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn main() {
    let total = env("VIDEO_MATCH_FRAMES", 1_000_000) as usize;
    let n_queries = env("VIDEO_MATCH_QUERIES", 200) as usize;
    let per_video = redline_proto::vpdq::MAX_FRAMES;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::open(Config::new("bench.example", dir.path())).await.unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(18);
        let videos: Vec<Vec<VpdqFrame>> = (0..total.div_ceil(per_video))
            .map(|_| {
                let mut h: [u8; 32] = rng.gen();
                let hashes: Vec<[u8; 32]> = (0..per_video)
                    .map(|_| {
                        flip(&mut h, 16, &mut rng);
                        h
                    })
                    .collect();
                frames_of(&hashes)
            })
            .collect();
        let load = Instant::now();
        for chunk in videos.chunks(50) {
            let signals = chunk
                .iter()
                .map(|v| NewSignal {
                    signal_type: SignalType::Vpdq,
                    hash: vpdq::encode_values(v).remove(0),
                    quality: 0,
                })
                .collect();
            node.submit(signals, Listing::default()).await.unwrap();
        }
        node.matching().compact();
        let frames: usize = videos.iter().map(Vec::len).sum();
        println!(
            "listed {} videos, {frames} frames, in {:.1} s (submit + sign + flush + index)",
            videos.len(),
            load.elapsed().as_secs_f64()
        );
        let queries: Vec<(bool, Vec<VpdqFrame>)> = (0..n_queries)
            .map(|i| {
                let listed = i % 2 == 0;
                let hashes: Vec<[u8; 32]> = if listed {
                    let v = &videos[rng.gen_range(0..videos.len())];
                    let start = rng.gen_range(0..per_video - 300);
                    (0..60)
                        .map(|k| {
                            let mut h = v[start + 5 * k].pdq.0;
                            flip(&mut h, rng.gen_range(0..=8), &mut rng);
                            h
                        })
                        .collect()
                } else {
                    (0..60).map(|_| rng.gen()).collect()
                };
                (listed, frames_of(&hashes))
            })
            .collect();

        // The node's path, one query at a time.
        let mut node_times = Vec::with_capacity(queries.len());
        let mut node_decisions = Vec::with_capacity(queries.len());
        for (_, q) in &queries {
            let value = vpdq::encode_values(q).remove(0);
            let query = Query {
                signals: vec![SentSignal {
                    hex: hex::encode(&value),
                    signal: NewSignal {
                        signal_type: SignalType::Vpdq,
                        hash: value,
                        quality: 0,
                    },
                }],
                ..Query::default()
            };
            let t = Instant::now();
            let answer = node.matching().answer(query).await.unwrap();
            node_times.push(t.elapsed());
            node_decisions.push(answer.results[0].hits.len());
        }
        // Brute force: every listed video compared with the query.
        let options = VpdqMatchOptions::default();
        let policy = vpdq::MatchPolicy::PYTX_INDEX;
        let brute_n = queries.len().min(20);
        let mut brute_times = Vec::with_capacity(brute_n);
        for (i, (_, q)) in queries.iter().take(brute_n).enumerate() {
            let t = Instant::now();
            let matched = videos
                .iter()
                .filter(|v| policy.is_match(&vpdq::match_brute(q, v, &options)))
                .count();
            brute_times.push(t.elapsed());
            assert_eq!(matched, node_decisions[i], "query {i}: index and brute force disagree");
        }
        for (i, (listed, _)) in queries.iter().enumerate() {
            assert_eq!(node_decisions[i] > 0, *listed, "query {i}");
        }
        node_times.sort();
        brute_times.sort();
        let mean = |t: &[Duration]| t.iter().sum::<Duration>().as_secs_f64() / t.len() as f64;
        let (node_ms, brute_ms) = (mean(&node_times) * 1e3, mean(&brute_times) * 1e3);
        println!(
            "node matching: {:.0} queries/s (mean {node_ms:.3} ms, p50 {:.3} ms, p99 {:.3} ms) over {} queries, decisions equal brute force's",
            1e3 / node_ms,
            percentile(&node_times, 0.5).as_secs_f64() * 1e3,
            percentile(&node_times, 0.99).as_secs_f64() * 1e3,
            node_times.len()
        );
        println!(
            "brute force (pytx's comparison over every listed video): {:.1} queries/s (mean {brute_ms:.1} ms) over {brute_n} queries",
            1e3 / brute_ms
        );
        println!(
            "ratios: node / brute force {:.0}x; node vs the reference's published {REFERENCE_MS} ms for a flat 1M-frame index {:.2}x",
            brute_ms / node_ms,
            REFERENCE_MS / node_ms
        );
    });
}
