//! `GET /v1/status`: the operator's view of the node (`Node.Status` in JSON, `admin` scope):
//! every log it holds with size and active count, every peer with its last sync and error,
//! the evidence kept. Recorded in the operator trail like the gRPC call.

use super::{ApiError, HttpGate};
use crate::grpc::node_status::{actor_of, status as node_status};
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
