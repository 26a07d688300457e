//! Storage of every inserted hash, its caller id and a liveness bit, addressed by a dense
//! 32-bit slot number, in [`Blocked`] arrays so that growing never copies (see `blocked`).
//!
//! Slots are append-only between compactions: the substring tables refer to
//! slots, so a removal only clears the liveness bit (a tombstone) and the
//! index compacts once tombstones become a large share.

use crate::bits::Words;
use crate::blocked::Blocked;
use crate::snapshot::{SnapshotError, SnapshotReader, SnapshotWriter};
use std::io::{Read, Write};

/// Hashes, ids and tombstones in slot order.
#[derive(Debug)]
pub(crate) struct Store<H> {
    /// One hash block per slot, contiguous within each array block for cache-friendly scans.
    hashes: Blocked<H>,
    /// Caller id per slot.
    pub(crate) ids: Blocked<u64>,
    /// Liveness bitset, one bit per slot.
    alive: Blocked<u64>,
    /// Number of tombstoned slots.
    pub(crate) dead: usize,
}

impl<H: Words> Store<H> {
    /// An empty store.
    pub(crate) fn new() -> Self {
        Self {
            hashes: Blocked::new(),
            ids: Blocked::new(),
            alive: Blocked::new(),
            dead: 0,
        }
    }

    /// Number of slots, live or dead.
    #[inline]
    pub(crate) fn slots(&self) -> usize {
        self.hashes.len()
    }

    /// The hash in `slot`.
    #[inline]
    pub(crate) fn hash(&self, slot: usize) -> &H {
        &self.hashes[slot]
    }

    /// The caller id of `slot`.
    #[inline]
    pub(crate) fn id(&self, slot: usize) -> u64 {
        self.ids[slot]
    }

    /// The hashes of slots `start..end` as contiguous runs, each with its first slot.
    pub(crate) fn hash_runs(
        &self,
        start: usize,
        end: usize,
    ) -> impl Iterator<Item = (usize, &[H])> {
        let mut at = start;
        self.hashes.slices(start, end).map(move |s| {
            let first = at;
            at += s.len();
            (first, s)
        })
    }

    /// Copies of the hashes of slots `start..end` (for a merge built away from the store).
    pub(crate) fn hashes_to_vec(&self, start: usize, end: usize) -> Vec<H> {
        self.hashes.to_vec(start, end)
    }

    /// Asks the CPU to start loading the hash in `slot`.
    #[inline]
    pub(crate) fn prefetch_hash(&self, slot: usize) {
        self.hashes.prefetch(slot);
    }

    /// Number of live slots.
    pub(crate) fn live(&self) -> usize {
        self.hashes.len() - self.dead
    }

    /// Reserves room for `extra` more slots.
    pub(crate) fn reserve(&mut self, extra: usize) {
        self.hashes.reserve(extra);
        self.ids.reserve(extra);
        self.alive.reserve(extra.div_ceil(64));
    }

    /// Appends a live slot and returns its number.
    pub(crate) fn push(&mut self, id: u64, hash: H) -> u32 {
        let slot = self.hashes.len();
        self.hashes.push(hash);
        self.ids.push(id);
        if slot.is_multiple_of(64) {
            self.alive.push(0);
        }
        self.alive[slot / 64] |= 1 << (slot % 64);
        slot as u32
    }

    /// Tombstones a slot.
    pub(crate) fn kill(&mut self, slot: u32) {
        let s = slot as usize;
        self.alive[s / 64] &= !(1 << (s % 64));
        self.dead += 1;
    }

    /// Whether a slot is live.
    #[inline]
    pub(crate) fn is_alive(&self, slot: usize) -> bool {
        self.alive[slot / 64] >> (slot % 64) & 1 == 1
    }

    /// Drops tombstoned slots, keeping slot order, and frees spare capacity.
    pub(crate) fn compact(&mut self) {
        let mut hashes = Blocked::new();
        let mut ids = Blocked::new();
        hashes.reserve(self.live());
        ids.reserve(self.live());
        for slot in 0..self.slots() {
            if self.is_alive(slot) {
                hashes.push(self.hashes[slot]);
                ids.push(self.ids[slot]);
            }
        }
        let n = hashes.len();
        let mut alive: Blocked<u64> = std::iter::repeat_n(u64::MAX, n / 64).collect();
        if n % 64 != 0 {
            alive.push((1u64 << (n % 64)) - 1);
        }
        *self = Self {
            hashes,
            ids,
            alive,
            dead: 0,
        };
    }

    /// Writes hashes, ids and liveness.
    pub(crate) fn save<W: Write>(&self, w: &mut SnapshotWriter<W>) -> Result<(), SnapshotError> {
        w.put_u64(self.slots() as u64)?;
        w.put_words(
            self.hashes
                .range(0, self.slots())
                .flat_map(|h| h.words().iter().map(|x| x.to_le_bytes())),
        )?;
        w.put_u64s_iter(self.ids.range(0, self.ids.len()).copied())?;
        w.put_u64s_iter(self.alive.range(0, self.alive.len()).copied())?;
        w.put_u64(self.dead as u64)
    }

    /// Reads a store saved by [`Store::save`], checking that liveness covers exactly the slots
    /// and that the dead count is what the bits say.
    pub(crate) fn load<R: Read>(r: &mut SnapshotReader<R>) -> Result<Self, SnapshotError> {
        let corrupt = |m: String| SnapshotError::Corrupt(format!("store: {m}"));
        let slots = r.len((H::WORDS * 8 + 8) as u64, "slots")?;
        if slots >= u32::MAX as usize - 1 {
            return Err(corrupt(format!("{slots} slots")));
        }
        // Word by word into the blocks: no second copy of the largest array.
        let mut hashes = Blocked::new();
        hashes.reserve(slots);
        let mut block = H::zero();
        let mut at = 0;
        r.for_each(slots * H::WORDS, "hashes", |w: [u8; 8]| {
            block.words_mut()[at] = u64::from_le_bytes(w);
            at += 1;
            if at == H::WORDS {
                hashes.push(block);
                at = 0;
            }
            Ok(())
        })?;
        let ids: Blocked<u64> = r.u64s_into("ids")?;
        let alive: Blocked<u64> = r.u64s_into("liveness")?;
        let dead = r.u64("dead count")? as usize;
        if ids.len() != slots || alive.len() != slots.div_ceil(64) {
            return Err(corrupt(format!(
                "{} ids and {} liveness words for {slots} slots",
                ids.len(),
                alive.len()
            )));
        }
        if slots % 64 != 0 && alive[slots / 64] >> (slots % 64) != 0 {
            return Err(corrupt("liveness bits past the last slot".into()));
        }
        let live: usize = alive
            .range(0, alive.len())
            .map(|w| w.count_ones() as usize)
            .sum();
        if live + dead != slots {
            return Err(corrupt(format!(
                "{live} live and {dead} dead slots of {slots}"
            )));
        }
        Ok(Self {
            hashes,
            ids,
            alive,
            dead,
        })
    }

    /// Frees spare capacity after a bulk load.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.hashes.shrink_to_fit();
        self.ids.shrink_to_fit();
        self.alive.shrink_to_fit();
    }

    /// Heap bytes held, counting capacity (what the allocator really gave us).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.hashes.heap_bytes() + self.ids.heap_bytes() + self.alive.heap_bytes()
    }
}
