//! The node's domain: its own origin's log (submit, retract, sign), the logs it holds of other
//! origins, and read access for auditors. gRPC handlers and the federation loop call this;
//! it calls the store. Nothing here knows about tonic.

use crate::config::{Config, Policy};
use crate::identity::{self, IdentityError};
use crate::index::Catalog;
use crate::log::{prepare_append, LogError, LogState, Validation};
use crate::store::{OriginId, Store, StoreError, StoredCheckpoint};
use redline_proto::checkpoint::{CheckpointError, OriginKey, OriginSigner};
use redline_proto::entry::{self, Decoded, EntryError};
use redline_proto::merkle::{self, leaf_hash, Hash, ProofError};
use redline_proto::pb::{self, AddEntry};
use redline_proto::signal::{SignalError, SignalType};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tokio::sync::broadcast;

/// A domain operation failed. Mapped to a gRPC status in exactly one place (`grpc::error`).
#[derive(Debug, Error)]
pub enum NodeError {
    #[error("signal {position}: {source}")]
    BadSignal {
        position: usize,
        source: SignalError,
    },
    #[error("signal {position}: {source}")]
    BadEntry { position: usize, source: EntryError },
    #[error("the request has no signals")]
    EmptyBatch,
    #[error("{got} signals in one request, the limit is {max}")]
    BatchTooLarge { got: usize, max: usize },
    #[error("unknown origin {0:?}")]
    UnknownOrigin(String),
    #[error("index {index} is not in {origin}'s log (size {size})")]
    NoSuchEntry {
        origin: String,
        index: u64,
        size: u64,
    },
    #[error("entry {0} is a retraction, not an ADD; only ADDs can be retracted")]
    NotAnAdd(u64),
    #[error("entry {0} is already retracted")]
    AlreadyRetracted(u64),
    #[error("{0}")]
    BadRange(String),
    #[error("origin {0} is frozen after proof of equivocation; an operator must act")]
    Frozen(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("background task failed: {0}")]
    Join(String),
}

type Result<T, E = NodeError> = std::result::Result<T, E>;

/// One origin's log and the lock that serialises its writers.
#[derive(Debug)]
pub struct LogHandle {
    /// Held by whoever appends (own submissions or replication), across the whole commit.
    pub writer: tokio::sync::Mutex<()>,
    state: RwLock<LogState>,
}

impl LogHandle {
    /// Snapshot of the committed state.
    pub fn state(&self) -> LogState {
        self.state.read().expect("log state lock").clone()
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

/// A successful submission.
#[derive(Debug)]
pub struct Submitted {
    /// `(index, duplicate)` per input signal.
    pub entries: Vec<(u64, bool)>,
    /// Checkpoint covering them.
    pub checkpoint: StoredCheckpoint,
}

/// One signal to submit, already parsed.
#[derive(Debug, Clone)]
pub struct NewSignal {
    /// Type.
    pub signal_type: SignalType,
    /// Raw hash.
    pub hash: Vec<u8>,
    /// PDQ quality, 0 when unknown.
    pub quality: u32,
}

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

/// A committed change to some origin's log, announced to the index and to watchers.
#[derive(Debug, Clone)]
pub struct CommitEvent {
    /// Origin name.
    pub origin: String,
    /// Its new checkpoint.
    pub checkpoint: pb::Checkpoint,
    /// First new index.
    pub first_index: u64,
}

/// The node.
pub struct Node {
    config: Config,
    store: Store,
    signer: OriginSigner,
    trust: BTreeMap<String, OriginTrust>,
    logs: RwLock<HashMap<String, Arc<LogHandle>>>,
    catalog: Arc<Catalog>,
    peers: crate::federation::PeerTable,
    hasher: crate::hashing::ImageHasher,
    events: broadcast::Sender<CommitEvent>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("origin", &self.signer.public())
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NodeError::Join(e.to_string()))
}

impl Node {
    /// Opens the data dir (creating identity and store on first start) and signs the empty
    /// checkpoint of a new log, so every log always has a signed checkpoint.
    pub async fn open(config: Config) -> Result<Arc<Self>> {
        Self::open_with_metrics(config, Default::default()).await
    }

