//! Redline's own read API over the logs, for auditors and hotline tools without gRPC: the
//! origins this node trusts, their signed checkpoints, their entries page by page (decoded, and
//! as the exact leaf bytes so a reader can recompute the tree and check it against the signed
//! root), and the evidence kept against peers that lied. Each answer is the Audit service's
//! (`grpc::audit`), in JSON, behind the same `audit` scope. Nothing here asks to be trusted:
//! every checkpoint carries its signed note, to be verified with the origin's key.

use super::{params, ApiError, HttpGate};
use crate::grpc::audit::{evidence_page, list_origins};
use crate::node::to_pb;
use axum::extract::{RawQuery, State};
use axum::Json;
use base64::Engine as _;
use futures::StreamExt;
use redline_proto::entry::{decode_leaf, Decoded};
use redline_proto::pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A signed checkpoint as the node holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CheckpointOut {
    /// The origin (list) the checkpoint is of.
    pub origin: String,
    /// Size of the tree the node holds.
    pub tree_size: u64,
    /// Root of that tree, hex (RFC 9162).
    pub root_hex: String,
    /// The origin's signed note (C2SP checkpoint text); verify it with the origin's key before
    /// believing anything above.
    pub signed_note: String,
    /// Present while the node holds a prefix of the tree the note signs (a follower catching
    /// up in steps): the RFC 9162 consistency proof, hex hashes, from the held tree to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_proof: Option<Vec<String>>,
}

impl TryFrom<pb::Checkpoint> for CheckpointOut {
    type Error = ApiError;

    fn try_from(c: pb::Checkpoint) -> Result<Self, ApiError> {
        // Notes are verified before they are stored, and the note format is UTF-8 text.
        let signed_note = String::from_utf8(c.signed_note).map_err(|_| {
            ApiError::from(tonic::Status::internal(format!(
                "the stored signed note of {} is not text",
                c.origin
            )))
        })?;
        Ok(Self {
            tree_size: c.tree_size,
            root_hex: hex::encode(&c.root_hash),
            signed_note,
            prefix_proof: c
                .prefix
                .map(|p| p.consistency_proof.iter().map(hex::encode).collect()),
            origin: c.origin,
        })
    }
}

/// One origin this node trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OriginOut {
    /// Origin name (the hotline's list).
    pub origin: String,
    /// Its Ed25519 verifier key (C2SP signed-note form).
    pub verifier_key: String,
    /// `own`, `accept`, `replicate` or `reject`.
    pub policy: String,
    /// Frozen after proof of equivocation: nothing newer is merged.
    pub frozen: bool,
    /// Its latest checkpoint, when one is held.
    pub checkpoint: Option<CheckpointOut>,
}

/// `GET /v1/origins`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Origins {
    /// Every trusted origin with a log, this node's own included.
    pub origins: Vec<OriginOut>,
}

