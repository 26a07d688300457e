//! Hasher-Matcher-Actioner's (HMA 1.1, `OpenMediaMatch`) matching and hashing endpoints, same
//! paths, parameters and response shapes, so an HMA client or a script written for HMA points
//! at a Redline node unchanged. The mapping: an HMA bank is a Redline origin, a bank content id
//! is the entry's index in that origin's log, a distance is HMA's `pretty_str` of it (a
//! decimal string). What HMA does not have (labels, legal basis, the signed checkpoint a match
//! was made under) is in the `/v1/` API.
//!
//! Differences, on purpose: `url=` lookups and `GET /h/hash` are refused (the node never
//! fetches remote content: a lookup by URL would make it a proxy for anyone holding a match
//! token), and the coin-flip of HMA's `matching_enabled_ratio` does not exist (an origin the
//! node accepts always matches).

use super::openapi::SignalTypeName;
use super::{ApiError, HttpGate};
use crate::grpc::auth::Budget;
use crate::grpc::matching::answer;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use redline_proto::pb;
use redline_proto::signal::SignalType;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::ToSchema;

/// The multipart upload HMA's `POST /m/lookup` and `POST /h/hash` read: exactly one of the
/// two fields. (For the OpenAPI document only; the handlers read the fields as they stream.)
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct Upload {
    /// An image file (JPEG, PNG, WebP, GIF, BMP, TIFF).
    #[schema(value_type = Option<String>, format = Binary)]
    photo: Option<Vec<u8>>,
    /// A video file, decoded in the node's sandboxed decoder.
    #[schema(value_type = Option<String>, format = Binary)]
    video: Option<Vec<u8>>,
}

/// The query parameters HMA's matching endpoints read (unknown ones are ignored, as HMA does).
#[derive(Debug, Default, Deserialize)]
pub struct LookupParams {
    signal_type: Option<String>,
    signal: Option<String>,
    url: Option<String>,
    banks: Option<String>,
    include_distance: Option<String>,
}

fn lookup_params(query: Option<String>) -> Result<LookupParams, ApiError> {
    super::params::parse(query.as_deref())
}

/// One match in HMA's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BankMatch {
    /// The entry's index in its origin's log.
    pub bank_content_id: u64,
    /// The distance, as HMA prints it.
    pub distance: String,
}

/// Matches by bank (origin), HMA's `TMatchByBank`.
pub type ByBank = BTreeMap<String, Vec<BankMatch>>;

fn budget(b: Option<Extension<Budget>>) -> Budget {
    b.map(|Extension(b)| b).unwrap_or_default()
}

fn url_refused() -> ApiError {
    ApiError::bad_request(
        "lookups by url are not supported: the node never fetches remote content; upload the \
         file with POST /m/lookup or POST /h/hash",
    )
}

/// The `banks` filter (comma-separated origins), if given.
fn bank_filter(banks: &Option<String>) -> Option<BTreeSet<String>> {
    banks
        .as_deref()
        .filter(|b| !b.is_empty())
        .map(|b| b.split(',').map(|s| s.trim().to_owned()).collect())
}

fn by_bank(result: &pb::QueryResult, banks: &Option<BTreeSet<String>>) -> ByBank {
    let mut out = ByBank::new();
    for m in &result.matches {
        if banks.as_ref().is_some_and(|b| !b.contains(&m.origin)) {
            continue;
        }
        out.entry(m.origin.clone()).or_default().push(BankMatch {
            bank_content_id: m.index,
            distance: m.distance.to_string(),
        });
    }
    out
}

/// Looks one signal up through the Matching service's own answer.
async fn lookup_one(
    gate: &HttpGate,
    budget: &Budget,
    signal_type: &str,
    signal: &str,
) -> Result<pb::QueryResult, ApiError> {
    let node = gate.node()?;
    let req = pb::MatchRequest {
        signals: vec![pb::Signal {
            signal_type: signal_type.to_owned(),
            value: signal.to_owned(),
            quality: 0,
        }],
        ..Default::default()
    };
    let mut resp = answer(node, req, budget).await?;
    Ok(resp.results.pop().unwrap_or_default())
}

/// `GET /m/lookup?signal_type=&signal=[&banks=]`: the banks (origins) holding a match, with
/// each matched content id and distance.
#[utoipa::path(
    get,
    path = "/m/lookup",
    tag = "hma",
    summary = "Look a hash up (HMA)",
    params(
        ("signal_type" = SignalTypeName, Query, description = "The signal type"),
        ("signal" = String, Query, description = "The hash, as the signal type writes it (PDQ: 64 hex digits)"),
        ("banks" = Option<String>, Query, description = "Only these origins, comma-separated"),
    ),
    responses((status = 200, description = "Matches by bank (origin); `{}` when none", body = BTreeMap<String, Vec<BankMatch>>)),
    security(("bearer" = [])),
)]
pub async fn lookup_get(
    State(gate): State<HttpGate>,
    b: Option<Extension<Budget>>,
    RawQuery(query): RawQuery,
) -> Result<Json<ByBank>, ApiError> {
    let p = lookup_params(query)?;
    if p.url.is_some() {
        return Err(url_refused());
    }
    let signal_type = super::params::required("signal_type", p.signal_type.as_deref())?;
    let signal = super::params::required("signal", p.signal.as_deref())?;
    let result = lookup_one(&gate, &budget(b), signal_type, signal).await?;
    Ok(Json(by_bank(&result, &bank_filter(&p.banks))))
}

