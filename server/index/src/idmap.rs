//! Map from caller id to slot, stored as a bare open-addressing array of
//! slot numbers (4 bytes a bucket).
//!
//! The key of a bucket is not stored: it is `ids[slot]` in the [`Store`],
//! which already keeps every id. That makes the map 4–9 bytes a hash instead
//! of the 20–40 a `HashMap<u64, u32>` costs, which matters for the
//! ≤ 100 bytes-a-hash budget. Lookups touch `ids`, a random access, but the
//! map is only used on insert and remove, never on the search path.
//!
//! Buckets hold `slot + 1`, so that an empty bucket is 0 and a new table is
//! zeroed memory: the allocator hands that out as untouched pages, so making
//! room for millions of ids costs no fill. Slots stay below `u32::MAX - 1`
//! (the store refuses more), so `u32::MAX` is free to mark a bucket removed.
//!
//! Growth is incremental. Every insert runs under the caller's write lock, and
//! rehashing 100M ids at once held it for 8.4 s. When the table reaches 3/4
//! load, a table twice its size becomes the one inserts go to, and the old one
//! drains into it [`DRAIN_PER_INSERT`] buckets per insert: it is empty long
//! before the new table can fill (after 1/8 of its buckets' worth of inserts,
//! against 3/4 before it grows again). Lookups and removals look in both while
//! it drains, which is what the drain's speed trades against: at 2 buckets per
//! insert the map was draining 2/3 of the time and a 10,000-entry batch took
//! 40% longer at the median (`freshness` bench); at 8 the moves cost ~1 µs per
//! insert for 1/6 of the time. The only whole-table rehashes left are those whose cost is
//! proportional to the caller's own batch ([`IdMap::reserve`] for a batch
//! larger than the map) and a save taken while draining (which merges a copy).
//!
//! [`Store`]: crate::store::Store

use crate::blocked::Blocked;
use crate::snapshot::{SnapshotError, SnapshotReader, SnapshotWriter};
use prefetch_index::prefetch_index;
use std::io::{Read, Write};

const EMPTY: u32 = 0;
/// A bucket of the draining table whose id was removed (probes go on past it).
const REMOVED: u32 = u32::MAX;
/// Old-table buckets moved per insert while a grown table drains its predecessor.
const DRAIN_PER_INSERT: usize = 8;

/// The slot a non-empty bucket holds.
#[inline]
fn slot_of(bucket: u32) -> usize {
    (bucket - 1) as usize
}

#[inline]
fn holds_slot(bucket: u32) -> bool {
    bucket != EMPTY && bucket != REMOVED
}

/// Linear-probing table of slots keyed by `ids[slot]`.
#[derive(Debug)]
pub(crate) struct IdMap {
    /// The table inserts go to.
    table: Vec<u32>,
    shift: u32,
    /// Ids held, in both tables.
    len: usize,
    /// The table being drained into `table` after a growth.
    old: Option<Draining>,
}

/// A smaller table whose buckets below `cursor` have moved to the new one.
#[derive(Debug)]
struct Draining {
    table: Vec<u32>,
    shift: u32,
    cursor: usize,
}

