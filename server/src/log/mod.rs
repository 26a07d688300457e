//! Per-origin append-only logs: validating a batch of leaves against what is stored, computing the
//! stored Merkle hashes and root the batch gives, and the active-set changes it implies. Used
//! the same way for the node's own submissions (which it then signs), for replicated batches
//! (whose root must equal the origin's signed root) and for rebuilding the catalog at start-up.

use crate::catalog::{Activation, Catalog};
use crate::store::{Commit, OriginId, Store, StoreError, StoredCheckpoint};
use redline_proto::entry::{self, Decoded, EntryError};
use redline_proto::merkle::{self, leaf_hash, Hash, Overlay, ProofError};
use redline_proto::replay::{Effect, InvalidLeaf, Prior, PriorLeaf, Replay, ReplayError};
use thiserror::Error;

/// A batch could not be appended.
#[derive(Debug, Error)]
pub enum LogError {
    /// A leaf breaks a rule of the log (refuses a strict batch).
    #[error(transparent)]
    Invalid(#[from] InvalidLeaf),
    /// The leaves are not a continuation of the log, or the stored log could not be read.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("tree hashing: {0}")]
    Proof(#[from] ProofError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the node holds of one origin's log.
#[derive(Debug, Clone)]
pub struct LogState {
    /// Store id.
    pub id: OriginId,
    /// Origin name.
    pub name: String,
    /// Whether the origin is registered in the store yet (it is after its first commit).
    pub registered: bool,
    /// Latest committed checkpoint (none before the first).
    pub checkpoint: Option<StoredCheckpoint>,
}

impl LogState {
    /// Committed tree size.
    pub fn size(&self) -> u64 {
        self.checkpoint.as_ref().map_or(0, |c| c.size)
    }

    /// Committed root.
    pub fn root(&self) -> Hash {
        self.checkpoint
            .as_ref()
            .map_or(merkle::EMPTY_HASH, |c| c.root)
    }
}

/// How strictly to treat leaves that are not valid entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// The node's own submissions: any invalid leaf refuses the batch.
    Strict,
    /// Another origin's signed log: its history is what it signed, so invalid leaves are kept in
    /// the log (to stay consistent with everyone else) but change nothing in the active set;
    /// they are reported in [`Plan::invalid`].
    Replicated,
}

/// The active-set changes a run of leaves implies.
#[derive(Debug, Default)]
pub struct Plan {
    /// ADDs that become active (minus those retracted within the same run).
    pub activate: Vec<Activation>,
    /// Earlier ADDs that the run retracts.
    pub deactivate: Vec<u64>,
    /// Invalid leaves accepted under [`Validation::Replicated`].
    pub invalid: Vec<InvalidLeaf>,
}

/// The committed part of a log, as the replay's rules see it: leaf hashes from the stored tree,
/// and whether an ADD is still active from the catalog (which holds every origin's active set).
struct Committed<'a> {
    store: &'a Store,
    catalog: &'a Catalog,
    origin: OriginId,
}

impl Prior for Committed<'_> {
    type Error = StoreError;

    fn leaf(&self, index: u64) -> Result<Option<PriorLeaf>, StoreError> {
        Ok(self
            .store
            .leaf(self.origin, index)?
            .map(|data| PriorLeaf::of_stored(&data, self.catalog.is_active(self.origin, index))))
    }
}

/// Decides what leaves `first..` of `origin` do to the active set. Retraction targets before
/// `first` are read from `store` and must be active in `catalog`.
pub fn plan_leaves(
    store: &Store,
    catalog: &Catalog,
    origin: OriginId,
    first: u64,
    leaves: &[Vec<u8>],
    validation: Validation,
) -> Result<Plan, LogError> {
    let decoded = par_map(leaves, |l| (entry::decode_leaf(l), leaf_hash(l)));
    plan_decoded(store, catalog, origin, first, decoded, validation)
}

/// Batches at least this long are decoded and hashed on every core.
const PARALLEL_MIN: usize = 8192;

/// `f` of every leaf, in order. Decoding and hashing are independent per leaf and are most of
/// the time a large batch takes to verify (a follower catching up on a million entries), so
/// large batches are split into one contiguous run per core.
fn par_map<T: Send>(leaves: &[Vec<u8>], f: impl Fn(&[u8]) -> T + Sync) -> Vec<T> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores == 1 || leaves.len() < PARALLEL_MIN {
        return leaves.iter().map(|l| f(l)).collect();
    }
    let run = leaves.len().div_ceil(cores);
    let f = &f;
    std::thread::scope(|scope| {
        let parts: Vec<_> = leaves
            .chunks(run)
            .map(|part| scope.spawn(move || part.iter().map(|l| f(l)).collect::<Vec<T>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|part| part.join().expect("decoding a leaf does not panic"))
            .collect()
    })
}

