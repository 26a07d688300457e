//! Model-based tests: the index must return exactly what a brute-force scan
//! over a plain list returns, for every radius, after any interleaving of
//! inserts (including duplicate hashes), removals, compactions and
//! background merges (taken, run — sometimes on another thread — and
//! installed late, out of order or after a compaction made them stale), and
//! staged batches (stored but unsearched until their run, built apart, is
//! committed; or made searchable early by an insert or a compaction).

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redline_index::{
    hamming_distance, BuiltMerge, HammingIndex, IndexError, IndexOptions, MergeJob,
    Strategy as Search,
};

/// Brute-force reference: every live `(id, hash)`.
#[derive(Default)]
struct Model {
    entries: Vec<(u64, Vec<u8>)>,
    /// Staged, not yet searchable.
    staged: Vec<(u64, Vec<u8>)>,
    /// Every hash staged since the last commit, removed ones included: what
    /// the run must be built over.
    run: Vec<Vec<u8>>,
}

impl Model {
    /// What was staged becomes searchable.
    fn unstage(&mut self) {
        self.entries.append(&mut self.staged);
        self.run.clear();
    }
}

impl Model {
    fn search(&self, q: &[u8], d: u32) -> Vec<(u64, u32)> {
        let mut out: Vec<(u64, u32)> = self
            .entries
            .iter()
            .map(|(id, h)| (*id, hamming_distance(q, h).unwrap()))
            .filter(|&(_, dist)| dist <= d)
            .collect();
        out.sort_by_key(|&(id, dist)| (dist, id));
        out
    }
}

/// How a hash for an insert is made.
#[derive(Debug, Clone)]
enum HashSpec {
    /// Uniformly random bytes.
    Random(Vec<u8>),
    /// A cluster centre with some bits flipped (near-duplicates).
    Near { centre: usize, flips: Vec<u16> },
    /// Exactly the hash of an already stored entry (same hash, new id).
    Copy(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Insert(HashSpec),
    /// Stage one hash.
    Stage(HashSpec),
    /// Build the staged hashes' run and commit it; `broken` builds it over
    /// one hash too few (the index must then seal them itself).
    Commit {
        broken: bool,
    },
    Remove(usize),
    RemoveUnknown,
    Compact,
    Check {
        seed: u64,
    },
    /// Take the pending merge job, if any.
    TakeJob,
    /// Run the oldest (or newest) taken job, maybe on another thread.
    RunJob {
        newest: bool,
        thread: bool,
    },
    /// Install the oldest (or newest) built merge.
    InstallJob {
        newest: bool,
    },
}

fn op_strategy(bytes: usize, clustered: bool, max_flips: usize) -> impl Strategy<Value = Op> {
    let bits = (bytes * 8) as u16;
    let insert = if clustered {
        prop_oneof![
            8 => (0..6usize, prop::collection::vec(0..bits, 0..=max_flips))
                .prop_map(|(centre, flips)| HashSpec::Near { centre, flips }),
            1 => prop::collection::vec(any::<u8>(), bytes).prop_map(HashSpec::Random),
            1 => any::<usize>().prop_map(HashSpec::Copy),
        ]
        .boxed()
    } else {
        prop_oneof![
            9 => prop::collection::vec(any::<u8>(), bytes).prop_map(HashSpec::Random),
            1 => any::<usize>().prop_map(HashSpec::Copy),
        ]
        .boxed()
    };
    prop_oneof![
        12 => insert.clone().prop_map(Op::Insert),
        2 => insert.prop_map(Op::Stage),
        1 => prop::bool::weighted(0.2).prop_map(|broken| Op::Commit { broken }),
        4 => any::<usize>().prop_map(Op::Remove),
        1 => Just(Op::RemoveUnknown),
        1 => Just(Op::Compact),
        1 => any::<u64>().prop_map(|seed| Op::Check { seed }),
        2 => Just(Op::TakeJob),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(newest, thread)| Op::RunJob { newest, thread }),
        2 => any::<bool>().prop_map(|newest| Op::InstallJob { newest }),
    ]
}

fn flip(hash: &mut [u8], bit: usize) {
    hash[bit / 8] ^= 1 << (bit % 8);
}

