//! `redline audit` (the real binary) against a lying node ([`redline_e2e::liar`]): a scripted
//! `Audit` server that holds a real origin, `liar.example`, with a real key, 5 real leaves and
//! their signed checkpoint, and lies only in what a node makes up:
//!
//! - (a) `root_hash` set to a fake root, with inclusion proofs made in that fake tree;
//! - (b) `tree_size` 2^40 beside the signed note of size 5, entries served for any range;
//! - (c) entry streams that go on past the end asked for, up to 2^40 leaves.
//!
//! Each must make the audit exit non-zero, naming the origin and what was wrong; for (b) and
//! (c) the auditor's peak resident memory must also stay under [`MEMORY_BOUND`]. The honest
//! control must pass, which shows the liar is otherwise a valid node and each failure comes
//! from its lie.
//!
//! Peak memory is measured as the kernel counts it: while the child runs, the test reads `VmHWM`
//! (the resident high-water mark of the child's address space) from `/proc/<pid>/status` every
//! 2 ms and keeps the largest value. Being a high-water mark, the last read before the child
//! exits covers its whole life except at most the final 2 ms. The same polling is the watchdog:
//! past the bound (or after [`TIMEOUT`]) the child is killed at once, so an auditor that
//! downloads forever fails in seconds instead of exhausting the machine.
//!
//! Not `wait4(2)`'s `ru_maxrss`: on Linux a child's `ru_maxrss` also takes in the high-water
//! mark of the address space it was forked from, recorded at `execve` (std spawns with
//! `posix_spawn`, i.e. `CLONE_VM`: the test process's own), so once this test process has
//! grown (after a panic, whose backtrace loads the debug info: ~330 MiB) every later child
//! "peaks" there. Tried: an honest audit with `VmHWM` 9 MiB reported `ru_maxrss` 335 MiB.

#[path = "cli_support.rs"]
mod support;

use redline_e2e::liar::{LiarNode, Lie, ORIGIN};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the auditor may use while a lying node offers it 2^40 leaves. An honest audit of this
/// 5-entry log needs a few MiB (9 MiB for a debug build; every run prints its peak); an auditor
/// that hashes leaves as they arrive and reads no further than the signed size stays there
/// whatever the node claims or sends.
const MEMORY_BOUND: u64 = 64 << 20;

/// Safety net for the cases whose memory is not under test (the control and (a)): an auditor
/// that passes this is killed so a regression cannot take the machine down.
const MEMORY_CAP: u64 = 1 << 30;

/// One audit against the liar's 5 leaves takes well under a second; a run still going after
/// this is killed and fails the test.
const TIMEOUT: Duration = Duration::from_secs(60);

/// How one `redline audit` run ended.
#[derive(Debug)]
struct Audit {
    /// Exit code; `None` when it died of a signal.
    code: Option<i32>,
    /// Why the watchdog killed it, if it did.
    killed: Option<String>,
    /// Peak resident memory, bytes.
    peak_rss: u64,
    elapsed: Duration,
    stdout: String,
    stderr: String,
}

impl Audit {
    /// stdout and stderr together, lowercased for the checks.
    fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr).to_lowercase()
    }
}

