//! Chunked, verified catch-up (issue 17): a follower whose `[sync] max_fetch_bytes` is far
//! smaller than the backlog joins anyway, one bounded step at a time, each step's prefix proven
//! part of the origin's signed tree by a consistency proof before it is committed.
//!
//! The peer is [`Hostile`] serving a real signed log of its origin (honest unless the test says
//! otherwise), and the follower a real `redline-node` child process with real sled.

use redline_e2e::adversary::{evidence, head, honest_hash, lists, Hostile, Script, Serve};
use redline_e2e::crash::{inspect_cold, ChildConfig, NodeProcess};
use redline_e2e::eventually;
use redline_proto::checkpoint::OriginKey;
use std::path::Path;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
/// Generous bound for the node to react (debug build, 2 shared cores).
const LONG: Duration = Duration::from_secs(40);

/// Everything a follower in `dir` may hold on disk: its own origin's key and `hostile`'s.
fn keys(dir: &Path, hostile: &Hostile) -> Vec<OriginKey> {
    vec![
        redline_e2e::identity(&dir.join("data"), "follower.example"),
        hostile.key().clone(),
    ]
}

/// A follower of `hostile` in `dir` with `[sync] max_fetch_bytes = budget`; its config path.
fn follower_config(dir: &Path, hostile: &Hostile, budget: u64) -> std::path::PathBuf {
    config_with_peers(dir, hostile, budget, vec![hostile.url.clone()], "node.toml")
}

/// The same follower with `peers` (none: it holds what it has and fetches nothing), written to
/// `dir/file`.
fn config_with_peers(
    dir: &Path,
    hostile: &Hostile,
    budget: u64,
    peers: Vec<String>,
    file: &str,
) -> std::path::PathBuf {
    let cfg = ChildConfig {
        origin: "follower.example".into(),
        data_dir: dir.join("data"),
        peers,
        trust: vec![(
            hostile.origin().to_owned(),
            hostile.key().verifier_key().to_string(),
        )],
        poll_interval_ms: 200,
    };
    // `[sync]` is the last section of the child config: the budget joins it.
    let toml = format!("{}max_fetch_bytes = {budget}\n", cfg.toml());
    let path = dir.join(file);
    std::fs::write(&path, toml).expect("write config");
    path
}

/// What is tried: an origin of 300,000 entries (~40 MiB of leaves) and a follower with a 4 MiB
/// step budget, which before this change never caught up (the signed checkpoint was refused as
/// `too_large`). It is SIGKILLed once it holds half, and restarted.
///
/// What holds: every state found on disk after the kill is a prefix proven part of the signed
/// tree (`inspect_cold`: stored leaves give the prefix root, the stored consistency proof
/// reconciles it with the origin's signed root, nothing stored past it); the restarted node's
/// first fetch starts at or after that committed prefix (nothing committed is fetched again);
/// it ends with exactly the origin's tree, and entries before, at and after the kill point all
/// match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_with_a_small_step_budget_catches_up_and_resumes_after_sigkill() {
    const ENTRIES: u64 = 300_000;
    let t0 = Instant::now();
    let hostile = Hostile::start("origin.example", ENTRIES, Script::honest()).await;
    let dir = redline_e2e::temp_dir();
    let config = follower_config(dir.path(), &hostile, 4 * MIB);
    let log = dir.path().join("node.log");
    let mut process = NodeProcess::spawn(&config, &log);
    let url = process.serving(Duration::from_secs(60)).await;
    let started = Instant::now();
    let origin = hostile.origin().to_owned();
    eventually(LONG, "the follower holds half the backlog", || async {
        head(&url, &origin).await.0 >= ENTRIES / 2
    })
    .await;
    let half_in = started.elapsed();
    let seen = head(&url, &origin).await.0;
    let killed = process.kill();
    assert!(killed.was_serving);

    // What survived the kill: a prefix proven part of the signed tree of 300,000.
    let logs = inspect_cold(
        &dir.path().join("data").join("db"),
        &keys(dir.path(), &hostile),
    );
    let cold = logs
        .iter()
        .find(|l| l.origin == origin)
        .expect("the origin's log is on disk");
    let committed = cold.leaves.len() as u64;
    assert!(
        committed >= seen && committed < ENTRIES,
        "committed {committed} after seeing {seen}"
    );
    assert_eq!(
        cold.checkpoint.size, ENTRIES,
        "the prefix's note is the signed target"
    );

    // Mid catch-up (no peers: it stays there), an auditor trusting only the origin's key
    // verifies exactly the prefix held: the node serves the signed note with the prefix's size
    // and root and the consistency proof to the signed tree, and the prefix's leaves.
    let isolated = config_with_peers(dir.path(), &hostile, 4 * MIB, vec![], "isolated.toml");
    let mut process = NodeProcess::spawn(&isolated, &log);
    let url = process.serving(Duration::from_secs(60)).await;
    let mut auditor = redline_client::Auditor::connect(&url).await.unwrap();
    let report = auditor
        .audit_origin(hostile.key(), None, Some(16))
        .await
        .expect("the held prefix audits");
    assert_eq!((report.size, report.signed_size), (committed, ENTRIES));
    assert_eq!(report.root, hex::encode(cold.tree.root().0));
    assert!(report.inclusion_proofs_checked >= 16);
    drop(process);
    let calls_before = hostile.counters().entry_starts.lock().unwrap().len();

    let mut process = NodeProcess::spawn(&config, &log);
    let url = process.serving(Duration::from_secs(60)).await;
    let restarted = Instant::now();
    let want = hostile.honest_head();
    eventually(LONG, "the restarted follower catches up", || async {
        head(&url, &origin).await == want
    })
    .await;
    let rest_in = restarted.elapsed();
    let starts = hostile.counters().entry_starts.lock().unwrap()[calls_before..].to_vec();
    assert!(!starts.is_empty());
    assert!(
        starts[0] >= committed,
        "the restart fetched from {} again, below the committed prefix {committed}",
        starts[0]
    );
    for i in [0, committed - 1, committed, ENTRIES / 2 + 7, ENTRIES - 1] {
        assert!(
            lists(&url, &origin, &honest_hash(i)).await,
            "entry {i} does not match"
        );
    }
    // The follower offers its peers only checkpoints it fully holds: now the signed one.
    drop(process);
    let logs = inspect_cold(
        &dir.path().join("data").join("db"),
        &keys(dir.path(), &hostile),
    );
    let cold = logs.iter().find(|l| l.origin == origin).unwrap();
    assert_eq!(cold.leaves.len() as u64, ENTRIES);
    assert_eq!(
        (cold.checkpoint.size, cold.checkpoint.root.0.to_vec()),
        want
    );
    eprintln!(
        "chunked catch-up, 4 MiB steps, debug build: first {seen} entries in {:.1} s ({:.0}/s), \
         killed, resumed from {committed}: the remaining {} in {:.1} s ({:.0}/s); \
         {} GetEntries after the restart, the first from {}; test {:.1} s",
        half_in.as_secs_f64(),
        seen as f64 / half_in.as_secs_f64(),
        ENTRIES - committed,
        rest_in.as_secs_f64(),
        (ENTRIES - committed) as f64 / rest_in.as_secs_f64(),
        starts.len(),
        starts[0],
        t0.elapsed().as_secs_f64()
    );
    hostile.stop().await;
}

