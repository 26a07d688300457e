//! Auditing an origin's log while trusting no node: the checkpoint must be signed by the origin's
//! key (given by the auditor, never taken from the node), the leaves must hash to the signed
//! root, every RETRACT must name an earlier ADD of the same log, and the log must extend what
//! the previous audit saw (so a rewritten history is caught between audits).
//!
//! The order is what makes distrust hold: the signed note is verified *first*, and from then
//! on only its size and root count. Leaves are fetched up to the signed size and no further,
//! pushed through [`LogVerifier`] (the protocol's one replay, `redline_proto::replay`, plus a
//! compact range for the root) as they arrive and then dropped, so memory does not grow with
//! what a node sends or claims: the verifier keeps 33 bytes per leaf of the *signed* log (each
//! leaf's hash and state, which later retractions may name), about 33 MB for a million entries.
//! Every proof the node serves is checked against the signed root. The checkpoint's unsigned
//! `tree_size` and `root_hash` are compared with the signed ones only to report a node that
//! misstates them.
//!
//! [`LogVerifier`] is the offline core (also used for dumps); [`Auditor`] streams from a node.

use crate::connect::{connect, with_auth, AuthChannel, BearerAuth, ClientError, NodeTarget};
use futures::{StreamExt, TryStreamExt};
use redline_proto::checkpoint::{OriginKey, SignedCheckpoint};
use redline_proto::consistency::{self, TreeHead};
use redline_proto::entry::MAX_ENTRY_BYTES;
use redline_proto::merkle::{self, CompactRange, Hash};
use redline_proto::pb::{
    audit_client::AuditClient, Checkpoint, GetCheckpointRequest, GetConsistencyProofRequest,
    GetEntriesRequest, GetInclusionProofRequest, ListOriginsRequest, OriginInfo,
};
use redline_proto::proof::{TlogProof, VerifiedProof};
use redline_proto::replay::{Effect, Empty, Replay, Replayed};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use thiserror::Error;
use tonic::transport::Channel;

/// What an earlier audit established about an origin: the size and root it verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedSize {
    /// Tree size.
    pub size: u64,
    /// Hex root.
    pub root: String,
}

/// A verified log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// Origin name.
    pub origin: String,
    /// Verified size.
    pub size: u64,
    /// Verified root, hex.
    pub root: String,
    /// ADD entries.
    pub adds: u64,
    /// RETRACT entries.
    pub retracts: u64,
    /// ADDs not retracted.
    pub active: u64,
    /// Size the origin's note signs: larger than `size` when the node was still catching up
    /// and served a prefix it proved part of the signed tree (everything up to `size` is
    /// verified; the rest is not held there yet).
    pub signed_size: u64,
    /// Size of the previous audit this one extends, if any.
    pub extends_previous: Option<u64>,
    /// Inclusion proofs from the node that were checked.
    pub inclusion_proofs_checked: u64,
    /// Leaves the origin signed that break a rule of the log: kept in the log, never active
    /// (the same rule every node applies). Counted in full, listed up to [`MAX_LISTED_INVALID`].
    pub invalid: u64,
    /// The first invalid leaves, by index, with the rule each breaks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_leaves: Vec<InvalidLeafReport>,
}

/// Invalid leaves listed by index in a report; the rest are only counted.
pub const MAX_LISTED_INVALID: usize = 100;

/// One invalid leaf of a verified log.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InvalidLeafReport {
    /// Log index.
    pub index: u64,
    /// The rule it breaks.
    pub reason: String,
}

impl AuditReport {
    /// What to remember for the next audit.
    pub fn trusted(&self) -> TrustedSize {
        TrustedSize {
            size: self.size,
            root: self.root.clone(),
        }
    }
}

