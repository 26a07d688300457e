//! The catalog: every active (listed, not retracted) ADD of every origin the node holds, in
//! memory, with a Hamming index per bit-hash signal type and an exact index for md5/sha256.
//!
//! It is the one in-memory view of "what is listed": matching searches it, submissions dedupe
//! against it, and retractions are checked against it. It is derived state, rebuilt from the
//! leaves in sled at start-up (`Node::open`) and updated under each log's writer lock right after
//! a commit is durable, so a hash is matchable as soon as its submit or sync call returns.

use crate::store::OriginId;
use redline_index::{ExactIndex, HammingIndex, IndexOptions, MergeJob};
use redline_proto::signal::{Distance, SignalType};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, Weak};

/// Bits of an entry id holding the log index; the origin id sits above them.
const INDEX_BITS: u32 = 40;

/// The catalog's handle of one log entry.
pub fn entry_id(origin: OriginId, index: u64) -> u64 {
    (u64::from(origin) << INDEX_BITS) | index
}

fn split_id(id: u64) -> (OriginId, u64) {
    ((id >> INDEX_BITS) as OriginId, id & ((1 << INDEX_BITS) - 1))
}

/// An ADD that becomes active.
#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    /// Its log index.
    pub index: u64,
    /// Signal type.
    pub signal_type: SignalType,
    /// Raw hash.
    pub hash: Vec<u8>,
    /// PDQ quality, 0 when unknown.
    pub quality: u32,
    /// Labels.
    pub labels: Vec<String>,
    /// Legal basis.
    pub legal_basis: String,
}

/// Labels and legal basis, shared by the many entries of one submission.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Listing {
    /// Labels such as `ncii`.
    pub labels: Vec<String>,
    /// Legal basis.
    pub legal_basis: String,
}

#[derive(Debug, Clone, Copy)]
struct EntryInfo {
    signal_type: SignalType,
    quality: u8,
    listing: u32,
}

/// One hit of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Origin name.
    pub origin: String,
    /// Log index of the ADD.
    pub index: u64,
    /// The stored hash.
    pub hash: Vec<u8>,
    /// Hamming distance to the query (0 for exact types).
    pub distance: u32,
    /// PDQ quality.
    pub quality: u32,
    /// Labels and legal basis.
    pub listing: Arc<Listing>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Per active entry; millions of u64 keys, so a fast seeded hasher rather than SipHash
    /// (the keys are log positions, not chosen by anyone).
    info: HashMap<u64, EntryInfo, foldhash::fast::RandomState>,
    hamming: HashMap<SignalType, HammingIndex>,
    exact: HashMap<SignalType, ExactIndex>,
    listings: Vec<Arc<Listing>>,
    listing_ids: HashMap<Arc<Listing>, u32>,
    /// The listing interned last: a batch's entries almost always share one, and comparing
    /// with it avoids building and hashing a `Listing` per entry.
    last_listing: Option<u32>,
    active_per_origin: HashMap<OriginId, u64>,
    names: HashMap<OriginId, String>,
    matched: HashSet<OriginId>,
}

/// Index merges producing more slots than this are built on a background thread. Merging keeps
/// queries fast, but at 10M hashes one merge took seconds to build, and built inline it held the
/// catalog's write lock — every Match query and every commit — for all of it.
const BACKGROUND_MERGE_SLOTS: usize = 1 << 18;

/// The catalog (thread-safe).
#[derive(Debug)]
pub struct Catalog {
    /// Shared with the background merge threads, which hold it weakly.
    inner: Arc<RwLock<Inner>>,
    /// See [`BACKGROUND_MERGE_SLOTS`].
    merge_threshold: usize,
}

