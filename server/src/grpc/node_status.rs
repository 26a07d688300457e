//! `redline.v1.Node`: the operator's view of a node.

use crate::node::Node;
use redline_proto::pb::{node_server, StatusRequest, StatusResponse};
use std::sync::Arc;
use tonic::{Request, Response, Status};

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
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(self.node.overview().await?.into()))
    }
}
