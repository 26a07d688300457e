//! Saved and loaded indexes: a loaded index answers every query exactly as the one that was
//! saved, keeps working under further inserts, removals, merges and compactions, and a corrupt,
//! truncated or incompatible snapshot is refused with an error (never a panic or a huge
//! allocation).

use rand::{Rng, SeedableRng};
use redline_index::snapshot::{SnapshotError, SnapshotReader, SnapshotWriter};
use redline_index::{ExactIndex, HammingIndex, IndexOptions};

fn options() -> IndexOptions {
    IndexOptions {
        buffer_capacity: 64,
        background_merge_threshold: Some(1_000),
        ..IndexOptions::default()
    }
}

fn random_hash(rng: &mut impl Rng) -> [u8; 32] {
    let mut h = [0u8; 32];
    rng.fill(&mut h);
    h
}

/// Hashes near a few centres, so radius-31 searches find many neighbours.
fn near(rng: &mut impl Rng, centres: &[[u8; 32]]) -> [u8; 32] {
    let mut h = centres[rng.gen_range(0..centres.len())];
    for _ in 0..rng.gen_range(0..24) {
        let bit = rng.gen_range(0..256);
        h[bit / 8] ^= 1 << (bit % 8);
    }
    h
}

/// An index shaped by churn: inline and deferred merges (one left pending), removals, a
/// compaction, an unsealed buffer.
fn churned(rng: &mut impl Rng, centres: &[[u8; 32]]) -> HammingIndex {
    let mut index = HammingIndex::with_options(256, options()).unwrap();
    let mut next = 0u64;
    for round in 0..12 {
        let batch: Vec<(u64, [u8; 32])> = (0..700)
            .map(|_| {
                next += 1;
                (next, near(rng, centres))
            })
            .collect();
        index
            .insert_batch(batch.iter().map(|(id, h)| (*id, h.as_slice())))
            .unwrap();
        for _ in 0..150 {
            index.remove(rng.gen_range(1..=next));
        }
        // Leave the last deferred merge pending, install the others.
        if round < 11 {
            while let Some(job) = index.take_merge_job() {
                index.install_merge(job.run());
            }
        }
    }
    for i in 0..37 {
        index.insert(1_000_000 + i, &near(rng, centres)).unwrap();
    }
    index
}

fn save(index: &HammingIndex) -> Vec<u8> {
    let mut w = SnapshotWriter::new(Vec::new());
    index.save(&mut w).unwrap();
    w.finish().unwrap()
}

fn load(bytes: &[u8], options: IndexOptions) -> Result<HammingIndex, SnapshotError> {
    let mut r = SnapshotReader::new(bytes, bytes.len() as u64)?;
    let index = HammingIndex::load(256, options, &mut r)?;
    r.finish()?;
    Ok(index)
}

fn same_answers(a: &HammingIndex, b: &HammingIndex, rng: &mut impl Rng, centres: &[[u8; 32]]) {
    assert_eq!(a.len(), b.len());
    assert_eq!(a.segments(), b.segments());
    for q in 0..300 {
        let query = if q % 3 == 0 {
            random_hash(rng)
        } else {
            near(rng, centres)
        };
        for radius in [0, 8, 31, 90] {
            assert_eq!(
                a.range_search(&query, radius).unwrap(),
                b.range_search(&query, radius).unwrap(),
                "query {q} radius {radius}"
            );
        }
    }
}

#[test]
fn a_loaded_index_answers_like_the_saved_one_and_keeps_working() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(41);
    let centres: Vec<[u8; 32]> = (0..20).map(|_| random_hash(&mut rng)).collect();
    let mut original = churned(&mut rng, &centres);
    let bytes = save(&original);
    let mut loaded = load(&bytes, options()).unwrap();
    assert!(loaded.len() > 5_000, "{}", loaded.len());
    same_answers(&original, &loaded, &mut rng, &centres);
    for id in [1, 2, 3, 500, 1_000_010] {
        assert_eq!(original.get(id), loaded.get(id), "id {id}");
    }

    // Both go on identically: the pending merge, more inserts, duplicates refused, removals
    // and a compaction.
    for step in 0..3 {
        let batch: Vec<(u64, [u8; 32])> = (0..900)
            .map(|i| (2_000_000 + step * 1_000 + i, near(&mut rng, &centres)))
            .collect();
        for index in [&mut original, &mut loaded] {
            index
                .insert_batch(batch.iter().map(|(id, h)| (*id, h.as_slice())))
                .unwrap();
            while let Some(job) = index.take_merge_job() {
                index.install_merge(job.run());
            }
        }
    }
    let dup = loaded.insert(1_000_000, &[0; 32]).unwrap_err();
    assert_eq!(dup, redline_index::IndexError::DuplicateId(1_000_000));
    for id in 1..4_000u64 {
        assert_eq!(original.remove(id), loaded.remove(id), "remove {id}");
    }
    original.compact();
    loaded.compact();
    same_answers(&original, &loaded, &mut rng, &centres);

    // A snapshot of the loaded index is byte for byte the snapshot of the original.
    assert_eq!(save(&original), save(&loaded));
}

