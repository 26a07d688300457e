//! Deciding what a peer's checkpoint means, and replicating the entries it covers.
//!
//! A checkpoint is only ever believed after its origin's signature verifies against the key in
//! our `[[trust]]` list (strict Ed25519). Entries are only ever merged when our stored tree plus
//! the fetched leaves hash to exactly that signed root; they and the checkpoint are then committed
//! in one atomic, flushed sled batch. A relay can therefore neither forge, alter, reorder nor
//! drop entries: each of those changes the root. Two validly signed checkpoints that disagree
//! (same size, different roots; or a smaller one that is not a prefix of what we hold) prove the
//! origin equivocated: both notes are stored as evidence and the origin is frozen.

use crate::config::Policy;
use crate::federation::client::PeerChannel as Channel;
use crate::log::{prepare_append, LogState, Validation};
use crate::node::{Node, NodeError};
use crate::store::StoredCheckpoint;
use futures::StreamExt;
use redline_proto::checkpoint::SignedCheckpoint;
use redline_proto::consistency::{self, Judgement, TreeHead};
use redline_proto::entry::MAX_ENTRY_BYTES;
use redline_proto::merkle;
use redline_proto::pb::{self, federation_client::FederationClient, GetEntriesRequest};
use std::time::Duration;
use thiserror::Error;

/// What a peer's checkpoint means to us.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Not an origin we trust (noted for operators) or one we reject: ignored.
    Ignored,
    /// Refused (bad signature, malformed, our own origin ahead of us…); evidence kept.
    Refused(String),
    /// The origin is frozen after equivocation.
    Frozen,
    /// Older than what we hold and consistent with it.
    Stale,
    /// Exactly what we hold.
    Current,
    /// Newer: we should fetch up to it.
    Ahead(SignedCheckpoint),
    /// Proof of equivocation; evidence stored, origin frozen.
    Equivocation,
}

