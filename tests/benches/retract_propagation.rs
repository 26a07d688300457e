//! Retraction propagation over two hops: how long after the origin commits a RETRACT a platform
//! two hops away stops matching the retracted hash, first with the federation idle (the in-run
//! baseline), then while 64 `MatchStream` clients hammer the relay and the platform and a
//! submitter keeps adding batches at the origin. Target (issue 17): p99 under load < 1 s.
//!
//! Three real `redline-node` processes on loopback (release build, through the harness's
//! `node_bin`), over TLS with a private CA, configured as deployed nodes are
//! ([`redline_e2e::propagation::ChainNode`]: no `[sync]` section, so `poll_interval_ms` is the
//! default 10 s and a commit travels by push, `WatchCheckpoints`, never by a shortened poll):
//!
//! - A, `hotline-a.example`, the origin: analysts submit and retract there;
//! - B, `hotline-b.example`, a hotline following A (accepts A): the relay;
//! - C, `platform-c.example`, a platform's follower that follows B only (accepts A and B), so
//!   A's entries reach it two hops away, each hop verified against A's signed checkpoint.
//!
//! A is seeded with `REDLINE_PROP_ENTRIES` (default 100,000) random PDQ ADDs in Submit calls
//! of 10,000, and the run waits until C holds them all. Each phase then retracts
//! `REDLINE_PROP_RETRACTS` (default 100) distinct seeded ADDs one at a time (after a random
//! 100-300 ms pause, so retractions do not fall in step with the submitter), each through
//! A's `Retract`; the clock starts when that call returns (A's commit acknowledged) and stops at
//! the first answer from C that no longer lists the entry (B is polled the same way), each
//! polled by its own client in a tight loop of exact-hash Match calls on a runtime of its own
//! (the main thread), so the load clients' runtime does not delay the measurement. A
//! retraction that is not gone from both within 30 s counts as 30 s and fails the run.
//!
//! Load phase: `REDLINE_PROP_STREAMS` (default 64) `MatchStream` clients, one connection each,
//! alternately on C and B, each with one request in flight back to back (half the queries a
//! seeded hash with one bit flipped, so they hit, half random); and a submitter adding batches
//! of `REDLINE_PROP_BATCH` (default 1,000) new hashes to A with `REDLINE_PROP_PAUSE_MS`
//! (default 100) between calls. The load runs 3 s before the first retraction.
//!
//! Printed: p50/p99/max of the propagation time per phase (to B, to C, to the last of them),
//! the ratio load/baseline, the Retract call's own time, the load clients' Match throughput
//! and latency, submits/s, CPU seconds per process, the load average, and a breakdown of
//! each retraction's hops from the nodes' `replicated` log lines (A commit → B commit → C
//! commit → C observed not matching, with each hop's fetch/verify/commit and the wait before
//! its fetch started). Percentiles are nearest-rank: with 100 samples p99 is the 99th.
//!
//! Run: `cargo bench -p redline-e2e --bench retract_propagation`
//! Quick check: `REDLINE_PROP_ENTRIES=20000 REDLINE_PROP_RETRACTS=20 cargo bench -p redline-e2e
//! --bench retract_propagation`
//!
//! Exits non-zero when the p99 under load is not under 1 s. Linux only (`/proc`).

use rand::{Rng, SeedableRng};
use redline_client::{HotlineClient, NodeTarget, PlatformClient};
use redline_e2e::propagation::{cpu_seconds, loadavg, size_on, ChainNode, LoggedCommit, Pki};
use redline_proto::pb::{MatchRequest, MatchResponse, Signal};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const ORIGIN_A: &str = "hotline-a.example";
const ORIGIN_B: &str = "hotline-b.example";
const ORIGIN_C: &str = "platform-c.example";
/// The relay and the platform log each replicated commit (`federation::replicate`, info).
const LOG_FOLLOWER: &str = "warn,redline_server::federation::replicate=info";
/// Signals per seeding `Submit` (the node's default `limits.max_batch`).
const SEED_BATCH: usize = 10_000;
/// A retraction not gone from B and C within this counts as this long, and fails the run.
const GIVE_UP: Duration = Duration::from_secs(30);
/// Load before the first retraction of the load phase.
const WARM_UP: Duration = Duration::from_secs(3);
/// The target of issue 17 for the p99 under load.
const TARGET: Duration = Duration::from_secs(1);

