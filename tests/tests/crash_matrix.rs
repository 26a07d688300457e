//! Crash matrix (issue 9): one `redline-node` child process, restarted again and again on the
//! same data dir, is SIGKILLed at kill points drawn from a seeded random schedule
//! (`REDLINE_CRASH_SEED` replays one; `REDLINE_CRASH_POINTS`, default 52, sets how many;
//! `REDLINE_CRASH_KEEP` keeps the child's data dir and log), spread over four phases:
//!
//! - **submit**: two clients send Submit calls of random batch sizes (1–150 fresh PDQ hashes)
//!   back to back; the kill lands after a random delay, usually with calls in flight.
//! - **commit**: two clients mix small submits with retractions of acknowledged entries; the kill
//!   lands a random fraction of the measured commit latency after the k-th call was sent, so it
//!   falls inside validation, signing and the sled commit.
//! - **sync**: the child follows an in-process source node; once it has caught up, the source
//!   signs 2–3 more batches of 500–2,000 entries and the child is killed a random fraction of
//!   its measured replication time after the k-th batch was signed.
//! - **rebuild**: the child is killed a random fraction of its measured start-up time after
//!   launch, while it opens the store and replays its logs (tens of thousands of entries) into
//!   the catalog, before it reports serving.
//!
//! After every kill the store is inspected cold ([`inspect_cold`]: every log's checkpoint
//! verifies under its origin's key, stored leaves and stored hashes give its root, nothing is
//! stored past it) and reconciled with what the clients were told: every acknowledged ADD and
//! RETRACT is at its acknowledged index, the stored tree extends every acknowledged checkpoint
//! (so the size never went below one), leaves seen on disk after an earlier kill are still
//! there byte for byte, a call the node died during is committed entirely or not at all, and
//! nothing is in the log that no client sent. After every restart the live node is audited over
//! gRPC (signature, root, retractions, extension of the last audit) and must hold exactly what
//! was on disk; acknowledged ADDs match at their index, acknowledged retractions no longer match,
//! re-submitting acknowledged hashes reports them as duplicates at the same index (the rebuilt
//! catalog), and the followed log is a state the source signed, never behind the last one on
//! disk, and catches up with the source.
//!
//! What this covers is a process crash: the kernel keeps what the node wrote before it died.
//! Power loss (writes the kernel had not put on disk) is not simulated.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use redline_client::{Auditor, HotlineClient, MatchOptions, PlatformClient, TrustedSize};
use redline_e2e::crash::{inspect_cold, ChildConfig, ColdLog, NodeProcess};
use redline_e2e::node_bin;
use redline_e2e::{audited_log, eventually, identity, submit_pdq, temp_dir, TestNode};
use redline_proto::checkpoint::OriginKey;
use redline_proto::entry::{self, Decoded};
use redline_proto::merkle::{self, Hash};
use redline_proto::pb::{RetractResponse, Signal, SubmitResponse};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const OWN: &str = "crash.example";
const SOURCE: &str = "source.example";
const DEFAULT_POINTS: usize = 52;
/// Largest Submit batch in the submit phase (sizes are uniform from 1).
const SUBMIT_BATCH: usize = 150;
/// Submit-phase kills land uniformly within this many milliseconds of the first call.
const SUBMIT_KILL_MS: u64 = 300;
/// Largest Submit batch in the commit phase, which mixes them with retractions.
const COMMIT_BATCH: usize = 20;
/// Entries per checkpoint the source signs while the child replicates (2 or 3 batches).
const GROW_BATCH: std::ops::RangeInclusive<usize> = 500..=2000;
/// Deadline of one client call; a call still open when the node dies fails at once.
const CALL: Duration = Duration::from_secs(30);
/// How long a restarted node may take to serve, or to catch up with the source.
const SLOW: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Phase {
    Submit,
    Commit,
    Sync,
    Rebuild,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Submit => "submit",
            Phase::Commit => "commit",
            Phase::Sync => "sync",
            Phase::Rebuild => "rebuild",
        }
    }
}

/// One kill point: its phase and the seed of everything random in it (batch sizes, hashes,
/// delays).
#[derive(Debug, Clone, Copy)]
struct Point {
    phase: Phase,
    seed: u64,
}

