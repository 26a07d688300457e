//! An append-only array kept in fixed-size blocks, so that growing it never copies what it
//! holds.
//!
//! The store's arrays grow under the caller's write lock (every Match query waits behind it).
//! A `Vec` doubles: at 100M PDQ hashes the first insert after a load copied 3.2 GB of hashes
//! and 0.8 GB of ids and held the lock for 17 s, and the doubled capacity kept up to 4 GB of
//! slack for as long as the index lived. Here a full block is never moved: growth allocates
//! one more block of [`BLOCK`] elements (2 MiB of PDQ hashes; pages the allocator hands out
//! untouched), and the only copies are the first block's own doublings while the whole array
//! is smaller than one block. Reading element `i` costs one more load (the block's address,
//! from a table of 12 KiB at 100M elements, which stays cached).
//!
//! Written here rather than taken from a crate: the index needs exactly this (typed `Copy`
//! elements, contiguous runs inside a block for scans and prefetches, exact-size iteration over
//! a range for table builds) and no more.

use std::ops::{Index, IndexMut};

/// log2 of the elements per block.
const BLOCK_BITS: u32 = 16;
/// Elements per block.
pub(crate) const BLOCK: usize = 1 << BLOCK_BITS;
const MASK: usize = BLOCK - 1;

/// Blocks of `T`; every block but the last holds exactly [`BLOCK`] elements.
#[derive(Debug, Clone)]
pub(crate) struct Blocked<T> {
    blocks: Vec<Vec<T>>,
    len: usize,
}

impl<T: Copy> Default for Blocked<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy> Blocked<T> {
    /// An empty array (no allocation).
    pub(crate) fn new() -> Self {
        Self {
            blocks: Vec::new(),
            len: 0,
        }
    }

    /// Number of elements.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `value`.
    #[inline]
    pub(crate) fn push(&mut self, value: T) {
        if self.len & MASK == 0 && self.len / BLOCK == self.blocks.len() {
            // A new block: the first one starts small (an index of a few hashes stays small),
            // later ones get their whole size at once so they are never moved.
            let cap = if self.blocks.is_empty() { 0 } else { BLOCK };
            self.blocks.push(Vec::with_capacity(cap));
        }
        let last = self.blocks.last_mut().expect("a block to push into");
        last.push(value);
        self.len += 1;
    }

    /// Makes room for `extra` more elements. Only the first block is ever moved (while the
    /// array fits in it), so this sizes it exactly when the whole array will fit, and otherwise
    /// only reserves the table of blocks: later blocks are allocated whole as they are reached.
    pub(crate) fn reserve(&mut self, extra: usize) {
        let want = self.len.saturating_add(extra);
        if want <= BLOCK {
            if self.blocks.is_empty() {
                self.blocks.push(Vec::with_capacity(want));
            } else if self.blocks.len() == 1 {
                let first = &mut self.blocks[0];
                first.reserve_exact(want - first.len());
            }
        } else {
            if let Some(first) = self.blocks.first_mut().filter(|_| self.len < BLOCK) {
                // The first block is about to fill: give it its full size now, once.
                first.reserve_exact(BLOCK - first.len());
            }
            self.blocks
                .reserve(want.div_ceil(BLOCK).saturating_sub(self.blocks.len()));
        }
    }

    /// The elements of `start..end` as runs of contiguous slices, in order.
    pub(crate) fn slices(&self, start: usize, end: usize) -> impl Iterator<Item = &[T]> + '_ {
        debug_assert!(start <= end && end <= self.len);
        let first = start >> BLOCK_BITS;
        let last = if end == start {
            first
        } else {
            (end - 1) >> BLOCK_BITS
        };
        (first..=last).filter_map(move |b| {
            let lo = if b == first { start & MASK } else { 0 };
            let hi = if end == start {
                0
            } else if b == last {
                ((end - 1) & MASK) + 1
            } else {
                BLOCK
            };
            (hi > lo).then(|| &self.blocks[b][lo..hi])
        })
    }

    /// The elements of `start..end`, by reference, in order, with an exact length.
    pub(crate) fn range(&self, start: usize, end: usize) -> Range<'_, T> {
        Range {
            array: self,
            at: start,
            end,
            cur: [].iter(),
        }
    }

    /// Elements `start..end`, copied into one `Vec`.
    pub(crate) fn to_vec(&self, start: usize, end: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(end - start);
        for s in self.slices(start, end) {
            out.extend_from_slice(s);
        }
        out
    }

    /// Asks the CPU to start loading element `i` (no effect if out of range).
    #[inline]
    pub(crate) fn prefetch(&self, i: usize) {
        if let Some(block) = self.blocks.get(i >> BLOCK_BITS) {
            prefetch_index::prefetch_index(block, i & MASK);
        }
    }

    /// Frees the last block's unused capacity (after a bulk load or a compaction).
    pub(crate) fn shrink_to_fit(&mut self) {
        if let Some(last) = self.blocks.last_mut() {
            last.shrink_to_fit();
        }
        self.blocks.shrink_to_fit();
    }

    /// Heap bytes held, counting capacity (what the allocator really gave us).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| b.capacity() * std::mem::size_of::<T>())
            .sum::<usize>()
            + self.blocks.capacity() * std::mem::size_of::<Vec<T>>()
    }
}