/// What the run does; each has an environment override.
#[derive(Debug, Clone)]
struct Settings {
    entries: usize,
    retractions: usize,
    streams: usize,
    batch: usize,
    pause: Duration,
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} is a number")))
        .unwrap_or(default)
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            entries: setting("REDLINE_PROP_ENTRIES", 100_000) as usize,
            retractions: setting("REDLINE_PROP_RETRACTS", 100) as usize,
            streams: setting("REDLINE_PROP_STREAMS", 64) as usize,
            batch: setting("REDLINE_PROP_BATCH", 1_000) as usize,
            pause: Duration::from_millis(setting("REDLINE_PROP_PAUSE_MS", 100)),
        }
    }

    /// The command that reproduces this run.
    fn command(&self) -> String {
        let defaults = [
            ("REDLINE_PROP_ENTRIES", self.entries as u64, 100_000),
            ("REDLINE_PROP_RETRACTS", self.retractions as u64, 100),
            ("REDLINE_PROP_STREAMS", self.streams as u64, 64),
            ("REDLINE_PROP_BATCH", self.batch as u64, 1_000),
            ("REDLINE_PROP_PAUSE_MS", self.pause.as_millis() as u64, 100),
        ];
        let env: String = defaults
            .iter()
            .filter(|(_, v, d)| v != d)
            .map(|(n, v, _)| format!("{n}={v} "))
            .collect();
        format!("{env}cargo bench -p redline-e2e --bench retract_propagation")
    }
}

/// A seeded ADD of A.
#[derive(Debug, Clone, Copy)]
struct Listed {
    index: u64,
    hash: [u8; 32],
}

fn pdq_signal(hash: &[u8; 32]) -> Signal {
    Signal {
        signal_type: "pdq".into(),
        value: hex::encode(hash),
        quality: 100,
    }
}

/// Submits `n` random PDQ ADDs to A in calls of [`SEED_BATCH`]; returns them with their
/// indexes and A's size after the last call.
async fn seed(a: &NodeTarget, n: usize) -> (Vec<Listed>, u64) {
    let mut client = HotlineClient::connect_to(a).await.expect("connect A");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x05ee_da11);
    let mut listed = Vec::with_capacity(n);
    let mut size = 0;
    while listed.len() < n {
        let k = SEED_BATCH.min(n - listed.len());
        let hashes: Vec<[u8; 32]> = (0..k).map(|_| rng.gen()).collect();
        let resp = client
            .submit(
                hashes.iter().map(pdq_signal).collect(),
                vec!["ncii".into()],
                "consent withdrawn",
                "",
            )
            .await
            .expect("seed submit");
        for (e, hash) in resp.entries.iter().zip(&hashes) {
            assert!(!e.duplicate, "seeded random hash {} repeated", e.index);
            listed.push(Listed {
                index: e.index,
                hash: *hash,
            });
        }
        size = resp.checkpoint.expect("submit checkpoint").tree_size;
    }
    (listed, size)
}

/// Whether `r` lists A's entry at `index`.
fn lists(r: &MatchResponse, index: u64) -> bool {
    r.results
        .iter()
        .flat_map(|q| &q.matches)
        .any(|m| m.origin == ORIGIN_A && m.index == index && m.distance == 0)
}

/// Asks `client` to match `hash` back to back until an answer no longer lists `index`;
/// returns how long after `since` that answer arrived and how many calls it took, or `None`
/// after [`GIVE_UP`]. A failed call is retried (and counted in `errors`).
async fn until_gone(
    client: &mut PlatformClient,
    hash: &str,
    index: u64,
    since: Instant,
    errors: &mut u64,
) -> (Option<Duration>, u64) {
    let mut calls = 0;
    loop {
        let r = client.match_pdq(hash, Default::default()).await;
        let now = Instant::now();
        calls += 1;
        match r {
            Ok(r) if !lists(&r, index) => return (Some(now - since), calls),
            Ok(_) => {}
            Err(e) => {
                *errors += 1;
                if *errors <= 3 {
                    eprintln!("poll Match failed (retrying): {e}");
                }
            }
        }
        if now - since > GIVE_UP {
            return (None, calls);
        }
    }
}

