//! Per-origin append-only logs: validating a batch of leaves against what is stored, computing the
//! stored Merkle hashes and root the batch gives, and the active-set changes it implies. Used
//! the same way for the node's own submissions (which it then signs), for replicated batches
//! (whose root must equal the origin's signed root) and for rebuilding the catalog at start-up.

use crate::index::{Activation, Catalog};
use crate::store::{Commit, OriginId, Store, StoreError, StoredCheckpoint};
use redline_proto::entry::{self, Decoded, EntryError, RetractionError};
use redline_proto::merkle::{self, leaf_hash, Hash, Overlay, ProofError};
use std::collections::HashMap;
use thiserror::Error;

/// A batch could not be appended.
#[derive(Debug, Error)]
pub enum LogError {
    #[error("leaf {index}: {source}")]
    Entry { index: u64, source: EntryError },
    #[error("leaf {index}: {source}")]
    Retraction { index: u64, source: RetractionError },
    #[error("leaf {index}: retraction of index {target}, which is already retracted")]
    AlreadyRetracted { index: u64, target: u64 },
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
    pub invalid: Vec<LogError>,
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
    let decoded = par_map(leaves, entry::decode);
    plan_decoded(store, catalog, origin, first, leaves, decoded, validation)
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

/// [`plan_leaves`] with every leaf already decoded (`decoded[i]` is `leaves[i]`).
fn plan_decoded(
    store: &Store,
    catalog: &Catalog,
    origin: OriginId,
    first: u64,
    leaves: &[Vec<u8>],
    decoded: Vec<Result<Decoded, EntryError>>,
    validation: Validation,
) -> Result<Plan, LogError> {
    let mut plan = Plan::default();
    // Position in `plan.activate` of each ADD of this run, by log index; None once retracted.
    let mut run_adds: HashMap<u64, Option<usize>> = HashMap::new();
    let mut retracted = vec![false; 0];
    for (offset, decoded) in decoded.into_iter().enumerate() {
        let index = first + offset as u64;
        let outcome = match decoded {
            Err(source) => Err(LogError::Entry { index, source }),
            Ok(Decoded::Add { signal_type, add }) => {
                run_adds.insert(index, Some(plan.activate.len()));
                retracted.push(false);
                plan.activate.push(Activation {
                    index,
                    signal_type,
                    hash: add.hash,
                    quality: add.quality,
                    labels: add.labels,
                    legal_basis: add.legal_basis,
                });
                Ok(())
            }
            Ok(Decoded::Retract(r)) => {
                let target = r.target_index;
                let target_data = if target >= first && target < index {
                    Some(leaves[(target - first) as usize].clone())
                } else if target < first {
                    store.leaf(origin, target)?
                } else {
                    None
                };
                match entry::check_retraction(index, &r, target_data.as_deref()) {
                    Err(source) => Err(LogError::Retraction { index, source }),
                    Ok(()) => match run_adds.get(&target) {
                        Some(Some(pos)) if !retracted[*pos] => {
                            retracted[*pos] = true;
                            Ok(())
                        }
                        Some(_) => Err(LogError::AlreadyRetracted { index, target }),
                        None => {
                            if catalog.is_active(origin, target)
                                && !plan.deactivate.contains(&target)
                            {
                                plan.deactivate.push(target);
                                Ok(())
                            } else {
                                Err(LogError::AlreadyRetracted { index, target })
                            }
                        }
                    },
                }
            }
        };
        if let Err(e) = outcome {
            if matches!(e, LogError::Store(_)) || validation == Validation::Strict {
                return Err(e);
            }
            plan.invalid.push(e);
        }
    }
    plan.activate = plan
        .activate
        .into_iter()
        .zip(retracted)
        .filter_map(|(a, gone)| (!gone).then_some(a))
        .collect();
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
    let first = state.size();
    let (decoded, leaf_hashes): (Vec<_>, Vec<Hash>) =
        par_map(&leaves, |l| (entry::decode(l), leaf_hash(l)))
            .into_iter()
            .unzip();
    let plan = plan_decoded(
        store, catalog, state.id, first, &leaves, decoded, validation,
    )?;
    let base = store.hashes(state.id);
    let hashes = merkle::append_leaves(first, &leaf_hashes, &base)?;
    let size = first + leaves.len() as u64;
    let first_hash_index = merkle::stored_hash_index(0, first);
    let root = merkle::tree_root(
        size,
        &Overlay {
            base: &base,
            first: first_hash_index,
            added: &hashes,
        },
    )?;
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
            },
        },
    })
}

/// Rebuilds `origin`'s part of the catalog from its committed leaves (start-up), a chunk at a
/// time. Returns the number of invalid leaves skipped.
pub fn replay(store: &Store, catalog: &Catalog, state: &LogState) -> Result<usize, LogError> {
    const CHUNK: u64 = 65_536;
    let mut invalid = 0;
    let mut next = 0;
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
