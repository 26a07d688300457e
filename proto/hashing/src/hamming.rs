//! Hamming distance between two hashes: the comparison every perceptual signal type uses.

/// Number of differing bits between `a` and `b`.
///
/// Pure and allocation-free, so index scans can call it in a tight loop. Hashes of one signal
/// type always have equal lengths; if the lengths differ anyway, every bit of the bytes past the
/// shorter slice counts as different, so a length mismatch can never look like a close match.
pub fn hamming_distance(a: &[u8], b: &[u8]) -> u32 {
    let n = a.len().min(b.len());
    let (a_head, a_tail) = a.split_at(n);
    let (b_head, b_tail) = b.split_at(n);
    let mut a_words = a_head.chunks_exact(8);
    let mut b_words = b_head.chunks_exact(8);
    let mut dist = 0u32;
    for (x, y) in (&mut a_words).zip(&mut b_words) {
        let x = u64::from_le_bytes(x.try_into().expect("chunk of 8"));
        let y = u64::from_le_bytes(y.try_into().expect("chunk of 8"));
        dist += (x ^ y).count_ones();
    }
    for (x, y) in a_words.remainder().iter().zip(b_words.remainder()) {
        dist += (x ^ y).count_ones();
    }
    dist + 8 * (a_tail.len() + b_tail.len()) as u32
}

#[cfg(test)]
mod tests {
    use super::hamming_distance;

    #[test]
    fn counts_bits() {
        assert_eq!(hamming_distance(&[], &[]), 0);
        assert_eq!(hamming_distance(&[0xff; 32], &[0x00; 32]), 256);
        assert_eq!(hamming_distance(&[0b1010_0000], &[0b0010_0001]), 2);
        let mut a = [0u8; 13];
        let b = [0u8; 13];
        a[12] = 0x81;
        a[3] = 0x01;
        assert_eq!(hamming_distance(&a, &b), 3);
    }

    #[test]
    fn length_mismatch_counts_as_different() {
        assert_eq!(hamming_distance(&[0u8; 8], &[0u8; 10]), 16);
        assert_eq!(hamming_distance(&[0u8; 10], &[0u8; 8]), 16);
    }
}
