//! The evidence tree: refused peer material, bounded in bytes.
//!
//! | key                 | value                                              |
//! |---------------------|----------------------------------------------------|
//! | `R` id (u64)        | flags (u8: bit 0 = proven), fingerprint (32), record |
//! | `D` fingerprint (32)| id (u64)                                           |
//!
//! `R` records are in id order (ids come from sled's monotonic `generate_id`), so the oldest is
//! first and a page of the newest is a reverse range scan. `D` makes deduplication exact and
//! durable: a record whose fingerprint is already stored is not stored again.
//!
//! The store keeps a byte budget: before a record is added, the oldest records that are not
//! *proven* are removed until it fits. Proven records (proof of equivocation) are never
//! removed; a proven record is stored even when only proven records are left in the budget
//! (there are about as many as trusted origins: an origin is frozen once proven), an unproven
//! one is then refused. The totals (records, bytes, proven) are counted once when the store
//! opens and then kept as counters under the same lock as every evidence write, so reading them
//! (`/metrics`, `Status`) costs nothing.
//!
//! Records written by format 1 of this tree (`evidence`: id -> record, no budget, notes stored
//! whole) are converted once at open by [`Store::migrate_legacy_evidence`].
//!
//! Writes do not wait for the disk: sled writes them out within its flush interval (500 ms)
//! and at shutdown. Evidence explains a refusal that has already happened; a crash in that
//! window loses the record, not any log data, and a peer that keeps lying is recorded again.

use super::{corrupt, Result, Store};
use std::sync::{Arc, Mutex};

/// Name of the evidence tree.
pub(super) const TREE: &str = "evidence_v2";
/// Name of the format-1 evidence tree, converted at open.
const LEGACY_TREE: &str = "evidence";

const RECORD: u8 = b'R';
const DEDUP: u8 = b'D';
const PROVEN: u8 = 1;
/// Flags and fingerprint in front of a record.
const HEADER: usize = 1 + 32;
/// Bytes a record costs besides its value: its `R` key, and its `D` key and value.
const KEY_OVERHEAD: u64 = 9 + 33 + 8;

/// One evidence record to store.
#[derive(Debug, Clone)]
pub struct EvidenceEntry {
    /// What it is deduplicated by.
    pub fingerprint: [u8; 32],
    /// Proof of equivocation: never evicted.
    pub proven: bool,
    /// The encoded record (opaque here).
    pub record: Vec<u8>,
}

/// One stored evidence record.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvidence {
    /// Its id (increasing with time).
    pub id: u64,
    /// See [`EvidenceEntry::proven`].
    pub proven: bool,
    /// See [`EvidenceEntry::fingerprint`].
    pub fingerprint: [u8; 32],
    /// The encoded record.
    pub record: Vec<u8>,
}

/// What the evidence tree holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvidenceTotals {
    /// Records.
    pub records: u64,
    /// Bytes they cost (values plus keys), what the budget counts.
    pub bytes: u64,
    /// Proven records among them.
    pub proven: u64,
}

impl EvidenceTotals {
    fn add(&mut self, value_len: usize, proven: bool) {
        self.records += 1;
        self.bytes += cost(value_len);
        self.proven += u64::from(proven);
    }

    fn remove(&mut self, value_len: usize, proven: bool) {
        self.records -= 1;
        self.bytes -= cost(value_len);
        self.proven -= u64::from(proven);
    }
}

/// What became of an evidence record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceAdded {
    /// Stored under this id, after removing `evicted` older unproven records.
    Stored {
        /// Its id.
        id: u64,
        /// Records removed to make room.
        evicted: u64,
    },
    /// A record with the same fingerprint is already stored (this id).
    Duplicate(u64),
    /// Not stored: it does not fit the budget even with every unproven record removed.
    OverBudget,
}

/// The evidence part of a [`Store`]: the tree and its counters.
#[derive(Debug, Clone)]
pub(super) struct EvidenceTree {
    tree: sled::Tree,
    /// Also the lock every evidence write takes, so the counters never drift.
    totals: Arc<Mutex<EvidenceTotals>>,
}

fn cost(value_len: usize) -> u64 {
    value_len as u64 + KEY_OVERHEAD
}

fn record_key(id: u64) -> [u8; 9] {
    let mut k = [RECORD; 9];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

fn dedup_key(fingerprint: &[u8; 32]) -> [u8; 33] {
    let mut k = [DEDUP; 33];
    k[1..].copy_from_slice(fingerprint);
    k
}

fn parse(key: &[u8], value: &[u8]) -> Result<StoredEvidence> {
    let id = key
        .get(1..)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| corrupt("evidence key", "not R + 8 bytes"))?;
    if value.len() < HEADER {
        return Err(corrupt(
            "evidence record",
            format!("{id} is shorter than its header"),
        ));
    }
    Ok(StoredEvidence {
        id,
        proven: value[0] & PROVEN != 0,
        fingerprint: value[1..HEADER].try_into().expect("32 bytes"),
        record: value[HEADER..].to_vec(),
    })
}

