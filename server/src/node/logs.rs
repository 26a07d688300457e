//! Every log the node holds (its own and those it follows), and read access to them: committed
//! state, checkpoints, leaves and proofs for auditors and peers, and commits as they happen.
//! The writer lock of each log is taken only by the services that append ([`super::OwnLog`],
//! [`super::Replica`]); this module hands out no way to write.

use super::{blocking, NodeError, Result};
use crate::catalog::Catalog;
use crate::config::Policy;
use crate::log::LogState;
use crate::store::{OriginId, Store, StoredCheckpoint};
use futures::Stream;
use redline_proto::checkpoint::OriginKey;
use redline_proto::merkle::{self, Hash};
use redline_proto::pb;
use redline_proto::proof::TlogProof;
use redline_proto::tiles::{self, TileRef};
use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

/// One origin's log: its committed state and the lock that serialises its writers.
#[derive(Debug)]
pub struct LogHandle {
    /// Held by whoever appends (own submissions or replication), across the whole commit.
    writer: tokio::sync::Mutex<()>,
    state: RwLock<LogState>,
}

impl LogHandle {
    fn new(state: LogState) -> Self {
        Self {
            writer: Default::default(),
            state: RwLock::new(state),
        }
    }

    /// Snapshot of the committed state.
    pub fn state(&self) -> LogState {
        self.state.read().expect("log state lock").clone()
    }

    /// Takes the writer lock (own log and replica only).
    pub(super) async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writer.lock().await
    }

    fn set(&self, s: LogState) {
        *self.state.write().expect("log state lock") = s;
    }
}

/// What the node does with an origin.
#[derive(Debug, Clone)]
pub struct OriginTrust {
    /// Its verifier key.
    pub key: OriginKey,
    /// `None` for the node's own origin.
    pub policy: Option<Policy>,
}

impl OriginTrust {
    /// Whether entries of this origin are matched.
    pub fn matched(&self) -> bool {
        matches!(self.policy, None | Some(Policy::Accept))
    }

    /// Policy name as shown to operators.
    pub fn policy_name(&self) -> &'static str {
        self.policy.map_or("own", Policy::name)
    }
}

/// A committed change to some origin's log, announced to watchers.
#[derive(Debug, Clone)]
pub struct CommitEvent {
    /// Origin name.
    pub origin: String,
    /// Its new checkpoint.
    pub checkpoint: StoredCheckpoint,
    /// First new index.
    pub first_index: u64,
}

/// Leaves `(index, bytes)` of one log in chunks, in order. A stream that cannot finish ends
/// with an error item, never short.
pub type LeafChunks = Pin<Box<dyn Stream<Item = Result<Vec<(u64, Vec<u8>)>>> + Send>>;

/// Checkpoints `(origin, checkpoint)` as they are committed; see [`Logs::watch`].
pub type Heads = Pin<Box<dyn Stream<Item = (String, StoredCheckpoint)> + Send>>;

/// Leaves read per blocking store read while streaming.
const CHUNK: u64 = 4096;

/// Every log the node holds.
#[derive(Debug)]
pub struct Logs {
    store: Store,
    catalog: Arc<Catalog>,
    trust: BTreeMap<String, OriginTrust>,
    /// Fixed at open: the stored origins and the trusted ones.
    handles: BTreeMap<String, Arc<LogHandle>>,
    events: broadcast::Sender<CommitEvent>,
}

impl Logs {
    pub(super) fn new(
        store: Store,
        catalog: Arc<Catalog>,
        trust: BTreeMap<String, OriginTrust>,
        states: BTreeMap<String, LogState>,
        events: broadcast::Sender<CommitEvent>,
    ) -> Self {
        Self {
            store,
            catalog,
            trust,
            handles: states
                .into_iter()
                .map(|(name, state)| (name, Arc::new(LogHandle::new(state))))
                .collect(),
            events,
        }
    }