/// `VmHWM` of `pid` in bytes (0 once it has exited).
fn vm_hwm(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Runs `redline audit --node URL --key KEY --inclusion-proofs PROOFS` under the watchdog:
/// killed when its peak RSS passes `memory_limit` or it runs past [`TIMEOUT`]. Blocking.
fn audit(url: &str, key: &str, proofs: u64, memory_limit: u64) -> Audit {
    let out = tempfile::tempdir().expect("temp dir");
    let (stdout_path, stderr_path) = (out.path().join("stdout"), out.path().join("stderr"));
    let mut child = Command::new(support::redline_bin())
        .args(["audit", "--node", url, "--key", key, "--inclusion-proofs"])
        .arg(proofs.to_string())
        .env_remove("REDLINE_NODE")
        .env_remove("REDLINE_TOKEN")
        .env_remove("REDLINE_CA")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start redline audit");
    let pid = child.id();
    let started = Instant::now();
    let mut peak = 0u64;
    let mut killed = None;
    let status = loop {
        // Read before asking whether it exited: a zombie has no VmHWM any more.
        peak = peak.max(vm_hwm(pid));
        if let Some(status) = child.try_wait().expect("wait on redline audit") {
            break status;
        }
        let why = if peak > memory_limit {
            Some(format!(
                "peak RSS {} MiB passed the {} MiB limit after {:?}",
                peak >> 20,
                memory_limit >> 20,
                started.elapsed()
            ))
        } else if started.elapsed() > TIMEOUT {
            Some(format!("still running after {TIMEOUT:?}"))
        } else {
            None
        };
        if let Some(why) = why {
            let _ = child.kill();
            killed = Some(why);
            break child.wait().expect("wait on the killed redline audit");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let read = |p: &std::path::Path| {
        String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
    };
    Audit {
        code: status.code(),
        killed,
        peak_rss: peak,
        elapsed: started.elapsed(),
        stdout: read(&stdout_path),
        stderr: read(&stderr_path),
    }
}

/// Starts a liar telling `lie` and audits it (`--inclusion-proofs proofs`); prints what
/// happened (peak RSS included) and checks the run was not killed and did not panic.
async fn audit_liar(lie: Lie, proofs: u64, memory_limit: u64) -> Audit {
    // Built (or found fresh) off the runtime's workers: the liar must keep serving.
    tokio::task::spawn_blocking(support::redline_bin)
        .await
        .expect("join");
    let liar = LiarNode::start(lie).await;
    let (url, key) = (liar.url.clone(), liar.verifier_key.clone());
    let run = tokio::task::spawn_blocking(move || audit(&url, &key, proofs, memory_limit))
        .await
        .expect("join");
    let served = liar.entries_served();
    liar.stop().await;
    eprintln!(
        "{lie:?} (--inclusion-proofs {proofs}): exit {:?} after {:?}, peak RSS {:.1} MiB, \
         liar streamed {served} entries\n--- stdout\n{}--- stderr\n{}",
        run.code,
        run.elapsed,
        run.peak_rss as f64 / f64::from(1 << 20),
        run.stdout,
        run.stderr
    );
    if let Some(why) = &run.killed {
        panic!("{lie:?}: redline audit was killed: {why} (the liar had streamed {served} entries)");
    }
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"),
        "{lie:?}: the auditor panicked instead of reporting: {run:#?}"
    );
    run
}

/// Checks `run` failed, naming the origin and containing `what` (case-insensitive).
fn assert_caught(lie: Lie, run: &Audit, what: &str) {
    assert!(
        run.code.is_some_and(|c| c != 0),
        "{lie:?}: the audit must fail: {run:#?}"
    );
    let text = run.text();
    assert!(text.contains(ORIGIN), "{lie:?}: names the origin: {run:#?}");
    assert!(
        text.contains(what),
        "{lie:?}: says what was wrong ({what:?}): {run:#?}"
    );
}

fn assert_bounded(lie: Lie, run: &Audit) {
    assert!(
        run.peak_rss < MEMORY_BOUND,
        "{lie:?}: peak RSS {} MiB, bound {} MiB",
        run.peak_rss >> 20,
        MEMORY_BOUND >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_liar_passes_the_audit() {
    let run = audit_liar(Lie::None, 5, MEMORY_CAP).await;
    assert_eq!(run.code, Some(0), "the control must pass: {run:#?}");
    assert!(run.stdout.contains(ORIGIN), "{run:#?}");
    assert!(run.stdout.contains("result: OK"), "{run:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_for_a_fake_root_fail_the_audit() {
    // Proofs for every leaf (5 of 5), and for a sample: asked for one, the auditor checks the
    // first and the last leaf, which the fake tree shares with the real one, so the liar's
    // proofs for them do verify against its fake root_hash. Only the signed root catches them.
    for proofs in [5, 1] {
        let run = audit_liar(Lie::FakeRootProofs, proofs, MEMORY_CAP).await;
        assert_caught(Lie::FakeRootProofs, &run, "inclusion proof");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_unsigned_tree_size_fails_the_audit_in_bounded_memory() {
    let run = audit_liar(Lie::HugeTreeSize, 5, MEMORY_BOUND).await;
    assert_caught(Lie::HugeTreeSize, &run, "tree_size");
    assert_bounded(Lie::HugeTreeSize, &run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_past_the_signed_size_fail_the_audit_in_bounded_memory() {
    let run = audit_liar(Lie::ExtraLeaves, 5, MEMORY_BOUND).await;
    assert_caught(Lie::ExtraLeaves, &run, "more");
    assert_bounded(Lie::ExtraLeaves, &run);
}
