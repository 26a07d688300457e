//! The node's own origin: analysts' submissions and retractions, each batch validated by the
//! protocol's replay (`log::prepare_append`, strict), signed, and committed durably before the
//! catalog and watchers see it.

use super::logs::{LogHandle, Logs};
use super::{blocking, now_ms, NewSignal, NodeError, Result, SentSignal};
use crate::catalog::Catalog;
use crate::hashing::{ImageHasher, VideoHasher};
use crate::log::{prepare_append, prepare_own, LogError, LogState, Validation};
use crate::store::{Store, StoredCheckpoint};
use redline_proto::checkpoint::OriginSigner;
use redline_proto::entry::{self, Decoded};
use redline_proto::merkle::leaf_hash;
use redline_proto::pb::AddEntry;
use redline_proto::replay::{InvalidLeaf, LeafError, RetractionError};
use redline_proto::signal::SignalType;
use std::collections::HashMap;
use std::sync::Arc;

/// Metadata shared by a submission's entries.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Labels such as `ncii`.
    pub labels: Vec<String>,
    /// Legal basis.
    pub legal_basis: String,
    /// Opaque case reference.
    pub case_ref: String,
}

/// A successful submission.
#[derive(Debug)]
pub struct Submitted {
    /// `(index, duplicate)` per input signal.
    pub entries: Vec<(u64, bool)>,
    /// Checkpoint covering them.
    pub checkpoint: StoredCheckpoint,
}

/// A submission as an analyst sends it: signals, and optionally an image to hash (its bytes
/// are dropped once hashed).
#[derive(Debug, Clone, Default)]
pub struct Upload {
    /// Signals given as hashes.
    pub signals: Vec<SentSignal>,
    /// An encoded image, hashed with every configured type; empty for none.
    pub image: Vec<u8>,
    /// A video file, hashed for listing (vPDQ parts, video_md5, video_sha256); empty for none.
    pub video: Vec<u8>,
    /// Metadata of every entry.
    pub listing: Listing,
}

/// What became of an [`Upload`]: each signal (given ones first, then those computed from the
/// image) with its log index and whether it was already listed, and the checkpoint.
#[derive(Debug)]
pub struct Receipt {
    /// `(signal, index, duplicate)` in order.
    pub entries: Vec<(SentSignal, u64, bool)>,
    /// This node's origin.
    pub origin: String,
    /// Checkpoint covering them.
    pub checkpoint: StoredCheckpoint,
}

/// The own log's service.
#[derive(Debug)]
pub struct OwnLog {
    log: Arc<LogHandle>,
    logs: Arc<Logs>,
    store: Store,
    catalog: Arc<Catalog>,
    signer: OriginSigner,
    max_batch: usize,
    hasher: ImageHasher,
    video_hasher: VideoHasher,
}

impl OwnLog {
    pub(super) fn new(
        logs: Arc<Logs>,
        store: Store,
        catalog: Arc<Catalog>,
        signer: OriginSigner,
        max_batch: usize,
        hasher: ImageHasher,
        video_hasher: VideoHasher,
    ) -> Result<Self> {
        Ok(Self {
            log: logs.get(signer.public().name())?,
            logs,
            store,
            catalog,
            signer,
            max_batch,
            hasher,
            video_hasher,
        })
    }

    /// Signs the empty checkpoint of a new log, so every log always has a signed checkpoint.
    pub(super) async fn init(&self) -> Result<()> {
        let _writer = self.log.lock().await;
        let state = self.log.state();
        if state.checkpoint.is_none() {
            self.append_locked(state, Vec::new(), None).await?;
        }
        Ok(())
    }

    /// Largest encoded image an upload may carry.
    pub fn max_image_bytes(&self) -> usize {
        self.hasher.max_image_bytes()
    }

    /// Largest video an upload may carry.
    pub fn max_video_bytes(&self) -> usize {
        self.video_hasher.max_video_bytes()
    }

    /// Hashes the upload's image (if any), then submits every signal ([`OwnLog::submit`]).
    pub async fn upload(&self, upload: Upload) -> Result<Receipt> {
        let Upload {
            mut signals,
            image,
            video,
            listing,
        } = upload;
        if !image.is_empty() {
            // Hashed with every configured type; the bytes are dropped inside `hash`.
            let hashes = self.hasher.hash(image, false).await?;
            signals.extend(hashes.signals.into_iter().map(SentSignal::from));
        }
        if !video.is_empty() {
            // Hashed in the sandboxed decoder; the bytes are dropped inside `for_listing`.
            let hashes = self.video_hasher.for_listing(video).await?;
            signals.extend(hashes.into_iter().map(SentSignal::from));
        }
        let submitted = self
            .submit(signals.iter().map(|s| s.signal.clone()).collect(), listing)
            .await?;
        Ok(Receipt {
            entries: signals
                .into_iter()
                .zip(submitted.entries)
                .map(|(s, (index, duplicate))| (s, index, duplicate))
                .collect(),
            origin: self.signer.public().name().to_owned(),
            checkpoint: submitted.checkpoint,
        })
    }