    /// Trust settings per origin (own origin included).
    pub fn trust(&self) -> &BTreeMap<String, OriginTrust> {
        &self.trust
    }

    /// The log of `origin`, if the node holds or follows it.
    pub fn get(&self, origin: &str) -> Result<Arc<LogHandle>> {
        self.handles
            .get(origin)
            .cloned()
            .ok_or_else(|| NodeError::UnknownOrigin(origin.to_owned()))
    }

    /// All logs, by name.
    pub fn all(&self) -> Vec<(String, Arc<LogHandle>)> {
        self.handles
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Subscribes to commits of every log.
    pub fn subscribe(&self) -> broadcast::Receiver<CommitEvent> {
        self.events.subscribe()
    }

    /// The latest checkpoint of every log, then each one committed from now on; each origin's
    /// in increasing size only. Events queued between the subscription and the snapshot may be
    /// older than the snapshot, and followers treat a peer that goes back on its watch stream
    /// as replaying old checkpoints. A slow watcher skips some (the next one is newer anyway).
    pub fn watch(&self) -> Heads {
        // Subscribe before snapshotting, so a commit between the two is sent (twice at worst).
        let mut events = self.events.subscribe();
        let current: Vec<(String, StoredCheckpoint)> = self
            .handles
            .iter()
            .filter_map(|(name, log)| Some((name.clone(), log.state().checkpoint?)))
            .filter(|(_, cp)| cp.offerable())
            .collect();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut sent: HashMap<String, u64> = HashMap::new();
            let mut newer = move |origin: &str, size: u64| match sent.get_mut(origin) {
                Some(sent) if *sent >= size => false,
                Some(sent) => {
                    *sent = size;
                    true
                }
                None => {
                    sent.insert(origin.to_owned(), size);
                    true
                }
            };
            for (origin, cp) in current {
                if newer(&origin, cp.size) && tx.send((origin, cp)).await.is_err() {
                    return;
                }
            }
            loop {
                match events.recv().await {
                    Ok(ev) => {
                        // A proven prefix's note names entries not held: not offered.
                        if ev.checkpoint.offerable()
                            && newer(&ev.origin, ev.checkpoint.size)
                            && tx.send((ev.origin, ev.checkpoint)).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }

    /// Latest checkpoint of `origin`.
    pub fn checkpoint(&self, origin: &str) -> Result<StoredCheckpoint> {
        self.get(origin)?
            .state()
            .checkpoint
            .ok_or_else(|| NodeError::UnknownOrigin(format!("{origin} (nothing replicated yet)")))
    }

    /// The latest checkpoint of every log that has one (what the node offers peers).
    pub fn held_checkpoints(&self) -> Vec<pb::Checkpoint> {
        self.handles
            .iter()
            .filter_map(|(name, log)| {
                let c = log.state().checkpoint.filter(|c| c.offerable())?;
                Some(super::to_pb(name, &c))
            })
            .collect()
    }

    /// Active (not retracted) ADDs of the origin stored as `origin`.
    pub fn active_count(&self, origin: OriginId) -> u64 {
        self.catalog.active_count(origin)
    }

    /// Whether the ADD at `index` of the origin stored as `origin` is active.
    pub fn is_active(&self, origin: OriginId, index: u64) -> bool {
        self.catalog.is_active(origin, index)
    }

    /// The stored leaf at `index` of the origin stored as `origin`.
    pub fn leaf(&self, origin: OriginId, index: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.store.leaf(origin, index)?)
    }

    /// Checks a `[start, end)` range against the committed size; `end == 0` means the size.
    fn entry_range(&self, origin: &str, start: u64, end: u64) -> Result<(OriginId, u64, u64)> {
        let state = self.get(origin)?.state();
        let size = state.size();
        let end = if end == 0 { size } else { end };
        if start > end || end > size {
            return Err(NodeError::BadRange(format!(
                "range [{start}, {end}) is not within {origin}'s tree of size {size}"
            )));
        }
        Ok((state.id, start, end))
    }

    /// Streams leaves `[start, end)` of `origin` (`end == 0`: its size) from the store, a chunk
    /// at a time, so a long range neither blocks the runtime nor sits in memory. A range outside
    /// the committed tree is refused before anything is read; a read that fails later ends the
    /// stream with that error.
    ///
    /// Chunks travel whole so that the caller can hand thousands of messages to its transport
    /// at once (one message at a time, every entry became its own `writev`: a fifth of a
    /// follower's replication time).
    pub fn entries(&self, origin: &str, start: u64, end: u64) -> Result<LeafChunks> {
        let (id, start, end) = self.entry_range(origin, start, end)?;
        let store = self.store.clone();
        let name = origin.to_owned();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<(u64, Vec<u8>)>>>(2);
        let missing = {
            let name = name.clone();
            move |at| NodeError::MissingLeaves {
                origin: name.clone(),
                at,
            }
        };
        let missing_at = missing.clone();
        tokio::spawn(async move {
            let mut next = start;
            while next < end {
                let hi = (next + CHUNK).min(end);
                let s = store.clone();
                let chunk = blocking(move || s.leaves(id, next, hi).collect::<Result<Vec<_>, _>>())
                    .await
                    .and_then(|r| r.map_err(NodeError::from))
                    .and_then(|c| {
                        if c.len() as u64 == hi - next {
                            Ok(c)
                        } else {
                            Err(missing(next + c.len() as u64))
                        }
                    });
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    return; // the caller went away, or the stream ends with its error
                }
                next = hi;
            }
        });
        // Whatever stops the reader (its error, or the task being dropped), the stream ends
        // with an error item unless every leaf of the range was sent.
        let chunks = futures::stream::unfold((rx, start, false), move |(mut rx, next, done)| {
            let missing_at = missing_at.clone();
            async move {
                if done {
                    return None;
                }
                match rx.recv().await {
                    Some(Ok(chunk)) => {
                        let n = next + chunk.len() as u64;
                        Some((Ok(chunk), (rx, n, false)))
                    }
                    Some(Err(e)) => Some((Err(e), (rx, next, true))),
                    None if next < end => Some((Err(missing_at(next)), (rx, next, true))),
                    None => None,
                }
            }
        });
        Ok(Box::pin(chunks))
    }

    /// Inclusion proof of `index` in the tree of `tree_size` (0: latest).
    pub async fn inclusion_proof(
        &self,
        origin: &str,
        index: u64,
        tree_size: u64,
    ) -> Result<(u64, Vec<Hash>)> {
        let state = self.get(origin)?.state();
        let size = if tree_size == 0 {
            state.size()
        } else {
            tree_size
        };
        if size > state.size() {
            return Err(NodeError::BadRange(format!(
                "tree_size {size} is past {origin}'s size {}",
                state.size()
            )));
        }
        if index >= size {
            return Err(NodeError::BadRange(format!(
                "index {index} is not below tree_size {size}"
            )));
        }
        let (store, id) = (self.store.clone(), state.id);
        let proof =
            blocking(move || store.with_hashes(id, |r| merkle::inclusion_proof(index, size, r)))
                .await???;
        Ok((size, proof))
    }

    /// Consistency proof from `old_size` to `new_size` (0: latest).
    pub async fn consistency_proof(
        &self,
        origin: &str,
        old_size: u64,
        new_size: u64,
    ) -> Result<(u64, Vec<Hash>)> {
        let state = self.get(origin)?.state();
        let new = if new_size == 0 {
            state.size()
        } else {
            new_size
        };
        if new > state.size() {
            return Err(NodeError::BadRange(format!(
                "new_size {new} is past {origin}'s size {}",
                state.size()
            )));
        }
        if old_size == 0 || old_size > new {
            return Err(NodeError::BadRange(format!(
                "old_size must be between 1 and new_size {new}, got {old_size}"
            )));
        }
        let (store, id) = (self.store.clone(), state.id);
        let proof = blocking(move || {
            store.with_hashes(id, |r| merkle::consistency_proof(old_size, new, r))
        })
        .await???;
        Ok((new, proof))
    }

    /// C2SP tlog-proofs ([`TlogProof`], the text `redline proof` writes) of the entries
    /// `(origin, index)`, in the order asked, each against the latest checkpoint of its origin
    /// held when the call began: what a platform keeps to show later, offline, which signed
    /// version of the list a match came from. Each origin's checkpoint is read once.
    ///
    /// `None` where no proof can be made now, which a caller reports as "no proof" rather than
    /// failing the whole answer: an origin still catching up in steps (its note signs a tree
    /// not all held yet, so no inclusion proof in it can be served), an entry committed after
    /// the checkpoint read, an unknown origin, or a store read that failed (logged).
    ///
    /// Reads the store: call it on the blocking pool.
    pub fn tlog_proofs(&self, wanted: &[(&str, u64)]) -> Vec<Option<Vec<u8>>> {
        let mut heads: HashMap<&str, Option<(OriginId, StoredCheckpoint)>> = HashMap::new();
        wanted
            .iter()
            .map(|&(origin, index)| {
                let head = heads.entry(origin).or_insert_with(|| {
                    let state = self.get(origin).ok()?.state();
                    let cp = state.checkpoint.filter(StoredCheckpoint::offerable)?;
                    Some((state.id, cp))
                });
                let (id, cp) = head.as_ref()?;
                if index >= cp.size {
                    return None;
                }
                self.tlog_proof(*id, cp, index)
                    .inspect_err(|e| {
                        tracing::warn!(error = %e, origin, index, "cannot prove a matched entry");
                    })
                    .ok()
            })
            .collect()
    }

    /// One entry's tlog-proof against `cp`, a checkpoint of `origin` the caller already read,
    /// so that what the caller reports about the tree (size, root) is the tree proven even if
    /// a commit lands meanwhile. `None` when `cp` cannot be proven in (a catch-up prefix) or
    /// does not hold `index`. Reads the store: call it on the blocking pool.
    pub fn tlog_proof_against(
        &self,
        origin: &str,
        cp: &StoredCheckpoint,
        index: u64,
    ) -> Result<Option<Vec<u8>>> {
        if !cp.offerable() || index >= cp.size {
            return Ok(None);
        }
        let id = self.get(origin)?.state().id;
        self.tlog_proof(id, cp, index).map(Some)
    }

    fn tlog_proof(&self, id: OriginId, cp: &StoredCheckpoint, index: u64) -> Result<Vec<u8>> {
        let leaf = self
            .store
            .leaf(id, index)?
            .ok_or_else(|| NodeError::MissingLeaves {
                origin: format!("origin #{id} (stored id)"),
                at: index,
            })?;
        let size = cp.size;
        let hashes = self
            .store
            .with_hashes(id, |r| merkle::inclusion_proof(index, size, r))??;
        Ok(TlogProof::new(leaf, index, hashes, cp.note.clone())?.to_bytes())
    }

    /// Root of `origin`'s tree at `size` (at most the size held).
    pub async fn root_at(&self, origin: &str, size: u64) -> Result<Hash> {
        let state = self.get(origin)?.state();
        if size > state.size() {
            return Err(NodeError::BadRange(format!(
                "size {size} is past {origin}'s size {}",
                state.size()
            )));
        }
        let (store, id) = (self.store.clone(), state.id);
        Ok(blocking(move || store.with_hashes(id, |r| merkle::tree_root(size, r))).await???)
    }

    /// The bytes of C2SP tile `tile` of `origin`'s log: a hash tile, or an entry bundle of the
    /// stored leaves. Refused as `BeyondTree` (404) when the tree held does not hold it yet.
    /// Any tile within the held tree is served, also past a checkpoint still being caught up
    /// to: a tile's bytes are fixed by the entries below it, whatever checkpoint follows.
    pub async fn tile(&self, origin: &str, tile: TileRef) -> Result<Vec<u8>> {
        let state = self.get(origin)?.state();
        let size = state.size();
        tile.check_within(size)?;
        let (store, id) = (self.store.clone(), state.id);
        if !tile.is_entries() {
            return Ok(
                blocking(move || store.with_hashes(id, |r| tile.hash_tile(size, r))).await???,
            );
        }
        let (start, end) = tile.entry_range();
        let name = origin.to_owned();
        blocking(move || {
            let mut bundle = Vec::new();
            let mut next = start;
            for leaf in store.leaves(id, start, end) {
                let (index, leaf) = leaf?;
                if index != next {
                    break;
                }
                tiles::push_entry(&mut bundle, &leaf)?;
                next += 1;
            }
            if next != end {
                return Err(NodeError::MissingLeaves {
                    origin: name,
                    at: next,
                });
            }
            Ok(bundle)
        })
        .await?
    }

    /// Makes a durable commit the log's state and announces it.
    pub(super) fn publish(
        &self,
        log: &LogHandle,
        mut state: LogState,
        checkpoint: StoredCheckpoint,
        first_index: u64,
    ) -> StoredCheckpoint {
        state.registered = true;
        state.checkpoint = Some(checkpoint.clone());
        log.set(state.clone());
        let _ = self.events.send(CommitEvent {
            origin: state.name,
            checkpoint: checkpoint.clone(),
            first_index,
        });
        checkpoint
    }

    /// Flushes the store (shutdown).
    pub(super) fn flush(&self) -> Result<()> {
        Ok(self.store.flush()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    /// Logs over an empty store whose one log claims `size` leaves (as if they had been lost).
    fn logs_claiming(dir: &std::path::Path, size: u64) -> Logs {
        let store = Store::open(dir).unwrap();
        let mut states = BTreeMap::new();
        states.insert(
            "a.example".to_owned(),
            LogState {
                id: 0,
                name: "a.example".into(),
                registered: true,
                checkpoint: Some(StoredCheckpoint {
                    size,
                    root: merkle::EMPTY_HASH,
                    note: Vec::new(),
                    proof: None,
                }),
            },
        );
        Logs::new(
            store,
            Arc::new(Catalog::new()),
            BTreeMap::new(),
            states,
            broadcast::channel(4).0,
        )
    }

    #[tokio::test]
    async fn a_stream_that_cannot_finish_ends_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let logs = logs_claiming(dir.path(), 10);
        let items: Vec<_> = logs.entries("a.example", 0, 0).unwrap().collect().await;
        assert_eq!(items.len(), 1, "{items:?}");
        assert!(
            matches!(&items[0], Err(NodeError::MissingLeaves { at: 0, .. })),
            "{items:?}"
        );
        // Outside the tree: refused before anything is read.
        assert!(matches!(
            logs.entries("a.example", 0, 11),
            Err(NodeError::BadRange(_))
        ));
        assert!(matches!(
            logs.entries("b.example", 0, 1),
            Err(NodeError::UnknownOrigin(_))
        ));
    }

    #[tokio::test]
    async fn a_missing_stored_hash_is_a_store_error_not_a_proof_error() {
        let dir = tempfile::tempdir().unwrap();
        let logs = logs_claiming(dir.path(), 10);
        let err = logs.inclusion_proof("a.example", 3, 0).await.unwrap_err();
        assert!(
            matches!(
                err,
                NodeError::Store(crate::store::StoreError::Corrupt { .. })
            ),
            "{err:?}"
        );
        let err = logs.consistency_proof("a.example", 3, 0).await.unwrap_err();
        assert!(
            matches!(
                err,
                NodeError::Store(crate::store::StoreError::Corrupt { .. })
            ),
            "{err:?}"
        );
    }
}
