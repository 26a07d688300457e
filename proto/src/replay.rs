//! The log replay: the one place that decides what each leaf of an origin's log does.
//!
//! Every party that reads a log — the node for its own submissions, for replicated batches and
//! at start-up; `redline audit`, live and offline; `redline export`; the crash oracle — feeds
//! its leaves through a [`Replay`], so they cannot disagree about what a log holds.
//!
//! The rules, for leaf `i` of a log:
//! - it must decode as a valid entry of a known format version ([`entry::decode`]);
//! - an ADD becomes active;
//! - a RETRACT must name an earlier leaf `t < i` of the same log by index *and* leaf hash, that
//!   leaf must be an ADD, and it must still be active (no double retraction); the ADD then
//!   stops being active.
//!
//! A leaf that breaks a rule is **invalid**. What that means depends on who signed it, so the
//! caller decides: the node refuses its own batch with an invalid leaf ([`Effect::Invalid`] is
//! an error there), but an origin's *signed* log is what it is — every holder keeps the invalid
//! leaf byte for byte (the root covers it) and it changes nothing: an invalid ADD is never
//! active, an invalid RETRACT retracts nothing. Node, auditor and export all apply that rule,
//! and each reports the invalid leaves by index.
//!
//! A replay is pure: it reads what it needs of leaves before its run from a [`Prior`] (the
//! node's store, or nothing for a replay from leaf 0) and keeps 33 bytes per leaf of its own
//! run (leaf hash and state), which later leaves of the run may retract. The tree itself is the
//! caller's: the leaf hashes come back from [`Replay::finish`] (or one by one from
//! [`Replay::push`]) for [`crate::merkle`].

use crate::entry::{self, Decoded, EntryError};
use crate::merkle::{leaf_hash, Hash};
use crate::pb::{AddEntry, RetractEntry};
use crate::signal::SignalType;
use std::collections::HashSet;
use thiserror::Error;

/// What the log holds at an earlier index, as far as the retraction rule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafState {
    /// A valid ADD that no valid RETRACT has withdrawn yet.
    ActiveAdd,
    /// A valid ADD already withdrawn by an earlier valid RETRACT.
    RetractedAdd,
    /// A RETRACT, or an invalid leaf: nothing a RETRACT can name.
    NotAnAdd,
}

/// An earlier leaf, as a [`Prior`] reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriorLeaf {
    /// RFC 9162 leaf hash of its bytes.
    pub leaf_hash: Hash,
    /// What it is now.
    pub state: LeafState,
}

impl PriorLeaf {
    /// A stored leaf's bytes as a prior: its state is what [`entry::decode`] makes of them,
    /// an ADD being active unless the holder's active set (`active`) says it was retracted.
    pub fn of_stored(data: &[u8], active: bool) -> Self {
        let state = match entry::decode(data) {
            Ok(Decoded::Add { .. }) if active => LeafState::ActiveAdd,
            Ok(Decoded::Add { .. }) => LeafState::RetractedAdd,
            _ => LeafState::NotAnAdd,
        };
        PriorLeaf {
            leaf_hash: leaf_hash(data),
            state,
        }
    }
}

/// Read access to the leaves of the log before a replay's run (the verified base).
pub trait Prior {
    /// Why a read failed (a disk error is not an invalid leaf: the replay stops with it).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Leaf `index` (below the run's first index), or `None` if the holder lacks it.
    fn leaf(&self, index: u64) -> Result<Option<PriorLeaf>, Self::Error>;
}

/// No earlier leaves: a replay from index 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct Empty;

/// Reading from [`Empty`] never fails.
#[derive(Debug, Error)]
#[error("unreachable")]
pub enum Never {}

impl Prior for Empty {
    type Error = Never;
    fn leaf(&self, _: u64) -> Result<Option<PriorLeaf>, Never> {
        Ok(None)
    }
}

/// Why one leaf is invalid.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum LeafError {
    /// It does not decode as a valid entry.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// It is a RETRACT whose target is not an earlier ADD of this log with that leaf hash.
    #[error(transparent)]
    Retraction(#[from] RetractionError),
    /// It retracts an ADD that is no longer active.
    #[error("retraction of index {0}, which is already retracted")]
    AlreadyRetracted(u64),
}

