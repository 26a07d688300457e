//! RFC 9162 §2.1 Merkle tree hashing and proofs.
//!
//! The tree math is `tlog_tiles` (Cloudflare's port of Go's `golang.org/x/mod/sumdb/tlog`), which
//! passes the transparency-dev/merkle vectors (see the tests). It works over *stored hashes*: the
//! leaf hash and every completed subtree hash, numbered by [`stored_hash_index`], about two per
//! leaf. Appending leaf `n` writes [`stored_hashes_for_record_hash`] starting at
//! `stored_hash_index(0, n)`; roots and proofs read at most `O(log n)` of them. The server keeps
//! them in sled; auditors keep them in memory ([`MemoryHashes`]).

use thiserror::Error;
pub use tlog_tiles::{
    node_hash, record_hash as leaf_hash, stored_hash_count, stored_hash_index,
    stored_hashes_for_record_hash, Hash, HashReader, EMPTY_HASH, HASH_SIZE,
};

/// A proof did not verify, or its inputs were not a valid question.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("consistency needs 1 <= old size ({old}) <= new size ({new})")]
    BadSizes { old: u64, new: u64 },
    #[error("a proof hash is {0} bytes, not 32")]
    BadHashLength(usize),
    #[error("the proof does not lead to the expected root")]
    Mismatch,
    #[error("reading stored hashes failed: {0}")]
    Read(String),
}

fn to_proof(hashes: &[impl AsRef<[u8]>]) -> Result<Vec<Hash>, ProofError> {
    hashes.iter().map(|h| hash_from_slice(h.as_ref())).collect()
}

/// Reads a 32-byte hash.
pub fn hash_from_slice(bytes: &[u8]) -> Result<Hash, ProofError> {
    let array: [u8; HASH_SIZE] = bytes
        .try_into()
        .map_err(|_| ProofError::BadHashLength(bytes.len()))?;
    Ok(Hash(array))
}

/// Verifies an RFC 9162 §2.1.3 inclusion proof of `leaf` at `index` in the tree `(size, root)`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &[u8],
    proof: &[impl AsRef<[u8]>],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (leaf, root) = (hash_from_slice(leaf)?, hash_from_slice(root)?);
    let proof = to_proof(proof)?;
    // tlog recurses once per proof hash; a proof longer than 64 hashes cannot be valid.
    if proof.len() > 64 {
        return Err(ProofError::Mismatch);
    }
    tlog_tiles::check_record(&proof, size, root, index, leaf).map_err(|_| ProofError::Mismatch)
}

/// Verifies an RFC 9162 §2.1.4 consistency proof that `(new_size, new_root)` extends
/// `(old_size, old_root)`. Equal sizes need an empty proof and equal roots. An old size of 0 is
/// refused, as in the transparency-dev vectors: every tree trivially extends the empty one, so
/// there is nothing to prove.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &[u8],
    new_root: &[u8],
    proof: &[impl AsRef<[u8]>],
) -> Result<(), ProofError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    let (old_root, new_root) = (hash_from_slice(old_root)?, hash_from_slice(new_root)?);
    let proof = to_proof(proof)?;
    if proof.len() > 128 {
        return Err(ProofError::Mismatch);
    }
    tlog_tiles::check_tree(&proof, new_size, new_root, old_size, old_root)
        .map_err(|_| ProofError::Mismatch)
}

/// Root of the tree of `size` leaves whose stored hashes `reader` holds.
pub fn tree_root(size: u64, reader: &impl HashReader) -> Result<Hash, ProofError> {
    tlog_tiles::tree_hash(size, reader).map_err(|e| ProofError::Read(e.to_string()))
}

/// Inclusion proof for leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof(
    index: u64,
    size: u64,
    reader: &impl HashReader,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    tlog_tiles::prove_record(size, index, reader).map_err(|e| ProofError::Read(e.to_string()))
}

/// Consistency proof from `old_size` to `new_size` (1 <= old <= new).
pub fn consistency_proof(
    old_size: u64,
    new_size: u64,
    reader: &impl HashReader,
) -> Result<Vec<Hash>, ProofError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    tlog_tiles::prove_tree(new_size, old_size, reader).map_err(|e| ProofError::Read(e.to_string()))
}