    /// [`Node::open`], recording into `metrics` (created before the node, so the metrics
    /// endpoint and the gRPC guard can serve while it loads).
    pub async fn open_with_metrics(
        config: Config,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| IdentityError::Io {
            path: config.data_dir.clone(),
            source,
        })?;
        let (signer, created) = identity::load_or_create(&config.data_dir, &config.origin)?;
        if created {
            tracing::info!(key = %signer.public().verifier_key(), "created a new identity");
        }
        let store = {
            let dir = config.data_dir.join("db");
            blocking(move || Store::open(&dir)).await??
        };
        let mut trust = BTreeMap::new();
        trust.insert(
            config.origin.clone(),
            OriginTrust {
                key: signer.public().clone(),
                policy: None,
            },
        );
        for t in &config.trust {
            if t.origin == config.origin {
                continue;
            }
            let key = config
                .trusted_key(t)
                .map_err(|e| NodeError::BadRange(e.to_string()))?;
            trust.insert(
                t.origin.clone(),
                OriginTrust {
                    key,
                    policy: Some(t.policy),
                },
            );
        }
        let mut logs = HashMap::new();
        let records = store.origins()?;
        let mut next_id = store.next_origin_id()?;
        for r in records {
            logs.insert(
                r.name.clone(),
                Arc::new(LogHandle {
                    writer: Default::default(),
                    state: RwLock::new(LogState {
                        id: r.id,
                        name: r.name,
                        registered: true,
                        checkpoint: r.checkpoint,
                    }),
                }),
            );
        }
        for name in trust.keys() {
            if !logs.contains_key(name) {
                logs.insert(
                    name.clone(),
                    Arc::new(LogHandle {
                        writer: Default::default(),
                        state: RwLock::new(LogState {
                            id: next_id,
                            name: name.clone(),
                            registered: false,
                            checkpoint: None,
                        }),
                    }),
                );
                next_id += 1;
            }
        }
        // Rebuild the catalog (active set + match index) from the committed leaves.
        let catalog = Arc::new(Catalog::new());
        catalog.set_own_origin(
            logs.get(&config.origin)
                .map(|l| l.state().id)
                .expect("own log registered above"),
        );
        for (name, log) in &logs {
            let state = log.state();
            let matched = trust.get(name).is_some_and(OriginTrust::matched);
            catalog.set_origin(state.id, name, matched);
            let (s, c) = (store.clone(), catalog.clone());
            let invalid = blocking(move || crate::log::replay(&s, &c, &state)).await??;
            if invalid > 0 {
                tracing::warn!(origin = %name, invalid, "log holds invalid entries; they are not matched");
            }
        }
        catalog.compact();
        tracing::info!(active = catalog.len(), "catalog loaded");
        let (events, _) = broadcast::channel(1024);
        let hasher =
            crate::hashing::ImageHasher::new(&config.hashing).map_err(NodeError::BadRange)?;
        let node = Arc::new(Self {
            config,
            store,
            signer,
            trust,
            logs: RwLock::new(logs),
            catalog,
            peers: Default::default(),
            hasher,
            events,
            metrics,
        });
        if node.own_log().state().checkpoint.is_none() {
            node.append_own(Vec::new()).await?;
        }
        Ok(node)
    }

    /// The node's Prometheus series.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store (for the index and federation).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This node's origin name.
    pub fn origin(&self) -> &str {
        self.signer.public().name()
    }

    /// This node's public key.
    pub fn public_key(&self) -> &OriginKey {
        self.signer.public()
    }

    /// Trust settings per origin (own origin included).
    pub fn trust(&self) -> &BTreeMap<String, OriginTrust> {
        &self.trust
    }

    /// The in-memory catalog of active entries.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The image hasher (uploads are hashed, then dropped).
    pub fn hasher(&self) -> &crate::hashing::ImageHasher {
        &self.hasher
    }

    /// Peer status and untrusted offers.
    pub fn peers(&self) -> &crate::federation::PeerTable {
        &self.peers
    }

