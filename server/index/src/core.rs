//! The width-generic engine behind [`HammingIndex`](crate::HammingIndex):
//! store + id map + sealed segments + an unsealed buffer, and the policies
//! that seal, merge and compact them.
//!
//! Layout of the slot space: `[segment 0][segment 1]…[segment k][buffer]`.
//! Segments are sized roughly geometrically (a segment is merged into its
//! left neighbour while that neighbour is at most `MERGE_FACTOR` times its
//! size), so a stream of single inserts costs O(log n) rebuild work each and
//! a query visits O(log n) segments, most of them small and scanned.
//!
//! Merges larger than the background threshold (when one is set) are not
//! built here: one at a time is recorded as deferred and handed out as a
//! [`Job`] for the caller to build off-lock (see `merge`); until it is
//! installed, its segments stay searchable and no other merge touches them.
//!
//! A large batch can be **staged** instead of inserted: its slots are appended after the buffer
//! (ids resolve, duplicates are refused) but nothing searches them, while the caller builds
//! their segments away from its lock (`RunBuilder`); committing the built run then only places
//! those segments — no table is built under the caller's lock for the batch.

use crate::bits::{from_block, to_block, Words};
use crate::idmap::IdMap;
use crate::merge::{fresh_generation, BuiltMerge, Job, MergeStats};
use crate::segment::{scan, BuildParams, Scratch, Segment};
use crate::snapshot::{SnapshotError, SnapshotReader, SnapshotWriter};
use crate::store::Store;
use crate::table::MAX_SEGMENT;
use crate::IndexError;
use std::io::{Read, Write};

/// A segment is merged into its left neighbour while the neighbour is at
/// most this many times larger.
const MERGE_FACTOR: usize = 4;
/// Tombstones are purged once they reach this many and a quarter of slots.
const COMPACT_MIN_DEAD: usize = 1024;

/// A merge too large to build inline, left for the caller to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deferred {
    /// Slots `start..end`: exactly the segments the merge replaces.
    start: usize,
    end: usize,
    /// Handed out as a job and not yet installed.
    taken: bool,
}

/// Index engine for one block type.
#[derive(Debug)]
pub(crate) struct Core<H> {
    store: Store<H>,
    ids: IdMap,
    /// Tile `0..sealed` in slot order.
    segments: Vec<Segment>,
    /// Slots before this are in segments; the rest is the buffer.
    sealed: usize,
    buffer_capacity: usize,
    params: BuildParams,
    bytes: usize,
    /// Merges producing more slots than this are deferred; `None` builds
    /// every merge inline.
    background_threshold: Option<usize>,
    /// At most one deferred merge, pending or in flight.
    deferred: Option<Deferred>,
    /// Changes whenever slots are renumbered (compaction), which invalidates
    /// any job in flight.
    generation: u64,
    stats: MergeStats,
    /// Slots from here on are staged: stored, not searched (see the module
    /// documentation). The buffer is `sealed..staged_from`.
    staged_from: Option<usize>,
}

impl<H: Words> Core<H> {
    pub(crate) fn new(
        bytes: usize,
        params: BuildParams,
        buffer_capacity: usize,
        background_threshold: Option<usize>,
    ) -> Self {
        Self {
            store: Store::new(),
            ids: IdMap::new(),
            segments: Vec::new(),
            sealed: 0,
            buffer_capacity: buffer_capacity.max(1),
            params,
            bytes,
            background_threshold,
            deferred: None,
            generation: fresh_generation(),
            stats: MergeStats::default(),
            staged_from: None,
        }
    }

    pub(crate) fn params(&self) -> BuildParams {
        self.params
    }

    fn check(&self, hash: &[u8]) -> Result<(), IndexError> {
        if hash.len() == self.bytes {
            Ok(())
        } else {
            Err(IndexError::WrongLength {
                expected: self.bytes,
                got: hash.len(),
            })
        }
    }

