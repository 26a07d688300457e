//! The width-generic engine behind [`HammingIndex`](crate::HammingIndex):
//! store + id map + sealed segments + an unsealed buffer, and the policies
//! that seal, merge and compact them.
//!
//! Layout of the slot space: `[segment 0][segment 1]…[segment k][buffer]`.
//! Segments are sized roughly geometrically (a segment is merged into its
//! left neighbour while that neighbour is at most `MERGE_FACTOR` times its
//! size), so a stream of single inserts costs O(log n) rebuild work each and
//! a query visits O(log n) segments, most of them small and scanned.

use crate::bits::{from_block, to_block, Words};
use crate::idmap::IdMap;
use crate::segment::{scan, BuildParams, Scratch, Segment};
use crate::store::Store;
use crate::table::MAX_SEGMENT;
use crate::IndexError;

/// A segment is merged into its left neighbour while the neighbour is at
/// most this many times larger.
const MERGE_FACTOR: usize = 4;
/// Tombstones are purged once they reach this many and a quarter of slots.
const COMPACT_MIN_DEAD: usize = 1024;

/// Index engine for one block type.
#[derive(Debug)]
pub(crate) struct Core<H> {
    store: Store<H>,
    ids: IdMap,
    segments: Vec<Segment>,
    /// Slots before this are in segments; the rest is the buffer.
    sealed: usize,
    buffer_capacity: usize,
    params: BuildParams,
    bytes: usize,
}

impl<H: Words> Core<H> {
    pub(crate) fn new(bytes: usize, params: BuildParams, buffer_capacity: usize) -> Self {
        Self {
            store: Store::new(),
            ids: IdMap::new(),
            segments: Vec::new(),
            sealed: 0,
            buffer_capacity: buffer_capacity.max(1),
            params,
            bytes,
        }
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

    /// Turns the buffer into segments and merges small neighbours.
    fn seal(&mut self) {
        while self.sealed < self.store.slots() {
            let end = self.store.slots().min(self.sealed + MAX_SEGMENT);
            self.segments
                .push(Segment::build(&self.store, self.sealed, end, &self.params));
            self.sealed = end;
            while let [.., a, b] = self.segments.as_slice() {
                if a.len > MERGE_FACTOR * b.len || a.len + b.len > MAX_SEGMENT {
                    break;
                }
                let (start, end) = (a.start, b.start + b.len);
                self.segments.truncate(self.segments.len() - 2);
                self.segments
                    .push(Segment::build(&self.store, start, end, &self.params));
            }
        }
    }

    pub(crate) fn remove(&mut self, id: u64) -> bool {
        let Some(slot) = self.ids.remove(id, &self.store.ids) else {
            return false;
        };
        self.store.kill(slot);
        if self.store.dead >= COMPACT_MIN_DEAD && self.store.dead * 4 >= self.store.slots() {
            self.compact();
        }
        true
    }

    /// Drops tombstones, frees spare capacity and rebuilds the segments from
    /// scratch (one segment per `MAX_SEGMENT` slots).
    pub(crate) fn compact(&mut self) {
        self.store.compact();
        self.ids = IdMap::with_capacity(self.store.slots());
        for slot in 0..self.store.slots() {
            self.ids
                .insert(self.store.ids[slot], slot as u32, &self.store.ids);
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
        Some(from_block(&self.store.hashes[slot as usize], self.bytes))
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
            self.store.slots(),
            &mut found,
        );
        let mut out: Vec<(u32, u64)> = found
            .into_iter()
            .map(|(d, slot)| (d, self.store.ids[slot as usize]))
            .collect();
        out.sort_unstable();
        Ok(out.into_iter().map(|(d, id)| (id, d)).collect())
    }

    pub(crate) fn len(&self) -> usize {
        self.store.live()
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
