//! Catch-up from empty (issue 17): how fast a new platform follower joins an origin that already
//! holds a large list, and how much memory it needs to do so.
//!
//! A source node runs in-process on loopback; its own log is filled with `CATCHUP_ENTRIES`
//! (default 10,000,000) random PDQ ADDs through `Node::submit` in batches of 10,000 (one signed
//! checkpoint per batch), each batch followed by `CATCHUP_RETRACTS_PER_BATCH` (default 5)
//! single RETRACTs of ADDs of the batch before (each its own signed commit, as an analyst's
//! retraction is). Then, for each step budget of `CATCHUP_BUDGETS_MIB` (default
//! `512,64`: the default `[sync] max_fetch_bytes` and a small one), a real `redline-node`
//! follower (release build, through the harness's `node_bin`) starts on an empty data dir
//! following the source; the clock runs from the moment it serves until its Audit checkpoint
//! of the source's log holds every entry (read every 50 ms). Its peak resident memory is the
//! kernel's `VmHWM` at that moment.
//!
//! Baselines, measured in the same run:
//! - **fetch only**: the same entries streamed from the source with `GetEntries` (calls of
//!   65,536, the bytes counted and dropped): what serving and moving them costs with no
//!   verification, planning, writing or indexing. Catch-up entries/s is printed against it.
//! - **holding the list**: the first follower, stopped gracefully (it saves its catalog
//!   snapshot) and restarted with no peers, serves the same entries without catching up; its
//!   peak and current resident memory then are what holding the list costs. Catch-up peak is
//!   printed against it: the difference is what the catch-up itself costs.
//!
//! Disk: the source's data dir after every million entries (sled's growth under sustained
//! submits and retractions), and each follower's once caught up (replication), in bytes per
//! log entry, against the raw bytes the log must keep: every leaf's bytes plus two 32-byte tree
//! hashes per leaf (what the Merkle tree stores, ~2 hashes per leaf).
//!
//! Targets (issue 17, Done when): >= 400,000 entries/s; follower peak RSS <= 1.5 GiB including
//! the 10M index; disk <= 2x the raw leaf + tree-hash bytes.
//!
//! Run: `cargo bench -p redline-e2e --bench catch_up`
//! Quick check: `CATCHUP_ENTRIES=200000 cargo bench -p redline-e2e --bench catch_up`
//!
//! Linux only (`/proc`). Exits non-zero if a follower does not end with the source's exact
//! tree (size and root), or a sample of entries does not match on it.

use futures::StreamExt;
use rand::{Rng, SeedableRng};
use redline_e2e::adversary::{head, lists, proc_status};
use redline_e2e::crash::{ChildConfig, NodeProcess};
use redline_e2e::{temp_dir, TestNode};
use redline_proto::pb::{audit_client::AuditClient, GetEntriesRequest};
use redline_server::Config;
use std::path::Path;
use std::time::{Duration, Instant};

const ORIGIN: &str = "hotline-a.example";
const BATCH: usize = 10_000;
const GIB: f64 = (1u64 << 30) as f64;
const MIB: u64 = 1 << 20;
/// The follower's log filter: warnings, and one line per committed step.
const STEP_LOG: &str = "warn,redline_server::federation::replicate=info";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Fills the source's own log with `entries` random PDQ ADDs and `retracts` retractions after
/// each batch; returns a sample of ADDs left active, and the data dir's size after every
/// million ADDs as `(leaves, bytes)`.
async fn fill(
    node: &redline_server::Node,
    data_dir: &Path,
    entries: usize,
    retracts: usize,
) -> (Vec<[u8; 32]>, Vec<(u64, u64)>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let started = Instant::now();
    let (mut done, mut sample, mut disk) = (0, Vec::new(), Vec::new());
    let mut previous: Vec<u64> = Vec::new();
    while done < entries {
        let n = BATCH.min(entries - done);
        let hashes: Vec<[u8; 32]> = (0..n).map(|_| rng.gen()).collect();
        sample.push(hashes[n / 2]);
        let submitted = redline_e2e::submit_pdq(node, &hashes).await;
        // The sampled ADD (the middle one) is never among those retracted (the first ones).
        for &index in previous.iter().take(retracts) {
            node.retract(index, "false positive")
                .await
                .expect("retract");
        }
        previous = submitted.entries.iter().map(|(i, _)| *i).collect();
        done += n;
        if done % 1_000_000 == 0 {
            node.flush().expect("flush");
            let leaves = node.total_leaves();
            disk.push((leaves, redline_e2e::adversary::disk_usage(data_dir)));
            eprintln!("  filled {done} in {:.0?}", started.elapsed());
        }
    }
    println!(
        "source: {entries} PDQ ADDs submitted, {retracts} retractions after each batch of          {BATCH}, in {:.1?}",
        started.elapsed()
    );
    (sample, disk)
}