/// The schedule for `seed`: submit and commit points shuffled together, then the sync points
/// (which grow the followed log), then the rebuild points (which need a large log to replay).
fn schedule(seed: u64, points: usize) -> Vec<Point> {
    let mut rng = StdRng::seed_from_u64(seed);
    // 16 : 14 : 12 : 10 (exact at the default 52), largest remainders first, summing to `points`.
    let weights = [
        (Phase::Submit, 16),
        (Phase::Commit, 14),
        (Phase::Sync, 12),
        (Phase::Rebuild, 10),
    ];
    let mut count: BTreeMap<Phase, usize> = weights
        .iter()
        .map(|&(p, w)| (p, points * w / DEFAULT_POINTS))
        .collect();
    let mut by_remainder = weights;
    by_remainder.sort_by_key(|&(_, w)| std::cmp::Reverse(points * w % DEFAULT_POINTS));
    for &(p, _) in by_remainder
        .iter()
        .cycle()
        .take(points - count.values().sum::<usize>())
    {
        *count.get_mut(&p).expect("every phase counted") += 1;
    }
    let n = |p| count[&p];
    let mut first: Vec<Phase> = std::iter::repeat_n(Phase::Submit, n(Phase::Submit))
        .chain(std::iter::repeat_n(Phase::Commit, n(Phase::Commit)))
        .collect();
    first.shuffle(&mut rng);
    first
        .into_iter()
        .chain(std::iter::repeat_n(Phase::Sync, n(Phase::Sync)))
        .chain(std::iter::repeat_n(Phase::Rebuild, n(Phase::Rebuild)))
        .map(|phase| Point {
            phase,
            seed: rng.gen(),
        })
        .collect()
}

