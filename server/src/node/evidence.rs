//! Evidence: what peers sent that was refused, kept with the signed notes that prove it, and
//! the origins frozen after proof of equivocation.
//!
//! What a hostile peer can make the node keep is bounded four ways:
//! - **by content**: a record is deduplicated by a [`fingerprint`] of the material itself
//!   (reason, origin, the SHA-256 of each note), never by what the sender says about itself or
//!   the detail text, so a peer repeating a lie under new names or from new connections does
//!   not add records;
//! - **by size**: a note longer than [`NOTE_PREFIX_BYTES`] is kept as that prefix with its
//!   length and SHA-256 (a checkpoint note that verifies is at most 16 KiB; a multi-MiB "note"
//!   proves nothing beyond its digest), and peer and detail texts are cut short;
//! - **by rate**: new records per `(origin, reason)` are rate-limited, so a peer telling a
//!   *different* lie every time does not fill the store either (refusals over the limit are
//!   still counted in metrics and logged, just not stored);
//! - **by bytes**: the store keeps `[evidence] max_bytes`, evicting the oldest records that
//!   prove nothing first (`store::evidence`).
//!
//! Proof of equivocation (two validly signed checkpoints that disagree) is exempt from the
//! last three: its notes are kept whole, it is never rate-limited and never evicted. It is
//! self-limiting, since the origin is frozen once it is proven.
//!
//! Listing is paged, newest first, and runs on the blocking pool; each page stays within a byte
//! bound so it always fits the response limit.

use super::{blocking, now_ms, NodeError, Result};
use crate::metrics::Metrics;
use crate::store::{EvidenceAdded, EvidenceEntry, EvidenceTotals, Store};
use prost::Message;
use redline_proto::pb;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// New evidence records allowed at once per `(origin, reason)`, and one more per
/// `EVIDENCE_REFILL_MS`. Honest trouble produces a handful (one per lie per checkpoint the
/// origin signs); the limit is for a peer that makes up a new lie on every message.
const EVIDENCE_BURST: f64 = 32.0;
const EVIDENCE_REFILL_MS: f64 = 5_000.0;

/// Bytes kept of a note that is longer (and of every note of a record that proves nothing):
/// enough to show what was sent (a checkpoint's origin, size and root lines and the start of
/// its signatures), with the whole note's length and SHA-256 beside it.
pub const NOTE_PREFIX_BYTES: usize = 4096;

/// Characters kept of the `peer` and `detail` texts of a record.
const MAX_PEER_CHARS: usize = 256;
const MAX_DETAIL_CHARS: usize = 2048;

/// Records per page when the caller asks for none, and the most a page holds.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// See [`DEFAULT_PAGE_SIZE`].
pub const MAX_PAGE_SIZE: usize = 1000;
/// Most records read for one page (those of other origins are skipped): a page filtered by
/// origin over a store of other origins' records ends early, with a token to go on.
const MAX_SCANNED_PER_PAGE: usize = 10_000;

/// Why peer material was refused (the `reason` of an evidence record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A checkpoint whose signature does not verify against the origin's trusted key.
    BadSignature,
    /// A validly signed checkpoint of this node's own origin, ahead of it.
    OwnOriginAhead,
    /// Two validly signed checkpoints of one origin that are not consistent.
    Equivocation,
    /// Entries that are not what was asked for (wrong index, oversized, a stream cut short).
    BadEntries,
    /// A checkpoint too far ahead to fetch within `sync.max_fetch_bytes`.
    TooLarge,
    /// Entries that do not hash to the signed root.
    RootMismatch,
    /// Signed entries that break the log's rules: kept in the log, never matched.
    InvalidEntries,
    /// A peer going back to an older checkpoint than it offered before.
    Rollback,
}

