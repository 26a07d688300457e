//! `redline.v1.Matching`: platforms check uploads (hashes or an image) against the merged lists
//! of the origins this node accepts. The handlers only convert; the node's matching service
//! decides what to search and how.

use super::auth::{units, Budget};
use super::convert::signals_field;
use super::wire::{Field, Shape};
use crate::node::{Node, Query};
use futures::StreamExt;
use redline_proto::pb::{matching_server::Matching, MatchRequest, MatchResponse};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// What a `Match` request, and each message of a `MatchStream`, may be on the wire: at most
/// `max_signals` signals (`[matching] max_signals`) and an image of at most `max_image` bytes
/// (`[hashing] max_image_bytes`). Checked as the bytes arrive, before they are decoded
/// ([`wire`](super::wire)).
pub fn shapes(
    max_signals: usize,
    max_image: usize,
    max_video: usize,
) -> Vec<(&'static str, Shape)> {
    let shape = |method| {
        Shape::new(
            method,
            vec![
                signals_field(max_signals),
                Field::single(2, "image", max_image),
                Field::single(6, "video", max_video),
            ],
        )
    };
    vec![
        ("/redline.v1.Matching/Match", shape("Match")),
        ("/redline.v1.Matching/MatchStream", shape("MatchStream")),
    ]
}

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

/// Answers one request, first charging its work to the caller's `budget`.
pub async fn answer(
    node: &Node,
    req: MatchRequest,
    budget: &Budget,
) -> Result<MatchResponse, Status> {
    budget.charge(units(
        req.signals.len(),
        !req.image.is_empty(),
        req.dihedral,
    ))?;
    let query = Query::try_from(req)?;
    let answer = node.matching().answer(query).await?;
    // A proof reads a leaf and an inclusion proof's hashes: about a search's work each, and
    // how many there are is known only now.
    let proofs = answer
        .results
        .iter()
        .flat_map(|r| &r.hits)
        .filter(|h| h.tlog_proof.is_some())
        .count();
    budget.charge_done(proofs as u64);
    Ok(answer.into())
}

/// Responses of a match stream.
pub type MatchResponseStream = Pin<Box<dyn Stream<Item = Result<MatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Matching for MatchingService {
    async fn r#match(&self, req: Request<MatchRequest>) -> Result<Response<MatchResponse>, Status> {
        let budget = budget_of(&req);
        Ok(Response::new(
            answer(&self.node, req.into_inner(), &budget).await?,
        ))
    }

    type MatchStreamStream = MatchResponseStream;

    async fn match_stream(
        &self,
        req: Request<Streaming<MatchRequest>>,
    ) -> Result<Response<Self::MatchStreamStream>, Status> {
        let node = self.node.clone();
        let budget = budget_of(&req);
        let requests = req.into_inner();
        // One answer per request, in order; a bad request ends the stream with its status,
        // and so does one over the token's rate (RESOURCE_EXHAUSTED): every query is charged
        // like a Match of its own, so a stream is refused, not throttled, once it has spent
        // the token's burst. Refusing keeps the node from holding a stream (and its queued
        // requests) open on the caller's behalf; the caller reopens once its budget refills.
        let responses = requests.then(move |r| {
            let (node, budget) = (node.clone(), budget.clone());
            async move { answer(&node, r?, &budget).await }
        });
        Ok(Response::new(Box::pin(responses)))
    }
}

/// The caller's budget, from the guard (none when called without it, as in unit tests).
fn budget_of<T>(req: &Request<T>) -> Budget {
    req.extensions()
        .get::<Budget>()
        .cloned()
        .unwrap_or_default()
}
