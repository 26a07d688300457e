//! `redline.v1.Node`: the operator's view of a node (its status, and the operator audit trail),
//! behind the `admin` scope. Every call here is itself recorded in the trail.

use super::auth::Caller;
use crate::node::to_pb;
use crate::node::{Actor, Node};
use redline_proto::pb::{
    node_server, ListOperatorEventsRequest, ListOperatorEventsResponse, ResumeOriginRequest,
    ResumeOriginResponse, StatusRequest, StatusResponse,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Who made `req`: the token name the guard authenticated ([`Caller`], in the request's
/// extensions) and the connection's peer address. For the operator trail.
pub fn actor<T>(req: &Request<T>) -> Actor {
    Actor {
        token: req.extensions().get::<Caller>().and_then(|c| c.0.clone()),
        remote: req.remote_addr().map(|a| a.to_string()),
    }
}

/// [`actor`] of an HTTP API call, from its request's extensions: the guard puts the
/// [`Caller`] there and the server its connection's address, as for gRPC.
pub fn actor_of(extensions: tonic::Extensions) -> Actor {
    actor(&Request::from_parts(Default::default(), extensions, ()))
}

/// `Status`, for gRPC and `GET /v1/status` alike; the call itself is recorded in the operator
/// trail under `call`.
pub async fn status(node: &Arc<Node>, actor: &Actor, call: &str) -> Result<StatusResponse, Status> {
    let overview = node.overview().await?;
    node.trail().called(actor, call).await;
    Ok(overview.into())
}

/// `ResumeOrigin`, for gRPC and `POST /v1/origins/resume` alike; recorded in the trail under
/// `call` with the origin and the reason.
pub async fn resume_origin(
    node: &Node,
    actor: &Actor,
    call: &str,
    req: ResumeOriginRequest,
) -> Result<ResumeOriginResponse, Status> {
    let (was_frozen, held) = node.resume_origin(&req.origin, &req.reason)?;
    node.trail()
        .resumed(actor, call, &req.origin, &req.reason)
        .await;
    Ok(ResumeOriginResponse {
        was_frozen,
        checkpoint: held.map(|c| to_pb(&req.origin, &c)),
    })
}

/// Handlers.
#[derive(Debug, Clone)]
pub struct NodeService {
    node: Arc<Node>,
}

impl NodeService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl node_server::Node for NodeService {
    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let answer = status(&self.node, &actor(&req), "redline.v1.Node/Status").await?;
        Ok(Response::new(answer))
    }

    async fn list_operator_events(
        &self,
        req: Request<ListOperatorEventsRequest>,
    ) -> Result<Response<ListOperatorEventsResponse>, Status> {
        let who = actor(&req);
        let req = req.into_inner();
        let (events, next_after) = self
            .node
            .trail()
            .page(req.after, req.limit as usize)
            .await?;
        self.node
            .trail()
            .called(&who, "redline.v1.Node/ListOperatorEvents")
            .await;
        Ok(Response::new(ListOperatorEventsResponse {
            events,
            next_after,
        }))
    }

    async fn resume_origin(
        &self,
        req: Request<ResumeOriginRequest>,
    ) -> Result<Response<ResumeOriginResponse>, Status> {
        let who = actor(&req);
        let call = "redline.v1.Node/ResumeOrigin";
        let answer = resume_origin(&self.node, &who, call, req.into_inner()).await?;
        Ok(Response::new(answer))
    }
}
