//! The store's on-disk format, as one suite in the style of Garage's per-backend `test_suite`:
//! every case runs against a real sled directory, through the public `Store` API only, and
//! checks what a restarted node would read back. The format being pinned: leaves and stored
//! Merkle hashes are kept `BUNDLE` (256) per sled key, a commit extends a partial last bundle and
//! starts whole new ones, and a commit is one atomic batch with its checkpoint.

use redline_proto::merkle::{self, leaf_hash, Hash, MemoryHashes};
use redline_server::store::{
    Commit, EvidenceAdded, EvidenceEntry, OriginId, PrefixProof, Store, StoreError,
    StoredCheckpoint, StoredEvidence, BUNDLE,
};
use std::path::Path;

/// A log being written to a store, mirrored in memory to check what comes back.
struct Writer {
    id: OriginId,
    name: String,
    mirror: MemoryHashes,
    leaves: Vec<Vec<u8>>,
}

impl Writer {
    fn new(id: OriginId, name: &str) -> Self {
        Self {
            id,
            name: name.into(),
            mirror: MemoryHashes::new(),
            leaves: Vec::new(),
        }
    }

    /// Commits `n` more leaves of varying length (so bundle framing is exercised).
    fn commit(&mut self, store: &Store, n: usize) {
        let first = self.leaves.len() as u64;
        let new: Vec<Vec<u8>> = (0..n as u64)
            .map(|i| {
                let index = first + i;
                let len = (index % 97) as usize;
                let mut leaf = index.to_be_bytes().to_vec();
                leaf.extend(std::iter::repeat_n((index % 251) as u8, len));
                leaf
            })
            .collect();
        let hashes: Vec<Hash> = new.iter().map(|l| leaf_hash(l)).collect();
        let added = store
            .with_hashes(self.id, |base| merkle::append_leaves(first, &hashes, base))
            .unwrap()
            .unwrap();
        for l in &new {
            self.mirror.push_leaf(l);
        }
        let size = self.mirror.size();
        store
            .commit_blocking(Commit {
                origin: self.id,
                origin_name: self.name.clone(),
                register: first == 0,
                first_index: first,
                leaves: new.clone(),
                first_hash_index: merkle::stored_hash_index(0, first),
                hashes: added,
                checkpoint: StoredCheckpoint {
                    size,
                    root: self.mirror.root(),
                    note: format!("note {size}").into_bytes(),
                    proof: None,
                },
            })
            .unwrap();
        self.leaves.extend(new);
    }

    /// Everything a reader can ask of the store agrees with the mirror.
    fn check(&self, store: &Store) {
        let size = self.leaves.len() as u64;
        let record = store
            .origins()
            .unwrap()
            .into_iter()
            .find(|r| r.id == self.id)
            .expect("origin registered");
        assert_eq!(record.name, self.name);
        let cp = record.checkpoint.expect("checkpoint stored");
        assert_eq!((cp.size, cp.root), (size, self.mirror.root()));
        assert_eq!(cp.note, format!("note {size}").into_bytes());
        // Point reads at and around every bundle boundary, and past the end.
        for index in (0..size).filter(|i| i % BUNDLE < 2 || i % BUNDLE >= BUNDLE - 2 || *i < 3) {
            assert_eq!(
                store.leaf(self.id, index).unwrap().as_deref(),
                Some(self.leaves[index as usize].as_slice()),
                "leaf {index}"
            );
        }
        assert_eq!(store.leaf(self.id, size).unwrap(), None, "past the end");
        // Range reads starting and ending inside bundles, across several of them.
        for (start, end) in [
            (0, size),
            (1, size.min(3)),
            (BUNDLE - 1, size.min(BUNDLE + 1)),
            (size / 3, size - size / 4),
            (size, size),
            (5, 2),
        ] {
            let start = start.min(size);
            let got: Vec<(u64, Vec<u8>)> = store
                .leaves(self.id, start, end)
                .collect::<Result<_, _>>()
                .unwrap();
            let want: Vec<(u64, Vec<u8>)> = (start..end.min(size))
                .map(|i| (i, self.leaves[i as usize].clone()))
                .collect();
            assert_eq!(got, want, "leaves [{start}, {end})");
        }
        // The stored hashes give the same root and proofs as the mirror at every bundle edge.
        let root = store
            .with_hashes(self.id, |h| merkle::tree_root(size, h))
            .unwrap()
            .unwrap();
        assert_eq!(root, self.mirror.root());
        for old in [1, BUNDLE - 1, BUNDLE, BUNDLE + 1, size].map(|s| s.min(size)) {
            if old == 0 {
                continue;
            }
            let stored = store
                .with_hashes(self.id, |h| merkle::consistency_proof(old, size, h))
                .unwrap()
                .unwrap();
            assert_eq!(
                stored,
                merkle::consistency_proof(old, size, &self.mirror).unwrap()
            );
        }
    }
}

fn open(dir: &Path) -> Store {
    Store::open(&dir.join("db")).unwrap()
}

#[test]
fn bundles_fill_exactly_and_partial_bundles_are_extended() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut w = Writer::new(0, "a.example");
    // Exactly one bundle, then a partial one, then leaf by leaf across the next boundary,
    // then one large commit spanning several bundles and ending mid-bundle.
    w.commit(&store, BUNDLE as usize);
    w.check(&store);
    w.commit(&store, 10);
    w.check(&store);
    for _ in 0..(BUNDLE as usize - 10 + 3) {
        w.commit(&store, 1);
    }
    w.check(&store);
    w.commit(&store, 3 * BUNDLE as usize + 17);
    w.check(&store);
}

