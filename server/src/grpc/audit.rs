//! `redline.v1.Audit`: checkpoints, leaves and proofs for anyone who verifies, trusting no node.

use crate::node::Node;
use futures::StreamExt;
use redline_proto::pb::{
    audit_server::Audit, Checkpoint, ConsistencyProof, Entry, GetCheckpointRequest,
    GetConsistencyProofRequest, GetEntriesRequest, GetInclusionProofRequest, InclusionProof,
    ListEvidenceRequest, ListEvidenceResponse, ListOriginsRequest, ListOriginsResponse, OriginInfo,
};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// A stream of leaves.
pub type EntryStream = Pin<Box<dyn Stream<Item = Result<Entry, Status>> + Send>>;

/// Leaves read per blocking store read while streaming.
const CHUNK: u64 = 4096;

/// Streams `[start, end)` of an origin's log from the store, a chunk at a time, so a long range
/// neither blocks the runtime nor sits in memory.
///
/// Chunks travel whole through the channel and are flattened on the receiving side: tonic then
/// finds thousands of messages ready at once and packs them into few large HTTP/2 writes. Sent
/// one message at a time, the stream went pending between messages and every entry became its
/// own `writev` (a fifth of a follower's replication time).
pub fn stream_entries(node: &Node, req: &GetEntriesRequest) -> Result<EntryStream, Status> {
    let (id, start, end) = node.entry_range(&req.origin, req.start, req.end)?;
    let store = node.store().clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Result<Entry, Status>>>(2);
    tokio::spawn(async move {
        let mut next = start;
        while next < end {
            let hi = (next + CHUNK).min(end);
            let s = store.clone();
            let chunk = tokio::task::spawn_blocking(move || {
                s.leaves(id, next, hi).collect::<Result<Vec<_>, _>>()
            })
            .await;
            let chunk = match chunk {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reading leaves");
                    let _ = tx.send(vec![Err(Status::internal("internal error"))]).await;
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading leaves");
                    return;
                }
            };
            if chunk.len() as u64 != hi - next {
                tracing::error!(
                    origin = id,
                    next,
                    hi,
                    "leaves missing below the checkpoint size"
                );
                let _ = tx.send(vec![Err(Status::internal("internal error"))]).await;
                return;
            }
            let entries = chunk
                .into_iter()
                .map(|(index, data)| Ok(Entry { index, data }))
                .collect();
            if tx.send(entries).await.is_err() {
                return; // the caller went away
            }
            next = hi;
        }
    });
    Ok(Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(rx).flat_map(futures::stream::iter),
    ))
}

/// Answers a consistency-proof request (served to auditors here and to peers by Federation).
pub async fn consistency_proof(
    node: &Node,
    req: GetConsistencyProofRequest,
) -> Result<ConsistencyProof, Status> {
    let (new_size, proof) = node
        .consistency_proof(&req.origin, req.old_size, req.new_size)
        .await?;
    Ok(ConsistencyProof {
        old_size: req.old_size,
        new_size,
        hashes: proof.iter().map(|h| h.0.to_vec()).collect(),
    })
}

/// Handlers.
#[derive(Debug, Clone)]
pub struct AuditService {
    node: Arc<Node>,
}

impl AuditService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl Audit for AuditService {
    async fn list_origins(
        &self,
        _req: Request<ListOriginsRequest>,
    ) -> Result<Response<ListOriginsResponse>, Status> {
        let mut origins = Vec::new();
        for (name, trust) in self.node.trust() {
            let Ok(checkpoint) = self.node.checkpoint(name) else {
                continue;
            };
            origins.push(OriginInfo {
                origin: name.clone(),
                verifier_key: trust.key.verifier_key(),
                checkpoint: Some(checkpoint),
                policy: trust.policy_name().to_owned(),
                frozen: self.node.is_frozen(name),
            });
        }
        Ok(Response::new(ListOriginsResponse { origins }))
    }

    async fn get_checkpoint(
        &self,
        req: Request<GetCheckpointRequest>,
    ) -> Result<Response<Checkpoint>, Status> {
        Ok(Response::new(
            self.node.checkpoint(&req.into_inner().origin)?,
        ))
    }

    type GetEntriesStream = EntryStream;

    async fn get_entries(
        &self,
        req: Request<GetEntriesRequest>,
    ) -> Result<Response<Self::GetEntriesStream>, Status> {
        Ok(Response::new(stream_entries(
            &self.node,
            &req.into_inner(),
        )?))
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<GetInclusionProofRequest>,
    ) -> Result<Response<InclusionProof>, Status> {
        let req = req.into_inner();
        let (tree_size, proof) = self
            .node
            .inclusion_proof(&req.origin, req.index, req.tree_size)
            .await?;
        Ok(Response::new(InclusionProof {
            index: req.index,
            tree_size,
            hashes: proof.iter().map(|h| h.0.to_vec()).collect(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<ConsistencyProof>, Status> {
        Ok(Response::new(
            consistency_proof(&self.node, req.into_inner()).await?,
        ))
    }

    async fn list_evidence(
        &self,
        req: Request<ListEvidenceRequest>,
    ) -> Result<Response<ListEvidenceResponse>, Status> {
        let req = req.into_inner();
        let evidence = self.node.evidence(&req.origin, req.limit as usize)?;
        Ok(Response::new(ListEvidenceResponse { evidence }))
    }
}
