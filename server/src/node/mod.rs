//! The node's domain, one service per job. gRPC handlers and the federation loop call these
//! services; nothing outside this module touches the store, the catalog or a log's writer lock.
//!
//! - [`OwnLog`]: the node's own origin: submit, retract, sign its checkpoints.
//! - [`Replica`]: other origins' logs: judge a verified checkpoint against what is held, and
//!   apply one with its fetched leaves — the one commit path for replicated data.
//! - [`Evidence`]: refused peer material (deduplicated, budgeted per origin), and frozen origins.
//! - [`Matching`]: queries against the catalog: radius, PDQ's dihedral variants, threading.
//! - [`Logs`]: every log the node holds, read-only: checkpoints, leaves and proofs for auditors
//!   and peers, and the commits as they happen.
//! - [`PeerStatus`]: what operators see of each peer (the federation loop reports into it),
//!   and whether the node has caught up with them since it started ([`Readiness`]).
//! - [`OperatorTrail`]: who submitted, retracted or read the operator view (token names and
//!   log indexes, never hashes).
//!
//! Nothing here knows about tonic; errors are [`NodeError`], mapped to a status in `grpc::error`.

pub mod catalog_snapshot;
pub mod evidence;
pub mod logs;
pub mod matching;
pub mod operator_trail;
pub mod own_log;
pub mod peers;
pub mod replica;
pub mod reports;

pub use evidence::{Evidence, Reason, Report};
pub use logs::{CommitEvent, LeafChunks, LogHandle, Logs, OriginTrust};
pub use matching::{Answer, Matching, Query, QueryHits, VideoThresholds};
pub use operator_trail::{Actor, OperatorTrail};
pub use own_log::{Listing, OwnLog, Receipt, Submitted, Upload};
pub use peers::{PeerState, PeerStatus, Readiness};
pub use replica::{Applied, Committed, Judged, Replica};
pub use reports::Reports;

use crate::catalog::Catalog;
use crate::config::{Config, ConfigError};
use crate::hashing::{ImageError, ImageHasher, VideoHashError, VideoHasher};
use crate::identity::{self, IdentityError};
use crate::log::{LogError, LogState};
use crate::metrics::{Gauges, Metrics};
use crate::store::{Store, StoreError, StoredCheckpoint};
use redline_proto::checkpoint::{CheckpointError, OriginKey};
use redline_proto::entry::EntryError;
use redline_proto::merkle::ProofError;
use redline_proto::pb;
use redline_proto::signal::{SignalError, SignalType};
use std::collections::BTreeMap;
use std::sync::Arc;
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
    #[error("a match request needs `signals` or an `image`")]
    EmptyQuery,
    #[error("a reason is required: `reason` is empty")]
    NoReason,
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Video(#[from] VideoHashError),
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
    #[error("page_token {0:?} is not one this node gave out")]
    BadPageToken(String),
    #[error("leaves of {origin} from {at} are missing below its checkpoint")]
    MissingLeaves { origin: String, at: u64 },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("cannot write a tlog-proof: {0}")]
    TlogProof(#[from] redline_proto::proof::TlogProofError),
    #[error(transparent)]
    Tile(#[from] redline_proto::tiles::TileError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    VictimReport(#[from] reports::ReportError),
    #[error("background task failed: {0}")]
    Join(String),
}

type Result<T, E = NodeError> = std::result::Result<T, E>;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NodeError::Join(e.to_string()))
}

/// One signal to submit or look up, already parsed.
#[derive(Debug, Clone)]
pub struct NewSignal {
    /// Type.
    pub signal_type: SignalType,
    /// Raw hash.
    pub hash: Vec<u8>,
    /// PDQ quality, 0 when unknown.
    pub quality: u32,
}

/// A signal as a caller sent it (or as the node computed it from an image): parsed, and its
/// hex as written, which answers echo back.
#[derive(Debug, Clone)]
pub struct SentSignal {
    /// The parsed signal.
    pub signal: NewSignal,
    /// Its value as the caller wrote it (any case), or as computed (lowercase).
    pub hex: String,
}

impl From<redline_hashing::ComputedSignal> for SentSignal {
    fn from(s: redline_hashing::ComputedSignal) -> Self {
        SentSignal {
            hex: s.hex(),
            signal: NewSignal {
                signal_type: s.signal_type,
                hash: s.bytes,
                quality: s.quality.map_or(0, u32::from),
            },
        }
    }
}

/// Wire form of a stored checkpoint.
pub fn to_pb(origin: &str, c: &StoredCheckpoint) -> pb::Checkpoint {
    pb::Checkpoint {
        origin: origin.to_owned(),
        tree_size: c.size,
        root_hash: c.root.0.to_vec(),
        signed_note: c.note.clone(),
        prefix: c.proof.as_ref().map(|p| pb::PrefixProof {
            consistency_proof: p.hashes.iter().map(|h| h.0.to_vec()).collect(),
        }),
    }
}