#[test]
fn the_schedule_has_the_asked_number_of_points_in_every_phase() {
    for (points, want) in [
        (52, [16, 14, 12, 10]),
        (150, [46, 40, 35, 29]),
        (4, [1, 1, 1, 1]),
    ] {
        let plan = schedule(7, points);
        assert_eq!(plan.len(), points);
        let got = [Phase::Submit, Phase::Commit, Phase::Sync, Phase::Rebuild]
            .map(|p| plan.iter().filter(|x| x.phase == p).count());
        assert_eq!(got, want, "{points} points");
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

/// A call whose answer the client never got: the node died while it was open.
#[derive(Debug, Clone)]
enum Op {
    Submit(Vec<[u8; 32]>),
    Retract(u64),
}

/// What the node's clients were told, and what was found on disk after each kill.
#[derive(Debug, Default)]
struct Model {
    /// Acknowledged ADDs (and ADDs of unacknowledged calls found committed): index -> hash.
    adds: BTreeMap<u64, [u8; 32]>,
    /// Acknowledged RETRACTs (and committed unacknowledged ones): index -> target index.
    retracts: BTreeMap<u64, u64>,
    /// Targets of `retracts`.
    retracted: HashSet<u64>,
    /// Acknowledged checkpoints not yet seen covered by `known` (size, root).
    checkpoints: Vec<(u64, Hash)>,
    /// Largest acknowledged size.
    max_acked: u64,
    /// The own log as found on disk after the last kill: these leaves never change again.
    known: Vec<Vec<u8>>,
    /// Root of `known` (the checkpoint found on disk).
    known_root: Hash,
    /// Calls open when the node died, by call id.
    in_flight: BTreeMap<u64, Op>,
    next_call: u64,
    /// Every hash any client sent.
    sent: HashSet<[u8; 32]>,
    /// Retraction targets a client is working on.
    busy_targets: HashSet<u64>,
    /// Acknowledged calls, for the summary.
    acked_calls: u64,
    /// Acknowledged checkpoints checked against the stored tree.
    checkpoints_checked: u64,
}

impl Model {
    fn open_call(&mut self, op: Op) -> u64 {
        let id = self.next_call;
        self.next_call += 1;
        if let Op::Submit(batch) = &op {
            self.sent.extend(batch.iter().copied());
        }
        self.in_flight.insert(id, op);
        id
    }

    fn checkpoint(&mut self, key: &OriginKey, cp: Option<redline_proto::pb::Checkpoint>) -> u64 {
        let cp = cp.expect("an acknowledgement carries its checkpoint");
        let signed = key
            .verify(&cp.signed_note)
            .expect("acknowledged checkpoint verifies under the node's key");
        assert_eq!(
            (signed.size, signed.root.0.to_vec()),
            (cp.tree_size, cp.root_hash),
            "the checkpoint fields are the ones signed"
        );
        self.checkpoints.push((signed.size, signed.root));
        self.max_acked = self.max_acked.max(signed.size);
        self.acked_calls += 1;
        signed.size
    }

    fn ack_submit(&mut self, key: &OriginKey, id: u64, batch: &[[u8; 32]], r: SubmitResponse) {
        self.in_flight.remove(&id);
        let size = self.checkpoint(key, r.checkpoint);
        assert_eq!(r.entries.len(), batch.len(), "one entry per signal");
        let first = r.entries[0].index;
        for (i, (e, h)) in r.entries.iter().zip(batch).enumerate() {
            assert!(!e.duplicate, "a fresh hash reported as a duplicate");
            assert_eq!(
                e.index,
                first + i as u64,
                "a batch gets consecutive indexes"
            );
            assert!(
                e.index < size,
                "entry {} not covered by its checkpoint",
                e.index
            );
            assert_eq!(
                e.signal.as_ref().map(|s| s.value.clone()),
                Some(hex::encode(h))
            );
            assert!(
                self.adds.insert(e.index, *h).is_none(),
                "index {} twice",
                e.index
            );
        }
    }

    fn ack_retract(&mut self, key: &OriginKey, id: u64, target: u64, r: RetractResponse) {
        self.in_flight.remove(&id);
        self.busy_targets.remove(&target);
        let size = self.checkpoint(key, r.checkpoint);
        assert!(
            r.retract_index < size,
            "retraction not covered by its checkpoint"
        );
        assert!(r.retract_index > target);
        assert!(self.retracts.insert(r.retract_index, target).is_none());
        assert!(self.retracted.insert(target), "{target} retracted twice");
    }

    /// An acknowledged ADD that is still active and no client is retracting.
    fn retract_target(&mut self, rng: &mut StdRng) -> Option<u64> {
        let last = *self.adds.keys().next_back()?;
        for _ in 0..20 {
            let (&i, _) = self.adds.range(rng.gen_range(0..=last)..).next()?;
            if !self.retracted.contains(&i) && self.busy_targets.insert(i) {
                return Some(i);
            }
        }
        None
    }

    fn active(&self) -> Vec<(u64, [u8; 32])> {
        self.adds
            .iter()
            .filter(|(i, _)| !self.retracted.contains(i))
            .map(|(&i, &h)| (i, h))
            .collect()
    }
}

/// Figures for the summary line.
#[derive(Debug, Default)]
struct Stats {
    kills: BTreeMap<Phase, u64>,
    /// Time spent per phase (restart, checks, workload, kill, cold inspection).
    time: BTreeMap<Phase, Duration>,
    /// Calls open at a kill.
    in_flight: u64,
    /// ... of which the node had committed (the answer was lost, the entries are durable).
    committed_unacked: u64,
    /// Sync kills with the child behind the source at that moment.
    sync_behind: u64,
    /// Rebuild kills by where they landed.
    rebuild_loading: u64,
    rebuild_starting: u64,
    rebuild_late: u64,
    restarts_checked: u64,
    entry_checks: u64,
}

/// The source node the child follows, and every (size, root) it ever signed.
struct Source {
    node: TestNode,
    key: OriginKey,
    signed: Arc<Mutex<HashMap<u64, Hash>>>,
    /// Size of the child's copy on disk after the last kill.
    cold_size: u64,
}

impl Source {
    fn is_signed(&self, size: u64, root: &Hash) -> bool {
        self.signed.lock().unwrap().get(&size) == Some(root)
    }

    /// Signs `batches` batches of `per` fresh entries, one checkpoint each; the receiver counts
    /// the batches signed so far.
    fn grow(
        &self,
        batches: usize,
        per: usize,
        seed: u64,
    ) -> (tokio::task::JoinHandle<()>, watch::Receiver<usize>) {
        let (node, signed) = (self.node.node.clone(), self.signed.clone());
        let (tx, rx) = watch::channel(0);
        let task = tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            for b in 1..=batches {
                let hashes: Vec<[u8; 32]> = (0..per).map(|_| rng.gen()).collect();
                let cp = submit_pdq(&node, &hashes).await.checkpoint;
                signed.lock().unwrap().insert(cp.size, cp.root);
                let _ = tx.send(b);
            }
        });
        (task, rx)
    }
}

fn listing() -> (Vec<String>, &'static str) {
    (vec!["ncii".into()], "consent withdrawn")
}

