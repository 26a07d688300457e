//! Deciding what a peer's checkpoint means, and replicating the entries it covers.
//!
//! A checkpoint is only ever believed after its origin's signature verifies against the key in
//! our `[[trust]]` list (strict Ed25519); from then on only the verified note's size and root
//! count, never the unsigned fields beside it. Entries are fetched here and handed to the node's
//! replica service, which commits them only when our stored tree plus the fetched leaves hash to
//! exactly that signed root. Two validly signed checkpoints that disagree (same size, different
//! roots; or a smaller one that is not a prefix of what we hold) prove the origin equivocated:
//! both notes are kept as evidence and the origin is frozen. What to keep as evidence is decided
//! here; the node keeps it.

use crate::config::Policy;
use crate::federation::client::PeerChannel as Channel;
use crate::federation::peers::Offers;
use crate::node::{Applied, Judged, Node, NodeError, Reason, Report};
use crate::store::StoredCheckpoint;
use futures::StreamExt;
use redline_proto::checkpoint::SignedCheckpoint;
use redline_proto::consistency::{self, Judgement, TreeHead};
use redline_proto::entry::MAX_ENTRY_BYTES;
use redline_proto::merkle::{self, Hash};
use redline_proto::pb::{self, federation_client::FederationClient, GetEntriesRequest};
use std::time::Duration;
use thiserror::Error;

/// What a peer's checkpoint means to us. Every variant past `Frozen` carries the verified
/// checkpoint: its size and root are the signed ones.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Not an origin we trust (noted for operators) or one we reject: ignored.
    Ignored,
    /// Refused (bad signature, malformed, our own origin ahead of us…); evidence kept.
    Refused(String),
    /// The origin is frozen after equivocation.
    Frozen,
    /// Older than what we hold and consistent with it.
    Stale(SignedCheckpoint),
    /// Exactly what we hold.
    Current(SignedCheckpoint),
    /// Newer: we should fetch up to it.
    Ahead(SignedCheckpoint),
    /// Between the prefix we hold and the larger signed checkpoint we are catching up to:
    /// nothing to fetch for it (see `Judgement::BelowTarget`).
    BelowTarget(SignedCheckpoint),
    /// Proof of equivocation; evidence stored, origin frozen.
    Equivocation,
}

impl Verdict {
    /// The verified checkpoint of a verdict that has one and proves nothing wrong.
    pub fn verified(&self) -> Option<&SignedCheckpoint> {
        match self {
            Verdict::Stale(v)
            | Verdict::Current(v)
            | Verdict::Ahead(v)
            | Verdict::BelowTarget(v) => Some(v),
            Verdict::Ignored | Verdict::Refused(_) | Verdict::Frozen | Verdict::Equivocation => {
                None
            }
        }
    }
}

/// Entries a peer sent that are not what was asked for.
#[derive(Debug, Error)]
pub enum BadEntries {
    #[error("expected entry {expected}, got {got}")]
    WrongIndex { expected: u64, got: u64 },
    #[error("entry {index} is {len} bytes, over {MAX_ENTRY_BYTES}")]
    Oversized { index: u64, len: usize },
    #[error("entry {index}: {message}")]
    OverMessageLimit { index: u64, message: String },
    #[error("asked for entries up to {asked}, stream ended at {ended}")]
    EndedEarly { asked: u64, ended: u64 },
    #[error("entries {held}..{size} from {peer} give the prefix root {} of size {size}, which no proof reconciles with the origin's signed tree of size {signed_size}: {error}", hex::encode(.root.0))]
    Unproven {
        held: u64,
        size: u64,
        signed_size: u64,
        peer: String,
        root: Hash,
        error: String,
    },
    #[error("consistency proof {old} -> {new}: {why}")]
    BadProof { old: u64, new: u64, why: String },
    #[error("{peer} offers a signed tree of size {size}, but its consistency proof does not show it extends the signed tree of size {target} we are catching up to: {error}")]
    TargetNotExtended {
        target: u64,
        size: u64,
        peer: String,
        error: String,
    },
    #[error("entries {held}..{size} from {peer} give root {}, the origin signed {}", hex::encode(.root.0), hex::encode(.signed.0))]
    RootMismatch {
        held: u64,
        size: u64,
        peer: String,
        root: Hash,
        signed: Hash,
    },
}

