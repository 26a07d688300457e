//! Soak: three nodes under sustained load for a bounded time (default 300 s), not part of the
//! default test run (`#[ignore]`):
//!
//! ```sh
//! cargo test --release -p redline-e2e --test soak -- --ignored --nocapture
//! REDLINE_SOAK_SECS=60 cargo test --release -p redline-e2e --test soak -- --ignored --nocapture
//! ```
//!
//! Hotlines A and B follow each other; platform C follows both. During the run, 64 concurrent
//! `MatchStream` streams query C (half near a hash it should hold), A and B submit batches
//! continuously and retract some of what they added. Checked: no call fails; after the load
//! stops all three nodes hold identical logs (same size and root per origin) and the same
//! active-entry counts; the process's resident memory after the run stays within a stated
//! bound of its level after warm-up. The figures printed at the end go into README's
//! reliability section.

use rand::{Rng, SeedableRng};
use redline_e2e::{eventually, federated_config, identity, reserve, temp_dir, trust_key, TestNode};
use redline_proto::pb::{matching_client::MatchingClient, MatchRequest, Signal};
use redline_proto::signal::SignalType;
use redline_server::config::Policy;
use redline_server::node::NewSignal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STREAMS: usize = 64;
/// Hashes per submission batch, and pause between batches per hotline.
const BATCH: usize = 200;
const SUBMIT_PAUSE: Duration = Duration::from_millis(50);
/// Every this many batches, a hotline retracts one of its earlier entries.
const RETRACT_EVERY: u64 = 5;
/// Allowed growth of resident memory from warm-up to the end of the load, beyond the space the
/// entries added meanwhile take (per node: log bundles in sled's cache, index, catalog).
const RSS_SLACK_BYTES: u64 = 256 << 20;
const RSS_PER_ENTRY_BYTES: u64 = 3 * 1024;

