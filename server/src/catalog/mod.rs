//! The catalog: every active (listed, not retracted) ADD of every origin the node holds, in
//! memory, with a Hamming index per bit-hash signal type and an exact index for md5/sha256.
//!
//! It is the one in-memory view of "what is listed": matching searches it, submissions dedupe
//! against it, and retractions are checked against it. It is derived state, rebuilt from the
//! leaves in sled at start-up (`Node::open`) and updated under each log's writer lock right after
//! a commit is durable, so a hash is matchable as soon as its submit or sync call returns.
//!
//! # Bounded write-lock holds
//! Every Match query takes the catalog's read lock, so no write may hold it for long, whatever a
//! peer sends. A batch is applied in **slices** of at most [`SLICE`] entries per write-lock hold,
//! and the lock is handed to waiting readers between slices (`RwLockWriteGuard::bump`; the lock
//! is task-fair, so a reader waits for at most the slice in progress). Nothing that costs more
//! than the slice's own entries happens under the lock:
//! - a large run of bit hashes (at least [`STAGE_MIN`] of one type) is *staged* slice by slice
//!   (stored, not yet searched) while its index segments are built on another thread with no
//!   lock held; one more short hold then places the built segments (`HammingIndex::stage`,
//!   `RunBuilder`, `commit_staged`);
//! - index merges above [`BACKGROUND_MERGE_SLOTS`] and compactions of large indexes are built on
//!   background threads and swapped in (see [`spawn_merges`] and [`spawn_compaction`]);
//! - the index arrays are reserved once per batch, before its first slice; what grows inside a
//!   slice grows without copying (the index's blocked arrays and incrementally grown id map,
//!   the entry map's 256 shards, each ~1/256 of a rehash).
//!
//! Writers (`apply`, `compact`, the background compaction) are serialized by a mutex of their
//! own, so a staged run is never interleaved with another write to its index and a compaction
//! sees no writes while it copies; readers never wait for it.
//!
//! # What readers see of a batch
//! A reader sees each slice whole or not at all, and slices in order. Within one `apply`:
//! - exact-type ADDs become matchable slice by slice; a staged run of bit hashes becomes
//!   matchable all at once when its segments are placed (before that, `is_active` already says
//!   yes: the planner of the next batch of that origin runs after `apply` returns anyway);
//! - retractions (`deactivate`) are applied after every activation of the call, slice by slice;
//!   each retracted entry disappears from the entry map and its index in the same hold, so no
//!   search sees it half removed, and once gone it never comes back.
//! - An ADD retracted within its own batch is never in `activate` (the planner drops it), so no
//!   reader ever sees it: slicing cannot expose it.
//!
//! So every state a reader sees is between the states before and after the batch, entry by
//! entry: an ADD of the batch is either not yet matched or matched, a retraction either not yet
//! applied or applied. That is what a reader could see anyway of an origin whose checkpoints
//! arrive a few entries apart.

mod entries;
mod snapshot;

pub use snapshot::{Coverage, SnapshotSummary};

use crate::store::OriginId;
use parking_lot::{Mutex, RwLock, RwLockWriteGuard};
use redline_index::{BuiltRun, ExactIndex, HammingIndex, IndexOptions, MergeJob, RunBuilder};
use redline_proto::signal::{Distance, SignalType};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

/// Bits of an entry id holding the log index; the origin id sits above them.
const INDEX_BITS: u32 = 40;

/// Most entries (activations or deactivations) applied in one write-lock hold. At ~0.1-0.5 us
/// an entry in a release build that is 1-5 ms a hold, after which waiting Match queries run.
pub const SLICE: usize = 8192;

/// A hold also ends once it has lasted this long (checked every [`CHUNK`] entries), whatever
/// the build: an unoptimised debug build takes ~10 us an entry, 80 ms for a full slice.
pub const HOLD_BUDGET: std::time::Duration = std::time::Duration::from_millis(4);

/// Entries applied between checks of [`HOLD_BUDGET`].
const CHUNK: usize = 256;

/// Runs of at least this many bit hashes of one type in one batch are staged and their segments
/// built off the lock. Smaller ones go to the index's insert buffer, sealed inline at 2,048.
pub const STAGE_MIN: usize = 2048;

/// The catalog's handle of one log entry.
pub fn entry_id(origin: OriginId, index: u64) -> u64 {
    (u64::from(origin) << INDEX_BITS) | index
}

fn split_id(id: u64) -> (OriginId, u64) {
    ((id >> INDEX_BITS) as OriginId, id & ((1 << INDEX_BITS) - 1))
}

/// Bits of a vPDQ frame's id holding its position in the entry (at most
/// `redline_proto::vpdq::MAX_FRAMES`, 1,200, frames an entry).
const FRAME_BITS: u32 = 11;

/// Origins whose vPDQ frames can be indexed: the frame id holds the origin in the bits left
/// above the log index and the frame position (13 bits, 8,192 origins).
const MAX_VIDEO_ORIGINS: u32 = 1 << (64 - INDEX_BITS - FRAME_BITS);

/// The id of frame `ordinal` of the vPDQ entry `index` of `origin` in the `vpdq` Hamming index,
/// which holds every frame of every listed video, so a query video's frames find the entries
/// they are near. `None` for an origin past [`MAX_VIDEO_ORIGINS`].
fn frame_id(origin: OriginId, index: u64, ordinal: usize) -> Option<u64> {
    (origin < MAX_VIDEO_ORIGINS && index < (1 << INDEX_BITS) && ordinal < (1 << FRAME_BITS))
        .then(|| entry_id(origin, index) << FRAME_BITS | ordinal as u64)
}

/// The entry id of a frame id.
fn frame_entry(frame: u64) -> u64 {
    frame >> FRAME_BITS
}

/// An ADD that becomes active.
#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    /// Its log index.
    pub index: u64,
    /// Signal type.
    pub signal_type: SignalType,
    /// Raw hash.
    pub hash: Vec<u8>,
    /// PDQ quality, 0 when unknown.
    pub quality: u32,
    /// Labels.
    pub labels: Vec<String>,
    /// Legal basis.
    pub legal_basis: String,
}

/// Labels and legal basis, shared by the many entries of one submission.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Listing {
    /// Labels such as `ncii`.
    pub labels: Vec<String>,
    /// Legal basis.
    pub legal_basis: String,
}

#[derive(Debug, Clone, Copy)]
struct EntryInfo {
    signal_type: SignalType,
    quality: u8,
    listing: u32,
}

