//! Key layout of the `log` tree. Big-endian integers keep each origin's leaves and hashes in
//! index order, so range scans stream a log in order.
//!
//! | prefix | key                                      | value                      |
//! |--------|------------------------------------------|----------------------------|
//! | `F`    | `F`                                      | format version (u32)       |
//! | `N`    | `N` name                                 | origin id (u32)            |
//! | `E`    | `E` id (index / 256)                     | up to 256 leaves, each u32 length + bytes |
//! | `H`    | `H` id (stored-hash-index / 256)         | up to 256 32-byte hashes   |
//! | `C`    | `C` id                                   | size, root, signed note    |
//! | `P`    | `P` id                                   | prefix proof of `C`, while a follower catches up in steps: signed size, signed root, consistency hashes |
//! | `M`    | `M` name                                 | small settings             |

use super::OriginId;

/// Bytes of an origin id in keys.
pub const ORIGIN_ID_LEN: usize = 4;

/// Key builders and parsers.
#[derive(Debug)]
pub struct Key;

fn with_id(tag: u8, id: OriginId, extra: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + ORIGIN_ID_LEN + extra);
    k.push(tag);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

impl Key {
    pub fn format() -> &'static [u8] {
        b"F"
    }
    pub fn origin_name_prefix() -> &'static [u8] {
        b"N"
    }
    pub fn origin_name(name: &str) -> Vec<u8> {
        [b"N", name.as_bytes()].concat()
    }
    pub fn leaf_bundle(id: OriginId, bundle: u64) -> Vec<u8> {
        let mut k = with_id(b'E', id, 8);
        k.extend_from_slice(&bundle.to_be_bytes());
        k
    }
    pub fn leaf_bundle_no(key: &[u8]) -> u64 {
        u64::from_be_bytes(key[key.len() - 8..].try_into().expect("bundle key"))
    }
    pub fn hash_bundle(id: OriginId, bundle: u64) -> Vec<u8> {
        let mut k = with_id(b'H', id, 8);
        k.extend_from_slice(&bundle.to_be_bytes());
        k
    }
    pub fn checkpoint(id: OriginId) -> Vec<u8> {
        with_id(b'C', id, 0)
    }
    /// The [`super::PrefixProof`] of the checkpoint `C` id, when it has one.
    pub fn prefix_proof(id: OriginId) -> Vec<u8> {
        with_id(b'P', id, 0)
    }
    pub fn meta(name: &str) -> Vec<u8> {
        [b"M", name.as_bytes()].concat()
    }
}