    /// Adds one hash without sealing.
    fn push(&mut self, id: u64, hash: &[u8]) -> Result<(), IndexError> {
        self.check(hash)?;
        if self.ids.get(id, &self.store.ids).is_some() {
            return Err(IndexError::DuplicateId(id));
        }
        if self.store.slots() >= u32::MAX as usize - 1 {
            return Err(IndexError::Full(self.store.slots()));
        }
        let slot = self.store.push(id, to_block(hash));
        self.ids.insert(id, slot, &self.store.ids);
        Ok(())
    }

    pub(crate) fn insert(&mut self, id: u64, hash: &[u8]) -> Result<(), IndexError> {
        self.end_staging_inline();
        self.push(id, hash)?;
        if self.store.slots() - self.sealed >= self.buffer_capacity {
            self.seal();
        }
        Ok(())
    }

    pub(crate) fn insert_batch<'a>(
        &mut self,
        items: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> Result<(), IndexError> {
        self.end_staging_inline();
        let iter = items.into_iter();
        self.store.reserve(iter.size_hint().0);
        self.ids.reserve(iter.size_hint().0, &self.store.ids);
        let mut result = Ok(());
        for (id, hash) in iter {
            if let Err(e) = self.push(id, hash) {
                result = Err(e);
                break;
            }
        }
        if self.store.slots() - self.sealed >= self.buffer_capacity {
            self.seal();
        }
        result
    }

    /// Reserves room for `extra` more slots (store and id map), so that a
    /// batch applied in many small steps grows them at most once.
    pub(crate) fn reserve(&mut self, extra: usize) {
        self.store.reserve(extra);
        self.ids.reserve(extra, &self.store.ids);
    }

    /// Appends `items` to the staged run, opening one if none is open: stored
    /// and refused like inserts, but not searched until
    /// [`Core::commit_staged`]. Stops at the first invalid item (items before
    /// it stay staged).
    pub(crate) fn stage<'a>(
        &mut self,
        items: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> Result<(), IndexError> {
        if self.staged_from.is_none() {
            self.staged_from = Some(self.store.slots());
        }
        for (id, hash) in items {
            self.push(id, hash)?;
        }
        Ok(())
    }

    /// Slots staged and not yet committed (removed ones included).
    pub(crate) fn staged(&self) -> usize {
        self.staged_from.map_or(0, |from| self.store.slots() - from)
    }

    /// Makes the staged run searchable with `segments` (built over exactly the
    /// staged hashes, in order, with slot numbers relative to the run): the
    /// buffer before it becomes a scan-only segment (no tables to build), the
    /// run's segments are placed after it, and small neighbours merge as
    /// after a seal. Returns false if `segments` do not cover the staged run
    /// (then the run is sealed here instead, building its tables inline) or
    /// if nothing is staged (an insert or a compaction already made it
    /// searchable).
    pub(crate) fn commit_staged(&mut self, segments: Vec<Segment>, len: usize) -> bool {
        let Some(from) = self.staged_from else {
            return false;
        };
        if len != self.store.slots() - from {
            self.end_staging_inline();
            return false;
        }
        self.staged_from = None;
        if self.sealed < from {
            self.segments
                .push(Segment::scan_only(self.sealed, from - self.sealed));
        }
        for mut s in segments {
            s.start += from;
            self.segments.push(s);
        }
        self.sealed = self.store.slots();
        self.merge_neighbours();
        true
    }

    /// Seals a staged run here (building its tables inline), so a write that
    /// does not go through [`Core::commit_staged`] never leaves staged slots
    /// unsearchable or splits the buffer.
    fn end_staging_inline(&mut self) {
        if self.staged_from.take().is_some() {
            self.seal();
        }
    }

    /// Turns the buffer into segments and merges small neighbours.
    ///
    /// Sealing itself is always inline, whatever the background threshold:
    /// its cost is proportional to what the caller just inserted.
    fn seal(&mut self) {
        while self.sealed < self.store.slots() {
            let end = self.store.slots().min(self.sealed + MAX_SEGMENT);
            self.segments
                .push(Segment::build(&self.store, self.sealed, end, &self.params));
            self.sealed = end;
            self.merge_neighbours();
        }
    }

