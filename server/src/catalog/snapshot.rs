//! The catalog saved whole, so a restart loads it instead of replaying every log.
//!
//! Replaying is decoding, planning and indexing every leaf again: 6.9 s at 3M entries, minutes
//! at 100M (an index build alone is ~6 minutes there). A snapshot holds the catalog's derived
//! state exactly — entry infos, listings, each Hamming index with its tables
//! ([`HammingIndex::save`]), each exact index — together with the log prefix of every origin it
//! was derived from ([`Coverage`]), so the node loads it, checks each prefix against the store
//! and replays only what was committed after it (see `node::catalog_snapshot`).
//!
//! Layout (all little-endian, [`redline_index::snapshot`] framing, CRC-32 trailer):
//! magic `RLCATSNP`, version, coverage, listings, signal-type names, entry infos
//! `(id, type, quality, listing)`, Hamming indexes, exact indexes. The per-origin active counts
//! are not stored: they are recounted from the infos on load.

use super::{index_options, Catalog, EntryInfo, Inner, Listing};
use crate::store::OriginId;
use redline_index::snapshot::{SnapshotError, SnapshotReader, SnapshotWriter};
use redline_index::{ExactIndex, HammingIndex};
use redline_proto::merkle::Hash;
use redline_proto::signal::SignalType;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"RLCATSNP";
/// Version of the catalog snapshot layout; any other is refused and the logs are replayed.
const VERSION: u32 = 1;
/// Longest label, legal basis or origin name a snapshot may hold (far above what submit
/// accepts): a bound for the reader, not a rule.
const MAX_TEXT: usize = 1 << 16;

/// The log prefix of one origin that a snapshot's entries were derived from: the snapshot
/// holds exactly the catalog state of leaves `0..size`, whose Merkle root is `root`.
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    /// The origin's id in this store.
    pub origin: OriginId,
    /// Its name (checked against the store's registry on load).
    pub name: String,
    /// Leaves covered.
    pub size: u64,
    /// Merkle root of those leaves.
    pub root: Hash,
}

/// What a save wrote, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// Active entries saved.
    pub entries: usize,
    /// Bytes written, trailer included.
    pub bytes: u64,
}

impl Catalog {
    /// Writes the catalog to `w` as covering `coverage`. The caller guarantees that coverage
    /// and catalog agree: it holds every log's writer lock, so no batch is half applied. Here
    /// the catalog's own writer mutex is held too (no background compaction runs), and its
    /// read lock, so Match queries go on while the bytes are written.
    pub fn save_snapshot<W: Write>(
        &self,
        w: W,
        coverage: &[Coverage],
    ) -> Result<(W, SnapshotSummary), SnapshotError> {
        let _writer = self.writer.lock();
        let inner = self.inner.read();
        let mut w = SnapshotWriter::new(w);
        w.put_raw(MAGIC)?;
        w.put_u32(VERSION)?;
        w.put_u32(coverage.len() as u32)?;
        for c in coverage {
            w.put_u32(c.origin)?;
            w.put_str(&c.name)?;
            w.put_u64(c.size)?;
            w.put_raw(&c.root.0)?;
        }
        w.put_u64(inner.listings.len() as u64)?;
        for l in &inner.listings {
            w.put_u32(l.labels.len() as u32)?;
            for label in &l.labels {
                w.put_str(label)?;
            }
            w.put_str(&l.legal_basis)?;
        }
        let types = SignalType::ALL;
        w.put_u8(types.len() as u8)?;
        for t in types {
            w.put_str(t.name())?;
        }
        let code = |t: SignalType| types.iter().position(|&x| x == t).expect("ALL") as u8;
        w.put_u64(inner.info.len() as u64)?;
        w.put_words(inner.info.iter().map(|(&id, info)| {
            let mut rec = [0u8; 14];
            rec[..8].copy_from_slice(&id.to_le_bytes());
            rec[8] = code(info.signal_type);
            rec[9] = info.quality;
            rec[10..].copy_from_slice(&info.listing.to_le_bytes());
            rec
        }))?;
        let mut hamming: Vec<_> = inner.hamming.iter().collect();
        hamming.sort_by_key(|(t, _)| **t);
        w.put_u32(hamming.len() as u32)?;
        for (t, ix) in hamming {
            w.put_str(t.name())?;
            ix.save(&mut w)?;
        }
        let mut exact: Vec<_> = inner.exact.iter().collect();
        exact.sort_by_key(|(t, _)| **t);
        w.put_u32(exact.len() as u32)?;
        for (t, ix) in exact {
            w.put_str(t.name())?;
            ix.save(&mut w)?;
        }
        let bytes = w.written() + 4;
        let entries = inner.info.len();
        Ok((w.finish()?, SnapshotSummary { entries, bytes }))
    }