/// An audit failed; each variant names the origin and, where there is one, the index.
#[derive(Debug, Error)]
pub enum AuditError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Dump(#[from] crate::dump::DumpError),
    #[error("{origin}: checkpoint does not verify against the given key: {detail}")]
    BadCheckpoint { origin: String, detail: String },
    #[error("{origin}: expected leaf {expected}, the node sent {got}")]
    WrongIndex {
        origin: String,
        expected: u64,
        got: u64,
    },
    #[error("{origin}: the node sent {got} leaves, the checkpoint covers {expected}")]
    MissingEntries {
        origin: String,
        expected: u64,
        got: u64,
    },
    #[error("{origin}: leaves do not hash to the signed root of size {size}{}", tampered_hint(.first_bad))]
    RootMismatch {
        origin: String,
        size: u64,
        first_bad: Option<u64>,
    },
    #[error("{origin}: index {index}: {detail}")]
    BadEntry {
        origin: String,
        index: u64,
        detail: String,
    },
    #[error("{origin}: the log shrank from {previous} to {now} since the previous audit")]
    Rollback {
        origin: String,
        previous: u64,
        now: u64,
    },
    #[error(
        "{origin}: history rewritten since the previous audit at size {previous_size}: {detail}"
    )]
    Inconsistent {
        origin: String,
        previous_size: u64,
        detail: String,
    },
    #[error("{origin}: index {index}: inclusion proof from the node does not verify against the signed root: {detail}")]
    Inclusion {
        origin: String,
        index: u64,
        detail: String,
    },
    #[error("{origin}: the node sent more than the {asked} leaves asked for (entries from {from}); a node must stop at the range asked")]
    ExtraEntries {
        origin: String,
        from: u64,
        asked: u64,
    },
    #[error("{origin}: the node sent leaf {index}, past the signed tree size {size}")]
    PastSignedSize {
        origin: String,
        index: u64,
        size: u64,
    },
    #[error("{origin}: leaf {index} is {len} bytes, over the {MAX_ENTRY_BYTES}-byte limit")]
    OversizedLeaf {
        origin: String,
        index: u64,
        len: usize,
    },
    #[error("{origin}: the node sent nothing for {secs} s while streaming entries from {index}")]
    Stalled {
        origin: String,
        index: u64,
        secs: u64,
    },
    #[error("{origin}: the node misstates its checkpoint: {detail} (only the signed note counts; everything was verified against it)")]
    Misreported { origin: String, detail: String },
    #[error("{origin}: the node is still catching up and holds {held} of the {signed_size} signed leaves, fewer than the previous audit verified ({previous}); audit a node that holds them, or again later")]
    PrefixBehindPrevious {
        origin: String,
        held: u64,
        previous: u64,
        signed_size: u64,
    },
    #[error("{origin}: index {index}: cannot make an offline proof: {detail}")]
    Proof {
        origin: String,
        index: u64,
        detail: String,
    },
    #[error("{origin}: the node says it holds a prefix of size {size} of the signed tree of size {signed_size}, but its proof does not show that: {detail}")]
    BadPrefix {
        origin: String,
        size: u64,
        signed_size: u64,
        detail: String,
    },
}

fn tampered_hint(first_bad: &Option<u64>) -> String {
    match first_bad {
        Some(i) => format!("; first altered leaf at index {i}"),
        None => String::new(),
    }
}

/// Streams one origin's log through the protocol's rules, trusting only the origin's key.
///
/// Made from the signed note (verified first); then each leaf `0..size` is [`LogVerifier::push`]ed
/// in order — never more than the signed size — and [`LogVerifier::finish`] checks the root
/// and the extension of the previous audit. A node still catching up holds only a prefix of
/// the signed tree: [`LogVerifier::for_prefix`] verifies that prefix, once a consistency proof
/// shows it part of the signed tree.
#[derive(Debug)]
pub struct LogVerifier {
    origin: String,
    checkpoint: SignedCheckpoint,
    /// The tree the leaves must give: the signed one, or a prefix proven part of it.
    target: TreeHead,
    previous: Option<TrustedSize>,
    replay: Replay<Empty>,
    tree: CompactRange,
    root_at_previous: Option<Hash>,
    invalid_leaves: Vec<InvalidLeafReport>,
}

/// A log that verified.
#[derive(Debug, Clone)]
pub struct VerifiedLog {
    /// What was verified.
    pub report: AuditReport,
    /// The signed checkpoint.
    pub checkpoint: SignedCheckpoint,
    /// Every leaf hash, by index (for checking a node's inclusion proofs).
    pub leaf_hashes: Vec<Hash>,
}

impl LogVerifier {
    /// Verifies `note` against `key` before anything else; `previous` is what the last audit
    /// verified of this origin.
    pub fn new(
        key: &OriginKey,
        note: &[u8],
        previous: Option<&TrustedSize>,
    ) -> Result<Self, AuditError> {
        let origin = key.name().to_owned();
        let checkpoint = key.verify(note).map_err(|e| AuditError::BadCheckpoint {
            origin: origin.clone(),
            detail: e.to_string(),
        })?;
        let target = TreeHead::from(&checkpoint);
        Self::towards(origin, checkpoint, target, previous)
    }

    /// Verifies `note` against `key`, then that `prefix` is part of the tree it signs by the
    /// RFC 9162 consistency `proof` from `prefix` to the signed size and root (checked against
    /// the signed root: the node that sent the proof is not trusted); the leaves pushed must
    /// then give `prefix`. What a node serves mid catch-up.
    pub fn for_prefix(
        key: &OriginKey,
        note: &[u8],
        prefix: TreeHead,
        proof: &[impl AsRef<[u8]>],
        previous: Option<&TrustedSize>,
    ) -> Result<Self, AuditError> {
        let origin = key.name().to_owned();
        let checkpoint = key.verify(note).map_err(|e| AuditError::BadCheckpoint {
            origin: origin.clone(),
            detail: e.to_string(),
        })?;
        let bad = |detail: String| AuditError::BadPrefix {
            origin: origin.clone(),
            size: prefix.size,
            signed_size: checkpoint.size,
            detail,
        };
        // An empty or whole tree is no prefix to prove: a node holding either serves the
        // signed checkpoint itself.
        if prefix.size == 0 || prefix.size >= checkpoint.size {
            return Err(bad(
                "a prefix is non-empty and smaller than the signed tree".into(),
            ));
        }
        consistency::extends(prefix, TreeHead::from(&checkpoint), proof)
            .map_err(|e| bad(e.to_string()))?;
        Self::towards(origin, checkpoint, prefix, previous)
    }

