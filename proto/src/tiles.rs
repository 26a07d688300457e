//! C2SP `tlog-tiles`: a log served as static resources (`checkpoint`, hash tiles, entry bundles)
//! that any web server, object store or CDN can hold and any tlog client can verify.
//!
//! The tile math (which stored hashes make up a tile, path encoding of the index) is
//! `tlog_tiles::Tile`, the port of Go's `sumdb/tlog` whose tiles these are. Go's paths carry the
//! tile height (`tile/8/0/001`); C2SP fixes the height at 8 and drops it (`tile/0/001`), and
//! calls the entry level `entries` where Go says `data`. [`TileRef`] converts between the two
//! and decides what a tree of a given size holds, so the node, the static publisher and the
//! readers apply one rule.

use crate::merkle::{HashReader, HASH_SIZE};
use thiserror::Error;
use tlog_tiles::Tile;

/// Tile height: every C2SP tile spans 8 tree levels, 256 hashes or entries.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;
/// Bytes of a full hash tile.
pub const FULL_TILE_BYTES: usize = TILE_WIDTH as usize * HASH_SIZE;

/// Why a tile path or an entry bundle was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum TileError {
    #[error("{0:?} is not a C2SP tile path (tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>])")]
    BadPath(String),
    #[error("tile {path} is not part of a tree of {size} entries")]
    BeyondTree { path: String, size: u64 },
    #[error("entry bundle is truncated after {parsed} of {expected} entries")]
    Truncated { parsed: usize, expected: usize },
    #[error("entry bundle holds {found} entries, expected {expected}")]
    WrongCount { found: usize, expected: usize },
    #[error("an entry of {0} bytes cannot be written to an entry bundle (uint16 length prefix)")]
    EntryTooLarge(usize),
    #[error("reading stored hashes failed: {0}")]
    Read(String),
}

/// One tile of a C2SP tiled log: hashes at `level`, or the entry bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileRef {
    tile: Tile,
}

impl TileRef {
    /// The hash tile `index` at `level` (`width` hashes; 256 is a full tile).
    pub fn hashes(level: u8, index: u64, width: u32) -> Result<Self, TileError> {
        Self::checked(level, index, width, false)
    }

    /// The entry bundle `index` (`width` entries; 256 is a full bundle).
    pub fn entries(index: u64, width: u32) -> Result<Self, TileError> {
        Self::checked(0, index, width, true)
    }

    fn checked(level: u8, index: u64, width: u32, data: bool) -> Result<Self, TileError> {
        // Level 63 of height-8 tiles is far past 2^64 entries; tlog_tiles panics outside these.
        if level >= 8 || width == 0 || u64::from(width) > TILE_WIDTH {
            return Err(TileError::BadPath(format!(
                "level {level}, index {index}, width {width}"
            )));
        }
        Ok(Self {
            tile: Tile::new(TILE_HEIGHT, level, index, width, data),
        })
    }

    /// Parses a C2SP tile path relative to the log prefix (`tile/0/x001/234.p/7`). Only the
    /// canonical encoding is accepted (no leading zeros, `.p/256` is written as a full tile), so
    /// one tile has one path and a cache one key.
    pub fn parse(path: &str) -> Result<Self, TileError> {
        let bad = || TileError::BadPath(path.chars().take(80).collect());
        let rest = path.strip_prefix("tile/").ok_or_else(bad)?;
        let (level, rest) = rest.split_once('/').ok_or_else(bad)?;
        let go_level = match level {
            "entries" => "data",
            l if canonical_number(l).is_some_and(|l| l < 8) => l,
            _ => return Err(bad()),
        };
        // tlog_tiles panics on a zero width; check the `.p/<W>` suffix first.
        if let Some((_, width)) = rest.rsplit_once(".p/") {
            if !canonical_number(width).is_some_and(|w| (1..TILE_WIDTH).contains(&w)) {
                return Err(bad());
            }
        }
        let go_path = format!("tile/{TILE_HEIGHT}/{go_level}/{rest}");
        let tile = Tile::from_path(&go_path).map_err(|_| bad())?;
        // Tile::from_path accepts levels up to 63; only 0..8 exist for 64-bit trees.
        Self::checked(
            tile.level(),
            tile.level_index(),
            tile.width(),
            tile.is_data(),
        )
        .map_err(|_| bad())
    }

