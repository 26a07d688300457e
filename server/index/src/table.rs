//! One substring table of a segment: a flat bucket directory (CSR layout)
//! over the high bits of one substring, and 4-byte entries packing the
//! segment-relative slot with the substring's low bits and the partner
//! filter bits (see `plan`).
//!
//! Flat sorted arrays instead of hash maps: a probe is one offset read and a
//! sequential scan of a short run, no hashing and no pointer chasing, and the
//! table costs 4 bytes a hash plus the directory.

use crate::bits::{extract, Words};
use crate::plan::TableSpec;

/// Largest segment a table can address (24-bit relative slots, leaving
/// `plan::MIN_SPARE_BITS` for low and filter bits).
pub(crate) const MAX_SEGMENT: usize = 1 << (32 - crate::plan::MIN_SPARE_BITS);

/// Substring table over a contiguous run of slots.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) spec: TableSpec,
    /// `offsets[b]..offsets[b + 1]` are the entries of bucket `b`.
    offsets: Vec<u32>,
    /// `relative_slot << spare_bits | filter_bits << low_bits | low_bits`,
    /// grouped by bucket.
    entries: Vec<u32>,
}

impl Table {
    /// Builds the table over `hashes` (slot `i` of the segment is `hashes[i]`)
    /// with a two-pass counting sort.
    pub(crate) fn build<H: Words>(spec: TableSpec, hashes: &[H]) -> Self {
        debug_assert!(hashes.len() <= MAX_SEGMENT);
        debug_assert!(spec.spare_bits >= crate::plan::entry_spare_bits(hashes.len()));
        let spare = spec.spare_bits;
        let low = spec.low_bits();
        let buckets = 1usize << spec.dir_bits;
        let keys: Vec<u32> = hashes
            .iter()
            .map(|h| extract(h.words(), spec.start, spec.width))
            .collect();
        let filter = |h: &H| {
            if spec.filter_bits == 0 {
                0
            } else {
                extract(h.words(), spec.filter_start, spec.filter_bits)
            }
        };
        let mut offsets = vec![0u32; buckets + 1];
        for &k in &keys {
            offsets[(k >> low) as usize + 1] += 1;
        }
        for b in 0..buckets {
            offsets[b + 1] += offsets[b];
        }
        let mut fill = offsets.clone();
        let mut entries = vec![0u32; hashes.len()];
        let low_mask = (1u32 << low) - 1;
        for (rel, (&k, h)) in keys.iter().zip(hashes).enumerate() {
            let b = (k >> low) as usize;
            entries[fill[b] as usize] = (rel as u32) << spare | filter(h) << low | (k & low_mask);
            fill[b] += 1;
        }
        Self {
            spec,
            offsets,
            entries,
        }
    }

    /// The query's directory key and its packed low + filter bits, to
    /// compare with the low byte of entries.
    #[inline]
    pub(crate) fn query_key(&self, query: &[u64]) -> (u32, u32) {
        let spec = self.spec;
        let key = extract(query, spec.start, spec.width);
        let low = spec.low_bits();
        let filter = if spec.filter_bits == 0 {
            0
        } else {
            extract(query, spec.filter_start, spec.filter_bits)
        };
        (key >> low, filter << low | (key & ((1u32 << low) - 1)))
    }

    /// Calls `f(bucket, rest)` for every directory bucket within `threshold`
    /// bits of `q_hi`, where `rest` is how many low bits may still differ.
    #[inline]
    pub(crate) fn for_each_bucket(&self, q_hi: u32, threshold: u32, mut f: impl FnMut(u32, u32)) {
        let k = self.spec.dir_bits;
        for w in 0..=threshold.min(k) {
            for_each_mask(k, w, |mask| f(q_hi ^ mask, threshold - w));
        }
    }

    /// Entry range of a bucket.
    #[inline]
    pub(crate) fn run(&self, bucket: u32) -> (u32, u32) {
        let b = bucket as usize;
        (self.offsets[b], self.offsets[b + 1])
    }

    /// Pushes `relative_slot << 8 | tag` for every entry of `run` whose low
    /// bits differ from the query's in at most `rest` bits and whose low plus
    /// partner bits differ in at most `budget` bits.
    #[inline]
    pub(crate) fn scan_run(
        &self,
        run: (u32, u32),
        q_packed: u32,
        rest: u32,
        budget: u32,
        tag: u32,
        out: &mut Vec<u32>,
    ) {
        let entries = &self.entries[run.0 as usize..run.1 as usize];
        let low = self.spec.low_bits();
        let spare = self.spec.spare_bits;
        if rest >= low && budget >= low + self.spec.filter_bits {
            out.extend(entries.iter().map(|&e| (e >> spare) << 8 | tag));
        } else {
            let low_mask = (1u32 << low) - 1;
            let spare_mask = (1u32 << spare) - 1;
            for &e in entries {
                let x = (e ^ q_packed) & spare_mask;
                let low_d = (x & low_mask).count_ones();
                if low_d <= rest && x.count_ones() <= budget {
                    out.push((e >> spare) << 8 | tag);
                }
            }
        }
    }

    /// Directory, for prefetching.
    pub(crate) fn offsets(&self) -> &[u32] {
        &self.offsets
    }

    /// Entries, for prefetching.
    pub(crate) fn entries(&self) -> &[u32] {
        &self.entries
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        (self.offsets.capacity() + self.entries.capacity()) * 4
    }
}

/// Calls `f` with every `bits`-bit mask of popcount `weight` (Gosper's hack).
#[inline]
fn for_each_mask(bits: u32, weight: u32, mut f: impl FnMut(u32)) {
    if weight == 0 {
        f(0);
        return;
    }
    let limit = 1u64 << bits;
    let mut c: u64 = (1u64 << weight) - 1;
    while c < limit {
        f(c as u32);
        let u = c & c.wrapping_neg();
        let v = c + u;
        c = v + (((v ^ c) / u) >> 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_enumerate_combinations() {
        let mut seen = Vec::new();
        for_each_mask(5, 2, |m| seen.push(m));
        assert_eq!(seen.len(), 10);
        assert!(seen.iter().all(|m| m.count_ones() == 2 && *m < 32));
        let mut all = 0;
        for w in 0..=16 {
            for_each_mask(16, w, |_| all += 1);
        }
        assert_eq!(all, 1 << 16);
    }
}