#[test]
fn an_empty_index_round_trips() {
    let empty = HammingIndex::with_options(256, options()).unwrap();
    let loaded = load(&save(&empty), options()).unwrap();
    assert!(loaded.is_empty());
    assert_eq!(loaded.range_search(&[0; 32], 256).unwrap(), vec![]);
}

/// Every single-bit flip over the whole snapshot is refused (by structure or checksum), and so
/// is every truncation; none panics.
#[test]
fn corruption_and_truncation_are_refused() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let centres: Vec<[u8; 32]> = (0..5).map(|_| random_hash(&mut rng)).collect();
    let mut index = HammingIndex::with_options(256, options()).unwrap();
    for id in 0..300 {
        index.insert(id, &near(&mut rng, &centres)).unwrap();
    }
    index.remove(7);
    let clean = save(&index);
    for at in (0..clean.len()).step_by(7) {
        let mut bytes = clean.clone();
        bytes[at] ^= 1 << (at % 8);
        assert!(load(&bytes, options()).is_err(), "flip at byte {at}");
    }
    for cut in (0..clean.len()).step_by(13) {
        let bytes = &clean[..cut];
        let err = (|| {
            let mut r = SnapshotReader::new(bytes, clean.len() as u64)?;
            HammingIndex::load(256, options(), &mut r)?;
            r.finish().map(|_| ())
        })();
        assert!(err.is_err(), "cut at {cut}");
    }
}

/// A structurally valid snapshot whose checksum was fixed up after an edit is still refused
/// when the edit breaks the structure: here a table entry pointing past its segment.
#[test]
fn a_consistent_checksum_does_not_make_a_broken_structure_loadable() {
    // One batch is sealed into one segment with tables, the last section of the snapshot.
    let mut index = HammingIndex::with_options(256, options()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(43);
    let hashes: Vec<[u8; 32]> = (0..20_000).map(|_| random_hash(&mut rng)).collect();
    index
        .insert_batch(
            hashes
                .iter()
                .enumerate()
                .map(|(i, h)| (i as u64, h.as_slice())),
        )
        .unwrap();
    assert_eq!(index.segments().len(), 1);
    let clean = save(&index);
    let body = &clean[..clean.len() - 4];
    // The last 4-byte table entry of the snapshot: the last table's last entry.
    let mut edited = body.to_vec();
    let at = edited.len() - 4;
    edited[at..].copy_from_slice(&u32::MAX.to_le_bytes());
    let crc = crc32(&edited);
    edited.extend_from_slice(&crc.to_le_bytes());
    let err = load(&edited, options()).unwrap_err();
    assert!(
        matches!(err, SnapshotError::Corrupt(ref m) if m.contains("slot past")),
        "{err}"
    );
}

fn crc32(bytes: &[u8]) -> u32 {
    // The same CRC-32 (IEEE) the writer uses, computed bitwise so the test does not share the
    // implementation it checks.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn other_build_options_or_widths_are_incompatible() {
    let index = HammingIndex::with_options(256, options()).unwrap();
    let bytes = save(&index);
    let forced = IndexOptions {
        tables: Some(4),
        ..options()
    };
    assert!(matches!(
        load(&bytes, forced),
        Err(SnapshotError::Incompatible(_))
    ));
    let mut r = SnapshotReader::new(&bytes[..], bytes.len() as u64).unwrap();
    assert!(matches!(
        HammingIndex::load(64, options(), &mut r),
        Err(SnapshotError::Incompatible(_))
    ));
}

#[test]
fn an_exact_index_round_trips() {
    let mut exact = ExactIndex::new(16);
    for id in 0..500u64 {
        exact.insert(id, &[(id % 37) as u8; 16]).unwrap();
    }
    exact.remove(5);
    let mut w = SnapshotWriter::new(Vec::new());
    exact.save(&mut w).unwrap();
    let bytes = w.finish().unwrap();
    let mut r = SnapshotReader::new(&bytes[..], bytes.len() as u64).unwrap();
    let loaded = ExactIndex::load(16, &mut r).unwrap();
    r.finish().unwrap();
    assert_eq!(loaded.len(), 499);
    for k in 0..37u8 {
        assert_eq!(
            loaded.lookup(&[k; 16]).unwrap(),
            exact.lookup(&[k; 16]).unwrap()
        );
    }
}
