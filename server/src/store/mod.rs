//! The one place that knows the on-disk format.
//!
//! Everything a log commit touches lives in one sled tree, `log`, under prefixed keys (see
//! [`keys`]): leaves, stored Merkle hashes, the latest checkpoint and the origin registry. A
//! commit is one [`sled::Batch`] on that tree, which sled applies atomically (all of it or none
//! of it survives a crash), followed by a flush before the caller is told it succeeded. One tree
//! with one batch is both simpler and much faster than a multi-tree sled transaction.
//!
//! Leaves and hashes are stored in **bundles** of [`BUNDLE`] (like the C2SP tlog-tiles data and
//! hash tiles): sled's cost is per key, so one key per 256 leaves instead of one per leaf makes
//! a 10,000-leaf commit ~80 writes instead of ~30,000. The last, partial bundle is rewritten by
//! the next commit; a single writer per origin (the log's writer lock) makes that safe.
//!
//! The active-ADD set is *not* stored: it is derived state, rebuilt from the leaves at start-up
//! into the in-memory catalog (`crate::catalog`), which the node needs anyway for matching.
//!
//! Evidence of misbehaving peers lives in its own tree ([`evidence`]): never part of a log
//! commit, it must survive even when the commit it explains was refused, and it is bounded in
//! bytes.
//!
//! The operator trail (who submitted and retracted what) is one more append-only tree
//! ([`trail`]), beside the log and never part of its commits.

mod bundle;
mod evidence;
pub mod keys;
mod reports;
mod trail;

pub use evidence::{EvidenceAdded, EvidenceEntry, EvidenceTotals, StoredEvidence};

use crate::store::keys::{Key, ORIGIN_ID_LEN};
use redline_proto::checkpoint::SignedCheckpoint;
use redline_proto::merkle::{Hash, HashReader};
use std::path::Path;
use thiserror::Error;

/// Leaves (and stored hashes) per sled key.
pub const BUNDLE: u64 = 256;

/// How long [`Store::open`] waits for sled's lock on the directory. A node restarted in place
/// (a supervisor's restart, a test reopening a store) can reach the lock while the previous
/// holder is still letting go: sled releases it when its last background thread drops the
/// file, a moment after the handle itself is gone. Waiting briefly turns that race into a
/// short delay; a directory held by a live process still fails, with a message that says so.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Version of the on-disk layout, written at creation and checked at every open.
pub const FORMAT_VERSION: u32 = 1;

/// A store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("store at {path} has on-disk format {found}, this build reads {FORMAT_VERSION}")]
    Format { path: String, found: u32 },
    #[error("corrupt store record {what}: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("too many origins (the id space of {0} is exhausted)")]
    TooManyOrigins(u32),
    #[error(
        "store at {path} is locked by another process (still locked after {waited_ms} ms); \
         is another redline-node running on this data dir?"
    )]
    Locked { path: String, waited_ms: u64 },
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Compact id of an origin inside this store (not part of the protocol).
pub type OriginId = u32;

/// A checkpoint as stored with its parsed fields: the size and root of the tree held, and the
/// origin's signed note that vouches for it.
///
/// The note either signs exactly `size` and `root` (`proof` is `None`: everything a node
/// commits of its own origin, and a replicated log caught up in one step), or signs a larger
/// tree of which the held one is a proven prefix (`proof` is `Some`: a follower catching up in
/// bounded steps commits each prefix once an RFC 9162 consistency proof shows it is part of the
/// origin's signed tree). Keeping the note and the proof, rather than an unsigned "size, root"
/// pair, lets the node show any auditor why it holds that prefix: verify the note, recompute
/// the prefix root from the stored leaves, check the proof with
/// `redline_proto::consistency::extends`. A prefix's note is never offered to peers as a
/// checkpoint (see [`StoredCheckpoint::offerable`]): it names entries the node does not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCheckpoint {
    /// Tree size held.
    pub size: u64,
    /// Root hash of the tree held.
    pub root: Hash,
    /// Exact signed note (of this tree, or of the larger one `proof` names).
    pub note: Vec<u8>,
    /// How the held tree is a prefix of the tree `note` signs, when it is not that tree.
    pub proof: Option<PrefixProof>,
}

