//! The catalog's entry map (every active entry's type, quality and listing, by id), split into
//! [`SHARDS`] hash maps so that no single insert ever rehashes all of it.
//!
//! A hash map doubles when full and moves every entry while it does. The catalog grows its
//! maps under the write lock every Match query waits behind, so one map of 100M entries
//! (~2 GiB) would stall matching for seconds on the insert that crosses its load limit. Each
//! shard holds 1/256 of the ids (by a multiplicative hash of the id, independent of the shards'
//! own seeded hasher), so a growth moves at most 1/256 of the entries (~400k at 100M, a few
//! milliseconds), and the shards' growths are spread over the inserts around each doubling
//! instead of happening in one.

use super::EntryInfo;
use std::collections::HashMap;

/// Number of shards; a power of two.
const SHARDS: usize = 256;

type Shard = HashMap<u64, EntryInfo, foldhash::fast::RandomState>;

/// Active entries by id.
#[derive(Debug)]
pub(super) struct Entries {
    shards: Box<[Shard]>,
    len: usize,
}

impl Default for Entries {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

/// The shard of `id`: the top bits of a Fibonacci hash, so consecutive log indexes (the
/// usual ids) spread evenly.
#[inline]
fn shard_of(id: u64) -> usize {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARDS.trailing_zeros())) as usize
}

impl Entries {
    /// A map sized for `n` entries (spread evenly, with a little headroom per shard).
    pub(super) fn with_capacity(n: usize) -> Self {
        let per_shard = if n == 0 {
            0
        } else {
            n / SHARDS + n / SHARDS / 16 + 16
        };
        Self {
            shards: (0..SHARDS)
                .map(|_| Shard::with_capacity_and_hasher(per_shard, Default::default()))
                .collect(),
            len: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn get(&self, id: &u64) -> Option<&EntryInfo> {
        self.shards[shard_of(*id)].get(id)
    }

    pub(super) fn contains_key(&self, id: &u64) -> bool {
        self.shards[shard_of(*id)].contains_key(id)
    }

    /// Inserts or replaces; returns the entry it replaced.
    pub(super) fn insert(&mut self, id: u64, info: EntryInfo) -> Option<EntryInfo> {
        let old = self.shards[shard_of(id)].insert(id, info);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub(super) fn remove(&mut self, id: &u64) -> Option<EntryInfo> {
        let old = self.shards[shard_of(*id)].remove(id);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Every entry, shard by shard.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&u64, &EntryInfo)> {
        self.shards.iter().flat_map(|s| s.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redline_proto::signal::SignalType;

    fn info(listing: u32) -> EntryInfo {
        EntryInfo {
            signal_type: SignalType::Pdq,
            quality: 90,
            listing,
        }
    }

    #[test]
    fn behaves_as_one_map_and_spreads_consecutive_ids() {
        let mut e = Entries::default();
        let mut model = HashMap::new();
        for id in 0..50_000u64 {
            let key = (3u64 << 40) | id;
            assert_eq!(
                e.insert(key, info(id as u32)).is_some(),
                model.insert(key, id).is_some()
            );
            if id % 3 == 0 {
                assert_eq!(
                    e.remove(&(key - 1)).is_some(),
                    model.remove(&(key - 1)).is_some()
                );
            }
        }
        assert_eq!(e.len(), model.len());
        assert_eq!(e.iter().count(), model.len());
        for (k, v) in &model {
            assert_eq!(e.get(k).map(|i| i.listing), Some(*v as u32));
            assert!(e.contains_key(k));
        }
        // Even spread: no shard holds more than twice its share.
        let share = model.len() / SHARDS;
        assert!(
            e.shards.iter().all(|s| s.len() < 2 * share),
            "uneven shards"
        );
    }
}