/// Stored hashes that appending `leaves` to a tree of `size` leaves adds, in stored-index order
/// starting at `stored_hash_index(0, size)`. `base` holds the tree's existing stored hashes.
pub fn append_leaves(
    size: u64,
    leaves: &[Hash],
    base: &impl HashReader,
) -> Result<Vec<Hash>, ProofError> {
    let first = stored_hash_index(0, size);
    let mut added: Vec<Hash> = Vec::with_capacity(leaves.len() * 2 + 8);
    for (i, leaf) in leaves.iter().enumerate() {
        let overlay = Overlay {
            base,
            first,
            added: &added,
        };
        let new = stored_hashes_for_record_hash(size + i as u64, *leaf, &overlay)
            .map_err(|e| ProofError::Read(e.to_string()))?;
        added.extend(new);
    }
    Ok(added)
}

/// Stored hashes of a base tree with not-yet-committed hashes appended: lets a receiver compute
/// the root a batch *would* give before it writes anything.
#[derive(Debug)]
pub struct Overlay<'a, R> {
    /// The committed tree.
    pub base: &'a R,
    /// Stored index of `added[0]`.
    pub first: u64,
    /// Hashes appended after the base.
    pub added: &'a [Hash],
}

impl<R: HashReader> HashReader for Overlay<'_, R> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::tlog::Error> {
        // Appending a batch reads mostly its own new hashes: skip the base (a store read)
        // unless some index lies below the batch.
        if indexes.iter().all(|&i| i >= self.first) {
            return indexes
                .iter()
                .map(|&i| {
                    self.added
                        .get((i - self.first) as usize)
                        .copied()
                        .ok_or(tlog_tiles::tlog::Error::IndexesNotInTree)
                })
                .collect();
        }
        let below: Vec<u64> = indexes
            .iter()
            .copied()
            .filter(|&i| i < self.first)
            .collect();
        let mut from_base = self.base.read_hashes(&below)?.into_iter();
        indexes
            .iter()
            .map(|&i| {
                if i < self.first {
                    from_base
                        .next()
                        .ok_or(tlog_tiles::tlog::Error::IndexesNotInTree)
                } else {
                    self.added
                        .get((i - self.first) as usize)
                        .copied()
                        .ok_or(tlog_tiles::tlog::Error::IndexesNotInTree)
                }
            })
            .collect()
    }
}

/// The right edge of a tree: one hash per perfect subtree (O(log n) hashes), enough to append
/// leaves and compute the root without keeping the tree. An auditor streaming a log of any
/// size hashes each leaf into it as it arrives instead of collecting the leaves.
///
/// Written here rather than taken from `tlog_tiles`, which has no compact range: it is the
/// RFC 9162 §2.1.1 recursion folded over the perfect subtrees, and the tests check it against
/// `tlog_tiles::tree_hash` at every size.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompactRange {
    size: u64,
    /// Roots of the perfect subtrees covering `[0, size)`, largest (leftmost) first.
    frontier: Vec<Hash>,
}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf by its leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut n = self.size;
        while n & 1 == 1 {
            let left = self
                .frontier
                .pop()
                .expect("one subtree per set bit of size");
            hash = node_hash(left, hash);
            n >>= 1;
        }
        self.frontier.push(hash);
        self.size += 1;
    }

    /// RFC 9162 root of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.frontier.iter().rev();
        let Some(&last) = subtrees.next() else {
            return EMPTY_HASH;
        };
        subtrees.fold(last, |right, &left| node_hash(left, right))
    }
}

/// A whole tree's stored hashes in memory: what an auditor builds from the leaves it fetched.
#[derive(Debug, Default, Clone)]
pub struct MemoryHashes {
    size: u64,
    hashes: Vec<Hash>,
}

impl MemoryHashes {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf by its leaf hash.
    pub fn push_leaf_hash(&mut self, leaf: Hash) {
        let new = stored_hashes_for_record_hash(self.size, leaf, &*self)
            .expect("memory hashes hold every earlier stored hash");
        self.hashes.extend(new);
        self.size += 1;
    }

