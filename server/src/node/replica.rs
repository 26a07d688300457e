//! Other origins' logs: how a verified checkpoint compares with what the node holds, and the one
//! commit path for replicated data.
//!
//! [`Replica::apply`] takes a checkpoint whose signature the caller verified against the
//! origin's trusted key, and the leaves it fetched after what it saw held. Under the log's
//! writer lock it re-reads the committed state (another peer may have advanced the log while
//! the leaves were fetched), plans the leaves with the protocol's replay
//! ([`Validation::Replicated`]: invalid leaves are kept, never matched), and commits only when
//! the stored tree plus the leaves hash to exactly the signed root. A relay can therefore neither
//! forge, alter, reorder nor drop entries: each of those changes the root. What to make of a
//! refusal (evidence, freezing) is the caller's decision; this returns what happened.
//!
//! [`Replica::apply_prefix`] is the same commit for one step of a catch-up in bounded steps:
//! the leaves end short of the signed size, and instead of the signed root they must give a
//! root that an RFC 9162 consistency proof (fetched from any peer, so untrusted) shows to be a
//! prefix of the origin's signed tree ([`consistency::extends`] against the signed root, never
//! against anything the relay says). The prefix is then committed with the signed note and the
//! proof as its checkpoint ([`StoredCheckpoint::proof`]): every committed prefix is provably
//! part of the origin's signed log, so its entries are matched at once.

use super::evidence::Evidence;
use super::logs::{LogHandle, Logs};
use super::{blocking, NodeError, Result};
use crate::catalog::Catalog;
use crate::log::{prepare_append, root_with, LogState, Plan, Validation};
use crate::store::PrefixProof;
use crate::store::{Commit, Store, StoredCheckpoint};
use redline_proto::checkpoint::SignedCheckpoint;
use redline_proto::consistency::{self, ExtendsError, Judgement, TreeHead};
use redline_proto::merkle::{self, Hash};
use redline_proto::replay::InvalidLeaf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a verified checkpoint compares with the committed state of its log.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// The checkpoint held when it was judged (none before the first replicated batch).
    pub held: Option<StoredCheckpoint>,
    /// The verdict of `redline_proto::consistency::judge` (`Ahead` when nothing is held).
    pub judgement: Judgement,
}

/// A batch committed by [`Replica::apply`].
#[derive(Debug)]
pub struct Committed {
    /// The new checkpoint (the signed one applied).
    pub checkpoint: StoredCheckpoint,
    /// Leaves that break the log's rules: kept in the log (the origin signed them), unmatched.
    pub invalid: Vec<InvalidLeaf>,
    /// Time spent planning and hashing the batch.
    pub verified_in: Duration,
    /// Time spent writing it and updating the catalog.
    pub committed_in: Duration,
}

/// What [`Replica::apply`] did.
#[derive(Debug)]
pub enum Applied {
    /// The leaves verified and are committed.
    Committed(Committed),
    /// The origin is frozen after proof of equivocation: nothing was done.
    Frozen,
    /// The log reached the checkpoint's size while the leaves were fetched: nothing was
    /// committed, and this is how the checkpoint compares with what is held now.
    Overtaken(Judged),
    /// The held log plus the leaves give a prefix that the consistency proof does not show to
    /// be part of the signed tree (altered leaves, or a bad proof): nothing committed.
    Unproven {
        /// Size the node held (the leaves start there).
        held: u64,
        /// Size the leaves give.
        size: u64,
        /// Root they give.
        root: Hash,
        /// Why the proof does not reconcile that root with the signed one.
        error: ExtendsError,
    },
    /// The held log plus the leaves give another tree than the one signed: nothing committed.
    Mismatch {
        /// Size the node held (the leaves start there).
        held: u64,
        /// Size the leaves give.
        size: u64,
        /// Root they give.
        root: Hash,
    },
}

/// Replicated batches with fewer activations are committed like own ones: a thread costs more
/// than the overlap saves.
const OVERLAP_MIN_ACTIVATIONS: usize = 8192;

/// The replica service.
#[derive(Debug)]
pub struct Replica {
    logs: Arc<Logs>,
    store: Store,
    catalog: Arc<Catalog>,
    evidence: Arc<Evidence>,
}

impl Replica {
    pub(super) fn new(
        logs: Arc<Logs>,
        store: Store,
        catalog: Arc<Catalog>,
        evidence: Arc<Evidence>,
    ) -> Self {
        Self {
            logs,
            store,
            catalog,
            evidence,
        }
    }

