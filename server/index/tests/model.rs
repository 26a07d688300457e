//! Model-based tests: the index must return exactly what a brute-force scan
//! over a plain list returns, for every radius, after any interleaving of
//! inserts (including duplicate hashes), removals and compactions.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redline_index::{hamming_distance, HammingIndex, IndexError, IndexOptions, Strategy as Search};

/// Brute-force reference: every live `(id, hash)`.
#[derive(Default)]
struct Model {
    entries: Vec<(u64, Vec<u8>)>,
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
    Remove(usize),
    RemoveUnknown,
    Compact,
    Check { seed: u64 },
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
        12 => insert.prop_map(Op::Insert),
        4 => any::<usize>().prop_map(Op::Remove),
        1 => Just(Op::RemoveUnknown),
        1 => Just(Op::Compact),
        1 => any::<u64>().prop_map(|seed| Op::Check { seed }),
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
    assert_eq!(index.len(), model.entries.len());
}

fn run(bits: u32, options: IndexOptions, centre_seed: u64, ops: &[Op]) {
    let bytes = (bits / 8) as usize;
    let mut rng = StdRng::seed_from_u64(centre_seed);
    let centres: Vec<Vec<u8>> = (0..6)
        .map(|_| (0..bytes).map(|_| rng.gen()).collect())
        .collect();
    let mut index = HammingIndex::with_options(bits, options).unwrap();
    let mut model = Model::default();
    let mut next_id = 0u64;
    for op in ops {
        match op {
            Op::Insert(spec) => {
                let hash = match spec {
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
                // Ids are sparse and out of order, like a caller's handles.
                let id = next_id.wrapping_mul(0x9E37_79B9) % 1_000_003;
                next_id += 1;
                index.insert(id, &hash).unwrap();
                model.entries.push((id, hash));
            }
            Op::Remove(i) if !model.entries.is_empty() => {
                let (id, _) = model.entries.swap_remove(i % model.entries.len());
                assert!(index.remove(id));
                assert!(!index.remove(id));
            }
            Op::Remove(_) | Op::RemoveUnknown => assert!(!index.remove(u64::MAX)),
            Op::Compact => index.compact(),
            Op::Check { seed } => check(&index, &model, &centres, *seed),
        }
    }
    check(&index, &model, &centres, 0);
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
    )
        .prop_map(|(strategy, tables, buffer_capacity)| IndexOptions {
            strategy,
            tables,
            buffer_capacity,
            tuning_radius: None,
        })
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
        let ops: Vec<Op> = ops.into_iter().map(|op| match op {
            Op::Insert(HashSpec::Random(h)) => Op::Insert(HashSpec::Random(fit(&h))),
            Op::Insert(HashSpec::Near { centre, flips }) => Op::Insert(HashSpec::Near {
                centre,
                flips: flips.into_iter().map(|b| b % bits16).collect(),
            }),
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
