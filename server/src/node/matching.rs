//! Matching queries against the catalog: what to ask it (the radius rules, PDQ's dihedral
//! variants of an uploaded image, the frames of a video), where to run the searches, and the
//! hits, each naming the origin, index, distance and listing. The catalog does the exact search.
//!
//! A vPDQ query is matched in two steps: the catalog's frame index finds every listed video
//! with a frame near one of the query's usable frames (exact: a video with none could not
//! reach any positive share of matched query frames), then each candidate's frames are read from
//! its leaf and compared with the query as python-threatexchange does
//! (`redline_hashing::vpdq::compare`), and the thresholds decide.

use super::logs::Logs;
use super::{blocking, NodeError, Result, SentSignal};
use crate::catalog::{Catalog, Found, Hit, VideoHit};
use crate::config::MatchingConfig;
use crate::hashing::{ImageHasher, VideoHasher};
use crate::metrics::Metrics;
use redline_hashing::vpdq::{self, MatchPolicy, VpdqFrame, VpdqMatchOptions};
use redline_hashing::Dihedral;
use redline_proto::entry::{self, Decoded};
use redline_proto::signal::{Distance, SignalType};
use std::collections::HashMap;
use std::sync::Arc;

/// Requests with at most this many searches (signals times variants) are answered on the
/// runtime thread; see [`Matching::answer`].
const INLINE_SEARCHES: usize = 4;

/// One match request.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Signals given as hashes.
    pub signals: Vec<SentSignal>,
    /// An encoded image to hash and look up; empty for none.
    pub image: Vec<u8>,
    /// Also look up PDQ's rotations and mirror images of the image.
    pub dihedral: bool,
    /// Largest distance wanted; 0: the default. Never raises the configured radius.
    pub max_distance: u32,
    /// Most hits wanted per queried signal; 0: the configured `max_hits`, which it never
    /// raises.
    pub max_hits: u32,
    /// A video file to hash (1 frame a second) and look up; empty for none.
    pub video: Vec<u8>,
    /// This request's vPDQ thresholds, over the configured ones.
    pub video_options: Option<VideoThresholds>,
    /// Also prove each hit's entry in its origin's signed log (a C2SP tlog-proof in
    /// [`Hit::tlog_proof`]). Off unless asked: it reads each hit's leaf and tree.
    pub proofs: bool,
}

/// A request's own vPDQ thresholds; `None` fields take `[matching.video]`'s.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VideoThresholds {
    /// Frames of lower quality are left out.
    pub quality: Option<u8>,
    /// Least percent of the query's frames that must match.
    pub query_percent: Option<f64>,
    /// Least percent of the listed video's frames that must match.
    pub compared_percent: Option<f64>,
}

/// The hits for one queried signal.
#[derive(Debug, Clone)]
pub struct QueryHits {
    /// The signal as sent (or as computed from the image).
    pub query: SentSignal,
    /// The matched entries nearest to it, by distance: at most the query's cap.
    pub hits: Vec<Hit>,
    /// More entries matched than `hits` holds.
    pub truncated: bool,
}

/// The answer to a [`Query`]: each given signal in order, then each signal computed from the
/// image (and with [`Query::proofs`], each hit's tlog-proof).
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// One per queried signal.
    pub results: Vec<QueryHits>,
}

/// The matching service.
#[derive(Debug)]
pub struct Matching {
    catalog: Arc<Catalog>,
    /// Leaves of candidate videos are read from here.
    logs: Arc<Logs>,
    hasher: ImageHasher,
    video_hasher: VideoHasher,
    config: MatchingConfig,
    metrics: Arc<Metrics>,
}