    /// The latest checkpoint of every log that has one (what the node offers peers).
    pub fn held_checkpoints(&self) -> Vec<pb::Checkpoint> {
        self.logs()
            .into_iter()
            .filter_map(|(name, log)| log.state().checkpoint.map(|c| to_pb(&name, &c)))
            .collect()
    }

    /// Subscribes to commits of every log.
    pub fn subscribe(&self) -> broadcast::Receiver<CommitEvent> {
        self.events.subscribe()
    }

    /// The log of `origin`, if the node holds or follows it.
    pub fn log(&self, origin: &str) -> Result<Arc<LogHandle>> {
        self.logs
            .read()
            .expect("logs lock")
            .get(origin)
            .cloned()
            .ok_or_else(|| NodeError::UnknownOrigin(origin.to_owned()))
    }

    /// All logs, by name.
    pub fn logs(&self) -> Vec<(String, Arc<LogHandle>)> {
        let mut v: Vec<_> = self
            .logs
            .read()
            .expect("logs lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn own_log(&self) -> Arc<LogHandle> {
        self.log(self.origin()).expect("own log always exists")
    }

    /// Adds ADDs for every signal not already active in the own log; returns the index of each.
    pub async fn submit(&self, signals: Vec<NewSignal>, listing: Listing) -> Result<Submitted> {
        if signals.is_empty() {
            return Err(NodeError::EmptyBatch);
        }
        if signals.len() > self.config.limits.max_batch {
            return Err(NodeError::BatchTooLarge {
                got: signals.len(),
                max: self.config.limits.max_batch,
            });
        }
        let log = self.own_log();
        let _writer = log.writer.lock().await;
        let state = log.state();
        let created = now_ms();
        let mut entries = Vec::with_capacity(signals.len());
        let mut leaves = Vec::new();
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
            let leaf = entry::encode_add(
                AddEntry {
                    signal_type: s.signal_type.name().to_owned(),
                    hash: s.hash.clone(),
                    quality: s.quality,
                    labels: listing.labels.clone(),
                    legal_basis: listing.legal_basis.clone(),
                    case_ref: listing.case_ref.clone(),
                },
                created,
            )
            .map_err(|source| NodeError::BadEntry { position, source })?;
            leaves.push(leaf);
            in_batch.insert((s.signal_type, s.hash), index);
            entries.push((index, false));
        }
        let checkpoint = if leaves.is_empty() {
            state.checkpoint.clone().expect("own log is initialised")
        } else {
            self.append_own_locked(&log, state, leaves).await?
        };
        Ok(Submitted {
            entries,
            checkpoint,
        })
    }

    /// Appends a RETRACT of the own log's ADD at `index`; returns its index and checkpoint.
    pub async fn retract(&self, index: u64, reason: &str) -> Result<(u64, StoredCheckpoint)> {
        let log = self.own_log();
        let _writer = log.writer.lock().await;
        let state = log.state();
        let no_such = || NodeError::NoSuchEntry {
            origin: state.name.clone(),
            index,
            size: state.size(),
        };
        if index >= state.size() {
            return Err(no_such());
        }
        let data = self.store.leaf(state.id, index)?.ok_or_else(no_such)?;
        if !matches!(entry::decode(&data), Ok(Decoded::Add { .. })) {
            return Err(NodeError::NotAnAdd(index));
        }
        if !self.catalog.is_active(state.id, index) {
            return Err(NodeError::AlreadyRetracted(index));
        }
        let leaf = entry::encode_retract(index, &leaf_hash(&data), reason, now_ms()).map_err(
            |source| NodeError::BadEntry {
                position: 0,
                source,
            },
        )?;
        let retract_index = state.size();
        let cp = self.append_own_locked(&log, state, vec![leaf]).await?;
        Ok((retract_index, cp))
    }

    async fn append_own(&self, leaves: Vec<Vec<u8>>) -> Result<StoredCheckpoint> {
        let log = self.own_log();
        let _writer = log.writer.lock().await;
        let state = log.state();
        self.append_own_locked(&log, state, leaves).await
    }

