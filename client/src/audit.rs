//! Auditing an origin's log while trusting no node: the checkpoint must be signed by the origin's
//! key (given by the auditor, never taken from the node), the leaves must hash to the signed
//! root, every RETRACT must name an earlier ADD of the same log, and the log must extend what
//! the previous audit saw (so a rewritten history is caught between audits).
//!
//! [`verify_log`] is the offline core (leaves and a checkpoint in hand); [`Auditor`] fetches
//! them over gRPC and also checks the node's own inclusion and consistency proofs.

use crate::connect::{connect, with_auth, AuthChannel, BearerAuth, ClientError, NodeTarget};
use futures::{StreamExt, TryStreamExt};
use redline_proto::checkpoint::{OriginKey, SignedCheckpoint};
use redline_proto::entry::{self, Decoded};
use redline_proto::merkle::{self, MemoryHashes};
use redline_proto::pb::{
    audit_client::AuditClient, Checkpoint, GetCheckpointRequest, GetConsistencyProofRequest,
    GetEntriesRequest, GetInclusionProofRequest, ListOriginsRequest, OriginInfo,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
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
    /// Size of the previous audit this one extends, if any.
    pub extends_previous: Option<u64>,
    /// Inclusion proofs from the node that were checked.
    pub inclusion_proofs_checked: u64,
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
    #[error("{origin}: index {index}: inclusion proof from the node does not verify: {detail}")]
    Inclusion {
        origin: String,
        index: u64,
        detail: String,
    },
}

fn tampered_hint(first_bad: &Option<u64>) -> String {
    match first_bad {
        Some(i) => format!("; first altered leaf at index {i}"),
        None => String::new(),
    }
}

/// Verifies a whole log offline: `note` against `key`, `leaves` (in order from 0) against the
/// signed root, retractions, and extension of `previous`. Returns the report and the tree.
pub fn verify_log(
    key: &OriginKey,
    note: &[u8],
    leaves: impl IntoIterator<Item = (u64, Vec<u8>)>,
    previous: Option<&TrustedSize>,
) -> Result<(AuditReport, MemoryHashes), AuditError> {
    let origin = key.name().to_owned();
    let checkpoint = key.verify(note).map_err(|e| AuditError::BadCheckpoint {
        origin: origin.clone(),
        detail: e.to_string(),
    })?;
    let mut tree = MemoryHashes::new();
    let mut adds = 0u64;
    let mut retracts = 0u64;
    let mut active: HashSet<u64> = HashSet::new();
    let mut leaf_data: Vec<Vec<u8>> = Vec::new();
    for (index, data) in leaves {
        if index != tree.size() {
            return Err(AuditError::WrongIndex {
                origin,
                expected: tree.size(),
                got: index,
            });
        }
        if index >= checkpoint.size {
            break;
        }
        let bad = |detail: String| AuditError::BadEntry {
            origin: origin.clone(),
            index,
            detail,
        };
        match entry::decode(&data).map_err(|e| bad(e.to_string()))? {
            Decoded::Add { .. } => {
                adds += 1;
                active.insert(index);
            }
            Decoded::Retract(r) => {
                retracts += 1;
                let target = leaf_data.get(r.target_index as usize).map(Vec::as_slice);
                entry::check_retraction(index, &r, target).map_err(|e| bad(e.to_string()))?;
                if !active.remove(&r.target_index) {
                    return Err(bad(format!(
                        "retraction of index {}, which is already retracted",
                        r.target_index
                    )));
                }
            }
        }
        tree.push_leaf(&data);
        leaf_data.push(data);
    }
    if tree.size() != checkpoint.size {
        return Err(AuditError::MissingEntries {
            origin,
            expected: checkpoint.size,
            got: tree.size(),
        });
    }
    if tree.root() != checkpoint.root {
        return Err(AuditError::RootMismatch {
            origin,
            size: checkpoint.size,
            first_bad: None,
        });
    }
    let mut extends_previous = None;
    if let Some(prev) = previous {
        check_extends(&origin, &tree, &checkpoint, prev)?;
        extends_previous = Some(prev.size);
    }
    Ok((
        AuditReport {
            origin,
            size: checkpoint.size,
            root: hex::encode(checkpoint.root.0),
            adds,
            retracts,
            active: active.len() as u64,
            extends_previous,
            inclusion_proofs_checked: 0,
        },
        tree,
    ))
}

/// The verified tree must contain the previously verified one as a prefix.
fn check_extends(
    origin: &str,
    tree: &MemoryHashes,
    checkpoint: &SignedCheckpoint,
    prev: &TrustedSize,
) -> Result<(), AuditError> {
    if prev.size > checkpoint.size {
        return Err(AuditError::Rollback {
            origin: origin.to_owned(),
            previous: prev.size,
            now: checkpoint.size,
        });
    }
    if prev.size == 0 {
        return Ok(());
    }
    let root_then = tree
        .root_at(prev.size)
        .map_err(|e| AuditError::Inconsistent {
            origin: origin.to_owned(),
            previous_size: prev.size,
            detail: e.to_string(),
        })?;
    if hex::encode(root_then.0) != prev.root {
        return Err(AuditError::Inconsistent {
            origin: origin.to_owned(),
            previous_size: prev.size,
            detail: format!(
                "the first {} leaves now hash to {}, the previous audit verified {}",
                prev.size,
                hex::encode(root_then.0),
                prev.root
            ),
        });
    }
    Ok(())
}