fn pdq(h: &[u8; 32]) -> Signal {
    Signal {
        signal_type: "pdq".into(),
        value: hex::encode(h),
        quality: 100,
    }
}

/// What the clients of one kill point share.
#[derive(Debug, Clone)]
struct Clients {
    url: String,
    key: OriginKey,
    model: Arc<Mutex<Model>>,
    /// Set just before the SIGKILL: from then on a failed call is expected.
    killed: Arc<AtomicBool>,
    /// Calls sent so far.
    sent: Arc<AtomicU64>,
    /// Moving average of a call's latency, milliseconds.
    latency_ms: Arc<Mutex<f64>>,
}

/// A client that submits batches of 1..=`max_batch` fresh hashes (and, with `retract_share`,
/// retracts acknowledged ones) back to back until the node dies.
async fn client_loop(c: Clients, max_batch: usize, retract_share: f64, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let Ok(mut client) = HotlineClient::connect(&c.url).await else {
        assert!(
            c.killed.load(Ordering::SeqCst),
            "cannot reach the live node"
        );
        return;
    };
    loop {
        let target = if rng.gen_bool(retract_share) {
            c.model.lock().unwrap().retract_target(&mut rng)
        } else {
            None
        };
        let t0 = Instant::now();
        let outcome = match target {
            Some(target) => {
                let id = c.model.lock().unwrap().open_call(Op::Retract(target));
                c.sent.fetch_add(1, Ordering::SeqCst);
                match tokio::time::timeout(CALL, client.retract(target, "false positive")).await {
                    Ok(Ok(r)) => {
                        c.model.lock().unwrap().ack_retract(&c.key, id, target, r);
                        Ok(())
                    }
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("deadline".into()),
                }
            }
            None => {
                let n = rng.gen_range(1..=max_batch);
                let batch: Vec<[u8; 32]> = (0..n).map(|_| rng.gen()).collect();
                let id = c.model.lock().unwrap().open_call(Op::Submit(batch.clone()));
                c.sent.fetch_add(1, Ordering::SeqCst);
                let (labels, basis) = listing();
                let call = client.submit(batch.iter().map(pdq).collect(), labels, basis, "");
                match tokio::time::timeout(CALL, call).await {
                    Ok(Ok(r)) => {
                        c.model.lock().unwrap().ack_submit(&c.key, id, &batch, r);
                        Ok(())
                    }
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("deadline".into()),
                }
            }
        };
        match outcome {
            Ok(()) => {
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                let mut l = c.latency_ms.lock().unwrap();
                *l = 0.8 * *l + 0.2 * ms;
            }
            Err(e) => {
                assert!(
                    c.killed.load(Ordering::SeqCst),
                    "a call failed while the node was alive: {e}"
                );
                return;
            }
        }
    }
}

