//! Audit memory: peak resident memory of the real `redline audit` binary while it verifies a
//! 1,000,000-entry log, against the bound the design promises (128 MiB, independent of the log's
//! size: leaves are hashed as they arrive, never collected).
//!
//! A real node starts in-process on `127.0.0.1:0`; its own log is filled over gRPC with
//! 1,000,000 PDQ ADDs in `Submit` calls of 10,000 (random 32-byte hashes from a seeded rng, so
//! none is a duplicate), then 1,000 RETRACTs of the first ADDs, so the audit replays
//! retractions too. Then `redline audit --node URL --key KEY --json` runs as a child process
//! (built by the harness's `cargo_bin`, in release when the bench is) and its `VmHWM` (the
//! kernel's resident high-water mark) is read from `/proc/<pid>/status` every 5 ms until it
//! exits; the largest value read is its peak. The audit must report `ok` and the log's size.
//!
//! Baseline, measured in the same run: what an auditor that collects the log holds — the bytes
//! of every leaf (read back from the node after the audit) plus the 64 bytes per leaf of stored
//! Merkle hashes the previous auditor kept in memory.
//!
//! Run: `cargo bench -p redline-e2e --bench audit_memory`
//! Quick check: `REDLINE_AUDIT_BENCH_ENTRIES=20000 cargo bench -p redline-e2e --bench audit_memory`
//! (or the count as the first argument after `--`).
//!
//! Exits non-zero when the peak is not under 128 MiB (or the audit fails). Linux only (`/proc`).

use rand::{Rng, SeedableRng};
use redline_client::{Auditor, HotlineClient};
use redline_e2e::{cargo_bin, temp_dir, TestNode};
use redline_proto::pb::Signal;
use redline_server::Config;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// ADD entries in the log unless `REDLINE_AUDIT_BENCH_ENTRIES` (or the first argument) says.
const DEFAULT_ENTRIES: u64 = 1_000_000;
/// RETRACTs of the earliest ADDs (at most a tenth of the ADDs for small runs).
const RETRACTS: u64 = 1_000;
/// Signals per `Submit` call (the node's default `limits.max_batch`).
const BATCH: u64 = 10_000;
/// The bound the audit's peak resident memory must stay under.
const LIMIT_BYTES: u64 = 128 * 1024 * 1024;
/// How often the child's `VmHWM` is read.
const POLL: Duration = Duration::from_millis(5);
/// Merkle hashes per leaf an auditor that keeps the tree holds (leaf hash + interior node).
const STORED_HASH_BYTES_PER_LEAF: u64 = 64;

const MIB: f64 = 1024.0 * 1024.0;

fn entries() -> u64 {
    let arg = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok());
    let env = std::env::var("REDLINE_AUDIT_BENCH_ENTRIES")
        .ok()
        .map(|v| v.parse().expect("REDLINE_AUDIT_BENCH_ENTRIES is a number"));
    arg.or(env).unwrap_or(DEFAULT_ENTRIES)
}