/// `GET /v1/origins`: the origins this node trusts, with their keys and checkpoints.
#[utoipa::path(
    get,
    path = "/v1/origins",
    tag = "v1",
    summary = "The origins (lists) this node trusts",
    responses((status = 200, description = "Every trusted origin", body = Origins)),
    security(("bearer" = [])),
)]
pub async fn origins(State(gate): State<HttpGate>) -> Result<Json<Origins>, ApiError> {
    let node = gate.node()?;
    let origins = list_origins(node)?
        .origins
        .into_iter()
        .map(|o| {
            Ok(OriginOut {
                checkpoint: o.checkpoint.map(CheckpointOut::try_from).transpose()?,
                origin: o.origin,
                verifier_key: o.verifier_key,
                policy: o.policy,
                frozen: o.frozen,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(Origins { origins }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointParams {
    origin: Option<String>,
}

/// `GET /v1/checkpoints`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Checkpoints {
    /// One per origin asked for (every trusted one when no origin is named).
    pub checkpoints: Vec<CheckpointOut>,
}

/// `GET /v1/checkpoints[?origin=]`: the latest signed checkpoint of every trusted origin, or
/// of one.
#[utoipa::path(
    get,
    path = "/v1/checkpoints",
    tag = "v1",
    summary = "Latest signed checkpoints",
    params(("origin" = Option<String>, Query, description = "Only this origin's")),
    responses(
        (status = 200, description = "The checkpoints", body = Checkpoints),
        (status = 404, description = "The node holds no such origin", body = super::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn checkpoints(
    State(gate): State<HttpGate>,
    RawQuery(query): RawQuery,
) -> Result<Json<Checkpoints>, ApiError> {
    let p: CheckpointParams = params::parse(query.as_deref())?;
    let node = gate.node()?;
    let held = match p.origin.filter(|o| !o.is_empty()) {
        Some(origin) => {
            let cp = node.logs().checkpoint(&origin)?;
            vec![to_pb(&origin, &cp)]
        }
        None => list_origins(node)?
            .origins
            .into_iter()
            .filter_map(|o| o.checkpoint)
            .collect(),
    };
    let checkpoints = held
        .into_iter()
        .map(CheckpointOut::try_from)
        .collect::<Result<_, _>>()?;
    Ok(Json(Checkpoints { checkpoints }))
}

/// Entries per page when `limit` is not given.
pub const DEFAULT_ENTRIES: u64 = 100;
/// Most entries per page: at most a few MiB of JSON (entries are at most 64 KiB, PDQ ones
/// about 200 bytes), however large the log.
pub const MAX_ENTRIES: u64 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntriesParams {
    origin: Option<String>,
    start: Option<String>,
    limit: Option<String>,
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// Lists a hash.
    Add,
    /// Withdraws an earlier ADD (a false positive).
    Retract,
}

/// The fields of an ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AddFields {
    /// The listed hash's type.
    #[schema(value_type = super::openapi::SignalTypeName)]
    pub signal_type: String,
    /// The listed hash, hex of its bytes (vPDQ: of its frame list encoding).
    pub hash_hex: String,
    /// Its quality (PDQ 0–100).
    pub quality: u32,
    /// The listing's labels.
    pub labels: Vec<String>,
    /// The listing's legal basis.
    pub legal_basis: String,
    /// The hotline's case reference.
    pub case_ref: String,
}

/// The fields of a RETRACT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RetractFields {
    /// Index of the ADD withdrawn.
    pub target_index: u64,
    /// RFC 9162 leaf hash of that ADD, hex, so the retraction names exactly one entry.
    pub target_leaf_hash_hex: String,
    /// Why.
    pub reason: String,
}

/// One entry of a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EntryOut {
    /// Its index.
    pub index: u64,
    /// The exact leaf bytes, hex: what the tree's leaf hash is of (RFC 9162, `0x00 || leaf`).
    pub leaf_hex: String,
    /// When the origin wrote it (ms since the Unix epoch, as the origin says).
    pub created_at_ms: u64,
    /// ADD or RETRACT.
    pub kind: EntryKind,
    /// When `kind` is `add`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add: Option<AddFields>,
    /// When `kind` is `retract`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retract: Option<RetractFields>,
}

/// `GET /v1/entries`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EntriesPage {
    /// The origin.
    pub origin: String,
    /// Size of the tree the page was read from.
    pub tree_size: u64,
    /// Root of that tree, hex.
    pub root_hex: String,
    /// Entries `start ..` in index order.
    pub entries: Vec<EntryOut>,
    /// `start` of the next page; `null` when this page reaches the end of the tree.
    pub next_start: Option<u64>,
}

fn entry_out(index: u64, leaf: Vec<u8>) -> Result<EntryOut, ApiError> {
    // Every stored leaf was validated when it was appended or merged.
    let (created_at_ms, decoded) = decode_leaf(&leaf).map_err(|e| {
        ApiError::from(tonic::Status::internal(format!(
            "stored entry {index} does not decode: {e}"
        )))
    })?;
    let (kind, add, retract) = match decoded {
        Decoded::Add { signal_type, add } => (
            EntryKind::Add,
            Some(AddFields {
                signal_type: signal_type.name().to_owned(),
                hash_hex: hex::encode(&add.hash),
                quality: add.quality,
                labels: add.labels,
                legal_basis: add.legal_basis,
                case_ref: add.case_ref,
            }),
            None,
        ),
        Decoded::Retract(r) => (
            EntryKind::Retract,
            None,
            Some(RetractFields {
                target_index: r.target_index,
                target_leaf_hash_hex: hex::encode(&r.target_leaf_hash),
                reason: r.reason,
            }),
        ),
    };
    Ok(EntryOut {
        index,
        leaf_hex: hex::encode(&leaf),
        created_at_ms,
        kind,
        add,
        retract,
    })
}

/// `GET /v1/entries?origin=&start=&limit=`: one page of an origin's log, decoded.
#[utoipa::path(
    get,
    path = "/v1/entries",
    tag = "v1",
    summary = "An origin's entries, a page at a time",
    params(
        ("origin" = String, Query, description = "The origin (list)"),
        ("start" = Option<u64>, Query, description = "First index (default 0)"),
        ("limit" = Option<u64>, Query, description = "Entries wanted, 1 to 1000 (default 100)"),
    ),
    responses(
        (status = 200, description = "The page", body = EntriesPage),
        (status = 404, description = "The node holds no such origin", body = super::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn entries(
    State(gate): State<HttpGate>,
    RawQuery(query): RawQuery,
) -> Result<Json<EntriesPage>, ApiError> {
    let p: EntriesParams = params::parse(query.as_deref())?;
    let origin = params::required("origin", p.origin.as_deref())?.to_owned();
    let start = params::number("start", p.start.as_deref())?.unwrap_or(0);
    let limit = params::number("limit", p.limit.as_deref())?.unwrap_or(DEFAULT_ENTRIES);
    if !(1..=MAX_ENTRIES).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_ENTRIES}"
        )));
    }
    let node = gate.node()?;
    // The tree the page is of, read first: the page never reaches past it, even while the
    // log grows.
    let cp = node.logs().checkpoint(&origin)?;
    if start > cp.size {
        return Err(ApiError::bad_request(format!(
            "start {start} is past the end of {origin}'s tree of {} entries",
            cp.size
        )));
    }
    let end = start.saturating_add(limit).min(cp.size);
    let mut entries = Vec::new();
    if start < end {
        let mut chunks = node.logs().entries(&origin, start, end)?;
        while let Some(chunk) = chunks.next().await {
            for (index, leaf) in chunk? {
                entries.push(entry_out(index, leaf)?);
            }
        }
    }
    Ok(Json(EntriesPage {
        origin,
        tree_size: cp.size,
        root_hex: hex::encode(cp.root.0),
        entries,
        next_start: (end < cp.size).then_some(end),
    }))
}

