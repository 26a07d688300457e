//! What a Match call returns, as Python objects: one `Match` per listed entry found, with the
//! origin that lists it, its log index (for an inclusion proof), the distance, labels, legal
//! basis and quality; `VideoMatch` for the frame comparison of a vPDQ match.

use crate::hashing::Signal;
use pyo3::prelude::*;
use redline_proto::pb;

/// How a vPDQ query compared with a listed video.
#[pyclass(frozen, get_all, module = "redline._redline")]
#[derive(Debug, Clone)]
pub struct VideoMatch {
    /// Percent of the query's usable frames near a frame of the listed video.
    pub query_percent: f64,
    /// Percent of the listed video's usable frames near a frame of the query.
    pub compared_percent: f64,
    /// Matched spans of the query, `(start_ms, end_ms)`.
    pub query_ranges: Vec<(u32, u32)>,
    /// Matched spans of the listed video, `(start_ms, end_ms)`.
    pub compared_ranges: Vec<(u32, u32)>,
}

#[pymethods]
impl VideoMatch {
    fn __repr__(&self) -> String {
        format!(
            "VideoMatch(query_percent={:.1}, compared_percent={:.1}, query_ranges={:?}, compared_ranges={:?})",
            self.query_percent, self.compared_percent, self.query_ranges, self.compared_ranges
        )
    }
}

/// One listed entry that matched a query.
#[pyclass(frozen, get_all, module = "redline._redline")]
#[derive(Debug, Clone)]
pub struct Match {
    /// The origin (hotline) whose signed list holds the entry.
    pub origin: String,
    /// The entry's index in that origin's log.
    pub index: u64,
    /// Signal type of the listed hash.
    pub signal_type: String,
    /// The listed hash, hex.
    pub value: String,
    /// Hamming distance to the query (vPDQ: the smallest frame distance).
    pub distance: u32,
    /// The origin's labels (`ncii`, `csam`, ...).
    pub labels: Vec<String>,
    /// The legal basis the origin lists it under.
    pub legal_basis: String,
    /// PDQ quality of the listed hash (0: unknown).
    pub quality: u32,
    /// The frame comparison, for vPDQ matches.
    pub video: Option<VideoMatch>,
}

#[pymethods]
impl Match {
    fn __repr__(&self) -> String {
        format!(
            "Match(origin={:?}, index={}, signal_type={:?}, distance={}, labels={:?}, legal_basis={:?}, quality={})",
            self.origin, self.index, self.signal_type, self.distance, self.labels, self.legal_basis, self.quality
        )
    }
}

/// The matches of one queried signal.
#[pyclass(frozen, get_all, module = "redline._redline")]
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The signal as it was matched.
    pub query: Signal,
    /// Nearest first: by distance, then origin, then index.
    pub matches: Vec<Match>,
    /// More entries matched than `matches` holds (the node's cap on hits per query).
    pub truncated: bool,
}

#[pymethods]
impl QueryResult {
    fn __repr__(&self) -> String {
        format!(
            "QueryResult(query={}, matches={}, truncated={})",
            self.query.__repr__(),
            self.matches.len(),
            if self.truncated { "True" } else { "False" }
        )
    }
}

fn ranges(r: &[pb::TimeRange]) -> Vec<(u32, u32)> {
    r.iter().map(|t| (t.start_ms, t.end_ms)).collect()
}

impl From<pb::Match> for Match {
    fn from(m: pb::Match) -> Self {
        let signal = m.signal.unwrap_or_default();
        Match {
            origin: m.origin,
            index: m.index,
            signal_type: signal.signal_type,
            value: signal.value,
            distance: m.distance,
            labels: m.labels,
            legal_basis: m.legal_basis,
            quality: m.quality,
            video: m.video.map(|v| VideoMatch {
                query_percent: v.query_percent,
                compared_percent: v.compared_percent,
                query_ranges: ranges(&v.query_ranges),
                compared_ranges: ranges(&v.compared_ranges),
            }),
        }
    }
}

/// A response as one `QueryResult` per queried signal, in the node's order.
pub fn results(resp: pb::MatchResponse) -> Vec<QueryResult> {
    resp.results
        .into_iter()
        .map(|q| {
            let query = q.query.unwrap_or_default();
            QueryResult {
                query: Signal {
                    signal_type: query.signal_type,
                    value: query.value,
                    quality: query.quality,
                },
                matches: q.matches.into_iter().map(Match::from).collect(),
                truncated: q.truncated,
            }
        })
        .collect()
}

/// Every match of a response, flattened (query order, nearest first within each).
pub fn flatten(resp: pb::MatchResponse) -> Vec<Match> {
    results(resp).into_iter().flat_map(|q| q.matches).collect()
}
