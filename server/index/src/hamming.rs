//! The public Hamming-distance range index and its options.

use crate::bits::{W1, W16, W2, W32, W4, W8};
use crate::core::Core;
use crate::merge::{BuiltMerge, MergeJob, MergeStats};
use crate::segment::BuildParams;
use crate::IndexError;

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
        if bits == 0 || !bits.is_multiple_of(8) || bits > 2048 {
            return Err(IndexError::UnsupportedWidth(bits));
        }
        let params = BuildParams {
            bits,
            tuning_radius: options.tuning_radius.unwrap_or(31 * bits / 256).min(bits),
            forced_tables: options.tables,
            prefer_probe: options.strategy == Strategy::PreferProbe,
            linear_only: options.strategy == Strategy::LinearOnly,
        };
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
        Ok(Self { bits, engine })
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
    /// quarter of the slots are dead; call it after a bulk load for the
    /// fastest searches and the smallest footprint.
    pub fn compact(&mut self) {
        dispatch!(&mut self.engine, c => {
            c.compact();
            c.shrink_to_fit();
        })
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