    /// Validates, hashes, signs and durably commits a batch of the own log. The caller holds
    /// the log's writer lock.
    async fn append_own_locked(
        &self,
        log: &LogHandle,
        state: LogState,
        leaves: Vec<Vec<u8>>,
    ) -> Result<StoredCheckpoint> {
        let (store, catalog, st) = (self.store.clone(), self.catalog.clone(), state.clone());
        let prepared =
            blocking(move || prepare_append(&store, &catalog, &st, leaves, Validation::Strict))
                .await??;
        let signed = self.signer.sign_checkpoint(prepared.size, prepared.root)?;
        let mut commit = prepared.commit;
        commit.checkpoint = StoredCheckpoint::from(&signed);
        self.commit(log, state, commit, &prepared.plan).await
    }

    /// Writes a prepared commit (own or replicated), updates the catalog once it is durable,
    /// and announces it. The caller holds the log's writer lock.
    pub(crate) async fn commit(
        &self,
        log: &LogHandle,
        state: LogState,
        commit: crate::store::Commit,
        plan: &crate::log::Plan,
    ) -> Result<StoredCheckpoint> {
        let checkpoint = commit.checkpoint.clone();
        let first_index = commit.first_index;
        self.store.commit(commit).await?;
        self.catalog
            .apply(state.id, &plan.activate, &plan.deactivate);
        Ok(self.publish(log, state, checkpoint, first_index))
    }

    /// Makes a durable commit the log's state and announces it.
    fn publish(
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
            origin: state.name.clone(),
            checkpoint: to_pb(&state.name, &checkpoint),
            first_index,
        });
        checkpoint
    }

    /// Replicated batches with fewer activations are committed like own ones: a thread costs
    /// more than the overlap saves.
    const OVERLAP_MIN_ACTIVATIONS: usize = 8192;

    /// [`Node::commit`] for a verified batch of another origin's log, with the catalog's
    /// activations built while the store writes the batch instead of after it: for a follower
    /// catching up on a million entries the two take about as long as each other, and they run
    /// on different cores.
    ///
    /// The new entries may thus be matchable a moment before they are durable. That is safe for
    /// replicated entries only: the origin signed them, so they are listings whatever happens
    /// here. If the write fails, the activations are removed again before the error returns.
    /// Deactivations (retractions of earlier entries) still wait for the write. The caller holds
    /// the log's writer lock.
    pub(crate) async fn commit_replicated(
        &self,
        log: &LogHandle,
        state: LogState,
        commit: crate::store::Commit,
        plan: crate::log::Plan,
    ) -> Result<StoredCheckpoint> {
        let checkpoint = commit.checkpoint.clone();
        let first_index = commit.first_index;
        let (store, catalog, id) = (self.store.clone(), self.catalog.clone(), state.id);
        blocking(move || {
            let early = plan.activate.len() >= Self::OVERLAP_MIN_ACTIVATIONS;
            let (written, activated) = std::thread::scope(|scope| {
                // Without a thread (small batch, or none to be had), activate after the write.
                let activating = early
                    .then(|| {
                        std::thread::Builder::new()
                            .name("catalog-apply".into())
                            .spawn_scoped(scope, || catalog.apply(id, &plan.activate, &[]))
                            .ok()
                    })
                    .flatten();
                let written = store.commit_blocking(commit);
                let activated = activating
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .is_some();
                (written, activated)
            });
            match (written, activated) {
                (Ok(()), true) => catalog.apply(id, &[], &plan.deactivate),
                (Ok(()), false) => catalog.apply(id, &plan.activate, &plan.deactivate),
                (Err(e), true) => {
                    let added: Vec<u64> = plan.activate.iter().map(|a| a.index).collect();
                    catalog.apply(id, &[], &added);
                    return Err(e);
                }
                (Err(e), false) => return Err(e),
            }
            Ok(())
        })
        .await??;
        Ok(self.publish(log, state, checkpoint, first_index))
    }

    /// Latest checkpoint of `origin`.
    pub fn checkpoint(&self, origin: &str) -> Result<pb::Checkpoint> {
        let state = self.log(origin)?.state();
        state
            .checkpoint
            .as_ref()
            .map(|c| to_pb(origin, c))
            .ok_or_else(|| NodeError::UnknownOrigin(format!("{origin} (nothing replicated yet)")))
    }

    /// Checks a `[start, end)` range against the committed size; `end == 0` means the size.
    pub fn entry_range(&self, origin: &str, start: u64, end: u64) -> Result<(OriginId, u64, u64)> {
        let state = self.log(origin)?.state();
        let size = state.size();
        let end = if end == 0 { size } else { end };
        if start > end || end > size {
            return Err(NodeError::BadRange(format!(
                "range [{start}, {end}) is not within {origin}'s tree of size {size}"
            )));
        }
        Ok((state.id, start, end))
    }

    /// Inclusion proof of `index` in the tree of `tree_size` (0: latest).
    pub async fn inclusion_proof(
        &self,
        origin: &str,
        index: u64,
        tree_size: u64,
    ) -> Result<(u64, Vec<Hash>)> {
        let state = self.log(origin)?.state();
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
        let reader = self.store.hashes(state.id);
        let proof = blocking(move || merkle::inclusion_proof(index, size, &reader)).await??;
        Ok((size, proof))
    }

    /// Consistency proof from `old_size` to `new_size` (0: latest).
    pub async fn consistency_proof(
        &self,
        origin: &str,
        old_size: u64,
        new_size: u64,
    ) -> Result<(u64, Vec<Hash>)> {
        let state = self.log(origin)?.state();
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
        let reader = self.store.hashes(state.id);
        let proof = blocking(move || merkle::consistency_proof(old_size, new, &reader)).await??;
        Ok((new, proof))
    }

    /// Flushes the store (shutdown).
    pub fn flush(&self) -> Result<()> {
        Ok(self.store.flush()?)
    }
}

