//! Conversions between wire messages and domain values: requests parse into what the node's
//! services take (`TryFrom`, with the validation they need), results convert back (`From`).

use crate::catalog::Hit;
use crate::node::{
    to_pb, Answer, Listing, NewSignal, NodeError, OriginOverview, Overview, Query, Receipt,
    SentSignal, Upload, VideoThresholds,
};
use redline_proto::pb;
use redline_proto::signal::SignalType;

/// Room per `Signal` message of a request, bytes on the wire. The longest valid one but vPDQ is
/// 89 (the 15-character `blockhash-16x16`, 64 hex digits, a quality); the rest leaves room for
/// an invalid one to reach [`parse_signals`], whose error says what is wrong with it.
pub const MAX_SIGNAL_BYTES: usize = 256;

/// Longest `Signal` message: a `vpdq` one of 1,200 frames is 88,800 hex digits.
pub const MAX_VPDQ_SIGNAL_BYTES: usize =
    redline_proto::vpdq::MAX_FRAMES * redline_proto::vpdq::FRAME_HEX + MAX_SIGNAL_BYTES;

/// The `signals` field (number 1 of Match and Submit requests) of a request of at most
/// `max_signals`: each at most one vPDQ signal long, all together what `max_signals` short
/// ones and 4 full-length vPDQ ones take.
pub fn signals_field(max_signals: usize) -> super::wire::Field {
    super::wire::Field::repeated(1, "signals", max_signals, MAX_VPDQ_SIGNAL_BYTES).with_total(
        max_signals
            .saturating_mul(MAX_SIGNAL_BYTES)
            .saturating_add(4 * MAX_VPDQ_SIGNAL_BYTES),
    )
}

/// Parses request signals; an error names the position and what is wrong.
pub fn parse_signals(signals: Vec<pb::Signal>) -> Result<Vec<SentSignal>, NodeError> {
    signals
        .into_iter()
        .enumerate()
        .map(|(position, s)| {
            let bad = |source| NodeError::BadSignal { position, source };
            let signal_type = SignalType::from_name(&s.signal_type).map_err(bad)?;
            let hash = signal_type.parse_hex(&s.value).map_err(bad)?;
            if s.quality > 100 {
                return Err(NodeError::BadEntry {
                    position,
                    source: redline_proto::entry::EntryError::Quality(s.quality),
                });
            }
            Ok(SentSignal {
                signal: NewSignal {
                    signal_type,
                    hash,
                    quality: s.quality,
                },
                hex: s.value,
            })
        })
        .collect()
}

/// A signal as the caller sent it (or as computed), on the wire.
pub fn signal_of(s: SentSignal) -> pb::Signal {
    pb::Signal {
        signal_type: s.signal.signal_type.name().to_owned(),
        value: s.hex,
        quality: s.signal.quality,
    }
}

impl TryFrom<pb::SubmitRequest> for Upload {
    type Error = NodeError;

    fn try_from(req: pb::SubmitRequest) -> Result<Self, NodeError> {
        Ok(Upload {
            signals: parse_signals(req.signals)?,
            image: req.image,
            video: req.video,
            listing: Listing {
                labels: req.labels,
                legal_basis: req.legal_basis,
                case_ref: req.case_ref,
            },
        })
    }
}

impl From<Receipt> for pb::SubmitResponse {
    fn from(r: Receipt) -> Self {
        pb::SubmitResponse {
            entries: r
                .entries
                .into_iter()
                .map(|(signal, index, duplicate)| pb::SubmittedEntry {
                    signal: Some(signal_of(signal)),
                    index,
                    duplicate,
                })
                .collect(),
            checkpoint: Some(to_pb(&r.origin, &r.checkpoint)),
        }
    }
}

impl TryFrom<pb::MatchRequest> for Query {
    type Error = NodeError;

    fn try_from(req: pb::MatchRequest) -> Result<Self, NodeError> {
        Ok(Query {
            signals: parse_signals(req.signals)?,
            image: req.image,
            dihedral: req.dihedral,
            max_distance: req.max_distance,
            max_hits: req.max_hits,
            video: req.video,
            proofs: req.proofs,
            video_options: req.video_options.map(|o| VideoThresholds {
                quality: (o.quality_threshold > 0).then(|| o.quality_threshold.min(100) as u8),
                query_percent: (o.query_match_percent > 0.0).then_some(o.query_match_percent),
                compared_percent: (o.compared_match_percent > 0.0)
                    .then_some(o.compared_match_percent),
            }),
        })
    }
}

fn match_of(signal_type: SignalType, hit: Hit) -> pb::Match {
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
        video: hit.video.map(|v| {
            let ranges = |r: Vec<(u32, u32)>| {
                r.into_iter()
                    .map(|(start_ms, end_ms)| pb::TimeRange { start_ms, end_ms })
                    .collect()
            };
            pb::VideoMatch {
                query_percent: v.query_percent,
                compared_percent: v.compared_percent,
                query_ranges: ranges(v.query_ranges),
                compared_ranges: ranges(v.compared_ranges),
            }
        }),
        tlog_proof: hit.tlog_proof.unwrap_or_default(),
    }
}

impl From<Answer> for pb::MatchResponse {
    fn from(a: Answer) -> Self {
        pb::MatchResponse {
            results: a
                .results
                .into_iter()
                .map(|r| {
                    let signal_type = r.query.signal.signal_type;
                    pb::QueryResult {
                        query: Some(signal_of(r.query)),
                        matches: r
                            .hits
                            .into_iter()
                            .map(|hit| match_of(signal_type, hit))
                            .collect(),
                        truncated: r.truncated,
                    }
                })
                .collect(),
        }
    }
}

impl From<OriginOverview> for pb::OriginInfo {
    fn from(o: OriginOverview) -> Self {
        pb::OriginInfo {
            checkpoint: o.checkpoint.as_ref().map(|c| to_pb(&o.origin, c)),
            verifier_key: o.verifier_key.unwrap_or_default(),
            policy: o.policy.to_owned(),
            frozen: o.frozen,
            origin: o.origin,
        }
    }
}

impl From<Overview> for pb::StatusResponse {
    fn from(o: Overview) -> Self {
        pb::StatusResponse {
            origin: o.origin,
            verifier_key: o.verifier_key,
            origins: o
                .origins
                .into_iter()
                .map(|o| pb::OriginStatus {
                    tree_size: o.checkpoint.as_ref().map_or(0, |c| c.size),
                    policy: o.policy.to_owned(),
                    frozen: o.frozen,
                    active_entries: o.active_entries,
                    origin: o.origin,
                })
                .collect(),
            peers: o
                .peers
                .into_iter()
                .map(|(url, s)| pb::PeerStatus {
                    url,
                    last_sync_ms: s.last_sync_ms,
                    last_error: s.last_error,
                })
                .collect(),
            evidence_count: o.evidence_count,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}
