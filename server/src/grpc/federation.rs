//! `redline.v1.Federation`: what peers ask of this node. Everything served here is material a
//! receiver verifies itself; nothing received here is merged without the same verification as a
//! pulled checkpoint (`federation::replicate::consider`).

use crate::federation::bounded::{GossipIn, MAX_CHECKPOINTS, MAX_CHECKPOINT_LIST_BYTES};
use crate::federation::gossip::{Budgets, CallerId};
use crate::grpc::audit::{consistency_proof, get_entries, EntryStream};
use crate::grpc::auth::Caller;
use crate::node::{to_pb, Node};
use redline_proto::pb::{
    federation_server::{Federation, FederationServer},
    Checkpoint, ConsistencyProof, GetCheckpointsRequest, GetCheckpointsResponse,
    GetConsistencyProofRequest, GetEntriesRequest, GossipRequest, GossipResponse,
    WatchCheckpointsRequest,
};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio_stream::{Stream, StreamExt};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// Handlers.
#[derive(Debug, Clone)]
pub struct FederationService {
    node: Arc<Node>,
    budgets: Arc<Budgets>,
}

impl FederationService {
    /// Serves `node`, with gossip budgets as `node`'s `[gossip]` says.
    pub fn new(node: Arc<Node>) -> Self {
        let budgets = Arc::new(Budgets::new(node.config().gossip.clone()));
        Self::with_budgets(node, budgets)
    }

    fn with_budgets(node: Arc<Node>, budgets: Arc<Budgets>) -> Self {
        Self { node, budgets }
    }
}

/// Who made a call, for gossip budgets: its token's name (set by the guard), else its address.
fn caller_of<T>(req: &Request<T>) -> CallerId {
    match req.extensions().get::<Caller>() {
        Some(Caller(Some(name))) => CallerId::Token(name.clone()),
        _ => req
            .remote_addr()
            .map_or(CallerId::Unknown, |a| CallerId::Address(a.ip())),
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
        let heads = self.node.logs().watch();
        Ok(Response::new(Box::pin(
            heads.map(|(origin, cp)| Ok(to_pb(&origin, &cp))),
        )))
    }

    async fn gossip(
        &self,
        req: Request<GossipRequest>,
    ) -> Result<Response<GossipResponse>, Status> {
        // Not reached through the router (see [`FederationRoutes`]); kept for direct users.
        let (peer, caller) = (req.remote_addr(), caller_of(&req));
        let req = req.into_inner();
        let checkpoints = req.checkpoints.into_iter().take(MAX_CHECKPOINTS).collect();
        let call = Gossip {
            caller,
            peer,
            from: req.from,
            checkpoints,
            skipped: 0,
        };
        Ok(Response::new(gossip(&self.node, &self.budgets, call).await))
    }
}

/// One gossip call as received.
struct Gossip {
    caller: CallerId,
    peer: Option<std::net::SocketAddr>,
    from: String,
    checkpoints: Vec<Checkpoint>,
    skipped: u64,
}

/// The answer to gossip: what the federation layer makes of the caller's checkpoints, and ours.
async fn gossip(node: &Arc<Node>, budgets: &Arc<Budgets>, g: Gossip) -> GossipResponse {
    GossipResponse {
        checkpoints: crate::federation::gossip::received(
            node,
            budgets,
            g.caller,
            g.peer,
            &g.from,
            g.checkpoints,
            g.skipped,
        )
        .await,
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
    budgets: Arc<Budgets>,
    max_encoding: usize,
}

impl FederationRoutes {
    /// Serves `node`: at most `max_decoding` bytes per request (`Gossip`: at most
    /// [`MAX_CHECKPOINT_LIST_BYTES`]), `max_encoding` per response.
    pub fn new(node: Arc<Node>, max_decoding: usize, max_encoding: usize) -> Self {
        let budgets = Arc::new(Budgets::new(node.config().gossip.clone()));
        Self {
            generated: FederationServer::new(FederationService::with_budgets(
                node.clone(),
                budgets.clone(),
            ))
            .max_decoding_message_size(max_decoding)
            .max_encoding_message_size(max_encoding),
            node,
            budgets,
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
        let (node, budgets, max_encoding) =
            (self.node.clone(), self.budgets.clone(), self.max_encoding);
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<GossipResponse, GossipIn>::default())
                    .apply_max_message_size_config(
                        Some(MAX_CHECKPOINT_LIST_BYTES),
                        Some(max_encoding),
                    );
            Ok(grpc.unary(GossipHandler(node, budgets), req).await)
        })
    }
}

struct GossipHandler(Arc<Node>, Arc<Budgets>);

impl tonic::server::UnaryService<GossipIn> for GossipHandler {
    type Response = GossipResponse;
    type Future = BoxFuture<Result<Response<GossipResponse>, Status>>;

    fn call(&mut self, req: Request<GossipIn>) -> Self::Future {
        let (node, budgets) = (self.0.clone(), self.1.clone());
        Box::pin(async move {
            let (peer, caller) = (req.remote_addr(), caller_of(&req));
            let g = req.into_inner();
            let call = Gossip {
                caller,
                peer,
                from: g.from,
                checkpoints: g.checkpoints,
                skipped: g.skipped,
            };
            Ok(Response::new(gossip(&node, &budgets, call).await))
        })
    }
}
