//! Key layout of the `log` tree. Big-endian integers keep each origin's leaves and hashes in
//! index order, so range scans stream a log in order.
//!
//! | prefix | key                                      | value                      |
//! |--------|------------------------------------------|----------------------------|
//! | `F`    | `F`                                      | format version (u32)       |
//! | `N`    | `N` name                                 | origin id (u32)            |
//! | `E`    | `E` id index                             | leaf bytes                 |
//! | `H`    | `H` id stored-hash-index                 | 32-byte hash               |
//! | `C`    | `C` id                                   | size, root, signed note    |
//! | `A`    | `A` id type-len type hash index          | empty (ADD at index active)|
//! | `M`    | `M` name                                 | small settings             |

use super::{ActiveAdd, OriginId, StoreError};

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
    pub fn leaf(id: OriginId, index: u64) -> Vec<u8> {
        let mut k = with_id(b'E', id, 8);
        k.extend_from_slice(&index.to_be_bytes());
        k
    }
    pub fn leaf_index(key: &[u8]) -> u64 {
        u64::from_be_bytes(key[key.len() - 8..].try_into().expect("leaf key"))
    }
    pub fn hash(id: OriginId, stored_index: u64) -> Vec<u8> {
        let mut k = with_id(b'H', id, 8);
        k.extend_from_slice(&stored_index.to_be_bytes());
        k
    }
    pub fn checkpoint(id: OriginId) -> Vec<u8> {
        with_id(b'C', id, 0)
    }
    pub fn active_all_prefix() -> &'static [u8] {
        b"A"
    }
    pub fn active_origin_prefix(id: OriginId) -> Vec<u8> {
        with_id(b'A', id, 0)
    }
    pub fn active_prefix(id: OriginId, signal_type: &str, hash: &[u8]) -> Vec<u8> {
        let mut k = with_id(b'A', id, 1 + signal_type.len() + hash.len() + 8);
        k.push(signal_type.len() as u8);
        k.extend_from_slice(signal_type.as_bytes());
        k.extend_from_slice(hash);
        k
    }
    pub fn active(id: OriginId, a: &ActiveAdd) -> Vec<u8> {
        let mut k = Self::active_prefix(id, &a.signal_type, &a.hash);
        k.extend_from_slice(&a.index.to_be_bytes());
        k
    }
    pub fn active_index(key: &[u8]) -> u64 {
        Self::leaf_index(key)
    }
    pub fn parse_active(key: &[u8]) -> Result<(OriginId, ActiveAdd), StoreError> {
        let bad = || StoreError::Corrupt {
            what: "active key".into(),
            detail: format!("{} bytes", key.len()),
        };
        if key.len() < 1 + ORIGIN_ID_LEN + 1 + 8 {
            return Err(bad());
        }
        let id = OriginId::from_be_bytes(key[1..5].try_into().map_err(|_| bad())?);
        let tlen = key[5] as usize;
        let rest = &key[6..];
        if rest.len() < tlen + 8 {
            return Err(bad());
        }
        let signal_type = String::from_utf8(rest[..tlen].to_vec()).map_err(|_| bad())?;
        let hash = rest[tlen..rest.len() - 8].to_vec();
        Ok((
            id,
            ActiveAdd {
                signal_type,
                hash,
                index: Self::leaf_index(key),
            },
        ))
    }
    pub fn meta(name: &str) -> Vec<u8> {
        [b"M", name.as_bytes()].concat()
    }
}
