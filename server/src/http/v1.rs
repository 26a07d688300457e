//! Redline's own JSON API: one lookup shape carrying what a platform has to show for a match —
//! the hash, the origin and index that prove where it came from, the distance, the labels and
//! legal basis, the quality, and the checkpoint (tree size and root) of the origin's signed log
//! the match was made under, so it can be proven later with an inclusion proof of that tree.

use super::{ApiError, HttpGate};
use crate::grpc::auth::Budget;
use crate::grpc::matching::answer;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use redline_proto::pb;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::ToSchema;

/// Largest JSON body: a batch of [`MAX_BATCH`] PDQ signals is ~1 MiB; room for labels and
/// whitespace.
pub const MAX_JSON_BODY: usize = 4 << 20;
/// Most signals in one `/v1/match/batch` call.
pub const MAX_BATCH: usize = 10_000;

/// A signal as sent.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalIn {
    /// `pdq`, `md5`, `sha256`, `vpdq`, … (the proto's names).
    #[schema(value_type = super::openapi::SignalTypeName)]
    pub signal_type: String,
    /// Lowercase hex.
    pub value: String,
    /// PDQ quality when known (0–100); not used for matching.
    #[serde(default)]
    pub quality: u32,
}

/// Body of `/v1/match` and `/v1/match/batch`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchBody {
    /// The hashes to look up, answered in this order.
    pub signals: Vec<SignalIn>,
    /// Largest distance wanted; 0: each type's default. Never raises the node's radius.
    #[serde(default)]
    pub max_distance: u32,
    /// Most matches per signal; 0: the node's `max_hits`. Never raises it.
    #[serde(default)]
    pub max_hits: u32,
}

/// The signed tree a match was made under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CheckpointRef {
    /// Tree size.
    pub size: u64,
    /// Root hash, hex.
    pub root_hex: String,
}

/// How a vPDQ query compared with the listed video.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VideoOut {
    /// Percent of the query's frames matched.
    pub query_percent: f64,
    /// Percent of the listed video's frames matched.
    pub compared_percent: f64,
    /// Matched spans of the query, `[start_ms, end_ms]`.
    pub query_ranges: Vec<[u32; 2]>,
    /// Matched spans of the listed video.
    pub compared_ranges: Vec<[u32; 2]>,
}

/// One match.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MatchOut {
    /// The origin (hotline) whose signed log holds the entry.
    pub origin: String,
    /// The entry's index in that log.
    pub index: u64,
    /// The listed hash's type.
    pub signal_type: String,
    /// The listed hash, hex (empty for vPDQ: read the entry for its frames).
    pub hash: String,
    /// Hamming distance (exact types: 0; vPDQ: the smallest frame distance).
    pub distance: u32,
    /// The listing's labels.
    pub labels: Vec<String>,
    /// The listing's legal basis.
    pub legal_basis: String,
    /// The listed hash's quality.
    pub quality: u32,
    /// The origin's checkpoint when the answer was made; `null` if it could not be read.
    pub checkpoint: Option<CheckpointRef>,
    /// For vPDQ matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoOut>,
}

/// The answer for one queried signal.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Lookup {
    /// The queried signal's type.
    pub signal_type: String,
    /// The queried value.
    pub value: String,
    /// Matches by distance, then origin, then index.
    pub matches: Vec<MatchOut>,
    /// More entries matched than `matches` holds.
    pub truncated: bool,
}

/// `POST /v1/match`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MatchResults {
    /// One lookup per signal sent, in the order sent.
    pub results: Vec<Lookup>,
}

/// A JSON request body of `/v1/`, or a 400 that says where it is wrong.
pub(super) fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))
}

fn request(signals: &[SignalIn], body: &MatchBody) -> pb::MatchRequest {
    pb::MatchRequest {
        signals: signals
            .iter()
            .map(|s| pb::Signal {
                signal_type: s.signal_type.clone(),
                value: s.value.clone(),
                quality: s.quality,
            })
            .collect(),
        max_distance: body.max_distance,
        max_hits: body.max_hits,
        ..Default::default()
    }
}

/// Each origin's checkpoint, read once per origin per answer.
#[derive(Default)]
struct Checkpoints(HashMap<String, Option<CheckpointRef>>);

impl Checkpoints {
    fn of(&mut self, node: &crate::node::Node, origin: &str) -> Option<CheckpointRef> {
        self.0
            .entry(origin.to_owned())
            .or_insert_with(|| {
                node.logs().checkpoint(origin).ok().map(|c| CheckpointRef {
                    size: c.size,
                    root_hex: hex::encode(c.root.0),
                })
            })
            .clone()
    }
}

fn ranges(r: &[pb::TimeRange]) -> Vec<[u32; 2]> {
    r.iter().map(|t| [t.start_ms, t.end_ms]).collect()
}