/// One origin as operators and auditors see it.
#[derive(Debug, Clone)]
pub struct OriginOverview {
    /// Origin name.
    pub origin: String,
    /// Its verifier key, when the node trusts it (own origin included).
    pub verifier_key: Option<String>,
    /// `own`, `accept`, `replicate`, `reject`, or `untrusted` (offered by a peer only).
    pub policy: &'static str,
    /// Latest committed checkpoint, if any.
    pub checkpoint: Option<StoredCheckpoint>,
    /// Whether it is frozen after proof of equivocation.
    pub frozen: bool,
    /// Its active (not retracted) entries.
    pub active_entries: u64,
}

/// What the `Status` call reports.
#[derive(Debug, Clone)]
pub struct Overview {
    /// This node's origin.
    pub origin: String,
    /// Its verifier key.
    pub verifier_key: String,
    /// Every log held, then origins peers offered that are not trusted.
    pub origins: Vec<OriginOverview>,
    /// Every peer with its sync state.
    pub peers: Vec<(String, PeerState)>,
    /// Evidence records kept.
    pub evidence_count: u64,
}

/// How the catalog came back at the last start: from its snapshot plus the leaves after it, or
/// by replaying every log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Startup {
    /// The catalog snapshot was loaded and agreed with the store.
    pub from_snapshot: bool,
    /// Leaves replayed into the catalog (all of them without a snapshot).
    pub replayed_leaves: u64,
    /// Milliseconds from opening the store to a loaded catalog.
    pub catalog_ms: u64,
}

/// The node: its services over one store and one catalog.
pub struct Node {
    config: Config,
    key: OriginKey,
    logs: Arc<Logs>,
    /// Held here only to save its snapshot; every service reaches it through its own handle.
    catalog: Arc<Catalog>,
    startup: Startup,
    own: OwnLog,
    replica: Replica,
    evidence: Arc<Evidence>,
    matching: Matching,
    peers: PeerStatus,
    metrics: Arc<Metrics>,
    trail: OperatorTrail,
    reports: Reports,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("origin", &self.key)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Opens the data dir (creating identity and store on first start) and signs the empty
    /// checkpoint of a new log, so every log always has a signed checkpoint.
    pub async fn open(config: Config) -> Result<Arc<Self>> {
        Self::open_with_metrics(config, Default::default()).await
    }