/// A RETRACT that does not name an earlier ADD of its own log.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RetractionError {
    #[error("retraction at {at} targets index {target}, which is not earlier")]
    NotEarlier { target: u64, at: u64 },
    #[error("retraction targets index {0}, which does not exist")]
    Missing(u64),
    #[error("retraction of index {0} names a different leaf hash")]
    HashMismatch(u64),
    #[error("retraction targets index {0}, which is not an ADD")]
    NotAnAdd(u64),
}

/// Leaf `index` is invalid, and why.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("leaf {index}: {reason}")]
pub struct InvalidLeaf {
    /// Its log index.
    pub index: u64,
    /// What rule it breaks.
    pub reason: LeafError,
}

/// The replay cannot go on (the input is not a log, or the prior could not be read).
#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("expected leaf {expected}, got leaf {got}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("reading leaf {index} before the run: {source}")]
    Prior {
        index: u64,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What one leaf does to the active set.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// The ADD at this index becomes active.
    Activate {
        /// Parsed signal type of `add`.
        signal_type: SignalType,
        /// The entry as the origin wrote it.
        add: AddEntry,
        /// The leaf's `created_at_ms`.
        created_at_ms: u64,
    },
    /// The ADD at `target` stops being active. `in_run` says the ADD is a leaf of this replay's
    /// own run (so a caller collecting activations drops it rather than deactivating it).
    Deactivate {
        /// Index of the withdrawn ADD.
        target: u64,
        /// Whether `target` is at or after the run's first index.
        in_run: bool,
        /// The RETRACT as the origin wrote it.
        retract: RetractEntry,
        /// The RETRACT leaf's `created_at_ms`.
        created_at_ms: u64,
    },
    /// The leaf is invalid: kept in the log, changes nothing.
    Invalid(InvalidLeaf),
}

/// One leaf's verdict: its leaf hash (for the tree) and its effect.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    /// The leaf's index.
    pub index: u64,
    /// RFC 9162 leaf hash of its bytes.
    pub leaf_hash: Hash,
    /// What it does.
    pub effect: Effect,
}

/// Counts over a finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Valid ADDs.
    pub adds: u64,
    /// Valid RETRACTs.
    pub retracts: u64,
    /// Invalid leaves.
    pub invalid: u64,
    /// ADDs of the run still active at its end.
    pub active_in_run: u64,
    /// ADDs before the run that the run retracted.
    pub deactivated_before: u64,
}

/// A replay of leaves `first..` of one log over a [`Prior`] holding leaves `..first`.
#[derive(Debug)]
pub struct Replay<P> {
    prior: P,
    first: u64,
    /// Leaf hash of each leaf of the run, by offset.
    hashes: Vec<Hash>,
    /// State of each leaf of the run, by offset.
    states: Vec<LeafState>,
    /// Earlier leaves this run retracted (their prior state is stale).
    retracted_before: HashSet<u64>,
    tally: Tally,
}

impl Replay<Empty> {
    /// A replay of a whole log from leaf 0.
    pub fn from_start() -> Self {
        Replay::new(Empty, 0)
    }
}

impl<P: Prior> Replay<P> {
    /// A replay of leaves `first..`, with `prior` answering for leaves before `first`.
    pub fn new(prior: P, first: u64) -> Self {
        Self {
            prior,
            first,
            hashes: Vec::new(),
            states: Vec::new(),
            retracted_before: HashSet::new(),
            tally: Tally::default(),
        }
    }

    /// Reserves room for `n` more leaves.
    pub fn reserve(&mut self, n: usize) {
        self.hashes.reserve(n);
        self.states.reserve(n);
    }

    /// The index the next leaf must have.
    pub fn next_index(&self) -> u64 {
        self.first + self.hashes.len() as u64
    }

    /// Counts so far.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Leaf hashes of the run so far, in order.
    pub fn leaf_hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Replays leaf `index` (which must be [`Replay::next_index`]).
    pub fn push(&mut self, index: u64, data: &[u8]) -> Result<Replayed, ReplayError> {
        self.push_decoded(index, leaf_hash(data), entry::decode_leaf(data))
    }

