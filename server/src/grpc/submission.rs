//! `redline.v1.Submission`: analysts add and retract hashes of the node's own origin. The
//! handlers only convert; the node's own-log service does the rest.

use super::auth::{units, Budget};
use super::convert::signals_field;
use super::wire::{Field, Shape};
use crate::node::{to_pb, Node, Upload};
use redline_proto::entry::{MAX_LABELS, MAX_TEXT_BYTES};
use redline_proto::pb::{
    submission_server::Submission, RetractRequest, RetractResponse, SubmitRequest, SubmitResponse,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// What `Submit` and `Retract` requests may be on the wire: at most `max_batch` signals
/// (`[limits] max_batch`), the entry format's label and text limits, and an image of at most
/// `max_image` bytes (`[hashing] max_image_bytes`). Checked as the bytes arrive, before they
/// are decoded ([`wire`](super::wire)).
pub fn shapes(max_batch: usize, max_image: usize, max_video: usize) -> Vec<(&'static str, Shape)> {
    vec![
        (
            "/redline.v1.Submission/Submit",
            Shape::new(
                "Submit",
                vec![
                    signals_field(max_batch),
                    Field::repeated(2, "labels", MAX_LABELS, MAX_TEXT_BYTES),
                    Field::single(3, "legal_basis", MAX_TEXT_BYTES),
                    Field::single(4, "case_ref", MAX_TEXT_BYTES),
                    Field::single(5, "image", max_image),
                    Field::single(6, "video", max_video),
                ],
            ),
        ),
        (
            "/redline.v1.Submission/Retract",
            Shape::new("Retract", vec![Field::single(2, "reason", MAX_TEXT_BYTES)]),
        ),
    ]
}

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
        let budget = req
            .extensions()
            .get::<Budget>()
            .cloned()
            .unwrap_or_default();
        let actor = super::node_status::actor(&req);
        let req = req.into_inner();
        budget.charge(units(req.signals.len(), !req.image.is_empty(), false))?;
        let upload = Upload::try_from(req)?;
        let receipt = self.node.own_log().upload(upload).await?;
        let trail = self.node.trail();
        trail
            .submitted(&actor, "redline.v1.Submission/Submit", &receipt)
            .await;
        Ok(Response::new(receipt.into()))
    }

    async fn retract(
        &self,
        req: Request<RetractRequest>,
    ) -> Result<Response<RetractResponse>, Status> {
        let actor = super::node_status::actor(&req);
        let req = req.into_inner();
        let (retract_index, cp) = self.node.own_log().retract(req.index, &req.reason).await?;
        let call = "redline.v1.Submission/Retract";
        let trail = self.node.trail();
        trail
            .retracted(&actor, call, req.index, retract_index, &cp)
            .await;
        Ok(Response::new(RetractResponse {
            retract_index,
            checkpoint: Some(to_pb(self.node.origin(), &cp)),
        }))
    }
}
