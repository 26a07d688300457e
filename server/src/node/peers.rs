//! What operators see of the node's peers: each configured peer's last successful exchange and
//! last error, the origins peers offered that this node does not trust, and whether the node
//! has caught up with them since it started ([`Readiness`]). The federation loop reports into
//! it; `Status`, the metrics, `/readyz` and gRPC health read it.

use crate::config::{Config, Policy};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, RwLock};
use tokio::sync::watch;

/// Most untrusted origin names remembered.
const MAX_UNTRUSTED: usize = 1024;

/// What is known of one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerState {
    /// Milliseconds since the epoch of the last successful exchange; 0 = never.
    pub last_sync_ms: u64,
    /// The last error, empty after a success.
    pub last_error: String,
}

/// Peers, untrusted offers, and readiness.
#[derive(Debug, Default)]
pub struct PeerStatus {
    peers: RwLock<BTreeMap<String, PeerState>>,
    untrusted: RwLock<BTreeSet<String>>,
    readiness: Readiness,
}

impl PeerStatus {
    /// Peer status that waits for the first sync as `readiness` says.
    pub fn new(readiness: Readiness) -> Self {
        Self {
            readiness,
            ..Self::default()
        }
    }

    /// Whether the node has caught up with its peers since it started.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

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
        if u.len() < MAX_UNTRUSTED && origin.len() <= 256 {
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
}

/// Whether a node that just started has caught up with its peers, so that it may be sent
/// Match traffic: a new or autoscaled follower holds nothing, and would answer every Match
/// with "no match" while it replicates.
///
/// The node waits for every origin it replicates (trusted with `accept` or `replicate`, its
/// own excepted). An origin is caught up once one peer has completed a full exchange (pull of
/// its checkpoints, replication up to each, gossip) after which the node holds at least the
/// checkpoint that peer offered of it; or, when no peer offers it, once every configured peer
/// has completed an exchange without offering it (nobody has it yet); or when it is frozen
/// after proof of equivocation (nothing more will be taken from anyone). A node without peers,
/// or with nothing to replicate, or with `[sync] ready_after_first_sync = false`, is ready at
/// once. Readiness is about the start only: once ready, the node stays ready (later lag shows
/// in `redline_peer_sync_lag_seconds` and `Status`). See also `[sync] ready_timeout_ms`.
#[derive(Debug)]
pub struct Readiness {
    /// Origins to catch up with.
    required: BTreeSet<String>,
    /// Configured peers (URLs).
    peers: BTreeSet<String>,
    waiting: Mutex<Waiting>,
    ready: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Waiting {
    /// Required origins caught up with.
    caught_up: BTreeSet<String>,
    /// Required origins -> peers that completed an exchange without offering them.
    absent_at: BTreeMap<String, BTreeSet<String>>,
}

impl Default for Readiness {
    /// Ready at once.
    fn default() -> Self {
        Self::waiting_for(BTreeSet::new(), BTreeSet::new())
    }
}

impl Readiness {
    /// What `config` asks for.
    pub fn for_config(config: &Config) -> Self {
        if !config.sync.ready_after_first_sync {
            return Self::default();
        }
        let required = config
            .trust
            .iter()
            .filter(|t| t.origin != config.origin && t.policy != Policy::Reject)
            .map(|t| t.origin.clone())
            .collect();
        let peers = config.peers.iter().map(|p| p.url.clone()).collect();
        Self::waiting_for(required, peers)
    }

    /// Waits for `required` origins from `peers` (ready at once when either is empty).
    pub fn waiting_for(required: BTreeSet<String>, peers: BTreeSet<String>) -> Self {
        let ready = required.is_empty() || peers.is_empty();
        Self {
            required,
            peers,
            waiting: Mutex::default(),
            ready: watch::Sender::new(ready),
        }
    }

