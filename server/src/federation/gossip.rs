//! Gossip received: a peer lists the checkpoints it holds. Each is considered exactly as a
//! pulled checkpoint would be ([`replicate::consider`]: verified, judged, evidence kept);
//! nothing is fetched here (the sync loop fetches from the peers it follows). The answer is
//! what this node holds, so a split view is caught by either side.
//!
//! What one caller's gossip may cost is bounded, per caller (its token, or its address when
//! tokens are off), by [`Budgets`] (`[gossip]`):
//! - a checkpoint the node already holds, byte for byte, costs nothing (an honest peer mostly
//!   gossips what we hold); an untrusted origin's costs no signature check either;
//! - every other checkpoint takes one signature check from the caller's bucket, and may only be
//!   considered while the caller's evidence bucket has room; a checkpoint that ends in a
//!   refusal (evidence) takes one from it. Checkpoints over either budget are dropped unread
//!   and counted (`rejected{source="peer",reason="gossip_budget"}`), never queued;
//! - the work runs on the blocking pool (signature checks and evidence writes are not done on
//!   runtime threads), at most [`Budgets::CONCURRENT`] calls' worth at once.

use crate::config::GossipConfig;
use crate::federation::bounded::MAX_CHECKPOINTS;
use crate::federation::replicate::{self, Verdict};
use crate::node::Node;
use redline_proto::pb::Checkpoint;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Semaphore;

/// Who is gossiping, for its budget: the token it authenticated with, or (tokens off) the
/// address it calls from. Never what it says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallerId {
    /// The name of its token.
    Token(String),
    /// Its IP address (any port).
    Address(IpAddr),
    /// Neither is known; also where callers go once [`Budgets::MAX_CALLERS`] are tracked.
    Unknown,
}

impl std::fmt::Display for CallerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallerId::Token(name) => write!(f, "token {name:?}"),
            CallerId::Address(ip) => write!(f, "{ip}"),
            CallerId::Unknown => f.write_str("an unknown caller"),
        }
    }
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, per_sec: f64, burst: f64, now: Instant) {
        let secs = now.duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + secs * per_sec).min(burst);
        self.at = now;
    }
}

/// One caller's buckets.
#[derive(Debug, Clone, Copy)]
struct Buckets {
    checks: Bucket,
    evidence: Bucket,
}

/// The per-caller budgets of gossip, and the bound on concurrent gossip work.
#[derive(Debug)]
pub struct Budgets {
    config: GossipConfig,
    callers: Mutex<HashMap<CallerId, Buckets>>,
    work: Semaphore,
}

/// Which bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Check,
    Evidence,
}

impl Budgets {
    /// Most callers tracked at once: token names are few (from the configuration), addresses
    /// are not; past this, callers whose buckets have refilled are forgotten, and if none has,
    /// new ones share the [`CallerId::Unknown`] budget.
    pub const MAX_CALLERS: usize = 1024;
    /// Gossip calls whose checkpoints are considered at once; others wait their turn (their
    /// number is bounded by the connection and stream limits, and their cost by the budgets).
    pub const CONCURRENT: usize = 2;

    /// Budgets as configured.
    pub fn new(config: GossipConfig) -> Self {
        Self {
            config,
            callers: Mutex::new(HashMap::new()),
            work: Semaphore::new(Self::CONCURRENT),
        }
    }

    fn rate(&self, kind: Kind) -> (f64, f64) {
        let c = &self.config;
        match kind {
            Kind::Check => (
                c.signature_checks_per_sec,
                f64::from(c.signature_check_burst),
            ),
            Kind::Evidence => (c.evidence_per_min / 60.0, f64::from(c.evidence_burst)),
        }
    }

    /// Runs `f` on `caller`'s bucket of `kind`, refilled to now.
    fn with<T>(&self, caller: &CallerId, kind: Kind, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let now = Instant::now();
        let mut callers = self.callers.lock().expect("gossip budget lock");
        let mut caller = caller;
        if !callers.contains_key(caller) && callers.len() >= Self::MAX_CALLERS {
            self.forget_refilled(&mut callers, now);
            if callers.len() >= Self::MAX_CALLERS {
                caller = &CallerId::Unknown;
            }
        }
        let (checks, evidence) = (self.rate(Kind::Check).1, self.rate(Kind::Evidence).1);
        let b = callers.entry(caller.clone()).or_insert(Buckets {
            checks: Bucket::full(checks, now),
            evidence: Bucket::full(evidence, now),
        });
        let (per_sec, burst) = self.rate(kind);
        let bucket = match kind {
            Kind::Check => &mut b.checks,
            Kind::Evidence => &mut b.evidence,
        };
        bucket.refill(per_sec, burst, now);
        f(bucket)
    }

    /// Drops callers whose buckets are full again: forgetting them changes nothing.
    fn forget_refilled(&self, callers: &mut HashMap<CallerId, Buckets>, now: Instant) {
        let (check, evidence) = (self.rate(Kind::Check), self.rate(Kind::Evidence));
        callers.retain(|id, b| {
            let (mut c, mut e) = (b.checks, b.evidence);
            c.refill(check.0, check.1, now);
            e.refill(evidence.0, evidence.1, now);
            *id == CallerId::Unknown || c.tokens < check.1 || e.tokens < evidence.1
        });
    }

