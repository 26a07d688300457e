//! The reference vPDQ comparison of two videos, as python-threatexchange's
//! `vpdq_brute_matcher.match_VPDQ_hash_brute` computes it, and its two decision policies.
//!
//! Each video is first de-duplicated (frames with exactly the same hash kept once, first
//! occurrence) and then stripped of frames below the quality threshold (default 50). A frame
//! matches when some frame of the other video is within the distance threshold (`<= 31`). The
//! result is two percentages: of the query's remaining frames that match, and of the compared
//! video's remaining frames that match, each `count * 100 / len` in `f64` (Python's true division
//! of exact integers, so the same double).
//!
//! Where pytx divides by zero (no frame left on a side) this returns 0 % for both, like the C++
//! `matchTwoHashBrute`. The C++ tool counts `distance < tolerance`; pytx (and HMA) count
//! `distance <= 31`, which is what Redline follows.
//!
//! Decisions (see [`MatchPolicy`]): pytx's index (`VPDQIndex`, what HMA matches with) requires
//! `query_percent >= 80` and `compared_percent >= 0`; `VideoVPDQSignal.compare_hash` instead
//! requires `max(query_percent, compared_percent) >= 80`.

use std::collections::HashSet;

use crate::vpdq::VpdqFrame;

/// Thresholds of the frame comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VpdqMatchOptions {
    /// Frames of lower quality are ignored (pytx `VPDQ_QUALITY_THRESHOLD`, 50).
    pub quality_threshold: u8,
    /// Two frames match at this PDQ distance or less (pytx `VPDQ_DISTANCE_THRESHOLD`, 31).
    pub distance_threshold: u32,
}

impl Default for VpdqMatchOptions {
    fn default() -> Self {
        VpdqMatchOptions {
            quality_threshold: 50,
            distance_threshold: 31,
        }
    }
}

/// How two videos compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VpdqMatch {
    /// Percentage (0..=100) of the query's unique, good-quality frames that match a frame of the
    /// compared video.
    pub query_percent: f64,
    /// Percentage of the compared video's unique, good-quality frames that match a query frame.
    pub compared_percent: f64,
    /// Query frames left after de-duplication and the quality filter.
    pub query_frames: usize,
    /// Compared frames left after de-duplication and the quality filter.
    pub compared_frames: usize,
    /// Of those, query frames that matched.
    pub query_matched: usize,
    /// Of those, compared frames that matched.
    pub compared_matched: usize,
}

/// When a comparison counts as a match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MatchPolicy {
    /// pytx's `VPDQIndex` (and HMA): `query_percent >= query && compared_percent >= compared`;
    /// the defaults are 80 and 0 (`VPDQ_QUERY_MATCH_THRESHOLD_PERCENT`,
    /// `VPDQ_INDEX_MATCH_THRESHOLD_PERCENT`). Asks "is most of the query in the listed video?",
    /// so a short clip of a long listed video matches.
    Index {
        /// Minimum `query_percent`.
        query: f64,
        /// Minimum `compared_percent`.
        compared: f64,
    },
    /// pytx's `VideoVPDQSignal.compare_hash`: `max(query_percent, compared_percent) >= threshold`
    /// (default 80, `VPDQ_CONFIDENT_MATCH_THRESHOLD`). Symmetric: either video mostly inside the
    /// other.
    EitherWay {
        /// Minimum of the larger percentage.
        threshold: f64,
    },
}

impl MatchPolicy {
    /// pytx's index policy with its defaults (query >= 80 %, compared >= 0 %).
    pub const PYTX_INDEX: MatchPolicy = MatchPolicy::Index {
        query: 80.0,
        compared: 0.0,
    };
    /// pytx's `compare_hash` policy with its default (either percentage >= 80 %).
    pub const PYTX_COMPARE_HASH: MatchPolicy = MatchPolicy::EitherWay { threshold: 80.0 };

