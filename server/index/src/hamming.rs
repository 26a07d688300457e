//! The public Hamming-distance range index and its options.

use crate::bits::{to_block, Words, W1, W16, W2, W32, W4, W8};
use crate::core::Core;
use crate::merge::{BuiltMerge, MergeJob, MergeStats};
use crate::segment::{BuildParams, Segment};
use crate::snapshot::{SnapshotError, SnapshotReader, SnapshotWriter};
use crate::table::MAX_SEGMENT;
use crate::IndexError;

/// First bytes of an index snapshot.
const SNAPSHOT_MAGIC: &[u8; 4] = b"RLHX";
/// Version of the index snapshot layout; a load of any other version is refused (and the caller
/// rebuilds).
const SNAPSHOT_VERSION: u32 = 1;

/// How segments are searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Probe substring tables where the cost model says it beats a linear
    /// scan, scan otherwise. The right choice outside tests.
    #[default]
    Auto,
    /// Build tables for every segment and probe whenever the pigeonhole
    /// condition can be met, even when a scan would be faster. For tests
    /// that must exercise the tables on small sets.
    PreferProbe,
    /// Never build tables; every query is a linear scan (a baseline).
    LinearOnly,
}

/// Tuning knobs of a [`HammingIndex`]. The defaults suit PDQ matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexOptions {
    /// Radius the substring layout is optimised for; any radius is still
    /// answered exactly. `None` means `31 * bits / 256` (31 for PDQ).
    pub tuning_radius: Option<u32>,
    /// Inserts collected (and scanned linearly) before they are sealed into
    /// an indexed segment.
    pub buffer_capacity: usize,
    /// Search strategy.
    pub strategy: Strategy,
    /// Force this many substring tables (1..=16) instead of the cost model's
    /// choice. For tests and tuning.
    pub tables: Option<usize>,
    /// Merges whose result would exceed this many slots are not built inside
    /// `insert`/`insert_batch` but left for the caller to build off-lock
    /// ([`HammingIndex::take_merge_job`]), so no insert stalls queries for
    /// the seconds a multi-million-slot build takes. `None` builds every
    /// merge inline (the caller then never needs to drive jobs). Sealing
    /// the insert buffer and compaction stay inline either way.
    pub background_merge_threshold: Option<usize>,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            tuning_radius: None,
            buffer_capacity: 2048,
            strategy: Strategy::Auto,
            tables: None,
            background_merge_threshold: None,
        }
    }
}

/// Width-specific engines; each is monomorphised for its block size.
#[derive(Debug)]
enum Engine {
    W1(Core<W1>),
    W2(Core<W2>),
    W4(Core<W4>),
    W8(Core<W8>),
    W16(Core<W16>),
    W32(Core<W32>),
}

macro_rules! dispatch {
    ($self:expr, $core:ident => $body:expr) => {
        match $self {
            Engine::W1($core) => $body,
            Engine::W2($core) => $body,
            Engine::W4($core) => $body,
            Engine::W8($core) => $body,
            Engine::W16($core) => $body,
            Engine::W32($core) => $body,
        }
    };
}

/// Exact Hamming range search over fixed-width bit hashes (PDQ, pHash, …).
///
/// Every stored id whose hash is within the requested distance is returned:
/// there are no approximations, at any radius. Small radii (PDQ's default
/// of 31 and below) are answered by multi-index hashing over flat substring
/// tables; large radii fall back to a popcount scan of the contiguous hash
/// array, whichever the cost model expects to be faster.
///
/// Ids are the caller's handles (for example a row in its own entry table);
/// the same hash may be stored under many ids.
#[derive(Debug)]
pub struct HammingIndex {
    bits: u32,
    options: IndexOptions,
    engine: Engine,
}

impl HammingIndex {
    /// An empty index for `bits`-bit hashes with default options.
    ///
    /// # Errors
    /// [`IndexError::UnsupportedWidth`] unless `bits` is a multiple of 8 in
    /// `8..=2048`.
    pub fn new(bits: u32) -> Result<Self, IndexError> {
        Self::with_options(bits, IndexOptions::default())
    }