/// One retraction, measured.
#[derive(Debug, Clone)]
struct Measured {
    /// A's tree size after the RETRACT (what each hop must reach).
    size: u64,
    /// The Retract call, sent to acknowledged.
    call: Duration,
    /// Wall-clock time of the acknowledgement (to place the nodes' log lines).
    acked_at: SystemTime,
    /// From the acknowledgement to the first answer not listing the entry; `None`: gave up.
    gone_b: Option<Duration>,
    gone_c: Option<Duration>,
    polls_b: u64,
    polls_c: u64,
}

impl Measured {
    /// To the last platform no longer matching (gave up: [`GIVE_UP`]).
    fn last(&self) -> Duration {
        self.gone_b
            .unwrap_or(GIVE_UP)
            .max(self.gone_c.unwrap_or(GIVE_UP))
    }
}

/// Retracts each of `picks` at A and times until B and C stop matching it.
async fn measure(
    a: &NodeTarget,
    b: &NodeTarget,
    c: &NodeTarget,
    picks: &[Listed],
    seed: u64,
) -> (Vec<Measured>, u64) {
    let mut hotline = HotlineClient::connect_to(a).await.expect("connect A");
    let mut pb = PlatformClient::connect_to(b).await.expect("connect B");
    let mut pc = PlatformClient::connect_to(c).await.expect("connect C");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut errors_b, mut errors_c) = (0, 0);
    let mut out = Vec::with_capacity(picks.len());
    for p in picks {
        let hash = hex::encode(p.hash);
        for (name, client) in [("B", &mut pb), ("C", &mut pc)] {
            let r = client
                .match_pdq(&hash, Default::default())
                .await
                .expect("match before the retraction");
            assert!(
                lists(&r, p.index),
                "{name} does not list A's entry {} before its retraction",
                p.index
            );
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..300))).await;
        let sent = Instant::now();
        let resp = hotline
            .retract(p.index, "propagation benchmark")
            .await
            .expect("retract at A");
        let acked = Instant::now();
        let acked_at = SystemTime::now();
        let size = resp.checkpoint.expect("retract checkpoint").tree_size;
        let ((gone_b, polls_b), (gone_c, polls_c)) = tokio::join!(
            until_gone(&mut pb, &hash, p.index, acked, &mut errors_b),
            until_gone(&mut pc, &hash, p.index, acked, &mut errors_c),
        );
        out.push(Measured {
            size,
            call: acked - sent,
            acked_at,
            gone_b,
            gone_c,
            polls_b,
            polls_c,
        });
    }
    (out, errors_b + errors_c)
}

/// Match streams and a submitter, running on the load runtime until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    /// Answered queries on C and on B.
    queries_c: Arc<AtomicU64>,
    queries_b: Arc<AtomicU64>,
    match_errors: Arc<AtomicU64>,
    /// Entries and calls submitted to A.
    submitted: Arc<AtomicU64>,
    submit_calls: Arc<AtomicU64>,
    submit_errors: Arc<AtomicU64>,
    /// Match latencies of the streams (C's, B's), filled when they stop.
    latencies: Arc<Mutex<(Vec<Duration>, Vec<Duration>)>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Counters of a [`Load`] at one moment.
#[derive(Debug, Clone, Copy)]
struct LoadCount {
    at: Instant,
    queries_c: u64,
    queries_b: u64,
    submitted: u64,
    submit_calls: u64,
}

