//! `redline.v1.Federation`: what peers ask of this node. Everything served here is material a
//! receiver verifies itself; nothing received here is merged without the same verification as a
//! pulled checkpoint (`federation::replicate::consider`).

use crate::grpc::audit::{consistency_proof, stream_entries, EntryStream};
use crate::node::Node;
use redline_proto::pb::{
    federation_server::Federation, Checkpoint, ConsistencyProof, GetCheckpointsRequest,
    GetCheckpointsResponse, GetConsistencyProofRequest, GetEntriesRequest, GossipRequest,
    GossipResponse, WatchCheckpointsRequest,
};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Most checkpoints taken from one gossip request.
const MAX_GOSSIP: usize = 4096;

/// Handlers.
#[derive(Debug, Clone)]
pub struct FederationService {
    node: Arc<Node>,
}

impl FederationService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

/// Pushed checkpoints.
pub type CheckpointStream = Pin<Box<dyn Stream<Item = Result<Checkpoint, Status>> + Send>>;

#[tonic::async_trait]
impl Federation for FederationService {
    async fn get_checkpoints(
        &self,
        _req: Request<GetCheckpointsRequest>,
    ) -> Result<Response<GetCheckpointsResponse>, Status> {
        Ok(Response::new(GetCheckpointsResponse {
            checkpoints: self.node.held_checkpoints(),
        }))
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

    async fn get_consistency_proof(
        &self,
        req: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<ConsistencyProof>, Status> {
        Ok(Response::new(
            consistency_proof(&self.node, req.into_inner()).await?,
        ))
    }

    type WatchCheckpointsStream = CheckpointStream;

    async fn watch_checkpoints(
        &self,
        _req: Request<WatchCheckpointsRequest>,
    ) -> Result<Response<Self::WatchCheckpointsStream>, Status> {
        // Subscribe before snapshotting, so a commit between the two is sent (twice at worst).
        let mut events = self.node.subscribe();
        let current = self.node.held_checkpoints();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            // Each origin's checkpoints go out in increasing size only: events queued between
            // the subscription and the snapshot may be older than the snapshot, and followers
            // treat a peer that goes back on its watch stream as replaying old checkpoints.
            let mut sent: HashMap<String, u64> = HashMap::new();
            let mut newer = move |cp: &Checkpoint| match sent.get_mut(&cp.origin) {
                Some(size) if *size >= cp.tree_size => false,
                Some(size) => {
                    *size = cp.tree_size;
                    true
                }
                None => {
                    sent.insert(cp.origin.clone(), cp.tree_size);
                    true
                }
            };
            for cp in current {
                if newer(&cp) && tx.send(Ok(cp)).await.is_err() {
                    return;
                }
            }
            loop {
                match events.recv().await {
                    Ok(ev) => {
                        if newer(&ev.checkpoint) && tx.send(Ok(ev.checkpoint)).await.is_err() {
                            return;
                        }
                    }
                    // A slow watcher missed some: the next one it gets is newer anyway, and
                    // the periodic pull covers the rest.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn gossip(
        &self,
        req: Request<GossipRequest>,
    ) -> Result<Response<GossipResponse>, Status> {
        let peer = req
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let req = req.into_inner();
        let from = format!(
            "gossip from {:?} at {peer}",
            req.from.chars().take(64).collect::<String>()
        );
        for cp in req.checkpoints.iter().take(MAX_GOSSIP) {
            if let Err(e) = crate::federation::replicate::consider(&self.node, cp, &from).await {
                tracing::error!(error = %e, "considering gossip failed");
            }
        }
        Ok(Response::new(GossipResponse {
            checkpoints: self.node.held_checkpoints(),
        }))
    }
}
