//! Where the catalog snapshot lives, when it is trusted, and how it is written.
//!
//! **Load** (`Node::open`): `catalog.snapshot` in the data dir is read and checked — framing,
//! checksum, structure ([`Catalog::load_snapshot`]) — and then against the store: every origin
//! it covers must be registered under the same id, hold at least the covered leaves, and the
//! Merkle root of those leaves (from the stored tree hashes) must be the covered root. Logs are
//! append-only, so a covered prefix with the right root is exactly the leaves the snapshot was
//! derived from; only the leaves committed after it are replayed. Anything else — no file,
//! another version, a damaged byte, a store that does not hold what it covers — and the
//! snapshot is ignored (with a log line saying why) and every log is replayed: the snapshot is
//! derived state, never the only copy of anything.
//!
//! **Save** (graceful shutdown, and every `[matching] snapshot_interval_s` while the logs
//! change): every log's writer lock is taken (in name order, the one order any code takes two
//! in), so no batch is half applied and the coverage is exact; the bytes go to a private
//! temporary file under those locks (commits wait, Match queries do not), then the locks are
//! released before the file is fsynced, renamed into place and the directory fsynced. A crash at
//! any point leaves the previous snapshot or the new one, whole.

use super::logs::Logs;
use crate::catalog::{Catalog, Coverage, SnapshotSummary};
use crate::identity;
use crate::log::LogState;
use crate::store::{OriginId, Store};
use redline_index::snapshot::SnapshotError;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// File name of the snapshot in the data dir.
pub const FILE: &str = "catalog.snapshot";
const TMP: &str = "catalog.snapshot.tmp";
/// Buffer between the catalog and the file: big enough that writes are few, small next to an
/// index.
const BUFFER: usize = 1 << 20;

/// A catalog loaded from the snapshot, and per origin the first index still to replay.
#[derive(Debug)]
pub(super) struct Loaded {
    pub(super) catalog: Catalog,
    pub(super) replay_from: HashMap<OriginId, u64>,
}

/// Loads the snapshot in `data_dir` if it is there and agrees with `store`; `None` (logged)
/// means "replay every log".
pub(super) fn load(
    data_dir: &Path,
    store: &Store,
    states: &BTreeMap<String, LogState>,
) -> Option<Loaded> {
    let path = data_dir.join(FILE);
    let started = Instant::now();
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!("no catalog snapshot; replaying every log");
            return None;
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot open the catalog snapshot; replaying every log");
            return None;
        }
    };
    let loaded = file
        .metadata()
        .map_err(SnapshotError::from)
        .and_then(|m| Catalog::load_snapshot(BufReader::with_capacity(BUFFER, file), m.len()))
        .and_then(|(catalog, coverage)| {
            let checking = std::time::Instant::now();
            let replay_from = check_coverage(store, states, &coverage)?;
            tracing::debug!(
                ms = checking.elapsed().as_millis() as u64,
                "catalog snapshot coverage checked against the store"
            );
            Ok(Loaded {
                catalog,
                replay_from,
            })
        });
    match loaded {
        Ok(l) => {
            tracing::info!(
                active = l.catalog.len(),
                ms = started.elapsed().as_millis() as u64,
                "catalog loaded from its snapshot"
            );
            Some(l)
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "catalog snapshot not used; replaying every log");
            None
        }
    }
}

/// Each covered prefix must be a prefix of what the store holds, with the covered root.
fn check_coverage(
    store: &Store,
    states: &BTreeMap<String, LogState>,
    coverage: &[Coverage],
) -> Result<HashMap<OriginId, u64>, SnapshotError> {
    let stale = |m: String| SnapshotError::Incompatible(format!("stale: {m}"));
    let mut from = HashMap::new();
    for c in coverage {
        let state = states
            .get(&c.name)
            .filter(|s| s.id == c.origin && s.registered)
            .ok_or_else(|| {
                stale(format!(
                    "origin {} (id {}) is not in the store",
                    c.name, c.origin
                ))
            })?;
        if c.size > state.size() {
            return Err(stale(format!(
                "covers {} leaves of {}, the store holds {}",
                c.size,
                c.name,
                state.size()
            )));
        }
        let root = if c.size == state.size() {
            state.root()
        } else {
            store
                .with_hashes(state.id, |h| redline_proto::merkle::tree_root(c.size, h))
                .map_err(|e| stale(format!("reading {}'s tree: {e}", c.name)))?
                .map_err(|e| stale(format!("reading {}'s tree: {e}", c.name)))?
        };
        if root != c.root {
            return Err(stale(format!(
                "{}'s first {} leaves have another root than the snapshot's",
                c.name, c.size
            )));
        }
        from.insert(c.origin, c.size);
    }
    Ok(from)
}

/// Saves the catalog of `logs` into `data_dir` (see the module documentation).
pub(super) async fn save(
    logs: &Logs,
    catalog: Arc<Catalog>,
    data_dir: PathBuf,
) -> Result<SnapshotSummary, SnapshotError> {
    let started = Instant::now();
    let handles = logs.all();
    let mut guards = Vec::with_capacity(handles.len());
    for (_, h) in &handles {
        guards.push(h.lock().await);
    }
    let coverage: Vec<Coverage> = handles
        .iter()
        .map(|(_, h)| h.state())
        .filter(|s| s.registered && s.size() > 0)
        .map(|s| Coverage {
            origin: s.id,
            root: s.root(),
            size: s.size(),
            name: s.name,
        })
        .collect();
    let dir = data_dir.clone();
    let written = tokio::task::spawn_blocking(move || {
        let tmp = dir.join(TMP);
        let file = identity::create_private(&tmp)?;
        let (w, summary) =
            catalog.save_snapshot(BufWriter::with_capacity(BUFFER, file), &coverage)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        Ok::<_, SnapshotError>((file, summary))
    })
    .await
    .map_err(|e| SnapshotError::Io(std::io::Error::other(e.to_string())))?;
    let locked_ms = started.elapsed().as_millis() as u64;
    drop(guards);
    let (file, summary) = written?;
    tokio::task::spawn_blocking(move || {
        file.sync_all()?;
        drop(file);
        std::fs::rename(data_dir.join(TMP), data_dir.join(FILE))?;
        identity::sync_directory(&data_dir)
    })
    .await
    .map_err(|e| SnapshotError::Io(std::io::Error::other(e.to_string())))??;
    tracing::info!(
        entries = summary.entries,
        bytes = summary.bytes,
        commits_waited_ms = locked_ms,
        ms = started.elapsed().as_millis() as u64,
        "catalog snapshot saved"
    );
    Ok(summary)
}