/// Reconciles the own log found on disk with what clients were told; resolves the calls that
/// were open at the kill. Returns how many were found committed.
fn reconcile_own(model: &mut Model, own: &ColdLog, stats: &mut Stats) {
    let size = own.checkpoint.size;
    assert!(
        size >= model.max_acked,
        "the log is at size {size} after the kill, but size {} was acknowledged",
        model.max_acked
    );
    for &(s, root) in &model.checkpoints {
        assert_eq!(
            own.tree
                .root_at(s)
                .expect("acknowledged size within the tree"),
            root,
            "the stored tree does not extend the acknowledged checkpoint of size {s}"
        );
    }
    model.checkpoints_checked += model.checkpoints.len() as u64;
    model.checkpoints.clear();
    assert!(own.leaves.len() >= model.known.len());
    for (i, (a, b)) in model.known.iter().zip(&own.leaves).enumerate() {
        assert_eq!(a, b, "leaf {i} changed since an earlier crash");
    }
    let decoded: Vec<Decoded> = own
        .leaves
        .iter()
        .enumerate()
        .map(|(i, l)| entry::decode(l).unwrap_or_else(|e| panic!("leaf {i} undecodable: {e}")))
        .collect();
    let mut by_hash: HashMap<[u8; 32], u64> = HashMap::new();
    let mut retract_of: HashMap<u64, u64> = HashMap::new();
    for (i, d) in decoded.iter().enumerate() {
        match d {
            Decoded::Add { add, .. } => {
                let h: [u8; 32] = add.hash.as_slice().try_into().expect("PDQ is 32 bytes");
                assert!(
                    model.sent.contains(&h),
                    "leaf {i} lists a hash no client ever sent"
                );
                assert!(by_hash.insert(h, i as u64).is_none(), "hash listed twice");
            }
            Decoded::Retract(r) => {
                assert!(retract_of.insert(r.target_index, i as u64).is_none());
            }
        }
    }
    for (&i, h) in &model.adds {
        assert_eq!(
            by_hash.get(h),
            Some(&i),
            "acknowledged ADD {i} ({}) is not at its index",
            hex::encode(h)
        );
    }
    for (&ri, &t) in &model.retracts {
        assert_eq!(
            retract_of.get(&t),
            Some(&ri),
            "acknowledged RETRACT {ri} of {t} is not at its index"
        );
    }
    stats.entry_checks += (model.adds.len() + model.retracts.len()) as u64;
    for (_, op) in std::mem::take(&mut model.in_flight) {
        stats.in_flight += 1;
        match op {
            Op::Submit(batch) => {
                let found: Vec<Option<u64>> =
                    batch.iter().map(|h| by_hash.get(h).copied()).collect();
                if found.iter().all(Option::is_none) {
                    continue;
                }
                let first = found[0].unwrap_or_else(|| {
                    panic!("a submit open at the kill is partly committed: {found:?}")
                });
                for (k, (f, h)) in found.iter().zip(&batch).enumerate() {
                    assert_eq!(
                        *f,
                        Some(first + k as u64),
                        "a submit open at the kill is partly committed or not consecutive"
                    );
                    model.adds.insert(first + k as u64, *h);
                }
                stats.committed_unacked += 1;
            }
            Op::Retract(t) => {
                model.busy_targets.remove(&t);
                if let Some(&ri) = retract_of.get(&t) {
                    model.retracts.insert(ri, t);
                    model.retracted.insert(t);
                    stats.committed_unacked += 1;
                }
            }
        }
    }
    assert_eq!(
        model.retracts.len(),
        retract_of.len(),
        "a retraction nobody asked for"
    );
    model.known = own.leaves.clone();
    model.known_root = own.checkpoint.root;
}

/// After a kill: the cold store, reconciled with the model and the source.
fn after_kill(
    data_dir: &Path,
    own_key: &OriginKey,
    model: &mut Model,
    source: &mut Source,
    stats: &mut Stats,
) -> u64 {
    let logs = inspect_cold(&data_dir.join("db"), &[own_key.clone(), source.key.clone()]);
    let own = logs
        .iter()
        .find(|l| l.origin == OWN)
        .expect("the own log is registered");
    reconcile_own(model, own, stats);
    let followed = logs.iter().find(|l| l.origin == SOURCE);
    let size = followed.map_or(0, |l| l.checkpoint.size);
    if let Some(l) = followed {
        assert!(
            source.is_signed(size, &l.checkpoint.root),
            "the followed log is at a size and root the source never signed"
        );
    }
    assert!(
        size >= source.cold_size,
        "the followed log went back from {} to {size}",
        source.cold_size
    );
    source.cold_size = size;
    size
}

/// What a restarted node must serve, taken from the model (no lock held across calls).
struct Expect {
    known: Vec<Vec<u8>>,
    known_root: Hash,
    active: Vec<(u64, [u8; 32])>,
    retracted: Vec<[u8; 32]>,
}

impl Model {
    fn expect(&self) -> Expect {
        Expect {
            known: self.known.clone(),
            known_root: self.known_root,
            active: self.active(),
            retracted: self.retracted.iter().map(|t| self.adds[t]).collect(),
        }
    }
}

