//! vPDQ, Meta's video hash: a PDQ hash of sampled frames, each with its quality, frame number
//! and timestamp, written from the reference (ThreatExchange `vpdq/cpp`, and python-threatexchange's
//! `vpdq` extension for the matcher and the text form).
//!
//! This module is pure computation on frames that are already decoded, so it builds everywhere
//! the crate does (a browser hands it RGB frames); decoding untrusted files is [`crate::video`]'s
//! job. Modules, one job each:
//! - [`hasher`]: the reference's per-frame pipeline (RGB24 -> `f32` luma -> PDQ) and its sampling
//!   by frame count (`frameMod = secondsPerHash * frameRate`);
//! - [`text`]: the reference CLI's lines (`frame,quality,pdqhex,timestamp`) and
//!   python-threatexchange's signal string (a JSON list of `"pdqhex,quality,timestamp"`);
//! - [`matcher`]: the reference comparison (quality filter, de-duplication, distance <= 31, the
//!   two match percentages) and python-threatexchange's two decision policies.

pub mod border;
pub mod hasher;
pub mod matcher;
pub mod text;
pub mod wire;

pub use hasher::{frame_mod, luma_from_rgb24, pdq_from_rgb24, timestamp_of, VpdqHasher};
pub use matcher::{
    compare, match_brute, matched_ranges, MatchPolicy, VpdqComparison, VpdqMatch, VpdqMatchOptions,
};
pub use text::{format_reference, format_signal, parse_reference, parse_signal, VpdqTextError};
pub use wire::{decode_value, encode_values, thin, ListingSampling};

use crate::pdq::PdqHash;

/// One hashed frame of a video.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VpdqFrame {
    /// 0-based index of the frame among all frames the decoder produced (sampled or not), as the
    /// reference numbers them (`codecContext->frame_number - 1`).
    pub frame_number: u64,
    /// PDQ quality of the frame, 0..=100; frames below 50 are noise to the matcher.
    pub quality: u8,
    /// The frame's PDQ hash.
    pub pdq: PdqHash,
    /// Start time of the frame in seconds: `frame_number / frame_rate` in `f32`, as the reference
    /// computes it (not the container's presentation timestamp; see
    /// [`hasher::timestamp_of`]).
    pub timestamp_s: f64,
}

/// How frames are sampled and prepared before hashing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VpdqOptions {
    /// Seconds between hashed frames: every `frame_mod(seconds_per_hash, frame_rate)`-th frame is
    /// hashed. 1.0 (python-threatexchange's default) hashes one frame per second; 0.0 hashes
    /// every frame, as the reference sample hashes were made.
    pub seconds_per_hash: f64,
    /// Scale every frame to this width and height before hashing (the reference CLI's
    /// `-d 128x128`-style downsampling, with `SWS_AREA`); `None` hashes frames at their size.
    pub downscale: Option<(u32, u32)>,
    /// Hash each frame that has letterbox or pillarbox bars without them
    /// ([`border`]); `false` (the reference's way) in every constant here.
    pub trim_borders: bool,
}

impl VpdqOptions {
    /// One hash per second at full resolution: python-threatexchange's `VideoVPDQSignal`.
    pub const PYTX_DEFAULT: VpdqOptions = VpdqOptions {
        seconds_per_hash: 1.0,
        downscale: None,
        trim_borders: false,
    };

    /// Every frame at full resolution: how `vpdq/sample-hashes/NAME.txt` were made.
    pub const EVERY_FRAME: VpdqOptions = VpdqOptions {
        seconds_per_hash: 0.0,
        downscale: None,
        trim_borders: false,
    };

    /// Every frame scaled to 128x128: how `vpdq/sample-hashes/NAME-128x128.txt` were made.
    pub const EVERY_FRAME_128: VpdqOptions = VpdqOptions {
        seconds_per_hash: 0.0,
        downscale: Some((128, 128)),
        trim_borders: false,
    };
}

impl Default for VpdqOptions {
    fn default() -> Self {
        Self::PYTX_DEFAULT
    }
}