    fn towards(
        origin: String,
        checkpoint: SignedCheckpoint,
        target: TreeHead,
        previous: Option<&TrustedSize>,
    ) -> Result<Self, AuditError> {
        if let Some(prev) = previous {
            if prev.size > target.size && prev.size <= checkpoint.size {
                // The signed log did not shrink: this node holds less of it than was audited.
                return Err(AuditError::PrefixBehindPrevious {
                    origin,
                    held: target.size,
                    previous: prev.size,
                    signed_size: checkpoint.size,
                });
            }
            if prev.size > target.size {
                return Err(AuditError::Rollback {
                    origin,
                    previous: prev.size,
                    now: target.size,
                });
            }
        }
        let mut replay = Replay::from_start();
        // Reserve no more than a leaf count that fits the signed size (a signed size is what
        // the origin committed to, but memory is only taken as leaves arrive).
        replay.reserve(target.size.min(1 << 16) as usize);
        let root_at_previous = None;
        Ok(Self {
            origin,
            checkpoint,
            target,
            previous: previous.cloned(),
            replay,
            tree: CompactRange::new(),
            root_at_previous,
            invalid_leaves: Vec::new(),
        })
    }

    /// The signed checkpoint.
    pub fn checkpoint(&self) -> &SignedCheckpoint {
        &self.checkpoint
    }

    /// How many leaves to push: the signed tree size, or the proven prefix's.
    pub fn size(&self) -> u64 {
        self.target.size
    }

    /// The tree the pushed leaves must give.
    pub fn target(&self) -> TreeHead {
        self.target
    }

    /// Leaves pushed so far.
    pub fn pushed(&self) -> u64 {
        self.tree.size()
    }

    /// Replays leaf `index`, which must be the next one and below the signed size.
    pub fn push(&mut self, index: u64, data: &[u8]) -> Result<Replayed, AuditError> {
        let origin = || self.origin.clone();
        if index != self.tree.size() {
            return Err(AuditError::WrongIndex {
                origin: origin(),
                expected: self.tree.size(),
                got: index,
            });
        }
        if index >= self.target.size {
            return Err(AuditError::PastSignedSize {
                origin: origin(),
                index,
                size: self.target.size,
            });
        }
        // The index was checked above and a replay from leaf 0 reads no prior, so the replay
        // cannot refuse to go on; map its error for completeness.
        let expected = self.replay.next_index();
        let replayed = self
            .replay
            .push(index, data)
            .map_err(|_| AuditError::WrongIndex {
                origin: origin(),
                expected,
                got: index,
            })?;
        self.tree.push(replayed.leaf_hash);
        if let Effect::Invalid(invalid) = &replayed.effect {
            if self.invalid_leaves.len() < MAX_LISTED_INVALID {
                self.invalid_leaves.push(InvalidLeafReport {
                    index,
                    reason: invalid.reason.to_string(),
                });
            }
        }
        if self.previous.as_ref().map(|p| p.size) == Some(self.tree.size()) {
            self.root_at_previous = Some(self.tree.root());
        }
        Ok(replayed)
    }

    /// Checks that every signed leaf came, that they give the signed root, and that the log
    /// extends the previous audit's.
    pub fn finish(self) -> Result<VerifiedLog, AuditError> {
        let Self {
            origin,
            checkpoint,
            target,
            previous,
            replay,
            tree,
            root_at_previous,
            invalid_leaves,
        } = self;
        if tree.size() != target.size {
            return Err(AuditError::MissingEntries {
                origin,
                expected: target.size,
                got: tree.size(),
            });
        }
        if tree.root() != target.root {
            return Err(AuditError::RootMismatch {
                origin,
                size: target.size,
                first_bad: None,
            });
        }
        let mut extends_previous = None;
        // Every tree extends the empty one: a previous audit of size 0 holds nothing to check
        // (whatever root was saved with it).
        if let Some(prev) = previous.as_ref().filter(|p| p.size == 0) {
            extends_previous = Some(prev.size);
        }
        if let Some(prev) = previous.as_ref().filter(|p| p.size > 0) {
            let old_root = hex::decode(&prev.root)
                .ok()
                .and_then(|b| merkle::hash_from_slice(&b).ok());
            let (Some(old_root), Some(root_then)) = (old_root, root_at_previous) else {
                return Err(AuditError::Inconsistent {
                    origin,
                    previous_size: prev.size,
                    detail: format!("the saved root {:?} is not a 32-byte hex hash", prev.root),
                });
            };
            let older = TreeHead {
                size: prev.size,
                root: old_root,
            };
            let prefix = TreeHead {
                size: prev.size,
                root: root_then,
            };
            consistency::extends(older, prefix, &[] as &[&[u8]]).map_err(|e| {
                AuditError::Inconsistent {
                    origin: origin.clone(),
                    previous_size: prev.size,
                    detail: format!(
                        "the first {} leaves now hash to {}, the previous audit verified {} ({e})",
                        prev.size,
                        hex::encode(root_then.0),
                        prev.root
                    ),
                }
            })?;
            extends_previous = Some(prev.size);
        }
        let (leaf_hashes, tally) = replay.finish();
        Ok(VerifiedLog {
            report: AuditReport {
                origin,
                size: target.size,
                root: hex::encode(target.root.0),
                signed_size: checkpoint.size,
                adds: tally.adds,
                retracts: tally.retracts,
                active: tally.active_in_run,
                extends_previous,
                inclusion_proofs_checked: 0,
                invalid: tally.invalid,
                invalid_leaves,
            },
            checkpoint,
            leaf_hashes,
        })
    }
}

