//! What a hotline analyst does: submit hashes, retract false positives, look at the node.

use crate::connect::{connect, with_auth, AuthChannel, BearerAuth, ClientError, NodeTarget};
use redline_proto::pb::{
    node_client::NodeClient, submission_client::SubmissionClient, RetractRequest, RetractResponse,
    Signal, StatusRequest, StatusResponse, SubmitRequest, SubmitResponse,
};
use tonic::transport::Channel;

/// Most signals the client puts in one `Submit` call (the node's default limit is 10,000).
pub const MAX_SUBMIT_BATCH: usize = 1_000;

/// Client of a hotline's own node.
#[derive(Debug, Clone)]
pub struct HotlineClient {
    submission: SubmissionClient<AuthChannel>,
    node: NodeClient<AuthChannel>,
}

impl HotlineClient {
    /// Connects to the node at `url`, without a token.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        Ok(Self::new(connect(url).await?))
    }

    /// Connects to the node at `url`; every call carries `token` as a bearer token.
    pub async fn connect_with_token(url: &str, token: Option<&str>) -> Result<Self, ClientError> {
        Self::connect_to(&NodeTarget::with_token(url, token)).await
    }

    /// Connects to `target` (TLS for `https://`, its CA, its token).
    pub async fn connect_to(target: &NodeTarget) -> Result<Self, ClientError> {
        let auth = target.auth()?;
        Ok(Self::with_auth(target.open().await?, auth))
    }

    /// Uses an open channel, without a token.
    pub fn new(channel: Channel) -> Self {
        Self::with_auth(channel, BearerAuth::none())
    }

    /// Uses an open channel; every call carries `auth`.
    pub fn with_auth(channel: Channel, auth: BearerAuth) -> Self {
        let channel = with_auth(channel, auth);
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
                video: Vec::new(),
            })
            .await?
            .into_inner())
    }

    /// Submits any number of signals in calls of at most [`MAX_SUBMIT_BATCH`], calling
    /// `progress` with the number sent so far after each call. Each call is all or nothing; if
    /// one fails, the earlier ones stay committed and the error says how many went through.
    pub async fn submit_batched(
        &mut self,
        signals: Vec<Signal>,
        labels: Vec<String>,
        legal_basis: &str,
        case_ref: &str,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<SubmitResponse>, (usize, ClientError)> {
        let mut out = Vec::new();
        let mut done = 0;
        for chunk in signals.chunks(MAX_SUBMIT_BATCH) {
            let resp = self
                .submit(chunk.to_vec(), labels.clone(), legal_basis, case_ref)
                .await
                .map_err(|e| (done, e))?;
            done += chunk.len();
            progress(done);
            out.push(resp);
        }
        Ok(out)
    }

    /// Sends a raw submit request (e.g. with an image).
    pub async fn submit_request(
        &mut self,
        req: SubmitRequest,
    ) -> Result<SubmitResponse, ClientError> {
        Ok(self.submission.submit(req).await?.into_inner())
    }

    /// Retracts the ADD at `index`.
    pub async fn retract(
        &mut self,
        index: u64,
        reason: &str,
    ) -> Result<RetractResponse, ClientError> {
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
