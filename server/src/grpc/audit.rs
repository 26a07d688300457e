//! `redline.v1.Audit`: checkpoints, leaves and proofs for anyone who verifies, trusting no node.

use crate::node::evidence::PageQuery;
use crate::node::{to_pb, LeafChunks, Node};
use futures::StreamExt;
use redline_proto::merkle::Hash;
use redline_proto::pb::{
    audit_server::Audit, Checkpoint, ConsistencyProof, Entry, GetCheckpointRequest,
    GetConsistencyProofRequest, GetEntriesRequest, GetInclusionProofRequest, InclusionProof,
    ListEvidenceRequest, ListEvidenceResponse, ListOriginsRequest, ListOriginsResponse,
};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// A stream of leaves.
pub type EntryStream = Pin<Box<dyn Stream<Item = Result<Entry, Status>> + Send>>;

/// The wire form of the node's leaf chunks: each chunk is flattened into its entries here, so
/// tonic finds thousands of messages ready at once and packs them into few large HTTP/2
/// writes; a chunk that failed becomes the stream's final status.
pub fn entry_stream(chunks: LeafChunks) -> EntryStream {
    Box::pin(chunks.flat_map(|chunk| {
        let items: Vec<Result<Entry, Status>> = match chunk {
            Ok(leaves) => leaves
                .into_iter()
                .map(|(index, data)| Ok(Entry { index, data }))
                .collect(),
            Err(e) => vec![Err(Status::from(e))],
        };
        futures::stream::iter(items)
    }))
}

/// `GetEntries`, served to auditors here and to peers by Federation.
pub fn get_entries(node: &Node, req: GetEntriesRequest) -> Result<EntryStream, Status> {
    Ok(entry_stream(node.logs().entries(
        &req.origin,
        req.start,
        req.end,
    )?))
}

fn hashes(proof: Vec<Hash>) -> Vec<Vec<u8>> {
    proof.iter().map(|h| h.0.to_vec()).collect()
}

/// Answers a consistency-proof request (served to auditors here and to peers by Federation).
pub async fn consistency_proof(
    node: &Node,
    req: GetConsistencyProofRequest,
) -> Result<ConsistencyProof, Status> {
    let (new_size, proof) = node
        .logs()
        .consistency_proof(&req.origin, req.old_size, req.new_size)
        .await?;
    Ok(ConsistencyProof {
        old_size: req.old_size,
        new_size,
        hashes: hashes(proof),
    })
}

/// Most record bytes in one `ListEvidence` page: a quarter of the response limit (records are
/// at most a few tens of KiB, so a page always fits with room for framing), and no more than
/// 4 MiB, so one call's answer stays a small allocation.
fn page_bytes(max_message_bytes: usize) -> usize {
    (max_message_bytes / 4).clamp(64 * 1024, 4 * 1024 * 1024)
}

/// `ListOrigins`, for gRPC and `GET /v1/origins` alike.
pub fn list_origins(node: &Node) -> Result<ListOriginsResponse, Status> {
    Ok(ListOriginsResponse {
        origins: node
            .trusted_origins()?
            .into_iter()
            .map(Into::into)
            .collect(),
    })
}

/// One page of `ListEvidence`, for gRPC and `GET /v1/evidence` alike.
pub async fn evidence_page(
    node: &Node,
    req: ListEvidenceRequest,
) -> Result<ListEvidenceResponse, Status> {
    let page = node
        .evidence()
        .page(PageQuery {
            origin: req.origin,
            // `limit` is what clients from before paging send.
            page_size: if req.page_size == 0 {
                req.limit
            } else {
                req.page_size
            } as usize,
            page_token: req.page_token,
            max_bytes: page_bytes(node.config().limits.max_message_bytes),
        })
        .await?;
    Ok(ListEvidenceResponse {
        evidence: page.evidence,
        next_page_token: page.next_page_token,
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
        Ok(Response::new(list_origins(&self.node)?))
    }

    async fn get_checkpoint(
        &self,
        req: Request<GetCheckpointRequest>,
    ) -> Result<Response<Checkpoint>, Status> {
        let origin = req.into_inner().origin;
        let checkpoint = self.node.logs().checkpoint(&origin)?;
        Ok(Response::new(to_pb(&origin, &checkpoint)))
    }

    type GetEntriesStream = EntryStream;

    async fn get_entries(
        &self,
        req: Request<GetEntriesRequest>,
    ) -> Result<Response<Self::GetEntriesStream>, Status> {
        Ok(Response::new(get_entries(&self.node, req.into_inner())?))
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<GetInclusionProofRequest>,
    ) -> Result<Response<InclusionProof>, Status> {
        let req = req.into_inner();
        let (tree_size, proof) = self
            .node
            .logs()
            .inclusion_proof(&req.origin, req.index, req.tree_size)
            .await?;
        Ok(Response::new(InclusionProof {
            index: req.index,
            tree_size,
            hashes: hashes(proof),
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
        Ok(Response::new(
            evidence_page(&self.node, req.into_inner()).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeError;

    /// A stream whose reader fails after a first chunk ends with that failure as a status,
    /// after the entries it did read.
    #[tokio::test]
    async fn a_failing_read_ends_the_stream_with_a_status() {
        let chunks: LeafChunks = Box::pin(futures::stream::iter(vec![
            Ok(vec![(0, b"a".to_vec()), (1, b"b".to_vec())]),
            Err(NodeError::MissingLeaves {
                origin: "o".into(),
                at: 2,
            }),
        ]));
        let items: Vec<Result<Entry, Status>> = entry_stream(chunks).collect().await;
        assert_eq!(items.len(), 3);
        assert!(items[..2].iter().all(Result::is_ok));
        let last = items[2].as_ref().unwrap_err();
        assert_eq!(last.code(), tonic::Code::Internal);
    }
}
