//! Retraction planning: how the time to plan a replicated batch grows with the number of
//! RETRACTs in it. A peer holding a trusted origin's key can sign a batch of a million
//! retractions; planning it must cost about what planning a million ADDs costs, per leaf, at
//! every size (linear), not grow with the batch (quadratic).
//!
//! Two shapes, each at 100k, 300k and 1M retractions, planned with `log::plan_leaves` exactly as
//! a follower plans a replicated batch (`Validation::Replicated`, leaves decoded and hashed on
//! every core first):
//! - **prior**: N ADDs committed (store + catalog), then one batch of N RETRACTs of them (each
//!   target read from the store and checked active in the catalog). Baseline: a batch of N ADDs
//!   planned at the same position of the same log.
//! - **in-run**: one batch of N ADDs followed by N RETRACTs of them (the follower catching up on
//!   both at once). Baseline: a batch of 2N ADDs.
//!
//! Printed per size: time per retraction, time per leaf of the baseline, their ratio, and the
//! growth of the per-retraction time against the smallest size (1.0 is linear; a quadratic
//! planner would show ~10x at 1M against 100k). Also the catalog update of the prior shape's N
//! deactivations (what the commit then does with the plan).
//!
//! Run: `cargo bench -p redline-server --bench retraction_planning`
//! Options (env): `RETRACTION_SIZES` (comma-separated, default `100000,300000,1000000`).

use rand::{Rng, SeedableRng};
use redline_proto::entry;
use redline_proto::merkle::leaf_hash;
use redline_proto::pb::AddEntry;
use redline_server::catalog::Catalog;
use redline_server::log::{plan_leaves, prepare_append, LogState, Validation};
use redline_server::store::{Store, StoredCheckpoint};
use std::time::Instant;

const ORIGIN: &str = "source.example";

fn add_leaf(rng: &mut impl Rng) -> Vec<u8> {
    entry::encode_add(
        AddEntry {
            signal_type: "pdq".into(),
            hash: rng.gen::<[u8; 32]>().to_vec(),
            quality: 100,
            labels: vec!["ncii".into()],
            legal_basis: "consent withdrawn".into(),
            case_ref: String::new(),
        },
        1,
    )
    .unwrap()
}

fn retract_leaf(target: u64, target_leaf: &[u8]) -> Vec<u8> {
    entry::encode_retract(target, &leaf_hash(target_leaf), "false positive", 2).unwrap()
}

struct Log {
    _dir: tempfile::TempDir,
    store: Store,
    catalog: Catalog,
    state: LogState,
}

impl Log {
    fn new() -> Log {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let catalog = Catalog::new();
        catalog.set_origin(0, ORIGIN, true);
        Log {
            _dir: dir,
            store,
            catalog,
            state: LogState {
                id: 0,
                name: ORIGIN.into(),
                registered: false,
                checkpoint: None,
            },
        }
    }

    /// Commits `leaves` as the follower does (prepare, write, catalog).
    fn commit(&mut self, leaves: Vec<Vec<u8>>) {
        let p = prepare_append(
            &self.store,
            &self.catalog,
            &self.state,
            leaves,
            Validation::Replicated,
        )
        .unwrap();
        assert!(p.plan.invalid.is_empty());
        let (size, root) = (p.size, p.root);
        self.store.commit_blocking(p.commit).unwrap();
        self.catalog.apply(0, &p.plan.activate, &p.plan.deactivate);
        self.state.registered = true;
        self.state.checkpoint = Some(StoredCheckpoint {
            size,
            root,
            note: Vec::new(),
            proof: None,
        });
    }

    /// Seconds to plan `leaves` as the next batch; checks the plan's shape.
    fn plan(&self, leaves: &[Vec<u8>], activate: usize, deactivate: usize) -> f64 {
        let t = Instant::now();
        let plan = plan_leaves(
            &self.store,
            &self.catalog,
            0,
            self.state.size(),
            leaves,
            Validation::Replicated,
        )
        .unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert!(plan.invalid.is_empty(), "{}", plan.invalid[0]);
        assert_eq!(plan.activate.len(), activate);
        assert_eq!(plan.deactivate.len(), deactivate);
        secs
    }
}

fn us(secs: f64, n: usize) -> f64 {
    secs * 1e6 / n as f64
}

fn main() {
    let sizes: Vec<usize> = std::env::var("RETRACTION_SIZES")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().parse().unwrap()).collect())
        .unwrap_or_else(|| vec![100_000, 300_000, 1_000_000]);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "retraction planning bench; load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let (mut prior_first, mut in_run_first) = (None, None);
    for &n in &sizes {
        // Prior: N ADDs committed, then N RETRACTs of them in one batch.
        let mut log = Log::new();
        let adds: Vec<Vec<u8>> = (0..n).map(|_| add_leaf(&mut rng)).collect();
        for chunk in adds.chunks(100_000) {
            log.commit(chunk.to_vec());
        }
        let retracts: Vec<Vec<u8>> = adds
            .iter()
            .enumerate()
            .map(|(i, a)| retract_leaf(i as u64, a))
            .collect();
        let more: Vec<Vec<u8>> = (0..n).map(|_| add_leaf(&mut rng)).collect();
        let baseline = log.plan(&more, n, 0);
        let retracting = log.plan(&retracts, 0, n);
        let deactivate: Vec<u64> = (0..n as u64).collect();
        let t = Instant::now();
        log.catalog.apply(0, &[], &deactivate);
        let applied = t.elapsed().as_secs_f64();
        assert!(log.catalog.is_empty());
        let per = us(retracting, n);
        let growth = per / *prior_first.get_or_insert(per);
        println!(
            "prior  N={n:>9}: {:.3} us/retraction, baseline {:.3} us/ADD, ratio {:.2}, \
             growth vs N={} {growth:.2}; catalog update {:.3} us/deactivation",
            per,
            us(baseline, n),
            retracting / baseline,
            sizes[0],
            us(applied, n),
        );
        drop(log);

        // In-run: N ADDs and N RETRACTs of them in one batch, against 2N ADDs.
        let log = Log::new();
        let mut batch = adds;
        batch.extend(retracts);
        let all_adds: Vec<Vec<u8>> = {
            let mut v = more;
            v.extend((0..n).map(|_| add_leaf(&mut rng)));
            v
        };
        let baseline = log.plan(&all_adds, 2 * n, 0);
        let mixed = log.plan(&batch, 0, 0);
        let per = us(mixed, n);
        let growth = per / *in_run_first.get_or_insert(per);
        println!(
            "in-run N={n:>9}: {:.3} us/retraction ({:.3} us/leaf), baseline {:.3} us/ADD of \
             2N, ratio {:.2}, growth vs N={} {growth:.2}",
            per,
            us(mixed, 2 * n),
            us(baseline, 2 * n),
            mixed / baseline,
            sizes[0],
        );
    }
}