    /// Reads a catalog saved by [`Catalog::save_snapshot`] from `r` (`len` bytes), with the
    /// coverage it was saved under. Origins' names and match policies are not part of it: the
    /// caller declares them ([`Catalog::set_origin`]) from the current configuration.
    pub fn load_snapshot<R: Read>(
        r: R,
        len: u64,
    ) -> Result<(Catalog, Vec<Coverage>), SnapshotError> {
        let corrupt = |m: String| SnapshotError::Corrupt(format!("catalog: {m}"));
        let mut r = SnapshotReader::new(r, len)?;
        let mut magic = [0u8; 8];
        r.raw(&mut magic, "magic")?;
        if &magic != MAGIC {
            return Err(corrupt("not a catalog snapshot".into()));
        }
        let version = r.u32("version")?;
        if version != VERSION {
            return Err(SnapshotError::Incompatible(format!(
                "catalog snapshot version {version}, this build reads {VERSION}"
            )));
        }
        let origins = r.u32("coverage count")? as usize;
        let mut coverage = Vec::new();
        for _ in 0..origins {
            let origin = r.u32("origin id")?;
            let name = r.string(MAX_TEXT, "origin name")?;
            let size = r.u64("covered size")?;
            let mut root = [0u8; 32];
            r.raw(&mut root, "covered root")?;
            coverage.push(Coverage {
                origin,
                name,
                size,
                root: Hash(root),
            });
        }
        let n = r.len(8, "listings")?;
        let mut listings = Vec::with_capacity(n);
        for _ in 0..n {
            let count = r.u32("label count")? as usize;
            let mut labels = Vec::new();
            for _ in 0..count {
                labels.push(r.string(MAX_TEXT, "label")?);
            }
            let legal_basis = r.string(MAX_TEXT, "legal basis")?;
            listings.push(Arc::new(Listing {
                labels,
                legal_basis,
            }));
        }
        let names = r.u8("signal type count")? as usize;
        let mut types = Vec::with_capacity(names);
        for _ in 0..names {
            let name = r.string(64, "signal type")?;
            types.push(
                SignalType::from_name(&name).map_err(|e| {
                    SnapshotError::Incompatible(format!("signal type {name:?}: {e}"))
                })?,
            );
        }
        let n = r.len(14, "entries")?;
        let records = r.words(n, "entries", |rec: [u8; 14]| rec)?;
        // The entry map is built on a second thread while this one reads the indexes: each
        // is about half of a load (a random write per entry; a copy of the tables).
        let (entries, indexes) = std::thread::scope(|scope| {
            let entries = scope.spawn(|| {
                let started = std::time::Instant::now();
                let map = entry_map(&records, &types, listings.len());
                (map, started.elapsed())
            });
            let started = std::time::Instant::now();
            let indexes = read_indexes(&mut r, index_options(super::BACKGROUND_MERGE_SLOTS));
            let indexes_in = started.elapsed();
            let (entries, entries_in) = entries
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            // The two halves of a load, for whoever tunes it: which one the other waits for.
            tracing::debug!(
                entry_map_ms = entries_in.as_millis() as u64,
                indexes_ms = indexes_in.as_millis() as u64,
                "catalog snapshot read"
            );
            (entries, indexes)
        });
        drop(records);
        let (info, active_per_origin) = entries?;
        let (hamming, exact) = indexes?;
        let mut inner = Inner {
            info,
            active_per_origin,
            hamming,
            exact,
            ..Inner::default()
        };
        r.finish()?;
        // Every entry is in exactly one index: the totals must agree. A vPDQ entry is many
        // frames of the `vpdq` index, so those are checked by their first frame instead.
        let indexed: usize = inner
            .hamming
            .iter()
            .filter(|(&t, _)| t != SignalType::Vpdq)
            .map(|(_, ix)| ix.len())
            .sum::<usize>()
            + inner.exact.values().map(ExactIndex::len).sum::<usize>();
        let mut videos = 0;
        for (&id, entry) in inner.info.iter() {
            if entry.signal_type != SignalType::Vpdq {
                continue;
            }
            videos += 1;
            let (origin, index) = super::split_id(id);
            let first = super::frame_id(origin, index, 0);
            let held = inner.hamming.get(&SignalType::Vpdq);
            if !first.is_some_and(|f| held.is_some_and(|ix| ix.contains(f))) {
                return Err(corrupt(format!("vpdq entry {id} has no indexed frame")));
            }
        }
        if indexed + videos != inner.info.len() {
            return Err(corrupt(format!(
                "{} entries, {indexed} indexed",
                inner.info.len()
            )));
        }
        inner.listing_ids = listings
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i as u32))
            .collect();
        inner.listings = listings;
        let catalog = Catalog::new();
        *catalog.inner.write() = inner;
        Ok((catalog, coverage))
    }
}