    /// [`Replay::push`] for a leaf already decoded and hashed (a large batch decodes and
    /// hashes its leaves on every core first): `decoded` must be `entry::decode_leaf(data)` and
    /// `leaf_hash` `merkle::leaf_hash(data)` of the same bytes.
    pub fn push_decoded(
        &mut self,
        index: u64,
        leaf_hash: Hash,
        decoded: Result<(u64, Decoded), EntryError>,
    ) -> Result<Replayed, ReplayError> {
        let expected = self.next_index();
        if index != expected {
            return Err(ReplayError::OutOfOrder {
                expected,
                got: index,
            });
        }
        let (state, effect) = match decoded {
            Err(e) => (LeafState::NotAnAdd, Err(LeafError::Entry(e))),
            Ok((created_at_ms, Decoded::Add { signal_type, add })) => (
                LeafState::ActiveAdd,
                Ok(Effect::Activate {
                    signal_type,
                    add,
                    created_at_ms,
                }),
            ),
            Ok((created_at_ms, Decoded::Retract(retract))) => {
                let effect = self
                    .retract(index, &retract)?
                    .map(|in_run| Effect::Deactivate {
                        target: retract.target_index,
                        in_run,
                        retract,
                        created_at_ms,
                    });
                (LeafState::NotAnAdd, effect)
            }
        };
        let effect = match effect {
            Ok(effect) => {
                match &effect {
                    Effect::Activate { .. } => self.tally.adds += 1,
                    Effect::Deactivate { .. } => self.tally.retracts += 1,
                    Effect::Invalid(_) => {}
                }
                effect
            }
            Err(reason) => {
                self.tally.invalid += 1;
                Effect::Invalid(InvalidLeaf { index, reason })
            }
        };
        // An invalid ADD is nothing a later RETRACT can name.
        let state = if matches!(effect, Effect::Invalid(_)) {
            LeafState::NotAnAdd
        } else {
            state
        };
        if state == LeafState::ActiveAdd {
            self.tally.active_in_run += 1;
        }
        self.hashes.push(leaf_hash);
        self.states.push(state);
        Ok(Replayed {
            index,
            leaf_hash,
            effect,
        })
    }

    /// Applies the retraction rule to a RETRACT at `index`; on success marks its target
    /// retracted and says whether the target is in this run.
    fn retract(
        &mut self,
        index: u64,
        r: &RetractEntry,
    ) -> Result<Result<bool, LeafError>, ReplayError> {
        let target = r.target_index;
        if target >= index {
            return Ok(Err(RetractionError::NotEarlier { target, at: index }.into()));
        }
        let (leaf_hash, state) = if target >= self.first {
            let offset = (target - self.first) as usize;
            (self.hashes[offset], self.states[offset])
        } else {
            let prior = self.prior.leaf(target).map_err(|e| ReplayError::Prior {
                index: target,
                source: Box::new(e),
            })?;
            let Some(prior) = prior else {
                return Ok(Err(RetractionError::Missing(target).into()));
            };
            let state = if self.retracted_before.contains(&target) {
                LeafState::RetractedAdd
            } else {
                prior.state
            };
            (prior.leaf_hash, state)
        };
        if leaf_hash.0.as_slice() != r.target_leaf_hash.as_slice() {
            return Ok(Err(RetractionError::HashMismatch(target).into()));
        }
        Ok(match state {
            LeafState::NotAnAdd => Err(RetractionError::NotAnAdd(target).into()),
            LeafState::RetractedAdd => Err(LeafError::AlreadyRetracted(target)),
            LeafState::ActiveAdd if target >= self.first => {
                self.states[(target - self.first) as usize] = LeafState::RetractedAdd;
                self.tally.active_in_run -= 1;
                Ok(true)
            }
            LeafState::ActiveAdd => {
                self.retracted_before.insert(target);
                self.tally.deactivated_before += 1;
                Ok(false)
            }
        })
    }

    /// Ends the run: its leaf hashes in order, and the counts.
    pub fn finish(self) -> (Vec<Hash>, Tally) {
        (self.hashes, self.tally)
    }
}

#[cfg(test)]
mod tests {
    //! Every verdict and every error of the replay, table-driven: each case is a log (leaves
    //! built by small helpers), the run's first index, and what each leaf must do.
    use super::*;
    use crate::entry::{encode_add, encode_retract};

    fn add(n: u8) -> Vec<u8> {
        encode_add(
            AddEntry {
                signal_type: "pdq".into(),
                hash: vec![n; 32],
                quality: 90,
                labels: vec!["ncii".into()],
                legal_basis: "consent withdrawn".into(),
                case_ref: String::new(),
            },
            1,
        )
        .unwrap()
    }

    fn retract(target: u64, target_leaf: &[u8]) -> Vec<u8> {
        encode_retract(target, &leaf_hash(target_leaf), "false positive", 2).unwrap()
    }