impl Reason {
    /// Name stored in the record and used as the metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Reason::BadSignature => "bad_signature",
            Reason::OwnOriginAhead => "own_origin_ahead",
            Reason::Equivocation => "equivocation",
            Reason::BadEntries => "bad_entries",
            Reason::TooLarge => "too_large",
            Reason::RootMismatch => "root_mismatch",
            Reason::InvalidEntries => "invalid_entries",
            Reason::Rollback => "rollback",
        }
    }

    /// Every reason.
    pub const ALL: [Reason; 8] = [
        Reason::BadSignature,
        Reason::OwnOriginAhead,
        Reason::Equivocation,
        Reason::BadEntries,
        Reason::TooLarge,
        Reason::RootMismatch,
        Reason::InvalidEntries,
        Reason::Rollback,
    ];

    /// The reason stored as `name`.
    pub fn from_name(name: &str) -> Option<Reason> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Whether a record for this reason proves misbehaviour by itself: two checkpoints the
    /// origin validly signed that disagree. Such records are kept whole and never dropped.
    pub fn proves(self) -> bool {
        self == Reason::Equivocation
    }
}

/// One refusal to keep.
#[derive(Debug, Clone)]
pub struct Report {
    /// The origin concerned (truncated to 256 characters when stored).
    pub origin: String,
    /// Who sent it (truncated to 256 characters when stored; not part of the fingerprint).
    pub peer: String,
    /// Why it was refused.
    pub reason: Reason,
    /// What exactly was wrong (truncated to 2,048 characters; not part of the fingerprint).
    pub detail: String,
    /// The signed notes that prove it.
    pub notes: Vec<Vec<u8>>,
}

/// What a record is deduplicated by: SHA-256 over a domain tag, the reason, the origin and the
/// SHA-256 of each note, in order. Only the material counts, never the sender's name for
/// itself, its address or the detail text; so the same material from another peer, another
/// connection or under another name is the same evidence.
pub fn fingerprint(origin: &str, reason: Reason, notes: &[Vec<u8>]) -> [u8; 32] {
    fingerprint_of(origin, reason, &digests(notes))
}

/// The SHA-256 of each note.
fn digests(notes: &[Vec<u8>]) -> Vec<[u8; 32]> {
    notes.iter().map(|n| Sha256::digest(n).into()).collect()
}

/// [`fingerprint`] from the notes' digests.
fn fingerprint_of(origin: &str, reason: Reason, digests: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"redline evidence fingerprint v1\0");
    h.update(reason.name().as_bytes());
    h.update([0]);
    h.update((origin.len() as u64).to_be_bytes());
    h.update(origin.as_bytes());
    for d in digests {
        h.update(d);
    }
    h.finalize().into()
}

/// One page of evidence.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Records, newest first.
    pub evidence: Vec<pb::Evidence>,
    /// Token of the next page; empty on the last.
    pub next_page_token: String,
}

/// Which page to read.
#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    /// Only this origin's records (all when empty).
    pub origin: String,
    /// Records wanted (0: [`DEFAULT_PAGE_SIZE`]; at most [`MAX_PAGE_SIZE`]).
    pub page_size: usize,
    /// The previous page's `next_page_token`; empty for the first page.
    pub page_token: String,
    /// Most encoded bytes of the page's records (at least one record is always returned).
    pub max_bytes: usize,
}

/// The evidence service.
#[derive(Debug)]
pub struct Evidence {
    store: Store,
    metrics: Arc<Metrics>,
    /// `[evidence] max_bytes`.
    max_bytes: u64,
    /// `(origin, reason)` -> (tokens left, when counted). Keys are trusted origins (only their
    /// checkpoints are judged) and a fixed set of reasons.
    budget: Mutex<HashMap<(String, Reason), (f64, Instant)>>,
}

fn frozen_key(origin: &str) -> String {
    format!("frozen/{origin}")
}

/// What is kept of a note: whole when it proves equivocation or is short, else its prefix.
fn kept_note(note: &[u8], whole: bool) -> Vec<u8> {
    if whole {
        note.to_vec()
    } else {
        note[..note.len().min(NOTE_PREFIX_BYTES)].to_vec()
    }
}