impl Matching {
    pub(super) fn new(
        catalog: Arc<Catalog>,
        logs: Arc<Logs>,
        (hasher, video_hasher): (ImageHasher, VideoHasher),
        config: MatchingConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            catalog,
            logs,
            hasher,
            video_hasher,
            config,
            metrics,
        }
    }

    /// Largest video a query may carry.
    pub fn max_video_bytes(&self) -> usize {
        self.video_hasher.max_video_bytes()
    }

    /// Largest encoded image a query may carry.
    pub fn max_image_bytes(&self) -> usize {
        self.hasher.max_image_bytes()
    }

    /// Answers one request.
    pub async fn answer(&self, query: Query) -> Result<Answer> {
        let max = self.config.max_signals;
        if query.signals.len() > max {
            return Err(NodeError::BatchTooLarge {
                got: query.signals.len(),
                max,
            });
        }
        if query.signals.is_empty() && query.image.is_empty() && query.video.is_empty() {
            return Err(NodeError::EmptyQuery);
        }
        // (query as sent back, variants to search)
        let mut queries: Vec<(SentSignal, Vec<Vec<u8>>)> = query
            .signals
            .into_iter()
            .map(|s| {
                let variants = vec![s.signal.hash.clone()];
                (s, variants)
            })
            .collect();
        if !query.image.is_empty() {
            let hashes = self.hasher.hash(query.image, query.dihedral).await?;
            let dihedral = hashes.pdq_dihedral;
            for s in hashes.signals {
                let mut variants = vec![s.bytes.clone()];
                if s.signal_type == SignalType::Pdq {
                    if let Some(d) = &dihedral {
                        variants.extend(
                            Dihedral::ALL
                                .iter()
                                .filter(|&&v| v != Dihedral::Original)
                                .map(|&v| d.get(v).0.to_vec()),
                        );
                    }
                }
                queries.push((SentSignal::from(s), variants));
            }
        }
        if !query.video.is_empty() {
            for s in self.video_hasher.for_query(query.video).await? {
                let variants = vec![s.bytes.clone()];
                queries.push((SentSignal::from(s), variants));
            }
        }
        let video = VideoSearch::new(&self.config, query.video_options, self.logs.clone());
        let catalog = self.catalog.clone();
        let config = self.config.clone();
        let max_distance = query.max_distance;
        let max_hits = hit_cap(&config, query.max_hits);
        let searches: usize = queries.iter().map(|(_, variants)| variants.len()).sum();
        let has_video = queries
            .iter()
            .any(|(q, _)| q.signal.signal_type == SignalType::Vpdq);
        let search_all = move || -> Vec<QueryHits> {
            queries
                .into_iter()
                .map(|(query, variants)| {
                    let signal_type = query.signal.signal_type;
                    let r = radius(&config, signal_type, max_distance);
                    let found = if signal_type == SignalType::Vpdq {
                        video.search(&catalog, &variants[0], r, max_hits)
                    } else {
                        search_variants(&catalog, signal_type, &variants, r, max_hits)
                    };
                    QueryHits {
                        hits: found.hits,
                        truncated: found.truncated,
                        query,
                    }
                })
                .collect()
        };
        // A platform's upload path sends one or a few hashes per request: each search takes
        // tens of microseconds, less than handing it to the blocking pool and waking the task
        // again, so those run on the runtime thread. Larger requests (many signals, dihedral
        // variants) go to the blocking pool so that they cannot stall the runtime's other
        // connections.
        // vPDQ searches compare whole frame lists and read leaves: always off the runtime.
        let mut results = if searches <= INLINE_SEARCHES && !has_video {
            search_all()
        } else {
            blocking(search_all).await?
        };
        if query.proofs && results.iter().any(|r| !r.hits.is_empty()) {
            // Store reads: never on the runtime thread.
            let logs = self.logs.clone();
            results = blocking(move || {
                let wanted: Vec<(&str, u64)> = results
                    .iter()
                    .flat_map(|r| r.hits.iter().map(|h| (h.origin.as_str(), h.index)))
                    .collect();
                let mut proofs = logs.tlog_proofs(&wanted).into_iter();
                for hit in results.iter_mut().flat_map(|r| r.hits.iter_mut()) {
                    hit.tlog_proof = proofs.next().flatten();
                }
                results
            })
            .await?;
        }
        self.metrics
            .matched(results.len(), results.iter().map(|r| r.hits.len()).sum());
        Ok(Answer { results })
    }

    /// The signals of an uploaded image or video, as a query computes them, without looking
    /// them up (the HTTP API's `POST /h/hash`): the bytes are dropped once hashed.
    pub async fn hash_media(&self, image: Vec<u8>, video: Vec<u8>) -> Result<Vec<SentSignal>> {
        let mut out = Vec::new();
        if !image.is_empty() {
            let hashes = self.hasher.hash(image, false).await?;
            out.extend(hashes.signals.into_iter().map(SentSignal::from));
        }
        if !video.is_empty() {
            let signals = self.video_hasher.for_query(video).await?;
            out.extend(signals.into_iter().map(SentSignal::from));
        }
        if out.is_empty() {
            return Err(NodeError::EmptyQuery);
        }
        Ok(out)
    }

    /// Hashes in the catalog's index of `signal_type`.
    pub fn indexed(&self, signal_type: SignalType) -> usize {
        self.catalog.indexed(signal_type)
    }

    /// Every matched entry within `max_distance` of `hash` (exact types: equal), as the
    /// catalog finds it: no radius rule, no variants, no metrics.
    pub fn search(&self, signal_type: SignalType, hash: &[u8], max_distance: u32) -> Vec<Hit> {
        self.catalog.search(signal_type, hash, max_distance)
    }

    /// Merges the catalog's index segments now (a bench measuring steady-state search calls
    /// this after loading).
    pub fn compact(&self) {
        self.catalog.compact();
    }
}