/// The proof that a held tree is a prefix of a larger tree its origin signed: stored beside the
/// checkpoint (key `P`) while a follower catches up in steps, removed by the first commit of a
/// tree the note signs exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixProof {
    /// Size the note signs.
    pub signed_size: u64,
    /// Root the note signs.
    pub signed_root: Hash,
    /// RFC 9162 consistency path from the held tree to the signed one.
    pub hashes: Vec<Hash>,
}

impl PrefixProof {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40 + 32 * self.hashes.len());
        v.extend_from_slice(&self.signed_size.to_be_bytes());
        v.extend_from_slice(&self.signed_root.0);
        for h in &self.hashes {
            v.extend_from_slice(&h.0);
        }
        v
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 40 || !(bytes.len() - 40).is_multiple_of(32) {
            return Err(corrupt("prefix proof", "not 40 + 32n bytes"));
        }
        Ok(Self {
            signed_size: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            signed_root: Hash(bytes[8..40].try_into().expect("32 bytes")),
            hashes: bytes[40..]
                .chunks_exact(32)
                .map(|c| Hash(c.try_into().expect("32 bytes")))
                .collect(),
        })
    }
}

impl StoredCheckpoint {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40 + self.note.len());
        v.extend_from_slice(&self.size.to_be_bytes());
        v.extend_from_slice(&self.root.0);
        v.extend_from_slice(&self.note);
        v
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 40 {
            return Err(corrupt("checkpoint", "shorter than 40 bytes"));
        }
        Ok(Self {
            size: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            root: Hash(bytes[8..40].try_into().expect("32 bytes")),
            note: bytes[40..].to_vec(),
            proof: None,
        })
    }

    /// Whether peers may be offered this checkpoint: only a note the node fully holds (a
    /// follower that fetched it would otherwise ask for entries the node does not have).
    pub fn offerable(&self) -> bool {
        self.proof.is_none()
    }
}

impl From<&SignedCheckpoint> for StoredCheckpoint {
    fn from(c: &SignedCheckpoint) -> Self {
        Self {
            size: c.size,
            root: c.root,
            note: c.note.clone(),
            proof: None,
        }
    }
}

fn corrupt(what: &str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what: what.to_owned(),
        detail: detail.into(),
    }
}

/// An origin known to the store.
#[derive(Debug, Clone)]
pub struct OriginRecord {
    /// Local id.
    pub id: OriginId,
    /// Origin name.
    pub name: String,
    /// Latest committed checkpoint, if any.
    pub checkpoint: Option<StoredCheckpoint>,
}

/// Everything one log commit writes, applied atomically.
#[derive(Debug)]
pub struct Commit {
    /// The origin, registered in this same batch if it is new.
    pub origin: OriginId,
    /// Its name (written with the registration).
    pub origin_name: String,
    /// Whether the origin must be registered by this commit.
    pub register: bool,
    /// Index of `leaves[0]`.
    pub first_index: u64,
    /// New leaves, verbatim.
    pub leaves: Vec<Vec<u8>>,
    /// Stored index of `hashes[0]`.
    pub first_hash_index: u64,
    /// New stored Merkle hashes.
    pub hashes: Vec<Hash>,
    /// The checkpoint covering every leaf.
    pub checkpoint: StoredCheckpoint,
}