    /// Adds ADDs for every signal not already active in the own log; returns the index of each.
    pub async fn submit(&self, signals: Vec<NewSignal>, listing: Listing) -> Result<Submitted> {
        if signals.is_empty() {
            return Err(NodeError::EmptyBatch);
        }
        if signals.len() > self.max_batch {
            return Err(NodeError::BatchTooLarge {
                got: signals.len(),
                max: self.max_batch,
            });
        }
        let _writer = self.log.lock().await;
        let state = self.log.state();
        let created = now_ms();
        let mut entries = Vec::with_capacity(signals.len());
        let mut leaves = Vec::new();
        // What each new leaf encodes, so the batch is planned from these values rather than
        // decoded back (`log::prepare_own`).
        let mut typed = Vec::new();
        let mut in_batch: HashMap<(SignalType, Vec<u8>), u64> = HashMap::new();
        for (position, s) in signals.into_iter().enumerate() {
            if let Some(&i) = in_batch.get(&(s.signal_type, s.hash.clone())) {
                entries.push((i, true));
                continue;
            }
            if let Some(i) = self
                .catalog
                .find_in_origin(state.id, s.signal_type, &s.hash)
            {
                entries.push((i, true));
                continue;
            }
            let index = state.size() + leaves.len() as u64;
            let add = AddEntry {
                signal_type: s.signal_type.name().to_owned(),
                hash: s.hash.clone(),
                quality: s.quality,
                labels: listing.labels.clone(),
                legal_basis: listing.legal_basis.clone(),
                case_ref: listing.case_ref.clone(),
            };
            let leaf = entry::encode_add(add.clone(), created)
                .map_err(|source| NodeError::BadEntry { position, source })?;
            leaves.push(leaf);
            typed.push((
                created,
                Decoded::Add {
                    signal_type: s.signal_type,
                    add,
                },
            ));
            in_batch.insert((s.signal_type, s.hash), index);
            entries.push((index, false));
        }
        let checkpoint = match state.checkpoint.clone() {
            Some(cp) if leaves.is_empty() => cp,
            _ => self.append_locked(state, leaves, Some(typed)).await?,
        };
        Ok(Submitted {
            entries,
            checkpoint,
        })
    }

    /// Appends a RETRACT of the own log's ADD at `index`; returns its index and checkpoint.
    /// Whether the target may be retracted (an ADD, still active) is the replay's rule.
    pub async fn retract(&self, index: u64, reason: &str) -> Result<(u64, StoredCheckpoint)> {
        if reason.trim().is_empty() {
            return Err(NodeError::NoReason);
        }
        let _writer = self.log.lock().await;
        let state = self.log.state();
        let no_such = || NodeError::NoSuchEntry {
            origin: state.name.clone(),
            index,
            size: state.size(),
        };
        if index >= state.size() {
            return Err(no_such());
        }
        let data = self.store.leaf(state.id, index)?.ok_or_else(no_such)?;
        let leaf = entry::encode_retract(index, &leaf_hash(&data), reason, now_ms()).map_err(
            |source| NodeError::BadEntry {
                position: 0,
                source,
            },
        )?;
        let retract_index = state.size();
        let cp = self
            .append_locked(state, vec![leaf], None)
            .await
            .map_err(|e| match e {
                NodeError::Log(LogError::Invalid(InvalidLeaf {
                    reason: LeafError::AlreadyRetracted(target),
                    ..
                })) => NodeError::AlreadyRetracted(target),
                NodeError::Log(LogError::Invalid(InvalidLeaf {
                    reason: LeafError::Retraction(RetractionError::NotAnAdd(target)),
                    ..
                })) => NodeError::NotAnAdd(target),
                other => other,
            })?;
        Ok((retract_index, cp))
    }

    /// Validates, hashes, signs and durably commits a batch of the own log, then updates the
    /// catalog and announces it. The caller holds the log's writer lock.
    /// `typed`, when given, is what each leaf encodes (see `log::prepare_own`).
    async fn append_locked(
        &self,
        state: LogState,
        leaves: Vec<Vec<u8>>,
        typed: Option<Vec<(u64, Decoded)>>,
    ) -> Result<StoredCheckpoint> {
        let (store, catalog, st) = (self.store.clone(), self.catalog.clone(), state.clone());
        let prepared = blocking(move || match typed {
            Some(entries) => prepare_own(&store, &catalog, &st, leaves, entries),
            None => prepare_append(&store, &catalog, &st, leaves, Validation::Strict),
        })
        .await??;
        let signed = self.signer.sign_checkpoint(prepared.size, prepared.root)?;
        let mut commit = prepared.commit;
        commit.checkpoint = StoredCheckpoint::from(&signed);
        let checkpoint = commit.checkpoint.clone();
        let first_index = commit.first_index;
        self.store.commit(commit).await?;
        // Off the runtime: the catalog waits for another write in progress (a large replicated
        // batch applies in slices for a while), and a runtime thread must not wait with it.
        let (catalog, plan, id) = (self.catalog.clone(), prepared.plan, state.id);
        blocking(move || catalog.apply(id, &plan.activate, &plan.deactivate)).await?;
        Ok(self.logs.publish(&self.log, state, checkpoint, first_index))
    }
}