type Indexes = (
    HashMap<SignalType, HammingIndex>,
    HashMap<SignalType, ExactIndex>,
);

/// The Hamming and exact index sections.
fn read_indexes<R: Read>(
    r: &mut SnapshotReader<R>,
    options: redline_index::IndexOptions,
) -> Result<Indexes, SnapshotError> {
    let corrupt = |m: String| SnapshotError::Corrupt(format!("catalog: {m}"));
    let (mut hamming, mut exact) = (HashMap::new(), HashMap::new());
    for _ in 0..r.u32("hamming index count")? {
        let t = signal_type(r)?;
        let ix = HammingIndex::load(t.bits(), options, r)?;
        if hamming.insert(t, ix).is_some() {
            return Err(corrupt(format!("two {} indexes", t.name())));
        }
    }
    for _ in 0..r.u32("exact index count")? {
        let t = signal_type(r)?;
        let ix = ExactIndex::load(t.byte_len(), r)?;
        if exact.insert(t, ix).is_some() {
            return Err(corrupt(format!("two {} indexes", t.name())));
        }
    }
    Ok((hamming, exact))
}

type EntryMap = (super::entries::Entries, HashMap<OriginId, u64>);

/// The entry map and per-origin active counts from the saved records `(id, type, quality,
/// listing)`.
fn entry_map(
    records: &[[u8; 14]],
    types: &[SignalType],
    listings: usize,
) -> Result<EntryMap, SnapshotError> {
    let corrupt = |m: String| SnapshotError::Corrupt(format!("catalog: {m}"));
    let mut info = super::entries::Entries::with_capacity(records.len());
    let mut counts: Vec<(OriginId, u64)> = Vec::new();
    for rec in records {
        let id = u64::from_le_bytes(rec[..8].try_into().expect("8 bytes"));
        let listing = u32::from_le_bytes(rec[10..].try_into().expect("4 bytes"));
        let signal_type = *types
            .get(rec[8] as usize)
            .ok_or_else(|| corrupt(format!("entry {id} has type code {}", rec[8])))?;
        if listing as usize >= listings || rec[9] > 100 {
            return Err(corrupt(format!("entry {id} has listing {listing}")));
        }
        let entry = EntryInfo {
            signal_type,
            quality: rec[9],
            listing,
        };
        if info.insert(id, entry).is_some() {
            return Err(corrupt(format!("entry {id} appears twice")));
        }
        // Few origins: a short list beats a map lookup per entry.
        let origin = super::split_id(id).0;
        match counts.iter_mut().find(|(o, _)| *o == origin) {
            Some((_, n)) => *n += 1,
            None => counts.push((origin, 1)),
        }
    }
    Ok((info, counts.into_iter().collect()))
}

