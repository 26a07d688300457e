//! The operator's calls (`Node` in JSON, `admin` scope), recorded in the operator trail like
//! the gRPC ones: `GET /v1/status`, every log the node holds with size and active count, every
//! peer with its last sync and error, the evidence kept; `POST /v1/origins/resume`, an origin
//! frozen after equivocation resumed.

use super::{ApiError, HttpGate};
use crate::grpc::node_status::{actor_of, resume_origin, status as node_status};
use axum::extract::State;
use axum::http::Extensions;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// One log the node holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OriginStatusOut {
    /// Origin name.
    pub origin: String,
    /// `own`, `accept`, `replicate`, `reject`, or `untrusted` (offered by a peer only).
    pub policy: String,
    /// Entries held.
    pub tree_size: u64,
    /// Frozen after proof of equivocation.
    pub frozen: bool,
    /// Entries listed and not retracted.
    pub active_entries: u64,
}

/// One configured peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PeerStatusOut {
    /// The peer's address.
    pub url: String,
    /// Last successful sync (ms since the Unix epoch); 0: never.
    pub last_sync_ms: u64,
    /// The last sync's error; empty when it succeeded.
    pub last_error: String,
}

/// `GET /v1/status`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatusOut {
    /// This node's origin.
    pub origin: String,
    /// Its verifier key.
    pub verifier_key: String,
    /// The node's version.
    pub version: String,
    /// Every log held.
    pub origins: Vec<OriginStatusOut>,
    /// Every peer.
    pub peers: Vec<PeerStatusOut>,
    /// Evidence records kept.
    pub evidence_count: u64,
}

/// `GET /v1/status`: the node's state for its operator.
#[utoipa::path(
    get,
    path = "/v1/status",
    // Not the handler's name, which HMA's `/status` already uses as its operation id.
    operation_id = "v1_status",
    tag = "v1",
    summary = "The node's state, for its operator",
    responses((status = 200, description = "Logs, peers and evidence", body = StatusOut)),
    security(("bearer" = [])),
)]
pub async fn status(
    State(gate): State<HttpGate>,
    extensions: Extensions,
) -> Result<Json<StatusOut>, ApiError> {
    let node = gate.node()?;
    let s = node_status(node, &actor_of(extensions), "GET /v1/status").await?;
    Ok(Json(StatusOut {
        origin: s.origin,
        verifier_key: s.verifier_key,
        version: s.version,
        origins: s
            .origins
            .into_iter()
            .map(|o| OriginStatusOut {
                origin: o.origin,
                policy: o.policy,
                tree_size: o.tree_size,
                frozen: o.frozen,
                active_entries: o.active_entries,
            })
            .collect(),
        peers: s
            .peers
            .into_iter()
            .map(|p| PeerStatusOut {
                url: p.url,
                last_sync_ms: p.last_sync_ms,
                last_error: p.last_error,
            })
            .collect(),
        evidence_count: s.evidence_count,
    }))
}

/// Body of `POST /v1/origins/resume`.
#[derive(Debug, Clone, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeBody {
    /// The frozen origin.
    pub origin: String,
    /// Why the operator resumes it (required; kept in the operator trail).
    pub reason: String,
}

/// `POST /v1/origins/resume`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Resumed {
    /// The origin.
    pub origin: String,
    /// Whether it was frozen (false: nothing changed).
    pub was_frozen: bool,
    /// Its latest checkpoint as held, from which replication goes on.
    pub checkpoint: Option<super::v1_logs::CheckpointOut>,
}

/// `POST /v1/origins/resume`: resumes an origin frozen after proof of equivocation, once the
/// operator has looked into the evidence (kept); later checkpoints are judged against the log
/// held, as before, so a further fork freezes it again.
#[utoipa::path(
    post,
    path = "/v1/origins/resume",
    tag = "v1",
    summary = "Resume an origin frozen after equivocation",
    request_body(content = ResumeBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The origin, resumed", body = Resumed),
        (status = 404, description = "The node does not trust such an origin", body = super::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn resume(
    State(gate): State<HttpGate>,
    extensions: Extensions,
    body: axum::body::Bytes,
) -> Result<Json<Resumed>, ApiError> {
    let node = gate.node()?;
    let b: ResumeBody = super::v1::json_body(&body)?;
    let req = redline_proto::pb::ResumeOriginRequest {
        origin: b.origin.clone(),
        reason: b.reason,
    };
    let answer = resume_origin(node, &actor_of(extensions), "POST /v1/origins/resume", req).await?;
    Ok(Json(Resumed {
        origin: b.origin,
        was_frozen: answer.was_frozen,
        checkpoint: answer
            .checkpoint
            .map(super::v1_logs::CheckpointOut::try_from)
            .transpose()?,
    }))
}