/// Counts the tree with a full scan (at open, and in tests against the counters).
fn scan(tree: &sled::Tree) -> Result<EvidenceTotals> {
    let mut t = EvidenceTotals::default();
    for item in tree.scan_prefix([RECORD]) {
        let (_, v) = item?;
        let proven = v
            .first()
            .ok_or_else(|| corrupt("evidence record", "empty"))?
            & PROVEN
            != 0;
        t.add(v.len(), proven);
    }
    Ok(t)
}

impl EvidenceTree {
    pub(super) fn open(db: &sled::Db) -> Result<Self> {
        let tree = db.open_tree(TREE)?;
        let totals = scan(&tree)?;
        Ok(Self {
            tree,
            totals: Arc::new(Mutex::new(totals)),
        })
    }
}

impl Store {
    /// Stores an evidence record within `max_bytes` (see the module documentation).
    pub fn add_evidence(&self, e: &EvidenceEntry, max_bytes: u64) -> Result<EvidenceAdded> {
        let id = self.db.generate_id()?;
        self.put_evidence(id, e, max_bytes)
    }

    fn put_evidence(&self, id: u64, e: &EvidenceEntry, max_bytes: u64) -> Result<EvidenceAdded> {
        let ev = &self.evidence;
        let mut totals = ev.totals.lock().expect("evidence lock");
        if let Some(v) = ev.tree.get(dedup_key(&e.fingerprint))? {
            let id = <[u8; 8]>::try_from(v.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| corrupt("evidence index", "not 8 bytes"))?;
            return Ok(EvidenceAdded::Duplicate(id));
        }
        let value_len = HEADER + e.record.len();
        let mut after = *totals;
        let mut batch = sled::Batch::default();
        let mut evicted = 0;
        if after.bytes + cost(value_len) > max_bytes {
            for item in ev.tree.scan_prefix([RECORD]) {
                if after.bytes + cost(value_len) <= max_bytes {
                    break;
                }
                let (k, v) = item?;
                let old = parse(&k, &v)?;
                if old.proven {
                    continue;
                }
                batch.remove(&k);
                batch.remove(&dedup_key(&old.fingerprint)[..]);
                after.remove(v.len(), false);
                evicted += 1;
            }
            if after.bytes + cost(value_len) > max_bytes && !e.proven {
                return Ok(EvidenceAdded::OverBudget);
            }
        }
        let mut value = Vec::with_capacity(value_len);
        value.push(if e.proven { PROVEN } else { 0 });
        value.extend_from_slice(&e.fingerprint);
        value.extend_from_slice(&e.record);
        batch.insert(&record_key(id)[..], value);
        batch.insert(&dedup_key(&e.fingerprint)[..], &id.to_be_bytes()[..]);
        ev.tree.apply_batch(batch)?;
        after.add(value_len, e.proven);
        *totals = after;
        Ok(EvidenceAdded::Stored { id, evicted })
    }

    /// Whether a record with this fingerprint is stored.
    pub fn has_evidence(&self, fingerprint: &[u8; 32]) -> Result<bool> {
        Ok(self.evidence.tree.contains_key(dedup_key(fingerprint))?)
    }