fn shortened(s: &str, chars: usize) -> String {
    s.chars().take(chars).collect()
}

/// The stored form of a refusal whose notes have `digests` (their SHA-256).
fn entry(r: &Report, digests: &[[u8; 32]], received_at_ms: u64) -> EvidenceEntry {
    let proven = r.reason.proves();
    let fingerprint = fingerprint_of(&r.origin, r.reason, digests);
    let ev = pb::Evidence {
        id: 0,
        origin: shortened(&r.origin, 256),
        peer: shortened(&r.peer, MAX_PEER_CHARS),
        reason: r.reason.name().to_owned(),
        detail: shortened(&r.detail, MAX_DETAIL_CHARS),
        received_at_ms,
        signed_notes: r.notes.iter().map(|n| kept_note(n, proven)).collect(),
        signed_note_sha256: digests.iter().map(|d| d.to_vec()).collect(),
        signed_note_lengths: r.notes.iter().map(|n| n.len() as u64).collect(),
        truncated: !proven && r.notes.iter().any(|n| n.len() > NOTE_PREFIX_BYTES),
        fingerprint: fingerprint.to_vec(),
        proven,
    };
    EvidenceEntry {
        fingerprint,
        proven,
        record: ev.encode_to_vec(),
    }
}

/// A format-1 record (notes whole, no fingerprint) in the current form, or `None` if it does not
/// decode or names no known reason.
fn converted(bytes: &[u8]) -> Option<EvidenceEntry> {
    let old = pb::Evidence::decode(bytes).ok()?;
    let reason = Reason::from_name(&old.reason)?;
    let r = Report {
        origin: old.origin,
        peer: old.peer,
        reason,
        detail: old.detail,
        notes: old.signed_notes,
    };
    Some(entry(&r, &digests(&r.notes), old.received_at_ms))
}

impl Evidence {
    /// The service over `store`, converting records of the store's format-1 evidence tree
    /// first (once). Blocking: reads and may rewrite the whole evidence tree.
    pub(super) fn open(store: Store, metrics: Arc<Metrics>, max_bytes: u64) -> Result<Self> {
        let converted = store.migrate_legacy_evidence(max_bytes, converted)?;
        if converted > 0 {
            tracing::info!(
                converted,
                "evidence records converted to the bounded format (long notes kept as a prefix and digest)"
            );
        }
        Ok(Self {
            store,
            metrics,
            max_bytes,
            budget: Default::default(),
        })
    }

    /// Records a refusal, once per [`fingerprint`], within the per-origin rate and the store's
    /// byte budget. Returns the record's id when it was stored. Does not wait for the disk (see
    /// `store::evidence`), so it may run on a runtime thread.
    pub fn record(&self, r: Report) -> Result<Option<u64>> {
        let reason = r.reason.name();
        let digests = digests(&r.notes);
        if self
            .store
            .has_evidence(&fingerprint_of(&r.origin, r.reason, &digests))?
        {
            tracing::debug!(origin = %r.origin, peer = %r.peer, reason, "refused again (evidence already kept)");
            return Ok(None);
        }
        self.metrics.rejected("peer", reason);
        if !r.reason.proves() && !self.allowed(&r.origin, r.reason) {
            tracing::warn!(origin = %r.origin, peer = %r.peer, reason, detail = %shortened(&r.detail, MAX_DETAIL_CHARS), "refused; not kept as evidence (too many {reason} records for this origin lately)");
            return Ok(None);
        }
        let e = entry(&r, &digests, now_ms());
        match self.store.add_evidence(&e, self.max_bytes)? {
            EvidenceAdded::Stored { id, evicted } => {
                tracing::warn!(
                    origin = %r.origin, peer = %shortened(&r.peer, MAX_PEER_CHARS), reason,
                    detail = %shortened(&r.detail, MAX_DETAIL_CHARS), bytes = e.record.len(),
                    "refused material from a peer; kept as evidence"
                );
                if evicted > 0 {
                    tracing::warn!(
                        evicted,
                        max_bytes = self.max_bytes,
                        "evidence store full: dropped the oldest records that prove nothing"
                    );
                }
                Ok(Some(id))
            }
            EvidenceAdded::Duplicate(_) => Ok(None),
            EvidenceAdded::OverBudget => {
                tracing::warn!(origin = %r.origin, reason, max_bytes = self.max_bytes, "refused; not kept as evidence (the evidence store holds only proof of equivocation and is full)");
                Ok(None)
            }
        }
    }

