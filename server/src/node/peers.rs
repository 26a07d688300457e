//! What operators see of the node's peers: each configured peer's last successful exchange and
//! last error, and the origins peers offered that this node does not trust. The federation
//! loop reports into it; `Status` and the metrics read it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

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

/// Peers and untrusted offers.
#[derive(Debug, Default)]
pub struct PeerStatus {
    peers: RwLock<BTreeMap<String, PeerState>>,
    untrusted: RwLock<BTreeSet<String>>,
}

impl PeerStatus {
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