fn signal_type<R: Read>(r: &mut SnapshotReader<R>) -> Result<SignalType, SnapshotError> {
    let name = r.string(64, "index signal type")?;
    SignalType::from_name(&name)
        .map_err(|e| SnapshotError::Incompatible(format!("signal type {name:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Activation;

    fn activation(index: u64, signal_type: SignalType, seed: u8, label: &str) -> Activation {
        let mut hash = vec![seed; signal_type.byte_len()];
        hash[0] = (index % 251) as u8;
        hash[1] = (index / 251) as u8;
        Activation {
            index,
            signal_type,
            hash,
            quality: 80,
            labels: vec![label.into()],
            legal_basis: "consent withdrawn".into(),
        }
    }

    fn filled() -> Catalog {
        let catalog = Catalog::with_limits(64, 128, 256);
        catalog.set_origin(0, "a.example", true);
        catalog.set_origin(1, "b.example", true);
        let adds: Vec<Activation> = (0..3_000)
            .map(|i| {
                activation(
                    i,
                    SignalType::Pdq,
                    7,
                    if i % 2 == 0 { "ncii" } else { "csam" },
                )
            })
            .chain((3_000..3_100).map(|i| activation(i, SignalType::Md5, 9, "ncii")))
            .collect();
        catalog.apply(0, &adds, &[]);
        catalog.apply(0, &[], &[5, 6, 3_050]);
        let other: Vec<Activation> = (0..500)
            .map(|i| activation(i, SignalType::Dhash8x8, 3, "ncii"))
            .collect();
        catalog.apply(1, &other, &[]);
        catalog
    }

    fn coverage() -> Vec<Coverage> {
        vec![Coverage {
            origin: 0,
            name: "a.example".into(),
            size: 3_103,
            root: Hash([4; 32]),
        }]
    }

    #[test]
    fn a_loaded_catalog_matches_and_counts_like_the_saved_one() {
        let catalog = filled();
        let (bytes, summary) = catalog.save_snapshot(Vec::new(), &coverage()).unwrap();
        assert_eq!(summary.bytes, bytes.len() as u64);
        assert_eq!(summary.entries, catalog.len());
        let (loaded, cov) = Catalog::load_snapshot(&bytes[..], bytes.len() as u64).unwrap();
        assert_eq!(cov, coverage());
        loaded.set_origin(0, "a.example", true);
        loaded.set_origin(1, "b.example", true);
        assert_eq!(loaded.len(), catalog.len());
        for origin in [0, 1] {
            assert_eq!(loaded.active_count(origin), catalog.active_count(origin));
        }
        for (t, index, seed) in [
            (SignalType::Pdq, 10, 7),
            (SignalType::Pdq, 5, 7),
            (SignalType::Md5, 3_020, 9),
            (SignalType::Md5, 3_050, 9),
            (SignalType::Dhash8x8, 40, 3),
        ] {
            let q = activation(index, t, seed, "").hash;
            assert_eq!(
                loaded.search(t, &q, 31),
                catalog.search(t, &q, 31),
                "{t:?} {index}"
            );
        }
        assert!(!loaded.is_active(0, 5) && loaded.is_active(0, 4));
        // It goes on: a new batch and a retraction apply to the loaded catalog as to the saved.
        for c in [&catalog, &loaded] {
            c.apply(0, &[activation(9_000, SignalType::Pdq, 1, "new")], &[10]);
        }
        let q = activation(9_000, SignalType::Pdq, 1, "").hash;
        let hits = loaded.search(SignalType::Pdq, &q, 0);
        assert_eq!(hits, catalog.search(SignalType::Pdq, &q, 0));
        assert_eq!(hits[0].listing.labels, vec!["new".to_string()]);
        assert!(!loaded.is_active(0, 10));
    }

    #[test]
    fn damaged_snapshots_are_refused() {
        let (bytes, _) = filled().save_snapshot(Vec::new(), &coverage()).unwrap();
        for at in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
            let mut b = bytes.clone();
            b[at] ^= 0x04;
            assert!(
                Catalog::load_snapshot(&b[..], b.len() as u64).is_err(),
                "flip at {at}"
            );
        }
        let cut = &bytes[..bytes.len() / 2];
        assert!(Catalog::load_snapshot(cut, cut.len() as u64).is_err());
    }
}