/// What is tried: a relay that serves the origin's real signed checkpoint (40,000 entries, a
/// 512 KiB step budget so the first step is a prefix) but alters entry 5, as a relay altering a
/// listing would.
///
/// What holds: the first step's prefix root cannot be reconciled with the signed root by the
/// proof (the relay serves the real one), so it is refused with `root_mismatch` evidence
/// carrying the signed note; nothing is committed (the follower holds no entry of the origin);
/// no fetch past the first step was made, and the refused step is not fetched again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_serving_an_altered_prefix_is_refused_at_the_first_step() {
    const ENTRIES: u64 = 40_000;
    let t0 = Instant::now();
    let hostile = Hostile::start(
        "origin.example",
        ENTRIES,
        Script {
            serve: Serve::Altered { index: 5 },
            ..Script::honest()
        },
    )
    .await;
    let dir = redline_e2e::temp_dir();
    let config = follower_config(dir.path(), &hostile, MIB / 2);
    let log = dir.path().join("node.log");
    let mut process = NodeProcess::spawn(&config, &log);
    let url = process.serving(Duration::from_secs(60)).await;
    let origin = hostile.origin().to_owned();
    let find = || async {
        evidence(&url, &origin)
            .await
            .into_iter()
            .find(|e| e.reason == "root_mismatch")
    };
    eventually(LONG, "root_mismatch evidence", || async {
        find().await.is_some()
    })
    .await;
    let e = find().await.unwrap();
    assert!(e.detail.contains("no proof reconciles"), "{e:#?}");
    assert!(!e.signed_notes.is_empty());
    let starts = hostile.counters().entry_starts.lock().unwrap().clone();
    let proofs = redline_e2e::adversary::Counters::get(&hostile.counters().proofs);
    // Three more pulls: the refused step is not fetched again.
    let pulls = redline_e2e::adversary::Counters::get(&hostile.counters().get_checkpoints);
    eventually(LONG, "three more pulls", || async {
        redline_e2e::adversary::Counters::get(&hostile.counters().get_checkpoints) >= pulls + 3
    })
    .await;
    assert_eq!(
        hostile.counters().entry_starts.lock().unwrap().len(),
        starts.len(),
        "a refused step is fetched again"
    );
    assert!(proofs >= 1);
    assert_eq!(
        head(&url, &origin).await.0,
        0,
        "something of it was committed"
    );
    assert!(!lists(&url, &origin, &honest_hash(0)).await);
    // Only the first step was fetched: one budget's worth of requests, all below its end.
    let step_end = starts.iter().max().copied().unwrap_or(0);
    assert!(
        step_end < ENTRIES / 2,
        "fetched past the first step: {starts:?}"
    );
    drop(process);
    let logs = inspect_cold(
        &dir.path().join("data").join("db"),
        &keys(dir.path(), &hostile),
    );
    assert!(
        logs.iter().all(|l| l.origin != origin),
        "the origin's log was registered on disk"
    );
    eprintln!(
        "altered prefix refused at the first step; test {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    hostile.stop().await;
}