/// One hit of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Origin name.
    pub origin: String,
    /// Log index of the ADD.
    pub index: u64,
    /// The stored hash.
    pub hash: Vec<u8>,
    /// Hamming distance to the query (0 for exact types).
    pub distance: u32,
    /// PDQ quality.
    pub quality: u32,
    /// Labels and legal basis, shared with every other entry of the listing (not copied).
    pub listing: Arc<Listing>,
    /// For a vPDQ entry, how the query video compared with it (set by the node's video
    /// matcher, which reads the entry's frames).
    pub video: Option<VideoHit>,
    /// A C2SP tlog-proof of the entry, when the query asked for one (set by the node's
    /// matcher, which reads the leaf and the tree; see `Logs::tlog_proofs`).
    pub tlog_proof: Option<Vec<u8>>,
}

/// How a query video compared with a listed vPDQ entry.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoHit {
    /// Percent of the query's usable frames that matched a frame of the entry.
    pub query_percent: f64,
    /// Percent of the entry's usable frames that matched a frame of the query.
    pub compared_percent: f64,
    /// Matched spans of the query, `(start_ms, end_ms)`.
    pub query_ranges: Vec<(u32, u32)>,
    /// Matched spans of the listed video.
    pub compared_ranges: Vec<(u32, u32)>,
}

/// A listed vPDQ entry some frame of a query video came near: a candidate the node compares
/// frame by frame.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoCandidate {
    /// The origin's id in the store (to read the entry's leaf).
    pub origin_id: OriginId,
    /// Log index of the ADD.
    pub index: u64,
    /// Query frames (positions in the slice given) within the radius of one of its frames.
    pub near_frames: usize,
    /// The hit to report should the comparison decide a match (`hash` empty, `distance` the
    /// smallest frame distance seen).
    pub hit: Hit,
}

/// The hits of one search, at most the number asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// Sorted by distance, then origin, then index.
    pub hits: Vec<Hit>,
    /// More entries matched than were returned: the cap cut the list (the hits returned are
    /// the nearest ones, in the same order as without a cap).
    pub truncated: bool,
}

#[derive(Debug, Default)]
struct Inner {
    /// Per active entry, sharded so that growing it never stalls the write lock (see
    /// `entries`).
    info: entries::Entries,
    hamming: HashMap<SignalType, HammingIndex>,
    exact: HashMap<SignalType, ExactIndex>,
    listings: Vec<Arc<Listing>>,
    listing_ids: HashMap<Arc<Listing>, u32>,
    /// The listing interned last: a batch's entries almost always share one, and comparing
    /// with it avoids building and hashing a `Listing` per entry.
    last_listing: Option<u32>,
    active_per_origin: HashMap<OriginId, u64>,
    names: HashMap<OriginId, String>,
    matched: HashSet<OriginId>,
}

/// Index merges producing more slots than this are built on a background thread. Merging keeps
/// queries fast, but a build under the write lock stalls every Match query and commit for its
/// duration: in a release build on the 2-core CI machine a 16k-slot build takes ~5-10 ms, a
/// 262k-slot one ~150-230 ms (this was 2^18 before), a million slots about a second.
const BACKGROUND_MERGE_SLOTS: usize = 1 << 14;

/// How the catalog's Hamming indexes are built (a loaded snapshot must have been saved with the
/// same).
fn index_options(merge_threshold: usize) -> IndexOptions {
    IndexOptions {
        background_merge_threshold: Some(merge_threshold),
        ..IndexOptions::default()
    }
}

/// A write hold longer than this is logged (`warn`): it is a stall of every Match query.
const SLOW_HOLD: std::time::Duration = std::time::Duration::from_millis(50);

/// A write hold of the catalog lock that logs itself if it lasts longer than [`SLOW_HOLD`],
/// naming what held it.
struct Hold<'a> {
    guard: RwLockWriteGuard<'a, Inner>,
    what: &'static str,
    since: std::time::Instant,
    /// Entries applied in this hold.
    entries: usize,
}

impl<'a> Hold<'a> {
    fn new(lock: &'a RwLock<Inner>, what: &'static str) -> Self {
        let guard = lock.write();
        Hold {
            guard,
            what,
            since: std::time::Instant::now(),
            entries: 0,
        }
    }

    /// Before applying `n` more entries: ends the hold first (see [`Hold::bump`]) if it
    /// already applied some and adding `n` would pass `max` entries, or it has lasted
    /// [`HOLD_BUDGET`].
    fn pace(&mut self, n: usize, max: usize) {
        if self.entries > 0 && (self.entries + n > max || self.since.elapsed() >= HOLD_BUDGET) {
            self.bump();
        }
        self.entries += n;
    }

    /// Lets waiting readers in (the lock is fair) and takes the lock back: one hold ends, the
    /// next begins.
    fn bump(&mut self) {
        self.report();
        RwLockWriteGuard::bump(&mut self.guard);
        self.since = std::time::Instant::now();
        self.entries = 0;
    }

    fn report(&self) {
        let held = self.since.elapsed();
        if held > SLOW_HOLD {
            tracing::warn!(
                what = self.what,
                held_ms = held.as_millis() as u64,
                "catalog write lock held long: Match queries waited"
            );
        }
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.report();
    }
}

impl std::ops::Deref for Hold<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.guard
    }
}

impl std::ops::DerefMut for Hold<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.guard
    }
}

/// The catalog (thread-safe).
#[derive(Debug)]
pub struct Catalog {
    /// Shared with the background merge and compaction threads, which hold it weakly.
    inner: Arc<RwLock<Inner>>,
    /// Serializes writers (see the module documentation); shared with the background
    /// compaction.
    writer: Arc<Mutex<()>>,
    /// See [`BACKGROUND_MERGE_SLOTS`].
    merge_threshold: usize,
    /// See [`SLICE`] (smaller in tests).
    slice: usize,
    /// See [`STAGE_MIN`] (smaller in tests).
    stage_min: usize,
}