/// The radius a query runs with: the type's configured (or protocol) default, lowered by the
/// request when it asks for less; `requested == 0` means the default.
pub fn radius(config: &MatchingConfig, signal_type: SignalType, requested: u32) -> u32 {
    let default = config
        .max_distance
        .get(signal_type.name())
        .copied()
        .unwrap_or(match signal_type.distance() {
            Distance::Hamming { default_max } | Distance::Frames { default_max } => default_max,
            Distance::Exact => 0,
        });
    if requested == 0 {
        default
    } else {
        requested.min(default)
    }
}

/// One request's vPDQ matching: its thresholds, and where candidates' frames are read.
struct VideoSearch {
    quality: u8,
    policy: MatchPolicy,
    max_candidates: usize,
    logs: Arc<Logs>,
}

impl VideoSearch {
    fn new(config: &MatchingConfig, request: Option<VideoThresholds>, logs: Arc<Logs>) -> Self {
        let c = &config.video;
        let r = request.unwrap_or_default();
        VideoSearch {
            quality: r.quality.unwrap_or(c.quality_threshold),
            policy: MatchPolicy::Index {
                query: r.query_percent.unwrap_or(c.query_match_percent),
                compared: r.compared_percent.unwrap_or(c.compared_match_percent),
            },
            max_candidates: c.max_candidates.max(1),
            logs,
        }
    }

    /// The listed videos `query` (a checked vPDQ value) matches, best first (highest share
    /// of the query matched, then origin, then index): at most `max_hits`.
    fn search(&self, catalog: &Catalog, query: &[u8], radius: u32, max_hits: usize) -> Found {
        let Ok(frames) = vpdq::decode_value(query) else {
            return Found::default();
        };
        let usable = vpdq::matcher::usable_frames(&frames, self.quality);
        let pdqs: Vec<&[u8]> = usable.iter().map(|f| &f.pdq.0[..]).collect();
        let (candidates, mut truncated) =
            catalog.video_candidates(&pdqs, radius, self.max_candidates);
        let options = VpdqMatchOptions {
            quality_threshold: self.quality,
            distance_threshold: radius,
        };
        let mut hits: Vec<Hit> = candidates
            .into_iter()
            .filter_map(|c| {
                let listed = self.listed_frames(c.origin_id, c.index)?;
                let compared = vpdq::compare(&frames, &listed, &options);
                if !self.policy.is_match(&compared.summary) {
                    return None;
                }
                let mut hit = c.hit;
                hit.video = Some(VideoHit {
                    query_percent: compared.summary.query_percent,
                    compared_percent: compared.summary.compared_percent,
                    query_ranges: millis(&compared.query),
                    compared_ranges: millis(&compared.compared),
                });
                Some(hit)
            })
            .collect();
        let share = |h: &Hit| h.video.as_ref().map_or(0.0, |v| v.query_percent);
        hits.sort_by(|a, b| {
            share(b)
                .total_cmp(&share(a))
                .then_with(|| (&a.origin, a.index).cmp(&(&b.origin, b.index)))
        });
        if hits.len() > max_hits {
            hits.truncate(max_hits);
            truncated = true;
        }
        Found { hits, truncated }
    }