    /// The C2SP path relative to the log prefix.
    pub fn path(&self) -> String {
        let go = self.tile.path();
        let rest = go
            .strip_prefix(&format!("tile/{TILE_HEIGHT}/"))
            .expect("tlog_tiles paths start with tile/<H>/");
        match rest.strip_prefix("data/") {
            Some(n) => format!("tile/entries/{n}"),
            None => format!("tile/{rest}"),
        }
    }

    /// Whether this is an entry bundle rather than a hash tile.
    pub fn is_entries(&self) -> bool {
        self.tile.is_data()
    }

    /// Tile level (0 for entry bundles).
    pub fn level(&self) -> u8 {
        self.tile.level()
    }

    /// Index within the level.
    pub fn index(&self) -> u64 {
        self.tile.level_index()
    }

    /// Hashes or entries in the tile.
    pub fn width(&self) -> u32 {
        self.tile.width()
    }

    /// The entries `[start, end)` an entry bundle holds.
    pub fn entry_range(&self) -> (u64, u64) {
        let start = self.index() * TILE_WIDTH;
        (start, start + u64::from(self.width()))
    }

    /// Whether a tree of `size` entries holds this tile: its last hash is a complete subtree
    /// of the tree. Any width up to the tree's partial tile is held (a narrower partial tile
    /// is a prefix of a wider one, and of the full tile).
    pub fn within(&self, size: u64) -> bool {
        // Number of complete subtrees at this tile's level: floor(size / 256^level).
        let shift = u32::from(self.level()) * u32::from(TILE_HEIGHT);
        let hashes_at_level = size.checked_shr(shift).unwrap_or(0);
        let end = self
            .index()
            .checked_mul(TILE_WIDTH)
            .and_then(|s| s.checked_add(u64::from(self.width())));
        end.is_some_and(|end| end <= hashes_at_level)
    }

    /// Refuses a tile the tree of `size` entries does not hold.
    pub fn check_within(&self, size: u64) -> Result<(), TileError> {
        if self.within(size) {
            Ok(())
        } else {
            Err(TileError::BeyondTree {
                path: self.path(),
                size,
            })
        }
    }

    /// The bytes of a hash tile of a tree of `size` entries whose stored hashes `reader` holds:
    /// `width` concatenated 32-byte hashes.
    pub fn hash_tile(&self, size: u64, reader: &impl HashReader) -> Result<Vec<u8>, TileError> {
        assert!(!self.is_entries(), "hash_tile of an entry bundle");
        self.check_within(size)?;
        self.tile
            .read_data(reader)
            .map_err(|e| TileError::Read(e.to_string()))
    }

    /// Every tile a tree of `size` entries holds that a tree of `old_size` did not (the full
    /// tiles completed since, and the new partial ones), hash tiles then entry bundles: what a
    /// static publisher writes after a commit.
    pub fn new_tiles(old_size: u64, size: u64) -> Vec<Self> {
        let hashes: Vec<Self> = Tile::new_tiles(TILE_HEIGHT, old_size, size)
            .into_iter()
            .map(|tile| Self { tile })
            .collect();
        let entries: Vec<Self> = hashes
            .iter()
            .filter(|t| t.level() == 0)
            .map(|t| Self {
                tile: Tile::new(TILE_HEIGHT, 0, t.index(), t.width(), true),
            })
            .collect();
        [hashes, entries].concat()
    }
}

/// A decimal number written without sign or leading zeros.
fn canonical_number(s: &str) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
        && s.len() <= 3;
    canonical.then(|| s.parse().ok()).flatten()
}