/// Compares the index with the model on a battery of queries for every
/// radius in `0..=64` plus a few large ones.
fn check(index: &HammingIndex, model: &Model, centres: &[Vec<u8>], seed: u64) {
    let mut radii: Vec<u32> = (0..=64).collect();
    radii.extend([96, 128, index.bits() / 2 + 7, index.bits()]);
    check_radii(index, model, centres, seed, &radii);
}

/// [`check`] on chosen radii.
fn check_radii(index: &HammingIndex, model: &Model, centres: &[Vec<u8>], seed: u64, radii: &[u32]) {
    let bytes = (index.bits() / 8) as usize;
    let bits = index.bits() as usize;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut queries: Vec<Vec<u8>> = vec![(0..bytes).map(|_| rng.gen()).collect()];
    queries.push(centres[rng.gen_range(0..centres.len())].clone());
    if !model.entries.is_empty() {
        for _ in 0..3 {
            let mut q = model.entries[rng.gen_range(0..model.entries.len())]
                .1
                .clone();
            for _ in 0..rng.gen_range(0..=24) {
                flip(&mut q, rng.gen_range(0..bits));
            }
            queries.push(q);
        }
    }
    for q in &queries {
        for &d in radii {
            let got = index.range_search(q, d).unwrap();
            let want = model.search(q, d);
            assert_eq!(got, want, "radius {d}, {} stored", model.entries.len());
        }
    }
    assert_eq!(index.len(), model.entries.len() + model.staged.len());
    assert_eq!(index.staged(), model.run.len());
}

/// Background merges the test holds, each tagged with the number of
/// compactions before it was taken: installing it must succeed exactly when
/// no compaction happened since.
struct Jobs {
    /// The index's `background_merge_threshold`.
    threshold: Option<usize>,
    taken: Vec<(MergeJob, usize)>,
    built: Vec<(BuiltMerge, usize)>,
    compactions: usize,
}

impl Jobs {
    fn new(threshold: Option<usize>) -> Self {
        Self {
            threshold,
            taken: Vec::new(),
            built: Vec::new(),
            compactions: 0,
        }
    }

    fn take(&mut self, index: &mut HammingIndex) {
        if let Some(job) = index.take_merge_job() {
            assert!(self.threshold.is_some(), "no jobs without the option");
            assert!(index.take_merge_job().is_none(), "one job in flight");
            self.taken.push((job, self.compactions));
        }
    }

    fn run(&mut self, newest: bool, thread: bool) {
        let Some((job, epoch)) = pick(&mut self.taken, newest) else {
            return;
        };
        let built = if thread {
            std::thread::spawn(move || job.run()).join().unwrap()
        } else {
            job.run()
        };
        self.built.push((built, epoch));
    }

    fn install(&mut self, index: &mut HammingIndex, newest: bool) {
        let Some((built, epoch)) = pick(&mut self.built, newest) else {
            return;
        };
        let debug = format!("{built:?}");
        let fresh = epoch == self.compactions;
        assert_eq!(index.install_merge(built), fresh, "{debug}");
    }

    /// Runs and installs everything held, then every merge the index still
    /// has to give, the way a caller's worker would.
    fn drain(&mut self, index: &mut HammingIndex) {
        while !self.taken.is_empty() {
            self.run(false, false);
        }
        while !self.built.is_empty() {
            self.install(index, false);
        }
        while let Some(job) = index.take_merge_job() {
            assert!(index.install_merge(job.run()));
        }
    }
}

fn pick<T>(list: &mut Vec<T>, newest: bool) -> Option<T> {
    if list.is_empty() {
        None
    } else if newest {
        list.pop()
    } else {
        Some(list.remove(0))
    }
}

/// Checks that hold after every step: exact results on a few radii, and no
/// merge above the background threshold built inline.
fn check_step(index: &HammingIndex, model: &Model, centres: &[Vec<u8>], jobs: &Jobs, step: usize) {
    if let Some(t) = jobs.threshold {
        let largest = index.merge_stats().largest_inline_merge;
        assert!(largest <= t, "inline merge of {largest} slots > {t}");
    }
    let radii = [0, 3, 31, index.bits() / 2];
    check_radii(index, model, centres, step as u64, &radii);
}

/// After every merge is run and installed, no two neighbours are left that
/// the size rule would merge: the same few, geometrically sized segments as
/// with inline merges.
fn assert_converged(index: &HammingIndex) {
    let sizes: Vec<usize> = index.segments().iter().map(|s| s.0).collect();
    assert!(
        sizes.windows(2).all(|w| w[0] > 4 * w[1]),
        "unmerged neighbours left: {sizes:?}"
    );
}