#[inline]
fn mix(id: u64) -> u64 {
    // Fibonacci hashing plus a fold so sequential ids spread well.
    let h = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

#[inline]
fn home(id: u64, shift: u32) -> usize {
    (mix(id).wrapping_mul(0x2545_F491_4F6C_DD1D) >> shift) as usize
}

fn shift_for(buckets: usize) -> u32 {
    64 - buckets.trailing_zeros()
}

/// Buckets for `n` ids at most 3/4 full.
fn buckets_for(n: usize) -> usize {
    (n * 4 / 3 + 1).next_power_of_two().max(16)
}

/// Puts `bucket` (a slot) in the first empty bucket of its probe sequence.
#[inline]
fn place(table: &mut [u32], shift: u32, bucket: u32, ids: &Blocked<u64>) {
    let mask = table.len() - 1;
    let mut i = home(ids[slot_of(bucket)], shift);
    while table[i] != EMPTY {
        i = (i + 1) & mask;
    }
    table[i] = bucket;
}

impl Draining {
    /// Position of `id`'s bucket. Buckets below `cursor` have moved (they are skipped: a
    /// probe that reaches one goes on at `cursor`); removed ones are passed over.
    fn find(&self, id: u64, ids: &Blocked<u64>) -> Option<usize> {
        let n = self.table.len();
        let mut i = home(id, self.shift);
        for _ in 0..n - self.cursor {
            if i < self.cursor {
                i = self.cursor;
            }
            let s = self.table[i];
            if s == EMPTY {
                return None;
            }
            if s != REMOVED && ids[slot_of(s)] == id {
                return Some(i);
            }
            i = (i + 1) % n;
        }
        None
    }
}

impl IdMap {
    /// An empty map.
    pub(crate) fn new() -> Self {
        Self::with_capacity(0)
    }

    /// A map that holds `n` ids without growing.
    pub(crate) fn with_capacity(n: usize) -> Self {
        let buckets = buckets_for(n);
        Self {
            table: vec![EMPTY; buckets],
            len: 0,
            shift: shift_for(buckets),
            old: None,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.table.len() - 1
    }

    /// Position of `id`'s bucket in the new table.
    fn find(&self, id: u64, ids: &Blocked<u64>) -> Option<usize> {
        let mut i = home(id, self.shift);
        loop {
            let s = self.table[i];
            if s == EMPTY {
                return None;
            }
            if ids[slot_of(s)] == id {
                return Some(i);
            }
            i = (i + 1) & self.mask();
        }
    }

    /// Slot stored for `id`.
    pub(crate) fn get(&self, id: u64, ids: &Blocked<u64>) -> Option<u32> {
        if let Some(i) = self.find(id, ids) {
            return Some(self.table[i] - 1);
        }
        let old = self.old.as_ref()?;
        old.find(id, ids).map(|i| old.table[i] - 1)
    }

    /// Records `slot` for `id`; the caller has checked `id` is absent and
    /// has already written `ids[slot] = id`.
    pub(crate) fn insert(&mut self, id: u64, slot: u32, ids: &Blocked<u64>) {
        if (self.len + 1) * 4 > self.table.len() * 3 {
            self.start_growth(ids);
        }
        let mut i = home(id, self.shift);
        while self.table[i] != EMPTY {
            i = (i + 1) & self.mask();
        }
        self.table[i] = slot + 1;
        self.len += 1;
        self.drain(DRAIN_PER_INSERT, ids);
    }

    /// Makes room for `extra` more ids. A batch larger than the map is paid for here, with one
    /// rehash to the size it needs (proportional to the batch); a smaller one is left to the
    /// incremental growth of [`IdMap::insert`], so no write holds a lock over a whole-map
    /// rehash.
    pub(crate) fn reserve(&mut self, extra: usize, ids: &Blocked<u64>) {
        let want = buckets_for(self.len + extra);
        if want > self.table.len() && extra >= self.len {
            self.rehash(want, ids);
        }
    }

    /// Makes a table twice the size the one inserts go to; the current one drains into it.
    fn start_growth(&mut self, ids: &Blocked<u64>) {
        // Normally long done (see the module documentation); finish it if not.
        self.drain(usize::MAX, ids);
        let buckets = self.table.len() * 2;
        let old = std::mem::replace(&mut self.table, vec![EMPTY; buckets]);
        self.old = Some(Draining {
            table: old,
            shift: self.shift,
            cursor: 0,
        });
        self.shift = shift_for(buckets);
    }

    /// Moves up to `buckets` buckets of the draining table into the new one.
    fn drain(&mut self, buckets: usize, ids: &Blocked<u64>) {
        let Some(old) = self.old.as_mut() else {
            return;
        };
        let end = old.cursor.saturating_add(buckets).min(old.table.len());
        for i in old.cursor..end {
            let s = old.table[i];
            if holds_slot(s) {
                place(&mut self.table, self.shift, s, ids);
            }
        }
        old.cursor = end;
        if end == old.table.len() {
            self.old = None;
        }
    }

    /// Rebuilds the map as one table of `buckets` buckets (both tables, if draining).
    ///
    /// Each entry costs two random accesses (its id, then its new bucket). The loop runs as a
    /// short pipeline — the id of the entry `2 * AHEAD` ahead and the new bucket of the entry
    /// `AHEAD` ahead are prefetched — so the cache misses of different entries overlap.
    fn rehash(&mut self, buckets: usize, ids: &Blocked<u64>) {
        self.table = self.rebuilt(buckets, ids);
        self.shift = shift_for(buckets);
        self.old = None;
    }

    /// Every held slot, placed in a fresh table of `buckets` buckets.
    fn rebuilt(&self, buckets: usize, ids: &Blocked<u64>) -> Vec<u32> {
        const AHEAD: usize = 16;
        let pending = self.old.as_ref().map_or(&[][..], |o| &o.table[o.cursor..]);
        let held: Vec<u32> = self
            .table
            .iter()
            .chain(pending)
            .copied()
            .filter(|&s| holds_slot(s))
            .collect();
        let mut table = vec![EMPTY; buckets];
        let shift = shift_for(buckets);
        for (j, &s) in held.iter().enumerate() {
            if let Some(&far) = held.get(j + 2 * AHEAD) {
                ids.prefetch(slot_of(far));
            }
            if let Some(&near) = held.get(j + AHEAD) {
                prefetch_index(&table, home(ids[slot_of(near)], shift));
            }
            place(&mut table, shift, s, ids);
        }
        table
    }

    /// Removes `id`, returning its slot. Uses backward-shift deletion in the new table so no
    /// tombstones accumulate; in a draining table the bucket is marked removed (it is gone
    /// once drained).
    pub(crate) fn remove(&mut self, id: u64, ids: &Blocked<u64>) -> Option<u32> {
        let Some(mut i) = self.find(id, ids) else {
            let old = self.old.as_mut()?;
            let at = old.find(id, ids)?;
            let slot = old.table[at] - 1;
            old.table[at] = REMOVED;
            self.len -= 1;
            return Some(slot);
        };
        let mask = self.mask();
        let slot = self.table[i] - 1;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let s = self.table[j];
            if s == EMPTY {
                break;
            }
            let k = home(ids[slot_of(s)], self.shift);
            // Move s back into the hole at i unless its home lies cyclically in (i, j].
            let stays = if i <= j {
                i < k && k <= j
            } else {
                i < k || k <= j
            };
            if !stays {
                self.table[i] = s;
                i = j;
            }
        }
        self.table[i] = EMPTY;
        self.len -= 1;
        Some(slot)
    }

    /// Ids held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether a grown table is still draining its predecessor.
    #[cfg(test)]
    fn draining(&self) -> bool {
        self.old.is_some()
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        (self.table.capacity() + self.old.as_ref().map_or(0, |o| o.table.capacity())) * 4
    }

    /// Writes the buckets as they are, so a load is a copy, not a rehash. While draining, a
    /// merged copy of both tables is written instead (the format holds one table).
    pub(crate) fn save<W: Write>(
        &self,
        w: &mut SnapshotWriter<W>,
        ids: &Blocked<u64>,
    ) -> Result<(), SnapshotError> {
        w.put_u64(self.len as u64)?;
        if self.old.is_some() {
            w.put_u32s(&self.rebuilt(self.table.len(), ids))
        } else {
            w.put_u32s(&self.table)
        }
    }

    /// Reads a map saved by [`IdMap::save`] over a store of `slots` slots. Checked: the load
    /// factor (so every probe sequence reaches an empty bucket and lookups end) and that every
    /// bucket names a slot of the store (so no lookup indexes past it). Not checked: that each
    /// id sits where its hash sends it, which would cost a random access per id (seconds at
    /// 100M) to guard against a file that passed its checksum.
    pub(crate) fn load<R: Read>(
        r: &mut SnapshotReader<R>,
        slots: usize,
    ) -> Result<Self, SnapshotError> {
        let corrupt = |m: String| SnapshotError::Corrupt(format!("id map: {m}"));
        let len = r.u64("id count")? as usize;
        let table = r.u32s("id buckets")?;
        let buckets = table.len();
        if !buckets.is_power_of_two() || buckets < 16 || len * 4 > buckets * 3 {
            return Err(corrupt(format!("{len} ids in {buckets} buckets")));
        }
        let mut filled = 0;
        for &b in &table {
            if b != EMPTY {
                if b == REMOVED || slot_of(b) >= slots {
                    return Err(corrupt(format!(
                        "a bucket names slot {}",
                        b.wrapping_sub(1)
                    )));
                }
                filled += 1;
            }
        }
        if filled != len {
            return Err(corrupt(format!("{filled} filled buckets, {len} ids")));
        }
        Ok(Self {
            len,
            shift: shift_for(buckets),
            table,
            old: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Inserts and removes ids through many growths, checking every id after each step
    /// against a `HashMap`, and that the map drains (so both tables are exercised).
    #[test]
    fn incremental_growth_keeps_every_id_findable() {
        let mut ids: Blocked<u64> = Blocked::new();
        let mut map = IdMap::new();
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut saw_draining = 0;
        let mut x = 99u64;
        for step in 0..60_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = x % 100_000;
            if step % 5 == 0 {
                assert_eq!(map.remove(id, &ids), model.remove(&id), "remove {id}");
            } else if let std::collections::hash_map::Entry::Vacant(v) = model.entry(id) {
                let slot = ids.len() as u32;
                ids.push(id);
                map.insert(id, slot, &ids);
                v.insert(slot);
            }
            if map.draining() {
                saw_draining += 1;
                if step % 97 == 0 {
                    for (&id, &slot) in &model {
                        assert_eq!(map.get(id, &ids), Some(slot), "id {id} at step {step}");
                    }
                    assert_eq!(map.get(u64::MAX, &ids), None);
                }
            }
            assert_eq!(map.len(), model.len());
        }
        assert!(saw_draining > 1000, "growth never drained incrementally");
        for (&id, &slot) in &model {
            assert_eq!(map.get(id, &ids), Some(slot));
        }
    }

    #[test]
    fn matches_hashmap_under_churn() {
        let mut ids: Blocked<u64> = Blocked::new();
        let mut map = IdMap::new();
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut x = 12345u64;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = x % 3000;
            if step % 3 == 0 {
                assert_eq!(map.remove(id, &ids), model.remove(&id));
            } else if let std::collections::hash_map::Entry::Vacant(v) = model.entry(id) {
                let slot = ids.len() as u32;
                ids.push(id);
                map.insert(id, slot, &ids);
                v.insert(slot);
            }
            assert_eq!(map.get(id, &ids), model.get(&id).copied());
        }
        for (&id, &slot) in &model {
            assert_eq!(map.get(id, &ids), Some(slot));
        }
    }
}
