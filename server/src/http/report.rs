//! The victim's page and its API (`[report]`), served on the node's address.
//!
//! - `GET /report/…`: the page itself ([`super::pages`]); the images are hashed inside it and
//!   only hashes come back here.
//! - `POST /report/api/cases|status|withdraw`: open a case, see it, withdraw it (no token: the
//!   reporter has none; bounded per address by [`crate::node::Reports`]). The PIN travels in
//!   a body, never a URL, so no access log or proxy keeps it.
//! - `GET /v1/reports`, `POST /v1/reports/approve|reject`: the review queue, for the
//!   hotline's analysts (`submit` scope, like any change to the list).

use super::v1::{json_body, SignalIn};
use super::{ApiError, HttpGate};
use crate::grpc::node_status::actor_of;
use crate::node::reports::{Case, CaseStatus, ReportedSignal};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Extensions;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use utoipa::ToSchema;

fn client_ip(extensions: Extensions) -> Option<IpAddr> {
    tonic::Request::from_parts(Default::default(), extensions, ())
        .remote_addr()
        .map(|a| a.ip())
}

/// Body of `POST /report/api/cases`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// The hashes computed on the reporter's device.
    pub signals: Vec<SignalIn>,
    /// Anything she chooses to add (optional).
    #[serde(default)]
    pub context: String,
}

/// A case number with its PIN.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseKey {
    /// The case number (`RL-XXXX-XXXX-XXXX`).
    pub case_id: String,
    /// The PIN shown when the case was opened (case and dashes do not matter).
    pub pin: String,
}

/// A case as its reporter sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CaseView {
    /// The case number.
    pub case_id: String,
    /// `queued` (waiting for review), `listed`, `rejected` or `withdrawn`.
    pub status: String,
    /// Hashes in the case.
    pub hashes: usize,
    /// When it was opened (ms since the Unix epoch).
    pub created_ms: u64,
    /// When it last changed.
    pub updated_ms: u64,
}

impl From<&Case> for CaseView {
    fn from(c: &Case) -> Self {
        Self {
            case_id: c.id.clone(),
            status: c.status.name().to_owned(),
            hashes: c.signals.len(),
            created_ms: c.created_ms,
            updated_ms: c.updated_ms,
        }
    }
}

/// `POST /report/api/cases`'s answer: the only time the PIN is ever shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OpenedCase {
    /// The case.
    #[serde(flatten)]
    pub case: CaseView,
    /// The PIN; the node keeps only a digest of it and cannot show it again.
    pub pin: String,
}

/// `POST /report/api/cases`: opens a case for hashes computed on the reporter's device.
#[utoipa::path(
    post,
    path = "/report/api/cases",
    tag = "report",
    summary = "Report hashes of one's own images (no token)",
    request_body(content = ReportBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The case, with its PIN (shown once)", body = OpenedCase),
        (status = 404, description = "This node takes no reports", body = super::error::ErrorBody),
    ),
)]
pub async fn open_case(
    State(gate): State<HttpGate>,
    extensions: Extensions,
    body: Bytes,
) -> Result<Json<OpenedCase>, ApiError> {
    let node = gate.node()?;
    node.reports().admit(client_ip(extensions))?;
    let parsed: ReportBody = json_body(&body)?;
    let signals = parsed
        .signals
        .into_iter()
        .map(|s| ReportedSignal {
            signal_type: s.signal_type,
            value: s.value,
            quality: s.quality,
        })
        .collect();
    let opened = node
        .reports()
        .open(node.own_log(), signals, parsed.context)
        .await?;
    Ok(Json(OpenedCase {
        case: CaseView::from(&opened.case),
        pin: opened.pin,
    }))
}

/// `POST /report/api/status`: where a case stands.
#[utoipa::path(
    post,
    path = "/report/api/status",
    tag = "report",
    summary = "A case's status, with its number and PIN (no token)",
    request_body(content = CaseKey, content_type = "application/json"),
    responses(
        (status = 200, description = "The case", body = CaseView),
        (status = 404, description = "No case with this number and PIN, or no reports here", body = super::error::ErrorBody),
    ),
)]
pub async fn case_status(
    State(gate): State<HttpGate>,
    extensions: Extensions,
    body: Bytes,
) -> Result<Json<CaseView>, ApiError> {
    let node = gate.node()?;
    node.reports().admit(client_ip(extensions))?;
    let key: CaseKey = json_body(&body)?;
    let case = node.reports().check(&key.case_id, &key.pin)?;
    Ok(Json(CaseView::from(&case)))
}