impl Load {
    fn start(
        rt: &tokio::runtime::Handle,
        a: &NodeTarget,
        b: &NodeTarget,
        c: &NodeTarget,
        seeds: Arc<Vec<Listed>>,
        s: &Settings,
    ) -> Load {
        let load = Load {
            stop: Arc::default(),
            queries_c: Arc::default(),
            queries_b: Arc::default(),
            match_errors: Arc::default(),
            submitted: Arc::default(),
            submit_calls: Arc::default(),
            submit_errors: Arc::default(),
            latencies: Arc::default(),
            tasks: Vec::new(),
        };
        let mut tasks = Vec::new();
        for i in 0..s.streams {
            let on_c = i % 2 == 0;
            let target = if on_c { c.clone() } else { b.clone() };
            let queries = if on_c {
                load.queries_c.clone()
            } else {
                load.queries_b.clone()
            };
            let (stop, errors, latencies, seeds) = (
                load.stop.clone(),
                load.match_errors.clone(),
                load.latencies.clone(),
                seeds.clone(),
            );
            tasks.push(rt.spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(1000 + i as u64);
                let mut client = PlatformClient::connect_to(&target)
                    .await
                    .expect("load client connects");
                let (tx, rx) = tokio::sync::mpsc::channel::<MatchRequest>(1);
                let mut responses = client
                    .match_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
                    .expect("open MatchStream");
                let mut local = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let mut q: [u8; 32] = if rng.gen_bool(0.5) {
                        seeds[rng.gen_range(0..seeds.len())].hash
                    } else {
                        rng.gen()
                    };
                    q[rng.gen_range(0..32)] ^= 1 << rng.gen_range(0..8);
                    let t = Instant::now();
                    let sent = tx
                        .send(MatchRequest {
                            signals: vec![pdq_signal(&q)],
                            ..Default::default()
                        })
                        .await;
                    match (sent, responses.message().await) {
                        (Ok(()), Ok(Some(_))) => {
                            local.push(t.elapsed());
                            queries.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            eprintln!("load stream {i}: {other:?}");
                            break;
                        }
                    }
                }
                let mut l = latencies.lock().expect("latencies");
                if on_c { &mut l.0 } else { &mut l.1 }.extend(local);
            }));
        }
        let (stop, submitted, calls, errors, a) = (
            load.stop.clone(),
            load.submitted.clone(),
            load.submit_calls.clone(),
            load.submit_errors.clone(),
            a.clone(),
        );
        let (batch, pause) = (s.batch, s.pause);
        tasks.push(rt.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(0x0050_b0e1);
            let mut client = HotlineClient::connect_to(&a)
                .await
                .expect("submitter connects");
            while !stop.load(Ordering::Relaxed) {
                let signals = (0..batch).map(|_| pdq_signal(&rng.gen())).collect();
                match client
                    .submit(signals, vec!["ncii".into()], "consent withdrawn", "")
                    .await
                {
                    Ok(_) => {
                        submitted.fetch_add(batch as u64, Ordering::Relaxed);
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("load submit: {e}");
                    }
                }
                tokio::time::sleep(pause).await;
            }
        }));
        Load { tasks, ..load }
    }

    fn count(&self) -> LoadCount {
        LoadCount {
            at: Instant::now(),
            queries_c: self.queries_c.load(Ordering::Relaxed),
            queries_b: self.queries_b.load(Ordering::Relaxed),
            submitted: self.submitted.load(Ordering::Relaxed),
            submit_calls: self.submit_calls.load(Ordering::Relaxed),
        }
    }

    /// Stops every client and waits for them; returns the streams' latencies (C's, B's).
    fn stop(self, rt: &tokio::runtime::Runtime) -> (Vec<Duration>, Vec<Duration>) {
        self.stop.store(true, Ordering::Relaxed);
        rt.block_on(async {
            for t in self.tasks {
                t.await.expect("load task");
            }
        });
        std::mem::take(&mut *self.latencies.lock().expect("latencies"))
    }
}