fn run(bits: u32, options: IndexOptions, centre_seed: u64, ops: &[Op]) {
    let bytes = (bits / 8) as usize;
    let mut rng = StdRng::seed_from_u64(centre_seed);
    let centres: Vec<Vec<u8>> = (0..6)
        .map(|_| (0..bytes).map(|_| rng.gen()).collect())
        .collect();
    let mut index = HammingIndex::with_options(bits, options).unwrap();
    let mut model = Model::default();
    let mut jobs = Jobs::new(options.background_merge_threshold);
    let mut next_id = 0u64;
    for (step, op) in ops.iter().enumerate() {
        let make = |spec: &HashSpec, model: &Model| match spec {
            HashSpec::Random(h) => h.clone(),
            HashSpec::Near { centre, flips } => {
                let mut h = centres[*centre].clone();
                for &b in flips {
                    flip(&mut h, usize::from(b));
                }
                h
            }
            HashSpec::Copy(i) if !model.entries.is_empty() => {
                model.entries[i % model.entries.len()].1.clone()
            }
            HashSpec::Copy(_) => centres[0].clone(),
        };
        match op {
            Op::Insert(spec) | Op::Stage(spec) => {
                let hash = make(spec, &model);
                // Ids are sparse and out of order, like a caller's handles.
                let id = next_id.wrapping_mul(0x9E37_79B9) % 1_000_003;
                next_id += 1;
                if matches!(op, Op::Stage(_)) {
                    index.stage([(id, hash.as_slice())]).unwrap();
                    model.run.push(hash.clone());
                    model.staged.push((id, hash));
                } else {
                    index.insert(id, &hash).unwrap();
                    // An insert makes what was staged searchable.
                    model.unstage();
                    model.entries.push((id, hash));
                }
            }
            Op::Commit { broken } => {
                let n = model.run.len();
                let take = if *broken { n.saturating_sub(1) } else { n };
                let run = index
                    .run_builder()
                    .build(model.run[..take].iter().map(Vec::as_slice))
                    .unwrap();
                assert_eq!(run.len(), take);
                let committed = index.commit_staged(run);
                assert_eq!(committed, n > 0 && !*broken, "{n} staged, broken {broken}");
                model.unstage();
            }
            Op::Remove(i) if !model.staged.is_empty() && i % 2 == 0 => {
                let (id, _) = model.staged.remove(i / 2 % model.staged.len());
                assert!(index.remove(id));
                assert!(!index.remove(id));
            }
            Op::Remove(i) if !model.entries.is_empty() => {
                let (id, _) = model.entries.swap_remove(i % model.entries.len());
                assert!(index.remove(id));
                assert!(!index.remove(id));
            }
            Op::Remove(_) | Op::RemoveUnknown => assert!(!index.remove(u64::MAX)),
            Op::Compact => {
                index.compact();
                jobs.compactions += 1;
                model.unstage();
            }
            Op::Check { seed } => check(&index, &model, &centres, *seed),
            Op::TakeJob => jobs.take(&mut index),
            Op::RunJob { newest, thread } => jobs.run(*newest, *thread),
            Op::InstallJob { newest } => jobs.install(&mut index, *newest),
        }
        check_step(&index, &model, &centres, &jobs, step);
    }
    if !model.run.is_empty() {
        let run = index
            .run_builder()
            .build(model.run.iter().map(Vec::as_slice))
            .unwrap();
        assert!(index.commit_staged(run));
        model.unstage();
    }
    check(&index, &model, &centres, 0);
    jobs.drain(&mut index);
    assert_converged(&index);
    check(&index, &model, &centres, 1);
}