    /// Takes one from `caller`'s bucket of `kind` if it has one.
    fn take(&self, caller: &CallerId, kind: Kind) -> bool {
        self.with(caller, kind, |b| {
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                true
            } else {
                false
            }
        })
    }

    /// Whether `caller`'s bucket of `kind` has one left (without taking it).
    fn has(&self, caller: &CallerId, kind: Kind) -> bool {
        self.with(caller, kind, |b| b.tokens >= 1.0)
    }

    /// Takes one from `caller`'s bucket of `kind`, going below zero if need be (a refusal that
    /// already happened is paid for after the fact).
    fn charge(&self, caller: &CallerId, kind: Kind) {
        self.with(caller, kind, |b| b.tokens -= 1.0);
    }

    /// Callers tracked (for tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.callers.lock().expect("gossip budget lock").len()
    }
}

/// What became of one call's checkpoints.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Considered {
    /// Considered (verified and judged).
    pub considered: usize,
    /// The node holds exactly this checkpoint already: nothing to do.
    pub held: usize,
    /// Dropped over the caller's budget.
    pub dropped: usize,
}

/// Considers `checkpoints` gossiped by `caller` (naming itself `from`) at `peer` (`skipped`
/// more were not decoded), within its budgets, and returns the checkpoints this node holds.
pub async fn received(
    node: &Arc<Node>,
    budgets: &Arc<Budgets>,
    caller: CallerId,
    peer: Option<std::net::SocketAddr>,
    from: &str,
    checkpoints: Vec<Checkpoint>,
    skipped: u64,
) -> Vec<Checkpoint> {
    let peer = peer.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    let from = format!(
        "gossip from {:?} at {peer}",
        from.chars().take(64).collect::<String>()
    );
    if skipped > 0 {
        tracing::warn!(%from, skipped, "gossip listed more than {MAX_CHECKPOINTS} checkpoints; the rest were ignored");
    }
    if let Ok(_permit) = budgets.work.acquire().await {
        let (n, b, c, f) = (node.clone(), budgets.clone(), caller.clone(), from.clone());
        let handle = tokio::runtime::Handle::current();
        let done = tokio::task::spawn_blocking(move || {
            handle.block_on(consider_all(&n, &b, &c, &f, checkpoints))
        })
        .await;
        match done {
            Ok(done) if done.dropped > 0 => {
                for _ in 0..done.dropped {
                    node.metrics().rejected("peer", "gossip_budget");
                }
                tracing::warn!(%from, %caller, dropped = done.dropped, considered = done.considered, "gossip over the caller's budget; the rest of its checkpoints were dropped");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "considering gossip failed"),
        }
    }
    node.logs().held_checkpoints()
}

/// Considers each checkpoint within `caller`'s budgets. Meant for the blocking pool: signature
/// checks and evidence writes happen in here.
async fn consider_all(
    node: &Node,
    budgets: &Budgets,
    caller: &CallerId,
    from: &str,
    checkpoints: Vec<Checkpoint>,
) -> Considered {
    let mut out = Considered::default();
    for cp in &checkpoints {
        let checked = node
            .trust()
            .get(&cp.origin)
            .is_some_and(|t| t.policy != Some(crate::config::Policy::Reject));
        if checked {
            let held = node
                .log(&cp.origin)
                .ok()
                .and_then(|l| l.state().checkpoint)
                .is_some_and(|h| h.note == cp.signed_note);
            if held {
                out.held += 1;
                continue;
            }
            if !budgets.has(caller, Kind::Evidence) || !budgets.take(caller, Kind::Check) {
                out.dropped += 1;
                continue;
            }
        }
        out.considered += 1;
        match replicate::consider(node, cp, from).await {
            Ok(Verdict::Refused(_) | Verdict::Equivocation) => {
                budgets.charge(caller, Kind::Evidence)
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "considering gossip failed"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets(checks: u32, evidence: u32) -> Budgets {
        Budgets::new(GossipConfig {
            signature_checks_per_sec: 0.0,
            signature_check_burst: checks,
            evidence_per_min: 0.0,
            evidence_burst: evidence,
        })
    }

    #[test]
    fn each_caller_has_its_own_budget_whatever_it_calls_itself() {
        let b = budgets(3, 1);
        let a = CallerId::Token("peer-a".into());
        let other = CallerId::Token("peer-b".into());
        assert_eq!((0..10).filter(|_| b.take(&a, Kind::Check)).count(), 3);
        assert!(
            b.take(&other, Kind::Check),
            "another caller is not affected"
        );
        assert!(b.has(&a, Kind::Evidence));
        b.charge(&a, Kind::Evidence);
        b.charge(&a, Kind::Evidence);
        assert!(!b.has(&a, Kind::Evidence));
        assert!(b.has(&other, Kind::Evidence));
    }

    #[test]
    fn callers_tracked_are_bounded_and_overflow_shares_one_budget() {
        let b = budgets(2, 1);
        for i in 0..Budgets::MAX_CALLERS as u32 {
            let id = CallerId::Address(IpAddr::from(i.to_be_bytes()));
            assert!(b.take(&id, Kind::Check));
        }
        // Every tracked caller has spent something: new ones share the unknown budget.
        let new = |i: u32| CallerId::Address(IpAddr::from((i + 1_000_000).to_be_bytes()));
        assert!(b.take(&new(1), Kind::Check));
        assert!(b.take(&new(2), Kind::Check));
        assert!(
            !b.take(&new(3), Kind::Check),
            "the overflow budget is shared"
        );
        assert!(b.tracked() <= Budgets::MAX_CALLERS + 1);
    }

    #[test]
    fn buckets_refill_at_their_rate() {
        let b = Budgets::new(GossipConfig {
            signature_checks_per_sec: 1000.0,
            signature_check_burst: 1,
            ..GossipConfig::default()
        });
        let a = CallerId::Unknown;
        assert!(b.take(&a, Kind::Check));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(b.take(&a, Kind::Check));
    }
}
