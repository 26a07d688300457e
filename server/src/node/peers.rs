//! Per-peer sync status and origins peers offered that this node does not trust, for `Status`;
//! the largest checkpoint each peer has offered per origin and channel, to catch a peer that
//! goes back to an older one (a replay); which evidence was already recorded, so a peer
//! repeating the same lie every poll does not fill the evidence tree; a rate limit on new
//! evidence per origin and reason, so a peer telling a *different* lie every time (a flood of
//! badly signed checkpoints of ever-changing sizes) does not either; and the checkpoints found
//! too far ahead to fetch, so they are not fetched again on every poll.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

/// How a peer offered a checkpoint. Each channel is in order on an honest peer (its watch
/// stream sends each origin's checkpoints in increasing size, and each pull or gossip answer
/// is its state at that moment), but the two channels interleave, so a push read after a newer
/// pull is not a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferChannel {
    /// `WatchCheckpoints`.
    Push,
    /// `GetCheckpoints` and `Gossip` answers.
    Pull,
}

impl OfferChannel {
    /// Name used in evidence.
    pub fn name(self) -> &'static str {
        match self {
            OfferChannel::Push => "watch stream",
            OfferChannel::Pull => "pull/gossip answers",
        }
    }
}

/// `(peer, origin, channel)`.
type OfferKey = (String, String, OfferChannel);

/// Most evidence fingerprints remembered before the set is cleared.
const MAX_REPORTED: usize = 4096;

/// New evidence records allowed at once per `(origin, reason)`, and one more per
/// `EVIDENCE_REFILL_MS`. Honest trouble produces a handful (one per lie per checkpoint the
/// origin signs); the limit is for a peer that makes up a new lie on every message. Refusals
/// over it are still counted in metrics and logged, just not stored.
const EVIDENCE_BURST: f64 = 32.0;
const EVIDENCE_REFILL_MS: f64 = 5_000.0;

/// What is known of one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerState {
    /// Milliseconds since the epoch of the last successful exchange; 0 = never.
    pub last_sync_ms: u64,
    /// The last error, empty after a success.
    pub last_error: String,
}

/// Peers and untrusted offers.
#[derive(Debug, Default)]
pub struct PeerTable {
    peers: RwLock<BTreeMap<String, PeerState>>,
    untrusted: RwLock<BTreeSet<String>>,
    /// `(peer, origin, channel)` -> largest verified checkpoint offered: `(size, note)`.
    offers: Mutex<HashMap<OfferKey, (u64, Vec<u8>)>>,
    /// Fingerprints of evidence already recorded.
    reported: Mutex<HashSet<u64>>,
    /// `(origin, reason)` -> (evidence tokens left, when counted). Keys are trusted origins
    /// (only their checkpoints are judged) and a fixed set of reasons.
    evidence_budget: Mutex<HashMap<(String, String), (f64, Instant)>>,
    /// `(peer, origin, from, size)` of checkpoints too far ahead of us to fetch.
    too_large: Mutex<HashSet<(String, String, u64, u64)>>,
}

impl PeerTable {
    /// Records a successful exchange with `url`.
    pub fn ok(&self, url: &str, now_ms: u64) {
        let mut p = self.peers.write().expect("peers lock");
        let s = p.entry(url.to_owned()).or_default();
        s.last_sync_ms = now_ms;
        s.last_error.clear();
    }

    /// Records a failure talking to `url`.
    pub fn failed(&self, url: &str, error: &str) {
        let mut p = self.peers.write().expect("peers lock");
        p.entry(url.to_owned()).or_default().last_error = error.chars().take(500).collect();
    }

    /// Registers a configured peer (shown even before the first contact).
    pub fn register(&self, url: &str) {
        self.peers
            .write()
            .expect("peers lock")
            .entry(url.to_owned())
            .or_default();
    }

    /// Every peer with its state.
    pub fn snapshot(&self) -> Vec<(String, PeerState)> {
        self.peers
            .read()
            .expect("peers lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Notes an origin a peer offered that is not in `[[trust]]`. Bounded, so a peer offering
    /// millions of bogus origins cannot grow memory without limit.
    pub fn offered_untrusted(&self, origin: &str) {
        let mut u = self.untrusted.write().expect("untrusted lock");
        if u.len() < 1024 && origin.len() <= 256 {
            u.insert(origin.to_owned());
        }
    }

    /// Origins offered but not trusted.
    pub fn untrusted(&self) -> Vec<String> {
        self.untrusted
            .read()
            .expect("untrusted lock")
            .iter()
            .cloned()
            .collect()
    }

    /// Records that `peer` offered a validly signed checkpoint of `origin` of `size` on
    /// `channel`. Returns the earlier, larger offer `(size, note)` when this one goes back
    /// from it (nothing is updated then). Only configured peers and trusted origins get here,
    /// so the map is bounded by the configuration.
    pub fn offered(
        &self,
        peer: &str,
        origin: &str,
        channel: OfferChannel,
        size: u64,
        note: &[u8],
    ) -> Option<(u64, Vec<u8>)> {
        let mut offers = self.offers.lock().expect("offers lock");
        let key = (peer.to_owned(), origin.to_owned(), channel);
        match offers.get(&key) {
            Some((prev, prev_note)) if *prev > size => Some((*prev, prev_note.clone())),
            Some((prev, _)) if *prev == size => None,
            _ => {
                offers.insert(key, (size, note.to_vec()));
                None
            }
        }
    }

    /// Whether evidence with this fingerprint is new (and remembers it). Bounded: the set is
    /// cleared when full, so at worst a repeat is recorded again.
    pub fn first_report(&self, fingerprint: u64) -> bool {
        let mut r = self.reported.lock().expect("reported lock");
        if r.len() >= MAX_REPORTED {
            r.clear();
        }
        r.insert(fingerprint)
    }

    /// Whether one more evidence record about `origin` for `reason` may be stored now.
    pub fn evidence_allowed(&self, origin: &str, reason: &str) -> bool {
        let mut b = self.evidence_budget.lock().expect("evidence budget lock");
        let now = Instant::now();
        let (tokens, at) = b
            .entry((origin.to_owned(), reason.to_owned()))
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

    /// Remembers that `peer`'s checkpoint of `origin` at `size` is too far ahead of `from`
    /// to fetch. Bounded like the evidence fingerprints.
    pub fn set_too_large(&self, peer: &str, origin: &str, from: u64, size: u64) {
        let mut t = self.too_large.lock().expect("too large lock");
        if t.len() >= MAX_REPORTED {
            t.clear();
        }
        t.insert((peer.to_owned(), origin.to_owned(), from, size));
    }

    /// Whether [`set_too_large`](Self::set_too_large) was told about exactly this.
    pub fn is_too_large(&self, peer: &str, origin: &str, from: u64, size: u64) -> bool {
        self.too_large.lock().expect("too large lock").contains(&(
            peer.to_owned(),
            origin.to_owned(),
            from,
            size,
        ))
    }
}