/// Replication from a peer failed.
#[derive(Debug, Error)]
pub enum ReplicationError {
    #[error("peer call failed: {0}")]
    Peer(#[from] tonic::Status),
    #[error("peer sent bad entries: {0}")]
    BadEntries(String),
    #[error("checkpoint too far ahead to fetch: {0}")]
    TooLarge(String),
    #[error(transparent)]
    Node(#[from] NodeError),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Records refused material as evidence, once per distinct `(origin, peer, reason, notes)`:
/// a peer that repeats the same lie on every poll does not grow the evidence tree.
pub(crate) fn evidence(
    node: &Node,
    origin: &str,
    peer: &str,
    reason: &str,
    detail: String,
    notes: Vec<Vec<u8>>,
) -> Result<(), NodeError> {
    use std::hash::{Hash as _, Hasher as _};
    let mut fp = std::collections::hash_map::DefaultHasher::new();
    (origin, peer, reason, &notes).hash(&mut fp);
    if !node.peers().first_report(fp.finish()) {
        tracing::debug!(%origin, %peer, %reason, "refused again (evidence already kept)");
        return Ok(());
    }
    if !node.peers().evidence_allowed(origin, reason) {
        node.metrics().rejected("peer", reason);
        tracing::warn!(%origin, %peer, %reason, %detail, "refused; not kept as evidence (too many {reason} records for this origin lately)");
        return Ok(());
    }
    node.record_evidence(pb::Evidence {
        id: 0,
        origin: origin.chars().take(256).collect(),
        peer: peer.to_owned(),
        reason: reason.to_owned(),
        detail,
        received_at_ms: now_ms(),
        signed_notes: notes,
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
                "bad_signature",
                e.to_string(),
                vec![cp.signed_note.clone()],
            )?;
            return Ok(Verdict::Refused(e.to_string()));
        }
    };
    if node.is_frozen(&cp.origin) {
        return Ok(Verdict::Frozen);
    }
    let log = node.log(&cp.origin)?;
    let state = log.state();
    judge(node, &state, verified, peer).await
}

/// Compares a verified checkpoint with the committed state of its log
/// (`redline_proto::consistency::judge`), and acts on what it proves.
async fn judge(
    node: &Node,
    state: &LogState,
    verified: SignedCheckpoint,
    peer: &str,
) -> Result<Verdict, NodeError> {
    let Some(ours) = state.checkpoint.clone() else {
        return Ok(Verdict::Ahead(verified));
    };
    let held = TreeHead {
        size: ours.size,
        root: ours.root,
    };
    let own = state.name == node.origin();
    let reader = node.store().hashes(state.id);
    let offered = TreeHead::from(&verified);
    let judgement = tokio::task::spawn_blocking(move || {
        consistency::judge(held, offered, own, |size| merkle::tree_root(size, &reader))
    })
    .await
    .map_err(|e| NodeError::Join(e.to_string()))??;
    match judgement {
        Judgement::Current => Ok(Verdict::Current),
        Judgement::Stale => Ok(Verdict::Stale),
        Judgement::Ahead => Ok(Verdict::Ahead(verified)),
        Judgement::OwnOriginAhead => {
            // Only this node signs its own origin: a bigger validly signed tree means the key
            // was used elsewhere.
            let detail = format!(
                "a checkpoint of our own origin at size {} (we are at {}): the identity key is in use elsewhere",
                verified.size, ours.size
            );
            tracing::error!(%peer, "{detail}");
            evidence(
                node,
                &state.name,
                peer,
                "own_origin_ahead",
                detail.clone(),
                vec![verified.note],
            )?;
            Ok(Verdict::Refused(detail))
        }
        Judgement::Equivocation(why) => {
            let detail = format!(
                "two checkpoints signed by {}: size {} root {} (held) and size {} root {} (from {peer}), which is not a prefix of it ({why})",
                state.name,
                ours.size,
                hex::encode(ours.root.0),
                verified.size,
                hex::encode(verified.root.0)
            );
            evidence(
                node,
                &state.name,
                peer,
                "equivocation",
                detail,
                vec![ours.note.clone(), verified.note.clone()],
            )?;
            node.freeze(&state.name)?;
            Ok(Verdict::Equivocation)
        }
    }
}

/// Fetches the entries between what we hold and `target` from `peer`, verifies that they give
/// the signed root, and commits them with the checkpoint. Returns the new size.
///
/// The fetch runs without the log's writer lock: a slow or silent peer (its fetch may take up
/// to the request timeout) must not hold up replication of the same origin from other peers.
/// The lock is taken for verification and commit; whatever another peer committed meanwhile
/// is dropped from the front of the fetched leaves.
pub async fn replicate(
    node: &Node,
    client: &mut FederationClient<Channel>,
    target: SignedCheckpoint,
    peer: &str,
) -> Result<u64, ReplicationError> {
    let log = node.log(&target.origin)?;
    if node.is_frozen(&target.origin) {
        return Ok(log.state().size());
    }
    let before = log.state();
    if before.checkpoint.is_some() && target.size <= before.size() {
        let _writer = log.writer.lock().await;
        let state = log.state();
        judge(node, &state, target, peer).await?;
        return Ok(log.state().size());
    }
    let from = before.size();
    if node
        .peers()
        .is_too_large(peer, &target.origin, from, target.size)
    {
        return Err(ReplicationError::TooLarge(format!(
            "{peer}'s checkpoint of size {} (already refused)",
            target.size
        )));
    }
    let started = std::time::Instant::now();
    let leaves = fetch(node, client, &target.origin, from, target.size).await;
    let fetched = started.elapsed();
    let mut leaves = match leaves {
        Ok(l) => l,
        Err(ReplicationError::BadEntries(detail)) => {
            evidence(
                node,
                &target.origin,
                peer,
                "bad_entries",
                detail.clone(),
                vec![target.note],
            )?;
            return Err(ReplicationError::BadEntries(detail));
        }
        Err(ReplicationError::TooLarge(detail)) => {
            node.peers()
                .set_too_large(peer, &target.origin, from, target.size);
            evidence(
                node,
                &target.origin,
                peer,
                "too_large",
                detail.clone(),
                vec![target.note],
            )?;
            return Err(ReplicationError::TooLarge(detail));
        }
        Err(e) => return Err(e),
    };
    let _writer = log.writer.lock().await;
    if node.is_frozen(&target.origin) {
        return Ok(log.state().size());
    }
    let state = log.state();
    // Someone else may have advanced the log while we fetched.
    if state.checkpoint.is_some() && target.size <= state.size() {
        judge(node, &state, target, peer).await?;
        return Ok(log.state().size());
    }
    if state.size() > from {
        leaves.drain(..(state.size() - from) as usize);
    }
    let (store, catalog, st) = (node.store().clone(), node.catalog().clone(), state.clone());
    let prepared = tokio::task::spawn_blocking(move || {
        prepare_append(&store, &catalog, &st, leaves, Validation::Replicated)
    })
    .await
    .map_err(|e| NodeError::Join(e.to_string()))?
    .map_err(NodeError::from)?;
    if prepared.root != target.root {
        let detail = format!(
            "entries {}..{} from {peer} give root {}, the origin signed {}",
            state.size(),
            target.size,
            hex::encode(prepared.root.0),
            hex::encode(target.root.0)
        );
        evidence(
            node,
            &target.origin,
            peer,
            "root_mismatch",
            detail.clone(),
            vec![target.note],
        )?;
        return Err(ReplicationError::BadEntries(detail));
    }
    if !prepared.plan.invalid.is_empty() {
        let detail = prepared
            .plan
            .invalid
            .iter()
            .take(20)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        // Signed by the origin, so kept in the log; not matched.
        evidence(
            node,
            &target.origin,
            peer,
            "invalid_entries",
            format!(
                "{} invalid entries kept unmatched: {detail}",
                prepared.plan.invalid.len()
            ),
            vec![target.note.clone()],
        )?;
    }
    let mut commit = prepared.commit;
    commit.checkpoint = StoredCheckpoint::from(&target);
    let verified = started.elapsed();
    let cp = node
        .commit_replicated(&log, state, commit, prepared.plan)
        .await?;
    tracing::info!(
        origin = %target.origin,
        size = cp.size,
        %peer,
        fetch_ms = fetched.as_millis() as u64,
        verify_ms = (verified - fetched).as_millis() as u64,
        commit_ms = (started.elapsed() - verified).as_millis() as u64,
        "replicated"
    );
    Ok(cp.size)
}

/// Streams leaves `[start, end)` of `origin` from a peer, checking every index and size and
/// reading no more than asked (an endless stream is cut off), each request within
/// `sync.fetch_timeout_ms` (a dripping stream is cut off too), and holding at most
/// `sync.max_fetch_bytes` (a checkpoint further ahead is refused as too large).
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
                return Err(ReplicationError::BadEntries(format!(
                    "expected entry {next}, got {}",
                    e.index
                )));
            }
            if e.data.len() > MAX_ENTRY_BYTES {
                return Err(ReplicationError::BadEntries(format!(
                    "entry {next} is {} bytes, over {MAX_ENTRY_BYTES}",
                    e.data.len()
                )));
            }
            held += e.data.len() as u64 + 32;
            if held > budget {
                return Err(ReplicationError::TooLarge(format!(
                    "entries {start}..{next} of the {end} signed already take {held} bytes, over \
                     sync.max_fetch_bytes = {budget}; nothing is merged before the whole range \
                     verifies"
                )));
            }
            leaves.push(e.data);
            next += 1;
        }
        if next != hi {
            return Err(ReplicationError::BadEntries(format!(
                "asked for entries up to {hi}, stream ended at {next}"
            )));
        }
    }
    Ok(leaves)
}

fn past_deadline(next: u64, hi: u64, timeout: Duration) -> ReplicationError {
    ReplicationError::Peer(tonic::Status::deadline_exceeded(format!(
        "entries up to {hi} not received within {} ms (stopped at {next})",
        timeout.as_millis()
    )))
}

/// A message over the client's size limit (refused by tonic from its length prefix, before
/// it is read) is an entry over `MAX_ENTRY_BYTES`: bad entries, not a transport failure.
fn oversized_as_bad_entry(index: u64) -> impl Fn(tonic::Status) -> ReplicationError {
    move |s| {
        if s.code() == tonic::Code::OutOfRange && s.message().contains("message length too large") {
            ReplicationError::BadEntries(format!("entry {index}: {}", s.message()))
        } else {
            ReplicationError::Peer(s)
        }
    }
}