    /// Judges a verified checkpoint against the committed state of its log (a snapshot: the
    /// stored tree below the held size never changes).
    pub async fn judge(&self, verified: &SignedCheckpoint) -> Result<Judged> {
        let state = self.logs.get(&verified.origin)?.state();
        self.judge_state(&state, verified).await
    }

    async fn judge_state(&self, state: &LogState, verified: &SignedCheckpoint) -> Result<Judged> {
        let Some(held) = state.checkpoint.clone() else {
            return Ok(Judged {
                held: None,
                judgement: Judgement::Ahead,
            });
        };
        let own = self
            .logs
            .trust()
            .get(&state.name)
            .is_some_and(|t| t.policy.is_none());
        let head = TreeHead {
            size: held.size,
            root: held.root,
        };
        let offered = TreeHead::from(verified);
        // Mid catch-up the note held signs a larger tree than the prefix: offers are compared
        // with that signed target too.
        let target = held.proof.as_ref().map(|p| TreeHead {
            size: p.signed_size,
            root: p.signed_root,
        });
        let (store, id) = (self.store.clone(), state.id);
        let judgement = blocking(move || {
            store.with_hashes(id, |r| {
                let root_at = |size| merkle::tree_root(size, r);
                match target {
                    Some(target) => consistency::judge_towards(head, target, offered, own, root_at),
                    None => consistency::judge(head, offered, own, root_at),
                }
            })
        })
        .await???;
        Ok(Judged {
            held: Some(held),
            judgement,
        })
    }

    /// Applies `target` (verified by the caller) with `leaves`, the leaves from index `from`
    /// up to its size; the only way replicated data is committed. See the module documentation.
    pub async fn apply(
        &self,
        target: SignedCheckpoint,
        from: u64,
        leaves: Vec<Vec<u8>>,
    ) -> Result<Applied> {
        self.apply_step(target, from, leaves, None).await
    }

    /// Applies leaves from index `from` that end short of `target` (verified by the caller):
    /// committed only when `proof` is an RFC 9162 consistency proof from the tree they give
    /// (our stored tree plus them) to `target`'s signed size and root. The checkpoint stored is
    /// then `target`'s note with the proof ([`StoredCheckpoint::proof`]). Leaves that reach
    /// `target`'s size are applied as by [`apply`](Self::apply) (the proof is not needed).
    pub async fn apply_prefix(
        &self,
        target: SignedCheckpoint,
        from: u64,
        leaves: Vec<Vec<u8>>,
        proof: Vec<Hash>,
    ) -> Result<Applied> {
        self.apply_step(target, from, leaves, Some(proof)).await
    }

    async fn apply_step(
        &self,
        target: SignedCheckpoint,
        from: u64,
        mut leaves: Vec<Vec<u8>>,
        proof: Option<Vec<Hash>>,
    ) -> Result<Applied> {
        let log = self.logs.get(&target.origin)?;
        let _writer = log.lock().await;
        if self.evidence.is_frozen(&target.origin)? {
            return Ok(Applied::Frozen);
        }
        let state = log.state();
        if state.checkpoint.is_some() && target.size <= state.size() {
            return Ok(Applied::Overtaken(self.judge_state(&state, &target).await?));
        }
        let held = state.size();
        if held < from {
            return Err(NodeError::BadRange(format!(
                "leaves from {from} do not continue {}'s log at size {held}",
                target.origin
            )));
        }
        // A step's proof is for the prefix it ends at: if another peer committed past that
        // meanwhile, the step has nothing left to prove.
        let end = from + leaves.len() as u64;
        if proof.is_some() && state.checkpoint.is_some() && held >= end {
            return Ok(Applied::Overtaken(self.judge_state(&state, &target).await?));
        }
        // Drop what another peer committed meanwhile.
        leaves.drain(..((held - from) as usize).min(leaves.len()));
        let started = Instant::now();
        // A step short of the signed tree is checked against the proof before it is planned:
        // planning costs several times the leaves' bytes, the root only their hashes.
        if let Some(hashes) = proof.as_ref().filter(|_| end < target.size) {
            let (store, st, l) = (self.store.clone(), state.clone(), leaves);
            let ((size, root), l) = blocking(move || {
                let r = root_with(&store, &st, &l);
                r.map(|r| (r, l))
            })
            .await??;
            leaves = l;
            let path: Vec<[u8; 32]> = hashes.iter().map(|h| h.0).collect();
            let prefix = TreeHead { size, root };
            if let Err(error) = consistency::extends(prefix, TreeHead::from(&target), &path) {
                return Ok(Applied::Unproven {
                    held,
                    size,
                    root,
                    error,
                });
            }
        }
        let (store, catalog, st) = (self.store.clone(), self.catalog.clone(), state.clone());
        let mut prepared =
            blocking(move || prepare_append(&store, &catalog, &st, leaves, Validation::Replicated))
                .await??;
        let mut checkpoint = StoredCheckpoint::from(&target);
        match proof {
            Some(hashes) if prepared.size < target.size => {
                let prefix = TreeHead {
                    size: prepared.size,
                    root: prepared.root,
                };
                let path: Vec<[u8; 32]> = hashes.iter().map(|h| h.0).collect();
                if let Err(error) = consistency::extends(prefix, TreeHead::from(&target), &path) {
                    return Ok(Applied::Unproven {
                        held,
                        size: prepared.size,
                        root: prepared.root,
                        error,
                    });
                }
                checkpoint.size = prepared.size;
                checkpoint.root = prepared.root;
                checkpoint.proof = Some(PrefixProof {
                    signed_size: target.size,
                    signed_root: target.root,
                    hashes,
                });
            }
            _ if prepared.size != target.size || prepared.root != target.root => {
                return Ok(Applied::Mismatch {
                    held,
                    size: prepared.size,
                    root: prepared.root,
                });
            }
            _ => {}
        }
        let invalid = std::mem::take(&mut prepared.plan.invalid);
        let mut commit = prepared.commit;
        commit.checkpoint = checkpoint;
        let verified_in = started.elapsed();
        let checkpoint = self.commit(&log, state, commit, prepared.plan).await?;
        Ok(Applied::Committed(Committed {
            checkpoint,
            invalid,
            verified_in,
            committed_in: started.elapsed() - verified_in,
        }))
    }

