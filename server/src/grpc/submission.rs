//! `redline.v1.Submission`: analysts add and retract hashes of the node's own origin.

use crate::grpc::convert::parse_signals;
use crate::node::{Listing, Node, NodeError};
use redline_proto::pb::{
    self, submission_server::Submission, RetractRequest, RetractResponse, SubmitRequest,
    SubmitResponse, SubmittedEntry,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Handlers; thin: validate, convert, call the node, convert back.
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
        let req = req.into_inner();
        let mut signals = parse_signals(&req.signals)?;
        let mut echo: Vec<pb::Signal> = req.signals.clone();
        if !req.image.is_empty() {
            // Hashed with every configured type; the bytes are dropped inside `hash`.
            let hashes = self
                .node
                .hasher()
                .hash(req.image, false)
                .await
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            for s in hashes.signals {
                echo.push(pb::Signal {
                    signal_type: s.signal_type.name().to_owned(),
                    value: s.hex(),
                    quality: s.quality.map_or(0, u32::from),
                });
                signals.push(crate::node::NewSignal {
                    signal_type: s.signal_type,
                    hash: s.bytes,
                    quality: s.quality.map_or(0, u32::from),
                });
            }
        }
        let out = self
            .node
            .submit(
                signals,
                Listing {
                    labels: req.labels,
                    legal_basis: req.legal_basis,
                    case_ref: req.case_ref,
                },
            )
            .await?;
        Ok(Response::new(SubmitResponse {
            entries: echo
                .into_iter()
                .zip(out.entries)
                .map(|(signal, (index, duplicate))| SubmittedEntry {
                    signal: Some(signal),
                    index,
                    duplicate,
                })
                .collect(),
            checkpoint: Some(crate::node::to_pb(self.node.origin(), &out.checkpoint)),
        }))
    }

    async fn retract(
        &self,
        req: Request<RetractRequest>,
    ) -> Result<Response<RetractResponse>, Status> {
        let req = req.into_inner();
        if req.reason.trim().is_empty() {
            return Err(NodeError::BadRange("a retraction needs a reason".into()).into());
        }
        let (retract_index, cp) = self.node.retract(req.index, &req.reason).await?;
        Ok(Response::new(RetractResponse {
            retract_index,
            checkpoint: Some(crate::node::to_pb(self.node.origin(), &cp)),
        }))
    }
}