/// `POST /report/api/withdraw`: withdraws a case; what was listed from it is retracted.
#[utoipa::path(
    post,
    path = "/report/api/withdraw",
    tag = "report",
    summary = "Withdraw a case, with its number and PIN (no token)",
    request_body(content = CaseKey, content_type = "application/json"),
    responses(
        (status = 200, description = "The case, now withdrawn", body = CaseView),
        (status = 404, description = "No case with this number and PIN, or no reports here", body = super::error::ErrorBody),
    ),
)]
pub async fn withdraw_case(
    State(gate): State<HttpGate>,
    extensions: Extensions,
    body: Bytes,
) -> Result<Json<CaseView>, ApiError> {
    let node = gate.node()?;
    node.reports().admit(client_ip(extensions))?;
    let key: CaseKey = json_body(&body)?;
    let case = node
        .reports()
        .withdraw(node.own_log(), &key.case_id, &key.pin)
        .await?;
    Ok(Json(CaseView::from(&case)))
}

/// A case as an analyst reviews it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct QueuedCase {
    /// The case.
    #[serde(flatten)]
    pub case: CaseView,
    /// Its hashes.
    pub signals: Vec<QueuedSignal>,
    /// What the reporter added.
    pub context: String,
}

/// One hash of a queued case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct QueuedSignal {
    /// Its type.
    pub signal_type: String,
    /// Its value, hex.
    pub value: String,
    /// PDQ quality.
    pub quality: u32,
}

/// `GET /v1/reports`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReviewQueue {
    /// Cases waiting, oldest first.
    pub cases: Vec<QueuedCase>,
}

/// `GET /v1/reports`: the review queue.
#[utoipa::path(
    get,
    path = "/v1/reports",
    tag = "v1",
    summary = "Victims' reports waiting for review",
    responses((status = 200, description = "The queue", body = ReviewQueue)),
    security(("bearer" = [])),
)]
pub async fn queue(State(gate): State<HttpGate>) -> Result<Json<ReviewQueue>, ApiError> {
    let node = gate.node()?.clone();
    // A scan of every case: off the runtime thread.
    let cases = tokio::task::spawn_blocking(move || node.reports().queue())
        .await
        .map_err(|e| ApiError::from(tonic::Status::internal(format!("queue task: {e}"))))??;
    Ok(Json(ReviewQueue {
        cases: cases
            .iter()
            .map(|c| QueuedCase {
                case: CaseView::from(c),
                signals: c
                    .signals
                    .iter()
                    .map(|s| QueuedSignal {
                        signal_type: s.signal_type.clone(),
                        value: s.value.clone(),
                        quality: s.quality,
                    })
                    .collect(),
                context: c.context.clone(),
            })
            .collect(),
    }))
}

/// Body of `POST /v1/reports/approve`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// The case number.
    pub case_id: String,
    /// Labels for its entries; empty: the node's `[report] labels`.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Legal basis; empty: the node's `[report] legal_basis`.
    #[serde(default)]
    pub legal_basis: String,
}

/// Body of `POST /v1/reports/reject`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    /// The case number.
    pub case_id: String,
    /// Why (required; the reporter sees only that it was rejected).
    pub reason: String,
}

/// A reviewed case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Reviewed {
    /// The case.
    #[serde(flatten)]
    pub case: CaseView,
    /// The own log's entries made from it (approved cases).
    pub indices: Vec<u64>,
}

fn reviewed(c: &Case) -> Reviewed {
    Reviewed {
        case: CaseView::from(c),
        indices: match &c.status {
            CaseStatus::Listed { indices } => indices.clone(),
            _ => Vec::new(),
        },
    }
}

/// `POST /v1/reports/approve`: lists a queued case's hashes in the own log.
#[utoipa::path(
    post,
    path = "/v1/reports/approve",
    tag = "v1",
    summary = "Approve a queued report into the list",
    request_body(content = ApproveBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The case, listed", body = Reviewed),
        (status = 404, description = "No such case", body = super::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn approve(
    State(gate): State<HttpGate>,
    extensions: Extensions,
    body: Bytes,
) -> Result<Json<Reviewed>, ApiError> {
    let node = gate.node()?;
    let b: ApproveBody = json_body(&body)?;
    let case = node
        .reports()
        .approve(node.own_log(), &b.case_id, b.labels, b.legal_basis)
        .await?;
    let who = actor_of(extensions);
    node.trail().called(&who, "POST /v1/reports/approve").await;
    Ok(Json(reviewed(&case)))
}

/// `POST /v1/reports/reject`: declines a queued case; nothing is listed.
#[utoipa::path(
    post,
    path = "/v1/reports/reject",
    tag = "v1",
    summary = "Reject a queued report",
    request_body(content = RejectBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The case, rejected", body = Reviewed),
        (status = 404, description = "No such case", body = super::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn reject(
    State(gate): State<HttpGate>,
    extensions: Extensions,
    body: Bytes,
) -> Result<Json<Reviewed>, ApiError> {
    let node = gate.node()?;
    let b: RejectBody = json_body(&body)?;
    let case = node.reports().reject(&b.case_id, b.reason).await?;
    let who = actor_of(extensions);
    node.trail().called(&who, "POST /v1/reports/reject").await;
    Ok(Json(reviewed(&case)))
}