impl Default for Catalog {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            merge_threshold: BACKGROUND_MERGE_SLOTS,
        }
    }
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares an origin: its name, and whether its entries are matched (policy `accept` or
    /// the node's own) or only replicated.
    pub fn set_origin(&self, origin: OriginId, name: &str, matched: bool) {
        let mut inner = self.inner.write().expect("catalog lock");
        inner.names.insert(origin, name.to_owned());
        if matched {
            inner.matched.insert(origin);
        } else {
            inner.matched.remove(&origin);
        }
    }

    /// Applies one committed batch of `origin`.
    pub fn apply(&self, origin: OriginId, activate: &[Activation], deactivate: &[u64]) {
        let jobs = {
            let mut inner = self.inner.write().expect("catalog lock");
            inner.apply(origin, activate, deactivate, self.merge_threshold);
            inner.take_merge_jobs()
        };
        for (signal_type, job) in jobs {
            spawn_merges(Arc::downgrade(&self.inner), signal_type, job);
        }
    }

    /// Whether the ADD at `index` of `origin` is active.
    pub fn is_active(&self, origin: OriginId, index: u64) -> bool {
        self.inner
            .read()
            .expect("catalog lock")
            .info
            .contains_key(&entry_id(origin, index))
    }

    /// Lowest index of an active ADD of exactly `hash` in `origin`'s log.
    pub fn find_in_origin(
        &self,
        origin: OriginId,
        signal_type: SignalType,
        hash: &[u8],
    ) -> Option<u64> {
        let inner = self.inner.read().expect("catalog lock");
        inner
            .ids_equal(signal_type, hash)
            .into_iter()
            .map(split_id)
            .filter(|(o, _)| *o == origin)
            .map(|(_, i)| i)
            .min()
    }

    /// Active ADDs of `origin`.
    pub fn active_count(&self, origin: OriginId) -> u64 {
        self.inner
            .read()
            .expect("catalog lock")
            .active_per_origin
            .get(&origin)
            .copied()
            .unwrap_or(0)
    }

    /// Every matched entry within `max_distance` of `query` (exact types: equal), sorted by
    /// distance, then origin, then index; one hit per origin and stored hash.
    pub fn search(&self, signal_type: SignalType, query: &[u8], max_distance: u32) -> Vec<Hit> {
        let inner = self.inner.read().expect("catalog lock");
        let pairs: Vec<(u64, u32)> = match signal_type.distance() {
            Distance::Exact => inner
                .ids_equal(signal_type, query)
                .into_iter()
                .map(|id| (id, 0))
                .collect(),
            Distance::Hamming { .. } => inner
                .hamming
                .get(&signal_type)
                .and_then(|ix| ix.range_search(query, max_distance).ok())
                .unwrap_or_default(),
        };
        let mut seen: HashSet<(OriginId, Vec<u8>)> = HashSet::new();
        let mut hits = Vec::new();
        for (id, distance) in pairs {
            let (origin, index) = split_id(id);
            if !inner.matched.contains(&origin) {
                continue;
            }
            let Some(info) = inner.info.get(&id) else {
                continue;
            };
            let hash = inner.hash_of(signal_type, id, query);
            if !seen.insert((origin, hash.clone())) {
                continue;
            }
            hits.push(Hit {
                origin: inner.names.get(&origin).cloned().unwrap_or_default(),
                index,
                hash,
                distance,
                quality: u32::from(info.quality),
                listing: inner.listings[info.listing as usize].clone(),
            });
        }
        hits.sort_by(|a, b| {
            (a.distance, &a.origin, a.index).cmp(&(b.distance, &b.origin, b.index))
        });
        hits
    }

    /// Active entries in all indexes.
    pub fn len(&self) -> usize {
        self.inner.read().expect("catalog lock").info.len()
    }

    /// Whether nothing is active.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate heap bytes of the hash indexes.
    pub fn index_heap_bytes(&self) -> usize {
        let inner = self.inner.read().expect("catalog lock");
        inner
            .hamming
            .values()
            .map(HammingIndex::heap_bytes)
            .sum::<usize>()
            + inner
                .exact
                .values()
                .map(ExactIndex::heap_bytes)
                .sum::<usize>()
    }

    /// Compacts the hash indexes after a bulk load.
    pub fn compact(&self) {
        let mut inner = self.inner.write().expect("catalog lock");
        for ix in inner.hamming.values_mut() {
            ix.compact();
        }
    }
}