    /// Writes a verified batch of another origin's log, with the catalog's activations built
    /// while the store writes the batch instead of after it: for a follower catching up on a
    /// million entries the two take about as long as each other, and they run on different
    /// cores.
    ///
    /// The new entries may thus be matchable a moment before they are durable. That is safe for
    /// replicated entries only: the origin signed them, so they are listings whatever happens
    /// here. If the write fails, the activations are removed again before the error returns.
    /// Deactivations (retractions of earlier entries) still wait for the write. The caller holds
    /// the log's writer lock.
    async fn commit(
        &self,
        log: &LogHandle,
        state: LogState,
        commit: Commit,
        plan: Plan,
    ) -> Result<StoredCheckpoint> {
        let checkpoint = commit.checkpoint.clone();
        let first_index = commit.first_index;
        let (store, catalog, id) = (self.store.clone(), self.catalog.clone(), state.id);
        blocking(move || {
            let early = plan.activate.len() >= OVERLAP_MIN_ACTIVATIONS;
            let (written, activated) = std::thread::scope(|scope| {
                // Without a thread (small batch, or none to be had), activate after the write.
                let activating = early
                    .then(|| {
                        std::thread::Builder::new()
                            .name("catalog-apply".into())
                            .spawn_scoped(scope, || catalog.apply(id, &plan.activate, &[]))
                            .ok()
                    })
                    .flatten();
                let written = store.commit_blocking(commit);
                let activated = activating
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .is_some();
                (written, activated)
            });
            match (written, activated) {
                (Ok(()), true) => catalog.apply(id, &[], &plan.deactivate),
                (Ok(()), false) => catalog.apply(id, &plan.activate, &plan.deactivate),
                (Err(e), true) => {
                    let added: Vec<u64> = plan.activate.iter().map(|a| a.index).collect();
                    catalog.apply(id, &[], &added);
                    return Err(e);
                }
                (Err(e), false) => return Err(e),
            }
            Ok(())
        })
        .await??;
        Ok(self.logs.publish(log, state, checkpoint, first_index))
    }
}

#[cfg(test)]
mod tests {
    //! The replica's commit protocol against a real node: what is committed, and what is not.
    use crate::config::{Config, Policy, TrustConfig};
    use crate::node::{Applied, Node};
    use redline_proto::checkpoint::{OriginSigner, SignedCheckpoint};
    use redline_proto::consistency::Judgement;
    use redline_proto::entry;
    use redline_proto::merkle::{consistency_proof, leaf_hash, MemoryHashes};
    use redline_proto::pb::AddEntry;
    use std::sync::Arc;

    const PEER: &str = "peer.example";

    fn add(n: u8) -> Vec<u8> {
        entry::encode_add(
            AddEntry {
                signal_type: "pdq".into(),
                hash: vec![n; 32],
                quality: 100,
                ..Default::default()
            },
            1,
        )
        .unwrap()
    }

