//! One substring table of a segment: a flat bucket directory (CSR layout)
//! over the high bits of one substring, and 4- or 5-byte entries packing the
//! segment-relative slot with the substring's low bits and the partner
//! filter bits (see `plan::entry_layout`).
//!
//! Flat sorted arrays instead of hash maps: a probe is one offset read and a
//! sequential scan of a short run, no hashing and no pointer chasing, and the
//! table costs 4 (or 5) bytes a hash plus the directory. Entries are packed
//! bytes rather than `u32`/`u64` so that the 5-byte size costs no padding.

use crate::bits::{extract, Words};
use crate::plan::TableSpec;
use crate::snapshot::{SnapshotError, SnapshotReader, SnapshotWriter};
use prefetch_index::prefetch_index;
use std::io::{Read, Write};

/// Largest segment a table can address: a search packs a candidate as
/// `relative_slot << 8 | plan position` in a `u32`.
pub(crate) const MAX_SEGMENT: usize = 1 << 24;
/// Bytes per cache line.
const CACHE_LINE: usize = 64;

/// Substring table over a contiguous run of slots.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) spec: TableSpec,
    /// `offsets[b]..offsets[b + 1]` are the entries of bucket `b`.
    offsets: Vec<u32>,
    /// `relative_slot << spare_bits | filter_bits << low_bits | low_bits`,
    /// `spec.entry_bytes` little-endian bytes each, grouped by bucket.
    entries: Vec<u8>,
}

/// The largest `BYTES`-byte little-endian entry of `entries`: its slot bits bound every
/// entry's (a fixed-size fold the compiler vectorises; the check runs over every table entry
/// of a loaded snapshot).
fn largest_entry<const BYTES: usize>(entries: &[u8]) -> u64 {
    entries
        .chunks_exact(BYTES)
        .map(|e| {
            let mut b = [0u8; 8];
            b[..BYTES].copy_from_slice(e);
            u64::from_le_bytes(b)
        })
        .fold(0, u64::max)
}

impl Table {
    /// Writes the entries and directory (the spec is written by the segment).
    pub(crate) fn save<W: Write>(&self, w: &mut SnapshotWriter<W>) -> Result<(), SnapshotError> {
        w.put_u32s(&self.offsets)?;
        w.put_bytes(&self.entries)
    }

    /// Reads a table of a `len`-slot segment saved by [`Table::save`] under `spec` (already
    /// checked to be the spec a build would choose), checking the directory and that every
    /// entry names a slot of the segment: a search trusts both without bounds checks of its
    /// own beyond the slice's.
    pub(crate) fn load<R: Read>(
        spec: TableSpec,
        len: usize,
        r: &mut SnapshotReader<R>,
    ) -> Result<Self, SnapshotError> {
        let corrupt = |m: String| SnapshotError::Corrupt(format!("table: {m}"));
        let offsets = r.u32s("table directory")?;
        let buckets = 1usize << spec.dir_bits;
        if offsets.len() != buckets + 1 {
            return Err(corrupt(format!(
                "{} directory entries for {buckets} buckets",
                offsets.len()
            )));
        }
        if offsets[0] != 0
            || offsets[buckets] as usize != len
            || offsets.windows(2).any(|w| w[0] > w[1])
        {
            return Err(corrupt("directory is not a partition of the slots".into()));
        }
        let stride = spec.entry_bytes as usize;
        let entries = r.bytes(len * stride, "table entries")?;
        if entries.len() != len * stride {
            return Err(corrupt(format!(
                "{} entry bytes for {len} slots of {stride} bytes",
                entries.len()
            )));
        }
        let largest = if stride == 4 {
            largest_entry::<4>(&entries)
        } else {
            largest_entry::<5>(&entries)
        };
        if (largest >> spec.spare_bits) as usize >= len {
            return Err(corrupt(format!("an entry names a slot past {len}")));
        }
        Ok(Self {
            spec,
            offsets,
            entries,
        })
    }