    /// Merges adjacent segments by the size rule, rightmost pair first,
    /// until no pair qualifies: inline up to the background threshold,
    /// larger merges recorded as deferred (one at a time).
    ///
    /// Without deferrals only the last pair can qualify (every other pair
    /// was settled when it formed), so this is the plain tail cascade; the
    /// general search is for pairs left behind by a deferred merge.
    fn merge_neighbours(&mut self) {
        while let Some(i) = self.next_merge() {
            let (start, end) = self.pair_range(i);
            if self.builds_inline(end - start) {
                self.merge_inline(i);
            } else {
                self.deferred = Some(Deferred {
                    start,
                    end,
                    taken: false,
                });
            }
        }
        self.debug_check_layout();
    }

    /// The rightmost pair `(i, i + 1)` that should merge and can be merged
    /// or deferred now.
    fn next_merge(&self) -> Option<usize> {
        (0..self.segments.len().saturating_sub(1)).rev().find(|&i| {
            let (a, b) = (&self.segments[i], &self.segments[i + 1]);
            let (start, end) = self.pair_range(i);
            a.len <= MERGE_FACTOR * b.len
                && a.len + b.len <= MAX_SEGMENT
                && !self.overlaps_deferred(start, end)
                && (self.builds_inline(end - start) || self.deferred.is_none())
        })
    }

    /// Slots covered by segments `i` and `i + 1`.
    fn pair_range(&self, i: usize) -> (usize, usize) {
        let b = &self.segments[i + 1];
        (self.segments[i].start, b.start + b.len)
    }

    fn builds_inline(&self, slots: usize) -> bool {
        self.background_threshold.is_none_or(|t| slots <= t)
    }

    /// Whether slots `start..end` share a segment with the deferred merge,
    /// which must stay as it is until the merge is installed.
    fn overlaps_deferred(&self, start: usize, end: usize) -> bool {
        self.deferred
            .is_some_and(|d| start < d.end && d.start < end)
    }

    /// Replaces segments `i` and `i + 1` by one built now.
    fn merge_inline(&mut self, i: usize) {
        let (start, end) = self.pair_range(i);
        // Dropped before the build, so the old tables and the new ones are
        // never held at once.
        self.segments.drain(i..=i + 1);
        let merged = Segment::build(&self.store, start, end, &self.params);
        self.segments.insert(i, merged);
        let largest = &mut self.stats.largest_inline_merge;
        *largest = (*largest).max(end - start);
    }

    /// Hands out the deferred merge, with a copy of the hashes it covers.
    pub(crate) fn take_merge_job(&mut self) -> Option<Job<H>> {
        let deferred = self.deferred.as_mut().filter(|d| !d.taken)?;
        deferred.taken = true;
        self.stats.jobs_taken += 1;
        let (start, end) = (deferred.start, deferred.end);
        Some(Job {
            start,
            hashes: self.store.hashes_to_vec(start, end),
            params: self.params,
            generation: self.generation,
        })
    }

    /// Swaps a built merge in for the segments it replaces and merges on;
    /// false (dropping it) unless it is the job in flight of this layout.
    ///
    /// Tombstones set while the job ran need nothing here: segments list
    /// slots whatever their liveness, and searches check liveness in the
    /// store.
    pub(crate) fn install_merge(&mut self, built: BuiltMerge) -> bool {
        let Some(replaced) = self.replaced_by(&built) else {
            self.stats.jobs_rejected += 1;
            return false;
        };
        self.segments.splice(replaced, [built.segment]);
        self.deferred = None;
        self.stats.jobs_installed += 1;
        self.merge_neighbours();
        true
    }

