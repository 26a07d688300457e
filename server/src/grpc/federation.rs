//! `redline.v1.Federation`: what peers ask of this node. Everything served here is material a
//! receiver verifies itself; nothing received here is merged without the same verification as a
//! pulled checkpoint (`federation::replicate::consider`).

use crate::federation::bounded::{GossipIn, MAX_CHECKPOINTS, MAX_CHECKPOINT_LIST_BYTES};
use crate::grpc::audit::{consistency_proof, get_entries, EntryStream};
use crate::node::{to_pb, Node};
use redline_proto::pb::{
    federation_server::{Federation, FederationServer},
    Checkpoint, ConsistencyProof, GetCheckpointsRequest, GetCheckpointsResponse,
    GetConsistencyProofRequest, GetEntriesRequest, GossipRequest, GossipResponse,
    WatchCheckpointsRequest,
};
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio_stream::Stream;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

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
            checkpoints: self.node.logs().held_checkpoints(),
        }))
    }

    type GetEntriesStream = EntryStream;

    async fn get_entries(
        &self,
        req: Request<GetEntriesRequest>,
    ) -> Result<Response<Self::GetEntriesStream>, Status> {
        Ok(Response::new(get_entries(&self.node, req.into_inner())?))
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
        let current: Vec<(String, u64, Checkpoint)> = self
            .node
            .logs()
            .all()
            .into_iter()
            .filter_map(|(name, log)| {
                let cp = log.state().checkpoint?;
                Some((name.clone(), cp.size, to_pb(&name, &cp)))
            })
            .collect();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            // Each origin's checkpoints go out in increasing size only: events queued between
            // the subscription and the snapshot may be older than the snapshot, and followers
            // treat a peer that goes back on its watch stream as replaying old checkpoints.
            // Sizes are this node's own committed ones.
            let mut sent: HashMap<String, u64> = HashMap::new();
            let mut newer = move |origin: &str, size: u64| match sent.get_mut(origin) {
                Some(sent) if *sent >= size => false,
                Some(sent) => {
                    *sent = size;
                    true
                }
                None => {
                    sent.insert(origin.to_owned(), size);
                    true
                }
            };
            for (origin, size, cp) in current {
                if newer(&origin, size) && tx.send(Ok(cp)).await.is_err() {
                    return;
                }
            }
            loop {
                match events.recv().await {
                    Ok(ev) => {
                        if newer(&ev.origin, ev.checkpoint.size)
                            && tx
                                .send(Ok(to_pb(&ev.origin, &ev.checkpoint)))
                                .await
                                .is_err()
                        {
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
        // Not reached through the router (see [`FederationRoutes`]); kept for direct users.
        let peer = req.remote_addr();
        let req = req.into_inner();
        let checkpoints = req.checkpoints.into_iter().take(MAX_CHECKPOINTS).collect();
        Ok(Response::new(
            gossip(&self.node, peer, &req.from, checkpoints, 0).await,
        ))
    }
}

/// Considers gossiped checkpoints (as a pulled checkpoint would be: nothing is fetched here)
/// and answers with the checkpoints this node holds.
async fn gossip(
    node: &Node,
    peer: Option<std::net::SocketAddr>,
    from: &str,
    checkpoints: Vec<Checkpoint>,
    skipped: u64,
) -> GossipResponse {
    let peer = peer.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    let from = format!(
        "gossip from {:?} at {peer}",
        from.chars().take(64).collect::<String>()
    );
    if skipped > 0 {
        tracing::warn!(%from, skipped, "gossip listed more than {MAX_CHECKPOINTS} checkpoints; the rest were ignored");
    }
    for cp in &checkpoints {
        if let Err(e) = crate::federation::replicate::consider(node, cp, &from).await {
            tracing::error!(error = %e, "considering gossip failed");
        }
    }
    GossipResponse {
        checkpoints: node.logs().held_checkpoints(),
    }
}

/// The generated Federation server, except for `Gossip`: its request is decoded with
/// [`GossipIn`], which keeps the first [`MAX_CHECKPOINTS`] checkpoints and skips the rest
/// unread, so a caller cannot make the node decode millions of empty checkpoints (2 bytes
/// each on the wire, 80 in memory) out of one message.
#[derive(Debug, Clone)]
pub struct FederationRoutes {
    generated: FederationServer<FederationService>,
    node: Arc<Node>,
    max_encoding: usize,
}

impl FederationRoutes {
    /// Serves `node`: at most `max_decoding` bytes per request (`Gossip`: at most
    /// [`MAX_CHECKPOINT_LIST_BYTES`]), `max_encoding` per response.
    pub fn new(node: Arc<Node>, max_decoding: usize, max_encoding: usize) -> Self {
        Self {
            generated: FederationServer::new(FederationService::new(node.clone()))
                .max_decoding_message_size(max_decoding)
                .max_encoding_message_size(max_encoding),
            node,
            max_encoding,
        }
    }
}

impl NamedService for FederationRoutes {
    const NAME: &'static str = <FederationServer<FederationService> as NamedService>::NAME;
}

const GOSSIP_PATH: &str = "/redline.v1.Federation/Gossip";

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl tower::Service<http::Request<Body>> for FederationRoutes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::<http::Request<Body>>::poll_ready(&mut self.generated, cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if req.uri().path() != GOSSIP_PATH {
            return Box::pin(self.generated.call(req));
        }
        let (node, max_encoding) = (self.node.clone(), self.max_encoding);
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<GossipResponse, GossipIn>::default())
                    .apply_max_message_size_config(
                        Some(MAX_CHECKPOINT_LIST_BYTES),
                        Some(max_encoding),
                    );
            Ok(grpc.unary(GossipHandler(node), req).await)
        })
    }
}

struct GossipHandler(Arc<Node>);

impl tonic::server::UnaryService<GossipIn> for GossipHandler {
    type Response = GossipResponse;
    type Future = BoxFuture<Result<Response<GossipResponse>, Status>>;

    fn call(&mut self, req: Request<GossipIn>) -> Self::Future {
        let node = self.0.clone();
        Box::pin(async move {
            let peer = req.remote_addr();
            let g = req.into_inner();
            Ok(Response::new(
                gossip(&node, peer, &g.from, g.checkpoints, g.skipped).await,
            ))
        })
    }
}