    /// Whether the node has caught up (or gave up waiting).
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves once the node is ready.
    pub async fn wait(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Origins not caught up with yet (empty once ready).
    pub fn waiting(&self) -> Vec<String> {
        if self.is_ready() {
            return Vec::new();
        }
        let w = self.waiting.lock().expect("readiness lock");
        self.required
            .iter()
            .filter(|o| !w.caught_up.contains(*o))
            .cloned()
            .collect()
    }

    /// `peer` completed a full exchange in which it offered `offered` (origin -> the size of
    /// the validly signed checkpoint it offered, the largest if several), after which the
    /// node holds `held(origin)` of each; `frozen(origin)` says whether it is frozen.
    pub fn exchange_completed(
        &self,
        peer: &str,
        offered: &BTreeMap<String, u64>,
        held: impl Fn(&str) -> u64,
        frozen: impl Fn(&str) -> bool,
    ) {
        if self.is_ready() {
            return;
        }
        let mut w = self.waiting.lock().expect("readiness lock");
        for origin in &self.required {
            if w.caught_up.contains(origin) {
                continue;
            }
            let done = frozen(origin)
                || match offered.get(origin) {
                    Some(&size) => held(origin) >= size,
                    None => {
                        let absent = w.absent_at.entry(origin.clone()).or_default();
                        absent.insert(peer.to_owned());
                        self.peers.is_subset(absent)
                    }
                };
            if done {
                w.caught_up.insert(origin.clone());
            }
        }
        if w.caught_up.len() == self.required.len() {
            tracing::info!(%peer, "caught up with every replicated origin: ready");
            self.ready.send_replace(true);
        }
    }

    /// Becomes ready without having caught up (`[sync] ready_timeout_ms`); returns the origins
    /// it had not caught up with.
    pub fn give_up(&self) -> Vec<String> {
        let waiting = self.waiting();
        self.ready.send_replace(true);
        waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn offers(items: &[(&str, u64)]) -> BTreeMap<String, u64> {
        items.iter().map(|(o, n)| (o.to_string(), *n)).collect()
    }

    #[test]
    fn ready_at_once_without_peers_or_origins() {
        assert!(Readiness::default().is_ready());
        assert!(Readiness::waiting_for(set(&["a"]), set(&[])).is_ready());
        assert!(Readiness::waiting_for(set(&[]), set(&["p"])).is_ready());
        assert!(!Readiness::waiting_for(set(&["a"]), set(&["p"])).is_ready());
    }

    #[test]
    fn waits_until_it_holds_what_one_peer_offered_of_every_origin() {
        let r = Readiness::waiting_for(set(&["a", "b"]), set(&["p", "q"]));
        let held = |o: &str| if o == "a" { 200_000 } else { 0 };
        // p offers a (held) and b (not held yet): b still waiting.
        r.exchange_completed("p", &offers(&[("a", 200_000), ("b", 5)]), held, |_| false);
        assert!(!r.is_ready());
        assert_eq!(r.waiting(), vec!["b".to_string()]);
        // q does not have b; p still has: b is not "absent everywhere".
        r.exchange_completed("q", &offers(&[("a", 200_000)]), held, |_| false);
        assert!(!r.is_ready());
        // p again, after b was replicated.
        r.exchange_completed("p", &offers(&[("b", 5)]), |_| 200_000, |_| false);
        assert!(r.is_ready());
        assert!(r.waiting().is_empty());
    }

    #[test]
    fn an_origin_no_peer_has_counts_once_every_peer_said_so() {
        let r = Readiness::waiting_for(set(&["a"]), set(&["p", "q"]));
        r.exchange_completed("p", &offers(&[]), |_| 0, |_| false);
        assert!(!r.is_ready(), "q may have it");
        r.exchange_completed("p", &offers(&[]), |_| 0, |_| false);
        assert!(!r.is_ready(), "the same peer twice is still one peer");
        r.exchange_completed("q", &offers(&[]), |_| 0, |_| false);
        assert!(r.is_ready());
    }

    #[test]
    fn frozen_origins_and_giving_up_end_the_wait() {
        let r = Readiness::waiting_for(set(&["a", "b"]), set(&["p"]));
        r.exchange_completed("p", &offers(&[("a", 9), ("b", 9)]), |_| 0, |o| o == "a");
        assert_eq!(r.waiting(), vec!["b".to_string()]);
        assert_eq!(r.give_up(), vec!["b".to_string()]);
        assert!(r.is_ready());
    }
}
