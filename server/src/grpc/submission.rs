//! `redline.v1.Submission`: analysts add and retract hashes of the node's own origin. The
//! handlers only convert; the node's own-log service does the rest.

use crate::node::{to_pb, Node, Upload};
use redline_proto::pb::{
    submission_server::Submission, RetractRequest, RetractResponse, SubmitRequest, SubmitResponse,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Handlers; thin: convert, call the node, convert back.
#[derive(Debug, Clone)]
pub struct SubmissionService {
    node: Arc<Node>,
}

impl SubmissionService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl Submission for SubmissionService {
    async fn submit(
        &self,
        req: Request<SubmitRequest>,
    ) -> Result<Response<SubmitResponse>, Status> {
        let upload = Upload::try_from(req.into_inner())?;
        let receipt = self.node.own_log().upload(upload).await?;
        Ok(Response::new(receipt.into()))
    }

    async fn retract(
        &self,
        req: Request<RetractRequest>,
    ) -> Result<Response<RetractResponse>, Status> {
        let req = req.into_inner();
        let (retract_index, cp) = self.node.own_log().retract(req.index, &req.reason).await?;
        Ok(Response::new(RetractResponse {
            retract_index,
            checkpoint: Some(to_pb(self.node.origin(), &cp)),
        }))
    }
}
