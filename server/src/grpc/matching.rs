//! `redline.v1.Matching`: platforms check uploads (hashes or an image) against the merged lists
//! of the origins this node accepts. The handlers only convert; the node's matching service
//! decides what to search and how.

use crate::node::{Node, Query};
use futures::StreamExt;
use redline_proto::pb::{matching_server::Matching, MatchRequest, MatchResponse};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// Handlers.
#[derive(Debug, Clone)]
pub struct MatchingService {
    node: Arc<Node>,
}

impl MatchingService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

/// Answers one request.
pub async fn answer(node: &Node, req: MatchRequest) -> Result<MatchResponse, Status> {
    let query = Query::try_from(req)?;
    Ok(node.matching().answer(query).await?.into())
}

/// Responses of a match stream.
pub type MatchResponseStream = Pin<Box<dyn Stream<Item = Result<MatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Matching for MatchingService {
    async fn r#match(&self, req: Request<MatchRequest>) -> Result<Response<MatchResponse>, Status> {
        Ok(Response::new(answer(&self.node, req.into_inner()).await?))
    }

    type MatchStreamStream = MatchResponseStream;

    async fn match_stream(
        &self,
        req: Request<Streaming<MatchRequest>>,
    ) -> Result<Response<Self::MatchStreamStream>, Status> {
        let node = self.node.clone();
        let requests = req.into_inner();
        // One answer per request, in order; a bad request ends the stream with its status.
        let responses = requests.then(move |r| {
            let node = node.clone();
            async move { answer(&node, r?).await }
        });
        Ok(Response::new(Box::pin(responses)))
    }
}