    /// Whether `m` is a match under this policy. A comparison where either side had no usable
    /// frame never matches (pytx's index reports nothing for it either).
    pub fn is_match(&self, m: &VpdqMatch) -> bool {
        if m.query_frames == 0 || m.compared_frames == 0 {
            return false;
        }
        match *self {
            MatchPolicy::Index { query, compared } => {
                m.query_percent >= query && m.compared_percent >= compared
            }
            MatchPolicy::EitherWay { threshold } => {
                m.query_percent.max(m.compared_percent) >= threshold
            }
        }
    }
}

impl Default for MatchPolicy {
    fn default() -> Self {
        MatchPolicy::PYTX_INDEX
    }
}

/// pytx's `dedupe` then `quality_filter`: unique hashes (first occurrence) of good quality.
pub fn usable_frames(frames: &[VpdqFrame], quality_threshold: u8) -> Vec<VpdqFrame> {
    let mut seen = HashSet::with_capacity(frames.len());
    frames
        .iter()
        .filter(|f| seen.insert(f.pdq))
        .filter(|f| f.quality >= quality_threshold)
        .copied()
        .collect()
}

/// For each frame of `a`, whether some frame of `b` is within `distance`.
fn matched_in(a: &[VpdqFrame], b: &[VpdqFrame], distance: u32) -> Vec<bool> {
    a.iter()
        .map(|x| b.iter().any(|y| x.pdq.distance(&y.pdq) <= distance))
        .collect()
}

fn percent(count: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        (count as f64 * 100.0) / of as f64
    }
}

/// A comparison with the frames that decided it: the usable frames of each side (see
/// [`usable_frames`]), each with whether it matched.
#[derive(Debug, Clone, PartialEq)]
pub struct VpdqComparison {
    /// The percentages and counts.
    pub summary: VpdqMatch,
    /// The query's usable frames and whether each matched.
    pub query: Vec<(VpdqFrame, bool)>,
    /// The compared video's usable frames and whether each matched.
    pub compared: Vec<(VpdqFrame, bool)>,
}

/// Compares two videos frame by frame, every pair (`O(n m)`; a node first finds the candidate
/// videos with its index, then compares each this way), keeping which frames matched.
pub fn compare(
    query: &[VpdqFrame],
    compared: &[VpdqFrame],
    options: &VpdqMatchOptions,
) -> VpdqComparison {
    let q = usable_frames(query, options.quality_threshold);
    let c = usable_frames(compared, options.quality_threshold);
    let (qm, cm) = if q.is_empty() || c.is_empty() {
        (vec![false; q.len()], vec![false; c.len()])
    } else {
        (
            matched_in(&q, &c, options.distance_threshold),
            matched_in(&c, &q, options.distance_threshold),
        )
    };
    let query_matched = qm.iter().filter(|&&m| m).count();
    let compared_matched = cm.iter().filter(|&&m| m).count();
    VpdqComparison {
        summary: VpdqMatch {
            query_percent: percent(query_matched, q.len()),
            compared_percent: percent(compared_matched, c.len()),
            query_frames: q.len(),
            compared_frames: c.len(),
            query_matched,
            compared_matched,
        },
        query: q.into_iter().zip(qm).collect(),
        compared: c.into_iter().zip(cm).collect(),
    }
}

/// [`compare`]'s percentages alone.
pub fn match_brute(
    query: &[VpdqFrame],
    compared: &[VpdqFrame],
    options: &VpdqMatchOptions,
) -> VpdqMatch {
    compare(query, compared, options).summary
}

