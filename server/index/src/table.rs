//! One substring table of a segment: a flat bucket directory (CSR layout)
//! over the high bits of one substring, and 4-byte entries packing the
//! segment-relative slot with the substring's low bits.
//!
//! Flat sorted arrays instead of hash maps: a probe is one offset read and a
//! sequential scan of a short run, no hashing and no pointer chasing, and the
//! table costs 4 bytes a hash plus the directory.

use crate::bits::{extract, Words};
use crate::plan::TableSpec;

/// Bits of an entry that hold the substring's low bits.
const LOW_BITS: u32 = 8;
/// Largest segment a table can address (24-bit relative slots).
pub(crate) const MAX_SEGMENT: usize = 1 << (32 - LOW_BITS);

/// Substring table over a contiguous run of slots.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) spec: TableSpec,
    /// `offsets[b]..offsets[b + 1]` are the entries of bucket `b`.
    offsets: Vec<u32>,
    /// `relative_slot << 8 | low_bits`, grouped by bucket.
    entries: Vec<u32>,
}

impl Table {
    /// Builds the table over `hashes` (slot `i` of the segment is `hashes[i]`)
    /// with a two-pass counting sort.
    pub(crate) fn build<H: Words>(spec: TableSpec, hashes: &[H]) -> Self {
        debug_assert!(hashes.len() <= MAX_SEGMENT);
        let low = spec.low_bits();
        let buckets = 1usize << spec.dir_bits;
        let keys: Vec<u32> = hashes
            .iter()
            .map(|h| extract(h.words(), spec.start, spec.width))
            .collect();
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
        for (rel, &k) in keys.iter().enumerate() {
            let b = (k >> low) as usize;
            entries[fill[b] as usize] = (rel as u32) << LOW_BITS | (k & low_mask);
            fill[b] += 1;
        }
        Self {
            spec,
            offsets,
            entries,
        }
    }

    /// Pushes the relative slot of every entry whose substring is within
    /// `threshold` bits of the query's substring.
    pub(crate) fn probe(&self, query: &[u64], threshold: u32, out: &mut Vec<u32>) {
        let spec = self.spec;
        let low = spec.low_bits();
        let key = extract(query, spec.start, spec.width);
        let q_hi = key >> low;
        let q_lo = key & ((1u32 << low) - 1);
        let k = spec.dir_bits;
        for w in 0..=threshold.min(k) {
            let rest = threshold - w;
            let check_low = rest < low;
            for_each_mask(k, w, |mask| {
                let b = (q_hi ^ mask) as usize;
                let run = &self.entries[self.offsets[b] as usize..self.offsets[b + 1] as usize];
                if check_low {
                    for &e in run {
                        if ((e ^ q_lo) & 0xFF).count_ones() <= rest {
                            out.push(e >> LOW_BITS);
                        }
                    }
                } else {
                    out.extend(run.iter().map(|&e| e >> LOW_BITS));
                }
            });
        }
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