/// Builds `job` on a thread of its own, without the catalog lock, installs it under the write
/// lock (a pointer swap), and goes on with the merge the install may have made due, until none
/// is. The index keeps answering exactly from the segments being merged meanwhile. Should no
/// thread be available, the merge is built here instead: late, but never lost.
fn spawn_merges(inner: Weak<RwLock<Inner>>, signal_type: SignalType, job: MergeJob) {
    let run = move |mut job: MergeJob| loop {
        let built = job.run();
        let Some(inner) = inner.upgrade() else { return };
        let mut guard = inner.write().expect("catalog lock");
        let Some(ix) = guard.hamming.get_mut(&signal_type) else {
            return;
        };
        // Refused only when the index was compacted meanwhile: the merge is moot then.
        ix.install_merge(built);
        match ix.take_merge_job() {
            Some(next) => job = next,
            None => return,
        }
    };
    // The job waits here until the thread takes it, so a failed spawn can take it back.
    let handoff = Arc::new(std::sync::Mutex::new(Some(job)));
    let taken = handoff.clone();
    let thread_run = run.clone();
    let spawned = std::thread::Builder::new()
        .name("catalog-merge".into())
        .spawn(move || {
            if let Some(job) = taken.lock().expect("merge handoff").take() {
                thread_run(job);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread for an index merge; building it inline");
        if let Some(job) = handoff.lock().expect("merge handoff").take() {
            run(job);
        }
    }
}

impl Inner {
    fn listing_id(&mut self, labels: &[String], legal_basis: &str) -> u32 {
        if let Some(id) = self.last_listing {
            let last = &self.listings[id as usize];
            if last.labels == labels && last.legal_basis == legal_basis {
                return id;
            }
        }
        let l = Arc::new(Listing {
            labels: labels.to_vec(),
            legal_basis: legal_basis.to_owned(),
        });
        let id = match self.listing_ids.get(&l) {
            Some(&id) => id,
            None => {
                let id = self.listings.len() as u32;
                self.listings.push(l.clone());
                self.listing_ids.insert(l, id);
                id
            }
        };
        self.last_listing = Some(id);
        id
    }

    /// Merge jobs waiting in any Hamming index (at most one per index is handed out at a time).
    fn take_merge_jobs(&mut self) -> Vec<(SignalType, MergeJob)> {
        self.hamming
            .iter_mut()
            .filter_map(|(&t, ix)| ix.take_merge_job().map(|job| (t, job)))
            .collect()
    }

    fn apply(
        &mut self,
        origin: OriginId,
        activate: &[Activation],
        deactivate: &[u64],
        merge_threshold: usize,
    ) {
        // Hamming-indexed hashes go in with one `insert_batch` per type: the index then
        // builds its segments once for the batch instead of sealing and merging small ones
        // every few thousand inserts (most of a large replication's catalog time).
        let mut batches: HashMap<SignalType, Vec<(u64, &[u8])>> = HashMap::new();
        self.info.reserve(activate.len());
        for a in activate {
            let id = entry_id(origin, a.index);
            if self.info.contains_key(&id) {
                continue;
            }
            if a.hash.len() != a.signal_type.byte_len() {
                // Entries are validated before they reach the catalog; this is a bug.
                tracing::error!(
                    origin,
                    index = a.index,
                    "catalog refused a hash of the wrong size"
                );
                continue;
            }
            match a.signal_type.distance() {
                Distance::Exact => {
                    let inserted = self
                        .exact
                        .entry(a.signal_type)
                        .or_insert_with(|| ExactIndex::new(a.signal_type.byte_len()))
                        .insert(id, &a.hash);
                    if let Err(e) = inserted {
                        tracing::error!(error = %e, origin, index = a.index, "catalog refused an entry");
                        continue;
                    }
                }
                Distance::Hamming { .. } => batches
                    .entry(a.signal_type)
                    .or_default()
                    .push((id, &a.hash)),
            }
            let listing = self.listing_id(&a.labels, &a.legal_basis);
            self.info.insert(
                id,
                EntryInfo {
                    signal_type: a.signal_type,
                    quality: a.quality.min(100) as u8,
                    listing,
                },
            );
            *self.active_per_origin.entry(origin).or_default() += 1;
        }
        for (signal_type, items) in batches {
            let ix = self.hamming.entry(signal_type).or_insert_with(|| {
                let options = IndexOptions {
                    background_merge_threshold: Some(merge_threshold),
                    ..IndexOptions::default()
                };
                HammingIndex::with_options(signal_type.byte_len() as u32 * 8, options)
                    .expect("signal types have supported widths")
            });
            if let Err(e) = ix.insert_batch(items.iter().copied()) {
                // Unreachable (sizes checked, ids new); should it happen, keep the catalog
                // consistent: forget what the index did not take.
                tracing::error!(error = %e, origin, "catalog index refused a batch");
                for (id, _) in items {
                    if !ix.contains(id) && self.info.remove(&id).is_some() {
                        if let Some(n) = self.active_per_origin.get_mut(&origin) {
                            *n = n.saturating_sub(1);
                        }
                    }
                }
            }
        }
        for &index in deactivate {
            let id = entry_id(origin, index);
            let Some(info) = self.info.remove(&id) else {
                continue;
            };
            match info.signal_type.distance() {
                Distance::Exact => {
                    if let Some(ix) = self.exact.get_mut(&info.signal_type) {
                        ix.remove(id);
                    }
                }
                Distance::Hamming { .. } => {
                    if let Some(ix) = self.hamming.get_mut(&info.signal_type) {
                        ix.remove(id);
                    }
                }
            }
            if let Some(n) = self.active_per_origin.get_mut(&origin) {
                *n = n.saturating_sub(1);
            }
        }
    }

    fn ids_equal(&self, signal_type: SignalType, hash: &[u8]) -> Vec<u64> {
        match signal_type.distance() {
            Distance::Exact => self
                .exact
                .get(&signal_type)
                .and_then(|ix| ix.lookup(hash).ok())
                .unwrap_or_default(),
            Distance::Hamming { .. } => self
                .hamming
                .get(&signal_type)
                .and_then(|ix| ix.range_search(hash, 0).ok())
                .map(|v| v.into_iter().map(|(id, _)| id).collect())
                .unwrap_or_default(),
        }
    }

    fn hash_of(&self, signal_type: SignalType, id: u64, query: &[u8]) -> Vec<u8> {
        match signal_type.distance() {
            // Exact hits equal the query.
            Distance::Exact => query.to_vec(),
            Distance::Hamming { .. } => self
                .hamming
                .get(&signal_type)
                .and_then(|ix| ix.get(id))
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(index: u64, hash: [u8; 32]) -> Activation {
        Activation {
            index,
            signal_type: SignalType::Pdq,
            hash: hash.to_vec(),
            quality: 90,
            labels: vec!["ncii".into()],
            legal_basis: "law".into(),
        }
    }

    #[test]
    fn search_names_each_origin_once_and_respects_policy_and_retraction() {
        let c = Catalog::new();
        c.set_origin(0, "uk.example", true);
        c.set_origin(1, "kr.example", true);
        c.set_origin(2, "br.example", false);
        let h = [0x55u8; 32];
        let mut near = h;
        near[0] ^= 0b111;
        c.apply(0, &[act(3, h), act(4, h)], &[]);
        c.apply(1, &[act(0, near)], &[]);
        c.apply(2, &[act(0, h)], &[]);
        let hits = c.search(SignalType::Pdq, &h, 31);
        let names: Vec<(&str, u64, u32)> = hits
            .iter()
            .map(|h| (h.origin.as_str(), h.index, h.distance))
            .collect();
        assert_eq!(names, vec![("uk.example", 3, 0), ("kr.example", 0, 3)]);
        assert_eq!(c.find_in_origin(0, SignalType::Pdq, &h), Some(3));
        assert_eq!(c.find_in_origin(1, SignalType::Pdq, &near), Some(0));
        c.apply(0, &[], &[3]);
        assert!(!c.is_active(0, 3));
        assert_eq!(c.search(SignalType::Pdq, &h, 0)[0].index, 4);
        c.apply(0, &[], &[4]);
        c.apply(1, &[], &[0]);
        assert!(c.search(SignalType::Pdq, &h, 31).is_empty());
        assert_eq!(c.active_count(0), 0);
    }

    /// Large merges run on background threads: while they run and after they are installed,
    /// searches return exactly the brute-force answer, and retractions made meanwhile hold.
    #[test]
    fn background_merges_keep_searches_exact() {
        use rand::{Rng, SeedableRng};
        let c = Catalog {
            merge_threshold: 64,
            ..Catalog::default()
        };
        c.set_origin(0, "uk.example", true);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut stored: Vec<(u64, [u8; 32])> = Vec::new();
        let queries: Vec<[u8; 32]> = (0..20).map(|_| rng.gen()).collect();
        let check = |stored: &[(u64, [u8; 32])]| {
            for q in &queries {
                let mut want: Vec<(u32, u64)> = stored
                    .iter()
                    .map(|(i, h)| (redline_index::hamming_distance(q, h).unwrap(), *i))
                    .filter(|&(d, _)| d <= 110)
                    .collect();
                want.sort_unstable();
                let got: Vec<(u32, u64)> = c
                    .search(SignalType::Pdq, q, 110)
                    .iter()
                    .map(|h| (h.distance, h.index))
                    .collect();
                assert_eq!(got, want);
            }
        };
        for batch in 0..60u64 {
            let adds: Vec<Activation> = (0..100).map(|i| act(batch * 100 + i, rng.gen())).collect();
            stored.extend(
                adds.iter()
                    .map(|a| (a.index, a.hash.clone().try_into().unwrap())),
            );
            let retract: Vec<u64> = if batch % 5 == 4 {
                let gone = stored.remove(rng.gen_range(0..stored.len())).0;
                vec![gone]
            } else {
                vec![]
            };
            c.apply(0, &adds, &retract);
            check(&stored);
        }
        let stats = || c.inner.read().unwrap().hamming[&SignalType::Pdq].merge_stats();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while stats().jobs_installed + stats().jobs_rejected < stats().jobs_taken {
            assert!(
                std::time::Instant::now() < deadline,
                "merges never finished"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let s = stats();
        assert!(
            s.jobs_installed > 0,
            "no merge ran in the background: {s:?}"
        );
        assert!(
            s.largest_inline_merge <= 64,
            "a large merge ran inline: {s:?}"
        );
        check(&stored);
    }

    #[test]
    fn own_origin_duplicates_are_found_by_exact_lookup_until_retracted() {
        let c = Catalog::new();
        c.set_origin(0, "uk.example", true);
        let h = [9u8; 32];
        let md5 = Activation {
            signal_type: SignalType::Md5,
            hash: vec![1; 16],
            ..act(1, [0; 32])
        };
        c.apply(0, &[act(0, h), md5], &[]);
        assert_eq!(c.find_in_origin(0, SignalType::Pdq, &h), Some(0));
        assert_eq!(c.find_in_origin(0, SignalType::Md5, &[1; 16]), Some(1));
        let mut near = h;
        near[0] ^= 1;
        assert_eq!(
            c.find_in_origin(0, SignalType::Pdq, &near),
            None,
            "exact, not near"
        );
        c.apply(0, &[], &[0, 1]);
        assert_eq!(c.find_in_origin(0, SignalType::Pdq, &h), None);
        assert_eq!(c.find_in_origin(0, SignalType::Md5, &[1; 16]), None);
    }

    #[test]
    fn exact_types_match_only_equal_values() {
        let c = Catalog::new();
        c.set_origin(0, "uk.example", true);
        let md5 = Activation {
            signal_type: SignalType::Md5,
            hash: vec![1; 16],
            ..act(0, [0; 32])
        };
        c.apply(0, &[md5], &[]);
        assert_eq!(c.search(SignalType::Md5, &[1; 16], 31).len(), 1);
        let mut other = [1u8; 16];
        other[0] = 0;
        assert!(c.search(SignalType::Md5, &other, 31).is_empty());
    }
}