/// Opens sled in `dir`, retrying while its directory lock is held, for at most `wait`.
fn open_waiting_for_lock(dir: &Path, wait: std::time::Duration) -> Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(256 * 1024 * 1024)
            .open()
        {
            Err(e) if is_lock_held(&e) => {
                if started.elapsed() >= wait {
                    return Err(StoreError::Locked {
                        path: dir.display().to_string(),
                        waited_ms: started.elapsed().as_millis() as u64,
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return Ok(other?),
        }
    }
}

/// sled reports a held directory lock only as an `Other` I/O error with this text (sled 0.34,
/// `config.rs`), so the text is the one thing to match.
fn is_lock_held(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Handle on the node's sled database.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    log: sled::Tree,
    evidence: evidence::EvidenceTree,
    /// The operator trail ([`trail`]).
    trail: sled::Tree,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = open_waiting_for_lock(dir, LOCK_WAIT)?;
        let log = db.open_tree("log")?;
        let evidence = evidence::EvidenceTree::open(&db)?;
        let trail = db.open_tree(trail::TREE)?;
        match log.get(Key::format())? {
            None => {
                log.insert(Key::format(), &FORMAT_VERSION.to_be_bytes())?;
                log.flush()?;
            }
            Some(v) => {
                let found = u32::from_be_bytes(
                    v.as_ref()
                        .try_into()
                        .map_err(|_| corrupt("format", "not 4 bytes"))?,
                );
                if found != FORMAT_VERSION {
                    return Err(StoreError::Format {
                        path: dir.display().to_string(),
                        found,
                    });
                }
            }
        }
        Ok(Self {
            db,
            log,
            evidence,
            trail,
        })
    }

    /// Every registered origin with its latest checkpoint.
    pub fn origins(&self) -> Result<Vec<OriginRecord>> {
        let mut out = Vec::new();
        for item in self.log.scan_prefix(Key::origin_name_prefix()) {
            let (k, v) = item?;
            let name = String::from_utf8(k[Key::origin_name_prefix().len()..].to_vec())
                .map_err(|_| corrupt("origin name", "not UTF-8"))?;
            let id = OriginId::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| corrupt("origin id", "not 4 bytes"))?,
            );
            let mut checkpoint = self
                .log
                .get(Key::checkpoint(id))?
                .map(|b| StoredCheckpoint::decode(&b))
                .transpose()?;
            if let Some(cp) = checkpoint.as_mut() {
                cp.proof = self
                    .log
                    .get(Key::prefix_proof(id))?
                    .map(|b| PrefixProof::decode(&b))
                    .transpose()?;
            }
            out.push(OriginRecord {
                id,
                name,
                checkpoint,
            });
        }
        out.sort_by_key(|o| o.id);
        Ok(out)
    }

    /// The id the next new origin gets.
    pub fn next_origin_id(&self) -> Result<OriginId> {
        let max = self.origins()?.iter().map(|o| o.id).max();
        match max {
            None => Ok(0),
            Some(m) => m.checked_add(1).ok_or(StoreError::TooManyOrigins(m)),
        }
    }

    /// The leaf at `index`.
    pub fn leaf(&self, origin: OriginId, index: u64) -> Result<Option<Vec<u8>>> {
        let Some(bundle) = self.log.get(Key::leaf_bundle(origin, index / BUNDLE))? else {
            return Ok(None);
        };
        Ok(bundle::nth(&bundle, (index % BUNDLE) as usize)?.map(<[u8]>::to_vec))
    }

    /// Leaves `[start, end)` in order, lazily, a bundle at a time.
    pub fn leaves(
        &self,
        origin: OriginId,
        start: u64,
        end: u64,
    ) -> impl Iterator<Item = Result<(u64, Vec<u8>)>> + Send + 'static {
        let bundles = if start >= end {
            self.log
                .range(Key::leaf_bundle(origin, 0)..Key::leaf_bundle(origin, 0))
        } else {
            self.log.range(
                Key::leaf_bundle(origin, start / BUNDLE)
                    ..=Key::leaf_bundle(origin, (end - 1) / BUNDLE),
            )
        };
        bundles.flat_map(move |item| {
            let out: Vec<Result<(u64, Vec<u8>)>> = match item {
                Err(e) => vec![Err(e.into())],
                Ok((k, v)) => {
                    let first = Key::leaf_bundle_no(&k) * BUNDLE;
                    match bundle::split(&v) {
                        Err(e) => vec![Err(e)],
                        Ok(parts) => parts
                            .into_iter()
                            .enumerate()
                            .map(|(i, p)| (first + i as u64, p))
                            .filter(|(i, _)| *i >= start && *i < end)
                            .map(|(i, p)| Ok((i, p.to_vec())))
                            .collect(),
                    }
                }
            };
            out
        })
    }

    /// Stored Merkle hashes of one origin, as a [`HashReader`] for `redline_proto::merkle`.
    /// A failed read reaches the tree code only as "indexes not in tree"; the reader keeps what
    /// really failed ([`StoreHashes::failure`]). Prefer [`Store::with_hashes`], which returns it.
    pub fn hashes(&self, origin: OriginId) -> StoreHashes {
        StoreHashes {
            tree: self.log.clone(),
            origin,
            failure: Default::default(),
        }
    }

    /// Runs a tree computation `f` over `origin`'s stored hashes. If a read failed (a sled error,
    /// or a hash missing below the committed size), that store error is returned instead of
    /// whatever `f` made of it, so a disk error is never reported as a proof error.
    pub fn with_hashes<T>(&self, origin: OriginId, f: impl FnOnce(&StoreHashes) -> T) -> Result<T> {
        let reader = self.hashes(origin);
        let out = f(&reader);
        match reader.failure() {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Applies a commit atomically and waits until it is on disk.
    pub async fn commit(&self, c: Commit) -> Result<()> {
        let batch = self.batch(&c)?;
        self.log.apply_batch(batch)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Same as [`Store::commit`] for callers outside an async runtime.
    pub fn commit_blocking(&self, c: Commit) -> Result<()> {
        let batch = self.batch(&c)?;
        self.log.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    fn batch(&self, c: &Commit) -> Result<sled::Batch> {
        let mut b = sled::Batch::default();
        if c.register {
            b.insert(Key::origin_name(&c.origin_name), &c.origin.to_be_bytes());
        }
        // Leaves: extend the partial last bundle, then whole new bundles.
        let mut index = c.first_index;
        let mut leaves = c.leaves.iter().peekable();
        while leaves.peek().is_some() {
            let no = index / BUNDLE;
            let key = Key::leaf_bundle(c.origin, no);
            let mut value = if index.is_multiple_of(BUNDLE) {
                Vec::new()
            } else {
                let existing = self
                    .log
                    .get(&key)?
                    .ok_or_else(|| corrupt("leaf bundle", format!("bundle {no} missing")))?;
                if bundle::count(&existing)? as u64 != index % BUNDLE {
                    return Err(corrupt(
                        "leaf bundle",
                        format!("bundle {no} has wrong length"),
                    ));
                }
                existing.to_vec()
            };
            while index / BUNDLE == no {
                let Some(leaf) = leaves.next() else { break };
                bundle::push(&mut value, leaf);
                index += 1;
            }
            b.insert(key, value);
        }
        // Stored hashes: fixed 32-byte records, BUNDLE per key.
        let mut hindex = c.first_hash_index;
        let mut hashes = c.hashes.iter().peekable();
        while hashes.peek().is_some() {
            let no = hindex / BUNDLE;
            let key = Key::hash_bundle(c.origin, no);
            let mut value = if hindex.is_multiple_of(BUNDLE) {
                Vec::new()
            } else {
                let existing = self
                    .log
                    .get(&key)?
                    .ok_or_else(|| corrupt("hash bundle", format!("bundle {no} missing")))?;
                let keep = (hindex % BUNDLE) as usize * 32;
                if existing.len() < keep {
                    return Err(corrupt("hash bundle", format!("bundle {no} too short")));
                }
                existing[..keep].to_vec()
            };
            while hindex / BUNDLE == no {
                let Some(h) = hashes.next() else { break };
                value.extend_from_slice(&h.0);
                hindex += 1;
            }
            b.insert(key, value);
        }
        b.insert(Key::checkpoint(c.origin), c.checkpoint.encode());
        match &c.checkpoint.proof {
            Some(p) => b.insert(Key::prefix_proof(c.origin), p.encode()),
            None => b.remove(Key::prefix_proof(c.origin)),
        }
        Ok(b)
    }

    /// A small persistent setting (e.g. a frozen-origin marker).
    pub fn meta_get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.log.get(Key::meta(name))?.map(|v| v.to_vec()))
    }

    /// Sets a small persistent setting durably.
    pub fn meta_set(&self, name: &str, value: &[u8]) -> Result<()> {
        self.log.insert(Key::meta(name), value)?;
        self.log.flush()?;
        Ok(())
    }

    /// Removes a persistent setting durably.
    pub fn meta_remove(&self, name: &str) -> Result<()> {
        self.log.remove(Key::meta(name))?;
        self.log.flush()?;
        Ok(())
    }

    /// Flushes everything to disk (shutdown).
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

/// Reads one origin's stored Merkle hashes from sled, remembering the first read that failed.
#[derive(Debug, Clone)]
pub struct StoreHashes {
    tree: sled::Tree,
    origin: OriginId,
    /// Shared by clones: the computation that used any of them failed.
    failure: std::sync::Arc<std::sync::Mutex<Option<StoreError>>>,
}

impl StoreHashes {
    /// The first read that failed since the last call, if any.
    pub fn failure(&self) -> Option<StoreError> {
        self.failure.lock().map_or(None, |mut f| f.take())
    }

    fn fail(&self, e: StoreError) -> tlog_tiles::tlog::Error {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(e);
        }
        tlog_tiles::tlog::Error::IndexesNotInTree
    }

    fn read(&self, i: u64) -> Result<Hash> {
        let bundle = i / BUNDLE;
        let v = self
            .tree
            .get(Key::hash_bundle(self.origin, bundle))?
            .ok_or_else(|| {
                corrupt(
                    "hash bundle",
                    format!(
                        "origin {} bundle {bundle} is missing (stored hash {i} was asked for)",
                        self.origin
                    ),
                )
            })?;
        let at = (i % BUNDLE) as usize * 32;
        let a: [u8; 32] = v
            .get(at..at + 32)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| {
                corrupt(
                    "hash bundle",
                    format!(
                        "origin {} bundle {bundle} holds {} bytes, stored hash {i} is past them",
                        self.origin,
                        v.len()
                    ),
                )
            })?;
        Ok(Hash(a))
    }
}