    /// One page of evidence records (see [`PageQuery`]), read and decoded on the blocking pool.
    pub async fn page(&self, query: PageQuery) -> Result<Page> {
        let store = self.store.clone();
        blocking(move || page(&store, &query)).await?
    }

    /// Number of evidence records (a counter, not a scan).
    pub fn count(&self) -> usize {
        self.totals().records as usize
    }

    /// Records, bytes and proven records kept (counters, not a scan).
    pub fn totals(&self) -> EvidenceTotals {
        self.store.evidence_totals()
    }

    /// Whether `origin` is frozen after proof of equivocation.
    pub fn is_frozen(&self, origin: &str) -> Result<bool> {
        Ok(self.store.meta_get(&frozen_key(origin))?.is_some())
    }

    /// Freezes `origin` at its last good checkpoint until an operator unfreezes it.
    pub fn freeze(&self, origin: &str) -> Result<()> {
        tracing::error!(origin, "origin frozen after proof of equivocation");
        self.store
            .meta_set(&frozen_key(origin), b"1")
            .map_err(NodeError::from)
    }

    /// Lifts the freeze on `origin` (the operator's `ResumeOrigin`); the evidence stays.
    /// Returns whether it was frozen.
    pub fn unfreeze(&self, origin: &str) -> Result<bool> {
        let was = self.is_frozen(origin)?;
        if was {
            tracing::warn!(origin, "origin resumed by the operator after a freeze");
            self.store
                .meta_remove(&frozen_key(origin))
                .map_err(NodeError::from)?;
        }
        Ok(was)
    }