    /// Builds the table over `runs`, the segment's hashes as contiguous slices in slot order
    /// (slot `i` of the segment is the `i`-th hash of their concatenation), with a two-pass
    /// counting sort. Slices rather than one iterator: the store keeps hashes in blocks, and
    /// the loops below over a block-crossing iterator took twice as long.
    pub(crate) fn build<H: Words>(spec: TableSpec, runs: &[&[H]]) -> Self {
        let n: usize = runs.iter().map(|r| r.len()).sum();
        debug_assert!(n <= MAX_SEGMENT);
        debug_assert!((spec.entry_bytes, spec.spare_bits) == crate::plan::entry_layout(n));
        let (spare, stride) = (spec.spare_bits, spec.entry_bytes as usize);
        let low = spec.low_bits();
        let buckets = 1usize << spec.dir_bits;
        let mut keys: Vec<u32> = Vec::with_capacity(n);
        for run in runs {
            keys.extend(
                run.iter()
                    .map(|h| extract(h.words(), spec.start, spec.width)),
            );
        }
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
        let mut entries = vec![0u8; n * stride];
        let low_mask = (1u32 << low) - 1;
        let mut rel = 0usize;
        for run in runs {
            for (&k, h) in keys[rel..rel + run.len()].iter().zip(run.iter()) {
                let b = (k >> low) as usize;
                let entry = (rel as u64) << spare | u64::from(filter(h) << low | (k & low_mask));
                let at = fill[b] as usize * stride;
                entries[at..at + stride].copy_from_slice(&entry.to_le_bytes()[..stride]);
                fill[b] += 1;
                rel += 1;
            }
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
        // The entry size as a constant, so each entry is one fixed-size load.
        if self.spec.entry_bytes == 4 {
            self.scan::<4>(run, q_packed, rest, budget, tag, out);
        } else {
            self.scan::<5>(run, q_packed, rest, budget, tag, out);
        }
    }

    #[inline(always)]
    fn scan<const BYTES: usize>(
        &self,
        run: (u32, u32),
        q_packed: u32,
        rest: u32,
        budget: u32,
        tag: u32,
        out: &mut Vec<u32>,
    ) {
        let entries = self.entries[run.0 as usize * BYTES..run.1 as usize * BYTES]
            .chunks_exact(BYTES)
            .map(|c| {
                let mut word = [0u8; 8];
                word[..BYTES].copy_from_slice(c);
                u64::from_le_bytes(word)
            });
        let low = self.spec.low_bits();
        let spare = self.spec.spare_bits;
        let candidate = |e: u64| ((e >> spare) as u32) << 8 | tag;
        if rest >= low && budget >= low + self.spec.filter_bits {
            out.extend(entries.map(candidate));
        } else {
            let low_mask = (1u32 << low) - 1;
            let spare_mask = (1u32 << spare) - 1;
            for e in entries {
                let x = (e as u32 ^ q_packed) & spare_mask;
                let low_d = (x & low_mask).count_ones();
                if low_d <= rest && x.count_ones() <= budget {
                    out.push(candidate(e));
                }
            }
        }
    }

    /// Asks the CPU to fetch every cache line of `run`'s entries: at ~15
    /// entries a run usually spans two lines, and on clustered data many more.
    #[inline]
    pub(crate) fn prefetch_run(&self, run: (u32, u32)) {
        let stride = self.spec.entry_bytes as usize;
        let (mut at, end) = (run.0 as usize * stride, run.1 as usize * stride);
        while at < end {
            prefetch_index(&self.entries, at);
            // First byte of the next cache line.
            at += CACHE_LINE - (self.entries.as_ptr() as usize + at) % CACHE_LINE;
        }
    }

    /// Directory, for prefetching.
    pub(crate) fn offsets(&self) -> &[u32] {
        &self.offsets
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.offsets.capacity() * 4 + self.entries.capacity()
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