/// A checkpoint too far ahead of what we hold to fetch within `sync.max_fetch_bytes`.
#[derive(Debug, Error)]
pub enum TooLarge {
    #[error(
        "entries {start}..{next} of the {end} signed already take {held} bytes, over \
         sync.max_fetch_bytes = {budget}; nothing is merged before the whole range verifies"
    )]
    Fetched {
        start: u64,
        next: u64,
        end: u64,
        held: u64,
        budget: u64,
    },
    #[error("{peer}'s checkpoint of size {size} (already refused)")]
    Known { peer: String, size: u64 },
}

/// Replication from a peer failed.
#[derive(Debug, Error)]
pub enum ReplicationError {
    #[error("peer call failed: {0}")]
    Peer(#[from] tonic::Status),
    /// The peer did not send what was asked within `sync.fetch_timeout_ms` (a silent or
    /// dripping stream): a transport failure like `Peer`, not evidence.
    #[error("entries up to {asked} not received within {timeout_ms} ms (stopped at {stopped})")]
    Deadline {
        asked: u64,
        stopped: u64,
        timeout_ms: u64,
    },
    #[error("peer sent bad entries: {0}")]
    BadEntries(#[from] BadEntries),
    #[error("checkpoint too far ahead to fetch: {0}")]
    TooLarge(#[from] TooLarge),
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// Keeps a refusal as evidence (the node deduplicates and budgets it).
pub(super) fn evidence(
    node: &Node,
    origin: &str,
    peer: &str,
    reason: Reason,
    detail: String,
    notes: Vec<Vec<u8>>,
) -> Result<(), NodeError> {
    node.evidence()
        .record(Report {
            origin: origin.to_owned(),
            peer: peer.to_owned(),
            reason,
            detail,
            notes,
        })
        .map(|_| ())
}

/// Judges a checkpoint offered by `peer` against what we hold. Records evidence and freezes the
/// origin where the checkpoint proves misbehaviour. Does not fetch anything.
pub async fn consider(node: &Node, cp: &pb::Checkpoint, peer: &str) -> Result<Verdict, NodeError> {
    let Some(trust) = node.trust().get(&cp.origin) else {
        node.peers().offered_untrusted(&cp.origin);
        return Ok(Verdict::Ignored);
    };
    if trust.policy == Some(Policy::Reject) {
        return Ok(Verdict::Ignored);
    }
    let verified = match trust.key.verify(&cp.signed_note) {
        Ok(v) => v,
        Err(e) => {
            evidence(
                node,
                &cp.origin,
                peer,
                Reason::BadSignature,
                e.to_string(),
                vec![cp.signed_note.clone()],
            )?;
            return Ok(Verdict::Refused(e.to_string()));
        }
    };
    if node.evidence().is_frozen(&verified.origin)? {
        return Ok(Verdict::Frozen);
    }
    let judged = node.replica().judge(&verified).await?;
    verdict(node, judged, verified, peer)
}

/// Acts on how a verified checkpoint compares with what we hold: evidence for a checkpoint of
/// our own origin ahead of us, evidence and freezing for equivocation.
fn verdict(
    node: &Node,
    judged: Judged,
    verified: SignedCheckpoint,
    peer: &str,
) -> Result<Verdict, NodeError> {
    let origin = verified.origin.clone();
    let held = judged.held.as_ref();
    match judged.judgement {
        Judgement::Current => Ok(Verdict::Current(verified)),
        Judgement::Stale => Ok(Verdict::Stale(verified)),
        Judgement::Ahead => Ok(Verdict::Ahead(verified)),
        Judgement::BelowTarget => Ok(Verdict::BelowTarget(verified)),
        Judgement::OwnOriginAhead => {
            // Only this node signs its own origin: a bigger validly signed tree means the key
            // was used elsewhere.
            let detail = format!(
                "a checkpoint of our own origin at size {} (we are at {}): the identity key is in use elsewhere",
                verified.size,
                held.map_or(0, |h| h.size)
            );
            tracing::error!(%peer, "{detail}");
            evidence(
                node,
                &origin,
                peer,
                Reason::OwnOriginAhead,
                detail.clone(),
                vec![verified.note],
            )?;
            Ok(Verdict::Refused(detail))
        }
        Judgement::Equivocation(why) => {
            let (held_size, held_root, held_note) = held.map_or((0, String::new(), None), |h| {
                (h.size, hex::encode(h.root.0), Some(h.note.clone()))
            });
            let detail = format!(
                "two checkpoints signed by {origin}: size {held_size} root {held_root} (held) and size {} root {} (from {peer}), which is not a prefix of it ({why})",
                verified.size,
                hex::encode(verified.root.0)
            );
            evidence(
                node,
                &origin,
                peer,
                Reason::Equivocation,
                detail,
                held_note.into_iter().chain([verified.note]).collect(),
            )?;
            node.evidence().freeze(&origin)?;
            Ok(Verdict::Equivocation)
        }
    }
}

/// Fetches the entries between what we hold and `target` from `peer` and commits them in steps
/// of at most `sync.max_fetch_bytes` each; returns the new size.
///
/// A step fetches leaves `[held, held + k)` within the budget. If they reach `target`, the
/// replica commits them when our stored tree plus them hash to the signed root. Otherwise we ask
/// the peer for a consistency proof from `held + k` to the signed size, and the replica commits
/// the prefix only when the proof reconciles the prefix root the leaves give with the origin's
/// signed root ([`crate::node::Replica::apply_prefix`]): the peer is untrusted, the signature is
/// the only authority. Each committed prefix is durable and matchable at once, and a crash or a
/// cut connection resumes from it; `max_fetch_bytes` bounds a step, never what can be joined. A
/// step that does not verify is kept as evidence and ends the session; one whose prefix no proof
/// reconciles with the signed root is not asked of that peer again.
///
/// The fetch runs without the log's writer lock: a slow or silent peer (its fetch may take up
/// to the request timeout) must not hold up replication of the same origin from other peers.
/// The replica takes the lock to verify and commit, and drops from the front of the fetched
/// leaves whatever another peer committed meanwhile.
pub async fn replicate(
    node: &Node,
    offers: &Offers,
    client: &mut FederationClient<Channel>,
    target: SignedCheckpoint,
    peer: &str,
) -> Result<u64, ReplicationError> {
    let log = node.log(&target.origin)?;
    if node.evidence().is_frozen(&target.origin)? {
        return Ok(log.state().size());
    }
    let before = log.state();
    if before.checkpoint.is_some() && target.size <= before.size() {
        let judged = node.replica().judge(&target).await?;
        verdict(node, judged, target, peer)?;
        return Ok(log.state().size());
    }
    if offers.is_too_large(peer, &target.origin, before.size(), target.size) {
        return Err(TooLarge::Known {
            peer: peer.to_owned(),
            size: target.size,
        }
        .into());
    }
    if let Some(held) = before.checkpoint.as_ref() {
        extends_target(node, offers, client, &target, held, peer).await?;
    }
    let from = log.state().size();
    if from >= target.size {
        return Ok(from);
    }
    // Once a step from this peer has proved out, the next step's fetch overlaps the current
    // step's verify and commit (they take about twice as long as the fetch, on other threads), so
    // a step costs the slower of the two, not their sum. The first step is never overlapped,
    // and a fetch ahead is dropped (its stream cancelled) as soon as the step it overlaps fails:
    // a peer whose step no proof reconciles gets exactly one step fetched, as before, and at
    // most two steps' budgets are ever held.
    let mut ahead_client = client.clone();
    let mut fetched = fetch_step(node, offers, client, &target, from, peer).await?;
    let mut proven = false;
    loop {
        let (from, end) = (fetched.from, fetched.end());
        let commit = commit_step(node, offers, &target, fetched, peer);
        let (size, ahead) = if proven && end < target.size {
            let ahead = fetch_step(node, offers, &mut ahead_client, &target, end, peer);
            tokio::pin!(commit, ahead);
            let mut ahead_done = None;
            let size = loop {
                tokio::select! {
                    size = &mut commit => break size,
                    next = &mut ahead, if ahead_done.is_none() => ahead_done = Some(next),
                }
            };
            // On a failed commit, `ahead` is dropped here unfinished.
            let size = size?;
            let next = match ahead_done {
                Some(next) => next,
                None => ahead.await,
            };
            (size, Some(next))
        } else {
            (commit.await?, None)
        };
        if size <= from || size >= target.size {
            return Ok(size);
        }
        proven = true;
        fetched = match ahead {
            Some(next) if size == end => next?,
            // Not overlapped (the first step), or the commit ended elsewhere than the step
            // fetched (it cannot today: a step commits whole or not at all): fetch from what
            // is held.
            _ => fetch_step(node, offers, client, &target, size, peer).await?,
        };
    }
}

/// Mid catch-up (`held` is a prefix of a larger signed tree, `pending`), before fetching towards
/// a `target` larger than `pending`: the peer must prove `target` extends `pending` (it holds `target`, so it
/// can). Each step's proof only ties our prefix to `target`; without this, giving up
/// `pending`'s note for `target`'s would let a fork between the two go unseen. A proof that
/// fails is kept as evidence with both notes (either the peer or the origin lies), and this
/// peer's `target` is not fetched again.
async fn extends_target(
    node: &Node,
    offers: &Offers,
    client: &mut FederationClient<Channel>,
    target: &SignedCheckpoint,
    held: &StoredCheckpoint,
    peer: &str,
) -> Result<(), ReplicationError> {
    let Some(pending) = held.proof.as_ref().filter(|p| target.size > p.signed_size) else {
        return Ok(());
    };
    let older = TreeHead {
        size: pending.signed_size,
        root: pending.signed_root,
    };
    let checked = match consistency_proof(node, client, &target.origin, older.size, target.size)
        .await
    {
        Ok(proof) => {
            let path: Vec<[u8; 32]> = proof.iter().map(|h| h.0).collect();
            consistency::extends(older, TreeHead::from(target), &path).map_err(|e| e.to_string())
        }
        Err(ReplicationError::BadEntries(bad)) => Err(bad.to_string()),
        Err(e) => return Err(e),
    };
    let Err(error) = checked else { return Ok(()) };
    offers.set_too_large(peer, &target.origin, held.size, target.size);
    let bad = BadEntries::TargetNotExtended {
        target: older.size,
        size: target.size,
        peer: peer.to_owned(),
        error,
    };
    evidence(
        node,
        &target.origin,
        peer,
        Reason::RootMismatch,
        bad.to_string(),
        vec![held.note.clone(), target.note.clone()],
    )?;
    Err(bad.into())
}

/// One bounded step of [`replicate`], fetched: the leaves from `from` and, short of the target,
/// the peer's proof that their end is a prefix of it.
#[derive(Debug)]
struct Fetched {
    from: u64,
    leaves: Vec<Vec<u8>>,
    proof: Option<Vec<Hash>>,
    took: std::time::Duration,
}

impl Fetched {
    fn end(&self) -> u64 {
        self.from + self.leaves.len() as u64
    }
}

/// Refuses a step: keeps evidence of it and, if no proof reconciles it with the signed root,
/// stops fetching it from this peer (the same range would be refused the same way: what an
/// origin signing a tree it cannot back, e.g. 2^63 leaves, would otherwise cost every poll).
/// Other refusals are retried with backoff as before.
fn refuse<T>(
    node: &Node,
    offers: &Offers,
    target: &SignedCheckpoint,
    from: u64,
    peer: &str,
    bad: BadEntries,
    reason: Reason,
) -> Result<T, ReplicationError> {
    if matches!(
        bad,
        BadEntries::Unproven { .. } | BadEntries::BadProof { .. }
    ) {
        offers.set_too_large(peer, &target.origin, from, target.size);
    }
    evidence(
        node,
        &target.origin,
        peer,
        reason,
        bad.to_string(),
        vec![target.note.clone()],
    )?;
    Err(bad.into())
}

/// Fetches the step of [`replicate`] from `from`: at most one budget of leaves, and the proof
/// from their end to the target when they stop short of it.
async fn fetch_step(
    node: &Node,
    offers: &Offers,
    client: &mut FederationClient<Channel>,
    target: &SignedCheckpoint,
    from: u64,
    peer: &str,
) -> Result<Fetched, ReplicationError> {
    let started = std::time::Instant::now();
    let leaves = match fetch(node, client, &target.origin, from, target.size).await {
        Ok(l) => l,
        Err(ReplicationError::BadEntries(bad)) => {
            return refuse(node, offers, target, from, peer, bad, Reason::BadEntries)
        }
        Err(e) => return Err(e),
    };
    let end = from + leaves.len() as u64;
    let proof = if end >= target.size {
        None
    } else {
        match consistency_proof(node, client, &target.origin, end, target.size).await {
            Ok(p) => Some(p),
            Err(ReplicationError::BadEntries(bad)) => {
                return refuse(node, offers, target, from, peer, bad, Reason::RootMismatch)
            }
            Err(e) => return Err(e),
        }
    };
    Ok(Fetched {
        from,
        leaves,
        proof,
        took: started.elapsed(),
    })
}

/// Verifies and commits a fetched step (see `Replica::apply` and `apply_prefix`). Returns the
/// size held after it.
async fn commit_step(
    node: &Node,
    offers: &Offers,
    target: &SignedCheckpoint,
    step: Fetched,
    peer: &str,
) -> Result<u64, ReplicationError> {
    let log = node.log(&target.origin)?;
    let Fetched {
        from,
        leaves,
        proof,
        took: fetched,
    } = step;
    let applied = match proof {
        None => node.replica().apply(target.clone(), from, leaves).await?,
        Some(proof) => {
            node.replica()
                .apply_prefix(target.clone(), from, leaves, proof)
                .await?
        }
    };
    let applied = (applied, fetched);
    let refuse = |bad: BadEntries, reason: Reason| -> Result<u64, ReplicationError> {
        refuse(node, offers, target, from, peer, bad, reason)
    };
    let (origin, note) = (target.origin.clone(), target.note.clone());
    match applied {
        (Applied::Committed(c), fetched) => {
            if !c.invalid.is_empty() {
                let detail = c
                    .invalid
                    .iter()
                    .take(20)
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                // Signed by the origin, so kept in the log; not matched.
                evidence(
                    node,
                    &origin,
                    peer,
                    Reason::InvalidEntries,
                    format!(
                        "{} invalid entries kept unmatched: {detail}",
                        c.invalid.len()
                    ),
                    vec![note],
                )?;
            }
            tracing::info!(
                %origin,
                size = c.checkpoint.size,
                signed_size = target.size,
                %peer,
                fetch_ms = fetched.as_millis() as u64,
                verify_ms = c.verified_in.as_millis() as u64,
                commit_ms = c.committed_in.as_millis() as u64,
                "replicated"
            );
            Ok(c.checkpoint.size)
        }
        (Applied::Frozen, _) => Ok(log.state().size()),
        (Applied::Overtaken(judged), _) => {
            verdict(node, judged, target.clone(), peer)?;
            Ok(log.state().size())
        }
        (Applied::Mismatch { held, root, .. }, _) => refuse(
            BadEntries::RootMismatch {
                held,
                size: target.size,
                peer: peer.to_owned(),
                root,
                signed: target.root,
            },
            Reason::RootMismatch,
        ),
        (
            Applied::Unproven {
                held,
                size,
                root,
                error,
            },
            _,
        ) => refuse(
            BadEntries::Unproven {
                held,
                size,
                signed_size: target.size,
                peer: peer.to_owned(),
                root,
                error: error.to_string(),
            },
            Reason::RootMismatch,
        ),
    }
}

/// Asks the peer for the consistency proof from `old` to `new` leaves of `origin`, within
/// `sync.fetch_timeout_ms`. The answer is checked for shape only (sizes, 32-byte hashes):
/// whether it proves anything is the replica's check against the signed root.
async fn consistency_proof(
    node: &Node,
    client: &mut FederationClient<Channel>,
    origin: &str,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, ReplicationError> {
    let timeout = Duration::from_millis(node.config().sync.fetch_timeout_ms);
    let mut req = tonic::Request::new(pb::GetConsistencyProofRequest {
        origin: origin.to_owned(),
        old_size: old,
        new_size: new,
    });
    req.set_timeout(timeout);
    let proof = tokio::time::timeout(timeout, client.get_consistency_proof(req))
        .await
        .map_err(|_| past_deadline(old, new, timeout))??
        .into_inner();
    let bad = |why: String| BadEntries::BadProof { old, new, why };
    if (proof.old_size, proof.new_size) != (old, new) {
        return Err(bad(format!(
            "answered for sizes {} -> {}",
            proof.old_size, proof.new_size
        ))
        .into());
    }
    proof
        .hashes
        .iter()
        .map(|h| merkle::hash_from_slice(h).map_err(|e| bad(e.to_string()).into()))
        .collect()
}

/// Streams leaves from `start` towards `end` of `origin` from a peer, checking every index and
/// size and reading no more than asked (an endless stream is cut off), each request within
/// `sync.fetch_timeout_ms` (a dripping stream is cut off too). Stops once the leaves held reach
/// `sync.max_fetch_bytes` (one step of [`replicate`]), so a step holds at most that plus one
/// entry, and always returns at least one leaf when `start < end`.
async fn fetch(
    node: &Node,
    client: &mut FederationClient<Channel>,
    origin: &str,
    start: u64,
    end: u64,
) -> Result<Vec<Vec<u8>>, ReplicationError> {
    let sync = &node.config().sync;
    let batch = sync.fetch_batch.max(1);
    let budget = sync.max_fetch_bytes;
    let mut held = 0u64;
    let mut leaves = Vec::with_capacity((end - start).min(batch) as usize);
    let mut next = start;
    let timeout = Duration::from_millis(sync.fetch_timeout_ms);
    while next < end {
        let hi = (next + batch).min(end);
        let mut req = tonic::Request::new(GetEntriesRequest {
            origin: origin.to_owned(),
            start: next,
            end: hi,
        });
        req.set_timeout(timeout);
        // `grpc-timeout` only tells the peer; tonic enforces it on neither side once the
        // response headers are in. The deadline of the whole request is kept here, so a
        // peer that drips (or never ends) its stream is cut off.
        let deadline = tokio::time::Instant::now() + timeout;
        let response = tokio::time::timeout_at(deadline, client.get_entries(req))
            .await
            .map_err(|_| past_deadline(next, hi, timeout))??;
        let mut stream = response.into_inner().take((hi - next) as usize);
        // One timer per request, not one per entry (a fetch reads hundreds of thousands).
        let expired = tokio::time::sleep_until(deadline);
        tokio::pin!(expired);
        loop {
            let item = tokio::select! {
                biased;
                item = stream.next() => item,
                _ = &mut expired => return Err(past_deadline(next, hi, timeout)),
            };
            let Some(item) = item else { break };
            let e = item.map_err(oversized_as_bad_entry(next))?;
            if e.index != next {
                return Err(BadEntries::WrongIndex {
                    expected: next,
                    got: e.index,
                }
                .into());
            }
            if e.data.len() > MAX_ENTRY_BYTES {
                return Err(BadEntries::Oversized {
                    index: next,
                    len: e.data.len(),
                }
                .into());
            }
            held += e.data.len() as u64 + 32;
            leaves.push(e.data);
            next += 1;
            if held >= budget {
                // The step is full: the rest of this stream is dropped (the peer sees it
                // cancelled) and fetched by the next step.
                return Ok(leaves);
            }
        }
        if next != hi {
            return Err(BadEntries::EndedEarly {
                asked: hi,
                ended: next,
            }
            .into());
        }
    }
    Ok(leaves)
}

fn past_deadline(next: u64, hi: u64, timeout: Duration) -> ReplicationError {
    ReplicationError::Deadline {
        asked: hi,
        stopped: next,
        timeout_ms: timeout.as_millis() as u64,
    }
}

/// A message over the client's size limit (refused by tonic from its length prefix, before
/// it is read) is an entry over `MAX_ENTRY_BYTES`: bad entries, not a transport failure.
fn oversized_as_bad_entry(index: u64) -> impl Fn(tonic::Status) -> ReplicationError {
    move |s| {
        if s.code() == tonic::Code::OutOfRange && s.message().contains("message length too large") {
            BadEntries::OverMessageLimit {
                index,
                message: s.message().to_owned(),
            }
            .into()
        } else {
            ReplicationError::Peer(s)
        }
    }
}
