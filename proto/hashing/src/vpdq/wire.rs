//! Between hashed frames and the protocol's vPDQ value (`redline_proto::vpdq`), and how a
//! listed video is sampled so that clips of it match.

use redline_proto::vpdq::{self as wire, FrameHash};

use crate::pdq::PdqHash;
use crate::signal::SignalError;
use crate::vpdq::VpdqFrame;

/// A frame as the protocol carries it (timestamp rounded to the millisecond).
pub fn to_wire(frame: &VpdqFrame) -> FrameHash {
    FrameHash {
        pdq: frame.pdq.0,
        quality: frame.quality,
        timestamp_ms: wire::millis(frame.timestamp_s),
    }
}

/// Frames of a protocol value. The protocol does not carry frame numbers: frames are numbered
/// by position, which is all the matcher needs.
pub fn from_wire(frames: impl IntoIterator<Item = FrameHash>) -> Vec<VpdqFrame> {
    frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| VpdqFrame {
            frame_number: i as u64,
            quality: f.quality,
            pdq: PdqHash(f.pdq),
            timestamp_s: f64::from(f.timestamp_ms) / 1000.0,
        })
        .collect()
}

/// The frames of a vPDQ value's bytes, checked.
pub fn decode_value(bytes: &[u8]) -> Result<Vec<VpdqFrame>, SignalError> {
    Ok(from_wire(wire::decode(bytes)?))
}

/// A video's frames as one or more vPDQ values of at most [`wire::MAX_FRAMES`] frames each,
/// consecutive parts of the video in order (empty when there is no frame).
pub fn encode_values(frames: &[VpdqFrame]) -> Vec<Vec<u8>> {
    frames
        .chunks(wire::MAX_FRAMES)
        .map(|part| {
            let part: Vec<FrameHash> = part.iter().map(to_wire).collect();
            wire::encode(&part).expect("hashed frames have qualities <= 100 and ordered times")
        })
        .collect()
}

/// How a video to be *listed* is hashed: denser than the 1 frame a second a query uses, then
/// thinned. A query sampled once a second from a clip (or any copy whose first frame is not the
/// listed video's) hits the listed video between its own samples; with the listed video sampled
/// every [`ListingSampling::seconds_per_hash`], every query frame is at most half that from a
/// listed frame in time, and thinning keeps the list short where nothing moves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListingSampling {
    /// Seconds between hashed frames before thinning. Default 0.2 (5 a second).
    pub seconds_per_hash: f64,
    /// A frame is dropped when its PDQ is within this many bits of the last frame kept (and its
    /// quality is no better). Default 12: a query frame within 31 - 12 = 19 bits of a dropped
    /// frame is still within 31 of the kept one.
    pub thin_within: u32,
}

impl Default for ListingSampling {
    fn default() -> Self {
        ListingSampling {
            seconds_per_hash: 0.2,
            thin_within: 12,
        }
    }
}

/// Drops each frame within `within` bits of the last frame kept, unless its quality crosses the
/// matcher's default threshold (50) upwards: a good frame is never hidden behind a poor one.
pub fn thin(frames: &[VpdqFrame], within: u32) -> Vec<VpdqFrame> {
    let mut kept: Vec<VpdqFrame> = Vec::with_capacity(frames.len());
    for f in frames {
        match kept.last() {
            Some(last)
                if last.pdq.distance(&f.pdq) <= within
                    && !(last.quality < 50 && f.quality >= 50) => {}
            _ => kept.push(*f),
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64, quality: u8, bits: usize, t: f64) -> VpdqFrame {
        let mut h = [0u8; 32];
        for k in 0..bits {
            h[k / 8] |= 1 << (k % 8);
        }
        VpdqFrame {
            frame_number: n,
            quality,
            pdq: PdqHash(h),
            timestamp_s: t,
        }
    }

    #[test]
    fn values_round_trip_and_split_into_parts() {
        let frames: Vec<_> = (0..2500)
            .map(|i| frame(i, 90, (i % 200) as usize, i as f64 * 0.2))
            .collect();
        let values = encode_values(&frames);
        assert_eq!(values.len(), 3, "1200 + 1200 + 100 frames");
        assert_eq!(values[2].len(), 100 * wire::FRAME_BYTES);
        let back = decode_value(&values[1]).unwrap();
        assert_eq!(back.len(), 1200);
        assert_eq!(back[0].pdq, frames[1200].pdq);
        assert_eq!(back[0].timestamp_s, 240.0);
        assert_eq!(back[0].frame_number, 0, "numbered by position");
        assert!(encode_values(&[]).is_empty());
    }

    #[test]
    fn thinning_keeps_changes_and_good_frames() {
        let frames = [
            frame(0, 90, 0, 0.0),
            frame(1, 90, 12, 0.2),  // within 12 of frame 0: dropped
            frame(2, 90, 13, 0.4),  // 13 from frame 0: kept
            frame(3, 40, 100, 0.6), // far: kept
            frame(4, 80, 101, 0.8), // near frame 3 but good where 3 was poor: kept
            frame(5, 80, 102, 1.0), // near frame 4: dropped
        ];
        let kept: Vec<u64> = thin(&frames, 12).iter().map(|f| f.frame_number).collect();
        assert_eq!(kept, [0, 2, 3, 4]);
    }
}