/// A leaf as decoded (`entry::decode_leaf`) and hashed on every core before planning.
type DecodedLeaf = (Result<(u64, Decoded), EntryError>, Hash);

/// [`plan_leaves`] with every leaf already decoded and hashed (`decoded[i]` is leaf
/// `first + i`): the rules are the protocol's [`Replay`]; this turns its effects into catalog
/// changes.
fn plan_decoded(
    store: &Store,
    catalog: &Catalog,
    origin: OriginId,
    first: u64,
    decoded: Vec<DecodedLeaf>,
    validation: Validation,
) -> Result<Plan, LogError> {
    let mut plan = Plan::default();
    plan.activate.reserve(decoded.len());
    // Position in `plan.activate` of the ADD at each offset of this run, so a retraction later
    // in the run drops it. Plain vectors indexed by offset: a follower catching up plans a
    // million leaves at once, and a hash map keyed by index was a third of its verification time.
    const NOT_ADD: u32 = u32::MAX;
    let mut add_at: Vec<u32> = Vec::with_capacity(decoded.len());
    let mut dropped: Vec<bool> = Vec::new();
    let mut replay = Replay::new(
        Committed {
            store,
            catalog,
            origin,
        },
        first,
    );
    replay.reserve(decoded.len());
    for (offset, (decoded, hash)) in decoded.into_iter().enumerate() {
        let index = first + offset as u64;
        add_at.push(NOT_ADD);
        match replay.push_decoded(index, hash, decoded)?.effect {
            Effect::Activate {
                signal_type, add, ..
            } => {
                add_at[offset] = plan.activate.len() as u32;
                dropped.push(false);
                plan.activate.push(Activation {
                    index,
                    signal_type,
                    hash: add.hash,
                    quality: add.quality,
                    labels: add.labels,
                    legal_basis: add.legal_basis,
                });
            }
            Effect::Deactivate {
                target,
                in_run: true,
                ..
            } => dropped[add_at[(target - first) as usize] as usize] = true,
            Effect::Deactivate { target, .. } => plan.deactivate.push(target),
            Effect::Invalid(invalid) => {
                if validation == Validation::Strict {
                    return Err(invalid.into());
                }
                plan.invalid.push(invalid);
            }
        }
    }
    if dropped.contains(&true) {
        let mut gone = dropped.into_iter();
        plan.activate.retain(|_| !gone.next().unwrap_or(false));
    }
    Ok(plan)
}

/// A batch ready to commit.
#[derive(Debug)]
pub struct PreparedAppend {
    /// Root of the tree with the batch appended.
    pub root: Hash,
    /// New size.
    pub size: u64,
    /// The commit; its checkpoint is set by the caller.
    pub commit: Commit,
    /// What it does to the active set.
    pub plan: Plan,
}

/// Validates `leaves` as the continuation of `state`'s log and computes the resulting tree.
pub fn prepare_append(
    store: &Store,
    catalog: &Catalog,
    state: &LogState,
    leaves: Vec<Vec<u8>>,
    validation: Validation,
) -> Result<PreparedAppend, LogError> {
    let decoded = par_map(&leaves, |l| (entry::decode_leaf(l), leaf_hash(l)));
    prepare_decoded(store, catalog, state, leaves, decoded, validation)
}

/// The size and root the committed log plus `leaves` would have, computed from leaf hashes and
/// the stored tree only (no decoding, no plan): what a catch-up step checks against the signed
/// root before paying for [`prepare_append`], so a step no proof reconciles costs its leaves and
/// their hashes, never a plan of them.
pub fn root_with(
    store: &Store,
    state: &LogState,
    leaves: &[Vec<u8>],
) -> Result<(u64, Hash), LogError> {
    let first = state.size();
    let size = first + leaves.len() as u64;
    let leaf_hashes = par_map(leaves, leaf_hash);
    let computed = store.with_hashes(state.id, |base| -> Result<_, ProofError> {
        let hashes = merkle::append_leaves(first, &leaf_hashes, base)?;
        merkle::tree_root(
            size,
            &Overlay {
                base,
                first: merkle::stored_hash_index(0, first),
                added: &hashes,
            },
        )
    })?;
    Ok((size, computed?))
}

