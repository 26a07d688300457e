//! `GET /v1/proof?origin=&index=`: the C2SP tlog-proof of one entry (the text `redline proof`
//! writes and `redline audit --proof` verifies), for a platform that keeps, per match, the
//! evidence of which signed list version it came from without speaking gRPC. Same proof as
//! `MatchRequest.proofs` gives per hit (`Logs::tlog_proofs`), same `audit` scope as the
//! Audit service that serves the parts.

use super::{params, ApiError, HttpGate};
use crate::node::NodeError;
use axum::extract::{RawQuery, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The parameters (unknown ones are refused: a misspelt `index` must not prove entry 0).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofParams {
    origin: Option<String>,
    index: Option<String>,
}

/// `GET /v1/proof`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProofOut {
    /// The origin whose signed log holds the entry.
    pub origin: String,
    /// The entry's index in that log.
    pub index: u64,
    /// Size of the signed tree the proof is against (the origin's latest checkpoint here).
    pub tree_size: u64,
    /// Root of that tree, hex (also in the proof's signed note, which is what counts).
    pub root_hex: String,
    /// The C2SP tlog-proof text (https://c2sp.org/tlog-proof): the entry's leaf bytes
    /// (`extra`), the index, the inclusion proof and the origin's signed note. Verify it with
    /// the origin's key (`redline audit --proof FILE`); never trust it unverified.
    pub tlog_proof: String,
}

/// `GET /v1/proof?origin=&index=`: an offline proof of one entry against the latest signed
/// checkpoint of its origin this node holds.
#[utoipa::path(
    get,
    path = "/v1/proof",
    tag = "v1",
    summary = "An offline proof (C2SP tlog-proof) of one entry",
    params(
        ("origin" = String, Query, description = "The origin (list)"),
        ("index" = u64, Query, description = "The entry's log index"),
    ),
    responses(
        (status = 200, description = "The proof", body = ProofOut),
        (status = 404, description = "The node holds no such origin, or its signed checkpoint has no such index", body = super::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn proof(
    State(gate): State<HttpGate>,
    RawQuery(query): RawQuery,
) -> Result<Json<ProofOut>, ApiError> {
    let p: ProofParams = params::parse(query.as_deref())?;
    let origin = params::required("origin", p.origin.as_deref())?.to_owned();
    let index = params::number("index", p.index.as_deref())?
        .ok_or_else(|| ApiError::bad_request("index is required"))?;
    let node = gate.node()?.clone();
    // The checkpoint the proof will be against, read first: an unknown origin is a 404 like
    // the Audit service's, and an index past the signed tree is said as such.
    let cp = node
        .logs()
        .checkpoint(&origin)
        .map_err(tonic::Status::from)?;
    if index >= cp.size {
        return Err(tonic::Status::from(NodeError::NoSuchEntry {
            origin,
            index,
            size: cp.size,
        })
        .into());
    }
    // Store reads: off the runtime thread. The proof is made against `cp` itself, so the size
    // and root answered beside it are the tree it proves in.
    let (reader, wanted, against) = (node.clone(), origin.clone(), cp.clone());
    let made = tokio::task::spawn_blocking(move || {
        reader.logs().tlog_proof_against(&wanted, &against, index)
    })
    .await
    .map_err(|e| ApiError::from(tonic::Status::internal(format!("proof task: {e}"))))?
    .map_err(tonic::Status::from)?;
    let Some(text) = made else {
        return Err(tonic::Status::unavailable(
            "the node cannot prove this entry right now (it is catching up to the origin's \
             latest signed checkpoint); retry shortly or ask another node",
        )
        .into());
    };
    let text = String::from_utf8(text)
        .map_err(|_| ApiError::from(tonic::Status::internal("a proof that is not text")))?;
    Ok(Json(ProofOut {
        origin,
        index,
        tree_size: cp.size,
        root_hex: hex::encode(cp.root.0),
        tlog_proof: text,
    }))
}
