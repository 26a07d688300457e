//! Bit-level building blocks: fixed-size word blocks that hold one hash,
//! Hamming distance over them, and extraction of the substrings that the
//! multi-index tables are keyed on.
//!
//! Hashes are stored as little-endian `u64` words padded with zero bits to a
//! power-of-two word count. Padding is zero in every stored hash and every
//! query, so it never adds to a distance. Each block type is aligned to its
//! size (up to a cache line) so verifying one candidate touches exactly one
//! cache line for 256-bit PDQ hashes.

use crate::IndexError;

/// A fixed-size, aligned block of 64-bit words holding one hash.
///
/// Monomorphising the index over the block type lets the compiler fully
/// unroll the distance loop (four `popcnt` for PDQ).
pub(crate) trait Words: Copy + Send + Sync + std::fmt::Debug + 'static {
    /// Number of `u64` words in the block.
    const WORDS: usize;
    /// An all-zero block.
    fn zero() -> Self;
    /// The words, least significant bit of the hash first.
    fn words(&self) -> &[u64];
    /// Mutable words, for filling a block from bytes.
    fn words_mut(&mut self) -> &mut [u64];
    /// Hamming distance to another block.
    fn distance(&self, other: &Self) -> u32;
    /// Bitwise XOR, used to read per-substring distances of a match.
    fn xor(&self, other: &Self) -> Self;
}

macro_rules! words_block {
    ($name:ident, $n:literal, $align:literal) => {
        /// One hash stored in
        #[doc = stringify!($n)]
        /// words.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(C, align($align))]
        pub(crate) struct $name(pub(crate) [u64; $n]);

        impl Words for $name {
            const WORDS: usize = $n;
            #[inline]
            fn zero() -> Self {
                Self([0; $n])
            }
            #[inline]
            fn words(&self) -> &[u64] {
                &self.0
            }
            #[inline]
            fn words_mut(&mut self) -> &mut [u64] {
                &mut self.0
            }
            #[inline(always)]
            fn distance(&self, other: &Self) -> u32 {
                let mut d = 0;
                for i in 0..$n {
                    d += (self.0[i] ^ other.0[i]).count_ones();
                }
                d
            }
            #[inline]
            fn xor(&self, other: &Self) -> Self {
                let mut out = [0; $n];
                for (i, o) in out.iter_mut().enumerate() {
                    *o = self.0[i] ^ other.0[i];
                }
                Self(out)
            }
        }
    };
}

words_block!(W1, 1, 8);
words_block!(W2, 2, 16);
words_block!(W4, 4, 32);
words_block!(W8, 8, 64);
words_block!(W16, 16, 64);
words_block!(W32, 32, 64);

/// Packs hash bytes into a block (little-endian words, zero padding).
#[inline]
pub(crate) fn to_block<H: Words>(bytes: &[u8]) -> H {
    let mut block = H::zero();
    for (word, chunk) in block.words_mut().iter_mut().zip(bytes.chunks(8)) {
        let mut buf = [0u8; 8];
        buf[..chunk.len()].copy_from_slice(chunk);
        *word = u64::from_le_bytes(buf);
    }
    block
}

/// Unpacks a block back into `len` hash bytes.
pub(crate) fn from_block<H: Words>(block: &H, len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = block.words().iter().flat_map(|w| w.to_le_bytes()).collect();
    out.truncate(len);
    out
}

/// Reads `width` (1..=32) bits starting at bit `start` as an integer.
#[inline(always)]
pub(crate) fn extract(words: &[u64], start: u32, width: u32) -> u32 {
    let w = (start / 64) as usize;
    let off = start % 64;
    let mut v = words[w] >> off;
    if off + width > 64 {
        v |= words[w + 1] << (64 - off);
    }
    (v & ((1u64 << width) - 1)) as u32
}

/// Hamming distance between two equally long byte strings.
///
/// # Errors
/// [`IndexError::WrongLength`] when the lengths differ.
pub fn hamming_distance(a: &[u8], b: &[u8]) -> Result<u32, IndexError> {
    if a.len() != b.len() {
        return Err(IndexError::WrongLength {
            expected: a.len(),
            got: b.len(),
        });
    }
    let mut chunks_a = a.chunks_exact(8);
    let mut chunks_b = b.chunks_exact(8);
    let mut d = 0;
    for (x, y) in (&mut chunks_a).zip(&mut chunks_b) {
        let x = u64::from_le_bytes(x.try_into().unwrap_or([0; 8]));
        let y = u64::from_le_bytes(y.try_into().unwrap_or([0; 8]));
        d += (x ^ y).count_ones();
    }
    for (x, y) in chunks_a.remainder().iter().zip(chunks_b.remainder()) {
        d += (x ^ y).count_ones();
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_crosses_word_boundary() {
        let words = [0xF000_0000_0000_0000u64, 0x0000_0000_0000_0005];
        assert_eq!(extract(&words, 60, 8), 0x5F);
        assert_eq!(extract(&words, 0, 32), 0);
        assert_eq!(extract(&words, 64, 3), 5);
    }

    #[test]
    fn block_round_trip_and_distance() {
        let a: Vec<u8> = (0..32).collect();
        let mut b = a.clone();
        b[3] ^= 0b1011;
        let ba: W4 = to_block(&a);
        let bb: W4 = to_block(&b);
        assert_eq!(from_block(&ba, 32), a);
        assert_eq!(ba.distance(&bb), 3);
        assert_eq!(hamming_distance(&a, &b), Ok(3));
        let odd: W1 = to_block(&[0xFF, 0x01, 0x80]);
        assert_eq!(from_block(&odd, 3), vec![0xFF, 0x01, 0x80]);
    }

    #[test]
    fn distance_rejects_mismatched_lengths() {
        assert!(hamming_distance(&[0; 3], &[0; 4]).is_err());
        assert_eq!(hamming_distance(&[0xFF; 9], &[0; 9]), Ok(72));
    }
}