impl Default for Catalog {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            writer: Arc::default(),
            merge_threshold: BACKGROUND_MERGE_SLOTS,
            slice: SLICE,
            stage_min: STAGE_MIN,
        }
    }
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// A catalog with small slices, staging threshold and inline-merge limit, so tests see many
    /// slices, staged runs and background merges and compactions at small sizes.
    #[cfg(test)]
    pub(crate) fn with_limits(slice: usize, stage_min: usize, merge_threshold: usize) -> Self {
        Self {
            slice,
            stage_min,
            merge_threshold,
            ..Self::default()
        }
    }

    /// Declares an origin: its name, and whether its entries are matched (policy `accept` or
    /// the node's own) or only replicated.
    pub fn set_origin(&self, origin: OriginId, name: &str, matched: bool) {
        let mut inner = self.inner.write();
        inner.names.insert(origin, name.to_owned());
        if matched {
            inner.matched.insert(origin);
        } else {
            inner.matched.remove(&origin);
        }
    }

    /// Applies one committed batch of `origin`: its activations, then its deactivations, in
    /// slices (see the module documentation for what readers see meanwhile). Blocks while
    /// another write is applied; call it off the async runtime.
    pub fn apply(&self, origin: OriginId, activate: &[Activation], deactivate: &[u64]) {
        let _writer = self.writer.lock();
        let staged = self.prepare(activate);
        let runs = std::thread::scope(|scope| {
            // Segments of each staged run are built beside the staging, with no lock held.
            let building: Vec<_> = staged
                .iter()
                .map(|&(signal_type, builder)| {
                    let build = move || {
                        builder
                            .build(staged_hashes(activate, signal_type))
                            .expect("hash lengths are checked")
                    };
                    let handle = std::thread::Builder::new()
                        .name("catalog-build".into())
                        .spawn_scoped(scope, build)
                        .ok();
                    (signal_type, handle, build)
                })
                .collect();
            let mut inner = Hold::new(&self.inner, "activate slice");
            for (chunk, weight) in weighted_chunks(activate, CHUNK.min(self.slice)) {
                inner.pace(weight, self.slice);
                inner.activate(origin, chunk, |t| staged.iter().any(|&(s, _)| s == t));
            }
            drop(inner);
            building
                .into_iter()
                .map(|(signal_type, handle, build)| {
                    let run = match handle {
                        Some(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                        None => build(),
                    };
                    (signal_type, run)
                })
                .collect::<Vec<_>>()
        });
        let mut jobs = Vec::new();
        {
            let mut inner = Hold::new(&self.inner, "commit staged runs");
            for (signal_type, run) in runs {
                inner.commit_run(origin, signal_type, run, activate);
            }
            jobs.extend(inner.take_merge_jobs());
        }
        let mut compact = Vec::new();
        if !deactivate.is_empty() {
            let mut inner = Hold::new(&self.inner, "deactivate slice");
            for chunk in deactivate.chunks(CHUNK.min(self.slice)) {
                inner.pace(chunk.len(), self.slice);
                inner.deactivate(origin, chunk);
            }
            jobs.extend(inner.take_merge_jobs());
            compact = inner.compactions_wanted();
        }
        for (signal_type, job) in jobs {
            spawn_merges(Arc::downgrade(&self.inner), signal_type, job);
        }
        for signal_type in compact {
            spawn_compaction(
                Arc::downgrade(&self.inner),
                self.writer.clone(),
                signal_type,
            );
        }
    }

    /// Creates the Hamming indexes `activate` needs, grows the maps for it once, and says which
    /// types are staged, with a builder of their segments.
    fn prepare(&self, activate: &[Activation]) -> Vec<(SignalType, RunBuilder)> {
        let mut per_type: HashMap<SignalType, usize> = HashMap::new();
        for a in activate {
            match a.signal_type.distance() {
                Distance::Hamming { .. } if a.hash.len() == a.signal_type.byte_len() => {
                    *per_type.entry(a.signal_type).or_default() += 1;
                }
                Distance::Frames { .. } => {
                    *per_type.entry(a.signal_type).or_default() += weight(a);
                }
                _ => {}
            }
        }
        let mut inner = Hold::new(&self.inner, "reserve");
        let mut staged = Vec::new();
        for (signal_type, n) in per_type {
            let ix = inner.hamming_index(signal_type, self.merge_threshold);
            ix.reserve(n);
            // Frames go in through the insert buffer: `staged_hashes` yields one hash an entry.
            let frames = matches!(signal_type.distance(), Distance::Frames { .. });
            if n >= self.stage_min && !frames {
                staged.push((signal_type, ix.run_builder()));
            }
        }
        staged
    }

    /// Whether the ADD at `index` of `origin` is active.
    pub fn is_active(&self, origin: OriginId, index: u64) -> bool {
        self.inner
            .read()
            .info
            .contains_key(&entry_id(origin, index))
    }

    /// Lowest index of an active ADD of exactly `hash` in `origin`'s log.
    pub fn find_in_origin(
        &self,
        origin: OriginId,
        signal_type: SignalType,
        hash: &[u8],
    ) -> Option<u64> {
        let inner = self.inner.read();
        match signal_type.distance() {
            Distance::Exact => inner
                .exact
                .get(&signal_type)?
                .ids_from(hash, entry_id(origin, 0))
                .ok()?
                .next()
                .map(split_id)
                .filter(|(o, _)| *o == origin)
                .map(|(_, i)| i),
            Distance::Hamming { .. } => inner
                .hamming
                .get(&signal_type)?
                .range_search(hash, 0)
                .ok()?
                .into_iter()
                .map(|(id, _)| split_id(id))
                .filter(|(o, _)| *o == origin)
                .map(|(_, i)| i)
                .min(),
            // Two listings of one video are rarely byte-identical frame lists; they are
            // not de-duplicated.
            Distance::Frames { .. } => None,
        }
    }

    /// Active ADDs of `origin`.
    pub fn active_count(&self, origin: OriginId) -> u64 {
        self.inner
            .read()
            .active_per_origin
            .get(&origin)
            .copied()
            .unwrap_or(0)
    }

    /// Every matched entry within `max_distance` of `query` (exact types: equal), sorted by
    /// distance, then origin, then index; one hit per origin and stored hash.
    pub fn search(&self, signal_type: SignalType, query: &[u8], max_distance: u32) -> Vec<Hit> {
        self.search_capped(signal_type, query, max_distance, usize::MAX)
            .hits
    }

    /// [`Catalog::search`], keeping only the first `max_hits` hits (and saying so). Work past
    /// the cap is skipped: once `max_hits` hits are found, candidates farther than the last of
    /// them are not looked at (those at its distance still are, as the order among them is by
    /// origin name).
    pub fn search_capped(
        &self,
        signal_type: SignalType,
        query: &[u8],
        max_distance: u32,
        max_hits: usize,
    ) -> Found {
        let inner = self.inner.read();
        let mut found = match signal_type.distance() {
            Distance::Exact => inner.search_exact(signal_type, query),
            Distance::Hamming { .. } => {
                inner.search_hamming(signal_type, query, max_distance, max_hits)
            }
            // Frame lists are compared by `video_candidates` and the node's video matcher.
            Distance::Frames { .. } => Found::default(),
        };
        found.hits.sort_by(|a, b| {
            (a.distance, &a.origin, a.index).cmp(&(b.distance, &b.origin, b.index))
        });
        if found.hits.len() > max_hits {
            found.hits.truncate(max_hits);
            found.truncated = true;
        }
        found
    }

    /// Matched vPDQ entries with a frame within `max_distance` of one of `frames` (each a
    /// query frame's 32-byte PDQ), the ones near the most query frames first (then by origin
    /// and index): at most `max`, and whether there were more. Exact: an entry none of whose
    /// frames is near a query frame matches no query frame, so the comparison could only decide
    /// it a match at a required query share of 0 %.
    pub fn video_candidates(
        &self,
        frames: &[&[u8]],
        max_distance: u32,
        max: usize,
    ) -> (Vec<VideoCandidate>, bool) {
        let inner = self.inner.read();
        let Some(ix) = inner.hamming.get(&SignalType::Vpdq) else {
            return (Vec::new(), false);
        };
        // entry id -> (query frames near it, smallest distance)
        let mut near: HashMap<u64, (HashSet<usize>, u32)> = HashMap::new();
        for (position, frame) in frames.iter().enumerate() {
            for (id, distance) in ix.range_search(frame, max_distance).unwrap_or_default() {
                let e = near
                    .entry(frame_entry(id))
                    .or_insert_with(|| (HashSet::new(), u32::MAX));
                e.0.insert(position);
                e.1 = e.1.min(distance);
            }
        }
        let mut out: Vec<VideoCandidate> = near
            .into_iter()
            .filter_map(|(id, (positions, distance))| {
                let (origin, index) = split_id(id);
                let info = inner.info.get(&id)?;
                inner.matched.contains(&origin).then(|| VideoCandidate {
                    origin_id: origin,
                    index,
                    near_frames: positions.len(),
                    hit: inner.hit(origin, index, Vec::new(), distance, info),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            (b.near_frames, &a.hit.origin, a.index).cmp(&(a.near_frames, &b.hit.origin, b.index))
        });
        let truncated = out.len() > max;
        out.truncate(max);
        (out, truncated)
    }

    /// Active entries in all indexes.
    pub fn len(&self) -> usize {
        self.inner.read().info.len()
    }

    /// Hashes held in the index of `signal_type` (for vPDQ: frames), for index status pages.
    pub fn indexed(&self, signal_type: SignalType) -> usize {
        let inner = self.inner.read();
        inner
            .hamming
            .get(&signal_type)
            .map(HammingIndex::len)
            .or_else(|| inner.exact.get(&signal_type).map(ExactIndex::len))
            .unwrap_or(0)
    }

    /// Whether nothing is active.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate heap bytes of the hash indexes.
    pub fn index_heap_bytes(&self) -> usize {
        let inner = self.inner.read();
        inner
            .hamming
            .values()
            .map(HammingIndex::heap_bytes)
            .sum::<usize>()
            + inner
                .exact
                .values()
                .map(ExactIndex::heap_bytes)
                .sum::<usize>()
    }

    /// Compacts the hash indexes after a bulk load (inline, under the write lock: for start-up
    /// and benchmarks, before anyone queries).
    pub fn compact(&self) {
        let _writer = self.writer.lock();
        let mut inner = self.inner.write();
        for ix in inner.hamming.values_mut() {
            ix.compact();
        }
    }
}

/// What an activation costs a write-lock hold: 1 an entry, a vPDQ entry 1 a frame (each frame
/// is inserted into the index).
fn weight(a: &Activation) -> usize {
    match a.signal_type.distance() {
        Distance::Frames { .. } => (a.hash.len() / redline_proto::vpdq::FRAME_BYTES).max(1),
        _ => 1,
    }
}

/// `activate` in consecutive chunks of at most `max` weight (or one entry heavier than that),
/// each with its weight, so that a batch of videos paces the write lock by frames.
fn weighted_chunks(
    activate: &[Activation],
    max: usize,
) -> impl Iterator<Item = (&[Activation], usize)> + '_ {
    let mut rest = activate;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (mut n, mut total) = (0, 0);
        while n < rest.len() && (n == 0 || total + weight(&rest[n]) <= max) {
            total += weight(&rest[n]);
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some((chunk, total))
    })
}

