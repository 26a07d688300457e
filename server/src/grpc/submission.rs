//! `redline.v1.Submission`: analysts add and retract hashes of the node's own origin. The
//! handlers only convert; the node's own-log service does the rest.

use super::auth::{units, Budget};
use super::convert::signals_field;
use super::node_status::actor;
use super::wire::{Field, Shape};
use crate::node::{to_pb, Actor, Node, Upload};
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

/// `Submit`, for gRPC and `POST /v1/submit` alike: charges the token's budget (an image
/// costs more than hashes), hashes any media, appends, and records the call in the
/// operator trail under `call`.
pub async fn submit(
    node: &Node,
    actor: &Actor,
    budget: &Budget,
    call: &str,
    req: SubmitRequest,
) -> Result<SubmitResponse, Status> {
    budget.charge(units(req.signals.len(), !req.image.is_empty(), false))?;
    let upload = Upload::try_from(req)?;
    let receipt = node.own_log().upload(upload).await?;
    node.trail().submitted(actor, call, &receipt).await;
    Ok(receipt.into())
}

/// `Retract`, for gRPC and `POST /v1/retract` alike; recorded in the trail under `call`.
pub async fn retract(
    node: &Node,
    actor: &Actor,
    call: &str,
    req: RetractRequest,
) -> Result<RetractResponse, Status> {
    let (retract_index, cp) = node.own_log().retract(req.index, &req.reason).await?;
    node.trail()
        .retracted(actor, call, req.index, retract_index, &cp)
        .await;
    Ok(RetractResponse {
        retract_index,
        checkpoint: Some(to_pb(node.origin(), &cp)),
    })
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
        let actor = actor(&req);
        let call = "redline.v1.Submission/Submit";
        let answer = submit(&self.node, &actor, &budget, call, req.into_inner()).await?;
        Ok(Response::new(answer))
    }

    async fn retract(
        &self,
        req: Request<RetractRequest>,
    ) -> Result<Response<RetractResponse>, Status> {
        let actor = actor(&req);
        let call = "redline.v1.Submission/Retract";
        let answer = retract(&self.node, &actor, call, req.into_inner()).await?;
        Ok(Response::new(answer))
    }
}