/// After a restart: audits the live node against the model and the source.
async fn check_live(
    url: &str,
    own_key: &OriginKey,
    model: &Expect,
    source: &Source,
    rng: &mut StdRng,
) {
    let previous = TrustedSize {
        size: model.known.len() as u64,
        root: hex::encode(model.known_root.0),
    };
    let (verified, served_leaves) = audited_log(url, own_key, Some(&previous))
        .await
        .expect("the restarted node's own log audits");
    let report = verified.report;
    assert_eq!(
        report.size,
        model.known.len() as u64,
        "the restarted node does not serve exactly what was on disk"
    );
    for (served, known) in served_leaves.iter().zip(&model.known) {
        assert_eq!(served, known);
    }

    // Acknowledged ADDs match at their index; acknowledged retractions match no more.
    let mut platform = PlatformClient::connect(url)
        .await
        .expect("platform connects");
    let active = &model.active;
    let sample: Vec<&(u64, [u8; 32])> = active.choose_multiple(rng, 200).collect();
    if !sample.is_empty() {
        let r = platform
            .match_signals(
                sample.iter().map(|(_, h)| pdq(h)).collect(),
                MatchOptions::default(),
            )
            .await
            .expect("match");
        for ((i, h), res) in sample.iter().zip(&r.results) {
            assert!(
                res.matches
                    .iter()
                    .any(|m| m.origin == OWN && m.index == *i && m.distance == 0),
                "acknowledged ADD {i} ({}) does not match after the restart",
                hex::encode(h)
            );
        }
    }
    let gone: Vec<&[u8; 32]> = model.retracted.choose_multiple(rng, 200).collect();
    if !gone.is_empty() {
        let r = platform
            .match_signals(
                gone.iter().map(|h| pdq(h)).collect(),
                MatchOptions::default(),
            )
            .await
            .expect("match");
        for (h, res) in gone.iter().zip(&r.results) {
            assert!(
                !res.matches.iter().any(|m| m.origin == OWN),
                "retracted hash {} still matches after the restart",
                hex::encode(h)
            );
        }
    }
    // The rebuilt catalog knows every acknowledged ADD: re-submitting reports duplicates.
    let again: Vec<&(u64, [u8; 32])> = active.choose_multiple(rng, 50).collect();
    if !again.is_empty() {
        let mut hotline = HotlineClient::connect(url).await.expect("hotline connects");
        let (labels, basis) = listing();
        let r = hotline
            .submit(
                again.iter().map(|(_, h)| pdq(h)).collect(),
                labels,
                basis,
                "",
            )
            .await
            .expect("re-submit");
        for ((i, _), e) in again.iter().zip(&r.entries) {
            assert!(
                e.duplicate && e.index == *i,
                "re-submitted ADD {i} got {e:?}"
            );
        }
        assert_eq!(r.checkpoint.unwrap().tree_size, model.known.len() as u64);
    }

    // The followed log: a signed state, never behind what was on disk.
    let (size, root) = followed_head(url).await;
    assert!(
        source.is_signed(size, &root),
        "the restarted node serves a followed state the source never signed"
    );
    assert!(size >= source.cold_size, "the followed log went back");
}

/// The child's checkpoint of the source's log; (0, empty) before anything is replicated.
async fn followed_head(url: &str) -> (u64, Hash) {
    let mut a = Auditor::connect(url).await.expect("auditor connects");
    match a.checkpoint(SOURCE).await {
        Ok(cp) => (
            cp.tree_size,
            merkle::hash_from_slice(&cp.root_hash).expect("32-byte root"),
        ),
        Err(_) => (0, merkle::EMPTY_HASH),
    }
}

