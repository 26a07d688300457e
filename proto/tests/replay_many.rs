//! The replay over logs with many retractions, table-driven: each case is a whole log (tens of
//! thousands of leaves, most of them RETRACTs), replayed from leaf 0 and split into a committed
//! part (read through a [`Prior`], as the node reads its store) and a run at several points. At
//! every split the verdicts and the final active set must equal those of a naive reference
//! that applies the rules leaf by leaf with no bookkeeping of its own, and of the replay from 0.
//! This pins what linear planning must keep: the same effects however a follower's batches
//! happen to cut the log.

use redline_proto::entry::{encode_add, encode_retract};
use redline_proto::merkle::{leaf_hash, Hash};
use redline_proto::pb::AddEntry;
use redline_proto::replay::{Effect, LeafState, Prior, PriorLeaf, Replay};
use std::collections::BTreeSet;

fn add(n: u64) -> Vec<u8> {
    let mut hash = vec![0u8; 32];
    hash[..8].copy_from_slice(&n.to_be_bytes());
    encode_add(
        AddEntry {
            signal_type: "pdq".into(),
            hash,
            quality: 90,
            labels: vec!["ncii".into()],
            legal_basis: "consent withdrawn".into(),
            case_ref: String::new(),
        },
        1,
    )
    .unwrap()
}

fn retract(target: u64, hash: &Hash) -> Vec<u8> {
    encode_retract(target, hash, "false positive", 2).unwrap()
}

/// What a leaf does, in short: `Some(Ok(target))` retracts `target`, `Some(Err(()))` is
/// invalid, `None` activates.
type Verdict = Option<Result<u64, ()>>;

/// The rules applied by hand: a RETRACT at `i` is valid iff its target is earlier, exists, has
/// the named leaf hash, was a valid ADD and is still active.
fn reference(log: &[Vec<u8>]) -> (Vec<Verdict>, BTreeSet<u64>) {
    use redline_proto::entry::{decode_leaf, Decoded};
    let mut active = BTreeSet::new();
    let mut was_add = BTreeSet::new();
    let mut verdicts = Vec::new();
    for (i, leaf) in log.iter().enumerate() {
        let i = i as u64;
        let v = match decode_leaf(leaf) {
            Err(_) => Some(Err(())),
            Ok((_, Decoded::Add { .. })) => {
                active.insert(i);
                was_add.insert(i);
                None
            }
            Ok((_, Decoded::Retract(r))) => {
                let t = r.target_index;
                let ok = t < i
                    && was_add.contains(&t)
                    && leaf_hash(&log[t as usize]).0.as_slice() == r.target_leaf_hash.as_slice()
                    && active.contains(&t);
                if ok {
                    active.remove(&t);
                    Some(Ok(t))
                } else {
                    Some(Err(()))
                }
            }
        };
        verdicts.push(v);
    }
    (verdicts, active)
}

/// The first leaves of a log as the node's store holds them: leaf hashes and each ADD's state.
struct Held(Vec<PriorLeaf>);

impl Prior for Held {
    type Error = std::convert::Infallible;
    fn leaf(&self, index: u64) -> Result<Option<PriorLeaf>, Self::Error> {
        Ok(self.0.get(index as usize).copied())
    }
}

/// Replays `log[first..]` over a prior holding `log[..first]` (itself replayed from 0), and
/// returns the verdict of every leaf and the active set at the end.
fn replay_split(log: &[Vec<u8>], first: usize) -> (Vec<Verdict>, BTreeSet<u64>) {
    let mut verdicts = Vec::new();
    let mut held: Vec<PriorLeaf> = Vec::new();
    let mut r = Replay::from_start();
    for (i, leaf) in log[..first].iter().enumerate() {
        let v = r.push(i as u64, leaf).unwrap();
        let state = match v.effect {
            Effect::Activate { .. } => {
                verdicts.push(None);
                LeafState::ActiveAdd
            }
            Effect::Deactivate { target, .. } => {
                held[target as usize].state = LeafState::RetractedAdd;
                verdicts.push(Some(Ok(target)));
                LeafState::NotAnAdd
            }
            Effect::Invalid(_) => {
                verdicts.push(Some(Err(())));
                LeafState::NotAnAdd
            }
        };
        held.push(PriorLeaf {
            leaf_hash: v.leaf_hash,
            state,
        });
    }
    let mut active: BTreeSet<u64> = held
        .iter()
        .enumerate()
        .filter(|(_, p)| p.state == LeafState::ActiveAdd)
        .map(|(i, _)| i as u64)
        .collect();
    let mut run = Replay::new(Held(held), first as u64);
    run.reserve(log.len() - first);
    for (i, leaf) in log.iter().enumerate().skip(first) {
        match run.push(i as u64, leaf).unwrap().effect {
            Effect::Activate { .. } => {
                active.insert(i as u64);
                verdicts.push(None);
            }
            Effect::Deactivate { target, in_run, .. } => {
                assert_eq!(in_run, target >= first as u64, "leaf {i}");
                assert!(
                    active.remove(&target),
                    "leaf {i} retracted an inactive {target}"
                );
                verdicts.push(Some(Ok(target)));
            }
            Effect::Invalid(_) => verdicts.push(Some(Err(()))),
        }
    }
    let tally = run.tally();
    let in_run = active.iter().filter(|&&i| i >= first as u64).count() as u64;
    assert_eq!(tally.active_in_run, in_run, "split at {first}");
    (verdicts, active)
}

