//! Property: the active set a node ends with depends only on each origin's log, not on the
//! order in which batches of different origins arrive, nor on whether it was built live or
//! replayed from sled at start-up. (Each origin's log is itself totally ordered.)

use proptest::prelude::*;
use redline_proto::entry;
use redline_proto::merkle::leaf_hash;
use redline_proto::pb::AddEntry;
use redline_server::catalog::Catalog;
use redline_server::log::{prepare_append, replay, LogState, Validation};
use redline_server::store::{Store, StoredCheckpoint};

/// Builds one origin's log: ADDs of hashes from a small pool (so duplicates occur) and
/// RETRACTs of earlier, still-active ADDs.
fn build_log(ops: &[(bool, u8)]) -> Vec<Vec<u8>> {
    let mut leaves: Vec<Vec<u8>> = Vec::new();
    let mut active: Vec<usize> = Vec::new();
    for (i, &(retract, pick)) in ops.iter().enumerate() {
        if retract && !active.is_empty() {
            let target = active.remove(pick as usize % active.len());
            leaves.push(
                entry::encode_retract(target as u64, &leaf_hash(&leaves[target]), "fp", i as u64)
                    .unwrap(),
            );
        } else {
            active.push(leaves.len());
            let mut hash = vec![0u8; 32];
            hash[0] = pick % 8;
            leaves.push(
                entry::encode_add(
                    AddEntry {
                        signal_type: "pdq".into(),
                        hash,
                        quality: 90,
                        labels: vec!["ncii".into()],
                        ..Default::default()
                    },
                    i as u64,
                )
                .unwrap(),
            );
        }
    }
    leaves
}

/// Applies `batches` (origin, leaves) in order to a fresh store and catalog.
fn apply(
    dir: &std::path::Path,
    batches: &[(u32, Vec<Vec<u8>>)],
) -> (Store, Catalog, Vec<LogState>) {
    let store = Store::open(dir).unwrap();
    let catalog = Catalog::new();
    let mut states: Vec<LogState> = (0..2)
        .map(|id| LogState {
            id,
            name: format!("origin-{id}"),
            registered: false,
            checkpoint: None,
        })
        .collect();
    for id in 0..2 {
        catalog.set_origin(id, &format!("origin-{id}"), true);
    }
    for (origin, leaves) in batches {
        let state = &mut states[*origin as usize];
        let prepared = prepare_append(
            &store,
            &catalog,
            state,
            leaves.clone(),
            Validation::Replicated,
        )
        .unwrap();
        let mut commit = prepared.commit;
        commit.checkpoint = StoredCheckpoint {
            size: prepared.size,
            root: prepared.root,
            note: b"test".to_vec(),
            proof: None,
        };
        state.checkpoint = Some(commit.checkpoint.clone());
        store.commit_blocking(commit).unwrap();
        state.registered = true;
        catalog.apply(*origin, &prepared.plan.activate, &prepared.plan.deactivate);
    }
    (store, catalog, states)
}

fn active_set(catalog: &Catalog, states: &[LogState]) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    for s in states {
        for i in 0..s.size() {
            if catalog.is_active(s.id, i) {
                out.push((s.id, i));
            }
        }
    }
    out
}

/// Splits a log into consecutive batches at the given cut points.
fn batches(origin: u32, leaves: &[Vec<u8>], cuts: &[usize]) -> Vec<(u32, Vec<Vec<u8>>)> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (leaves.len() + 1)).collect();
    points.extend([0, leaves.len()]);
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| (origin, leaves[w[0]..w[1]].to_vec()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn active_set_is_independent_of_sync_order_and_of_replay(
        ops_a in proptest::collection::vec((any::<bool>(), any::<u8>()), 1..60),
        ops_b in proptest::collection::vec((any::<bool>(), any::<u8>()), 1..60),
        cuts_a in proptest::collection::vec(any::<usize>(), 0..5),
        cuts_b in proptest::collection::vec(any::<usize>(), 0..5),
        interleave in proptest::collection::vec(any::<bool>(), 0..20),
    ) {
        let (la, lb) = (build_log(&ops_a), build_log(&ops_b));
        // Order 1: all of A, then all of B, each in one batch.
        let one = vec![(0, la.clone()), (1, lb.clone())];
        // Order 2: both logs cut into batches and interleaved at random.
        let (mut ba, mut bb) = (batches(0, &la, &cuts_a), batches(1, &lb, &cuts_b));
        ba.reverse();
        bb.reverse();
        let mut two = Vec::new();
        let mut flips = interleave.into_iter();
        while !ba.is_empty() || !bb.is_empty() {
            let take_a = bb.is_empty() || (!ba.is_empty() && flips.next().unwrap_or(true));
            two.push(if take_a { ba.pop().unwrap() } else { bb.pop().unwrap() });
        }
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (_s1, c1, st1) = apply(d1.path(), &one);
        let (s2, c2, st2) = apply(d2.path(), &two);
        let expected = active_set(&c1, &st1);
        prop_assert_eq!(&expected, &active_set(&c2, &st2));
        // Rebuilt from sled, as at start-up.
        let fresh = Catalog::new();
        for s in &st2 {
            replay(&s2, &fresh, s, 0).unwrap();
        }
        prop_assert_eq!(&expected, &active_set(&fresh, &st2));
        // Roots agree too: the same leaves in the same per-origin order.
        for (x, y) in st1.iter().zip(&st2) {
            prop_assert_eq!(x.root(), y.root());
        }
    }
}