    /// Whether one more evidence record about `origin` for `reason` may be stored now.
    fn allowed(&self, origin: &str, reason: Reason) -> bool {
        let mut b = self.budget.lock().expect("evidence budget lock");
        let now = Instant::now();
        let (tokens, at) = b
            .entry((origin.to_owned(), reason))
            .or_insert((EVIDENCE_BURST, now));
        let refill = now.duration_since(*at).as_millis() as f64 / EVIDENCE_REFILL_MS;
        *tokens = (*tokens + refill).min(EVIDENCE_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn parse_token(token: &str) -> Result<Option<u64>> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .parse::<u64>()
        .map(Some)
        .map_err(|_| NodeError::BadPageToken(shortened(token, 64)))
}

/// Reads one page: records below the token, newest first, of `query.origin` (all when empty),
/// until the page holds `page_size` records, the next would pass `max_bytes`, or
/// [`MAX_SCANNED_PER_PAGE`] records were read. The token names the last record read, so the
/// next page goes on strictly below it: every record is on exactly one page.
fn page(store: &Store, query: &PageQuery) -> Result<Page> {
    let before = parse_token(&query.page_token)?;
    let size = match query.page_size {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    };
    let mut out = Page::default();
    let (mut bytes, mut scanned, mut last) = (0usize, 0usize, None);
    let mut records = store.evidence_newest_first(before).peekable();
    while let Some(item) = records.peek() {
        if out.evidence.len() >= size || scanned >= MAX_SCANNED_PER_PAGE {
            break;
        }
        let stored = match item {
            Ok(s) => s,
            Err(_) => return Err(records.next().expect("peeked").unwrap_err().into()),
        };
        let ev = match pb::Evidence::decode(stored.record.as_slice()) {
            Ok(ev) if query.origin.is_empty() || ev.origin == query.origin => Some(ev),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(id = stored.id, error = %e, "an evidence record does not decode; skipped");
                None
            }
        };
        if let Some(mut ev) = ev {
            ev.id = stored.id;
            let len = prost::length_delimiter_len(ev.encoded_len()) + ev.encoded_len() + 1;
            if !out.evidence.is_empty() && bytes + len > query.max_bytes {
                break;
            }
            bytes += len;
            out.evidence.push(ev);
        }
        last = Some(stored.id);
        scanned += 1;
        records.next();
    }
    if let (Some(id), Some(_)) = (last, records.peek()) {
        out.next_page_token = id.to_string();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path, max_bytes: u64) -> Evidence {
        Evidence::open(
            Store::open(dir).unwrap(),
            Arc::new(Metrics::new()),
            max_bytes,
        )
        .unwrap()
    }

    fn report(peer: &str, reason: Reason, note: u8) -> Report {
        Report {
            origin: "a.example".into(),
            peer: peer.into(),
            reason,
            detail: format!("lie {note} told by {peer}"),
            notes: vec![vec![note]],
        }
    }

    /// Every page of `origin` (all when empty), following tokens, `page_size` at a time.
    fn all_pages(e: &Evidence, origin: &str, page_size: usize, max_bytes: usize) -> Vec<Page> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut pages = Vec::new();
        let mut token = String::new();
        loop {
            let p = rt
                .block_on(e.page(PageQuery {
                    origin: origin.into(),
                    page_size,
                    page_token: token.clone(),
                    max_bytes,
                }))
                .unwrap();
            token = p.next_page_token.clone();
            pages.push(p);
            if token.is_empty() {
                return pages;
            }
        }
    }