/// A tiny deterministic generator (the crate has no `rand` dependency).
struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn many_retractions_have_the_same_effects_at_every_split() {
    const N: u64 = 12_000;
    let adds: Vec<Vec<u8>> = (0..N).map(add).collect();
    let hash_of = |log: &[Vec<u8>], i: u64| leaf_hash(&log[i as usize]);
    type Case = (&'static str, Vec<Vec<u8>>);
    let mut cases: Vec<Case> = Vec::new();

    // Every ADD, then a RETRACT of each, in order.
    let mut log = adds.clone();
    for i in 0..N {
        log.push(retract(i, &leaf_hash(&adds[i as usize])));
    }
    cases.push(("all adds then all their retractions", log));

    // The same retractions in reverse order.
    let mut log = adds.clone();
    for i in (0..N).rev() {
        log.push(retract(i, &leaf_hash(&adds[i as usize])));
    }
    cases.push(("retractions in reverse order", log));

    // Each ADD retracted right after it.
    let mut log = Vec::new();
    for i in 0..N {
        let at = log.len() as u64;
        log.push(adds[i as usize].clone());
        log.push(retract(at, &leaf_hash(&adds[i as usize])));
    }
    cases.push(("each add retracted at once", log));

    // Every ADD retracted twice (the second is invalid), the second round interleaved.
    let mut log = adds.clone();
    for i in 0..N {
        log.push(retract(i, &leaf_hash(&adds[i as usize])));
    }
    for i in 0..N {
        log.push(retract(i, &leaf_hash(&adds[i as usize])));
        log.push(add(N + i));
    }
    cases.push(("double retractions", log));

    // Retractions of retractions, of themselves, of later leaves, with wrong hashes.
    let mut log = adds[..N as usize / 2].to_vec();
    for i in 0..N / 2 {
        let at = log.len() as u64;
        let hash = hash_of(&log, i);
        match i % 5 {
            0 => log.push(retract(i, &hash)),
            1 => log.push(retract(at - 1, &hash_of(&log, at - 1))),
            2 => log.push(retract(at, &Hash([1; 32]))),
            3 => log.push(retract(at + 7, &hash)),
            _ => log.push(retract(i, &Hash([2; 32]))),
        }
    }
    cases.push(("invalid retractions of every kind", log));

    // Random targets across the whole log so far, some with a wrong hash, mixed with ADDs.
    let mut rng = Xorshift(0x2545_F491_4F6C_DD1D);
    let mut log: Vec<Vec<u8>> = Vec::new();
    for i in 0..3 * N {
        let len = log.len() as u64;
        if len == 0 || rng.below(3) == 0 {
            log.push(add(2 * N + i));
        } else {
            let t = rng.below(len);
            let hash = if rng.below(10) == 0 {
                Hash([3; 32])
            } else {
                hash_of(&log, t)
            };
            log.push(retract(t, &hash));
        }
    }
    cases.push(("random targets", log));

    for (name, log) in cases {
        let (want, want_active) = reference(&log);
        let retracted = want.iter().filter(|v| matches!(v, Some(Ok(_)))).count();
        assert!(
            retracted > 1000,
            "{name}: only {retracted} valid retractions"
        );
        let n = log.len();
        for first in [0, 1, n / 3, n / 2, n - 1, n] {
            let (got, active) = replay_split(&log, first);
            assert_eq!(got.len(), want.len(), "{name}, split at {first}");
            if let Some(i) = (0..n).find(|&i| got[i] != want[i]) {
                panic!(
                    "{name}, split at {first}: leaf {i} gives {:?}, the rules say {:?}",
                    got[i], want[i]
                );
            }
            assert_eq!(active, want_active, "{name}, split at {first}");
        }
    }
}