/// Wire form of a stored checkpoint.
pub fn to_pb(origin: &str, c: &StoredCheckpoint) -> pb::Checkpoint {
    pb::Checkpoint {
        origin: origin.to_owned(),
        tree_size: c.size,
        root_hash: c.root.0.to_vec(),
        signed_note: c.note.clone(),
    }
}

impl Node {
    /// Whether `origin` is frozen after proof of equivocation.
    pub fn is_frozen(&self, origin: &str) -> bool {
        matches!(self.store.meta_get(&frozen_key(origin)), Ok(Some(_)))
    }

    /// Freezes `origin` at its last good checkpoint until an operator unfreezes it.
    pub fn freeze(&self, origin: &str) -> Result<()> {
        tracing::error!(origin, "origin frozen after proof of equivocation");
        Ok(self.store.meta_set(&frozen_key(origin), b"1")?)
    }

    /// Records what a peer sent that was refused; returns the evidence id.
    pub fn record_evidence(&self, mut ev: pb::Evidence) -> Result<u64> {
        use prost::Message;
        ev.received_at_ms = now_ms();
        tracing::warn!(
            origin = %ev.origin, peer = %ev.peer, reason = %ev.reason, detail = %ev.detail,
            "refused material from a peer; kept as evidence"
        );
        self.metrics.rejected("peer", &ev.reason);
        Ok(self.store.add_evidence(&ev.encode_to_vec())?)
    }

    /// Evidence records of `origin` (all when empty), newest first, at most `limit` (0: 1000).
    pub fn evidence(&self, origin: &str, limit: usize) -> Result<Vec<pb::Evidence>> {
        use prost::Message;
        let limit = if limit == 0 { 1000 } else { limit.min(10_000) };
        let mut out = Vec::new();
        for item in self.store.evidence() {
            let (id, bytes) = item?;
            let Ok(mut ev) = pb::Evidence::decode(bytes.as_slice()) else {
                continue;
            };
            if origin.is_empty() || ev.origin == origin {
                ev.id = id;
                out.push(ev);
            }
        }
        out.reverse();
        out.truncate(limit);
        Ok(out)
    }

    /// Number of evidence records.
    pub fn evidence_count(&self) -> usize {
        self.store.evidence_count()
    }
}

fn frozen_key(origin: &str) -> String {
    format!("frozen/{origin}")
}
