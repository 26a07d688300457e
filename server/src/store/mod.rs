//! The one place that knows the on-disk format.
//!
//! Everything a log commit touches lives in one sled tree, `log`, under prefixed keys (see
//! [`keys`]): leaves, stored Merkle hashes, the latest checkpoint, the active-ADD set and the
//! origin registry. A commit is one [`sled::Batch`] on that tree, which sled applies atomically
//! (all of it or none of it survives a crash), followed by a flush before the caller is told it
//! succeeded. One tree with one batch is both simpler and much faster than a multi-tree sled
//! transaction, which buffers every write in a per-transaction cache.
//!
//! Evidence of misbehaving peers lives in its own tree: it is append-only, never part of a log
//! commit, and must survive even when the commit it explains was refused.

pub mod keys;

use crate::store::keys::{Key, ORIGIN_ID_LEN};
use redline_proto::checkpoint::SignedCheckpoint;
use redline_proto::merkle::{Hash, HashReader};
use std::path::Path;
use thiserror::Error;

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
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Compact id of an origin inside this store (not part of the protocol).
pub type OriginId = u32;

/// A checkpoint as stored with its parsed fields.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCheckpoint {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
    /// Exact signed note.
    pub note: Vec<u8>,
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
        })
    }
}

impl From<&SignedCheckpoint> for StoredCheckpoint {
    fn from(c: &SignedCheckpoint) -> Self {
        Self {
            size: c.size,
            root: c.root,
            note: c.note.clone(),
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

/// One active (listed, not retracted) ADD, as the matching index needs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActiveAdd {
    /// Signal type name.
    pub signal_type: String,
    /// Raw hash bytes.
    pub hash: Vec<u8>,
    /// Log index of the ADD.
    pub index: u64,
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
    /// ADDs that become active.
    pub activate: Vec<ActiveAdd>,
    /// ADDs that retractions in this batch withdraw.
    pub deactivate: Vec<ActiveAdd>,
}

/// Handle on the node's sled database.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    log: sled::Tree,
    evidence: sled::Tree,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(256 * 1024 * 1024)
            .open()?;
        let log = db.open_tree("log")?;
        let evidence = db.open_tree("evidence")?;
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
        Ok(Self { db, log, evidence })
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
            let checkpoint = self
                .log
                .get(Key::checkpoint(id))?
                .map(|b| StoredCheckpoint::decode(&b))
                .transpose()?;
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
        Ok(self.log.get(Key::leaf(origin, index))?.map(|v| v.to_vec()))
    }

    /// Leaves `[start, end)` in order, lazily.
    pub fn leaves(
        &self,
        origin: OriginId,
        start: u64,
        end: u64,
    ) -> impl Iterator<Item = Result<(u64, Vec<u8>)>> + Send + 'static {
        self.log
            .range(Key::leaf(origin, start)..Key::leaf(origin, end))
            .map(|item| {
                let (k, v) = item?;
                Ok((Key::leaf_index(&k), v.to_vec()))
            })
    }

    /// Stored Merkle hashes of one origin.
    pub fn hashes(&self, origin: OriginId) -> StoreHashes {
        StoreHashes {
            tree: self.log.clone(),
            origin,
        }
    }

    /// Log index of an active ADD of `hash` in `origin`'s log, if any.
    pub fn active_index(
        &self,
        origin: OriginId,
        signal_type: &str,
        hash: &[u8],
    ) -> Result<Option<u64>> {
        match self
            .log
            .scan_prefix(Key::active_prefix(origin, signal_type, hash))
            .next()
        {
            Some(item) => Ok(Some(Key::active_index(&item?.0))),
            None => Ok(None),
        }
    }

    /// Whether the ADD at `index` is still active.
    pub fn is_active(&self, origin: OriginId, add: &ActiveAdd) -> Result<bool> {
        Ok(self.log.contains_key(Key::active(origin, add))?)
    }

    /// Every active ADD of every origin (for building the matching index).
    pub fn active_adds(&self) -> impl Iterator<Item = Result<(OriginId, ActiveAdd)>> {
        self.log
            .scan_prefix(Key::active_all_prefix())
            .map(|item| Key::parse_active(&item?.0))
    }

    /// Number of active ADDs of one origin.
    pub fn active_count(&self, origin: OriginId) -> usize {
        self.log
            .scan_prefix(Key::active_origin_prefix(origin))
            .count()
    }

    /// Applies a commit atomically and waits until it is on disk.
    pub async fn commit(&self, c: Commit) -> Result<()> {
        let batch = self.batch(&c);
        self.log.apply_batch(batch)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Same as [`Store::commit`] for callers outside an async runtime.
    pub fn commit_blocking(&self, c: Commit) -> Result<()> {
        let batch = self.batch(&c);
        self.log.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    fn batch(&self, c: &Commit) -> sled::Batch {
        let mut b = sled::Batch::default();
        if c.register {
            b.insert(Key::origin_name(&c.origin_name), &c.origin.to_be_bytes());
        }
        for (i, leaf) in c.leaves.iter().enumerate() {
            b.insert(
                Key::leaf(c.origin, c.first_index + i as u64),
                leaf.as_slice(),
            );
        }
        for (i, h) in c.hashes.iter().enumerate() {
            b.insert(
                Key::hash(c.origin, c.first_hash_index + i as u64),
                h.0.as_slice(),
            );
        }
        for a in &c.activate {
            b.insert(Key::active(c.origin, a), &[]);
        }
        for a in &c.deactivate {
            b.remove(Key::active(c.origin, a));
        }
        b.insert(Key::checkpoint(c.origin), c.checkpoint.encode());
        b
    }

    /// Appends an evidence record; returns its id.
    pub fn add_evidence(&self, record: &[u8]) -> Result<u64> {
        let id = self.db.generate_id()?;
        self.evidence.insert(id.to_be_bytes(), record)?;
        self.evidence.flush()?;
        Ok(id)
    }

    /// Evidence records, oldest first.
    pub fn evidence(&self) -> impl Iterator<Item = Result<(u64, Vec<u8>)>> {
        self.evidence.iter().map(|item| {
            let (k, v) = item?;
            let id = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| corrupt("evidence id", "not 8 bytes"))?,
            );
            Ok((id, v.to_vec()))
        })
    }

    /// Number of evidence records.
    pub fn evidence_count(&self) -> usize {
        self.evidence.len()
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

/// Reads one origin's stored Merkle hashes from sled.
#[derive(Debug, Clone)]
pub struct StoreHashes {
    tree: sled::Tree,
    origin: OriginId,
}

impl HashReader for StoreHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::tlog::Error> {
        indexes
            .iter()
            .map(|&i| {
                let v = self
                    .tree
                    .get(Key::hash(self.origin, i))
                    .map_err(|_| tlog_tiles::tlog::Error::IndexesNotInTree)?
                    .ok_or(tlog_tiles::tlog::Error::IndexesNotInTree)?;
                let a: [u8; 32] = v
                    .as_ref()
                    .try_into()
                    .map_err(|_| tlog_tiles::tlog::Error::MalformedHash)?;
                Ok(Hash(a))
            })
            .collect()
    }
}

const _: () = assert!(ORIGIN_ID_LEN == 4);