#[test]
fn everything_reads_back_the_same_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Writer::new(0, "a.example");
    let mut b = Writer::new(1, "b.example");
    {
        let store = open(dir.path());
        a.commit(&store, 300);
        b.commit(&store, 7);
        a.commit(&store, 5);
        store.flush().unwrap();
    }
    let store = open(dir.path());
    a.check(&store);
    b.check(&store);
    assert_eq!(store.next_origin_id().unwrap(), 2);
    // A reopened store goes on extending the partial bundles it left.
    a.commit(&store, BUNDLE as usize);
    b.commit(&store, 1);
    drop(store);
    let store = open(dir.path());
    a.check(&store);
    b.check(&store);
}

#[test]
fn a_commit_that_does_not_continue_the_log_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut w = Writer::new(0, "a.example");
    w.commit(&store, 10);
    // A commit claiming to start at leaf 12 of a 10-leaf log (a partial bundle of the wrong
    // length) is corrupt input, not a write.
    let err = store
        .commit_blocking(Commit {
            origin: 0,
            origin_name: "a.example".into(),
            register: false,
            first_index: 12,
            leaves: vec![b"x".to_vec()],
            first_hash_index: merkle::stored_hash_index(0, 12),
            hashes: vec![leaf_hash(b"x")],
            checkpoint: StoredCheckpoint {
                size: 13,
                root: Hash([0; 32]),
                note: b"forged".to_vec(),
                proof: None,
            },
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    w.check(&store);
}

/// Opens the store's sled directory directly, as another release would. sled lets go of its
/// directory lock from its flusher thread a little after the last handle drops, so the open is
/// retried for a bounded time (what `Store::open` itself does), instead of racing that thread.
fn open_raw_sled(path: &std::path::Path) -> sled::Db {
    let started = std::time::Instant::now();
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e) if started.elapsed() < std::time::Duration::from_secs(10) => {
                assert!(e.to_string().contains("could not acquire lock"), "{e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("sled lock still held after 10 s: {e}"),
        }
    }
}

#[test]
fn an_unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        Writer::new(0, "a.example").commit(&store, 3);
        store.flush().unwrap();
    }
    // Rewrite the format marker the way a newer release would.
    {
        let db = open_raw_sled(&dir.path().join("db"));
        let log = db.open_tree("log").unwrap();
        log.insert(
            redline_server::store::keys::Key::format(),
            &99u32.to_be_bytes(),
        )
        .unwrap();
        db.flush().unwrap();
    }
    match Store::open(&dir.path().join("db")) {
        Err(StoreError::Format { found, .. }) => assert_eq!(found, 99),
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn evidence_ids_grow_and_records_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |i: u8| EvidenceEntry {
        fingerprint: [i; 32],
        proven: i == 2,
        record: vec![i; 3],
    };
    let ids: Vec<u64> = {
        let store = open(dir.path());
        (0..5u8)
            .map(|i| match store.add_evidence(&entry(i), 1 << 20).unwrap() {
                EvidenceAdded::Stored { id, evicted: 0 } => id,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let store = open(dir.path());
    let read: Vec<StoredEvidence> = store
        .evidence_newest_first(None)
        .collect::<Result<_, _>>()
        .unwrap();
    let want: Vec<StoredEvidence> = ids
        .iter()
        .zip(0..5u8)
        .rev()
        .map(|(&id, i)| StoredEvidence {
            id,
            proven: i == 2,
            fingerprint: [i; 32],
            record: vec![i; 3],
        })
        .collect();
    assert_eq!(read, want);
    let totals = store.evidence_totals();
    assert_eq!((totals.records, totals.proven), (5, 1));
    assert_eq!(totals, store.evidence_totals_scanned().unwrap());
    assert_eq!(
        store.add_evidence(&entry(3), 1 << 20).unwrap(),
        EvidenceAdded::Duplicate(ids[3])
    );
}

/// A prefix committed by a catch-up in steps keeps the proof beside its checkpoint (read back
/// after a restart), and the first commit of a tree the note signs exactly removes it.
#[test]
fn a_prefix_proof_is_kept_with_its_checkpoint_until_a_fully_signed_commit() {
    let dir = tempfile::tempdir().unwrap();
    let proof = PrefixProof {
        signed_size: 1000,
        signed_root: Hash([7; 32]),
        hashes: vec![Hash([1; 32]), Hash([2; 32]), Hash([3; 32])],
    };
    let mut w = Writer::new(0, "a.example");
    {
        let store = open(dir.path());
        w.commit(&store, 300);
        // Rewrite the checkpoint as a proven prefix (what the replica commits for a step).
        let size = w.leaves.len() as u64;
        store
            .commit_blocking(Commit {
                origin: 0,
                origin_name: "a.example".into(),
                register: false,
                first_index: size,
                leaves: Vec::new(),
                first_hash_index: merkle::stored_hash_index(0, size),
                hashes: Vec::new(),
                checkpoint: StoredCheckpoint {
                    size,
                    root: w.mirror.root(),
                    note: format!("note {size}").into_bytes(),
                    proof: Some(proof.clone()),
                },
            })
            .unwrap();
        store.flush().unwrap();
    }
    let store = open(dir.path());
    let cp = store.origins().unwrap()[0].checkpoint.clone().unwrap();
    assert_eq!(cp.proof.as_ref(), Some(&proof));
    assert!(!cp.offerable(), "a prefix's note is offered to peers");
    w.check(&store);
    // The next step reaches the signed tree: its checkpoint has no proof, and none is left.
    w.commit(&store, 10);
    drop(store);
    let store = open(dir.path());
    let cp = store.origins().unwrap()[0].checkpoint.clone().unwrap();
    assert_eq!(cp.proof, None);
    assert!(cp.offerable());
    w.check(&store);
}
