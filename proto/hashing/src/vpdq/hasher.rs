//! The reference's per-frame pipeline and its sampling, on frames already decoded to RGB24.
//!
//! The reference (`vpdq/cpp/hashing/filehasher.cpp`, `pdqbufferhasher.cpp`) converts each sampled
//! frame to packed RGB24 with `sws_scale` (`SWS_AREA` when it resizes), computes luma with PDQ's
//! `fillFloatLumaFromRGB` — `0.299 R + 0.587 G + 0.114 B` multiplied and summed in `f32` — and
//! hashes it with `pdqHash256FromFloatLuma`. That luma is not the one [`crate::pdq::luma_from_rgb`]
//! computes for still images (which follows the `pdqhash` Python binding, in `f64`), so it is
//! reproduced here to keep video frames bit-identical to the reference.
//!
//! Sampling is by frame count: frame `n` (0-based, counting every decoded frame) is hashed when
//! `n % frameMod == 0`, `frameMod = (int)(secondsPerHash * frameRate)`, raised to 1 when it
//! truncates to 0 (so `secondsPerHash = 0` hashes every frame). The timestamp is
//! `n / frameRate` (computed in `f32`, see [`timestamp_of`]), where `frameRate` is the stream's
//! average frame rate (`avg_frame_rate`, else `r_frame_rate`).

use crate::pdq::{pdq_from_luma, Pdq};
use crate::vpdq::VpdqFrame;

const LUMA_R: f32 = 0.299;
const LUMA_G: f32 = 0.587;
const LUMA_B: f32 = 0.114;

/// The reference's `frameMod`: hash every `frame_mod`-th frame. Truncates like the reference's
/// `static_cast<int>`; 0 (or a negative or non-finite product) becomes 1, i.e. every frame.
pub fn frame_mod(seconds_per_hash: f64, frame_rate: f64) -> u64 {
    let product = seconds_per_hash * frame_rate;
    if product.is_finite() && product >= 1.0 {
        // Saturating cast: an absurd frame rate samples only frame 0, never panics.
        product as u64
    } else {
        1
    }
}

/// Fills `luma` with `fillFloatLumaFromRGB`'s values for a packed `width x height` RGB24 frame
/// (rows of exactly `3 * width` bytes).
///
/// # Panics
/// If `rgb.len() != 3 * width * height` or `luma.len() != width * height`.
pub fn luma_from_rgb24(rgb: &[u8], width: usize, height: usize, luma: &mut [f32]) {
    assert_eq!(
        rgb.len(),
        3 * width * height,
        "rgb buffer is not 3 * width * height"
    );
    assert_eq!(
        luma.len(),
        width * height,
        "luma buffer is not width * height"
    );
    for (out, px) in luma.iter_mut().zip(rgb.chunks_exact(3)) {
        // Same operations in the same order as the reference, so the same f32 result.
        *out = LUMA_R * f32::from(px[0]) + LUMA_G * f32::from(px[1]) + LUMA_B * f32::from(px[2]);
    }
}

/// PDQ of one packed RGB24 frame as the reference's frame hasher computes it. Frames smaller than
/// 5 pixels on a side get the zero hash with quality 0 (the reference refuses them outright).
///
/// `luma` is scratch space, resized as needed, so a caller hashing many frames allocates once.
pub fn pdq_from_rgb24(rgb: &[u8], width: usize, height: usize, luma: &mut Vec<f32>) -> Pdq {
    luma.resize(width * height, 0.0);
    luma_from_rgb24(rgb, width, height, luma);
    pdq_from_luma(luma, width, height)
}

/// The reference's timestamp of frame `frame_number`: `(float)n / (float)frameRate`, in `f32` as
/// the current reference (`hasher.h`, PyPI `vpdq` 0.2.5) divides, widened to `f64`
/// (1/30 s is 0.033333335, not 0.0333333333).
pub fn timestamp_of(frame_number: u64, frame_rate: f64) -> f64 {
    f64::from(frame_number as f32 / frame_rate as f32)
}

/// Hashes a stream of decoded frames in order, sampling as the reference does.
///
/// Every decoded frame must be offered with [`VpdqHasher::push_rgb24`] (or counted with
/// [`VpdqHasher::skip`] when its pixels are not at hand), because frame numbers, timestamps and
/// the sampling all count frames.
#[derive(Debug, Clone)]
pub struct VpdqHasher {
    frame_rate: f64,
    frame_mod: u64,
    next_frame: u64,
    luma: Vec<f32>,
    /// Hash frames without their letterbox/pillarbox bars (see [`crate::vpdq::border`]).
    trim_borders: bool,
    /// Scratch for a trimmed frame.
    cropped: Vec<u8>,
}