    /// An empty index with explicit options.
    ///
    /// # Errors
    /// As [`HammingIndex::new`].
    pub fn with_options(bits: u32, options: IndexOptions) -> Result<Self, IndexError> {
        let params = Self::params(bits, &options)?;
        let bytes = (bits / 8) as usize;
        let cap = options.buffer_capacity;
        let bg = options.background_merge_threshold;
        let engine = match bits.div_ceil(64) {
            1 => Engine::W1(Core::new(bytes, params, cap, bg)),
            2 => Engine::W2(Core::new(bytes, params, cap, bg)),
            3..=4 => Engine::W4(Core::new(bytes, params, cap, bg)),
            5..=8 => Engine::W8(Core::new(bytes, params, cap, bg)),
            9..=16 => Engine::W16(Core::new(bytes, params, cap, bg)),
            _ => Engine::W32(Core::new(bytes, params, cap, bg)),
        };
        Ok(Self {
            bits,
            options,
            engine,
        })
    }

    fn params(bits: u32, options: &IndexOptions) -> Result<BuildParams, IndexError> {
        if bits == 0 || !bits.is_multiple_of(8) || bits > 2048 {
            return Err(IndexError::UnsupportedWidth(bits));
        }
        Ok(BuildParams {
            bits,
            tuning_radius: options.tuning_radius.unwrap_or(31 * bits / 256).min(bits),
            forced_tables: options.tables,
            prefer_probe: options.strategy == Strategy::PreferProbe,
            linear_only: options.strategy == Strategy::LinearOnly,
        })
    }

    /// Writes the whole index (hashes, ids, tables) to `w`, so that [`HammingIndex::load`]
    /// restores it by copying rather than rebuilding (at 100M PDQ hashes a build takes ~5.5
    /// minutes and the snapshot is ~10.4 GiB; see README for the measured load). Refused while a
    /// staged run is uncommitted.
    /// The snapshot's framing and checksum are the caller's: `w` may hold other sections.
    ///
    /// # Errors
    /// [`SnapshotError::Unsavable`] mid-way through a staged run, [`SnapshotError::Io`] when
    /// writing fails.
    pub fn save<W: std::io::Write>(&self, w: &mut SnapshotWriter<W>) -> Result<(), SnapshotError> {
        w.put_raw(SNAPSHOT_MAGIC)?;
        w.put_u32(SNAPSHOT_VERSION)?;
        w.put_u32(self.bits)?;
        let p = Self::params(self.bits, &self.options).expect("checked at creation");
        w.put_u32(p.tuning_radius)?;
        w.put_u32(p.forced_tables.map_or(0, |t| t as u32))?;
        w.put_u8(u8::from(p.prefer_probe) | u8::from(p.linear_only) << 1)?;
        dispatch!(&self.engine, c => c.save(w))
    }