/// The hashes of `activate`'s entries of `signal_type` that the catalog stages, in order (what
/// [`Inner::activate`] stages, if none of them is already active).
fn staged_hashes(
    activate: &[Activation],
    signal_type: SignalType,
) -> impl Iterator<Item = &[u8]> + '_ {
    activate
        .iter()
        .filter(move |a| a.signal_type == signal_type && a.hash.len() == signal_type.byte_len())
        .map(|a| a.hash.as_slice())
}

/// Builds `job` on a thread of its own, without the catalog lock, installs it under the write
/// lock (a pointer swap), and goes on with the merge the install may have made due, until none
/// is. The index keeps answering exactly from the segments being merged meanwhile. Should no
/// thread be available, the merge is built here instead: late, but never lost.
fn spawn_merges(inner: Weak<RwLock<Inner>>, signal_type: SignalType, job: MergeJob) {
    let run = move |mut job: MergeJob| loop {
        let built = job.run();
        let Some(inner) = inner.upgrade() else { return };
        let mut guard = Hold::new(&inner, "install merge");
        let Some(ix) = guard.hamming.get_mut(&signal_type) else {
            return;
        };
        // Refused only when the index was compacted meanwhile: the merge is moot then.
        ix.install_merge(built);
        match ix.take_merge_job() {
            Some(next) => job = next,
            None => return,
        }
    };
    // The job waits here until the thread takes it, so a failed spawn can take it back.
    let handoff = Arc::new(std::sync::Mutex::new(Some(job)));
    let taken = handoff.clone();
    let thread_run = run.clone();
    let spawned = std::thread::Builder::new()
        .name("catalog-merge".into())
        .spawn(move || {
            if let Some(job) = taken.lock().expect("merge handoff").take() {
                thread_run(job);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread for an index merge; building it inline");
        if let Some(job) = handoff.lock().expect("merge handoff").take() {
            run(job);
        }
    }
}

/// Compacts the `signal_type` index on a thread of its own: with the writer mutex held (no
/// batch is applied meanwhile, so the index's entries do not change), copies its live entries
/// a slice per read-lock hold, builds a fresh index from them with no lock held, and swaps it
/// in under one short write hold. Searches go on against the old index until the swap. Without
/// a thread, the compaction waits for the next batch's retractions to ask again.
fn spawn_compaction(inner: Weak<RwLock<Inner>>, writer: Arc<Mutex<()>>, signal_type: SignalType) {
    let spawned = std::thread::Builder::new()
        .name("catalog-compact".into())
        .spawn(move || {
            let _writer = writer.lock();
            let Some(inner) = inner.upgrade() else { return };
            let mut entries = redline_index::LiveEntries::default();
            let mut from = 0;
            let (fresh, builder) = {
                let guard = inner.read();
                let Some(ix) = guard.hamming.get(&signal_type) else {
                    return;
                };
                if !ix.wants_compaction() {
                    return;
                }
                (ix.empty_like(), ix.run_builder())
            };
            loop {
                let guard = inner.read();
                let Some(ix) = guard.hamming.get(&signal_type) else {
                    return;
                };
                match ix.copy_live(from, SLICE * 8, &mut entries) {
                    Some(next) => from = next,
                    None => break,
                }
            }
            let mut fresh = fresh;
            fresh.reserve(entries.len());
            fresh
                .stage(entries.iter())
                .expect("entries of one index fit another like it");
            let run = builder
                .build(entries.iter().map(|(_, h)| h))
                .expect("entries of one index fit another like it");
            fresh.commit_staged(run);
            let old = {
                let mut guard = Hold::new(&inner, "install compaction");
                guard
                    .hamming
                    .get_mut(&signal_type)
                    .map(|ix| std::mem::replace(ix, fresh))
            };
            // Freed after the write lock is released: unmapping a large index takes a while.
            drop(old);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread for an index compaction; it waits");
    }
}

impl Inner {
    fn listing_id(&mut self, labels: &[String], legal_basis: &str) -> u32 {
        if let Some(id) = self.last_listing {
            let last = &self.listings[id as usize];
            if last.labels == labels && last.legal_basis == legal_basis {
                return id;
            }
        }
        let l = Arc::new(Listing {
            labels: labels.to_vec(),
            legal_basis: legal_basis.to_owned(),
        });
        let id = match self.listing_ids.get(&l) {
            Some(&id) => id,
            None => {
                let id = self.listings.len() as u32;
                self.listings.push(l.clone());
                self.listing_ids.insert(l, id);
                id
            }
        };
        self.last_listing = Some(id);
        id
    }

    fn hamming_index(
        &mut self,
        signal_type: SignalType,
        merge_threshold: usize,
    ) -> &mut HammingIndex {
        self.hamming.entry(signal_type).or_insert_with(|| {
            HammingIndex::with_options(signal_type.bits(), index_options(merge_threshold))
                .expect("signal types have supported widths")
        })
    }

    /// Merge jobs waiting in any Hamming index (at most one per index is handed out at a time).
    fn take_merge_jobs(&mut self) -> Vec<(SignalType, MergeJob)> {
        self.hamming
            .iter_mut()
            .filter_map(|(&t, ix)| ix.take_merge_job().map(|job| (t, job)))
            .collect()
    }

    /// Hamming indexes with enough removed entries to compact (off the lock).
    fn compactions_wanted(&self) -> Vec<SignalType> {
        self.hamming
            .iter()
            .filter(|(_, ix)| ix.wants_compaction())
            .map(|(&t, _)| t)
            .collect()
    }

    /// One slice of a batch's activations. Bit hashes of the types `staged` says are staged
    /// (searchable once their run is committed); other bit hashes go in with one
    /// `insert_batch` per type (the index then seals its buffer once for the slice).
    fn activate(
        &mut self,
        origin: OriginId,
        slice: &[Activation],
        staged: impl Fn(SignalType) -> bool,
    ) {
        let mut batches: HashMap<SignalType, Vec<(u64, &[u8])>> = HashMap::new();
        for a in slice {
            let id = entry_id(origin, a.index);
            if self.info.contains_key(&id) {
                continue;
            }
            if a.signal_type.check_bytes(&a.hash).is_err() {
                // Entries are validated before they reach the catalog; this is a bug.
                tracing::error!(
                    origin,
                    index = a.index,
                    "catalog refused a hash of the wrong size"
                );
                continue;
            }
            match a.signal_type.distance() {
                Distance::Exact => {
                    let inserted = self
                        .exact
                        .entry(a.signal_type)
                        .or_insert_with(|| ExactIndex::new(a.signal_type.byte_len()))
                        .insert(id, &a.hash);
                    if let Err(e) = inserted {
                        tracing::error!(error = %e, origin, index = a.index, "catalog refused an entry");
                        continue;
                    }
                }
                Distance::Hamming { .. } => batches
                    .entry(a.signal_type)
                    .or_default()
                    .push((id, &a.hash)),
                Distance::Frames { .. } => {
                    let frames = a.hash.chunks_exact(redline_proto::vpdq::FRAME_BYTES);
                    let Some(ids) = (0..frames.len())
                        .map(|k| frame_id(origin, a.index, k))
                        .collect::<Option<Vec<u64>>>()
                    else {
                        tracing::error!(
                            origin,
                            index = a.index,
                            "vpdq frames of origins past {MAX_VIDEO_ORIGINS} cannot be indexed"
                        );
                        continue;
                    };
                    let batch = batches.entry(a.signal_type).or_default();
                    batch.extend(ids.into_iter().zip(frames.map(|f| &f[..32])));
                }
            }
            let listing = self.listing_id(&a.labels, &a.legal_basis);
            self.info.insert(
                id,
                EntryInfo {
                    signal_type: a.signal_type,
                    quality: a.quality.min(100) as u8,
                    listing,
                },
            );
            *self.active_per_origin.entry(origin).or_default() += 1;
        }
        for (signal_type, items) in batches {
            let Some(ix) = self.hamming.get_mut(&signal_type) else {
                continue;
            };
            let added = if staged(signal_type) {
                ix.stage(items.iter().copied())
            } else {
                ix.insert_batch(items.iter().copied())
            };
            if let Err(e) = added {
                // Unreachable (sizes checked, ids new); should it happen, keep the catalog
                // consistent: forget what the index did not take.
                tracing::error!(error = %e, origin, "catalog index refused a batch");
                for (id, _) in items {
                    if !ix.contains(id) && self.info.remove(&id).is_some() {
                        if let Some(n) = self.active_per_origin.get_mut(&origin) {
                            *n = n.saturating_sub(1);
                        }
                    }
                }
            }
        }
    }

    /// Makes a staged run searchable. If the index staged other hashes than `run` was built
    /// over (an entry of the batch was already active, which the planner never lets happen), it
    /// seals them itself (inline: correct, not bounded) and says so.
    fn commit_run(
        &mut self,
        origin: OriginId,
        signal_type: SignalType,
        run: BuiltRun,
        activate: &[Activation],
    ) {
        let Some(ix) = self.hamming.get_mut(&signal_type) else {
            return;
        };
        let (staged, built) = (ix.staged(), run.len());
        if !ix.commit_staged(run) && staged > 0 {
            tracing::warn!(
                origin,
                staged,
                built,
                batch = activate.len(),
                "catalog staged other hashes than it built; sealed them inline"
            );
        }
    }

    /// One slice of a batch's deactivations: each entry leaves the entry map and its index in
    /// this hold. Large indexes are not compacted here (see [`spawn_compaction`]).
    fn deactivate(&mut self, origin: OriginId, slice: &[u64]) {
        for &index in slice {
            let id = entry_id(origin, index);
            let Some(info) = self.info.remove(&id) else {
                continue;
            };
            match info.signal_type.distance() {
                Distance::Exact => {
                    if let Some(ix) = self.exact.get_mut(&info.signal_type) {
                        ix.remove(id);
                    }
                }
                Distance::Hamming { .. } => {
                    if let Some(ix) = self.hamming.get_mut(&info.signal_type) {
                        ix.remove(id);
                    }
                }
                Distance::Frames { .. } => {
                    if let Some(ix) = self.hamming.get_mut(&info.signal_type) {
                        // An entry's frames have consecutive positions from 0: remove until
                        // the first position that is not there.
                        let mut k = 0;
                        while frame_id(origin, index, k).is_some_and(|f| ix.remove(f)) {
                            k += 1;
                        }
                    }
                }
            }
            if let Some(n) = self.active_per_origin.get_mut(&origin) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Matched exact-type entries equal to `query`: the lowest index of each matched origin,
    /// found by skipping from origin to origin in the index (a hash listed a million times by
    /// one origin costs one step, not a million).
    fn search_exact(&self, signal_type: SignalType, query: &[u8]) -> Found {
        let mut hits = Vec::new();
        let Some(ix) = self.exact.get(&signal_type) else {
            return Found::default();
        };
        let mut from = Some(0);
        while let Some(id) = from.and_then(|f| ix.ids_from(query, f).ok()?.next()) {
            let (origin, index) = split_id(id);
            // The first id of the next origin.
            let next_origin = (id | ((1 << INDEX_BITS) - 1)).checked_add(1);
            from = match self.info.get(&id) {
                Some(info) => {
                    if self.matched.contains(&origin) {
                        hits.push(self.hit(origin, index, query.to_vec(), 0, info));
                    }
                    next_origin
                }
                // An index out of step with the map (a bug): try the origin's next entry.
                None => id.checked_add(1),
            };
        }
        Found {
            hits,
            truncated: false,
        }
    }

    /// Matched bit-hash entries within `max_distance` of `query`, one per origin and stored
    /// hash. Once `max_hits` hits are found, candidates farther than the last of them are only
    /// looked at until one would be a hit (then the answer is truncated).
    fn search_hamming(
        &self,
        signal_type: SignalType,
        query: &[u8],
        max_distance: u32,
        max_hits: usize,
    ) -> Found {
        let Some(ix) = self.hamming.get(&signal_type) else {
            return Found::default();
        };
        // Sorted by distance, then id.
        let pairs = ix.range_search(query, max_distance).unwrap_or_default();
        let mut seen: HashSet<(OriginId, Vec<u8>)> = HashSet::new();
        let mut hits = Vec::new();
        let mut cut = None;
        for (id, distance) in pairs {
            let (origin, index) = split_id(id);
            if !self.matched.contains(&origin) {
                continue;
            }
            let (Some(info), Some(hash)) = (self.info.get(&id), ix.get(id)) else {
                continue;
            };
            if !seen.insert((origin, hash.clone())) {
                continue;
            }
            if cut.is_some_and(|d| distance > d) {
                return Found {
                    hits,
                    truncated: true,
                };
            }
            hits.push(self.hit(origin, index, hash, distance, info));
            if hits.len() == max_hits {
                cut = Some(distance);
            }
        }
        Found {
            hits,
            truncated: false,
        }
    }

    fn hit(
        &self,
        origin: OriginId,
        index: u64,
        hash: Vec<u8>,
        distance: u32,
        info: &EntryInfo,
    ) -> Hit {
        Hit {
            origin: self.names.get(&origin).cloned().unwrap_or_default(),
            index,
            hash,
            distance,
            quality: u32::from(info.quality),
            listing: self.listings[info.listing as usize].clone(),
            video: None,
            tlog_proof: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vPDQ activation of `frames` frames whose PDQs are `seed`-filled with the frame
    /// position in the first byte.
    fn video(index: u64, seed: u8, frames: usize) -> Activation {
        let frames: Vec<redline_proto::vpdq::FrameHash> = (0..frames)
            .map(|k| {
                let mut pdq = [seed; 32];
                pdq[0] = k as u8;
                redline_proto::vpdq::FrameHash {
                    pdq,
                    quality: 90,
                    timestamp_ms: k as u32 * 1000,
                }
            })
            .collect();
        Activation {
            index,
            signal_type: SignalType::Vpdq,
            hash: redline_proto::vpdq::encode(&frames).unwrap(),
            quality: 0,
            labels: vec!["ncii".into()],
            legal_basis: "law".into(),
        }
    }

    /// Every frame of a vPDQ entry is indexed under the entry: a query frame near any of them
    /// finds the entry once (counting the query frames near it), a retraction removes every
    /// frame, and a snapshot keeps them. Paced by frames: 40 videos of 1,200 frames are applied
    /// in many holds.
    #[test]
    fn video_frames_find_their_entry_until_retracted() {
        let catalog = Catalog::with_limits(64, 128, 256);
        catalog.set_origin(3, "a.example", true);
        let videos: Vec<Activation> = (0..40).map(|i| video(i, i as u8 + 1, 1200)).collect();
        assert!(weighted_chunks(&videos, 256).all(|(c, w)| c.len() == 1 && w == 1200));
        catalog.apply(3, &videos, &[]);
        assert_eq!(catalog.len(), 40);
        let near = |seed: u8, k: u8| {
            let mut q = [seed; 32];
            q[0] = k;
            q[31] ^= 0x0f; // 4 bits away
            q
        };
        let (q1, q2, q3) = (near(8, 5), near(8, 200), near(9, 1));
        let queries: Vec<&[u8]> = vec![&q1, &q2, &q3];
        let (found, truncated) = catalog.video_candidates(&queries, 31, 10);
        assert!(!truncated);
        let got: Vec<(u64, usize)> = found.iter().map(|c| (c.index, c.near_frames)).collect();
        // Seeds 8 and 9 differ in every byte but the first: 2 frames near entry 7, 1 near 8.
        assert_eq!(got, [(7, 2), (8, 1)]);
        assert_eq!(found[0].hit.origin, "a.example");
        assert_eq!(found[0].hit.distance, 4);
        assert!(
            catalog.video_candidates(&queries, 31, 1).1,
            "cut at 1 candidate"
        );

        let (bytes, _) = catalog.save_snapshot(Vec::new(), &[]).unwrap();
        let (loaded, _) = Catalog::load_snapshot(&bytes[..], bytes.len() as u64).unwrap();
        loaded.set_origin(3, "a.example", true);
        assert_eq!(loaded.video_candidates(&queries, 31, 10).0, found);

        for c in [&catalog, &loaded] {
            c.apply(3, &[], &[7]);
            let (found, _) = c.video_candidates(&queries, 31, 10);
            assert_eq!(found.iter().map(|c| c.index).collect::<Vec<_>>(), [8]);
            let inner = c.inner.read();
            let ix = &inner.hamming[&SignalType::Vpdq];
            assert!((0..1200).all(|k| !ix.contains(frame_id(3, 7, k).unwrap())));
            assert!(ix.contains(frame_id(3, 8, 1199).unwrap()));
        }
        assert_eq!(frame_id(MAX_VIDEO_ORIGINS, 0, 0), None);
        assert_eq!(frame_entry(frame_id(5, 77, 1199).unwrap()), entry_id(5, 77));
    }

    fn act(index: u64, hash: [u8; 32]) -> Activation {
        Activation {
            index,
            signal_type: SignalType::Pdq,
            hash: hash.to_vec(),
            quality: 90,
            labels: vec!["ncii".into()],
            legal_basis: "law".into(),
        }
    }

    #[test]
    fn search_names_each_origin_once_and_respects_policy_and_retraction() {
        let c = Catalog::new();
        c.set_origin(0, "uk.example", true);
        c.set_origin(1, "kr.example", true);
        c.set_origin(2, "br.example", false);
        let h = [0x55u8; 32];
        let mut near = h;
        near[0] ^= 0b111;
        c.apply(0, &[act(3, h), act(4, h)], &[]);
        c.apply(1, &[act(0, near)], &[]);
        c.apply(2, &[act(0, h)], &[]);
        let hits = c.search(SignalType::Pdq, &h, 31);
        let names: Vec<(&str, u64, u32)> = hits
            .iter()
            .map(|h| (h.origin.as_str(), h.index, h.distance))
            .collect();
        assert_eq!(names, vec![("uk.example", 3, 0), ("kr.example", 0, 3)]);
        assert_eq!(c.find_in_origin(0, SignalType::Pdq, &h), Some(3));
        assert_eq!(c.find_in_origin(1, SignalType::Pdq, &near), Some(0));
        c.apply(0, &[], &[3]);
        assert!(!c.is_active(0, 3));
        assert_eq!(c.search(SignalType::Pdq, &h, 0)[0].index, 4);
        c.apply(0, &[], &[4]);
        c.apply(1, &[], &[0]);
        assert!(c.search(SignalType::Pdq, &h, 31).is_empty());
        assert_eq!(c.active_count(0), 0);
    }

    /// Large merges run on background threads: while they run and after they are installed,
    /// searches return exactly the brute-force answer, and retractions made meanwhile hold.
    #[test]
    fn background_merges_keep_searches_exact() {
        use rand::{Rng, SeedableRng};
        let c = Catalog {
            merge_threshold: 64,
            ..Catalog::default()
        };
        c.set_origin(0, "uk.example", true);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut stored: Vec<(u64, [u8; 32])> = Vec::new();
        let queries: Vec<[u8; 32]> = (0..20).map(|_| rng.gen()).collect();
        let check = |stored: &[(u64, [u8; 32])]| {
            for q in &queries {
                let mut want: Vec<(u32, u64)> = stored
                    .iter()
                    .map(|(i, h)| (redline_index::hamming_distance(q, h).unwrap(), *i))
                    .filter(|&(d, _)| d <= 110)
                    .collect();
                want.sort_unstable();
                let got: Vec<(u32, u64)> = c
                    .search(SignalType::Pdq, q, 110)
                    .iter()
                    .map(|h| (h.distance, h.index))
                    .collect();
                assert_eq!(got, want);
            }
        };
        for batch in 0..60u64 {
            let adds: Vec<Activation> = (0..100).map(|i| act(batch * 100 + i, rng.gen())).collect();
            stored.extend(
                adds.iter()
                    .map(|a| (a.index, a.hash.clone().try_into().unwrap())),
            );
            let retract: Vec<u64> = if batch % 5 == 4 {
                let gone = stored.remove(rng.gen_range(0..stored.len())).0;
                vec![gone]
            } else {
                vec![]
            };
            c.apply(0, &adds, &retract);
            check(&stored);
        }
        let stats = || c.inner.read().hamming[&SignalType::Pdq].merge_stats();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while stats().jobs_installed + stats().jobs_rejected < stats().jobs_taken {
            assert!(
                std::time::Instant::now() < deadline,
                "merges never finished"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let s = stats();
        assert!(
            s.jobs_installed > 0,
            "no merge ran in the background: {s:?}"
        );
        assert!(
            s.largest_inline_merge <= 64,
            "a large merge ran inline: {s:?}"
        );
        check(&stored);
    }

    #[test]
    fn own_origin_duplicates_are_found_by_exact_lookup_until_retracted() {
        let c = Catalog::new();
        c.set_origin(0, "uk.example", true);
        let h = [9u8; 32];
        let md5 = Activation {
            signal_type: SignalType::Md5,
            hash: vec![1; 16],
            ..act(1, [0; 32])
        };
        c.apply(0, &[act(0, h), md5], &[]);
        assert_eq!(c.find_in_origin(0, SignalType::Pdq, &h), Some(0));
        assert_eq!(c.find_in_origin(0, SignalType::Md5, &[1; 16]), Some(1));
        let mut near = h;
        near[0] ^= 1;
        assert_eq!(
            c.find_in_origin(0, SignalType::Pdq, &near),
            None,
            "exact, not near"
        );
        c.apply(0, &[], &[0, 1]);
        assert_eq!(c.find_in_origin(0, SignalType::Pdq, &h), None);
        assert_eq!(c.find_in_origin(0, SignalType::Md5, &[1; 16]), None);
    }

    #[test]
    fn exact_types_match_only_equal_values() {
        let c = Catalog::new();
        c.set_origin(0, "uk.example", true);
        let md5 = Activation {
            signal_type: SignalType::Md5,
            hash: vec![1; 16],
            ..act(0, [0; 32])
        };
        c.apply(0, &[md5], &[]);
        assert_eq!(c.search(SignalType::Md5, &[1; 16], 31).len(), 1);
        let mut other = [1u8; 16];
        other[0] = 0;
        assert!(c.search(SignalType::Md5, &other, 31).is_empty());
    }

    fn md5(index: u64, byte: u8) -> Activation {
        Activation {
            signal_type: SignalType::Md5,
            hash: vec![byte; 16],
            ..act(index, [0; 32])
        }
    }

    fn random_acts(rng: &mut impl rand::Rng, first: u64, n: u64) -> Vec<Activation> {
        (first..first + n).map(|i| act(i, rng.gen())).collect()
    }

    /// A large batch goes in over many write-lock holds: a reader polling meanwhile gets in
    /// between slices and sees the batch partly applied (exact-type entries slice by slice,
    /// the staged PDQ run not yet searchable), never torn; afterwards every entry is found.
    #[test]
    fn large_batches_apply_in_slices_that_readers_get_between() {
        use rand::SeedableRng;
        let c = Arc::new(Catalog::with_limits(64, 32, 256));
        c.set_origin(0, "uk.example", true);
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let n = 20_000u64;
        let mut acts = random_acts(&mut rng, 0, n);
        acts.extend((n..2 * n).map(|i| Activation {
            hash: [i.to_be_bytes(), i.to_le_bytes()].concat(),
            ..md5(i, 0)
        }));
        let probe = acts[0].hash.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (c, stop, probe) = (c.clone(), stop.clone(), probe.clone());
            std::thread::spawn(move || {
                let mut seen = std::collections::BTreeSet::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let len = c.len();
                    let found = !c.search(SignalType::Pdq, &probe, 0).is_empty();
                    seen.insert((len, found));
                }
                seen
            })
        };
        c.apply(0, &acts, &[]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let seen = reader.join().unwrap();
        let total = 2 * n as usize;
        assert!(
            seen.iter().any(|&(len, _)| len > 0 && len < total),
            "the reader never got in between slices: {seen:?}"
        );
        // The staged PDQ run becomes searchable at once, after all its entries are in.
        assert!(
            seen.iter().all(|&(len, found)| !found || len >= n as usize),
            "{seen:?}"
        );
        assert_eq!(c.len(), total);
        for a in acts.iter().step_by(997) {
            let hits = c.search(a.signal_type, &a.hash, 0);
            assert!(hits.iter().any(|h| h.index == a.index), "{}", a.index);
        }
        assert_eq!(c.inner.read().hamming[&SignalType::Pdq].staged(), 0);
    }

    /// Exact-type retractions remove exactly their ids however many entries share the hash,
    /// and searches return each origin's lowest active entry.
    #[test]
    fn exact_type_retractions_remove_the_right_ids() {
        let c = Catalog::with_limits(100, 32, 256);
        c.set_origin(0, "uk.example", true);
        c.set_origin(1, "kr.example", true);
        let n = 5_000u64;
        c.apply(0, &(0..n).map(|i| md5(i, 7)).collect::<Vec<_>>(), &[]);
        c.apply(1, &(0..10).map(|i| md5(i, 7)).collect::<Vec<_>>(), &[]);
        c.apply(0, &[md5(n, 8)], &[]);
        let lowest = |c: &Catalog| -> Vec<(String, u64)> {
            c.search(SignalType::Md5, &[7; 16], 0)
                .into_iter()
                .map(|h| (h.origin, h.index))
                .collect()
        };
        assert_eq!(
            lowest(&c),
            vec![("kr.example".into(), 0), ("uk.example".into(), 0)]
        );
        // Retract every even index of origin 0, and 0..5 of origin 1.
        let even: Vec<u64> = (0..n).step_by(2).collect();
        c.apply(0, &[], &even);
        c.apply(1, &[], &[0, 1, 2, 3, 4]);
        assert_eq!(
            lowest(&c),
            vec![("kr.example".into(), 5), ("uk.example".into(), 1)]
        );
        assert_eq!(c.active_count(0), n / 2 + 1);
        assert_eq!(c.find_in_origin(0, SignalType::Md5, &[7; 16]), Some(1));
        assert_eq!(c.find_in_origin(1, SignalType::Md5, &[7; 16]), Some(5));
        assert_eq!(c.find_in_origin(0, SignalType::Md5, &[8; 16]), Some(n));
        let ids: Vec<u64> = c.inner.read().exact[&SignalType::Md5]
            .lookup(&[7; 16])
            .unwrap()
            .into_iter()
            .filter(|&id| split_id(id).0 == 0)
            .map(|id| split_id(id).1)
            .collect();
        assert_eq!(ids, (1..n).step_by(2).collect::<Vec<_>>());
        c.apply(0, &[], &(1..n).step_by(2).collect::<Vec<_>>());
        assert_eq!(lowest(&c), vec![("kr.example".into(), 5)]);
        assert_eq!(c.find_in_origin(0, SignalType::Md5, &[7; 16]), None);
    }

    /// A cap on hits keeps the nearest ones in the uncapped order and says it cut the list.
    #[test]
    fn hit_cap_keeps_the_nearest_and_says_it_truncated() {
        use rand::{Rng, SeedableRng};
        let c = Catalog::new();
        for (o, name) in ["a.example", "b.example", "c.example"].iter().enumerate() {
            c.set_origin(o as OriginId, name, true);
        }
        let q = [0u8; 32];
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for o in 0..3 {
            let acts: Vec<Activation> = (0..150)
                .map(|i| {
                    let mut h = q;
                    for _ in 0..rng.gen_range(0..20) {
                        let bit = rng.gen_range(0..256);
                        h[bit / 8] ^= 1 << (bit % 8);
                    }
                    act(i, h)
                })
                .collect();
            c.apply(o, &acts, &[]);
        }
        let all = c.search(SignalType::Pdq, &q, 31);
        assert!(all.len() > 100);
        let capped = c.search_capped(SignalType::Pdq, &q, 31, 100);
        assert!(capped.truncated);
        assert_eq!(capped.hits, all[..100].to_vec());
        let roomy = c.search_capped(SignalType::Pdq, &q, 31, all.len());
        assert!(!roomy.truncated);
        assert_eq!(roomy.hits, all);
        // Exact types: one hit per origin, capped the same way.
        for o in 0..3 {
            c.apply(o, &[md5(1000, 3)], &[]);
        }
        let exact = c.search_capped(SignalType::Md5, &[3; 16], 0, 2);
        assert!(exact.truncated);
        let names: Vec<&str> = exact.hits.iter().map(|h| h.origin.as_str()).collect();
        assert_eq!(names, vec!["a.example", "b.example"]);
        assert!(!c.search_capped(SignalType::Md5, &[3; 16], 0, 3).truncated);
        // Hits share their listing rather than copying it.
        assert!(Arc::ptr_eq(&all[0].listing, &all[1].listing));
    }

    /// Retracting a quarter of a large index leaves its compaction to a background thread
    /// (the removals' write holds stay short); searches stay exact before, during and after.
    #[test]
    fn large_compactions_run_off_the_lock() {
        use rand::SeedableRng;
        let c = Catalog::with_limits(256, 64, 512);
        c.set_origin(0, "uk.example", true);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let acts = random_acts(&mut rng, 0, 8_000);
        c.apply(0, &acts, &[]);
        let gone: Vec<u64> = (0..8_000).filter(|i| i % 3 == 0).collect();
        c.apply(0, &[], &gone);
        let check = |c: &Catalog| {
            for a in acts.iter().step_by(101) {
                let found = c
                    .search(SignalType::Pdq, &a.hash, 0)
                    .iter()
                    .any(|h| h.index == a.index);
                assert_eq!(found, a.index % 3 != 0, "{}", a.index);
            }
        };
        check(&c);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while c.inner.read().hamming[&SignalType::Pdq].wants_compaction() {
            assert!(std::time::Instant::now() < deadline, "never compacted");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // The compacted index holds only the live entries, and stays exact.
        let _writer = c.writer.lock();
        assert_eq!(
            c.inner.read().hamming[&SignalType::Pdq].len(),
            8_000 - gone.len()
        );
        drop(_writer);
        check(&c);
        assert_eq!(c.active_count(0), (8_000 - gone.len()) as u64);
    }
}