fn options() -> impl Strategy<Value = IndexOptions> {
    (
        prop_oneof![
            Just(Search::Auto),
            Just(Search::PreferProbe),
            Just(Search::LinearOnly)
        ],
        prop::option::of(1usize..=16),
        1usize..40,
        prop::option::of(0usize..=80),
    )
        .prop_map(
            |(strategy, tables, buffer_capacity, background_merge_threshold)| IndexOptions {
                strategy,
                tables,
                buffer_capacity,
                tuning_radius: None,
                background_merge_threshold,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn pdq_random_sets_match_brute_force(
        options in options(),
        seed in any::<u64>(),
        ops in prop::collection::vec(op_strategy(32, false, 0), 1..250),
    ) {
        run(256, options, seed, &ops);
    }

    #[test]
    fn pdq_clustered_sets_match_brute_force(
        options in options(),
        seed in any::<u64>(),
        ops in prop::collection::vec(op_strategy(32, true, 16), 1..250),
    ) {
        run(256, options, seed, &ops);
    }

    #[test]
    fn phash64_sets_match_brute_force(
        options in options(),
        seed in any::<u64>(),
        clustered in any::<bool>(),
        ops in prop::collection::vec(op_strategy(8, true, 8), 1..250),
        random_ops in prop::collection::vec(op_strategy(8, false, 0), 1..250),
    ) {
        run(64, options, seed, if clustered { &ops } else { &random_ops });
    }

    #[test]
    fn odd_widths_match_brute_force(
        bits in prop_oneof![Just(8u32), Just(72), Just(128), Just(200), Just(1024)],
        options in options(),
        seed in any::<u64>(),
        ops in prop::collection::vec(op_strategy(25, true, 12), 1..120),
    ) {
        // Re-shape generated hashes to the width under test.
        let bytes = (bits / 8) as usize;
        let fit = |h: &Vec<u8>| { let mut h = h.clone(); h.resize(bytes, 0xA5); h };
        let bits16 = bits as u16;
        let reshape = |spec: HashSpec| match spec {
            HashSpec::Random(h) => HashSpec::Random(fit(&h)),
            HashSpec::Near { centre, flips } => HashSpec::Near {
                centre,
                flips: flips.into_iter().map(|b| b % bits16).collect(),
            },
            other => other,
        };
        let ops: Vec<Op> = ops.into_iter().map(|op| match op {
            Op::Insert(spec) => Op::Insert(reshape(spec)),
            Op::Stage(spec) => Op::Stage(reshape(spec)),
            other => other,
        }).collect();
        run(bits, options, seed, &ops);
    }
}

/// Larger clustered set in the default configuration, so the cost model
/// really picks substring tables (small sets are scanned).
#[test]
fn default_options_large_clustered_set() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut index = HammingIndex::new(256).unwrap();
    let mut model = Model::default();
    let mut hashes = Vec::new();
    for c in 0..2_000 {
        let centre: Vec<u8> = (0..32).map(|_| rng.gen()).collect();
        for _ in 0..rng.gen_range(1..20) {
            let mut h = centre.clone();
            for _ in 0..rng.gen_range(0..=16) {
                flip(&mut h, rng.gen_range(0..256));
            }
            hashes.push((c as u64 * 100 + hashes.len() as u64 % 100, h));
        }
    }
    hashes.dedup_by_key(|(id, _)| *id);
    let batch: Vec<(u64, &[u8])> = hashes.iter().map(|(id, h)| (*id, h.as_slice())).collect();
    index.insert_batch(batch).unwrap();
    model.entries = hashes.clone();
    assert!(
        index.segments().iter().any(|&(_, tables)| tables > 0),
        "{:?}",
        index.segments()
    );
    // Interleave single inserts and removals on top of the bulk load.
    for (i, (id, h)) in hashes.iter().enumerate().take(3_000) {
        if i % 3 == 0 {
            assert!(index.remove(*id));
            model.entries.retain(|(x, _)| x != id);
        } else if i % 3 == 1 {
            let mut h = h.clone();
            flip(&mut h, i % 256);
            index.insert(10_000_000 + i as u64, &h).unwrap();
            model.entries.push((10_000_000 + i as u64, h));
        }
    }
    let centres: Vec<Vec<u8>> = hashes.iter().take(4).map(|(_, h)| h.clone()).collect();
    // Fewer radii than `check`: brute force over ~20k hashes is slow in debug.
    let radii = [0, 1, 2, 7, 15, 16, 23, 30, 31, 32, 33, 47, 64, 100, 256];
    for seed in 0..8 {
        check_radii(&index, &model, &centres, seed, &radii);
    }
}

/// One segment of `n` near-duplicate clusters, checked against brute force.
fn single_segment_stays_exact(n: usize, seeds: u64) {
    let mut rng = StdRng::seed_from_u64(11);
    let mut hashes: Vec<(u64, Vec<u8>)> = Vec::with_capacity(n + 8);
    while hashes.len() < n {
        let centre: Vec<u8> = (0..32).map(|_| rng.gen()).collect();
        for _ in 0..rng.gen_range(1..8) {
            let mut h = centre.clone();
            for _ in 0..rng.gen_range(0..=16) {
                flip(&mut h, rng.gen_range(0..256));
            }
            hashes.push((hashes.len() as u64, h));
        }
    }
    let mut index = HammingIndex::new(256).unwrap();
    let batch: Vec<(u64, &[u8])> = hashes.iter().map(|(id, h)| (*id, h.as_slice())).collect();
    index.insert_batch(batch).unwrap();
    index.compact();
    assert_eq!(index.segments().len(), 1, "{:?}", index.segments());
    assert!(index.segments()[0].1 > 0, "{:?}", index.segments());
    let model = Model {
        entries: hashes,
        ..Model::default()
    };
    let centres: Vec<Vec<u8>> = model
        .entries
        .iter()
        .step_by(n / 16)
        .map(|(_, h)| h.clone())
        .collect();
    for seed in 0..seeds {
        check_radii(&index, &model, &centres, seed, &[0, 4, 16, 31, 32]);
    }
}

/// A segment past 2^16 slots packs fewer spare filter bits into each 4-byte
/// table entry (14 here, 16 in the small sets above): results must stay
/// exact with the narrower filter.
#[test]
fn segment_with_narrower_entry_filter_stays_exact() {
    single_segment_stays_exact(150_000, 4);
}

/// A segment past 2^20 slots switches to 5-byte table entries (relative slot
/// above 16 filter bits): results must stay exact across the switch.
#[test]
fn segment_with_five_byte_entries_stays_exact() {
    single_segment_stays_exact((1 << 20) + 50_000, 2);
}

#[test]
fn empty_index_finds_nothing() {
    let index = HammingIndex::new(256).unwrap();
    assert!(index.is_empty());
    assert_eq!(index.range_search(&[0; 32], 256).unwrap(), vec![]);
}

#[test]
fn duplicate_hash_under_many_ids() {
    let mut index = HammingIndex::new(256).unwrap();
    let h = [0x5Au8; 32];
    for id in [9, 3, 7] {
        index.insert(id, &h).unwrap();
    }
    let mut near = h;
    near[0] ^= 1;
    index.insert(1, &near).unwrap();
    assert_eq!(
        index.range_search(&h, 0).unwrap(),
        vec![(3, 0), (7, 0), (9, 0)]
    );
    assert_eq!(
        index.range_search(&h, 31).unwrap(),
        vec![(3, 0), (7, 0), (9, 0), (1, 1)]
    );
    assert!(index.remove(7));
    assert_eq!(index.range_search(&h, 0).unwrap(), vec![(3, 0), (9, 0)]);
    assert_eq!(index.insert(3, &h), Err(IndexError::DuplicateId(3)));
    assert_eq!(index.get(1).unwrap(), near.to_vec());
}

#[test]
fn removing_unknown_id_is_false() {
    let mut index = HammingIndex::new(64).unwrap();
    assert!(!index.remove(42));
    index.insert(42, &[1; 8]).unwrap();
    assert!(index.remove(42));
    assert!(!index.remove(42));
    assert!(!index.contains(42));
    assert!(index.is_empty());
}

#[test]
fn wrong_lengths_are_errors() {
    let mut index = HammingIndex::new(256).unwrap();
    let err = IndexError::WrongLength {
        expected: 32,
        got: 31,
    };
    assert_eq!(index.range_search(&[0; 31], 31), Err(err.clone()));
    assert_eq!(index.insert(1, &[0; 31]), Err(err));
    assert!(index.is_empty());
    assert!(matches!(
        HammingIndex::new(12),
        Err(IndexError::UnsupportedWidth(12))
    ));
    assert!(matches!(
        HammingIndex::new(0),
        Err(IndexError::UnsupportedWidth(0))
    ));
}

#[test]
fn removal_triggers_compaction_and_stays_exact() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut index = HammingIndex::new(256).unwrap();
    let mut model = Model::default();
    for id in 0..6_000u64 {
        let h: Vec<u8> = (0..32).map(|_| rng.gen()).collect();
        index.insert(id, &h).unwrap();
        model.entries.push((id, h));
    }
    let before = index.heap_bytes();
    for id in (0..6_000u64).filter(|id| id % 4 != 0) {
        assert!(index.remove(id));
    }
    model.entries.retain(|(id, _)| id % 4 == 0);
    assert!(index.heap_bytes() < before, "compaction should free memory");
    let centres = vec![model.entries[0].1.clone()];
    check(&index, &model, &centres, 1);
}