    /// Appends one leaf by its bytes.
    pub fn push_leaf(&mut self, data: &[u8]) {
        self.push_leaf_hash(leaf_hash(data));
    }

    /// Leaf hash at `index`.
    pub fn leaf_hash(&self, index: u64) -> Option<Hash> {
        (index < self.size).then(|| self.hashes[stored_hash_index(0, index) as usize])
    }

    /// Root of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        if size > self.size {
            return Err(ProofError::IndexOutOfRange {
                index: size,
                size: self.size,
            });
        }
        tree_root(size, self)
    }

    /// Root of the whole tree.
    pub fn root(&self) -> Hash {
        tree_root(self.size, self).expect("memory hashes are complete")
    }
}

impl HashReader for MemoryHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::tlog::Error> {
        indexes
            .iter()
            .map(|&i| {
                self.hashes
                    .get(i as usize)
                    .copied()
                    .ok_or(tlog_tiles::tlog::Error::IndexesNotInTree)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(n: u64) -> MemoryHashes {
        let mut t = MemoryHashes::new();
        for i in 0..n {
            t.push_leaf(format!("leaf {i}").as_bytes());
        }
        t
    }

    /// Every proof the tree generates verifies, and flipping any bit of it breaks it.
    #[test]
    fn generated_proofs_verify_for_every_index_and_size() {
        let t = tree(33);
        for size in 1..=33 {
            let root = t.root_at(size).unwrap();
            for index in 0..size {
                let leaf = t.leaf_hash(index).unwrap();
                let mut proof = inclusion_proof(index, size, &t).unwrap();
                verify_inclusion(index, size, &leaf.0, &proof_bytes(&proof), &root.0).unwrap();
                if let Some(first) = proof.first_mut() {
                    first.0[7] ^= 0x10;
                    assert!(
                        verify_inclusion(index, size, &leaf.0, &proof_bytes(&proof), &root.0)
                            .is_err()
                    );
                }
            }
            for old in 1..=size {
                let old_root = t.root_at(old).unwrap();
                let proof = consistency_proof(old, size, &t).unwrap();
                verify_consistency(old, size, &old_root.0, &root.0, &proof_bytes(&proof)).unwrap();
                if old < size {
                    assert!(
                        verify_consistency(old, size, &root.0, &root.0, &proof_bytes(&proof))
                            .is_err()
                    );
                }
            }
        }
    }

    #[test]
    fn append_leaves_matches_one_by_one_building() {
        let full = tree(20);
        let base = tree(7);
        let leaves: Vec<Hash> = (7..20).map(|i| full.leaf_hash(i).unwrap()).collect();
        let added = append_leaves(7, &leaves, &base).unwrap();
        let overlay = Overlay {
            base: &base,
            first: stored_hash_index(0, 7),
            added: &added,
        };
        assert_eq!(tree_root(20, &overlay).unwrap(), full.root());
        assert_eq!(
            stored_hash_index(0, 7) + added.len() as u64,
            stored_hash_count(20)
        );
    }

    #[test]
    fn compact_range_root_matches_the_full_tree_at_every_size() {
        let mut full = MemoryHashes::new();
        let mut compact = CompactRange::new();
        assert_eq!(compact.root(), EMPTY_HASH);
        for i in 0..300u32 {
            let leaf = leaf_hash(&i.to_be_bytes());
            full.push_leaf_hash(leaf);
            compact.push(leaf);
            assert_eq!(compact.size(), full.size());
            assert_eq!(compact.root(), full.root(), "size {}", i + 1);
            assert!(compact.frontier.len() <= 64);
        }
    }

    #[test]
    fn empty_tree_root_is_sha256_of_nothing() {
        assert_eq!(MemoryHashes::new().root(), EMPTY_HASH);
        assert!(matches!(
            inclusion_proof(0, 0, &MemoryHashes::new()),
            Err(ProofError::IndexOutOfRange { .. })
        ));
    }

    fn proof_bytes(p: &[Hash]) -> Vec<Vec<u8>> {
        p.iter().map(|h| h.0.to_vec()).collect()
    }
}
