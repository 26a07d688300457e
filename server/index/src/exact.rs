//! Exact-match index for cryptographic hashes (md5, sha256), where only
//! equality is meaningful and a hash map is the whole story.
//!
//! The ids under one hash are kept ordered (a `BTreeSet` once there are two),
//! so removing one costs O(log k) however many ids share the hash, and a
//! caller can walk them from any id on ([`ExactIndex::ids_from`]) instead of
//! copying them all. A log may list one hash any number of times (a signed
//! origin's history is what it is), so a per-hash list scanned on every
//! removal would make retracting them quadratic.

use std::collections::{BTreeSet, HashMap};

use crate::snapshot::{SnapshotError, SnapshotReader, SnapshotWriter};
use crate::IndexError;

/// The ids stored under one hash: almost always one.
#[derive(Debug, Clone)]
enum Ids {
    One(u64),
    Many(BTreeSet<u64>),
}

/// Map from fixed-length hash bytes to the ids stored under them.
#[derive(Debug, Clone)]
pub struct ExactIndex {
    bytes: usize,
    by_hash: HashMap<Box<[u8]>, Ids>,
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
        match self.by_hash.get_mut(&key) {
            None => {
                self.by_hash.insert(key.clone(), Ids::One(id));
            }
            Some(ids) => match ids {
                Ids::One(other) => *ids = Ids::Many(BTreeSet::from([*other, id])),
                Ids::Many(set) => {
                    set.insert(id);
                }
            },
        }
        self.by_id.insert(id, key);
        Ok(())
    }

    /// Removes `id`; returns whether it was stored. O(log k) for a hash
    /// stored under k ids.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(key) = self.by_id.remove(&id) else {
            return false;
        };
        let Some(ids) = self.by_hash.get_mut(&key) else {
            return true;
        };
        let empty = match ids {
            Ids::One(_) => true,
            Ids::Many(set) => {
                set.remove(&id);
                match set.len() {
                    0 => true,
                    1 => {
                        let last = *set.first().expect("one id");
                        *ids = Ids::One(last);
                        false
                    }
                    _ => false,
                }
            }
        };
        if empty {
            self.by_hash.remove(&key);
        }
        true
    }

    /// Ids stored under exactly `hash`, ascending.
    ///
    /// # Errors
    /// [`IndexError::WrongLength`].
    pub fn lookup(&self, hash: &[u8]) -> Result<Vec<u64>, IndexError> {
        Ok(self.ids_from(hash, 0)?.collect())
    }

    /// Ids stored under exactly `hash` that are `>= from`, ascending, without
    /// copying them: a caller wanting, say, the lowest id of each id range
    /// skips to the next range instead of reading every id.
    ///
    /// # Errors
    /// [`IndexError::WrongLength`].
    pub fn ids_from(
        &self,
        hash: &[u8],
        from: u64,
    ) -> Result<impl Iterator<Item = u64> + '_, IndexError> {
        self.check(hash)?;
        let (one, many) = match self.by_hash.get(hash) {
            None => (None, None),
            Some(Ids::One(id)) => ((*id >= from).then_some(*id), None),
            Some(Ids::Many(set)) => (None, Some(set.range(from..).copied())),
        };
        Ok(one.into_iter().chain(many.into_iter().flatten()))
    }

    /// Writes every `(id, hash)`, in id order. Equality maps are cheap to rebuild, so the
    /// snapshot holds only the pairs and [`ExactIndex::load`] inserts them again.
    ///
    /// # Errors
    /// [`SnapshotError::Io`] when writing fails.
    pub fn save<W: std::io::Write>(&self, w: &mut SnapshotWriter<W>) -> Result<(), SnapshotError> {
        let mut pairs: Vec<(&u64, &Box<[u8]>)> = self.by_id.iter().collect();
        pairs.sort_unstable_by_key(|(id, _)| **id);
        w.put_u64(self.bytes as u64)?;
        w.put_u64(pairs.len() as u64)?;
        for (id, hash) in pairs {
            w.put_u64(*id)?;
            w.put_raw(hash)?;
        }
        Ok(())
    }

    /// Reads an index written by [`ExactIndex::save`] for `bytes`-byte hashes.
    ///
    /// # Errors
    /// [`SnapshotError::Incompatible`] for another hash length, [`SnapshotError::Corrupt`] for
    /// a duplicate id or a truncated list.
    pub fn load<R: std::io::Read>(
        bytes: usize,
        r: &mut SnapshotReader<R>,
    ) -> Result<Self, SnapshotError> {
        let saved = r.u64("exact hash length")? as usize;
        if saved != bytes {
            return Err(SnapshotError::Incompatible(format!(
                "exact index of {saved}-byte hashes, wanted {bytes}"
            )));
        }
        let n = r.len(8 + bytes as u64, "exact entries")?;
        let mut index = Self::new(bytes);
        index.by_id.reserve(n);
        index.by_hash.reserve(n);
        let mut hash = vec![0u8; bytes];
        for _ in 0..n {
            let id = r.u64("exact id")?;
            r.raw(&mut hash, "exact hash")?;
            index
                .insert(id, &hash)
                .map_err(|e| SnapshotError::Corrupt(format!("exact index: {e}")))?;
        }
        Ok(index)
    }

    /// Number of stored ids.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Approximate heap bytes (hash-map buckets plus key and id storage; a
    /// hash under several ids adds ~40 bytes per id for its ordered set).
    pub fn heap_bytes(&self) -> usize {
        let key = std::mem::size_of::<Box<[u8]>>();
        self.by_hash.capacity() * (key + std::mem::size_of::<Ids>() + 1)
            + self
                .by_hash
                .values()
                .map(|v| match v {
                    Ids::One(_) => 0,
                    Ids::Many(set) => set.len() * 40,
                })
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

    /// Many ids under one hash (a log may list a hash any number of times):
    /// removals take the right id, whatever order they come in, and walking
    /// from an id skips the ones below it.
    #[test]
    fn many_ids_under_one_hash_remove_exactly_and_walk_in_order() {
        let mut idx = ExactIndex::new(2);
        let n = 20_000u64;
        for id in 0..n {
            idx.insert(id * 3, &[7, 7]).unwrap();
        }
        idx.insert(1, &[8, 8]).unwrap();
        assert_eq!(
            idx.ids_from(&[7, 7], 10)
                .unwrap()
                .take(3)
                .collect::<Vec<_>>(),
            vec![12, 15, 18]
        );
        // Remove every other id, from the top down, then check what is left.
        for id in (0..n).rev().step_by(2) {
            assert!(idx.remove(id * 3));
        }
        assert!(!idx.remove(3 * (n - 1)));
        let left = idx.lookup(&[7, 7]).unwrap();
        let want: Vec<u64> = (0..n)
            .filter(|i| (n - 1 - i) % 2 == 1)
            .map(|i| i * 3)
            .collect();
        assert_eq!(left, want);
        assert_eq!(idx.lookup(&[8, 8]).unwrap(), vec![1]);
        for id in want {
            assert!(idx.remove(id));
        }
        assert!(idx.lookup(&[7, 7]).unwrap().is_empty());
        assert_eq!(idx.len(), 1);
        assert!(idx.ids_from(&[7], 0).is_err());
    }
}