fn background(threshold: usize, buffer_capacity: usize) -> IndexOptions {
    IndexOptions {
        buffer_capacity,
        background_merge_threshold: Some(threshold),
        ..IndexOptions::default()
    }
}

fn random_hashes(rng: &mut StdRng, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| (0..32).map(|_| rng.gen()).collect())
        .collect()
}

/// Without anyone running jobs, inserts build nothing above the threshold
/// and stay exact; once a worker thread runs and installs the jobs, the
/// layout converges to the few segments of inline merging.
#[test]
fn background_merges_stay_small_inline_then_converge() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut index = HammingIndex::with_options(256, background(64, 8)).unwrap();
    let mut model = Model::default();
    for (id, h) in random_hashes(&mut rng, 2_000).into_iter().enumerate() {
        index.insert(id as u64, &h).unwrap();
        model.entries.push((id as u64, h));
    }
    let stats = index.merge_stats();
    assert!(stats.largest_inline_merge <= 64, "{stats:?}");
    let before = index.segments().len();
    assert!(
        before > 2_000 / 64,
        "merges were deferred: {before} segments"
    );
    let centres = vec![model.entries[0].1.clone()];
    check_radii(&index, &model, &centres, 2, &[0, 7, 31, 64]);

    let index = std::sync::Arc::new(std::sync::RwLock::new(index));
    let worker = {
        let index = std::sync::Arc::clone(&index);
        std::thread::spawn(move || loop {
            let Some(job) = index.write().unwrap().take_merge_job() else {
                break;
            };
            let built = job.run();
            assert!(index.write().unwrap().install_merge(built));
        })
    };
    worker.join().unwrap();
    let index = std::sync::Arc::into_inner(index)
        .unwrap()
        .into_inner()
        .unwrap();
    assert_converged(&index);
    assert!(index.segments().len() <= 6, "{:?}", index.segments());
    assert!(index.merge_stats().largest_inline_merge <= 64);
    assert!(index.merge_stats().jobs_installed > 0);
    check_radii(&index, &model, &centres, 3, &[0, 7, 31, 64]);
}