/// Verifies a whole log offline: `note` against `key`, `leaves` (in order from 0) against the
/// signed root, retractions, and extension of `previous`. Leaves past the signed size are an
/// error, not ignored.
pub fn verify_log<E>(
    key: &OriginKey,
    note: &[u8],
    leaves: impl IntoIterator<Item = Result<(u64, Vec<u8>), E>>,
    previous: Option<&TrustedSize>,
) -> Result<VerifiedLog, AuditError>
where
    AuditError: From<E>,
{
    let mut v = LogVerifier::new(key, note, previous)?;
    for item in leaves {
        let (index, data) = item?;
        v.push(index, &data)?;
    }
    v.finish()
}

impl From<std::convert::Infallible> for AuditError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// How long a node may go quiet in the middle of an entries stream.
const STALL_LIMIT: Duration = Duration::from_secs(30);
/// Entries asked for per GetEntries call.
const ENTRIES_PER_CALL: u64 = 65_536;
/// Largest message the auditor accepts from a node: an entry is at most `MAX_ENTRY_BYTES`, a
/// proof 64 hashes, a note 16 KiB; an origin list of thousands of origins fits.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Audits logs on a live node.
#[derive(Debug, Clone)]
pub struct Auditor {
    audit: AuditClient<AuthChannel>,
}

