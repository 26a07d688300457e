//! `POST /v1/submit` and `POST /v1/retract`: a hotline's analysts (or its case system) add
//! hashes to the node's own list and withdraw false positives over HTTP/JSON, with the
//! `submit` scope. The handlers build the gRPC request and call the one submission path
//! (`grpc::submission`), so the token's budget, the entry limits, the own-log writer and the
//! operator trail are the same as for `Submission.Submit` and `Submission.Retract`.
//!
//! Only hashes travel here: images and videos are hashed where they are (`redline hash`, the
//! Python package, the browser) or, when a hotline must, through gRPC `Submit`'s `image`.

use super::v1::{json_body, SignalIn};
use super::v1_logs::CheckpointOut;
use super::{ApiError, HttpGate};
use crate::grpc::auth::Budget;
use crate::grpc::node_status::actor_of;
use crate::grpc::submission::{retract as retract_entry, submit as submit_signals};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Extensions;
use axum::{Extension, Json};
use redline_proto::pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /v1/submit`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// The hashes to list (at most the node's `[limits] max_batch`).
    pub signals: Vec<SignalIn>,
    /// Labels every new entry carries (e.g. `ncii`).
    #[serde(default)]
    pub labels: Vec<String>,
    /// The legal basis for listing them.
    #[serde(default)]
    pub legal_basis: String,
    /// The hotline's case reference.
    #[serde(default)]
    pub case_ref: String,
}

/// One signal's place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SubmittedOut {
    /// The signal's type.
    pub signal_type: String,
    /// The signal, as the node parsed it.
    pub value: String,
    /// Its entry's index in the own log.
    pub index: u64,
    /// It was already listed (and active): `index` is the earlier entry and nothing was added.
    pub duplicate: bool,
}

/// `POST /v1/submit`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SubmitOut {
    /// One per signal sent, in the order sent.
    pub entries: Vec<SubmittedOut>,
    /// The own log's checkpoint covering them.
    pub checkpoint: CheckpointOut,
}

/// Body of `POST /v1/retract`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetractBody {
    /// Index of the ADD to withdraw, in the node's own log.
    pub index: u64,
    /// Why (required; kept in the log, so every platform sees it).
    pub reason: String,
}

/// `POST /v1/retract`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RetractOut {
    /// Index of the ADD withdrawn.
    pub retracted_index: u64,
    /// Index of the RETRACT entry written.
    pub retract_index: u64,
    /// The own log's checkpoint covering it.
    pub checkpoint: CheckpointOut,
}

fn checkpoint(c: Option<pb::Checkpoint>) -> Result<CheckpointOut, ApiError> {
    c.ok_or_else(|| ApiError::from(tonic::Status::internal("an answer without its checkpoint")))?
        .try_into()
}

/// The trail's name for an HTTP call, beside gRPC's `redline.v1.Submission/Submit`.
const SUBMIT_CALL: &str = "POST /v1/submit";
const RETRACT_CALL: &str = "POST /v1/retract";

/// `POST /v1/submit`: lists hashes in the node's own signed log.
#[utoipa::path(
    post,
    path = "/v1/submit",
    tag = "v1",
    summary = "List hashes in this node's own log",
    request_body(content = SubmitBody, content_type = "application/json"),
    responses((status = 200, description = "Where each signal is listed", body = SubmitOut)),
    security(("bearer" = [])),
)]
pub async fn submit(
    State(gate): State<HttpGate>,
    b: Option<Extension<Budget>>,
    extensions: Extensions,
    body: Bytes,
) -> Result<Json<SubmitOut>, ApiError> {
    let node = gate.node()?;
    let parsed: SubmitBody = json_body(&body)?;
    let req = pb::SubmitRequest {
        signals: parsed
            .signals
            .into_iter()
            .map(|s| pb::Signal {
                signal_type: s.signal_type,
                value: s.value,
                quality: s.quality,
            })
            .collect(),
        labels: parsed.labels,
        legal_basis: parsed.legal_basis,
        case_ref: parsed.case_ref,
        ..Default::default()
    };
    let budget = b.map(|Extension(b)| b).unwrap_or_default();
    let who = actor_of(extensions);
    let answer = submit_signals(node, &who, &budget, SUBMIT_CALL, req).await?;
    Ok(Json(SubmitOut {
        entries: answer
            .entries
            .into_iter()
            .map(|e| {
                let signal = e.signal.unwrap_or_default();
                SubmittedOut {
                    signal_type: signal.signal_type,
                    value: signal.value,
                    index: e.index,
                    duplicate: e.duplicate,
                }
            })
            .collect(),
        checkpoint: checkpoint(answer.checkpoint)?,
    }))
}

/// `POST /v1/retract`: withdraws one ADD of the node's own log (a false positive); every
/// platform stops matching it as the RETRACT replicates.
#[utoipa::path(
    post,
    path = "/v1/retract",
    tag = "v1",
    summary = "Withdraw an entry of this node's own log",
    request_body(content = RetractBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The RETRACT written", body = RetractOut),
        (status = 404, description = "The own log has no such entry", body = super::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn retract(
    State(gate): State<HttpGate>,
    extensions: Extensions,
    body: Bytes,
) -> Result<Json<RetractOut>, ApiError> {
    let node = gate.node()?;
    let parsed: RetractBody = json_body(&body)?;
    let who = actor_of(extensions);
    let req = pb::RetractRequest {
        index: parsed.index,
        reason: parsed.reason,
    };
    let answer = retract_entry(node, &who, RETRACT_CALL, req).await?;
    Ok(Json(RetractOut {
        retracted_index: parsed.index,
        retract_index: answer.retract_index,
        checkpoint: checkpoint(answer.checkpoint)?,
    }))
}