    /// Reads an index written by [`HammingIndex::save`] for `bits`-bit hashes and `options`.
    /// The snapshot's build parameters (tuning radius, table count, strategy) must be the ones
    /// `options` gives, or the loaded tables would not be the ones this build lays out; the
    /// buffer capacity and background threshold are taken from `options`.
    ///
    /// # Errors
    /// [`SnapshotError::Incompatible`] for another width, version or parameters,
    /// [`SnapshotError::Corrupt`] when the parts do not fit together.
    pub fn load<R: std::io::Read>(
        bits: u32,
        options: IndexOptions,
        r: &mut SnapshotReader<R>,
    ) -> Result<Self, SnapshotError> {
        let params =
            Self::params(bits, &options).map_err(|e| SnapshotError::Incompatible(e.to_string()))?;
        let mut magic = [0u8; 4];
        r.raw(&mut magic, "index magic")?;
        if &magic != SNAPSHOT_MAGIC {
            return Err(SnapshotError::Corrupt("not an index snapshot".into()));
        }
        let version = r.u32("index version")?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Incompatible(format!(
                "index snapshot version {version}, this build reads {SNAPSHOT_VERSION}"
            )));
        }
        let saved = (
            r.u32("bits")?,
            r.u32("tuning radius")?,
            r.u32("tables")?,
            r.u8("strategy")?,
        );
        let wanted = (
            bits,
            params.tuning_radius,
            params.forced_tables.map_or(0, |t| t as u32),
            u8::from(params.prefer_probe) | u8::from(params.linear_only) << 1,
        );
        if saved != wanted {
            return Err(SnapshotError::Incompatible(format!(
                "saved with (bits, tuning radius, tables, strategy) {saved:?}, wanted {wanted:?}"
            )));
        }
        let bytes = (bits / 8) as usize;
        let cap = options.buffer_capacity;
        let bg = options.background_merge_threshold;
        let engine = match bits.div_ceil(64) {
            1 => Engine::W1(Core::load(bytes, params, cap, bg, r)?),
            2 => Engine::W2(Core::load(bytes, params, cap, bg, r)?),
            3..=4 => Engine::W4(Core::load(bytes, params, cap, bg, r)?),
            5..=8 => Engine::W8(Core::load(bytes, params, cap, bg, r)?),
            9..=16 => Engine::W16(Core::load(bytes, params, cap, bg, r)?),
            _ => Engine::W32(Core::load(bytes, params, cap, bg, r)?),
        };
        Ok(Self {
            bits,
            options,
            engine,
        })
    }

    /// Hash width in bits.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Stores `hash` under `id`.
    ///
    /// # Errors
    /// [`IndexError::WrongLength`] if the hash is not `bits / 8` bytes,
    /// [`IndexError::DuplicateId`] if `id` is already stored (remove it
    /// first to replace it).
    pub fn insert(&mut self, id: u64, hash: &[u8]) -> Result<(), IndexError> {
        dispatch!(&mut self.engine, c => c.insert(id, hash))
    }

    /// Stores many hashes, building their tables once at the end; the way to
    /// load a snapshot. Stops at the first invalid item (items before it stay
    /// inserted).
    ///
    /// # Errors
    /// As [`HammingIndex::insert`].
    pub fn insert_batch<'a>(
        &mut self,
        items: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> Result<(), IndexError> {
        dispatch!(&mut self.engine, c => c.insert_batch(items))
    }

    /// Reserves room for `extra` more hashes, so that a batch applied in many
    /// small steps ([`HammingIndex::stage`]) grows the index's arrays at most
    /// once instead of rehashing them in one of those steps.
    pub fn reserve(&mut self, extra: usize) {
        dispatch!(&mut self.engine, c => c.reserve(extra))
    }

    /// Stores hashes without making them searchable yet: the way to add a
    /// large batch while the caller holds a lock over the index only briefly
    /// at a time. Call it as often as needed (a slice of the batch per lock
    /// hold), build the batch's segments with [`RunBuilder::build`] away from
    /// the lock, then make them searchable at once with
    /// [`HammingIndex::commit_staged`].
    ///
    /// Staged ids are stored: duplicates are refused, [`HammingIndex::contains`],
    /// [`HammingIndex::get`] and [`HammingIndex::remove`] see them, only
    /// searches do not. An [`insert`](HammingIndex::insert) or
    /// [`insert_batch`](HammingIndex::insert_batch) before the commit, or a
    /// compaction, makes the staged hashes searchable by building their
    /// tables there and then (correct, but not bounded), so callers should
    /// serialize their writers. Stops at the first invalid item (items before
    /// it stay staged).
    ///
    /// # Errors
    /// As [`HammingIndex::insert`].
    pub fn stage<'a>(
        &mut self,
        items: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> Result<(), IndexError> {
        dispatch!(&mut self.engine, c => c.stage(items))
    }

    /// Hashes staged and not yet committed (removed ones included: a run to
    /// commit is built over every staged hash).
    pub fn staged(&self) -> usize {
        dispatch!(&self.engine, c => c.staged())
    }

    /// Makes the staged hashes searchable with `run`, built by this index's
    /// [`RunBuilder`] over exactly the staged hashes in the order staged: only
    /// places its segments (and turns the small insert buffer before them
    /// into a scan-only segment), so the call costs no table building.
    ///
    /// Returns false when `run` does not cover the staged hashes (another
    /// width, another length): they are then sealed here, building their
    /// tables inline; and when nothing is staged (a write or compaction since
    /// already made them searchable): `run` is dropped.
    pub fn commit_staged(&mut self, run: BuiltRun) -> bool {
        let (segments, len) = if run.bits == self.bits {
            (run.segments, run.len)
        } else {
            (Vec::new(), usize::MAX)
        };
        dispatch!(&mut self.engine, c => c.commit_staged(segments, len))
    }

    /// A builder of segments for hashes of this index, usable without it (on
    /// another thread, with no lock held).
    pub fn run_builder(&self) -> RunBuilder {
        RunBuilder {
            bits: self.bits,
            params: dispatch!(&self.engine, c => c.params()),
        }
    }

    /// Removes `id`; returns whether it was stored.
    pub fn remove(&mut self, id: u64) -> bool {
        dispatch!(&mut self.engine, c => c.remove(id))
    }

    /// Whether `id` is stored.
    pub fn contains(&self, id: u64) -> bool {
        dispatch!(&self.engine, c => c.contains(id))
    }

    /// The hash stored under `id`.
    pub fn get(&self, id: u64) -> Option<Vec<u8>> {
        dispatch!(&self.engine, c => c.get(id))
    }

    /// Every stored `(id, distance)` with `distance <= max_distance`, sorted
    /// by distance, then id.
    ///
    /// # Errors
    /// [`IndexError::WrongLength`] if the query is not `bits / 8` bytes.
    pub fn range_search(
        &self,
        query: &[u8],
        max_distance: u32,
    ) -> Result<Vec<(u64, u32)>, IndexError> {
        dispatch!(&self.engine, c => c.range_search(query, max_distance))
    }

    /// Number of stored ids.
    pub fn len(&self) -> usize {
        dispatch!(&self.engine, c => c.len())
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap memory held, in bytes, counting allocated capacity.
    pub fn heap_bytes(&self) -> usize {
        dispatch!(&self.engine, c => c.heap_bytes())
    }

    /// Purges removed entries, rebuilds the tables as few large segments and
    /// frees spare capacity. Removals trigger this by themselves once a
    /// quarter of the slots are dead, unless the index is larger than
    /// [`IndexOptions::background_merge_threshold`]: then
    /// [`HammingIndex::wants_compaction`] says so and the caller compacts
    /// away from its lock ([`HammingIndex::copy_live`] into a fresh index).
    /// Call it after a bulk load for the fastest searches and the smallest
    /// footprint.
    pub fn compact(&mut self) {
        dispatch!(&mut self.engine, c => {
            c.compact();
            c.shrink_to_fit();
        })
    }

    /// Whether a quarter of the slots are removed entries and the index left
    /// the compaction to the caller (see [`HammingIndex::compact`]).
    pub fn wants_compaction(&self) -> bool {
        dispatch!(&self.engine, c => c.wants_compaction())
    }

    /// Copies the live entries of slots `from..from + max_slots` into `out`,
    /// in slot order; returns the slot to go on from, `None` when every slot
    /// was copied. With no write in between, successive calls from 0 copy
    /// every live entry once: a caller compacting off its lock copies a slice
    /// per read-lock hold, fills [`HammingIndex::empty_like`] with it
    /// ([`HammingIndex::stage`] and a [`RunBuilder`] run) and swaps it in.
    pub fn copy_live(&self, from: usize, max_slots: usize, out: &mut LiveEntries) -> Option<usize> {
        out.bytes = (self.bits / 8) as usize;
        dispatch!(&self.engine, c => c.copy_live(from, max_slots, &mut out.ids, &mut out.hashes))
    }

    /// An empty index of the same width and options.
    pub fn empty_like(&self) -> HammingIndex {
        Self::with_options(self.bits, self.options).expect("the options were valid")
    }

    /// `(hashes, substring tables)` per sealed segment, for diagnostics.
    pub fn segments(&self) -> Vec<(usize, usize)> {
        dispatch!(&self.engine, c => c.layout_summary())
    }

    /// The merge left over by
    /// [`IndexOptions::background_merge_threshold`], if one is waiting and
    /// none is in flight; `None` otherwise (always without the option).
    ///
    /// Copies the hashes the merge covers (32 bytes a slot for PDQ, far
    /// cheaper than the build) so the job can run on another thread without
    /// any lock. Call it after inserts and after
    /// [`HammingIndex::install_merge`], which may leave the next merge.
    pub fn take_merge_job(&mut self) -> Option<MergeJob> {
        dispatch!(&mut self.engine, c => c.take_merge_job().map(MergeJob::from))
    }

    /// Puts a merge built by [`MergeJob::run`] in place of the segments it
    /// replaces, then merges on (building small merges inline, possibly
    /// leaving the next large one for [`HammingIndex::take_merge_job`]).
    ///
    /// Returns false and drops it if it is stale: the index was compacted
    /// since the job was taken (slots were renumbered), or the job came from
    /// another index. Removals since the job was taken are fine.
    pub fn install_merge(&mut self, built: BuiltMerge) -> bool {
        dispatch!(&mut self.engine, c => c.install_merge(built))
    }

    /// Merge counters, for diagnostics.
    pub fn merge_stats(&self) -> MergeStats {
        dispatch!(&self.engine, c => c.merge_stats())
    }
}