impl Auditor {
    /// Connects to the node at `url`, without a token.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        Ok(Self::new(connect(url).await?))
    }

    /// Connects to the node at `url`; every call carries `token` as a bearer token.
    pub async fn connect_with_token(url: &str, token: Option<&str>) -> Result<Self, ClientError> {
        Self::connect_to(&NodeTarget::with_token(url, token)).await
    }

    /// Connects to `target` (TLS for `https://`, its CA, its token).
    pub async fn connect_to(target: &NodeTarget) -> Result<Self, ClientError> {
        let auth = target.auth()?;
        Ok(Self::with_auth(target.open().await?, auth))
    }

    /// Uses an open channel, without a token.
    pub fn new(channel: Channel) -> Self {
        Self::with_auth(channel, BearerAuth::none())
    }

    /// Uses an open channel; every call carries `auth`.
    pub fn with_auth(channel: Channel, auth: BearerAuth) -> Self {
        Self {
            audit: AuditClient::new(with_auth(channel, auth))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        }
    }

    /// Origins the node holds (what it *claims*: keys here are not trusted by [`Auditor`]).
    pub async fn list_origins(&mut self) -> Result<Vec<OriginInfo>, ClientError> {
        Ok(self
            .audit
            .list_origins(ListOriginsRequest {})
            .await?
            .into_inner()
            .origins)
    }

    /// The node's latest checkpoint of `origin`, as served (unverified).
    pub async fn checkpoint(&mut self, origin: &str) -> Result<Checkpoint, ClientError> {
        Ok(self
            .audit
            .get_checkpoint(GetCheckpointRequest {
                origin: origin.to_owned(),
            })
            .await?
            .into_inner())
    }

    /// Streams leaves `[start, end)` of `origin` into `each`, one at a time, in calls of at
    /// most [`ENTRIES_PER_CALL`]: exactly `end - start` leaves are read, a stream that goes on
    /// past its range is refused, and a node quiet for [`STALL_LIMIT`] is given up on.
    /// Nothing is collected here.
    pub async fn stream_entries(
        &mut self,
        origin: &str,
        start: u64,
        end: u64,
        mut each: impl FnMut(u64, Vec<u8>) -> Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        let stalled = |index| AuditError::Stalled {
            origin: origin.to_owned(),
            index,
            secs: STALL_LIMIT.as_secs(),
        };
        let mut next = start;
        while next < end {
            let hi = end.min(next.saturating_add(ENTRIES_PER_CALL));
            let call = self.audit.get_entries(GetEntriesRequest {
                origin: origin.to_owned(),
                start: next,
                end: hi,
            });
            let mut stream = tokio::time::timeout(STALL_LIMIT, call)
                .await
                .map_err(|_| stalled(next))?
                .map_err(ClientError::from)?
                .into_inner();
            let from = next;
            while next < hi {
                let entry = tokio::time::timeout(STALL_LIMIT, stream.next())
                    .await
                    .map_err(|_| stalled(next))?;
                let Some(entry) = entry else {
                    return Err(AuditError::MissingEntries {
                        origin: origin.to_owned(),
                        expected: end,
                        got: next,
                    });
                };
                let entry = entry.map_err(ClientError::from)?;
                if entry.data.len() > MAX_ENTRY_BYTES {
                    return Err(AuditError::OversizedLeaf {
                        origin: origin.to_owned(),
                        index: entry.index,
                        len: entry.data.len(),
                    });
                }
                each(entry.index, entry.data)?;
                next += 1;
            }
            // The range is complete: the node must end the stream now, not send more.
            match tokio::time::timeout(STALL_LIMIT, stream.next()).await {
                Ok(None) => {}
                Ok(Some(Ok(_))) => {
                    return Err(AuditError::ExtraEntries {
                        origin: origin.to_owned(),
                        from,
                        asked: hi - from,
                    })
                }
                Ok(Some(Err(status))) => return Err(ClientError::from(status).into()),
                Err(_) => return Err(stalled(hi)),
            }
        }
        Ok(())
    }

    /// Fetches and verifies `key`'s log, then checks the node's inclusion proofs for
    /// `inclusion_sample` leaves spread over the log (all when `None`) and its consistency
    /// proof from `previous`.
    pub async fn audit_origin(
        &mut self,
        key: &OriginKey,
        previous: Option<&TrustedSize>,
        inclusion_sample: Option<u64>,
    ) -> Result<AuditReport, AuditError> {
        self.audit_origin_with(key, previous, inclusion_sample, |_, _, _| Ok(()))
            .await
            .map(|v| v.report)
    }

    /// [`Auditor::audit_origin`], handing every leaf and what the protocol makes of it to
    /// `each` as it is verified (an exporter collects the active hashes, a dump writes the
    /// leaf); nothing of `each`'s is kept if the audit then fails, so `each` must not act on
    /// leaves before this returns `Ok`.
    pub async fn audit_origin_with(
        &mut self,
        key: &OriginKey,
        previous: Option<&TrustedSize>,
        inclusion_sample: Option<u64>,
        mut each: impl FnMut(u64, &[u8], &Replayed) -> Result<(), AuditError>,
    ) -> Result<VerifiedLog, AuditError> {
        let origin = key.name().to_owned();
        let served = self.checkpoint(&origin).await?;
        let mut verifier = match &served.prefix {
            None => LogVerifier::new(key, &served.signed_note, previous)?,
            Some(prefix) => {
                let root = merkle::hash_from_slice(&served.root_hash).map_err(|e| {
                    AuditError::Misreported {
                        origin: origin.clone(),
                        detail: format!("it serves a prefix whose root_hash is not a hash: {e}"),
                    }
                })?;
                let held = TreeHead {
                    size: served.tree_size,
                    root,
                };
                LogVerifier::for_prefix(
                    key,
                    &served.signed_note,
                    held,
                    &prefix.consistency_proof,
                    previous,
                )?
            }
        };
        let TreeHead { size, root } = verifier.target();
        self.stream_entries(&origin, 0, size, |index, data| {
            let replayed = verifier.push(index, &data)?;
            each(index, &data, &replayed)
        })
        .await?;
        let mut verified = match verifier.finish() {
            Err(AuditError::RootMismatch { origin, size, .. }) => {
                let first_bad = self.locate_bad_leaf(&origin, size, root).await;
                return Err(AuditError::RootMismatch {
                    origin,
                    size,
                    first_bad,
                });
            }
            other => other?,
        };
        let indexes: Vec<u64> = match inclusion_sample {
            None => (0..size).collect(),
            Some(n) if n == 0 || size == 0 => Vec::new(),
            Some(n) => {
                // Spread over the log, always including the last leaf (once).
                let step = (size / n).max(1);
                let mut sample: Vec<u64> = (0..size).step_by(step as usize).collect();
                if sample.last() != Some(&(size - 1)) {
                    sample.push(size - 1);
                }
                sample
            }
        };
        let leaf_hashes = &verified.leaf_hashes;
        let checked = futures::stream::iter(indexes.into_iter().map(|index| {
            let mut client = self.audit.clone();
            let origin = origin.clone();
            let leaf = leaf_hashes[index as usize];
            async move {
                let proof = client
                    .get_inclusion_proof(GetInclusionProofRequest {
                        origin: origin.clone(),
                        index,
                        tree_size: size,
                    })
                    .await
                    .map_err(ClientError::from)?
                    .into_inner();
                merkle::verify_inclusion(index, size, &leaf.0, &proof.hashes, &root.0).map_err(
                    |e| AuditError::Inclusion {
                        origin: origin.clone(),
                        index,
                        detail: e.to_string(),
                    },
                )
            }
        }))
        .buffer_unordered(32)
        .try_fold(0u64, |n, ()| async move { Ok(n + 1) })
        .await?;
        verified.report.inclusion_proofs_checked = checked;
        if let Some(prev) = previous.filter(|p| p.size > 0 && p.size < size) {
            let proof = self
                .audit
                .get_consistency_proof(GetConsistencyProofRequest {
                    origin: origin.clone(),
                    old_size: prev.size,
                    new_size: size,
                })
                .await
                .map_err(ClientError::from)?
                .into_inner();
            let old_root = hex::decode(&prev.root)
                .ok()
                .and_then(|b| merkle::hash_from_slice(&b).ok())
                .unwrap_or(merkle::EMPTY_HASH);
            let older = TreeHead {
                size: prev.size,
                root: old_root,
            };
            consistency::extends(older, TreeHead { size, root }, &proof.hashes).map_err(|e| {
                AuditError::Inconsistent {
                    origin: origin.clone(),
                    previous_size: prev.size,
                    detail: format!("node's consistency proof: {e}"),
                }
            })?;
        }
        misreported(&origin, &served, &verified)?;
        Ok(verified)
    }

    /// An offline proof (a C2SP tlog-proof, [`TlogProof`]) that entry `index` of `key`'s log is
    /// in the origin's latest signed checkpoint, assembled from what the node serves (the
    /// signed note, the leaf, the inclusion proof) and verified here against `key` before it
    /// is returned, so a node cannot hand out a proof that would not verify later. Nothing
    /// but the signed note's size and root counts: the leaf is fetched up to it, the
    /// inclusion proof asked for in exactly that tree.
    pub async fn prove_entry(
        &mut self,
        key: &OriginKey,
        index: u64,
    ) -> Result<(TlogProof, VerifiedProof), AuditError> {
        let origin = key.name().to_owned();
        let fail = |detail: String| AuditError::Proof {
            origin: origin.clone(),
            index,
            detail,
        };
        let served = self.checkpoint(&origin).await?;
        if served.prefix.is_some() {
            return Err(fail(
                "the node is still catching up to the origin's latest signed checkpoint and cannot prove entries in it yet; ask another node or try later".into(),
            ));
        }
        let signed = key
            .verify(&served.signed_note)
            .map_err(|e| AuditError::BadCheckpoint {
                origin: origin.clone(),
                detail: e.to_string(),
            })?;
        if index >= signed.size {
            return Err(fail(format!(
                "the log's latest signed checkpoint has {} entries (indexes 0 to {})",
                signed.size,
                signed.size.saturating_sub(1)
            )));
        }
        let mut leaf = None;
        self.stream_entries(&origin, index, index + 1, |_, data| {
            leaf = Some(data);
            Ok(())
        })
        .await?;
        let leaf = leaf.expect("stream_entries read exactly one leaf");
        let proof = self
            .audit
            .get_inclusion_proof(GetInclusionProofRequest {
                origin: origin.clone(),
                index,
                tree_size: signed.size,
            })
            .await
            .map_err(ClientError::from)?
            .into_inner();
        let hashes = proof
            .hashes
            .iter()
            .map(|h| merkle::hash_from_slice(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(format!("the node's inclusion proof: {e}")))?;
        let tlog =
            TlogProof::new(leaf, index, hashes, signed.note).map_err(|e| fail(e.to_string()))?;
        let verified = tlog.verify(key).map_err(|e| {
            fail(format!(
                "what the node served does not verify against the origin's key: {e}"
            ))
        })?;
        Ok((tlog, verified))
    }

    /// After a root mismatch: the first leaf whose bytes the node's own inclusion proof does
    /// not support against the signed root, which is where the stored log was altered.
    async fn locate_bad_leaf(&mut self, origin: &str, size: u64, root: Hash) -> Option<u64> {
        let mut hashes = Vec::new();
        self.stream_entries(origin, 0, size, |_, data| {
            hashes.push(merkle::leaf_hash(&data));
            Ok(())
        })
        .await
        .ok()?;
        for (index, leaf) in hashes.into_iter().enumerate() {
            let index = index as u64;
            let proof = self
                .audit
                .get_inclusion_proof(GetInclusionProofRequest {
                    origin: origin.to_owned(),
                    index,
                    tree_size: size,
                })
                .await
                .ok()?
                .into_inner();
            if merkle::verify_inclusion(index, size, &leaf.0, &proof.hashes, &root.0).is_err() {
                return Some(index);
            }
        }
        None
    }
}