/// Removals while a job runs are respected after it is installed (liveness
/// lives in the store, not in the segment), and a compaction makes the job
/// in flight stale.
#[test]
fn removals_during_a_job_count_and_compaction_rejects_it() {
    let mut rng = StdRng::seed_from_u64(12);
    let mut index = HammingIndex::with_options(256, background(16, 4)).unwrap();
    let hashes = random_hashes(&mut rng, 200);
    for (id, h) in hashes.iter().enumerate() {
        index.insert(id as u64, h).unwrap();
    }
    let job = index.take_merge_job().expect("a deferred merge");
    assert!(index.take_merge_job().is_none());
    for id in (0..200).step_by(3) {
        assert!(index.remove(id));
    }
    assert!(index.install_merge(job.run()));
    for (id, h) in hashes.iter().enumerate() {
        let found = index.range_search(h, 0).unwrap();
        assert_eq!(found.contains(&(id as u64, 0)), id % 3 != 0, "id {id}");
    }

    let job = index.take_merge_job().expect("the next merge");
    let built = job.run();
    index.compact();
    assert!(!index.install_merge(built));
    assert_eq!(index.merge_stats().jobs_rejected, 1);
    assert!(index.take_merge_job().is_none(), "compaction left no merge");
}

/// A merge built for one index is never installed into another, even one
/// with the same content and the same merge in flight.
#[test]
fn merge_from_another_index_is_rejected() {
    let mut rng = StdRng::seed_from_u64(13);
    let hashes = random_hashes(&mut rng, 100);
    let mut a = HammingIndex::with_options(256, background(16, 4)).unwrap();
    let mut b = HammingIndex::with_options(256, background(16, 4)).unwrap();
    for (id, h) in hashes.iter().enumerate() {
        a.insert(id as u64, h).unwrap();
        b.insert(id as u64, h).unwrap();
    }
    let from_a = a.take_merge_job().expect("a deferred merge");
    let from_b = b.take_merge_job().expect("a deferred merge");
    assert!(!b.install_merge(from_a.run()));
    assert!(b.install_merge(from_b.run()));
}