/// HMA's `raw_lookup` answer: content ids, or content ids with distances.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RawMatches {
    /// `include_distance=false`.
    Ids(Vec<u64>),
    /// `include_distance=true`.
    WithDistance(Vec<BankMatch>),
}

/// `GET /m/raw_lookup?signal_type=&signal=[&include_distance=true]`: `{"matches": …}`, every
/// origin's matches together (as HMA's content ids, the indexes are only unique per origin:
/// use `/v1/match` when several origins are accepted).
#[utoipa::path(
    get,
    path = "/m/raw_lookup",
    tag = "hma",
    summary = "Look a hash up, content ids only (HMA)",
    params(
        ("signal_type" = SignalTypeName, Query, description = "The signal type"),
        ("signal" = String, Query, description = "The hash, as the signal type writes it"),
        ("include_distance" = Option<bool>, Query, description = "Return `{bank_content_id, distance}` objects instead of ids"),
    ),
    responses((status = 200, description = "`{\"matches\": …}`", body = RawLookup)),
    security(("bearer" = [])),
)]
pub async fn raw_lookup(
    State(gate): State<HttpGate>,
    b: Option<Extension<Budget>>,
    RawQuery(query): RawQuery,
) -> Result<Json<RawLookup>, ApiError> {
    let p = lookup_params(query)?;
    let signal_type = super::params::required("signal_type", p.signal_type.as_deref())?;
    let signal = super::params::required("signal", p.signal.as_deref())?;
    let with_distance = match p.include_distance.as_deref().map(str::to_ascii_lowercase) {
        None => false,
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "t" | "y") => true,
        Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "f" | "n" | "") => false,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "include_distance must be true or false, not {v:?}"
            )))
        }
    };
    let result = lookup_one(&gate, &budget(b), signal_type, signal).await?;
    let matches = if with_distance {
        RawMatches::WithDistance(
            result
                .matches
                .iter()
                .map(|m| BankMatch {
                    bank_content_id: m.index,
                    distance: m.distance.to_string(),
                })
                .collect(),
        )
    } else {
        RawMatches::Ids(result.matches.iter().map(|m| m.index).collect())
    };
    Ok(Json(RawLookup { matches }))
}

/// `GET /m/raw_lookup`'s body.
#[derive(Debug, Serialize, ToSchema)]
pub struct RawLookup {
    /// Every accepted origin's matches together.
    pub matches: RawMatches,
}

/// The one file of an HMA upload: a `photo` or a `video` field of a multipart/form-data body.
async fn upload(mp: Result<Multipart, MultipartRejection>) -> Result<(Vec<u8>, Vec<u8>), ApiError> {
    let mut mp = mp.map_err(|e| {
        ApiError::bad_request(format!(
            "expected a multipart/form-data upload with a photo or video field: {}",
            e.body_text()
        ))
    })?;
    let (mut image, mut video) = (Vec::new(), Vec::new());
    let mut files = 0;
    while let Some(field) = mp.next_field().await.map_err(|e| ApiError::upload(&e))? {
        let name = field.name().unwrap_or_default().to_owned();
        files += 1;
        if files > 1 {
            return Err(ApiError::bad_request("only one file allowed per request"));
        }
        let bytes = field.bytes().await.map_err(|e| ApiError::upload(&e))?;
        match name.as_str() {
            "photo" => image = bytes.to_vec(),
            "video" => video = bytes.to_vec(),
            other => {
                return Err(ApiError::bad_request(format!(
                    "no such content_type: {other:?} (the field must be photo or video)"
                )))
            }
        }
    }
    if files == 0 {
        return Err(ApiError::bad_request(
            "Missing multipart/form-data file upload",
        ));
    }
    Ok((image, video))
}