/// Builds the segments of a batch of hashes for a [`HammingIndex`] without
/// touching it: copied out of the index by [`HammingIndex::run_builder`], it
/// is `Send` and needs no lock. See [`HammingIndex::stage`].
#[derive(Debug, Clone, Copy)]
pub struct RunBuilder {
    bits: u32,
    params: BuildParams,
}

impl RunBuilder {
    /// Builds the segments over `hashes`, in order (one segment per 2^24
    /// hashes): the expensive part of adding a batch.
    ///
    /// # Errors
    /// [`IndexError::WrongLength`] if a hash is not `bits / 8` bytes.
    pub fn build<'a>(
        &self,
        hashes: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<BuiltRun, IndexError> {
        fn run<'a, H: Words>(
            bytes: usize,
            params: &BuildParams,
            hashes: impl IntoIterator<Item = &'a [u8]>,
        ) -> Result<(Vec<Segment>, usize), IndexError> {
            let blocks: Vec<H> = hashes
                .into_iter()
                .map(|h| {
                    if h.len() == bytes {
                        Ok(to_block(h))
                    } else {
                        Err(IndexError::WrongLength {
                            expected: bytes,
                            got: h.len(),
                        })
                    }
                })
                .collect::<Result<_, _>>()?;
            let segments = blocks
                .chunks(MAX_SEGMENT)
                .enumerate()
                .map(|(i, chunk)| Segment::build_over(&[chunk], i * MAX_SEGMENT, params))
                .collect();
            Ok((segments, blocks.len()))
        }
        let bytes = (self.bits / 8) as usize;
        let p = &self.params;
        let (segments, len) = match self.bits.div_ceil(64) {
            1 => run::<W1>(bytes, p, hashes),
            2 => run::<W2>(bytes, p, hashes),
            3..=4 => run::<W4>(bytes, p, hashes),
            5..=8 => run::<W8>(bytes, p, hashes),
            9..=16 => run::<W16>(bytes, p, hashes),
            _ => run::<W32>(bytes, p, hashes),
        }?;
        Ok(BuiltRun {
            bits: self.bits,
            len,
            segments,
        })
    }
}

/// Segments built by [`RunBuilder::build`], waiting for
/// [`HammingIndex::commit_staged`].
pub struct BuiltRun {
    bits: u32,
    len: usize,
    segments: Vec<Segment>,
}

impl BuiltRun {
    /// Hashes it covers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it covers none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for BuiltRun {
    // Not derived: the segments' tables are large.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltRun")
            .field("bits", &self.bits)
            .field("len", &self.len)
            .field("segments", &self.segments.len())
            .finish()
    }
}

/// Entries copied out of an index by [`HammingIndex::copy_live`].
#[derive(Debug, Default, Clone)]
pub struct LiveEntries {
    bytes: usize,
    ids: Vec<u64>,
    hashes: Vec<u8>,
}

impl LiveEntries {
    /// Entries copied.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// `(id, hash)` in the order copied.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.ids
            .iter()
            .copied()
            .zip(self.hashes.chunks_exact(self.bytes.max(1)))
    }
}