    fn retract_hash(target: u64, hash: Hash) -> Vec<u8> {
        encode_retract(target, &hash, "false positive", 2).unwrap()
    }

    /// A prior holding the first leaves of a log as the node's store would: leaf hashes, and
    /// each ADD's state from a replay of those leaves.
    struct Held(Vec<PriorLeaf>);

    impl Held {
        fn of(leaves: &[Vec<u8>]) -> Self {
            let mut r = Replay::from_start();
            let mut out: Vec<PriorLeaf> = Vec::new();
            for (i, l) in leaves.iter().enumerate() {
                let v = r.push(i as u64, l).unwrap();
                let state = match v.effect {
                    Effect::Activate { .. } => LeafState::ActiveAdd,
                    Effect::Deactivate { target, .. } => {
                        out[target as usize].state = LeafState::RetractedAdd;
                        LeafState::NotAnAdd
                    }
                    Effect::Invalid(_) => LeafState::NotAnAdd,
                };
                out.push(PriorLeaf {
                    leaf_hash: v.leaf_hash,
                    state,
                });
            }
            Held(out)
        }
    }

    #[derive(Debug, Error)]
    #[error("disk on fire")]
    struct Disk;

    impl Prior for Held {
        type Error = Disk;
        fn leaf(&self, index: u64) -> Result<Option<PriorLeaf>, Disk> {
            Ok(self.0.get(index as usize).copied())
        }
    }

    /// What a leaf must do, in short.
    #[derive(Debug, PartialEq)]
    enum Want {
        Active,
        Retracts(u64, bool),
        Bad(LeafError),
    }

    fn outcome(effect: &Effect) -> Want {
        match effect {
            Effect::Activate { .. } => Want::Active,
            Effect::Deactivate { target, in_run, .. } => Want::Retracts(*target, *in_run),
            Effect::Invalid(i) => Want::Bad(i.reason.clone()),
        }
    }