    /// Evidence records, newest first, starting below id `before` (from the newest when
    /// `None`); read lazily.
    pub fn evidence_newest_first(
        &self,
        before: Option<u64>,
    ) -> impl Iterator<Item = Result<StoredEvidence>> + Send + 'static {
        let end = before.map_or([RECORD + 1, 0, 0, 0, 0, 0, 0, 0, 0], record_key);
        self.evidence
            .tree
            .range(record_key(0)..end)
            .rev()
            .map(|item| {
                let (k, v) = item?;
                parse(&k, &v)
            })
    }

    /// The evidence counters (no scan).
    pub fn evidence_totals(&self) -> EvidenceTotals {
        *self.evidence.totals.lock().expect("evidence lock")
    }

    /// The evidence totals counted with a full scan (what the counters must equal).
    pub fn evidence_totals_scanned(&self) -> Result<EvidenceTotals> {
        scan(&self.evidence.tree)
    }

    /// Converts the records of the format-1 evidence tree (if there is one) with `convert`
    /// (given a record's bytes; `None` drops it), keeping their ids and order, within
    /// `max_bytes`, then removes that tree. Returns how many records were converted.
    pub fn migrate_legacy_evidence(
        &self,
        max_bytes: u64,
        mut convert: impl FnMut(&[u8]) -> Option<EvidenceEntry>,
    ) -> Result<u64> {
        if !self
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == LEGACY_TREE.as_bytes())
        {
            return Ok(0);
        }
        let legacy = self.db.open_tree(LEGACY_TREE)?;
        let mut converted = 0;
        for item in legacy.iter() {
            let (k, v) = item?;
            let id = <[u8; 8]>::try_from(k.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| corrupt("legacy evidence id", "not 8 bytes"))?;
            if let Some(e) = convert(&v) {
                if matches!(
                    self.put_evidence(id, &e, max_bytes)?,
                    EvidenceAdded::Stored { .. }
                ) {
                    converted += 1;
                }
            }
        }
        drop(legacy);
        self.db.drop_tree(LEGACY_TREE)?;
        self.db.flush()?;
        Ok(converted)
    }

    /// Writes one record in the format-1 layout (for the migration's tests).
    #[doc(hidden)]
    pub fn add_legacy_evidence(&self, record: &[u8]) -> Result<u64> {
        let id = self.db.generate_id()?;
        self.db
            .open_tree(LEGACY_TREE)?
            .insert(id.to_be_bytes(), record)?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, len: usize, proven: bool) -> EvidenceEntry {
        EvidenceEntry {
            fingerprint: [n; 32],
            proven,
            record: vec![n; len],
        }
    }

    fn ids(store: &Store) -> Vec<u64> {
        store
            .evidence_newest_first(None)
            .map(|r| r.unwrap().id)
            .collect()
    }

    #[test]
    fn the_oldest_unproven_go_first_and_proven_records_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let per = cost(HEADER + 1000);
        let budget = per * 4;
        let stored = |e: &EvidenceEntry| match store.add_evidence(e, budget).unwrap() {
            EvidenceAdded::Stored { id, evicted } => (id, evicted),
            other => panic!("{other:?}"),
        };
        let (proof, _) = stored(&entry(0, 1000, true));
        let (a, _) = stored(&entry(1, 1000, false));
        let (b, _) = stored(&entry(2, 1000, false));
        let (c, _) = stored(&entry(3, 1000, false));
        // Full: the next one evicts the oldest unproven (a), never the older proof.
        let (d, evicted) = stored(&entry(4, 1000, false));
        assert_eq!(evicted, 1);
        assert_eq!(ids(&store), vec![d, c, b, proof]);
        assert!(!ids(&store).contains(&a));
        // A record twice the size evicts the two oldest unproven.
        let (e, evicted) = stored(&entry(5, 2000 + HEADER + KEY_OVERHEAD as usize, false));
        assert_eq!(evicted, 2);
        assert_eq!(ids(&store), vec![e, d, proof]);
        // An evicted record's fingerprint is free again; a stored one is a duplicate.
        assert!(!store.has_evidence(&[1; 32]).unwrap());
        assert_eq!(
            store.add_evidence(&entry(4, 1000, false), budget).unwrap(),
            EvidenceAdded::Duplicate(d)
        );
        // Proof is stored even past the budget; then an unproven record that cannot fit with
        // only proofs left is refused, and nothing is evicted for it.
        for n in 10..14 {
            stored(&entry(n, 1000, true));
        }
        assert_eq!(store.evidence_totals().proven, 5);
        assert!(store.evidence_totals().bytes > budget);
        assert_eq!(
            store.add_evidence(&entry(20, 1000, false), budget).unwrap(),
            EvidenceAdded::OverBudget
        );
        let left = store.evidence_totals();
        assert_eq!((left.records, left.proven), (5, 5));
        assert_eq!(left, store.evidence_totals_scanned().unwrap());
    }

    #[test]
    fn counters_equal_a_full_scan_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let budget = 50_000;
        let before = {
            let store = Store::open(dir.path()).unwrap();
            for n in 0..120u8 {
                let len = 100 + (n as usize * 37) % 900;
                store
                    .add_evidence(&entry(n, len, n % 17 == 0), budget)
                    .unwrap();
                assert_eq!(
                    store.evidence_totals(),
                    store.evidence_totals_scanned().unwrap()
                );
            }
            store.flush().unwrap();
            store.evidence_totals()
        };
        assert!(before.bytes <= budget && before.proven == 8, "{before:?}");
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.evidence_totals(), before);
        assert_eq!(store.evidence_totals_scanned().unwrap(), before);
    }

    #[test]
    fn legacy_records_are_converted_once_keeping_their_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old: Vec<u64> = (0..3u8)
            .map(|n| store.add_legacy_evidence(&[n; 10]).unwrap())
            .collect();
        let n = store
            .migrate_legacy_evidence(1 << 20, |r| Some(entry(r[0], 5, r[0] == 1)))
            .unwrap();
        assert_eq!(n, 3);
        let mut back = ids(&store);
        back.reverse();
        assert_eq!(back, old);
        assert_eq!(store.migrate_legacy_evidence(1 << 20, |_| None).unwrap(), 0);
        assert_eq!(store.evidence_totals().proven, 1);
    }
}
