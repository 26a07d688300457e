//! Exact-match index for cryptographic hashes (md5, sha256), where only
//! equality is meaningful and a hash map is the whole story.

use std::collections::HashMap;

use crate::IndexError;

/// Map from fixed-length hash bytes to the ids stored under them.
#[derive(Debug, Clone)]
pub struct ExactIndex {
    bytes: usize,
    by_hash: HashMap<Box<[u8]>, Vec<u64>>,
    by_id: HashMap<u64, Box<[u8]>>,
}

impl ExactIndex {
    /// An empty index for hashes of `bytes` bytes (16 for md5, 32 for sha256).
    pub fn new(bytes: usize) -> Self {
        Self {
            bytes,
            by_hash: HashMap::new(),
            by_id: HashMap::new(),
        }
    }

    fn check(&self, hash: &[u8]) -> Result<(), IndexError> {
        if hash.len() == self.bytes {
            Ok(())
        } else {
            Err(IndexError::WrongLength {
                expected: self.bytes,
                got: hash.len(),
            })
        }
    }

    /// Stores `hash` under `id`.
    ///
    /// # Errors
    /// [`IndexError::WrongLength`] or [`IndexError::DuplicateId`].
    pub fn insert(&mut self, id: u64, hash: &[u8]) -> Result<(), IndexError> {
        self.check(hash)?;
        if self.by_id.contains_key(&id) {
            return Err(IndexError::DuplicateId(id));
        }
        let key: Box<[u8]> = hash.into();
        self.by_hash.entry(key.clone()).or_default().push(id);
        self.by_id.insert(id, key);
        Ok(())
    }

    /// Removes `id`; returns whether it was stored.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(key) = self.by_id.remove(&id) else {
            return false;
        };
        if let Some(ids) = self.by_hash.get_mut(&key) {
            ids.retain(|&x| x != id);
            if ids.is_empty() {
                self.by_hash.remove(&key);
            }
        }
        true
    }

    /// Ids stored under exactly `hash`, ascending.
    ///
    /// # Errors
    /// [`IndexError::WrongLength`].
    pub fn lookup(&self, hash: &[u8]) -> Result<Vec<u64>, IndexError> {
        self.check(hash)?;
        let mut ids = self.by_hash.get(hash).cloned().unwrap_or_default();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Number of stored ids.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Approximate heap bytes (hash-map buckets plus key and id storage).
    pub fn heap_bytes(&self) -> usize {
        let key = std::mem::size_of::<Box<[u8]>>();
        self.by_hash.capacity() * (key + std::mem::size_of::<Vec<u64>>() + 1)
            + self
                .by_hash
                .values()
                .map(|v| v.capacity() * 8)
                .sum::<usize>()
            + self.by_id.capacity() * (8 + key + 1)
            + self.by_id.len() * 2 * self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_insert_lookup_remove() {
        let mut idx = ExactIndex::new(4);
        idx.insert(7, &[1, 2, 3, 4]).unwrap();
        idx.insert(3, &[1, 2, 3, 4]).unwrap();
        idx.insert(9, &[9, 9, 9, 9]).unwrap();
        assert_eq!(idx.insert(3, &[0; 4]), Err(IndexError::DuplicateId(3)));
        assert_eq!(idx.lookup(&[1, 2, 3, 4]).unwrap(), vec![3, 7]);
        assert!(matches!(
            idx.lookup(&[1, 2]),
            Err(IndexError::WrongLength { .. })
        ));
        assert!(idx.remove(7));
        assert!(!idx.remove(7));
        assert_eq!(idx.lookup(&[1, 2, 3, 4]).unwrap(), vec![3]);
        assert!(idx.remove(3));
        assert!(idx.lookup(&[1, 2, 3, 4]).unwrap().is_empty());
        assert_eq!(idx.len(), 1);
    }
}