/// Appends one entry to an entry bundle (big-endian uint16 length, then the entry).
pub fn push_entry(bundle: &mut Vec<u8>, entry: &[u8]) -> Result<(), TileError> {
    let len = u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLarge(entry.len()))?;
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(entry);
    Ok(())
}

/// The entries of an entry bundle that must hold exactly `expected` of them (what its path or
/// the tree size says); a short, long or truncated bundle is refused.
pub fn split_entries(bundle: &[u8], expected: usize) -> Result<Vec<&[u8]>, TileError> {
    let mut out = Vec::with_capacity(expected.min(TILE_WIDTH as usize));
    let mut rest = bundle;
    while !rest.is_empty() {
        let truncated = TileError::Truncated {
            parsed: out.len(),
            expected,
        };
        let (len, tail) = rest.split_first_chunk::<2>().ok_or(truncated.clone())?;
        let len = usize::from(u16::from_be_bytes(*len));
        let entry = tail.get(..len).ok_or(truncated)?;
        out.push(entry);
        rest = &tail[len..];
        if out.len() > expected {
            break;
        }
    }
    if out.len() != expected {
        return Err(TileError::WrongCount {
            found: out.len(),
            expected,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, Hash, MemoryHashes};

    #[test]
    fn paths_are_c2sp_and_round_trip() {
        let cases = [
            (TileRef::hashes(0, 0, 256).unwrap(), "tile/0/000"),
            (
                TileRef::hashes(1, 1234067, 256).unwrap(),
                "tile/1/x001/x234/067",
            ),
            (TileRef::hashes(0, 5, 7).unwrap(), "tile/0/005.p/7"),
            (
                TileRef::entries(1000, 256).unwrap(),
                "tile/entries/x001/000",
            ),
            (TileRef::entries(3, 112).unwrap(), "tile/entries/003.p/112"),
        ];
        for (tile, path) in cases {
            assert_eq!(tile.path(), path);
            assert_eq!(TileRef::parse(path).unwrap(), tile, "{path}");
        }
        assert!(TileRef::parse("tile/entries/003.p/112")
            .unwrap()
            .is_entries());
        assert!(!TileRef::parse("tile/0/003").unwrap().is_entries());
    }

    /// Non-canonical and malformed paths are refused: one tile, one path.
    #[test]
    fn non_canonical_paths_are_refused() {
        for path in [
            "tile/0/5",                                 // not 3 digits
            "tile/0/005.p/256",                         // a full tile written as partial
            "tile/0/005.p/0",                           // empty tile
            "tile/0/005.p/007",                         // leading zeros in the width
            "tile/00/005",                              // leading zeros in the level
            "tile/8/000",                               // no level 8 in a 64-bit tree
            "tile/64/000",                              // no such level at all
            "tile/data/000",                            // Go's name, not C2SP's
            "tile/8/0/000",                             // Go's path with the height
            "tile/0/001/234",                           // missing x
            "tile/0/x001",                              // x on the last element
            "tile/entries/",                            // no index
            "checkpoint",                               // not a tile
            "tile/0/x018/x446/x744/x073/x709/x551/616", // past u64
        ] {
            assert!(TileRef::parse(path).is_err(), "{path} was accepted");
        }
    }

    #[test]
    fn a_tree_holds_the_tiles_the_spec_lists() {
        // C2SP's example: 70,000 entries = 273 full level-0 tiles, a level-0 tile of 112, one
        // full level-1 tile, a level-1 tile of 17 and a level-2 tile of 1.
        let size = 70_000;
        assert!(TileRef::hashes(0, 272, 256).unwrap().within(size));
        assert!(TileRef::hashes(0, 273, 112).unwrap().within(size));
        assert!(TileRef::hashes(0, 273, 100).unwrap().within(size));
        assert!(!TileRef::hashes(0, 273, 113).unwrap().within(size));
        assert!(!TileRef::hashes(0, 273, 256).unwrap().within(size));
        assert!(TileRef::hashes(1, 0, 256).unwrap().within(size));
        assert!(TileRef::hashes(1, 1, 17).unwrap().within(size));
        assert!(!TileRef::hashes(1, 1, 18).unwrap().within(size));
        assert!(TileRef::hashes(2, 0, 1).unwrap().within(size));
        assert!(!TileRef::hashes(2, 0, 2).unwrap().within(size));
        assert!(!TileRef::hashes(3, 0, 1).unwrap().within(size));
        assert!(TileRef::entries(273, 112).unwrap().within(size));
        assert!(!TileRef::entries(274, 1).unwrap().within(size));
        assert!(!TileRef::hashes(0, u64::MAX, 256).unwrap().within(u64::MAX));

        let new = TileRef::new_tiles(0, size);
        let paths: Vec<String> = new.iter().map(TileRef::path).collect();
        assert_eq!(new.len(), (273 + 1 + 1 + 1 + 1) + (273 + 1), "{paths:?}");
        assert!(paths.contains(&"tile/2/000.p/1".to_owned()));
        assert!(paths.contains(&"tile/entries/273.p/112".to_owned()));
        assert!(new.iter().all(|t| t.within(size)));
        // Growing by one entry adds only the tiles that changed.
        let grown: Vec<String> = TileRef::new_tiles(size, size + 1)
            .iter()
            .map(TileRef::path)
            .collect();
        assert_eq!(grown, ["tile/0/273.p/113", "tile/entries/273.p/113"]);
    }

    #[test]
    fn hash_tiles_hold_the_tree_hashes_and_rehash_to_the_root() {
        let mut tree = MemoryHashes::new();
        for i in 0..300u32 {
            tree.push_leaf(&i.to_be_bytes());
        }
        let full = TileRef::hashes(0, 0, 256).unwrap();
        let bytes = full.hash_tile(300, &tree).unwrap();
        assert_eq!(bytes.len(), FULL_TILE_BYTES);
        assert_eq!(bytes[5 * 32..6 * 32], leaf_hash(&5u32.to_be_bytes()).0);
        // The level-1 partial tile's one hash is the root of the first 256 leaves.
        let up = TileRef::hashes(1, 0, 1)
            .unwrap()
            .hash_tile(300, &tree)
            .unwrap();
        assert_eq!(
            Hash(up[..32].try_into().unwrap()),
            tree.root_at(256).unwrap()
        );
        assert_eq!(Tile::subtree_hash(&bytes), tree.root_at(256).unwrap());
        // A tile past the tree is refused, not read.
        let err = TileRef::hashes(0, 1, 45).unwrap().hash_tile(300, &tree);
        assert!(matches!(err, Err(TileError::BeyondTree { .. })), "{err:?}");
    }

    #[test]
    fn entry_bundles_round_trip_and_bad_ones_are_refused() {
        let mut b = Vec::new();
        for e in [&b"one"[..], b"", b"three"] {
            push_entry(&mut b, e).unwrap();
        }
        assert_eq!(b[..2], [0, 3]);
        assert_eq!(
            split_entries(&b, 3).unwrap(),
            vec![&b"one"[..], b"", b"three"]
        );
        assert!(matches!(
            split_entries(&b, 2),
            Err(TileError::WrongCount { .. })
        ));
        assert!(matches!(
            split_entries(&b, 4),
            Err(TileError::WrongCount { .. })
        ));
        assert!(matches!(
            split_entries(&b[..b.len() - 1], 3),
            Err(TileError::Truncated { .. })
        ));
        assert!(matches!(
            push_entry(&mut b, &vec![0; 65_536]),
            Err(TileError::EntryTooLarge(65_536))
        ));
        push_entry(&mut Vec::new(), &vec![0; crate::entry::MAX_ENTRY_BYTES]).unwrap();
    }
}