/// Resident set size of this process (the three nodes run in it), bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn pdq(rng: &mut impl Rng) -> [u8; 32] {
    let mut h = [0u8; 32];
    rng.fill(&mut h);
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: ~5 minutes; run with --ignored (see the file header)"]
async fn three_nodes_stay_correct_and_bounded_under_sustained_load() {
    let secs: u64 = std::env::var("REDLINE_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let (da, db, dc) = (temp_dir(), temp_dir(), temp_dir());
    let (ka, kb) = (
        identity(da.path(), "hotline-a.example"),
        identity(db.path(), "hotline-b.example"),
    );
    let ((la, ua), (lb, ub), (lc, _)) = (reserve().await, reserve().await, reserve().await);
    let accept = |k| trust_key(k, Policy::Accept);
    let a = TestNode::start_on(
        la,
        federated_config(
            "hotline-a.example",
            da.path(),
            &[&ub],
            vec![accept(&kb)],
            1000,
        ),
    )
    .await;
    let b = TestNode::start_on(
        lb,
        federated_config(
            "hotline-b.example",
            db.path(),
            &[&ua],
            vec![accept(&ka)],
            1000,
        ),
    )
    .await;
    let c = TestNode::start_on(
        lc,
        federated_config(
            "platform.example",
            dc.path(),
            &[&ua, &ub],
            vec![accept(&ka), accept(&kb)],
            1000,
        ),
    )
    .await;

    // Warm-up: 20,000 hashes per hotline, replicated everywhere.
    let stored: Arc<Mutex<Vec<[u8; 32]>>> = Arc::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for hotline in [&a, &b] {
        for _ in 0..10 {
            let hashes: Vec<[u8; 32]> = (0..2_000).map(|_| pdq(&mut rng)).collect();
            stored.lock().unwrap().extend(&hashes);
            hotline
                .node
                .submit(signals(&hashes), Default::default())
                .await
                .unwrap();
        }
    }
    let converged = |want: u64| {
        let (a, b, c) = (&a, &b, &c);
        move || async move {
            ["hotline-a.example", "hotline-b.example"].iter().all(|o| {
                let head = a.head_of(o);
                head.0 >= want && b.head_of(o) == head && c.head_of(o) == head
            })
        }
    };
    eventually(
        Duration::from_secs(60),
        "warm-up replicated",
        converged(20_000),
    )
    .await;
    let rss_start = rss_bytes();
    let sizes_start: u64 = [&a, &b].iter().map(|n| n.size_of(n.node.origin())).sum();

    let stop = Arc::new(AtomicBool::new(false));
    let (queries, failures, hits) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let latencies: Arc<Mutex<Vec<u32>>> = Arc::default();
    let peak_rss = Arc::new(AtomicU64::new(rss_start));

    // 64 match streams at the platform, one request in flight each.
    let mut tasks = Vec::new();
    for s in 0..STREAMS {
        let (stop, queries, failures, hits, latencies, stored) = (
            stop.clone(),
            queries.clone(),
            failures.clone(),
            hits.clone(),
            latencies.clone(),
            stored.clone(),
        );
        let url = c.url.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(1000 + s as u64);
            let mut client = MatchingClient::connect(url).await.unwrap();
            let (tx, rx) = tokio::sync::mpsc::channel::<MatchRequest>(1);
            let mut responses = client
                .match_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .unwrap()
                .into_inner();
            let mut local = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let mut q = if rng.gen_bool(0.5) {
                    let all = stored.lock().unwrap();
                    all[rng.gen_range(0..all.len())]
                } else {
                    pdq(&mut rng)
                };
                q[rng.gen_range(0..32)] ^= 1 << rng.gen_range(0..8);
                let t = Instant::now();
                let sent = tx
                    .send(MatchRequest {
                        signals: vec![Signal {
                            signal_type: "pdq".into(),
                            value: hex::encode(q),
                            quality: 100,
                        }],
                        ..Default::default()
                    })
                    .await;
                match (sent, responses.message().await) {
                    (Ok(()), Ok(Some(r))) => {
                        local.push(t.elapsed().as_micros() as u32);
                        queries.fetch_add(1, Ordering::Relaxed);
                        if r.results.iter().any(|q| !q.matches.is_empty()) {
                            hits.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    other => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("stream {s}: {other:?}");
                        break;
                    }
                }
            }
            latencies.lock().unwrap().extend(local);
        }));
    }

    // Continuous submissions and retractions at both hotlines.
    let submitted = Arc::new(AtomicU64::new(0));
    let retracted = Arc::new(AtomicU64::new(0));
    for (i, hotline) in [a.node.clone(), b.node.clone()].into_iter().enumerate() {
        let (stop, failures, stored, submitted, retracted) = (
            stop.clone(),
            failures.clone(),
            stored.clone(),
            submitted.clone(),
            retracted.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(50 + i as u64);
            let mut batches = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let hashes: Vec<[u8; 32]> = (0..BATCH).map(|_| pdq(&mut rng)).collect();
                match hotline.submit(signals(&hashes), Default::default()).await {
                    Ok(s) => {
                        stored.lock().unwrap().extend(&hashes);
                        submitted.fetch_add(hashes.len() as u64, Ordering::Relaxed);
                        batches += 1;
                        if batches.is_multiple_of(RETRACT_EVERY) {
                            // An ADD of this batch: the first index it reported.
                            let index = s.entries[0].0;
                            match hotline.retract(index, "soak: false positive").await {
                                Ok(_) => {
                                    retracted.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(e) => {
                                    failures.fetch_add(1, Ordering::Relaxed);
                                    eprintln!("retract: {e}");
                                }
                            }
                        }
                    }
                    Err(e) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("submit: {e}");
                    }
                }
                tokio::time::sleep(SUBMIT_PAUSE).await;
            }
        }));
    }

    // Sample memory while the load runs.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak_rss.fetch_max(rss_bytes(), Ordering::Relaxed);
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();

    // Everything converges: the same logs and the same active sets on all three nodes.
    let final_sizes: Vec<u64> = [&a, &b]
        .iter()
        .map(|n| n.size_of(n.node.origin()))
        .collect();
    let convergence = eventually(
        Duration::from_secs(120),
        "all nodes converge after the load",
        converged(*final_sizes.iter().min().unwrap()),
    )
    .await;
    for origin in ["hotline-a.example", "hotline-b.example"] {
        let head = a.head_of(origin);
        assert_eq!(b.head_of(origin), head, "{origin} on B");
        assert_eq!(c.head_of(origin), head, "{origin} on C");
        let active: Vec<u64> = [&a, &b, &c]
            .iter()
            .map(|n| {
                let id = n.node.log(origin).unwrap().state().id;
                n.node.logs().active_count(id)
            })
            .collect();
        assert!(
            active.windows(2).all(|w| w[0] == w[1]),
            "{origin}: {active:?}"
        );
    }
    let rss_end = rss_bytes();
    let added: u64 = final_sizes.iter().sum::<u64>() - sizes_start;
    let bound = rss_start + RSS_SLACK_BYTES + 3 * added * RSS_PER_ENTRY_BYTES;

    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)));
    let (queries, failures) = (
        queries.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
    );
    println!(
        "soak: {elapsed:.0} s, {STREAMS} match streams: {queries} queries ({:.0}/s, {} with a \
         match), p50 {} µs, p99 {} µs, max {} µs; {} hashes submitted and {} retracted at 2 \
         hotlines ({:.0} hashes/s); converged {:.1} s after the load; {failures} failed calls; \
         RSS {} MiB after warm-up, peak {} MiB, {} MiB at the end (bound {} MiB)",
        queries as f64 / elapsed,
        hits.load(Ordering::Relaxed),
        pct(0.5).copied().unwrap_or(0),
        pct(0.99).copied().unwrap_or(0),
        lat.last().copied().unwrap_or(0),
        submitted.load(Ordering::Relaxed),
        retracted.load(Ordering::Relaxed),
        submitted.load(Ordering::Relaxed) as f64 / elapsed,
        convergence.as_secs_f64(),
        rss_start >> 20,
        peak_rss.load(Ordering::Relaxed) >> 20,
        rss_end >> 20,
        bound >> 20,
    );
    assert_eq!(failures, 0, "calls failed during the soak");
    assert!(queries > 0 && submitted.load(Ordering::Relaxed) > 0);
    assert!(
        peak_rss.load(Ordering::Relaxed).max(rss_end) <= bound,
        "memory grew beyond the bound"
    );
    for n in [c, b, a] {
        n.stop().await;
    }
}

fn signals(hashes: &[[u8; 32]]) -> Vec<NewSignal> {
    hashes
        .iter()
        .map(|h| NewSignal {
            signal_type: SignalType::Pdq,
            hash: h.to_vec(),
            quality: 100,
        })
        .collect()
}