/// `VmHWM` of `pid` in bytes, or `None` once its memory is gone (exited).
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// What one `redline audit` run did.
struct AuditRun {
    wall: Duration,
    peak_rss: u64,
    polls: u64,
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `redline audit --node url --key key --json`, polling its `VmHWM` every [`POLL`].
fn run_audit(redline: &std::path::Path, url: &str, key: &str) -> AuditRun {
    let start = Instant::now();
    let mut child = Command::new(redline)
        .args(["audit", "--node", url, "--key", key, "--json"])
        .env_remove("REDLINE_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redline audit");
    let pid = child.id();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).expect("read redline output");
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout piped")));
    let err = drain(Box::new(child.stderr.take().expect("stderr piped")));
    let mut peak_rss = 0;
    let mut polls = 0;
    let status = loop {
        // Read before reaping: until `try_wait` reaps it, `pid` is still this child.
        if let Some(hwm) = vm_hwm(pid) {
            peak_rss = peak_rss.max(hwm);
            polls += 1;
        }
        if let Some(status) = child.try_wait().expect("wait for redline audit") {
            break status;
        }
        std::thread::sleep(POLL);
    };
    let wall = start.elapsed();
    AuditRun {
        wall,
        peak_rss,
        polls,
        success: status.success(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Fills `url`'s own log with `adds` PDQ ADDs and `retracts` RETRACTs of the first of them;
/// returns the log's size as the node's last checkpoint states it.
async fn fill(url: &str, adds: u64, retracts: u64) -> u64 {
    let mut client = HotlineClient::connect(url).await.expect("connect hotline");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x07ed_115e);
    let labels = vec!["ncii".to_owned()];
    let mut first_adds = Vec::with_capacity(retracts as usize);
    let mut size = 0;
    let mut sent = 0;
    while sent < adds {
        let n = BATCH.min(adds - sent);
        let signals = (0..n)
            .map(|_| Signal {
                signal_type: "pdq".into(),
                value: hex::encode(rng.gen::<[u8; 32]>()),
                quality: 100,
            })
            .collect();
        let resp = client
            .submit(signals, labels.clone(), "consent withdrawn", "")
            .await
            .expect("submit batch");
        for e in &resp.entries {
            assert!(!e.duplicate, "seeded random hash {} repeated", e.index);
            if (first_adds.len() as u64) < retracts {
                first_adds.push(e.index);
            }
        }
        size = resp.checkpoint.expect("submit checkpoint").tree_size;
        sent += n;
    }
    for index in first_adds {
        let resp = client
            .retract(index, "false positive")
            .await
            .expect("retract");
        size = resp.checkpoint.expect("retract checkpoint").tree_size;
    }
    size
}

/// Bytes of every leaf of `origin` on `url`, read back through the Audit service.
async fn leaf_bytes(url: &str, origin: &str, size: u64) -> u64 {
    let mut auditor = Auditor::connect(url).await.expect("connect auditor");
    let mut total = 0u64;
    auditor
        .stream_entries(origin, 0, size, |_, data| {
            total += data.len() as u64;
            Ok(())
        })
        .await
        .expect("stream leaves");
    total
}

fn main() {
    let adds = entries();
    let retracts = RETRACTS.min(adds / 10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    // Built before the node starts, so the fill is not competing with a compiler.
    let redline = cargo_bin("redline-client", "redline");

    let dir = temp_dir();
    let origin = "audit-bench.example";
    let (node, key, size, fill_time) = rt.block_on(async {
        let mut config = Config::new(origin, dir.path());
        config.limits.max_batch = config.limits.max_batch.max(BATCH as usize);
        let node = TestNode::start(config).await;
        let key = node.node.public_key().verifier_key();
        let start = Instant::now();
        let size = fill(&node.url, adds, retracts).await;
        (node, key, size, start.elapsed())
    });
    println!(
        "filled {origin}: {adds} ADDs + {retracts} RETRACTs, log size {size}, in {:.1} s ({:.0} entries/s)",
        fill_time.as_secs_f64(),
        (adds + retracts) as f64 / fill_time.as_secs_f64()
    );

    // The node keeps serving on the runtime's worker threads while the audit runs.
    let run = run_audit(&redline, &node.url, &key);
    if !run.success {
        eprintln!("redline audit failed:\n{}\n{}", run.stdout, run.stderr);
        std::process::exit(1);
    }
    let report: serde_json::Value =
        serde_json::from_str(&run.stdout).expect("redline audit --json prints JSON");
    assert_eq!(report["ok"], true, "audit not ok: {report:#}");
    let audited = report["origins"]
        .as_array()
        .expect("origins")
        .iter()
        .find(|o| o["origin"] == origin)
        .unwrap_or_else(|| panic!("audit does not list {origin}: {report:#}"));
    assert_eq!(audited["status"], "verified", "{audited:#}");
    let r = &audited["report"];
    // The log holds exactly what was submitted: no entry before the first ADD.
    assert_eq!(size, adds + retracts, "log size after the fill");
    assert_eq!(r["size"], size, "audited size: {audited:#}");
    assert_eq!(r["adds"], adds, "audited ADDs: {audited:#}");
    assert_eq!(r["retracts"], retracts, "audited RETRACTs: {audited:#}");
    assert_eq!(r["active"], adds - retracts, "audited active: {audited:#}");
    assert_eq!(r["invalid"], 0, "audited invalid: {audited:#}");
    assert!(run.polls > 0, "the audit exited before its memory was read");

    let leaves = rt.block_on(leaf_bytes(&node.url, origin, size));
    let baseline = leaves + STORED_HASH_BYTES_PER_LEAF * size;
    rt.block_on(node.stop());

    let peak = run.peak_rss as f64 / MIB;
    let pass = run.peak_rss < LIMIT_BYTES;
    println!("audit memory (redline audit --node URL --key KEY --json, VmHWM polled every 5 ms)");
    println!("  entries (log size)        {size}");
    println!(
        "  audit wall time           {:.2} s ({:.0} entries/s)",
        run.wall.as_secs_f64(),
        size as f64 / run.wall.as_secs_f64()
    );
    println!(
        "  audit peak RSS            {peak:.1} MiB ({} polls)",
        run.polls
    );
    println!(
        "  baseline (collected log)  {:.1} MiB = {:.1} MiB leaves ({:.1} B/leaf) + {:.1} MiB hashes",
        baseline as f64 / MIB,
        leaves as f64 / MIB,
        leaves as f64 / size as f64,
        (STORED_HASH_BYTES_PER_LEAF * size) as f64 / MIB
    );
    println!(
        "  ratio peak/baseline       {:.3}",
        run.peak_rss as f64 / baseline as f64
    );
    println!("  {} peak < 128 MiB", if pass { "PASS" } else { "FAIL" });
    if !pass {
        std::process::exit(1);
    }
}
