//! What the sync loop remembers of its peers' offers: the largest verified checkpoint each
//! peer has offered per origin and channel, to catch a peer that goes back to an older one (a
//! replay); and the checkpoints found too far ahead to fetch, so they are not fetched again on
//! every poll. (What operators see of each peer is `node::PeerStatus`.)

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

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

/// Most too-large checkpoints remembered before the set is cleared.
const MAX_TOO_LARGE: usize = 4096;

/// Offers seen by the sync loop, shared by its per-peer tasks.
#[derive(Debug, Default)]
pub struct Offers {
    /// `(peer, origin, channel)` -> largest verified checkpoint offered: `(size, note)`.
    offers: Mutex<HashMap<OfferKey, (u64, Vec<u8>)>>,
    /// `(peer, origin, from, size)` of checkpoints too far ahead of us to fetch.
    too_large: Mutex<HashSet<(String, String, u64, u64)>>,
}

impl Offers {
    /// Records that `peer` offered a validly signed checkpoint of `origin` of `size` (both
    /// read from the verified note) on `channel`. Returns the earlier, larger offer
    /// `(size, note)` when this one goes back from it (nothing is updated then). Only
    /// configured peers and trusted origins get here, so the map is bounded by the
    /// configuration.
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

    /// Remembers that `peer`'s checkpoint of `origin` at `size` is too far ahead of `from`
    /// to fetch. Bounded: the set is cleared when full.
    pub fn set_too_large(&self, peer: &str, origin: &str, from: u64, size: u64) {
        let mut t = self.too_large.lock().expect("too large lock");
        if t.len() >= MAX_TOO_LARGE {
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
