//! `redline.v1.Matching`: platforms check uploads (hashes or an image) against the merged lists
//! of the origins this node accepts.

use crate::grpc::convert::parse_signals;
use crate::index::Hit;
use crate::matching::{radius, search_variants};
use crate::node::{Node, NodeError};
use futures::StreamExt;
use redline_hashing::Dihedral;
use redline_proto::pb::{
    self, matching_server::Matching, MatchRequest, MatchResponse, QueryResult,
};
use redline_proto::signal::SignalType;
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

/// Requests with at most this many searches (signals times variants) are answered on the runtime
/// thread; see [`answer`].
const INLINE_SEARCHES: usize = 4;

fn to_match(signal_type: SignalType, hit: Hit) -> pb::Match {
    pb::Match {
        origin: hit.origin,
        index: hit.index,
        signal: Some(pb::Signal {
            signal_type: signal_type.name().to_owned(),
            value: hex::encode(&hit.hash),
            quality: hit.quality,
        }),
        distance: hit.distance,
        labels: hit.listing.labels.clone(),
        legal_basis: hit.listing.legal_basis.clone(),
        quality: hit.quality,
    }
}

/// Answers one request: each queried signal in order, then each signal computed from the image.
pub async fn answer(node: &Node, req: MatchRequest) -> Result<MatchResponse, Status> {
    let max = node.config().matching.max_signals;
    if req.signals.len() > max {
        return Err(NodeError::BatchTooLarge {
            got: req.signals.len(),
            max,
        }
        .into());
    }
    if req.signals.is_empty() && req.image.is_empty() {
        return Err(Status::invalid_argument(
            "a match request needs `signals` or an `image`",
        ));
    }
    let parsed = parse_signals(&req.signals)?;
    // (query as sent back, type, variants to search)
    let mut queries: Vec<(pb::Signal, SignalType, Vec<Vec<u8>>)> = parsed
        .into_iter()
        .zip(req.signals)
        .map(|(p, echo)| (echo, p.signal_type, vec![p.hash]))
        .collect();
    if !req.image.is_empty() {
        let hashes = node
            .hasher()
            .hash(req.image, req.dihedral)
            .await
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        for s in hashes.signals {
            let mut variants = vec![s.bytes.clone()];
            if s.signal_type == SignalType::Pdq {
                if let Some(d) = &hashes.pdq_dihedral {
                    variants.extend(
                        Dihedral::ALL
                            .iter()
                            .filter(|&&v| v != Dihedral::Original)
                            .map(|&v| d.get(v).0.to_vec()),
                    );
                }
            }
            queries.push((
                pb::Signal {
                    signal_type: s.signal_type.name().to_owned(),
                    value: s.hex(),
                    quality: s.quality.map_or(0, u32::from),
                },
                s.signal_type,
                variants,
            ));
        }
    }
    let catalog = node.catalog().clone();
    let config = node.config().matching.clone();
    let max_distance = req.max_distance;
    let searches: usize = queries.iter().map(|(_, _, variants)| variants.len()).sum();
    let search_all = move || -> Vec<QueryResult> {
        queries
            .into_iter()
            .map(|(query, signal_type, variants)| {
                let r = radius(&config, signal_type, max_distance);
                let matches = search_variants(&catalog, signal_type, &variants, r)
                    .into_iter()
                    .map(|hit| to_match(signal_type, hit))
                    .collect();
                QueryResult {
                    query: Some(query),
                    matches,
                }
            })
            .collect()
    };
    // A platform's upload path sends one or a few hashes per request: each search takes tens of
    // microseconds, less than handing it to the blocking pool and waking the task again, so those
    // run on the runtime thread. Larger requests (many signals, dihedral variants) go to the
    // blocking pool so that they cannot stall the runtime's other connections.
    let results = if searches <= INLINE_SEARCHES {
        search_all()
    } else {
        tokio::task::spawn_blocking(search_all)
            .await
            .map_err(|_| Status::internal("internal error"))?
    };
    node.metrics()
        .matched(results.len(), results.iter().map(|r| r.matches.len()).sum());
    Ok(MatchResponse { results })
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