impl<T: Copy> FromIterator<T> for Blocked<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut out = Self::new();
        out.reserve(iter.size_hint().0);
        for v in iter {
            out.push(v);
        }
        out
    }
}

impl<T: Copy> Extend<T> for Blocked<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for v in iter {
            self.push(v);
        }
    }
}

impl<T> Index<usize> for Blocked<T> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        assert!(i < self.len, "index {i} past {} elements", self.len);
        &self.blocks[i >> BLOCK_BITS][i & MASK]
    }
}

impl<T> IndexMut<usize> for Blocked<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        assert!(i < self.len, "index {i} past {} elements", self.len);
        &mut self.blocks[i >> BLOCK_BITS][i & MASK]
    }
}

/// Iterator over a range of a [`Blocked`] array (see [`Blocked::range`]).
#[derive(Debug, Clone)]
pub(crate) struct Range<'a, T> {
    array: &'a Blocked<T>,
    /// First element not yet handed to `cur`.
    at: usize,
    end: usize,
    cur: std::slice::Iter<'a, T>,
}

impl<'a, T> Iterator for Range<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        if let Some(v) = self.cur.next() {
            return Some(v);
        }
        if self.at >= self.end {
            return None;
        }
        let block = &self.array.blocks[self.at >> BLOCK_BITS];
        let lo = self.at & MASK;
        let hi = (lo + (self.end - self.at)).min(block.len());
        self.at += hi - lo;
        self.cur = block[lo..hi].iter();
        self.cur.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.cur.len() + (self.end - self.at);
        (n, Some(n))
    }
}

impl<T> ExactSizeIterator for Range<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_index_and_ranges_agree_with_a_vec_across_block_edges() {
        let n = 3 * BLOCK + 17;
        let mut b = Blocked::new();
        let mut v = Vec::new();
        for i in 0..n as u64 {
            b.push(i * 3);
            v.push(i * 3);
        }
        assert_eq!(b.len(), n);
        for i in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK, n - 1] {
            assert_eq!(b[i], v[i]);
        }
        for (s, e) in [
            (0, 0),
            (0, n),
            (5, BLOCK),
            (BLOCK - 1, BLOCK + 1),
            (BLOCK, 2 * BLOCK),
            (17, 3 * BLOCK + 3),
            (n - 1, n),
            (2 * BLOCK, 2 * BLOCK),
        ] {
            let r: Vec<u64> = b.range(s, e).copied().collect();
            assert_eq!(r, v[s..e], "range {s}..{e}");
            assert_eq!(b.range(s, e).len(), e - s);
            assert_eq!(b.to_vec(s, e), v[s..e]);
            let flat: Vec<u64> = b.slices(s, e).flatten().copied().collect();
            assert_eq!(flat, v[s..e]);
        }
        b[BLOCK + 2] = 7;
        assert_eq!(b[BLOCK + 2], 7);
    }

    #[test]
    fn full_blocks_never_move_when_the_array_grows() {
        let mut b = Blocked::new();
        for i in 0..BLOCK as u32 + 1 {
            b.push(i);
        }
        let first = &b[0] as *const u32 as usize;
        let second = &b[BLOCK] as *const u32 as usize;
        for i in 0..4 * BLOCK as u32 {
            b.push(i);
        }
        assert_eq!(&b[0] as *const u32 as usize, first);
        assert_eq!(&b[BLOCK] as *const u32 as usize, second);
    }

    #[test]
    fn a_small_array_stays_small_and_reserve_sizes_it_exactly() {
        let mut b: Blocked<[u64; 4]> = Blocked::new();
        b.reserve(10);
        for _ in 0..10 {
            b.push([0; 4]);
        }
        assert!(b.heap_bytes() < 1024, "{} bytes", b.heap_bytes());
        b.reserve(2 * BLOCK);
        let before = b.heap_bytes();
        for _ in 0..2 * BLOCK {
            b.push([1; 4]);
        }
        // The first block was given its full size once; later blocks come whole.
        assert!(b.heap_bytes() <= before + 2 * BLOCK * 32 + 64);
    }
}