/// The spans of a video its matched frames cover, as `(start, end)` seconds: each run of
/// consecutive matched frames (in time order) from its first frame's timestamp to its last's,
/// runs less than `join_within` seconds apart joined into one (a densely listed video has
/// unmatched frames between the ones a 1-frame-a-second query lands on). A single matched frame
/// is a span of length 0.
pub fn matched_ranges(frames: &[(VpdqFrame, bool)], join_within: f64) -> Vec<(f64, f64)> {
    let mut sorted: Vec<&(VpdqFrame, bool)> = frames.iter().collect();
    sorted.sort_by(|a, b| a.0.timestamp_s.total_cmp(&b.0.timestamp_s));
    let mut ranges: Vec<(f64, f64)> = Vec::new();
    let mut open = false;
    for (frame, matched) in sorted {
        match (*matched, open) {
            (true, true) => ranges.last_mut().expect("open run").1 = frame.timestamp_s,
            (true, false) => ranges.push((frame.timestamp_s, frame.timestamp_s)),
            (false, _) => {}
        }
        open = *matched;
    }
    let mut joined: Vec<(f64, f64)> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match joined.last_mut() {
            Some(last) if r.0 - last.1 < join_within => last.1 = r.1,
            _ => joined.push(r),
        }
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdq::PdqHash;

    fn frame(n: u64, q: u8, bits_set: usize) -> VpdqFrame {
        let mut h = [0u8; 32];
        for k in 0..bits_set {
            h[k / 8] |= 1 << (k % 8);
        }
        VpdqFrame {
            frame_number: n,
            quality: q,
            pdq: PdqHash(h),
            timestamp_s: n as f64,
        }
    }

    #[test]
    fn percentages_follow_pytx() {
        // Query: hashes at 0, 31 and 32 bits from zero, a duplicate, and a low-quality frame.
        let query = [
            frame(0, 100, 0),
            frame(1, 100, 0),
            frame(2, 100, 31),
            frame(3, 100, 100),
            frame(4, 49, 200),
        ];
        let compared = [frame(0, 90, 0), frame(1, 90, 250)];
        let m = match_brute(&query, &compared, &VpdqMatchOptions::default());
        assert_eq!((m.query_frames, m.compared_frames), (3, 2));
        // 0 and 31 match (distance <= 31); 100 does not.
        assert_eq!(m.query_matched, 2);
        assert_eq!(m.query_percent, 2.0 * 100.0 / 3.0);
        assert_eq!(m.compared_percent, 50.0);
        assert!(!MatchPolicy::PYTX_INDEX.is_match(&m));
        assert!(!MatchPolicy::PYTX_COMPARE_HASH.is_match(&m));
        let loose = MatchPolicy::Index {
            query: 66.0,
            compared: 0.0,
        };
        assert!(loose.is_match(&m));
    }

    #[test]
    fn ranges_are_runs_of_matched_frames_in_time_order() {
        let f = |n: u64| frame(n, 100, 0);
        let flags = [
            (f(3), true),
            (f(0), true),
            (f(1), true),
            (f(2), false),
            (f(4), false),
            (f(5), true),
        ];
        assert_eq!(
            matched_ranges(&flags, 0.0),
            [(0.0, 1.0), (3.0, 3.0), (5.0, 5.0)]
        );
        assert_eq!(matched_ranges(&flags, 2.5), [(0.0, 5.0)]);
        assert_eq!(
            matched_ranges(&flags, 2.0),
            [(0.0, 1.0), (3.0, 3.0), (5.0, 5.0)]
        );
        let c = compare(&[f(0), frame(1, 100, 200)], &[f(7)], &Default::default());
        assert_eq!(
            c.query.iter().map(|x| x.1).collect::<Vec<_>>(),
            [true, false]
        );
        assert_eq!(c.summary.query_percent, 50.0);
    }

    #[test]
    fn dedupe_happens_before_the_quality_filter() {
        // pytx dedupes first: the low-quality first occurrence hides the good duplicate.
        let mut low = frame(0, 10, 5);
        let good = frame(1, 100, 5);
        low.pdq = good.pdq;
        assert!(usable_frames(&[low, good], 50).is_empty());
    }

    #[test]
    fn empty_sides_are_zero_and_no_match() {
        let m = match_brute(&[frame(0, 10, 0)], &[frame(0, 100, 0)], &Default::default());
        assert_eq!((m.query_percent, m.compared_percent), (0.0, 0.0));
        assert!(!MatchPolicy::Index {
            query: 0.0,
            compared: 0.0
        }
        .is_match(&m));
    }
}