/// The served checkpoint's unsigned fields must say what was verified: the signed note's origin,
/// and the size and root the leaves gave (the signed ones, or the prefix the node proved); a
/// node that states others is reported (after everything was verified).
fn misreported(
    origin: &str,
    served: &Checkpoint,
    verified: &VerifiedLog,
) -> Result<(), AuditError> {
    let signed = &verified.checkpoint;
    let says = if served.prefix.is_some() {
        "the verified prefix has"
    } else {
        "the signed note says"
    };
    let mut wrong = Vec::new();
    if served.origin != signed.origin {
        wrong.push(format!(
            "origin {:?}, the signed note names {:?}",
            served.origin, signed.origin
        ));
    }
    if served.tree_size != verified.report.size {
        wrong.push(format!(
            "tree_size {}, {says} {}",
            served.tree_size, verified.report.size
        ));
    }
    if hex::encode(&served.root_hash) != verified.report.root {
        wrong.push(format!(
            "root_hash {}, {says} {}",
            hex::encode(&served.root_hash),
            verified.report.root
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(AuditError::Misreported {
            origin: origin.to_owned(),
            detail: format!("it serves {}", wrong.join("; ")),
        })
    }
}

#[cfg(test)]
mod tests {
    //! The offline verifier against real signed logs: every way a served log can be wrong gives
    //! its own error, and a signed log with invalid leaves passes with them listed.
    use super::*;
    use redline_proto::checkpoint::OriginSigner;
    use redline_proto::entry::{encode_add, encode_retract};
    use redline_proto::merkle::{leaf_hash, MemoryHashes};
    use redline_proto::pb::AddEntry;

    fn add(n: u8) -> Vec<u8> {
        encode_add(
            AddEntry {
                signal_type: "pdq".into(),
                hash: vec![n; 32],
                ..Default::default()
            },
            1,
        )
        .unwrap()
    }

    /// A 5-leaf log: ADD, ADD, RETRACT of 0, a RETRACT of leaf 2 (not an ADD: invalid), ADD.
    fn log() -> Vec<Vec<u8>> {
        let (a0, a1) = (add(1), add(2));
        let r = encode_retract(0, &leaf_hash(&a0), "fp", 2).unwrap();
        let bad = encode_retract(2, &leaf_hash(&r), "fp", 3).unwrap();
        vec![a0, a1, r, bad, add(3)]
    }

    fn signed(signer: &OriginSigner, leaves: &[Vec<u8>], size: u64) -> Vec<u8> {
        let mut t = MemoryHashes::new();
        leaves
            .iter()
            .take(size as usize)
            .for_each(|l| t.push_leaf(l));
        signer.sign_checkpoint(size, t.root()).unwrap().note
    }

    fn run(
        key: &OriginKey,
        note: &[u8],
        leaves: &[Vec<u8>],
        previous: Option<&TrustedSize>,
    ) -> Result<VerifiedLog, AuditError> {
        let items = (0u64..)
            .zip(leaves.iter().cloned())
            .map(Ok::<_, AuditError>);
        verify_log(key, note, items, previous)
    }

    #[test]
    fn a_signed_log_verifies_and_its_invalid_leaf_is_listed() {
        let signer = OriginSigner::generate("a.example").unwrap();
        let leaves = log();
        let v = run(signer.public(), &signed(&signer, &leaves, 5), &leaves, None).unwrap();
        let r = &v.report;
        assert_eq!(
            (r.size, r.adds, r.retracts, r.active, r.invalid),
            (5, 3, 1, 2, 1)
        );
        assert_eq!(r.invalid_leaves.len(), 1);
        assert_eq!(r.invalid_leaves[0].index, 3);
        assert!(r.invalid_leaves[0].reason.contains("not an ADD"));
        assert_eq!(v.leaf_hashes.len(), 5);
    }

    /// What is tried: a node mid catch-up serves the note of a 5-leaf tree and holds its first
    /// 3 leaves, with a consistency proof 3 -> 5; then every way that claim can be wrong.
    /// What holds: the true prefix verifies (report size 3, signed size 5); a prefix with a
    /// wrong root, a bad proof, a "prefix" as large as the signed tree, leaves that do not
    /// give the prefix, or a previous audit past the prefix are each refused by name.
    #[test]
    fn a_proven_prefix_verifies_and_every_false_one_is_refused() {
        let signer = OriginSigner::generate("a.example").unwrap();
        let key = signer.public();
        let leaves = log();
        let note = signed(&signer, &leaves, 5);
        let mut t = MemoryHashes::new();
        leaves.iter().for_each(|l| t.push_leaf(l));
        let prefix = TreeHead {
            size: 3,
            root: t.root_at(3).unwrap(),
        };
        let proof: Vec<Vec<u8>> = merkle::consistency_proof(3, 5, &t)
            .unwrap()
            .iter()
            .map(|h| h.0.to_vec())
            .collect();
        let verify = |prefix: TreeHead, proof: &[Vec<u8>], leaves: &[Vec<u8>], prev| {
            let mut v = LogVerifier::for_prefix(key, &note, prefix, proof, prev)?;
            for (i, l) in leaves.iter().enumerate() {
                v.push(i as u64, l)?;
            }
            v.finish()
        };
        let ok = verify(prefix, &proof, &leaves[..3], None).unwrap();
        assert_eq!((ok.report.size, ok.report.signed_size), (3, 5));
        assert_eq!(ok.report.root, hex::encode(prefix.root.0));
        assert_eq!(ok.report.trusted().size, 3);

        let wrong_root = TreeHead {
            root: t.root_at(2).unwrap(),
            ..prefix
        };
        let e = verify(wrong_root, &proof, &leaves[..3], None).unwrap_err();
        assert!(
            matches!(
                e,
                AuditError::BadPrefix {
                    size: 3,
                    signed_size: 5,
                    ..
                }
            ),
            "{e}"
        );
        let mut bad_proof = proof.clone();
        bad_proof[0][0] ^= 1;
        let e = verify(prefix, &bad_proof, &leaves[..3], None).unwrap_err();
        assert!(matches!(e, AuditError::BadPrefix { .. }), "{e}");
        let whole = TreeHead {
            size: 5,
            root: t.root(),
        };
        let e = verify(whole, &[], &leaves, None).unwrap_err();
        assert!(matches!(e, AuditError::BadPrefix { size: 5, .. }), "{e}");
        // A past-the-prefix leaf is refused as past what is verified.
        let e = verify(prefix, &proof, &leaves[..4], None).unwrap_err();
        assert!(
            matches!(
                e,
                AuditError::PastSignedSize {
                    index: 3,
                    size: 3,
                    ..
                }
            ),
            "{e}"
        );
        let mut altered = leaves[..3].to_vec();
        altered[0] = add(9);
        let e = verify(prefix, &proof, &altered, None).unwrap_err();
        assert!(matches!(e, AuditError::RootMismatch { size: 3, .. }), "{e}");
        let previous = TrustedSize {
            size: 4,
            root: hex::encode(t.root_at(4).unwrap().0),
        };
        let e = verify(prefix, &proof, &leaves[..3], Some(&previous)).unwrap_err();
        assert!(
            matches!(
                e,
                AuditError::PrefixBehindPrevious {
                    held: 3,
                    previous: 4,
                    signed_size: 5,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn every_way_of_serving_a_wrong_log_is_named() {
        let signer = OriginSigner::generate("a.example").unwrap();
        let key = signer.public();
        let leaves = log();
        let note = signed(&signer, &leaves, 4);
        // More leaves than signed: refused at the first extra one, not ignored.
        let e = run(key, &note, &leaves, None).unwrap_err();
        assert!(
            matches!(
                e,
                AuditError::PastSignedSize {
                    index: 4,
                    size: 4,
                    ..
                }
            ),
            "{e}"
        );
        // Fewer.
        let e = run(key, &note, &leaves[..3], None).unwrap_err();
        assert!(
            matches!(
                e,
                AuditError::MissingEntries {
                    expected: 4,
                    got: 3,
                    ..
                }
            ),
            "{e}"
        );
        // Altered leaf.
        let mut altered = leaves[..4].to_vec();
        altered[1] = add(9);
        let e = run(key, &note, &altered, None).unwrap_err();
        assert!(matches!(e, AuditError::RootMismatch { size: 4, .. }), "{e}");
        // Another key.
        let other = OriginSigner::generate("a.example").unwrap();
        let e = run(other.public(), &note, &leaves[..4], None).unwrap_err();
        assert!(matches!(e, AuditError::BadCheckpoint { .. }), "{e}");
        // Out of order.
        let items = [(1u64, leaves[1].clone())].map(Ok::<_, AuditError>);
        let e = verify_log(key, &note, items, None).unwrap_err();
        assert!(
            matches!(
                e,
                AuditError::WrongIndex {
                    expected: 0,
                    got: 1,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().starts_with("a.example: "), "{e}");
    }

    #[test]
    fn the_log_must_extend_the_previous_audit() {
        let signer = OriginSigner::generate("a.example").unwrap();
        let key = signer.public();
        let leaves = log();
        let first = run(key, &signed(&signer, &leaves, 3), &leaves[..3], None).unwrap();
        let prev = first.report.trusted();
        let v = run(key, &signed(&signer, &leaves, 5), &leaves, Some(&prev)).unwrap();
        assert_eq!(v.report.extends_previous, Some(3));
        // Shrunk since.
        let e = run(key, &signed(&signer, &leaves, 2), &leaves[..2], Some(&prev)).unwrap_err();
        assert!(
            matches!(
                e,
                AuditError::Rollback {
                    previous: 3,
                    now: 2,
                    ..
                }
            ),
            "{e}"
        );
        // Rewritten since: same size 5, first leaves changed, validly signed again.
        let mut rewritten = leaves.clone();
        rewritten[0] = add(7);
        rewritten[2] = encode_retract(0, &leaf_hash(&rewritten[0]), "fp", 2).unwrap();
        let note = signed(&signer, &rewritten, 5);
        let e = run(key, &note, &rewritten, Some(&prev)).unwrap_err();
        assert!(
            matches!(
                e,
                AuditError::Inconsistent {
                    previous_size: 3,
                    ..
                }
            ),
            "{e}"
        );
    }
}
