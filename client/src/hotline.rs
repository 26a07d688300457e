//! What a hotline analyst does: submit hashes, retract false positives, look at the node.

use crate::connect::{connect, ClientError};
use redline_proto::pb::{
    node_client::NodeClient, submission_client::SubmissionClient, RetractRequest,
    RetractResponse, Signal, StatusRequest, StatusResponse, SubmitRequest, SubmitResponse,
};
use tonic::transport::Channel;

/// Client of a hotline's own node.
#[derive(Debug, Clone)]
pub struct HotlineClient {
    submission: SubmissionClient<Channel>,
    node: NodeClient<Channel>,
}

impl HotlineClient {
    /// Connects to the node at `url`.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        Ok(Self::new(connect(url).await?))
    }

    /// Uses an open channel.
    pub fn new(channel: Channel) -> Self {
        Self {
            submission: SubmissionClient::new(channel.clone())
                .max_decoding_message_size(64 * 1024 * 1024),
            node: NodeClient::new(channel),
        }
    }

    /// Submits signals with shared labels and legal basis.
    pub async fn submit(
        &mut self,
        signals: Vec<Signal>,
        labels: Vec<String>,
        legal_basis: &str,
        case_ref: &str,
    ) -> Result<SubmitResponse, ClientError> {
        Ok(self
            .submission
            .submit(SubmitRequest {
                signals,
                labels,
                legal_basis: legal_basis.to_owned(),
                case_ref: case_ref.to_owned(),
                image: Vec::new(),
            })
            .await?
            .into_inner())
    }

    /// Sends a raw submit request (e.g. with an image).
    pub async fn submit_request(&mut self, req: SubmitRequest) -> Result<SubmitResponse, ClientError> {
        Ok(self.submission.submit(req).await?.into_inner())
    }

    /// Retracts the ADD at `index`.
    pub async fn retract(&mut self, index: u64, reason: &str) -> Result<RetractResponse, ClientError> {
        Ok(self
            .submission
            .retract(RetractRequest {
                index,
                reason: reason.to_owned(),
            })
            .await?
            .into_inner())
    }

    /// The node's status.
    pub async fn status(&mut self) -> Result<StatusResponse, ClientError> {
        Ok(self.node.status(StatusRequest {}).await?.into_inner())
    }
}