impl HashReader for StoreHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::tlog::Error> {
        indexes
            .iter()
            .map(|&i| self.read(i).map_err(|e| self.fail(e)))
            .collect()
    }
}

const _: () = assert!(ORIGIN_ID_LEN == 4);

#[cfg(test)]
mod lock_tests {
    use super::*;
    use std::time::Duration;

    /// A directory still held when the wait runs out is refused with `Locked`, naming the path;
    /// nothing is opened twice.
    #[test]
    fn a_held_directory_is_refused_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let _held = Store::open(dir.path()).unwrap();
        let err = open_waiting_for_lock(dir.path(), Duration::from_millis(200)).unwrap_err();
        match &err {
            StoreError::Locked { path, waited_ms } => {
                assert!(path.contains(&*dir.path().to_string_lossy()), "{err}");
                assert!(*waited_ms >= 200, "{err}");
            }
            other => panic!("expected Locked, got {other}"),
        }
    }

    /// A lock let go during the wait (the previous holder finishing its shutdown) is taken, and
    /// the data written before is there.
    #[test]
    fn a_lock_released_during_the_wait_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        first.db.insert(b"probe", b"kept").unwrap();
        first.db.flush().unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(first);
        });
        let db = open_waiting_for_lock(dir.path(), Duration::from_secs(10)).unwrap();
        release.join().unwrap();
        assert_eq!(db.get(b"probe").unwrap().as_deref(), Some(&b"kept"[..]));
    }
}