    #[test]
    fn each_lie_is_kept_once_and_a_flood_is_budgeted_per_origin_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let evidence = open(dir.path(), 1 << 20);
        assert!(evidence
            .record(report("p1", Reason::BadSignature, 1))
            .unwrap()
            .is_some());
        // The same lie again (every poll), or told by another peer: the same evidence.
        assert!(evidence
            .record(report("p1", Reason::BadSignature, 1))
            .unwrap()
            .is_none());
        assert!(evidence
            .record(report("p2", Reason::BadSignature, 1))
            .unwrap()
            .is_none());
        // A new lie every time: stored up to the burst, then only counted.
        let stored = (10..=200u8)
            .filter(|&n| {
                evidence
                    .record(report("p1", Reason::BadSignature, n))
                    .unwrap()
                    .is_some()
            })
            .count();
        assert_eq!(stored, EVIDENCE_BURST as usize - 1);
        // Another reason has its own budget; equivocation has none.
        assert!(evidence
            .record(report("p1", Reason::Rollback, 1))
            .unwrap()
            .is_some());
        let proofs = (0..100u8)
            .filter(|&n| {
                evidence
                    .record(report("p1", Reason::Equivocation, n))
                    .unwrap()
                    .is_some()
            })
            .count();
        assert_eq!(proofs, 100);
        let listed: Vec<pb::Evidence> = all_pages(&evidence, "a.example", 0, 1 << 20)
            .into_iter()
            .flat_map(|p| p.evidence)
            .collect();
        assert_eq!(listed.len(), evidence.count());
        assert_eq!(listed[0].reason, "equivocation", "newest first");
        assert!(all_pages(&evidence, "b.example", 0, 1 << 20)[0]
            .evidence
            .is_empty());
    }

    #[test]
    fn the_fingerprint_is_the_material_not_what_the_caller_says() {
        let notes = vec![b"a.example\n5\nroot\n".to_vec(), vec![7; 10]];
        let fp = fingerprint("a.example", Reason::BadSignature, &notes);
        let dir = tempfile::tempdir().unwrap();
        let evidence = open(dir.path(), 1 << 20);
        let mut kept = 0;
        for (peer, detail) in [
            ("gossip from \"honest\" at 10.0.0.1:5000", "x"),
            ("gossip from \"other\" at 10.0.0.2:6000", "y"),
            ("https://peer.example", "a long story"),
        ] {
            let r = Report {
                origin: "a.example".into(),
                peer: peer.into(),
                reason: Reason::BadSignature,
                detail: detail.into(),
                notes: notes.clone(),
            };
            kept += usize::from(evidence.record(r).unwrap().is_some());
        }
        assert_eq!(kept, 1, "one record, whoever said it and however");
        let ev = &all_pages(&evidence, "", 0, 1 << 20)[0].evidence[0];
        assert_eq!(ev.fingerprint, fp.to_vec());
        // What the material is does change it.
        assert_ne!(fp, fingerprint("b.example", Reason::BadSignature, &notes));
        assert_ne!(fp, fingerprint("a.example", Reason::RootMismatch, &notes));
        assert_ne!(
            fp,
            fingerprint("a.example", Reason::BadSignature, &notes[..1])
        );
        let mut other = notes.clone();
        other[1][9] = 8;
        assert_ne!(fp, fingerprint("a.example", Reason::BadSignature, &other));
    }

    #[test]
    fn oversized_notes_are_kept_as_prefix_length_and_digest_and_proof_whole() {
        let dir = tempfile::tempdir().unwrap();
        let evidence = open(dir.path(), 1 << 20);
        let big = vec![b'x'; 4 << 20];
        let mut r = report("p", Reason::BadSignature, 0);
        r.notes = vec![big.clone()];
        r.detail = "d".repeat(1 << 20);
        r.peer = "p".repeat(1 << 20);
        evidence.record(r).unwrap().unwrap();
        let proof_notes = vec![vec![b'a'; 16 << 10], vec![b'b'; 16 << 10]];
        let mut p = report("p", Reason::Equivocation, 0);
        p.notes = proof_notes.clone();
        evidence.record(p).unwrap().unwrap();
        let page = &all_pages(&evidence, "", 0, 1 << 20)[0].evidence;
        let (proof, refused) = (&page[0], &page[1]);
        assert!(refused.truncated && !refused.proven);
        assert_eq!(
            refused.signed_notes,
            vec![big[..NOTE_PREFIX_BYTES].to_vec()]
        );
        assert_eq!(refused.signed_note_lengths, vec![4 << 20]);
        assert_eq!(
            refused.signed_note_sha256,
            vec![Sha256::digest(&big).to_vec()]
        );
        assert_eq!(
            (refused.detail.len(), refused.peer.len()),
            (MAX_DETAIL_CHARS, MAX_PEER_CHARS)
        );
        assert!(proof.proven && !proof.truncated);
        assert_eq!(proof.signed_notes, proof_notes);
        assert!(
            evidence.totals().bytes < 64 << 10,
            "{:?}",
            evidence.totals()
        );
    }

    #[test]
    fn pages_list_every_record_exactly_once_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let evidence = open(dir.path(), 1 << 20);
        let mut ids = Vec::new();
        for n in 0..250u8 {
            let mut r = report("p", Reason::ALL[n as usize % 8], n);
            r.origin = if n % 3 == 0 { "b.example" } else { "a.example" }.into();
            r.notes = vec![vec![n; 100 + n as usize * 7]];
            if let Some(id) = evidence.record(r).unwrap() {
                ids.push((id, n % 3 == 0));
            }
        }
        assert!(ids.len() > 200, "{}", ids.len());
        ids.reverse();
        for (origin, page_size, max_bytes) in [
            ("", 0, 1 << 20),
            ("", 7, 1 << 20),
            ("", 1000, 5_000),
            ("b.example", 10, 1 << 20),
            ("a.example", 3, 2_000),
        ] {
            let pages = all_pages(&evidence, origin, page_size, max_bytes);
            let listed: Vec<u64> = pages
                .iter()
                .flat_map(|p| p.evidence.iter().map(|e| e.id))
                .collect();
            let want: Vec<u64> = ids
                .iter()
                .filter(|(_, b)| origin.is_empty() || (origin == "b.example") == *b)
                .map(|(id, _)| *id)
                .collect();
            assert_eq!(listed, want, "{origin:?} {page_size} {max_bytes}");
            let cap = match page_size {
                0 => DEFAULT_PAGE_SIZE,
                n => n.min(MAX_PAGE_SIZE),
            };
            for p in &pages {
                let bytes: usize = p.evidence.iter().map(|e| e.encoded_len()).sum();
                assert!(p.evidence.len() <= cap);
                assert!(p.evidence.len() == 1 || bytes <= max_bytes);
            }
            assert!(
                pages.len() > 1,
                "{origin:?} {page_size} {max_bytes}: more than one page"
            );
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bad = rt.block_on(evidence.page(PageQuery {
            page_token: "x".into(),
            ..Default::default()
        }));
        assert!(matches!(bad, Err(NodeError::BadPageToken(_))), "{bad:?}");
    }

    #[test]
    fn counters_equal_a_full_scan_after_reopen_and_the_budget_holds() {
        let dir = tempfile::tempdir().unwrap();
        let budget = 200_000;
        let before = {
            let evidence = open(dir.path(), budget);
            for n in 0..=255u8 {
                let mut r = report("p", Reason::ALL[n as usize % 8], n);
                r.origin = format!("o{n}.example");
                r.notes = vec![vec![n; 3000 + n as usize * 11]];
                evidence.record(r).unwrap();
            }
            let t = evidence.totals();
            assert_eq!(t, evidence.store.evidence_totals_scanned().unwrap());
            assert!(t.bytes <= budget + t.proven * 10_000, "{t:?}");
            assert_eq!(t.proven, 32, "no proof was evicted: {t:?}");
            evidence.store.flush().unwrap();
            t
        };
        let evidence = open(dir.path(), budget);
        assert_eq!(evidence.totals(), before);
        assert_eq!(evidence.store.evidence_totals_scanned().unwrap(), before);
    }

    #[test]
    fn records_of_the_unbounded_format_are_converted_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            for (reason, len) in [("bad_signature", 3 << 20), ("equivocation", 300)] {
                let old = pb::Evidence {
                    origin: "a.example".into(),
                    reason: reason.into(),
                    signed_notes: vec![vec![1; len], vec![2; len]],
                    ..Default::default()
                };
                store.add_legacy_evidence(&old.encode_to_vec()).unwrap();
            }
            store.flush().unwrap();
        }
        let evidence = open(dir.path(), 1 << 20);
        let page = &all_pages(&evidence, "", 0, 1 << 20)[0].evidence;
        assert_eq!(page.len(), 2);
        assert!(page[0].proven && page[0].signed_notes[0].len() == 300);
        assert!(page[1].truncated && page[1].signed_note_lengths == vec![3 << 20, 3 << 20]);
        assert!(evidence.totals().bytes < 64 << 10);
    }

    #[test]
    fn freezing_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        {
            let evidence = open(dir.path(), 1 << 20);
            assert!(!evidence.is_frozen("a.example").unwrap());
            evidence.freeze("a.example").unwrap();
            assert!(evidence.is_frozen("a.example").unwrap());
        }
        {
            let evidence = open(dir.path(), 1 << 20);
            assert!(evidence.is_frozen("a.example").unwrap());
            assert!(!evidence.is_frozen("b.example").unwrap());
            // Resuming is durable too, and says whether there was anything to resume.
            assert!(evidence.unfreeze("a.example").unwrap());
            assert!(!evidence.unfreeze("a.example").unwrap());
        }
        let evidence = open(dir.path(), 1 << 20);
        assert!(!evidence.is_frozen("a.example").unwrap());
    }
}