    #[test]
    fn every_rule_gives_its_verdict() {
        let (a0, a1) = (add(1), add(2));
        let r1 = retract(0, &a0);
        let bad_entry = EntryError::Quality(101);
        let mut bad_add = AddEntry {
            signal_type: "pdq".into(),
            hash: vec![3; 32],
            quality: 101,
            ..Default::default()
        };
        let invalid = {
            use prost::Message;
            crate::pb::EntryBody {
                format_version: 1,
                created_at_ms: 0,
                kind: Some(crate::pb::entry_body::Kind::Add(bad_add.clone())),
            }
            .encode_to_vec()
        };
        bad_add.quality = 0;
        use Want::*;
        /// (name, whole log, first index of the run, wanted outcome of each leaf of the run)
        type Case = (&'static str, Vec<Vec<u8>>, u64, Vec<Want>);
        let cases: Vec<Case> = vec![
            (
                "adds activate",
                vec![a0.clone(), a1.clone()],
                0,
                vec![Active, Active],
            ),
            (
                "retraction inside the run",
                vec![a0.clone(), a1.clone(), r1.clone()],
                0,
                vec![Active, Active, Retracts(0, true)],
            ),
            (
                "retraction of an add before the run",
                vec![a0.clone(), a1.clone(), r1.clone()],
                2,
                vec![Retracts(0, false)],
            ),
            (
                "second retraction inside the run",
                vec![a0.clone(), r1.clone(), r1.clone()],
                0,
                vec![
                    Active,
                    Retracts(0, true),
                    Bad(LeafError::AlreadyRetracted(0)),
                ],
            ),
            (
                "second retraction across runs",
                vec![a0.clone(), r1.clone(), r1.clone()],
                2,
                vec![Bad(LeafError::AlreadyRetracted(0))],
            ),
            (
                "second retraction of a prior add within one run",
                vec![a0.clone(), a1.clone(), r1.clone(), r1.clone()],
                2,
                vec![Retracts(0, false), Bad(LeafError::AlreadyRetracted(0))],
            ),
            (
                "retraction of a retraction",
                vec![a0.clone(), r1.clone(), retract(1, &r1)],
                0,
                vec![
                    Active,
                    Retracts(0, true),
                    Bad(RetractionError::NotAnAdd(1).into()),
                ],
            ),
            (
                "retraction of an invalid add",
                vec![invalid.clone(), retract(0, &invalid)],
                0,
                vec![
                    Bad(bad_entry.clone().into()),
                    Bad(RetractionError::NotAnAdd(0).into()),
                ],
            ),
            (
                "retraction of an invalid add before the run",
                vec![invalid.clone(), retract(0, &invalid)],
                1,
                vec![Bad(RetractionError::NotAnAdd(0).into())],
            ),
            (
                "retraction naming another leaf hash",
                vec![a0.clone(), a1.clone(), retract(0, &a1)],
                0,
                vec![Active, Active, Bad(RetractionError::HashMismatch(0).into())],
            ),
            (
                "retraction naming another leaf hash before the run",
                vec![a0.clone(), retract_hash(0, Hash([9; 32]))],
                1,
                vec![Bad(RetractionError::HashMismatch(0).into())],
            ),
            (
                "retraction of itself",
                vec![a0.clone(), retract_hash(1, Hash([9; 32]))],
                0,
                vec![
                    Active,
                    Bad(RetractionError::NotEarlier { target: 1, at: 1 }.into()),
                ],
            ),
            (
                "retraction of a later leaf",
                vec![retract(5, &a0), a0.clone()],
                0,
                vec![
                    Bad(RetractionError::NotEarlier { target: 5, at: 0 }.into()),
                    Active,
                ],
            ),
            (
                "retraction of a leaf the holder lacks",
                vec![a0.clone(), a1.clone(), retract(1, &a1)],
                // Only leaf 0 is held below: see `Held` being built from `log[..1]` below.
                2,
                vec![Bad(RetractionError::Missing(1).into())],
            ),
            (
                "garbage leaf",
                vec![vec![0xff, 0xff, 0xff], a0.clone()],
                0,
                vec![
                    Bad(EntryError::Decode(
                        "failed to decode Protobuf message: invalid varint".into(),
                    )
                    .into()),
                    Active,
                ],
            ),
        ];
        for (name, log, first, want) in cases {
            let held = if name == "retraction of a leaf the holder lacks" {
                Held::of(&log[..1])
            } else {
                Held::of(&log[..first as usize])
            };
            let mut r = Replay::new(held, first);
            let got: Vec<Want> = log[first as usize..]
                .iter()
                .enumerate()
                .map(|(i, l)| outcome(&r.push(first + i as u64, l).unwrap().effect))
                .collect();
            // Decode messages come from prost: compare garbage by kind only.
            let got: Vec<Want> = got
                .into_iter()
                .map(|w| match w {
                    Bad(LeafError::Entry(EntryError::Decode(_))) => Bad(EntryError::Decode(
                        "failed to decode Protobuf message: invalid varint".into(),
                    )
                    .into()),
                    w => w,
                })
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn tally_and_hashes_follow_the_leaves() {
        let (a0, a1) = (add(1), add(2));
        let log = [
            a0.clone(),
            a1.clone(),
            retract(0, &a0),
            retract(0, &a0),
            vec![0xff],
        ];
        let mut r = Replay::from_start();
        for (i, l) in log.iter().enumerate() {
            r.push(i as u64, l).unwrap();
        }
        let (hashes, tally) = r.finish();
        assert_eq!(hashes, log.iter().map(|l| leaf_hash(l)).collect::<Vec<_>>());
        assert_eq!(
            tally,
            Tally {
                adds: 2,
                retracts: 1,
                invalid: 2,
                active_in_run: 1,
                deactivated_before: 0,
            }
        );
    }

    #[test]
    fn out_of_order_and_unreadable_prior_stop_the_replay() {
        let a0 = add(1);
        let mut r = Replay::from_start();
        assert!(matches!(
            r.push(1, &a0),
            Err(ReplayError::OutOfOrder {
                expected: 0,
                got: 1
            })
        ));
        struct Broken;
        impl Prior for Broken {
            type Error = Disk;
            fn leaf(&self, _: u64) -> Result<Option<PriorLeaf>, Disk> {
                Err(Disk)
            }
        }
        let mut r = Replay::new(Broken, 1);
        // An ADD needs nothing from the prior; a retraction of a prior leaf does.
        r.push(1, &add(2)).unwrap();
        let err = r.push(2, &retract(0, &a0)).unwrap_err();
        assert!(matches!(err, ReplayError::Prior { index: 0, .. }), "{err}");
        assert_eq!(r.next_index(), 2, "the failed leaf was not taken");
    }
}
