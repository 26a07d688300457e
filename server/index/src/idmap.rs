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
//! room for millions of ids (once per large batch, under the caller's lock)
//! costs no fill. Slots stay below `u32::MAX - 1` (the store refuses more).
//!
//! [`Store`]: crate::store::Store

use crate::snapshot::{SnapshotError, SnapshotReader, SnapshotWriter};
use prefetch_index::prefetch_index;
use std::io::{Read, Write};

const EMPTY: u32 = 0;

/// The slot a non-empty bucket holds.
#[inline]
fn slot_of(bucket: u32) -> usize {
    (bucket - 1) as usize
}

/// Linear-probing table of slots keyed by `ids[slot]`.
#[derive(Debug)]
pub(crate) struct IdMap {
    table: Vec<u32>,
    len: usize,
    shift: u32,
}

#[inline]
fn mix(id: u64) -> u64 {
    // Fibonacci hashing plus a fold so sequential ids spread well.
    let h = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

impl IdMap {
    /// An empty map.
    pub(crate) fn new() -> Self {
        Self::with_capacity(0)
    }

    /// A map that holds `n` ids without growing.
    pub(crate) fn with_capacity(n: usize) -> Self {
        let buckets = (n * 4 / 3 + 1).next_power_of_two().max(16);
        Self {
            table: vec![EMPTY; buckets],
            len: 0,
            shift: 64 - buckets.trailing_zeros(),
        }
    }

    #[inline]
    fn home(&self, id: u64) -> usize {
        (mix(id).wrapping_mul(0x2545_F491_4F6C_DD1D) >> self.shift) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        self.table.len() - 1
    }

    /// Slot stored for `id`.
    pub(crate) fn get(&self, id: u64, ids: &[u64]) -> Option<u32> {
        let mut i = self.home(id);
        loop {
            let s = self.table[i];
            if s == EMPTY {
                return None;
            }
            if ids[slot_of(s)] == id {
                return Some(s - 1);
            }
            i = (i + 1) & self.mask();
        }
    }

    /// Records `slot` for `id`; the caller has checked `id` is absent and
    /// has already written `ids[slot] = id`.
    pub(crate) fn insert(&mut self, id: u64, slot: u32, ids: &[u64]) {
        if (self.len + 1) * 4 > self.table.len() * 3 {
            self.grow(ids);
        }
        let mut i = self.home(id);
        while self.table[i] != EMPTY {
            i = (i + 1) & self.mask();
        }
        self.table[i] = slot + 1;
        self.len += 1;
    }

    /// Makes room for `extra` more ids without further growth.
    pub(crate) fn reserve(&mut self, extra: usize, ids: &[u64]) {
        let want = ((self.len + extra) * 4 / 3 + 1).next_power_of_two();
        if want > self.table.len() {
            self.rehash(want, ids);
        }
    }

    fn grow(&mut self, ids: &[u64]) {
        self.rehash(self.table.len() * 2, ids);
    }

    /// Rebuilds the table with `buckets` buckets.
    ///
    /// Each entry costs two random accesses (its id, then its new bucket), and a rehash runs
    /// under the index's write lock. The loop runs as a short pipeline — the id of the entry
    /// `2 * AHEAD` ahead and the new bucket of the entry `AHEAD` ahead are prefetched — so the
    /// cache misses of different entries overlap: growing a 12.6M-id map took 210 ms instead
    /// of 275 ms, of which ~50 ms was filling the new table, which is now zeroed memory (see
    /// the module documentation).
    fn rehash(&mut self, buckets: usize, ids: &[u64]) {
        const AHEAD: usize = 16;
        let old: Vec<u32> = std::mem::take(&mut self.table)
            .into_iter()
            .filter(|&s| s != EMPTY)
            .collect();
        self.table = vec![EMPTY; buckets];
        self.shift = 64 - buckets.trailing_zeros();
        for (j, &s) in old.iter().enumerate() {
            if let Some(&far) = old.get(j + 2 * AHEAD) {
                prefetch_index(ids, slot_of(far));
            }
            if let Some(&near) = old.get(j + AHEAD) {
                prefetch_index(&self.table, self.home(ids[slot_of(near)]));
            }
            let mut i = self.home(ids[slot_of(s)]);
            while self.table[i] != EMPTY {
                i = (i + 1) & self.mask();
            }
            self.table[i] = s;
        }
    }

    /// Removes `id`, returning its slot. Uses backward-shift deletion so no
    /// tombstones accumulate in the table.
    pub(crate) fn remove(&mut self, id: u64, ids: &[u64]) -> Option<u32> {
        let mask = self.mask();
        let mut i = self.home(id);
        let slot = loop {
            let s = self.table[i];
            if s == EMPTY {
                return None;
            }
            if ids[slot_of(s)] == id {
                break s - 1;
            }
            i = (i + 1) & mask;
        };
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let s = self.table[j];
            if s == EMPTY {
                break;
            }
            let k = self.home(ids[slot_of(s)]);
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

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.table.capacity() * 4
    }

    /// Writes the buckets as they are: a load is then a copy, not a rehash.
    pub(crate) fn save<W: Write>(&self, w: &mut SnapshotWriter<W>) -> Result<(), SnapshotError> {
        w.put_u64(self.len as u64)?;
        w.put_u32s(&self.table)
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
                if slot_of(b) >= slots {
                    return Err(corrupt(format!("a bucket names slot {}", slot_of(b))));
                }
                filled += 1;
            }
        }
        if filled != len {
            return Err(corrupt(format!("{filled} filled buckets, {len} ids")));
        }
        Ok(Self {
            len,
            shift: 64 - buckets.trailing_zeros(),
            table,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn matches_hashmap_under_churn() {
        let mut ids: Vec<u64> = Vec::new();
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