/// Streams `[0, size)` of the source's log and drops it: entries/s and leaf bytes.
async fn fetch_only(url: &str, size: u64) -> (f64, u64) {
    let mut client = AuditClient::connect(url.to_owned())
        .await
        .unwrap()
        .max_decoding_message_size(4 << 20);
    let started = Instant::now();
    let (mut next, mut bytes) = (0u64, 0u64);
    while next < size {
        let end = size.min(next + 65_536);
        let mut stream = client
            .get_entries(GetEntriesRequest {
                origin: ORIGIN.into(),
                start: next,
                end,
            })
            .await
            .unwrap()
            .into_inner();
        while let Some(e) = stream.next().await {
            let e = e.unwrap();
            assert_eq!(e.index, next);
            bytes += e.data.len() as u64;
            next += 1;
        }
        assert_eq!(next, end, "the stream ended early");
    }
    (size as f64 / started.elapsed().as_secs_f64(), bytes)
}

/// Writes a follower config into `dir`: `peers` (the source, or none), trusting the source.
fn follower_config(dir: &Path, key: &str, peers: Vec<String>, budget: u64) -> std::path::PathBuf {
    let cfg = ChildConfig {
        origin: "platform-c.example".into(),
        data_dir: dir.join("data"),
        peers,
        trust: vec![(ORIGIN.into(), key.to_owned())],
        poll_interval_ms: 200,
    };
    // `[sync]` is the last section of the child config: the budget joins it.
    let toml = format!("{}max_fetch_bytes = {budget}\n", cfg.toml());
    let path = dir.join(format!("node-{}.toml", budget / MIB));
    std::fs::write(&path, toml).expect("write config");
    path
}