/// What a node served for one origin: its checkpoint and the leaves it covers, unverified.
#[derive(Debug, Clone)]
pub struct FetchedLog {
    /// The checkpoint as served (the signed note inside is what counts).
    pub checkpoint: Checkpoint,
    /// Leaves `[0, checkpoint.tree_size)` as served: `(index, exact bytes)`.
    pub leaves: Vec<(u64, Vec<u8>)>,
}

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
                .max_decoding_message_size(64 * 1024 * 1024),
        }
    }

    /// The node's latest checkpoint of `origin` and the leaves it covers, unverified.
    pub async fn fetch(&mut self, origin: &str) -> Result<FetchedLog, ClientError> {
        let checkpoint = self.checkpoint(origin).await?;
        let leaves = if checkpoint.tree_size == 0 {
            Vec::new()
        } else {
            self.entries(origin, 0, checkpoint.tree_size).await?
        };
        Ok(FetchedLog { checkpoint, leaves })
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

    /// The node's latest checkpoint of `origin`.
    pub async fn checkpoint(&mut self, origin: &str) -> Result<Checkpoint, ClientError> {
        Ok(self
            .audit
            .get_checkpoint(GetCheckpointRequest {
                origin: origin.to_owned(),
            })
            .await?
            .into_inner())
    }

    /// Leaves `[start, end)` of `origin`.
    pub async fn entries(
        &mut self,
        origin: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, ClientError> {
        let stream = self
            .audit
            .get_entries(GetEntriesRequest {
                origin: origin.to_owned(),
                start,
                end,
            })
            .await?
            .into_inner();
        Ok(stream
            .map_ok(|e| (e.index, e.data))
            .try_collect::<Vec<_>>()
            .await?)
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
        let fetched = self.fetch(key.name()).await?;
        self.audit_fetched(key, fetched, previous, inclusion_sample)
            .await
    }

    /// Verifies what [`Auditor::fetch`] returned (as [`verify_log`] does), then checks the
    /// node's inclusion proofs for `inclusion_sample` leaves spread over the log (all when
    /// `None`) and its consistency proof from `previous`.
    pub async fn audit_fetched(
        &mut self,
        key: &OriginKey,
        fetched: FetchedLog,
        previous: Option<&TrustedSize>,
        inclusion_sample: Option<u64>,
    ) -> Result<AuditReport, AuditError> {
        let origin = key.name().to_owned();
        let FetchedLog {
            checkpoint: cp,
            leaves,
        } = fetched;
        let result = verify_log(key, &cp.signed_note, leaves, previous);
        let (mut report, tree) = match result {
            Err(AuditError::RootMismatch { origin, size, .. }) => {
                let first_bad = self.locate_bad_leaf(&origin, size, &cp).await;
                return Err(AuditError::RootMismatch {
                    origin,
                    size,
                    first_bad,
                });
            }
            other => other?,
        };
        let size = report.size;
        let indexes: Vec<u64> = match inclusion_sample {
            None => (0..size).collect(),
            Some(n) if n == 0 || size == 0 => Vec::new(),
            Some(n) => {
                let step = (size / n).max(1);
                (0..size).step_by(step as usize).chain([size - 1]).collect()
            }
        };
        let root =
            merkle::hash_from_slice(&cp.root_hash).map_err(|e| AuditError::BadCheckpoint {
                origin: origin.clone(),
                detail: e.to_string(),
            })?;
        let checked = futures::stream::iter(indexes.into_iter().map(|index| {
            let mut client = self.audit.clone();
            let origin = origin.clone();
            let leaf = tree.leaf_hash(index).expect("index below size");
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
        report.inclusion_proofs_checked = checked;
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
            let old_root = hex::decode(&prev.root).unwrap_or_default();
            merkle::verify_consistency(prev.size, size, &old_root, &root.0, &proof.hashes)
                .map_err(|e| AuditError::Inconsistent {
                    origin: origin.clone(),
                    previous_size: prev.size,
                    detail: format!("node's consistency proof: {e}"),
                })?;
        }
        Ok(report)
    }

    /// After a root mismatch: the first leaf whose bytes the node's own inclusion proof does
    /// not support, which is where the stored log was altered.
    async fn locate_bad_leaf(&mut self, origin: &str, size: u64, cp: &Checkpoint) -> Option<u64> {
        let leaves = self.entries(origin, 0, size).await.ok()?;
        for (index, data) in leaves {
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
            let leaf = merkle::leaf_hash(&data);
            if merkle::verify_inclusion(index, size, &leaf.0, &proof.hashes, &cp.root_hash).is_err()
            {
                return Some(index);
            }
        }
        None
    }
}