    /// Indices of the segments `built` replaces, if it is the job in flight
    /// and was taken in the current generation.
    fn replaced_by(&self, built: &BuiltMerge) -> Option<std::ops::RangeInclusive<usize>> {
        let d = self.deferred.filter(|d| d.taken)?;
        let seg = &built.segment;
        if built.generation != self.generation
            || seg.start != d.start
            || seg.start + seg.len != d.end
        {
            return None;
        }
        // Both exist: nothing reshapes a deferred range within a generation.
        let first = self.segments.iter().position(|s| s.start == d.start)?;
        let last = self
            .segments
            .iter()
            .position(|s| s.start + s.len == d.end)?;
        Some(first..=last)
    }

    pub(crate) fn merge_stats(&self) -> MergeStats {
        self.stats
    }

    /// Segments must tile `0..sealed`: every sealed slot searched exactly
    /// once, whatever merges were deferred or installed.
    fn debug_check_layout(&self) {
        if cfg!(debug_assertions) {
            let mut next = 0;
            for s in &self.segments {
                assert_eq!(s.start, next, "segments must be contiguous");
                next += s.len;
            }
            assert_eq!(next, self.sealed, "segments must cover the sealed slots");
        }
    }

    pub(crate) fn remove(&mut self, id: u64) -> bool {
        let Some(slot) = self.ids.remove(id, &self.store.ids) else {
            return false;
        };
        self.store.kill(slot);
        if self.compaction_due() && self.builds_inline(self.store.slots()) {
            self.compact();
        }
        true
    }

    /// Enough tombstones to compact.
    fn compaction_due(&self) -> bool {
        self.store.dead >= COMPACT_MIN_DEAD && self.store.dead * 4 >= self.store.slots()
    }

    /// A compaction is due that `remove` left to the caller: with a background
    /// threshold, an index larger than it is not rebuilt inside a removal (that
    /// would hold the caller's lock for the whole rebuild).
    pub(crate) fn wants_compaction(&self) -> bool {
        self.compaction_due() && !self.builds_inline(self.store.slots())
    }

    /// Appends the id and hash bytes of every live slot in `from..from + max`
    /// to `ids` and `hashes`; returns where to go on, `None` at the end.
    pub(crate) fn copy_live(
        &self,
        from: usize,
        max: usize,
        ids: &mut Vec<u64>,
        hashes: &mut Vec<u8>,
    ) -> Option<usize> {
        let end = self.store.slots().min(from.saturating_add(max));
        for slot in from..end {
            if self.store.is_alive(slot) {
                ids.push(self.store.id(slot));
                hashes.extend_from_slice(&from_block(self.store.hash(slot), self.bytes));
            }
        }
        (end < self.store.slots()).then_some(end)
    }

    /// Drops tombstones, frees spare capacity and rebuilds the segments from
    /// scratch (one segment per `MAX_SEGMENT` slots).
    ///
    /// Renumbers slots, so a deferred merge is forgotten and a job in flight
    /// becomes stale (its result is rejected by generation).
    pub(crate) fn compact(&mut self) {
        // Every slot is rebuilt below, staged ones included.
        self.staged_from = None;
        self.generation = fresh_generation();
        self.deferred = None;
        self.store.compact();
        self.ids = IdMap::with_capacity(self.store.slots());
        for slot in 0..self.store.slots() {
            self.ids
                .insert(self.store.id(slot), slot as u32, &self.store.ids);
        }
        self.segments.clear();
        self.sealed = 0;
        let mut start = 0;
        while start < self.store.slots() {
            let end = self.store.slots().min(start + MAX_SEGMENT);
            self.segments
                .push(Segment::build(&self.store, start, end, &self.params));
            start = end;
        }
        self.sealed = start;
        self.segments.shrink_to_fit();
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.store.shrink_to_fit();
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.ids.get(id, &self.store.ids).is_some()
    }

    pub(crate) fn get(&self, id: u64) -> Option<Vec<u8>> {
        let slot = self.ids.get(id, &self.store.ids)?;
        Some(from_block(self.store.hash(slot as usize), self.bytes))
    }

