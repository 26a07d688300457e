//! Evidence: what peers sent that was refused, kept with the signed notes that prove it, and
//! the origins frozen after proof of equivocation.
//!
//! Recording is bounded two ways. Each distinct `(origin, peer, reason, notes)` is stored once,
//! so a peer repeating the same lie on every poll does not fill the evidence tree; and new
//! records per `(origin, reason)` are rate-limited, so a peer telling a *different* lie every
//! time (a flood of badly signed checkpoints of ever-changing sizes) does not either. Refusals
//! over the limit are still counted in metrics and logged, just not stored.

use super::{now_ms, NodeError, Result};
use crate::metrics::Metrics;
use crate::store::Store;
use prost::Message;
use redline_proto::pb;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Most evidence fingerprints remembered before the set is cleared.
const MAX_REPORTED: usize = 4096;

/// New evidence records allowed at once per `(origin, reason)`, and one more per
/// `EVIDENCE_REFILL_MS`. Honest trouble produces a handful (one per lie per checkpoint the
/// origin signs); the limit is for a peer that makes up a new lie on every message.
const EVIDENCE_BURST: f64 = 32.0;
const EVIDENCE_REFILL_MS: f64 = 5_000.0;

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
}

/// One refusal to keep.
#[derive(Debug, Clone)]
pub struct Report {
    /// The origin concerned (truncated to 256 characters when stored).
    pub origin: String,
    /// Who sent it.
    pub peer: String,
    /// Why it was refused.
    pub reason: Reason,
    /// What exactly was wrong.
    pub detail: String,
    /// The signed notes that prove it.
    pub notes: Vec<Vec<u8>>,
}

/// The evidence service.
#[derive(Debug)]
pub struct Evidence {
    store: Store,
    metrics: Arc<Metrics>,
    /// Fingerprints of evidence already recorded.
    reported: Mutex<HashSet<u64>>,
    /// `(origin, reason)` -> (tokens left, when counted). Keys are trusted origins (only their
    /// checkpoints are judged) and a fixed set of reasons.
    budget: Mutex<HashMap<(String, Reason), (f64, Instant)>>,
}

fn frozen_key(origin: &str) -> String {
    format!("frozen/{origin}")
}

impl Evidence {
    pub(super) fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            metrics,
            reported: Default::default(),
            budget: Default::default(),
        }
    }

    /// Records a refusal, once per distinct `(origin, peer, reason, notes)` and within the
    /// per-origin budget. Returns the record's id when it was stored.
    pub fn record(&self, r: Report) -> Result<Option<u64>> {
        use std::hash::{Hash as _, Hasher as _};
        let Report {
            origin,
            peer,
            reason,
            detail,
            notes,
        } = r;
        let mut fp = std::collections::hash_map::DefaultHasher::new();
        (&origin, &peer, reason.name(), &notes).hash(&mut fp);
        if !self.first_report(fp.finish()) {
            tracing::debug!(%origin, %peer, reason = reason.name(), "refused again (evidence already kept)");
            return Ok(None);
        }
        if !self.allowed(&origin, reason) {
            self.metrics.rejected("peer", reason.name());
            tracing::warn!(%origin, %peer, reason = reason.name(), %detail, "refused; not kept as evidence (too many {} records for this origin lately)", reason.name());
            return Ok(None);
        }
        let ev = pb::Evidence {
            id: 0,
            origin: origin.chars().take(256).collect(),
            peer,
            reason: reason.name().to_owned(),
            detail,
            received_at_ms: now_ms(),
            signed_notes: notes,
        };
        tracing::warn!(
            origin = %ev.origin, peer = %ev.peer, reason = %ev.reason, detail = %ev.detail,
            "refused material from a peer; kept as evidence"
        );
        self.metrics.rejected("peer", &ev.reason);
        Ok(Some(self.store.add_evidence(&ev.encode_to_vec())?))
    }

    /// Evidence records of `origin` (all when empty), newest first, at most `limit` (0: 1000).
    pub fn list(&self, origin: &str, limit: usize) -> Result<Vec<pb::Evidence>> {
        let limit = if limit == 0 { 1000 } else { limit.min(10_000) };
        let mut out = Vec::new();
        for item in self.store.evidence() {
            let (id, bytes) = item?;
            let Ok(mut ev) = pb::Evidence::decode(bytes.as_slice()) else {
                continue;
            };
            if origin.is_empty() || ev.origin == origin {
                ev.id = id;
                out.push(ev);
            }
        }
        out.reverse();
        out.truncate(limit);
        Ok(out)
    }

    /// Number of evidence records.
    pub fn count(&self) -> usize {
        self.store.evidence_count()
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

    /// Whether evidence with this fingerprint is new (and remembers it). Bounded: the set is
    /// cleared when full, so at worst a repeat is recorded again.
    fn first_report(&self, fingerprint: u64) -> bool {
        let mut r = self.reported.lock().expect("reported lock");
        if r.len() >= MAX_REPORTED {
            r.clear();
        }
        r.insert(fingerprint)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(peer: &str, reason: Reason, note: u8) -> Report {
        Report {
            origin: "a.example".into(),
            peer: peer.into(),
            reason,
            detail: format!("lie {note}"),
            notes: vec![vec![note]],
        }
    }

    #[test]
    fn each_lie_is_kept_once_and_a_flood_is_budgeted_per_origin_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let evidence = Evidence::new(store, Arc::new(Metrics::new()));
        assert!(evidence
            .record(report("p1", Reason::BadSignature, 1))
            .unwrap()
            .is_some());
        // The same lie again (every poll): not stored again.
        assert!(evidence
            .record(report("p1", Reason::BadSignature, 1))
            .unwrap()
            .is_none());
        // Told by another peer, it is other evidence.
        assert!(evidence
            .record(report("p2", Reason::BadSignature, 1))
            .unwrap()
            .is_some());
        // A new lie every time: stored up to the burst, then only counted.
        let stored = (10..=200u8)
            .filter(|&n| {
                evidence
                    .record(report("p1", Reason::BadSignature, n))
                    .unwrap()
                    .is_some()
            })
            .count();
        assert_eq!(stored, EVIDENCE_BURST as usize - 2);
        // Another reason has its own budget.
        assert!(evidence
            .record(report("p1", Reason::Rollback, 1))
            .unwrap()
            .is_some());
        let listed = evidence.list("a.example", 0).unwrap();
        assert_eq!(listed.len(), evidence.count());
        assert_eq!(listed[0].reason, "rollback", "newest first");
        assert!(evidence.list("b.example", 0).unwrap().is_empty());
    }

    #[test]
    fn freezing_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let evidence = Evidence::new(store, Arc::new(Metrics::new()));
            assert!(!evidence.is_frozen("a.example").unwrap());
            evidence.freeze("a.example").unwrap();
            assert!(evidence.is_frozen("a.example").unwrap());
        }
        let store = Store::open(dir.path()).unwrap();
        let evidence = Evidence::new(store, Arc::new(Metrics::new()));
        assert!(evidence.is_frozen("a.example").unwrap());
        assert!(!evidence.is_frozen("b.example").unwrap());
    }
}