/// [`prepare_append`] for entries the caller built itself (the node's own submissions): each
/// leaf comes with the typed entry it encodes, so only its leaf hash is computed here instead of
/// decoding back what was just encoded. `entries[i]` must be what `entry::decode_leaf` makes of
/// `leaves[i]`.
pub fn prepare_own(
    store: &Store,
    catalog: &Catalog,
    state: &LogState,
    leaves: Vec<Vec<u8>>,
    entries: Vec<(u64, Decoded)>,
) -> Result<PreparedAppend, LogError> {
    debug_assert_eq!(leaves.len(), entries.len());
    debug_assert!(leaves
        .iter()
        .zip(&entries)
        .all(|(l, e)| entry::decode_leaf(l).as_ref() == Ok(e)));
    let hashes = par_map(&leaves, leaf_hash);
    let decoded = entries.into_iter().map(Ok).zip(hashes).collect();
    prepare_decoded(store, catalog, state, leaves, decoded, Validation::Strict)
}

/// Both [`prepare_append`]s, once the leaves are decoded (or typed) and hashed.
fn prepare_decoded(
    store: &Store,
    catalog: &Catalog,
    state: &LogState,
    leaves: Vec<Vec<u8>>,
    decoded: Vec<DecodedLeaf>,
    validation: Validation,
) -> Result<PreparedAppend, LogError> {
    let first = state.size();
    let leaf_hashes: Vec<Hash> = decoded.iter().map(|(_, h)| *h).collect();
    let size = first + leaves.len() as u64;
    let first_hash_index = merkle::stored_hash_index(0, first);
    // A failed read of the stored tree is a store error, not a hashing one.
    let tree = || -> Result<(Vec<Hash>, Hash), LogError> {
        let computed = store.with_hashes(state.id, |base| -> Result<_, ProofError> {
            let hashes = merkle::append_leaves(first, &leaf_hashes, base)?;
            let root = merkle::tree_root(
                size,
                &Overlay {
                    base,
                    first: first_hash_index,
                    added: &hashes,
                },
            )?;
            Ok((hashes, root))
        })?;
        Ok(computed?)
    };
    let plan = || plan_decoded(store, catalog, state.id, first, decoded, validation);
    // The tree hashes and the plan are independent; a large batch computes them side by side.
    let (plan, tree) = if leaves.len() >= PARALLEL_MIN {
        std::thread::scope(|scope| {
            let spawned = std::thread::Builder::new()
                .name("tree-hashes".into())
                .spawn_scoped(scope, tree);
            let plan = plan();
            let tree = match spawned {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                Err(_) => tree(),
            };
            (plan, tree)
        })
    } else {
        (plan(), tree())
    };
    let (plan, (hashes, root)) = (plan?, tree?);
    Ok(PreparedAppend {
        root,
        size,
        plan,
        commit: Commit {
            origin: state.id,
            origin_name: state.name.clone(),
            register: !state.registered,
            first_index: first,
            leaves,
            first_hash_index,
            hashes,
            checkpoint: StoredCheckpoint {
                size,
                root,
                note: Vec::new(),
                proof: None,
            },
        },
    })
}

/// Rebuilds `origin`'s part of the catalog from its committed leaves `from..` (start-up: all of
/// them, or those after a loaded snapshot), a chunk at a time. Returns the number of invalid
/// leaves skipped.
pub fn replay(
    store: &Store,
    catalog: &Catalog,
    state: &LogState,
    from: u64,
) -> Result<usize, LogError> {
    const CHUNK: u64 = 65_536;
    let mut invalid = 0;
    let mut next = from;
    while next < state.size() {
        let end = (next + CHUNK).min(state.size());
        let leaves: Vec<Vec<u8>> = store
            .leaves(state.id, next, end)
            .map(|r| r.map(|(_, l)| l))
            .collect::<Result<_, _>>()?;
        let plan = plan_leaves(
            store,
            catalog,
            state.id,
            next,
            &leaves,
            Validation::Replicated,
        )?;
        invalid += plan.invalid.len();
        catalog.apply(state.id, &plan.activate, &plan.deactivate);
        next = end;
    }
    Ok(invalid)
}

#[cfg(test)]
mod tests {
    //! The planner's retraction rules, within one run and across runs: a follower catching up
    //! plans ADDs and their RETRACTs in a single batch, so both paths must agree.
    use super::*;
    use redline_proto::pb::AddEntry;
    use redline_proto::replay::LeafError;

    fn add(n: u8) -> Vec<u8> {
        let add = AddEntry {
            signal_type: "pdq".into(),
            hash: vec![n; 32],
            quality: 90,
            labels: vec!["ncii".into()],
            legal_basis: "consent withdrawn".into(),
            case_ref: String::new(),
        };
        entry::encode_add(add, 1).unwrap()
    }