/// SIGTERM (graceful: the node saves its catalog snapshot) and wait for the exit.
async fn stop_gracefully(mut process: NodeProcess) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &process.pid().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(120);
    while process.running() {
        assert!(Instant::now() < deadline, "the follower did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct CatchUp {
    budget_mib: u64,
    secs: f64,
    peak: u64,
    rss: u64,
}

fn main() {
    let entries: usize = env_or("CATCHUP_ENTRIES", 10_000_000);
    let budgets: Vec<u64> = std::env::var("CATCHUP_BUDGETS_MIB")
        .unwrap_or_else(|_| "512,64".into())
        .split(',')
        .map(|b| {
            b.trim()
                .parse()
                .expect("CATCHUP_BUDGETS_MIB: comma-separated MiB")
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Built before any clock runs.
        tokio::task::spawn_blocking(redline_e2e::node_bin)
            .await
            .unwrap();
        let source_dir = temp_dir();
        let key = redline_e2e::identity(source_dir.path(), ORIGIN).verifier_key();
        let source = TestNode::start(Config::new(ORIGIN, source_dir.path())).await;
        let retracts: usize = env_or("CATCHUP_RETRACTS_PER_BATCH", 5);
        let (sample, source_disk) = fill(&source.node, source_dir.path(), entries, retracts).await;
        let want = head(&source.url, ORIGIN).await;
        let leaves = want.0;
        assert!(leaves >= entries as u64);

        let (fetch_rate, leaf_bytes) = fetch_only(&source.url, leaves).await;
        println!(
            "baseline, fetch only (GetEntries, nothing verified or kept): {fetch_rate:.0} \
             entries/s, {:.2} GiB of leaves ({:.0} B/entry)",
            leaf_bytes as f64 / GIB,
            leaf_bytes as f64 / leaves as f64
        );
        // What the log must keep per entry: its bytes and ~2 tree hashes.
        let raw = leaf_bytes as f64 / leaves as f64 + 64.0;
        println!("baseline, raw leaf + tree-hash bytes: {raw:.0} B/entry");
        for (n, bytes) in &source_disk {
            println!(
                "  source disk at {n} entries: {:.2} GiB = {:.0} B/entry ({:.2}x raw)",
                *bytes as f64 / GIB,
                *bytes as f64 / *n as f64,
                *bytes as f64 / *n as f64 / raw
            );
        }

        let mut runs = Vec::new();
        let mut kept = None;
        for &budget_mib in &budgets {
            let dir = temp_dir();
            let config =
                follower_config(dir.path(), &key, vec![source.url.clone()], budget_mib * MIB);
            let log = dir.path().join("node.log");
            // Each committed step logs one `replicated` line (fetch/verify/commit times).
            let mut process = NodeProcess::spawn_logging(&config, &log, STEP_LOG);
            let url = process.serving(Duration::from_secs(60)).await;
            let started = Instant::now();
            loop {
                let held = head(&url, ORIGIN).await;
                if held == want {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(1800),
                    "no catch-up after 30 min (held {})",
                    held.0
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let secs = started.elapsed().as_secs_f64();
            let (peak, rss) = (
                proc_status(process.pid(), "VmHWM"),
                proc_status(process.pid(), "VmRSS"),
            );
            for h in sample.iter().step_by((sample.len() / 20).max(1)) {
                assert!(
                    lists(&url, ORIGIN, h).await,
                    "a sampled entry does not match"
                );
            }
            let disk = redline_e2e::adversary::disk_usage(&dir.path().join("data"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let steps: Vec<&str> = text.lines().filter(|l| l.contains("replicated")).collect();
            println!("  {} steps committed; the first and last:", steps.len());
            for line in steps
                .iter()
                .take(3)
                .chain(steps.iter().skip(3).rev().take(2).rev())
            {
                println!(
                    "    {}",
                    line.split_once("replicated").map_or(*line, |(_, r)| r)
                );
            }
            println!(
                "catch-up, max_fetch_bytes {budget_mib} MiB: {leaves} entries in {secs:.1} s = \
                 {:.0} entries/s ({:.0}% of fetch only); peak RSS {:.2} GiB ({:.0} B/entry), \
                 RSS when caught up {:.2} GiB; disk {:.0} B/entry ({:.2}x raw)",
                leaves as f64 / secs,
                100.0 * leaves as f64 / secs / fetch_rate,
                peak as f64 / GIB,
                peak as f64 / leaves as f64,
                rss as f64 / GIB,
                disk as f64 / leaves as f64,
                disk as f64 / leaves as f64 / raw
            );
            runs.push(CatchUp {
                budget_mib,
                secs,
                peak,
                rss,
            });
            if kept.is_none() {
                stop_gracefully(process).await;
                kept = Some((dir, budget_mib));
            }
        }

        // Holding the same list, restarted from the snapshot, no catch-up.
        let (dir, budget_mib) = kept.expect("at least one budget");
        let config = follower_config(dir.path(), &key, vec![], budget_mib * MIB);
        let mut process = NodeProcess::spawn_logging(&config, &dir.path().join("node.log"), "warn");
        let url = process.serving(Duration::from_secs(600)).await;
        assert_eq!(head(&url, ORIGIN).await, want);
        assert!(lists(&url, ORIGIN, &sample[0]).await);
        let (held_peak, held_rss) = (
            proc_status(process.pid(), "VmHWM"),
            proc_status(process.pid(), "VmRSS"),
        );
        println!(
            "baseline, holding the list (restarted from its snapshot, no peers): peak RSS \
             {:.2} GiB, RSS {:.2} GiB ({:.0} B/entry)",
            held_peak as f64 / GIB,
            held_rss as f64 / GIB,
            held_rss as f64 / leaves as f64
        );
        for r in &runs {
            println!(
                "  {} MiB steps: {:.0} entries/s, peak {:.2} GiB = holding + {:.2} GiB \
                 (peak / holding = {:.2}x; RSS caught up {:.2} GiB)",
                r.budget_mib,
                leaves as f64 / r.secs,
                r.peak as f64 / GIB,
                (r.peak as f64 - held_rss as f64) / GIB,
                r.peak as f64 / held_rss as f64,
                r.rss as f64 / GIB
            );
        }
        drop(process);
        source.stop().await;
    });
}