/// Nearest-rank `q` quantile of `v` (0 when empty).
fn quantile<T: Copy + PartialOrd + Default>(v: &[T], q: f64) -> T {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    if s.is_empty() {
        return T::default();
    }
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `p50 … p99 … max …` of millisecond values.
fn spread(v: &[f64]) -> String {
    format!(
        "p50 {:>8.1}  p99 {:>8.1}  max {:>8.1}",
        quantile(v, 0.5),
        quantile(v, 0.99),
        quantile(v, 1.0)
    )
}

/// `b - a` in milliseconds, negative when `b` is earlier.
fn signed_ms(a: SystemTime, b: SystemTime) -> f64 {
    match b.duration_since(a) {
        Ok(d) => ms(d),
        Err(e) => -ms(e.duration()),
    }
}

/// One hop of one retraction, as the follower's log tells it.
#[derive(Debug, Clone, Copy)]
struct Hop {
    /// From the previous hop's commit (A: its acknowledgement) to this node's commit logged.
    total: f64,
    /// Fetch, verify, commit of the batch that carried the RETRACT.
    fetch: f64,
    verify: f64,
    commit: f64,
    /// Before its fetch began: push delivery, earlier replications still running, judging.
    wait: f64,
    /// The part of `wait` spent behind the follower's previous replication of the origin
    /// (its commit logged after the hop began): the session handles pushes one at a time.
    queued: f64,
    /// Entries in that batch.
    entries: f64,
}

/// The commit of `commits` that first reached `size`, when it was logged, and its hop from
/// `before`.
fn hop(commits: &[LoggedCommit], size: u64, before: SystemTime) -> Option<(SystemTime, Hop)> {
    let i = commits.iter().position(|c| c.size >= size)?;
    let c = &commits[i];
    let prev = i.checked_sub(1).map(|p| &commits[p]);
    let total = signed_ms(before, c.at);
    let work = (c.fetch_ms + c.verify_ms + c.commit_ms) as f64;
    let wait = total - work;
    let queued = prev.map_or(0.0, |p| signed_ms(before, p.at).clamp(0.0, wait.max(0.0)));
    Some((
        c.at,
        Hop {
            total,
            fetch: c.fetch_ms as f64,
            verify: c.verify_ms as f64,
            commit: c.commit_ms as f64,
            wait,
            queued,
            entries: (c.size - prev.map_or(0, |p| p.size)) as f64,
        },
    ))
}

/// Prints the propagation figures of a phase.
fn report_phase(name: &str, m: &[Measured]) -> f64 {
    let to = |f: fn(&Measured) -> Option<Duration>| -> Vec<f64> {
        m.iter().map(|x| ms(f(x).unwrap_or(GIVE_UP))).collect()
    };
    let last: Vec<f64> = m.iter().map(|x| ms(x.last())).collect();
    let call: Vec<f64> = m.iter().map(|x| ms(x.call)).collect();
    let polls: Vec<f64> = m.iter().map(|x| x.polls_c as f64).collect();
    let polls_b: Vec<f64> = m.iter().map(|x| x.polls_b as f64).collect();
    let gave_up = m
        .iter()
        .filter(|x| x.gone_b.is_none() || x.gone_c.is_none())
        .count();
    println!(
        "{name} ({} retractions, ms from A's commit acknowledged):",
        m.len()
    );
    println!("  to the last platform       {}", spread(&last));
    println!("  to C (two hops)            {}", spread(&to(|x| x.gone_c)));
    println!("  to B (one hop)             {}", spread(&to(|x| x.gone_b)));
    println!("  Retract call at A          {}", spread(&call));
    println!(
        "  poll calls per retraction  C {}   B {}",
        spread(&polls),
        spread(&polls_b)
    );
    if gave_up > 0 {
        println!("  GAVE UP on {gave_up} retractions after {GIVE_UP:?}");
    }
    quantile(&last, 0.99)
}

/// Prints the hop breakdown of a phase from B's and C's logs.
fn report_hops(name: &str, m: &[Measured], b: &ChainNode, c: &ChainNode) {
    let (cb, cc) = (b.commits(ORIGIN_A), c.commits(ORIGIN_A));
    let mut hops_b = Vec::new();
    let mut hops_c = Vec::new();
    let mut seen = Vec::new();
    let mut rows = Vec::new();
    for x in m {
        let Some((at_b, hb)) = hop(&cb, x.size, x.acked_at) else {
            continue;
        };
        let Some((at_c, hc)) = hop(&cc, x.size, at_b) else {
            continue;
        };
        hops_b.push(hb);
        hops_c.push(hc);
        let observed = x.gone_c.map(|g| signed_ms(at_c, x.acked_at + g));
        seen.extend(observed);
        rows.push((x.last(), x.call, hb, hc, observed.unwrap_or(f64::NAN)));
    }
    println!(
        "{name}: hops from the nodes' `replicated` log lines ({} of {} retractions found), ms:",
        hops_b.len(),
        m.len()
    );
    for (label, hops) in [
        ("A commit -> B commit", &hops_b),
        ("B commit -> C commit", &hops_c),
    ] {
        let col = |f: fn(&Hop) -> f64| hops.iter().map(f).collect::<Vec<f64>>();
        println!("  {label}       {}", spread(&col(|h| h.total)));
        println!("    wait before fetch        {}", spread(&col(|h| h.wait)));
        println!(
            "      behind the previous    {}",
            spread(&col(|h| h.queued))
        );
        println!(
            "      the rest               {}",
            spread(&col(|h| h.wait - h.queued))
        );
        println!("    fetch                    {}", spread(&col(|h| h.fetch)));
        println!(
            "    verify                   {}",
            spread(&col(|h| h.verify))
        );
        println!(
            "    commit + catalog         {}",
            spread(&col(|h| h.commit))
        );
        println!(
            "    entries in the batch     {}",
            spread(&col(|h| h.entries))
        );
    }
    println!(
        "  C commit logged -> C seen not matching {} (negative: the catalog applies before the line is logged)",
        spread(&seen)
    );
    // Percentiles per column mix retractions; the slowest ones whole show where their time went.
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    println!("  slowest retractions, ms: total = A->B hop + B->C hop + C seen; hop = queued + rest + fetch + verify + commit [entries]");
    let show = |h: &Hop| {
        format!(
            "{:.0} = {:.0} + {:.0} + {:.0} + {:.0} + {:.0} [{:.0}]",
            h.total,
            h.queued,
            h.wait - h.queued,
            h.fetch,
            h.verify,
            h.commit,
            h.entries
        )
    };
    for (last, call, hb, hc, observed) in rows.iter().take(5) {
        println!(
            "    {:>6.0}  (Retract call {:.0})  A->B {}   B->C {}   C seen {:.0}",
            ms(*last),
            ms(*call),
            show(hb),
            show(hc),
            observed
        );
    }
}

/// CPU seconds of the three nodes and this process.
fn cpu(nodes: &[&ChainNode]) -> Vec<f64> {
    nodes
        .iter()
        .map(|n| cpu_seconds(&n.pid().to_string()))
        .chain([cpu_seconds("self")])
        .collect()
}

fn report_cpu(before: &[f64], after: &[f64], wall: Duration) {
    let names = ["A", "B", "C", "bench clients"];
    let parts: Vec<String> = names
        .iter()
        .zip(before.iter().zip(after))
        .map(|(n, (b, a))| {
            format!(
                "{n} {:.1} s ({:.0}%)",
                a - b,
                100.0 * (a - b) / wall.as_secs_f64()
            )
        })
        .collect();
    println!(
        "  CPU over {:.1} s: {}",
        wall.as_secs_f64(),
        parts.join(", ")
    );
}

fn main() {
    let s = Settings::from_env();
    assert!(s.retractions > 0 && s.entries >= 2 * s.retractions);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("load runtime");
    // The measuring clients run here, on the main thread, apart from the load's runtime.
    let measuring = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("measuring runtime");

    // Built before any node starts, so nothing competes with a compiler.
    redline_e2e::node_bin();
    let pki = Pki::new();
    let (a, b, c) = rt.block_on(async {
        let a = ChainNode::spawn(ORIGIN_A, &[], &[], &pki, "warn").await;
        let b = ChainNode::spawn(ORIGIN_B, &[&a], &[&a.key], &pki, LOG_FOLLOWER).await;
        let c = ChainNode::spawn(ORIGIN_C, &[&b], &[&a.key, &b.key], &pki, LOG_FOLLOWER).await;
        (a, b, c)
    });
    println!("command: {}", s.command());
    println!(
        "nodes: A {} (origin), B {} follows A, C {} follows B; TLS, default [sync] (poll 10 s, push path)",
        a.target.url, b.target.url, c.target.url
    );

    let started = Instant::now();
    let (seeds, size) = rt.block_on(seed(&a.target, s.entries));
    let seeded = started.elapsed();
    let caught_up = rt.block_on(redline_e2e::eventually(
        Duration::from_secs(600),
        "C holds A's seeded log",
        || {
            let t = c.target.clone();
            async move { size_on(&t, ORIGIN_A).await >= size }
        },
    ));
    println!(
        "seeded A with {} PDQ ADDs in {:.1} s; C held them {:.1} s later",
        seeds.len(),
        seeded.as_secs_f64(),
        caught_up.as_secs_f64()
    );

    let mut rng = rand::rngs::StdRng::seed_from_u64(0xba5e);
    let mut picks = seeds.clone();
    for i in 0..2 * s.retractions {
        let j = rng.gen_range(i..picks.len());
        picks.swap(i, j);
    }
    let (quiet_picks, load_picks) = picks[..2 * s.retractions].split_at(s.retractions);
    let nodes = [&a, &b, &c];

    println!("load average before: {}", loadavg());
    let cpu0 = cpu(&nodes);
    let t0 = Instant::now();
    let (quiet, quiet_errors) =
        measuring.block_on(measure(&a.target, &b.target, &c.target, quiet_picks, 1));
    let quiet_wall = t0.elapsed();
    let cpu1 = cpu(&nodes);

    let load = Load::start(
        rt.handle(),
        &a.target,
        &b.target,
        &c.target,
        Arc::new(seeds),
        &s,
    );
    std::thread::sleep(WARM_UP);
    let cpu2 = cpu(&nodes);
    let from = load.count();
    let (loaded, load_poll_errors) =
        measuring.block_on(measure(&a.target, &b.target, &c.target, load_picks, 2));
    let to = load.count();
    let cpu3 = cpu(&nodes);
    let load_avg = loadavg();
    let match_errors = load.match_errors.load(Ordering::Relaxed);
    let submit_errors = load.submit_errors.load(Ordering::Relaxed);
    let (lat_c, lat_b) = load.stop(&rt);

    // The federation converges once the load stops.
    let final_size = rt.block_on(size_on(&a.target, ORIGIN_A));
    let converged = rt.block_on(redline_e2e::eventually(
        Duration::from_secs(120),
        "C catches up with A after the load",
        || {
            let t = c.target.clone();
            async move { size_on(&t, ORIGIN_A).await >= final_size }
        },
    ));

    println!();
    let p99_quiet = report_phase("baseline, no load", &quiet);
    report_cpu(&cpu0, &cpu1, quiet_wall);
    println!("  poll errors {quiet_errors}");
    println!();
    let p99_load = report_phase("under load", &loaded);
    let wall = to.at - from.at;
    let per_s = |n: u64| n as f64 / wall.as_secs_f64();
    println!(
        "  load: {} MatchStream clients ({} on C, {} on B), submitter {} hashes/call every {} ms + call time",
        s.streams,
        s.streams.div_ceil(2),
        s.streams / 2,
        s.batch,
        s.pause.as_millis()
    );
    let lat = |v: &[Duration]| v.iter().map(|d| ms(*d)).collect::<Vec<f64>>();
    println!(
        "  match throughput: C {:.0} queries/s, B {:.0} queries/s over {:.1} s; stream latency C {}, B {}",
        per_s(to.queries_c - from.queries_c),
        per_s(to.queries_b - from.queries_b),
        wall.as_secs_f64(),
        spread(&lat(&lat_c)),
        spread(&lat(&lat_b))
    );
    println!(
        "  submits: {:.0} entries/s in {:.1} calls/s; A grew to {final_size} entries (C caught up {:.1} s after the load stopped)",
        per_s(to.submitted - from.submitted),
        per_s(to.submit_calls - from.submit_calls),
        converged.as_secs_f64()
    );
    println!(
        "  errors: load Match {match_errors}, load submit {submit_errors}, poll {load_poll_errors}"
    );
    report_cpu(&cpu2, &cpu3, wall);
    println!("  load average at the end of the load phase (1/5/15 min): {load_avg}");
    println!();
    report_hops("baseline", &quiet, &b, &c);
    println!();
    report_hops("under load", &loaded, &b, &c);
    println!();
    println!(
        "ratio load/baseline (p99 to the last platform): {:.2} ({:.1} ms / {:.1} ms)",
        p99_load / p99_quiet,
        p99_load,
        p99_quiet
    );
    let pass = p99_load < ms(TARGET)
        && loaded
            .iter()
            .chain(&quiet)
            .all(|m| m.gone_b.is_some() && m.gone_c.is_some());
    println!(
        "{} p99 under load < {} ms",
        if pass { "PASS" } else { "FAIL" },
        ms(TARGET)
    );
    println!("command: {}", s.command());
    drop((a, b, c));
    if !pass {
        std::process::exit(1);
    }
}