    fn retract(target: u64, target_leaf: &[u8]) -> Vec<u8> {
        entry::encode_retract(target, &leaf_hash(target_leaf), "false positive", 2).unwrap()
    }

    fn setup() -> (tempfile::TempDir, Store, Catalog, LogState) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let catalog = Catalog::new();
        catalog.set_origin(0, "o.example", true);
        let state = LogState {
            id: 0,
            name: "o.example".into(),
            registered: false,
            checkpoint: None,
        };
        (dir, store, catalog, state)
    }

    fn active(plan: &Plan) -> Vec<u64> {
        plan.activate.iter().map(|a| a.index).collect()
    }

    #[test]
    fn retraction_inside_the_run_drops_its_add() {
        let (_dir, store, catalog, _) = setup();
        let (a0, a1) = (add(1), add(2));
        let leaves = vec![a0.clone(), a1, retract(0, &a0)];
        let plan = plan_leaves(&store, &catalog, 0, 0, &leaves, Validation::Strict).unwrap();
        assert_eq!(active(&plan), vec![1]);
        assert!(plan.deactivate.is_empty() && plan.invalid.is_empty());
    }

    #[test]
    fn second_retraction_inside_the_run_is_refused_or_kept_unmatched() {
        let (_dir, store, catalog, _) = setup();
        let a0 = add(1);
        let leaves = vec![a0.clone(), retract(0, &a0), retract(0, &a0)];
        let err = plan_leaves(&store, &catalog, 0, 0, &leaves, Validation::Strict).unwrap_err();
        assert!(
            matches!(
                err,
                LogError::Invalid(InvalidLeaf {
                    index: 2,
                    reason: LeafError::AlreadyRetracted(0)
                })
            ),
            "{err}"
        );
        let plan = plan_leaves(&store, &catalog, 0, 0, &leaves, Validation::Replicated).unwrap();
        assert!(active(&plan).is_empty());
        assert_eq!(plan.invalid.len(), 1);
        assert!(matches!(
            plan.invalid[0],
            InvalidLeaf {
                index: 2,
                reason: LeafError::AlreadyRetracted(0)
            }
        ));
    }

    #[test]
    fn retraction_of_a_retraction_is_not_an_add() {
        let (_dir, store, catalog, _) = setup();
        let a0 = add(1);
        let r1 = retract(0, &a0);
        let leaves = vec![a0.clone(), r1.clone(), retract(1, &r1)];
        let plan = plan_leaves(&store, &catalog, 0, 0, &leaves, Validation::Replicated).unwrap();
        assert!(active(&plan).is_empty());
        assert_eq!(plan.invalid.len(), 1);
        assert!(
            matches!(
                plan.invalid[0],
                InvalidLeaf {
                    index: 2,
                    reason: LeafError::Retraction(_)
                }
            ),
            "{}",
            plan.invalid[0]
        );
    }

    #[test]
    fn retraction_of_a_committed_add_deactivates_it_once() {
        let (_dir, store, catalog, state) = setup();
        let (a0, a1) = (add(1), add(2));
        let first = prepare_append(
            &store,
            &catalog,
            &state,
            vec![a0.clone(), a1],
            Validation::Strict,
        )
        .unwrap();
        let (size, root) = (first.size, first.root);
        store.commit_blocking(first.commit).unwrap();
        catalog.apply(0, &first.plan.activate, &first.plan.deactivate);
        assert!(catalog.is_active(0, 0) && catalog.is_active(0, 1));
        let state = LogState {
            registered: true,
            checkpoint: Some(StoredCheckpoint {
                size,
                root,
                note: Vec::new(),
                proof: None,
            }),
            ..state
        };
        let leaves = vec![retract(0, &a0), add(3), retract(0, &a0)];
        let plan = plan_leaves(&store, &catalog, 0, 2, &leaves, Validation::Replicated).unwrap();
        assert_eq!(plan.deactivate, vec![0]);
        assert_eq!(active(&plan), vec![3]);
        assert_eq!(plan.invalid.len(), 1);
        assert!(matches!(
            plan.invalid[0],
            InvalidLeaf {
                index: 4,
                reason: LeafError::AlreadyRetracted(0)
            }
        ));
        let next =
            prepare_append(&store, &catalog, &state, leaves, Validation::Replicated).unwrap();
        assert_eq!(next.size, 5);
    }

    /// A batch with ADDs, RETRACTs of ADDs of the same batch and RETRACTs of earlier ADDs,
    /// applied to a catalog in many small slices while a reader keeps searching: the reader
    /// never sees an ADD retracted within its own batch, sees each earlier retracted ADD
    /// present until it is gone and never again after, and each surviving ADD absent until it
    /// is there and never gone after. Afterwards the catalog holds exactly the survivors.
    #[test]
    fn slices_never_show_a_retraction_half_applied() {
        use crate::catalog::Catalog;
        use redline_proto::signal::SignalType;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let catalog = Arc::new(Catalog::with_limits(16, 8, 64));
        catalog.set_origin(0, "o.example", true);
        let hash = |n: u32| {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&n.to_be_bytes());
            h[31] = 0x5a;
            h
        };
        let add_of = |n: u32| {
            entry::encode_add(
                AddEntry {
                    signal_type: "pdq".into(),
                    hash: hash(n).to_vec(),
                    quality: 90,
                    ..Default::default()
                },
                1,
            )
            .unwrap()
        };
        let prior: Vec<Vec<u8>> = (0..200).map(add_of).collect();
        let state = LogState {
            id: 0,
            name: "o.example".into(),
            registered: false,
            checkpoint: None,
        };
        let first =
            prepare_append(&store, &catalog, &state, prior.clone(), Validation::Strict).unwrap();
        let (size, root) = (first.size, first.root);
        store.commit_blocking(first.commit).unwrap();
        catalog.apply(0, &first.plan.activate, &first.plan.deactivate);
        let state = LogState {
            registered: true,
            checkpoint: Some(StoredCheckpoint {
                size,
                root,
                note: Vec::new(),
                proof: None,
            }),
            ..state
        };
        // Leaves 200..: ADD of hash 1000 + i, then after every fourth a RETRACT of it (in-run),
        // and after every other one a RETRACT of prior ADD i (earlier).
        let mut leaves = Vec::new();
        let (mut in_run_gone, mut prior_gone, mut survivors) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..400u32 {
            let index = 200 + leaves.len() as u64;
            let leaf = add_of(1000 + i);
            leaves.push(leaf.clone());
            if i % 4 == 0 {
                leaves.push(retract(index, &leaf));
                in_run_gone.push(hash(1000 + i));
            } else {
                survivors.push(hash(1000 + i));
            }
            if i % 2 == 0 && i < 200 {
                leaves.push(retract(u64::from(i), &prior[i as usize]));
                prior_gone.push(hash(i));
            }
        }
        let kept: Vec<[u8; 32]> = (0..200u32).filter(|i| i % 2 == 1).map(hash).collect();
        let next = prepare_append(&store, &catalog, &state, leaves, Validation::Strict).unwrap();
        assert_eq!(next.plan.deactivate.len(), prior_gone.len());
        assert_eq!(next.plan.activate.len(), survivors.len());

        let listed = |c: &Catalog, h: &[u8; 32]| !c.search(SignalType::Pdq, h, 0).is_empty();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (catalog, stop) = (catalog.clone(), stop.clone());
            let (in_run_gone, prior_gone, survivors, kept) = (
                in_run_gone.clone(),
                prior_gone.clone(),
                survivors.clone(),
                kept.clone(),
            );
            std::thread::spawn(move || {
                let mut gone = vec![false; prior_gone.len()];
                let mut there = vec![false; survivors.len()];
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) || rounds == 0 {
                    rounds += 1;
                    for h in &in_run_gone {
                        assert!(
                            !listed(&catalog, h),
                            "an ADD retracted in its own batch showed"
                        );
                    }
                    for (g, h) in gone.iter_mut().zip(&prior_gone) {
                        let now = !listed(&catalog, h);
                        assert!(now || !*g, "a retracted ADD came back");
                        *g = now;
                    }
                    for (t, h) in there.iter_mut().zip(&survivors) {
                        let now = listed(&catalog, h);
                        assert!(now || !*t, "an activated ADD went away");
                        *t = now;
                    }
                    for h in &kept {
                        assert!(listed(&catalog, h), "an ADD nothing retracted went away");
                    }
                }
                rounds
            })
        };
        // As the replica commits: activations, then deactivations.
        catalog.apply(0, &next.plan.activate, &[]);
        catalog.apply(0, &[], &next.plan.deactivate);
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        for h in in_run_gone.iter().chain(&prior_gone) {
            assert!(!listed(&catalog, h));
        }
        for h in survivors.iter().chain(&kept) {
            assert!(listed(&catalog, h));
        }
        assert_eq!(
            catalog.active_count(0),
            (survivors.len() + kept.len()) as u64
        );
    }
}