    /// The frames of a listed vPDQ entry, from its stored leaf.
    fn listed_frames(&self, origin: crate::store::OriginId, index: u64) -> Option<Vec<VpdqFrame>> {
        let leaf = match self.logs.leaf(origin, index) {
            Ok(Some(leaf)) => leaf,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %e, origin, index, "cannot read a candidate video's leaf");
                return None;
            }
        };
        match entry::decode(&leaf) {
            Ok(Decoded::Add { add, .. }) => vpdq::decode_value(&add.hash).ok(),
            _ => None,
        }
    }
}

/// Matched runs this close (seconds) are one span: a query hashed once a second lands on every
/// fifth frame of a listing sampled 5 times a second.
const JOIN_RANGES_WITHIN_S: f64 = 1.5;

/// The matched spans of one side of a comparison, in milliseconds.
fn millis(frames: &[(VpdqFrame, bool)]) -> Vec<(u32, u32)> {
    vpdq::matched_ranges(frames, JOIN_RANGES_WITHIN_S)
        .into_iter()
        .map(|(start, end)| {
            (
                redline_proto::vpdq::millis(start),
                redline_proto::vpdq::millis(end),
            )
        })
        .collect()
}

/// The hits a query may return: the configured `max_hits`, lowered by the request when it asks
/// for fewer; `requested == 0` means the configured cap. Never 0 (a cap of 0 would answer
/// nothing).
pub fn hit_cap(config: &MatchingConfig, requested: u32) -> usize {
    let cap = config.max_hits.max(1);
    match requested {
        0 => cap,
        n => (n as usize).min(cap),
    }
}

/// The matched entries nearest to any of `variants` (the query itself first, then e.g. its
/// rotations), each stored hash once per origin at its smallest distance, sorted by distance:
/// at most `max_hits`, and whether there were more.
fn search_variants(
    catalog: &Catalog,
    signal_type: SignalType,
    variants: &[Vec<u8>],
    radius: u32,
    max_hits: usize,
) -> Found {
    if variants.len() == 1 {
        return catalog.search_capped(signal_type, &variants[0], radius, max_hits);
    }
    // The nearest `max_hits` over all variants are among the nearest `max_hits` of each.
    let mut truncated = false;
    let mut best: HashMap<(String, Vec<u8>), Hit> = HashMap::new();
    for v in variants {
        let found = catalog.search_capped(signal_type, v, radius, max_hits);
        truncated |= found.truncated;
        for hit in found.hits {
            let key = (hit.origin.clone(), hit.hash.clone());
            match best.get(&key) {
                Some(b) if (b.distance, b.index) <= (hit.distance, hit.index) => {}
                _ => {
                    best.insert(key, hit);
                }
            }
        }
    }
    let mut hits: Vec<Hit> = best.into_values().collect();
    hits.sort_by(|a, b| (a.distance, &a.origin, a.index).cmp(&(b.distance, &b.origin, b.index)));
    if hits.len() > max_hits {
        hits.truncate(max_hits);
        truncated = true;
    }
    Found { hits, truncated }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_may_lower_the_radius_but_not_raise_it() {
        let mut c = MatchingConfig::default();
        assert_eq!(radius(&c, SignalType::Pdq, 0), 31);
        assert_eq!(radius(&c, SignalType::Pdq, 10), 10);
        assert_eq!(radius(&c, SignalType::Pdq, 64), 31);
        c.max_distance.insert("pdq".into(), 40);
        assert_eq!(radius(&c, SignalType::Pdq, 64), 40);
        assert_eq!(radius(&c, SignalType::Md5, 5), 0);
    }

    #[test]
    fn requests_may_lower_the_hit_cap_but_not_raise_it() {
        let mut c = MatchingConfig::default();
        assert_eq!(hit_cap(&c, 0), 100);
        assert_eq!(hit_cap(&c, 7), 7);
        assert_eq!(hit_cap(&c, 5_000), 100);
        c.max_hits = 0;
        assert_eq!(hit_cap(&c, 0), 1, "a cap of 0 would answer nothing");
    }
}