/// `POST /h/hash` (multipart `photo` or `video`): each signal type's hash of the file, which is
/// hashed in memory (videos in the sandboxed decoder) and dropped.
#[utoipa::path(
    post,
    path = "/h/hash",
    tag = "hma",
    summary = "Hash an uploaded photo or video (HMA)",
    request_body(content = Upload, content_type = "multipart/form-data"),
    responses((status = 200, description = "Each signal type's hash of the file", body = BTreeMap<String, String>)),
    security(("bearer" = [])),
)]
pub async fn hash_post(
    State(gate): State<HttpGate>,
    b: Option<Extension<Budget>>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Json<BTreeMap<String, String>>, ApiError> {
    let node = gate.node()?;
    let (image, video) = upload(mp).await?;
    budget(b)
        .charge(crate::grpc::auth::units(0, !image.is_empty(), false))
        .map_err(tonic::Status::from)?;
    let signals = node.matching().hash_media(image, video).await?;
    Ok(Json(
        signals
            .into_iter()
            .map(|s| (s.signal.signal_type.name().to_owned(), s.hex))
            .collect(),
    ))
}

/// `POST /m/lookup` (multipart `photo` or `video`): the file's matches by signal type, then by
/// bank.
#[utoipa::path(
    post,
    path = "/m/lookup",
    tag = "hma",
    summary = "Hash an uploaded photo or video and look it up (HMA)",
    params(("banks" = Option<String>, Query, description = "Only these origins, comma-separated")),
    request_body(content = Upload, content_type = "multipart/form-data"),
    responses((status = 200, description = "Matches by signal type, then by bank (origin)", body = BTreeMap<String, BTreeMap<String, Vec<BankMatch>>>)),
    security(("bearer" = [])),
)]
pub async fn lookup_post(
    State(gate): State<HttpGate>,
    b: Option<Extension<Budget>>,
    RawQuery(query): RawQuery,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Json<BTreeMap<String, ByBank>>, ApiError> {
    let p = lookup_params(query)?;
    let node = gate.node()?;
    let (image, video) = upload(mp).await?;
    let req = pb::MatchRequest {
        image,
        video,
        ..Default::default()
    };
    let resp = answer(node, req, &budget(b)).await?;
    let banks = bank_filter(&p.banks);
    let mut out: BTreeMap<String, ByBank> = BTreeMap::new();
    for r in &resp.results {
        let signal_type = r
            .query
            .as_ref()
            .map(|q| q.signal_type.clone())
            .unwrap_or_default();
        let entry = out.entry(signal_type).or_default();
        for (bank, matches) in by_bank(r, &banks) {
            let list = entry.entry(bank).or_default();
            for m in matches {
                if !list.contains(&m) {
                    list.push(m);
                }
            }
        }
    }
    Ok(Json(out))
}

/// One signal type's index in HMA's `IndexStatusResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndexStatus {
    /// Whether the index is loaded.
    pub present: bool,
    /// HMA: the timestamp of the last item indexed; here the number of log entries the catalog
    /// reflects (the sum of the held logs' sizes), which grows the same way; -1 while loading.
    pub built_to: i64,
    /// Hashes in the index (vPDQ: frames).
    pub size: u64,
}

/// `GET /m/index/status[?signal_type=]`.
#[utoipa::path(
    get,
    path = "/m/index/status",
    tag = "hma",
    summary = "Each signal type's index (HMA)",
    params(("signal_type" = Option<SignalTypeName>, Query, description = "Only this signal type")),
    responses((status = 200, description = "Index status by signal type", body = BTreeMap<String, IndexStatus>)),
    security(("bearer" = [])),
)]
pub async fn index_status(
    State(gate): State<HttpGate>,
    RawQuery(query): RawQuery,
) -> Result<Json<BTreeMap<String, IndexStatus>>, ApiError> {
    #[derive(Deserialize)]
    struct P {
        signal_type: Option<String>,
    }
    let p: P = super::params::parse(query.as_deref())?;
    let types: Vec<SignalType> = match p.signal_type.as_deref() {
        None => SignalType::ALL.to_vec(),
        Some(name) => vec![SignalType::from_name(name)
            .map_err(|_| ApiError::bad_request(format!("No such signal type '{name}'")))?],
    };
    let node = gate.node.get();
    let built_to = node.map_or(-1, |n| {
        let total: u64 = n
            .logs()
            .held_checkpoints()
            .iter()
            .map(|c| c.tree_size)
            .sum();
        i64::try_from(total).unwrap_or(i64::MAX)
    });
    Ok(Json(
        types
            .into_iter()
            .map(|t| {
                let status = IndexStatus {
                    present: node.is_some(),
                    built_to,
                    size: node.map_or(0, |n| n.matching().indexed(t) as u64),
                };
                (t.name().to_owned(), status)
            })
            .collect(),
    ))
}

/// `GET /status`: 200 `I-AM-ALIVE` once the node serves matches that reflect its peers (as
/// gRPC health's Matching), 503 before, like HMA's readiness probe.
#[utoipa::path(
    get,
    path = "/status",
    tag = "probes",
    summary = "Readiness (HMA)",
    responses(
        (status = 200, description = "Serving matches that reflect the node's peers", content_type = "text/plain", body = String, example = "I-AM-ALIVE"),
        (status = 503, description = "Loading or catching up", content_type = "text/plain", body = String, example = "NOT-READY"),
    ),
)]
pub async fn status(State(gate): State<HttpGate>) -> Response {
    if gate.ready() {
        (StatusCode::OK, "I-AM-ALIVE").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "NOT-READY").into_response()
    }
}

/// `GET /status/live`: 200 while the process serves at all (liveness).
#[utoipa::path(
    get,
    path = "/status/live",
    tag = "probes",
    summary = "Liveness",
    responses((status = 200, description = "The process serves", content_type = "text/plain", body = String, example = "I-AM-ALIVE")),
)]
pub async fn status_live() -> &'static str {
    "I-AM-ALIVE"
}