/// What is tried: a follower stuck mid catch-up (a relay alters entry 20,000 of the origin's
/// 40,000, so the step holding it is refused and the follower keeps a prefix with the signed
/// target's note). The relay then offers, each validly signed by the origin's key over a root
/// no honest tree has: a checkpoint between the prefix and the target; one past the target;
/// one of the target's own size.
///
/// What holds: the first is `BelowTarget` (nothing fetched, no evidence but the relay's
/// rollback); the second is refused before any fetch, because the relay cannot prove it
/// extends the signed target, with evidence carrying both notes, the origin not frozen; the
/// third is equivocation (two signed roots for one size), and the origin is frozen. Without
/// the target's note, all three would have been fetched towards as `Ahead`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_mid_catch_up_are_judged_against_the_signed_target() {
    const ENTRIES: u64 = 40_000;
    let hostile = Hostile::start(
        "origin.example",
        ENTRIES,
        Script {
            serve: Serve::Altered { index: 20_000 },
            ..Script::honest()
        },
    )
    .await;
    let dir = redline_e2e::temp_dir();
    let config = follower_config(dir.path(), &hostile, MIB / 2);
    let mut process = NodeProcess::spawn(&config, &dir.path().join("node.log"));
    let url = process.serving(Duration::from_secs(60)).await;
    let origin = hostile.origin().to_owned();
    let with = |reason: &'static str| {
        let (url, origin) = (url.clone(), origin.clone());
        async move {
            evidence(&url, &origin)
                .await
                .into_iter()
                .filter(|e| e.reason == reason)
                .collect::<Vec<_>>()
        }
    };
    eventually(LONG, "the altered step is refused", || async {
        !with("root_mismatch").await.is_empty()
    })
    .await;
    let held = head(&url, &origin).await.0;
    assert!(held > 0 && held < 20_000, "held {held}");
    let fetches = || hostile.counters().entry_starts.lock().unwrap().len();
    let pulls = || redline_e2e::adversary::Counters::get(&hostile.counters().get_checkpoints);
    let (fetched, mismatches) = (fetches(), with("root_mismatch").await.len());

    hostile.set(Script {
        offer: redline_e2e::adversary::Offer::Claim { size: held + 10 },
        serve: Serve::Altered { index: 20_000 },
        ..Script::honest()
    });
    let p = pulls();
    eventually(
        LONG,
        "three pulls of the offer below the target",
        || async { pulls() >= p + 3 },
    )
    .await;
    assert_eq!(
        fetches(),
        fetched,
        "fetched towards a checkpoint below the target"
    );
    assert_eq!(with("root_mismatch").await.len(), mismatches);
    assert!(with("equivocation").await.is_empty());

    hostile.set(Script {
        offer: redline_e2e::adversary::Offer::Claim {
            size: ENTRIES + 1000,
        },
        serve: Serve::Altered { index: 20_000 },
        ..Script::honest()
    });
    eventually(LONG, "the unproven extension is refused", || async {
        with("root_mismatch").await.len() > mismatches
    })
    .await;
    let refused = with("root_mismatch").await;
    let e = refused
        .iter()
        .find(|e| {
            e.detail
                .contains("does not show it extends the signed tree of size 40000")
        })
        .unwrap_or_else(|| panic!("{refused:#?}"));
    assert_eq!(e.signed_notes.len(), 2, "both notes are kept");
    assert_eq!(fetches(), fetched, "fetched towards an unproven extension");
    assert_eq!(head(&url, &origin).await.0, held);

    hostile.set(Script {
        offer: redline_e2e::adversary::Offer::Claim { size: ENTRIES },
        serve: Serve::Altered { index: 20_000 },
        ..Script::honest()
    });
    eventually(LONG, "equivocation at the target's size", || async {
        !with("equivocation").await.is_empty()
    })
    .await;
    let mut audit = redline_proto::pb::audit_client::AuditClient::connect(url.clone())
        .await
        .unwrap();
    let origins = audit
        .list_origins(redline_proto::pb::ListOriginsRequest {})
        .await
        .unwrap()
        .into_inner()
        .origins;
    let o = origins.iter().find(|o| o.origin == origin).unwrap();
    assert!(o.frozen, "{o:?}");
    assert_eq!(fetches(), fetched);
    drop(process);
    hostile.stop().await;
}