fn lookups(
    node: &crate::node::Node,
    resp: pb::MatchResponse,
    checkpoints: &mut Checkpoints,
) -> Vec<Lookup> {
    resp.results
        .into_iter()
        .map(|r| {
            let query = r.query.unwrap_or_default();
            Lookup {
                signal_type: query.signal_type,
                value: query.value,
                truncated: r.truncated,
                matches: r
                    .matches
                    .into_iter()
                    .map(|m| {
                        let signal = m.signal.unwrap_or_default();
                        MatchOut {
                            checkpoint: checkpoints.of(node, &m.origin),
                            origin: m.origin,
                            index: m.index,
                            signal_type: signal.signal_type,
                            hash: signal.value,
                            distance: m.distance,
                            labels: m.labels,
                            legal_basis: m.legal_basis,
                            quality: m.quality,
                            video: m.video.map(|v| VideoOut {
                                query_percent: v.query_percent,
                                compared_percent: v.compared_percent,
                                query_ranges: ranges(&v.query_ranges),
                                compared_ranges: ranges(&v.compared_ranges),
                            }),
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

fn budget(b: Option<Extension<Budget>>) -> Budget {
    b.map(|Extension(b)| b).unwrap_or_default()
}

/// `POST /v1/match`: at most `[matching] max_signals` signals, `{"results": [Lookup…]}` in the
/// order sent.
#[utoipa::path(
    post,
    path = "/v1/match",
    tag = "v1",
    summary = "Match hashes, with provenance",
    request_body(content = MatchBody, content_type = "application/json"),
    responses((status = 200, description = "One lookup per signal, in the order sent", body = MatchResults)),
    security(("bearer" = [])),
)]
pub async fn match_one(
    State(gate): State<HttpGate>,
    b: Option<Extension<Budget>>,
    body: Bytes,
) -> Result<Json<MatchResults>, ApiError> {
    let node = gate.node()?;
    let parsed = json_body::<MatchBody>(&body)?;
    let resp = answer(node, request(&parsed.signals, &parsed), &budget(b)).await?;
    let results = lookups(node, resp, &mut Checkpoints::default());
    Ok(Json(MatchResults { results }))
}

/// `POST /v1/match/batch`: up to [`MAX_BATCH`] signals, answered as NDJSON, one [`Lookup`] per
/// line in the order sent, streamed as each slice of `[matching] max_signals` is answered (a
/// backfill sees its first results at once and the node holds one slice's answers at a time).
/// Each slice is charged to the token like a Match of its own; a slice refused (rate, bad
/// signal) ends the stream with one `{"error": {"message", "code"}}` line.
#[utoipa::path(
    post,
    path = "/v1/match/batch",
    tag = "v1",
    summary = "Match up to 10,000 hashes, streamed as NDJSON",
    request_body(content = MatchBody, content_type = "application/json"),
    responses((
        status = 200,
        description = "One Lookup per line, in the order sent; a refused slice ends the stream \
            with one `{\"error\": {\"message\", \"code\"}}` line",
        content_type = "application/x-ndjson",
        body = Lookup,
    )),
    security(("bearer" = [])),
)]
pub async fn match_batch(
    State(gate): State<HttpGate>,
    b: Option<Extension<Budget>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let node = gate.node()?.clone();
    let parsed = Arc::new(json_body::<MatchBody>(&body)?);
    if parsed.signals.is_empty() {
        return Err(ApiError::bad_request("signals is empty"));
    }
    if parsed.signals.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "{} signals in one batch; at most {MAX_BATCH}",
            parsed.signals.len()
        )));
    }
    let budget = budget(b);
    let slice = node.config().matching.max_signals.max(1);
    let slices = (0..parsed.signals.len()).step_by(slice);
    let lines = futures::stream::iter(slices)
        .then(move |start| {
            let (node, parsed, budget) = (node.clone(), parsed.clone(), budget.clone());
            async move {
                let end = (start + slice).min(parsed.signals.len());
                let req = request(&parsed.signals[start..end], &parsed);
                match answer(&node, req, &budget).await {
                    Ok(resp) => {
                        let mut out = Vec::new();
                        for l in lookups(&node, resp, &mut Checkpoints::default()) {
                            // Serializing plain structs of strings and numbers cannot fail.
                            serde_json::to_writer(&mut out, &l).unwrap_or_default();
                            out.push(b'\n');
                        }
                        (Bytes::from(out), true)
                    }
                    Err(status) => {
                        let e = ApiError::from(status);
                        let line = serde_json::json!({
                            "error": { "message": e.message, "code": e.code }
                        });
                        (Bytes::from(format!("{line}\n")), false)
                    }
                }
            }
        })
        // Stop after the first refused slice (its error line is the last one sent).
        .scan(true, |go_on, (bytes, ok)| {
            let emit = (*go_on).then_some(bytes);
            *go_on = ok;
            std::future::ready(emit)
        })
        .map(Ok::<_, std::convert::Infallible>);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}