impl VpdqHasher {
    /// A hasher for a stream of `frame_rate` frames per second (the container's average frame
    /// rate, as the reference reads it), hashing every `frame_mod(seconds_per_hash, frame_rate)`-th
    /// frame. Returns `None` when `frame_rate` is not a positive finite number (the reference
    /// refuses a zero frame rate).
    pub fn new(frame_rate: f64, seconds_per_hash: f64) -> Option<VpdqHasher> {
        if !(frame_rate.is_finite() && frame_rate > 0.0) {
            return None;
        }
        Some(VpdqHasher {
            frame_rate,
            frame_mod: frame_mod(seconds_per_hash, frame_rate),
            next_frame: 0,
            luma: Vec::new(),
            trim_borders: false,
            cropped: Vec::new(),
        })
    }

    /// This hasher, hashing each frame that has bars without them (off by default, which is
    /// the reference's behaviour).
    pub fn with_border_trim(mut self, trim: bool) -> VpdqHasher {
        self.trim_borders = trim;
        self
    }

    /// Every how many frames one is hashed.
    pub fn frame_mod(&self) -> u64 {
        self.frame_mod
    }

    /// The number of the next frame to be offered (= frames offered so far).
    pub fn frames_seen(&self) -> u64 {
        self.next_frame
    }

    /// Whether the next frame offered will be hashed.
    pub fn wants_next(&self) -> bool {
        self.next_frame.is_multiple_of(self.frame_mod)
    }

    /// Counts one frame without hashing it (only valid when [`Self::wants_next`] is false).
    pub fn skip(&mut self) {
        debug_assert!(!self.wants_next(), "skipping a frame the sampling wants");
        self.next_frame += 1;
    }

    /// Offers the next decoded frame, packed RGB24 of `width x height`; returns its hash when the
    /// sampling selects it.
    ///
    /// # Panics
    /// If `rgb.len() != 3 * width * height`.
    pub fn push_rgb24(&mut self, rgb: &[u8], width: usize, height: usize) -> Option<VpdqFrame> {
        let n = self.next_frame;
        self.next_frame += 1;
        if !n.is_multiple_of(self.frame_mod) {
            return None;
        }
        Some(self.hash_frame(n, rgb, width, height))
    }

    /// Hashes frame number `frame_number` (already known to be sampled, e.g. because the decoder
    /// only delivered sampled frames) and moves the count past it.
    pub fn hash_frame(
        &mut self,
        frame_number: u64,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> VpdqFrame {
        let rect = if self.trim_borders {
            crate::vpdq::border::content_rect(rgb, width, height)
        } else {
            None
        };
        let pdq = match rect {
            Some(r) => {
                let mut cropped = std::mem::take(&mut self.cropped);
                crate::vpdq::border::crop_rgb24(rgb, width, r, &mut cropped);
                let pdq = pdq_from_rgb24(&cropped, r.width, r.height, &mut self.luma);
                self.cropped = cropped;
                pdq
            }
            None => pdq_from_rgb24(rgb, width, height, &mut self.luma),
        };
        self.next_frame = self.next_frame.max(frame_number + 1);
        VpdqFrame {
            frame_number,
            quality: pdq.quality,
            pdq: pdq.hash,
            timestamp_s: timestamp_of(frame_number, self.frame_rate),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_mod_truncates_like_the_reference() {
        assert_eq!(frame_mod(1.0, 30.0), 30);
        assert_eq!(frame_mod(1.0, 29.97), 29);
        assert_eq!(frame_mod(0.5, 25.0), 12);
        assert_eq!(frame_mod(0.0, 30.0), 1);
        assert_eq!(frame_mod(1.0, 0.5), 1);
        assert_eq!(frame_mod(f64::NAN, 30.0), 1);
        assert_eq!(frame_mod(1.0, f64::INFINITY), 1);
    }

    #[test]
    fn luma_is_the_f32_sum_in_reference_order() {
        let rgb = [255u8, 255, 255, 1, 2, 3];
        let mut luma = [0f32; 2];
        luma_from_rgb24(&rgb, 2, 1, &mut luma);
        assert_eq!(
            luma[0],
            0.299f32 * 255.0 + 0.587f32 * 255.0 + 0.114f32 * 255.0
        );
        assert_eq!(luma[1], 0.299f32 + 0.587f32 * 2.0 + 0.114f32 * 3.0);
    }

    #[test]
    fn sampling_numbers_and_times_frames() {
        let mut h = VpdqHasher::new(10.0, 0.5).unwrap();
        assert_eq!(h.frame_mod(), 5);
        let frame = vec![128u8; 3 * 8 * 8];
        let got: Vec<VpdqFrame> = (0..12).filter_map(|_| h.push_rgb24(&frame, 8, 8)).collect();
        let numbers: Vec<u64> = got.iter().map(|f| f.frame_number).collect();
        assert_eq!(numbers, [0, 5, 10]);
        assert_eq!(got[1].timestamp_s, 0.5);
        assert_eq!(timestamp_of(1, 30.0), f64::from(1f32 / 30f32));
        assert_eq!(h.frames_seen(), 12);
        assert!(VpdqHasher::new(0.0, 1.0).is_none());
        assert!(VpdqHasher::new(f64::NAN, 1.0).is_none());
    }
}