    /// The origin's signed checkpoint of `leaves`.
    fn signed(origin: &OriginSigner, leaves: &[Vec<u8>]) -> SignedCheckpoint {
        let mut tree = MemoryHashes::new();
        for l in leaves {
            tree.push_leaf_hash(leaf_hash(l));
        }
        origin
            .sign_checkpoint(leaves.len() as u64, tree.root())
            .unwrap()
    }

    /// A node following `origin` (accepted), in `dir`.
    async fn follower(dir: &std::path::Path, origin: &OriginSigner) -> Arc<Node> {
        let mut config = Config::new("follower.example", dir);
        config.trust = vec![TrustConfig {
            origin: origin.public().name().to_owned(),
            key: origin.public().verifier_key(),
            policy: Policy::Accept,
        }];
        Node::open(config).await.unwrap()
    }

    #[tokio::test]
    async fn commits_only_leaves_that_give_the_signed_root() {
        let dir = tempfile::tempdir().unwrap();
        let origin = OriginSigner::generate(PEER).unwrap();
        let node = follower(dir.path(), &origin).await;
        let leaves: Vec<Vec<u8>> = (0..5).map(add).collect();
        let target = signed(&origin, &leaves);

        // Altered leaves: nothing committed, nothing matchable.
        let mut forged = leaves.clone();
        forged[2] = add(99);
        let applied = node
            .replica()
            .apply(target.clone(), 0, forged)
            .await
            .unwrap();
        assert!(
            matches!(
                applied,
                Applied::Mismatch {
                    held: 0,
                    size: 5,
                    ..
                }
            ),
            "{applied:?}"
        );
        // Too few leaves for the signed size: refused the same way.
        let applied = node
            .replica()
            .apply(target.clone(), 0, leaves[..4].to_vec())
            .await
            .unwrap();
        assert!(
            matches!(applied, Applied::Mismatch { size: 4, .. }),
            "{applied:?}"
        );
        assert_eq!(node.log(PEER).unwrap().state().size(), 0);
        assert!(node
            .matching()
            .search(redline_proto::signal::SignalType::Pdq, &[99; 32], 0)
            .is_empty());

        // The true leaves: committed with the origin's note, announced, matchable.
        let mut events = node.subscribe();
        let applied = node
            .replica()
            .apply(target.clone(), 0, leaves.clone())
            .await
            .unwrap();
        let Applied::Committed(c) = applied else {
            panic!("{applied:?}")
        };
        assert_eq!((c.checkpoint.size, c.checkpoint.root), (5, target.root));
        assert_eq!(c.checkpoint.note, target.note);
        assert!(c.invalid.is_empty());
        let ev = events.try_recv().unwrap();
        assert_eq!((ev.origin.as_str(), ev.first_index), (PEER, 0));
        let id = node.log(PEER).unwrap().state().id;
        assert_eq!(node.logs().active_count(id), 5);

        // The same checkpoint again (another peer was faster): judged, not committed twice.
        let applied = node.replica().apply(target, 0, leaves).await.unwrap();
        let Applied::Overtaken(judged) = applied else {
            panic!("{applied:?}")
        };
        assert_eq!(judged.judgement, Judgement::Current);
        assert!(events.try_recv().is_err());
    }

    #[tokio::test]
    async fn drops_what_was_committed_meanwhile_and_keeps_invalid_leaves_unmatched() {
        let dir = tempfile::tempdir().unwrap();
        let origin = OriginSigner::generate(PEER).unwrap();
        let node = follower(dir.path(), &origin).await;
        let mut leaves: Vec<Vec<u8>> = (0..3).map(add).collect();
        let first = signed(&origin, &leaves);
        assert!(matches!(
            node.replica()
                .apply(first, 0, leaves.clone())
                .await
                .unwrap(),
            Applied::Committed(_)
        ));
        // A signed leaf that is no entry at all, then one more ADD.
        leaves.push(b"not an entry".to_vec());
        leaves.push(add(7));
        let target = signed(&origin, &leaves);
        // Fetched from 0 (before the first batch was committed): the first three are dropped.
        let applied = node
            .replica()
            .apply(target.clone(), 0, leaves.clone())
            .await
            .unwrap();
        let Applied::Committed(c) = applied else {
            panic!("{applied:?}")
        };
        assert_eq!(c.checkpoint.size, 5);
        assert_eq!(c.invalid.len(), 1);
        assert_eq!(c.invalid[0].index, 3);
        let id = node.log(PEER).unwrap().state().id;
        assert_eq!(node.logs().active_count(id), 4);
        assert_eq!(node.logs().leaf(id, 3).unwrap().unwrap(), b"not an entry");
    }

