//! Leaf bundles: up to 256 leaves in one sled value, each as a big-endian u32 length followed by
//! the exact leaf bytes.

use super::{corrupt, StoreError};

/// Appends one leaf.
pub fn push(bundle: &mut Vec<u8>, leaf: &[u8]) {
    bundle.extend_from_slice(&(leaf.len() as u32).to_be_bytes());
    bundle.extend_from_slice(leaf);
}

/// Every leaf of a bundle.
pub fn split(bundle: &[u8]) -> Result<Vec<&[u8]>, StoreError> {
    let mut out = Vec::new();
    let mut rest = bundle;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(corrupt("leaf bundle", "truncated length"));
        }
        let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let body = rest
            .get(4..4 + len)
            .ok_or_else(|| corrupt("leaf bundle", "truncated leaf"))?;
        out.push(body);
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// The `n`-th leaf, if the bundle has that many.
pub fn nth(bundle: &[u8], n: usize) -> Result<Option<&[u8]>, StoreError> {
    Ok(split(bundle)?.get(n).copied())
}

/// Number of leaves.
pub fn count(bundle: &[u8]) -> Result<usize, StoreError> {
    Ok(split(bundle)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_split_round_trip_and_truncation_is_an_error() {
        let mut b = Vec::new();
        push(&mut b, b"one");
        push(&mut b, b"");
        push(&mut b, b"three");
        assert_eq!(split(&b).unwrap(), vec![&b"one"[..], b"", b"three"]);
        assert_eq!(nth(&b, 2).unwrap(), Some(&b"three"[..]));
        assert_eq!(nth(&b, 3).unwrap(), None);
        assert!(split(&b[..b.len() - 1]).is_err());
    }
}