    /// [`Node::open`], recording into `metrics` (created before the node, so the metrics
    /// endpoint and the gRPC guard can serve while it loads).
    pub async fn open_with_metrics(config: Config, metrics: Arc<Metrics>) -> Result<Arc<Self>> {
        identity::prepare_data_dir(&config.data_dir)?;
        let store = {
            let dir = config.data_dir.join(identity::STORE_DIR);
            blocking(move || Store::open(&dir)).await??
        };
        // The store first: a key may only be created when no log of this origin was signed.
        let signed_log = store
            .origins()?
            .into_iter()
            .find(|r| r.name == config.origin)
            .map(|r| r.checkpoint.map_or(0, |c| c.size));
        let (signer, created) = identity::open(&config.data_dir, &config.origin, signed_log)?;
        if created {
            tracing::info!(key = %signer.public().verifier_key(), "created a new identity");
        }
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
            trust.insert(
                t.origin.clone(),
                OriginTrust {
                    key: config.trusted_key(t)?,
                    policy: Some(t.policy),
                },
            );
        }
        let mut states = BTreeMap::new();
        let mut next_id = store.next_origin_id()?;
        for r in store.origins()? {
            states.insert(
                r.name.clone(),
                LogState {
                    id: r.id,
                    name: r.name,
                    registered: true,
                    checkpoint: r.checkpoint,
                },
            );
        }
        for name in trust.keys() {
            if !states.contains_key(name) {
                states.insert(
                    name.clone(),
                    LogState {
                        id: next_id,
                        name: name.clone(),
                        registered: false,
                        checkpoint: None,
                    },
                );
                next_id += 1;
            }
        }
        // The catalog (active set + match index): its snapshot plus the leaves committed after
        // it, or every committed leaf.
        let catalog_started = std::time::Instant::now();
        let (catalog, replay_from, from_snapshot) = {
            let (dir, s, st) = (config.data_dir.clone(), store.clone(), states.clone());
            match blocking(move || catalog_snapshot::load(&dir, &s, &st)).await? {
                Some(l) => (Arc::new(l.catalog), l.replay_from, true),
                None => (Arc::new(Catalog::new()), Default::default(), false),
            }
        };
        let loaded_entries = catalog.len() as u64;
        let replay_started = std::time::Instant::now();
        let mut replayed = 0;
        for (name, state) in &states {
            let matched = trust.get(name).is_some_and(OriginTrust::matched);
            catalog.set_origin(state.id, name, matched);
            let from = replay_from.get(&state.id).copied().unwrap_or(0);
            replayed += state.size() - from;
            let (s, c, st) = (store.clone(), catalog.clone(), state.clone());
            let invalid = blocking(move || crate::log::replay(&s, &c, &st, from)).await??;
            if invalid > 0 {
                tracing::warn!(origin = %name, invalid, "log holds invalid entries; they are not matched");
            }
        }
        tracing::info!(
            leaves = replayed,
            ms = replay_started.elapsed().as_millis() as u64,
            "logs replayed into the catalog"
        );
        // A replay leaves many small segments, which a compaction rebuilds as a few large ones
        // (the fastest searches). A loaded snapshot already has its layout: rebuilding it would
        // cost what the snapshot saves, so only a long tail after it is worth one.
        if !from_snapshot || replayed > loaded_entries / 4 {
            catalog.compact();
        }
        let startup = Startup {
            from_snapshot,
            replayed_leaves: replayed,
            catalog_ms: catalog_started.elapsed().as_millis() as u64,
        };
        tracing::info!(
            active = catalog.len(),
            from_snapshot = startup.from_snapshot,
            replayed_leaves = replayed,
            ms = startup.catalog_ms,
            "catalog loaded"
        );
        let hashing = config.hashing.parsed()?;
        let hasher = ImageHasher::new(hashing.limits, hashing.signal_types);
        let video_hasher = {
            let (limits, sampling) = config.video.parsed();
            VideoHasher::new(limits, sampling)
        };
        let logs = Arc::new(Logs::new(
            store.clone(),
            catalog.clone(),
            trust,
            states,
            broadcast::channel(1024).0,
        ));
        let evidence = {
            let (s, m, max) = (store.clone(), metrics.clone(), config.evidence.max_bytes);
            Arc::new(blocking(move || Evidence::open(s, m, max)).await??)
        };
        let key = signer.public().clone();
        let own = OwnLog::new(
            logs.clone(),
            store.clone(),
            catalog.clone(),
            signer,
            config.limits.max_batch,
            hasher.clone(),
            video_hasher.clone(),
        )?;
        own.init().await?;
        let readiness = Readiness::for_config(&config);
        let trail_store = store.clone();
        let reports = Reports::new(store.clone(), config.report.clone());
        let node = Arc::new(Self {
            replica: Replica::new(logs.clone(), store, catalog.clone(), evidence.clone()),
            catalog: catalog.clone(),
            startup,
            matching: Matching::new(
                catalog,
                logs.clone(),
                (hasher, video_hasher),
                config.matching.clone(),
                metrics.clone(),
            ),
            config,
            key,
            logs,
            own,
            evidence,
            peers: PeerStatus::new(readiness),
            trail: OperatorTrail::new(trail_store),
            metrics,
            reports,
        });
        Ok(node)
    }

    /// The node's own log: submit, retract.
    pub fn own_log(&self) -> &OwnLog {
        &self.own
    }

    /// Other origins' logs: judging and applying what peers send.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Evidence of refused peer material, and frozen origins.
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    /// Match queries.
    pub fn matching(&self) -> &Matching {
        &self.matching
    }

    /// Every log held, read-only.
    pub fn logs(&self) -> &Logs {
        &self.logs
    }

    /// Peer sync status and untrusted offers.
    pub fn peers(&self) -> &PeerStatus {
        &self.peers
    }

    /// The operator audit trail.
    pub fn trail(&self) -> &OperatorTrail {
        &self.trail
    }

    /// Resumes `origin` after a freeze (see `Node.ResumeOrigin`): the evidence and the held
    /// log stay, and every later checkpoint is judged against that log as before. Returns
    /// whether it was frozen and its held checkpoint.
    pub fn resume_origin(
        &self,
        origin: &str,
        reason: &str,
    ) -> Result<(bool, Option<StoredCheckpoint>)> {
        if reason.trim().is_empty() {
            return Err(NodeError::NoReason);
        }
        if !self.logs.trust().contains_key(origin) {
            return Err(NodeError::UnknownOrigin(origin.to_owned()));
        }
        let was_frozen = self.evidence.unfreeze(origin)?;
        Ok((was_frozen, self.log(origin)?.state().checkpoint))
    }

    /// Victims' reports from the public page.
    pub fn reports(&self) -> &Reports {
        &self.reports
    }

    /// The node's Prometheus series.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This node's origin name.
    pub fn origin(&self) -> &str {
        self.key.name()
    }

    /// This node's public key.
    pub fn public_key(&self) -> &OriginKey {
        &self.key
    }

    /// Trust settings per origin (own origin included).
    pub fn trust(&self) -> &BTreeMap<String, OriginTrust> {
        self.logs.trust()
    }

    /// The log of `origin`, if the node holds or follows it.
    pub fn log(&self, origin: &str) -> Result<Arc<LogHandle>> {
        self.logs.get(origin)
    }

    /// Subscribes to commits of every log.
    pub fn subscribe(&self) -> broadcast::Receiver<CommitEvent> {
        self.logs.subscribe()
    }

    /// [`OwnLog::submit`].
    pub async fn submit(&self, signals: Vec<NewSignal>, listing: Listing) -> Result<Submitted> {
        self.own.submit(signals, listing).await
    }

    /// [`OwnLog::retract`].
    pub async fn retract(&self, index: u64, reason: &str) -> Result<(u64, StoredCheckpoint)> {
        self.own.retract(index, reason).await
    }

    /// Whether `origin` is frozen after proof of equivocation (a failed read counts as not).
    pub fn is_frozen(&self, origin: &str) -> bool {
        matches!(self.evidence.is_frozen(origin), Ok(true))
    }

    /// Number of evidence records.
    pub fn evidence_count(&self) -> usize {
        self.evidence.count()
    }

    /// Every origin trusted (own included) that has a checkpoint, for `ListOrigins`.
    pub fn trusted_origins(&self) -> Result<Vec<OriginOverview>> {
        let mut out = Vec::new();
        for (name, trust) in self.logs.trust() {
            let Some(checkpoint) = self.logs.get(name)?.state().checkpoint else {
                continue;
            };
            out.push(OriginOverview {
                origin: name.clone(),
                verifier_key: Some(trust.key.verifier_key()),
                policy: trust.policy_name(),
                checkpoint: Some(checkpoint),
                frozen: self.evidence.is_frozen(name)?,
                active_entries: 0,
            });
        }
        Ok(out)
    }

    /// Everything the `Status` call reports, read now.
    pub async fn overview(self: &Arc<Self>) -> Result<Overview> {
        let node = self.clone();
        blocking(move || node.overview_now()).await?
    }

    fn overview_now(&self) -> Result<Overview> {
        let mut origins = Vec::new();
        for (name, log) in self.logs.all() {
            let state = log.state();
            let trust = self.logs.trust().get(&name);
            origins.push(OriginOverview {
                verifier_key: trust.map(|t| t.key.verifier_key()),
                policy: trust.map_or("untrusted", OriginTrust::policy_name),
                frozen: self.evidence.is_frozen(&name)?,
                active_entries: self.logs.active_count(state.id),
                checkpoint: state.checkpoint,
                origin: name,
            });
        }
        for name in self.peers.untrusted() {
            if !origins.iter().any(|o| o.origin == name) {
                origins.push(OriginOverview {
                    origin: name,
                    verifier_key: None,
                    policy: "untrusted",
                    checkpoint: None,
                    frozen: false,
                    active_entries: 0,
                });
            }
        }
        Ok(Overview {
            origin: self.origin().to_owned(),
            verifier_key: self.key.verifier_key(),
            origins,
            peers: self.peers.snapshot(),
            evidence_count: self.evidence.count() as u64,
        })
    }

    /// Saves the catalog snapshot the next start loads (see [`catalog_snapshot`]): at
    /// shutdown, and periodically while the logs change.
    pub async fn save_catalog_snapshot(
        &self,
    ) -> std::result::Result<crate::catalog::SnapshotSummary, redline_index::snapshot::SnapshotError>
    {
        catalog_snapshot::save(
            &self.logs,
            self.catalog.clone(),
            self.config.data_dir.clone(),
        )
        .await
    }

    /// How the catalog came back at this start.
    pub fn startup(&self) -> Startup {
        self.startup
    }

    /// Total leaves held over every log: what a periodic snapshot compares to decide whether
    /// anything changed since the last one.
    pub fn total_leaves(&self) -> u64 {
        self.logs.all().iter().map(|(_, h)| h.state().size()).sum()
    }

    /// Flushes the store (shutdown).
    pub fn flush(&self) -> Result<()> {
        self.logs.flush()
    }
}

impl crate::metrics::GaugeSource for Node {
    fn gauges(&self) -> Gauges {
        Gauges {
            origins: self
                .logs
                .all()
                .into_iter()
                .map(|(name, log)| {
                    let state = log.state();
                    (name, state.size(), self.logs.active_count(state.id))
                })
                .collect(),
            peers: self
                .peers
                .snapshot()
                .into_iter()
                .map(|(url, s)| (url, s.last_sync_ms))
                .collect(),
            evidence: self.evidence.count() as u64,
        }
    }
}