    #[tokio::test]
    async fn a_frozen_origin_is_not_applied_and_judging_finds_equivocation() {
        let dir = tempfile::tempdir().unwrap();
        let origin = OriginSigner::generate(PEER).unwrap();
        let node = follower(dir.path(), &origin).await;
        let leaves: Vec<Vec<u8>> = (0..4).map(add).collect();
        let target = signed(&origin, &leaves);
        node.replica()
            .apply(target.clone(), 0, leaves.clone())
            .await
            .unwrap();
        // Another history of the same origin, shorter and not a prefix.
        let other = signed(&origin, &[add(50), add(51)]);
        let judged = node.replica().judge(&other).await.unwrap();
        assert!(
            matches!(judged.judgement, Judgement::Equivocation(_)),
            "{judged:?}"
        );
        assert_eq!(judged.held.unwrap().size, 4);
        let prefix = signed(&origin, &leaves[..2]);
        assert_eq!(
            node.replica().judge(&prefix).await.unwrap().judgement,
            Judgement::Stale
        );

        node.evidence().freeze(PEER).unwrap();
        let more: Vec<Vec<u8>> = (0..6).map(add).collect();
        let applied = node
            .replica()
            .apply(signed(&origin, &more), 4, more[4..].to_vec())
            .await
            .unwrap();
        assert!(matches!(applied, Applied::Frozen), "{applied:?}");
        assert_eq!(node.log(PEER).unwrap().state().size(), 4);
    }

    /// A step of a catch-up: a prefix of the signed tree is committed only with a consistency
    /// proof from its root to the signed root, under the signed note, and is matchable at once
    /// but never offered to peers; the step that reaches the signed tree drops the proof.
    #[tokio::test]
    async fn commits_a_prefix_only_with_a_proof_to_the_signed_root() {
        let dir = tempfile::tempdir().unwrap();
        let origin = OriginSigner::generate(PEER).unwrap();
        let node = follower(dir.path(), &origin).await;
        let leaves: Vec<Vec<u8>> = (0..10).map(add).collect();
        let target = signed(&origin, &leaves);
        let mut tree = MemoryHashes::new();
        for l in &leaves {
            tree.push_leaf(l);
        }
        let proof = |n: u64| consistency_proof(n, 10, &tree).unwrap();

        // Altered prefix, and a true prefix with the proof of another size: both unproven.
        let mut forged = leaves[..4].to_vec();
        forged[1] = add(99);
        for (step, proof) in [(forged, proof(4)), (leaves[..4].to_vec(), proof(5))] {
            let applied = node
                .replica()
                .apply_prefix(target.clone(), 0, step, proof)
                .await
                .unwrap();
            assert!(
                matches!(
                    applied,
                    Applied::Unproven {
                        held: 0,
                        size: 4,
                        ..
                    }
                ),
                "{applied:?}"
            );
        }
        assert_eq!(node.log(PEER).unwrap().state().size(), 0);

        // The true prefix with its proof: committed, matchable, not offered.
        let applied = node
            .replica()
            .apply_prefix(target.clone(), 0, leaves[..4].to_vec(), proof(4))
            .await
            .unwrap();
        let Applied::Committed(c) = applied else {
            panic!("{applied:?}")
        };
        assert_eq!(
            (c.checkpoint.size, c.checkpoint.root),
            (4, tree.root_at(4).unwrap())
        );
        assert_eq!(c.checkpoint.note, target.note);
        let p = c.checkpoint.proof.clone().expect("the proof is kept");
        assert_eq!((p.signed_size, p.signed_root), (10, target.root));
        let id = node.log(PEER).unwrap().state().id;
        assert_eq!(node.logs().active_count(id), 4);
        let offered = |node: &Node| {
            node.logs()
                .held_checkpoints()
                .into_iter()
                .filter(|c| c.origin == PEER)
                .count()
        };
        assert_eq!(offered(&node), 0, "a prefix's note is offered");
        // The signed target is still ahead of the prefix.
        assert_eq!(
            node.replica().judge(&target).await.unwrap().judgement,
            Judgement::Ahead
        );

        // The last step reaches the signed tree: the note now signs what is held.
        let applied = node
            .replica()
            .apply(target.clone(), 4, leaves[4..].to_vec())
            .await
            .unwrap();
        let Applied::Committed(c) = applied else {
            panic!("{applied:?}")
        };
        assert_eq!((c.checkpoint.size, c.checkpoint.proof), (10, None));
        assert_eq!(offered(&node), 1);
        assert_eq!(node.logs().active_count(id), 10);
    }
}
