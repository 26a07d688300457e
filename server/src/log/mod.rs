//! Per-origin append-only logs: validating a batch of leaves against what is stored, computing the
//! stored Merkle hashes and root the batch gives, and the active-set changes it implies. Used
//! the same way for the node's own submissions (which it then signs) and for replicated batches
//! (whose root must equal the origin's signed root).

use crate::store::{ActiveAdd, Commit, OriginId, Store, StoreError, StoredCheckpoint};
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
    /// Latest committed checkpoint (size 0 and the empty root before the first).
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
    /// they are reported in [`PreparedAppend::invalid`].
    Replicated,
}

/// A batch ready to commit.
#[derive(Debug)]
pub struct PreparedAppend {
    /// Root of the tree with the batch appended.
    pub root: Hash,
    /// New size.
    pub size: u64,
    /// The commit minus its checkpoint (set by the caller).
    pub commit: Commit,
    /// Invalid leaves accepted under [`Validation::Replicated`].
    pub invalid: Vec<LogError>,
}

/// Validates `leaves` as the continuation of `state`'s log and computes the resulting tree.
pub fn prepare_append(
    store: &Store,
    state: &LogState,
    leaves: Vec<Vec<u8>>,
    validation: Validation,
) -> Result<PreparedAppend, LogError> {
    let first = state.size();
    let mut activate: Vec<ActiveAdd> = Vec::new();
    // Position in `activate` of each ADD of this batch, by log index.
    let mut batch_adds: HashMap<u64, usize> = HashMap::new();
    let mut deactivate: Vec<ActiveAdd> = Vec::new();
    let mut invalid = Vec::new();
    let mut leaf_hashes = Vec::with_capacity(leaves.len());
    let mut removed_in_batch: Vec<bool> = Vec::new();

    for (offset, data) in leaves.iter().enumerate() {
        let index = first + offset as u64;
        leaf_hashes.push(leaf_hash(data));
        let outcome = match entry::decode(data) {
            Err(source) => Err(LogError::Entry { index, source }),
            Ok(Decoded::Add { add, .. }) => {
                batch_adds.insert(index, activate.len());
                activate.push(ActiveAdd {
                    signal_type: add.signal_type,
                    hash: add.hash,
                    index,
                });
                removed_in_batch.push(false);
                Ok(())
            }
            Ok(Decoded::Retract(r)) => {
                let target = r.target_index;
                let in_batch = target >= first && target < index;
                let target_data = if in_batch {
                    Some(leaves[(target - first) as usize].clone())
                } else if target < first {
                    store.leaf(state.id, target)?
                } else {
                    None
                };
                match entry::check_retraction(index, &r, target_data.as_deref()) {
                    Err(source) => Err(LogError::Retraction { index, source }),
                    Ok(()) => {
                        if let Some(&pos) = batch_adds.get(&target) {
                            if removed_in_batch[pos] {
                                Err(LogError::AlreadyRetracted { index, target })
                            } else {
                                removed_in_batch[pos] = true;
                                Ok(())
                            }
                        } else {
                            let Some(Ok(Decoded::Add { add, .. })) =
                                target_data.as_deref().map(entry::decode)
                            else {
                                unreachable!("check_retraction verified an ADD")
                            };
                            let a = ActiveAdd {
                                signal_type: add.signal_type,
                                hash: add.hash,
                                index: target,
                            };
                            if store.is_active(state.id, &a)? && !deactivate.contains(&a) {
                                deactivate.push(a);
                                Ok(())
                            } else {
                                Err(LogError::AlreadyRetracted { index, target })
                            }
                        }
                    }
                }
            }
        };
        if let Err(e) = outcome {
            if matches!(e, LogError::Store(_)) || validation == Validation::Strict {
                return Err(e);
            }
            invalid.push(e);
        }
    }
    let activate = activate
        .into_iter()
        .zip(removed_in_batch)
        .filter_map(|(a, removed)| (!removed).then_some(a))
        .collect();

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
        invalid,
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
            activate,
            deactivate,
        },
    })
}

#[cfg(test)]
mod tests;