/// Most points `GET /v1/growth` answers.
pub const MAX_GROWTH_POINTS: u64 = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrowthParams {
    origin: Option<String>,
    points: Option<String>,
}

/// One point of a list's growth: it had `index + 1` entries when the entry at `index` was
/// written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct GrowthPoint {
    /// An entry's index.
    pub index: u64,
    /// When the origin wrote it (ms since the Unix epoch, as the origin says).
    pub created_at_ms: u64,
}

/// `GET /v1/growth`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Growth {
    /// The origin.
    pub origin: String,
    /// Its size now.
    pub tree_size: u64,
    /// Entries sampled evenly from the first to the last, in index order.
    pub points: Vec<GrowthPoint>,
}

/// The indices `points` samples of a log of `size` spread evenly over it, first and last
/// included.
fn sample(size: u64, points: u64) -> Vec<u64> {
    let n = points.min(size);
    match n {
        0 => Vec::new(),
        1 => vec![size - 1],
        // In u128: `i * (size - 1)` overflows u64 for large logs.
        _ => (0..n)
            .map(|i| (u128::from(i) * u128::from(size - 1) / u128::from(n - 1)) as u64)
            .collect(),
    }
}

/// `GET /v1/growth?origin=&points=`: how an origin's list grew, from the creation times of
/// entries sampled along it (a few leaf reads, whatever the log's size), for the console's
/// chart.
#[utoipa::path(
    get,
    path = "/v1/growth",
    tag = "v1",
    summary = "How an origin's list grew over time",
    params(
        ("origin" = String, Query, description = "The origin (list)"),
        ("points" = Option<u64>, Query, description = "Points wanted, 1 to 256 (default 64)"),
    ),
    responses(
        (status = 200, description = "Sampled entries", body = Growth),
        (status = 404, description = "The node holds no such origin", body = super::error::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn growth(
    State(gate): State<HttpGate>,
    RawQuery(query): RawQuery,
) -> Result<Json<Growth>, ApiError> {
    let p: GrowthParams = params::parse(query.as_deref())?;
    let origin = params::required("origin", p.origin.as_deref())?.to_owned();
    let points = params::number("points", p.points.as_deref())?.unwrap_or(64);
    if !(1..=MAX_GROWTH_POINTS).contains(&points) {
        return Err(ApiError::bad_request(format!(
            "points must be 1 to {MAX_GROWTH_POINTS}"
        )));
    }
    let node = gate.node()?.clone();
    let log = node.log(&origin)?;
    let state = log.state();
    let (id, size) = (state.id, state.size());
    let indices = sample(size, points);
    // Leaf reads: off the runtime thread.
    let read = tokio::task::spawn_blocking(move || {
        indices
            .into_iter()
            .map(|index| {
                let leaf = node.logs().leaf(id, index)?.ok_or_else(|| {
                    crate::node::NodeError::MissingLeaves {
                        origin: origin.clone(),
                        at: index,
                    }
                })?;
                let created = decode_leaf(&leaf).map_or(0, |(created, _)| created);
                Ok(GrowthPoint {
                    index,
                    created_at_ms: created,
                })
            })
            .collect::<Result<Vec<_>, crate::node::NodeError>>()
            .map(|points| (origin, points))
    })
    .await
    .map_err(|e| ApiError::from(tonic::Status::internal(format!("growth task: {e}"))))?;
    let (origin, points) = read?;
    Ok(Json(Growth {
        origin,
        tree_size: size,
        points,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceParams {
    origin: Option<String>,
    page_size: Option<String>,
    page_token: Option<String>,
}

/// One evidence record: what a peer sent that proved it or the origin misbehaved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EvidenceOut {
    /// Record id.
    pub id: u64,
    /// The origin concerned.
    pub origin: String,
    /// The peer that sent it.
    pub peer: String,
    /// Why it was kept (`split_view`, `bad_signature`, …).
    pub reason: String,
    /// What was wrong, for a person.
    pub detail: String,
    /// When it arrived (ms since the Unix epoch).
    pub received_at_ms: u64,
    /// The signed notes exactly as received, base64 (a conflicting pair proves a split view
    /// to anyone holding the origin's key; a note may be cut short, see `truncated`).
    pub signed_notes_base64: Vec<String>,
    /// SHA-256 of each note as received in full, hex.
    pub signed_note_sha256_hex: Vec<String>,
    /// Length of each note as received in full.
    pub signed_note_lengths: Vec<u64>,
    /// Some note was longer than the node keeps and is cut short above.
    pub truncated: bool,
    /// What identifies the record among repeats, hex.
    pub fingerprint_hex: String,
    /// The notes verify under the origin's key and conflict: proof, not suspicion.
    pub proven: bool,
}

/// `GET /v1/evidence`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EvidencePage {
    /// Records, oldest first.
    pub evidence: Vec<EvidenceOut>,
    /// Pass as `page_token` for the next page; `null` on the last one.
    pub next_page_token: Option<String>,
}

/// `GET /v1/evidence?origin=&page_size=&page_token=`: evidence kept against peers and origins.
#[utoipa::path(
    get,
    path = "/v1/evidence",
    tag = "v1",
    summary = "Evidence of misbehaving peers and origins, a page at a time",
    params(
        ("origin" = Option<String>, Query, description = "Only this origin's records"),
        ("page_size" = Option<u32>, Query, description = "Records wanted (0 or absent: the node's default; capped)"),
        ("page_token" = Option<String>, Query, description = "The previous page's next_page_token"),
    ),
    responses((status = 200, description = "The page", body = EvidencePage)),
    security(("bearer" = [])),
)]
pub async fn evidence(
    State(gate): State<HttpGate>,
    RawQuery(query): RawQuery,
) -> Result<Json<EvidencePage>, ApiError> {
    let p: EvidenceParams = params::parse(query.as_deref())?;
    let page_size = params::number("page_size", p.page_size.as_deref())?.unwrap_or(0);
    let page_size = u32::try_from(page_size)
        .map_err(|_| ApiError::bad_request(format!("page_size must be at most {}", u32::MAX)))?;
    let node = gate.node()?;
    let page = evidence_page(
        node,
        pb::ListEvidenceRequest {
            origin: p.origin.unwrap_or_default(),
            page_size,
            page_token: p.page_token.unwrap_or_default(),
            ..Default::default()
        },
    )
    .await?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(Json(EvidencePage {
        evidence: page
            .evidence
            .into_iter()
            .map(|e| EvidenceOut {
                id: e.id,
                origin: e.origin,
                peer: e.peer,
                reason: e.reason,
                detail: e.detail,
                received_at_ms: e.received_at_ms,
                signed_notes_base64: e.signed_notes.iter().map(|n| b64.encode(n)).collect(),
                signed_note_sha256_hex: e.signed_note_sha256.iter().map(hex::encode).collect(),
                signed_note_lengths: e.signed_note_lengths,
                truncated: e.truncated,
                fingerprint_hex: hex::encode(&e.fingerprint),
                proven: e.proven,
            })
            .collect(),
        next_page_token: Some(page.next_page_token).filter(|t| !t.is_empty()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redline_proto::entry::{encode_add, encode_retract};
    use redline_proto::pb::AddEntry;

    #[test]
    fn growth_samples_spread_from_the_first_entry_to_the_last() {
        assert_eq!(sample(0, 64), Vec::<u64>::new());
        assert_eq!(sample(1, 64), [0]);
        assert_eq!(sample(5, 64), [0, 1, 2, 3, 4]);
        assert_eq!(sample(1000, 3), [0, 499, 999]);
        assert_eq!(sample(u64::MAX, 2), [0, u64::MAX - 1]);
        let many = sample(10_000_000, 256);
        assert_eq!((many.len(), many[255]), (256, 9_999_999));
        assert!(many.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn an_entry_reads_as_its_fields_and_its_exact_bytes() {
        let add = AddEntry {
            signal_type: "md5".into(),
            hash: vec![0xab; 16],
            labels: vec!["ncii".into()],
            legal_basis: "consent withdrawn".into(),
            ..Default::default()
        };
        let leaf = encode_add(add, 1_700_000_000_000).unwrap();
        let out = entry_out(3, leaf.clone()).unwrap();
        assert_eq!(out.kind, EntryKind::Add);
        assert_eq!(out.leaf_hex, hex::encode(&leaf));
        assert_eq!(out.created_at_ms, 1_700_000_000_000);
        let a = out.add.unwrap();
        assert_eq!(
            (a.signal_type.as_str(), a.hash_hex.as_str()),
            ("md5", &*"ab".repeat(16))
        );
        assert_eq!(a.labels, ["ncii"]);
        assert!(out.retract.is_none());

        let target = redline_proto::merkle::Hash([7u8; 32]);
        let r = entry_out(4, encode_retract(3, &target, "false positive", 5).unwrap()).unwrap();
        assert_eq!(r.kind, EntryKind::Retract);
        let rr = r.retract.unwrap();
        assert_eq!((rr.target_index, rr.reason.as_str()), (3, "false positive"));
        assert_eq!(rr.target_leaf_hash_hex, hex::encode(target.0));

        // A stored leaf that does not decode is the node's fault, said as such.
        let bad = entry_out(5, vec![0xff, 0x01]).unwrap_err();
        assert_eq!(bad.status.as_u16(), 500);
    }
}