async fn catch_up(url: &str, source: &Source) -> Duration {
    let want = source.node.head_of(SOURCE);
    eventually(SLOW, "the restarted node catches up with its peer", || {
        let url = url.to_owned();
        async move {
            let (size, root) = followed_head(&url).await;
            size == want.0 && root.0 == want.1
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_entry_survives_sigkill_at_random_points() {
    tokio::task::spawn_blocking(node_bin).await.unwrap();
    let seed = env_u64("REDLINE_CRASH_SEED").unwrap_or_else(|| rand::thread_rng().gen());
    let points = env_u64("REDLINE_CRASH_POINTS").map_or(DEFAULT_POINTS, |n| n as usize);
    println!("crash matrix: seed {seed} ({points} points); replay with REDLINE_CRASH_SEED={seed}");
    let plan = schedule(seed, points);
    let t0 = Instant::now();

    let (ds, mut dc) = (temp_dir(), temp_dir());
    if std::env::var_os("REDLINE_CRASH_KEEP").is_some() {
        dc.disable_cleanup(true);
        println!(
            "keeping the child's data dir and log in {}",
            dc.path().display()
        );
    }
    let source_node = TestNode::start_in(SOURCE, ds.path()).await;
    let mut source = Source {
        key: source_node.node.public_key().clone(),
        node: source_node,
        signed: Default::default(),
        cold_size: 0,
    };
    {
        let (s, r) = source.node.head_of(SOURCE);
        source.signed.lock().unwrap().insert(s, Hash(r));
    }
    let data_dir: PathBuf = dc.path().join("data");
    let own_key = identity(&data_dir, OWN);
    let config = dc.path().join("node.toml");
    ChildConfig {
        origin: OWN.into(),
        data_dir: data_dir.clone(),
        peers: vec![source.node.url.clone()],
        trust: vec![(SOURCE.into(), source.key.verifier_key())],
        poll_interval_ms: 200,
    }
    .write(&config);
    let log = dc.path().join("node.log");

    let model = Arc::new(Mutex::new(Model::default()));
    let mut stats = Stats::default();
    let latency_ms = Arc::new(Mutex::new(20.0f64));
    let mut start_up = Duration::from_millis(300);
    // Replication time per entry, measured at each catch-up.
    let mut per_entry = Duration::from_micros(200);

    for (n, point) in plan.iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(point.seed);
        let t_point = Instant::now();
        let mut child = NodeProcess::spawn(&config, &log);
        let what: String;
        if point.phase == Phase::Rebuild {
            // Killed while it loads, before it serves.
            let delay = start_up.mul_f64(rng.gen_range(0.1..0.9));
            tokio::time::sleep(delay).await;
            let killed = child.kill();
            let landed = if killed.was_serving {
                stats.rebuild_late += 1;
                "after it served"
            } else if killed.log.contains("catalog loaded") {
                stats.rebuild_late += 1;
                "after the catalog loaded"
            } else if killed.log.contains("NOT_SERVING while the node loads") {
                stats.rebuild_loading += 1;
                "while loading the store and catalog"
            } else {
                stats.rebuild_starting += 1;
                "before it listened"
            };
            what = format!("{landed}, {:?} after launch", killed.uptime);
        } else {
            let url = child.serving(SLOW).await;
            start_up = child.uptime();
            if point.phase == Phase::Sync {
                // It resumes from what it had on disk and catches up with what the source
                // signed meanwhile; that time scales the next kill window.
                let missing = source.node.size_of(SOURCE) - followed_head(&url).await.0;
                let took = catch_up(&url, &source).await;
                if missing >= 500 {
                    per_entry = took / missing as u32;
                }
            }
            let expect = model.lock().unwrap().expect();
            check_live(&url, &own_key, &expect, &source, &mut rng).await;
            stats.restarts_checked += 1;
            if point.phase == Phase::Sync {
                // A random moment into the replication of the k-th of the batches the source
                // signs now (the window is scaled by the measured replication time).
                let (batches, per) = (rng.gen_range(2..=3), rng.gen_range(GROW_BATCH));
                let (grow, mut signed_batches) = source.grow(batches, per, rng.gen());
                let k = rng.gen_range(1..=batches);
                signed_batches
                    .wait_for(|&b| b >= k)
                    .await
                    .expect("the source signs");
                let window = per_entry * per as u32 + Duration::from_millis(20);
                let delay = window.mul_f64(rng.gen_range(0.0..1.2));
                tokio::time::sleep(delay).await;
                let source_at_kill = source.node.size_of(SOURCE);
                let killed = child.kill();
                grow.await.unwrap();
                what = format!(
                    "{delay:?} after batch {k}/{batches} of {per} was signed (window {window:?}), \
                     source at {source_at_kill}"
                );
                let size = after_kill(
                    &data_dir,
                    &own_key,
                    &mut model.lock().unwrap(),
                    &mut source,
                    &mut stats,
                );
                if size < source_at_kill {
                    stats.sync_behind += 1;
                }
                drop(killed);
                *stats.kills.entry(point.phase).or_default() += 1;
                *stats.time.entry(point.phase).or_default() += t_point.elapsed();
                println!(
                    "kill {:>3}/{} [{}] {what}; follower at {size} on disk",
                    n + 1,
                    plan.len(),
                    point.phase.name()
                );
                continue;
            }
            // Submit / commit: clients call until the node dies.
            let killed_flag = Arc::new(AtomicBool::new(false));
            let sent = Arc::new(AtomicU64::new(0));
            let (max_batch, retract_share) = match point.phase {
                Phase::Submit => (SUBMIT_BATCH, 0.0),
                _ => (COMMIT_BATCH, 0.4),
            };
            let shared = Clients {
                url: url.clone(),
                key: own_key.clone(),
                model: model.clone(),
                killed: killed_flag.clone(),
                sent: sent.clone(),
                latency_ms: latency_ms.clone(),
            };
            let clients: Vec<_> = (0..2)
                .map(|_| {
                    tokio::spawn(client_loop(
                        shared.clone(),
                        max_batch,
                        retract_share,
                        rng.gen(),
                    ))
                })
                .collect();
            let delay = if point.phase == Phase::Submit {
                let d = Duration::from_millis(rng.gen_range(0..SUBMIT_KILL_MS));
                tokio::time::sleep(d).await;
                format!("{d:?} into a submit stream")
            } else {
                // A random moment inside the k-th call: validation, signing or the commit.
                let k = rng.gen_range(1..=6);
                tokio::time::timeout(SLOW, async {
                    while sent.load(Ordering::SeqCst) < k {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                })
                .await
                .expect("the clients keep calling");
                let lat = *latency_ms.lock().unwrap();
                let d = Duration::from_secs_f64(lat * rng.gen_range(0.0..1.5) / 1e3);
                tokio::time::sleep(d).await;
                format!("{d:?} into call {k} (mean call {lat:.1} ms)")
            };
            killed_flag.store(true, Ordering::SeqCst);
            let killed = child.kill();
            for c in clients {
                tokio::time::timeout(SLOW, c)
                    .await
                    .expect("clients stop once the node is dead")
                    .unwrap();
            }
            let open = model.lock().unwrap().in_flight.len();
            what = format!("{delay}, {open} calls open, up {:?}", killed.uptime);
        }
        let size = {
            let mut m = model.lock().unwrap();
            after_kill(&data_dir, &own_key, &mut m, &mut source, &mut stats);
            m.known.len()
        };
        *stats.kills.entry(point.phase).or_default() += 1;
        *stats.time.entry(point.phase).or_default() += t_point.elapsed();
        println!(
            "kill {:>3}/{} [{}] {what}; own log at {size} on disk",
            n + 1,
            plan.len(),
            point.phase.name()
        );
    }

    // Last restart: full audit of both logs (inclusion proofs included), catch-up, and the same
    // live checks.
    let mut child = NodeProcess::spawn(&config, &log);
    let url = child.serving(SLOW).await;
    let mut rng = StdRng::seed_from_u64(seed ^ 1);
    let expect = model.lock().unwrap().expect();
    check_live(&url, &own_key, &expect, &source, &mut rng).await;
    stats.restarts_checked += 1;
    catch_up(&url, &source).await;
    let mut auditor = Auditor::connect(&url).await.unwrap();
    let own_report = auditor
        .audit_origin(&own_key, None, Some(64))
        .await
        .expect("own log audits with inclusion proofs");
    let src_report = auditor
        .audit_origin(&source.key, None, Some(64))
        .await
        .expect("followed log audits with inclusion proofs");
    drop(child);
    let m = std::mem::take(&mut *model.lock().unwrap());
    let k = |p| stats.kills.get(&p).copied().unwrap_or(0);
    let secs = |p| stats.time.get(&p).map_or(0.0, Duration::as_secs_f64);
    println!(
        "crash matrix: seed {seed}: {} SIGKILLs survived (submit {} in {:.0} s, commit {} in {:.0} s, \
         sync {} in {:.0} s, rebuild {} in {:.0} s); \
         {} calls open at a kill ({} found committed, the rest absent, none partial); \
         sync kills with the follower behind: {}/{}; rebuild kills before serving: {}/{} ({} mid-load); \
         {} acknowledged calls, {} ADDs + {} RETRACTs re-checked {} entry-times and {} checkpoints, \
         {} restarts audited; own log {} entries, followed log {}; {:.1?}",
        stats.kills.values().sum::<u64>(),
        k(Phase::Submit),
        secs(Phase::Submit),
        k(Phase::Commit),
        secs(Phase::Commit),
        k(Phase::Sync),
        secs(Phase::Sync),
        k(Phase::Rebuild),
        secs(Phase::Rebuild),
        stats.in_flight,
        stats.committed_unacked,
        stats.sync_behind,
        k(Phase::Sync),
        stats.rebuild_loading + stats.rebuild_starting,
        k(Phase::Rebuild),
        stats.rebuild_loading,
        m.acked_calls,
        m.adds.len(),
        m.retracts.len(),
        stats.entry_checks,
        m.checkpoints_checked,
        stats.restarts_checked,
        own_report.size,
        src_report.size,
        t0.elapsed()
    );
    assert_eq!(stats.kills.values().sum::<u64>(), plan.len() as u64);
    source.node.stop().await;
}