    pub(crate) fn range_search(
        &self,
        query: &[u8],
        radius: u32,
    ) -> Result<Vec<(u64, u32)>, IndexError> {
        self.check(query)?;
        let q: H = to_block(query);
        let mut found = Vec::new();
        let mut scratch = Scratch::default();
        for seg in &self.segments {
            seg.search(&self.store, &q, radius, &mut scratch, &mut found);
        }
        scan(
            &self.store,
            &q,
            radius,
            self.sealed,
            self.staged_from.unwrap_or(self.store.slots()),
            &mut found,
        );
        let mut out: Vec<(u32, u64)> = found
            .into_iter()
            .map(|(d, slot)| (d, self.store.id(slot as usize)))
            .collect();
        out.sort_unstable();
        Ok(out.into_iter().map(|(d, id)| (id, d)).collect())
    }

    pub(crate) fn len(&self) -> usize {
        self.store.live()
    }

    /// Writes store, id map and segments. A deferred merge is not written (the loaded index
    /// plans it again at its next seal); a staged run cannot be saved, its segments exist only
    /// in the caller's builder.
    pub(crate) fn save<W: Write>(&self, w: &mut SnapshotWriter<W>) -> Result<(), SnapshotError> {
        if self.staged_from.is_some() {
            return Err(SnapshotError::Unsavable(
                "a staged run is not committed yet".into(),
            ));
        }
        w.put_u32(H::WORDS as u32)?;
        self.store.save(w)?;
        self.ids.save(w, &self.store.ids)?;
        w.put_u64(self.sealed as u64)?;
        w.put_u64(self.segments.len() as u64)?;
        for s in &self.segments {
            s.save(w)?;
        }
        Ok(())
    }

    /// Reads a core saved by [`Core::save`] for this width and these build parameters, checking
    /// that its parts fit together (segments tile `0..sealed`, the map holds the live slots).
    pub(crate) fn load<R: Read>(
        bytes: usize,
        params: BuildParams,
        buffer_capacity: usize,
        background_threshold: Option<usize>,
        r: &mut SnapshotReader<R>,
    ) -> Result<Self, SnapshotError> {
        let words = r.u32("block words")? as usize;
        if words != H::WORDS {
            return Err(SnapshotError::Incompatible(format!(
                "{words}-word blocks, this index uses {}",
                H::WORDS
            )));
        }
        let store = Store::<H>::load(r)?;
        let ids = IdMap::load(r, store.slots())?;
        let corrupt = |m: String| SnapshotError::Corrupt(format!("index: {m}"));
        if ids.len() != store.live() {
            return Err(corrupt(format!(
                "{} ids mapped, {} live slots",
                ids.len(),
                store.live()
            )));
        }
        let sealed = r.u64("sealed slots")? as usize;
        let count = r.u64("segment count")? as usize;
        if sealed > store.slots() || count > sealed {
            return Err(corrupt(format!(
                "{count} segments over {sealed} of {} slots",
                store.slots()
            )));
        }
        let mut segments = Vec::with_capacity(count);
        let mut at = 0;
        for _ in 0..count {
            let s = Segment::load::<R, H>(at, &params, r)?;
            at += s.len;
            segments.push(s);
        }
        if at != sealed {
            return Err(corrupt(format!(
                "segments cover {at} slots, {sealed} sealed"
            )));
        }
        Ok(Self {
            store,
            ids,
            segments,
            sealed,
            buffer_capacity: buffer_capacity.max(1),
            params,
            bytes,
            background_threshold,
            deferred: None,
            generation: fresh_generation(),
            stats: MergeStats::default(),
            staged_from: None,
        })
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.store.heap_bytes()
            + self.ids.heap_bytes()
            + self.segments.capacity() * std::mem::size_of::<Segment>()
            + self.segments.iter().map(Segment::heap_bytes).sum::<usize>()
    }

    pub(crate) fn layout_summary(&self) -> Vec<(usize, usize)> {
        self.segments
            .iter()
            .map(|s| (s.len, s.table_count()))
            .collect()
    }
}
