//! Why a video was refused ([`VideoError`]) and which of three kinds of refusal it is.
//!
//! Messages name the limit, the value found and, for decoder failures, the decoder's own first
//! error line (ffmpeg prints no input bytes in them), so they are safe to return and to log.

use thiserror::Error;

/// The three kinds of refusal, for mapping to a protocol status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoErrorKind {
    /// The bytes are not a usable video (truncated, corrupt, not a video, unsupported):
    /// `INVALID_ARGUMENT`. Retrying the same bytes will fail the same way.
    InvalidInput,
    /// The video may be fine but exceeds a configured limit (size, length, dimensions, frame
    /// count, time, memory): `RESOURCE_EXHAUSTED`.
    OverLimit,
    /// The decoder could not be run at all (not installed, not executable): `UNAVAILABLE` /
    /// `FAILED_PRECONDITION`; the node's configuration is at fault, not the upload.
    DecoderUnavailable,
}

/// A video could not be hashed. Every variant is a refusal of the input or a missing decoder,
/// never a panic or an unbounded wait.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VideoError {
    /// Zero bytes were given.
    #[error("video is empty (0 bytes)")]
    Empty,
    /// The container format is not one the decoder recognises or is allowed to read.
    #[error("not a supported video: {detail}")]
    NotAVideo {
        /// What the decoder said (first error line) or what was missing.
        detail: String,
    },
    /// The container or a frame is broken: truncated, corrupt, or crashed the decoder.
    #[error("corrupt or truncated video: {detail}")]
    Corrupt {
        /// What the decoder said, or what went wrong.
        detail: String,
    },
    /// The video stream declares no usable frame rate (the reference refuses these too).
    #[error("video declares no frame rate (avg_frame_rate {avg:?}, r_frame_rate {r:?})")]
    NoFrameRate {
        /// `avg_frame_rate` as reported.
        avg: String,
        /// `r_frame_rate` as reported.
        r: String,
    },
    /// Frames to hash are smaller than PDQ's 5x5 minimum (the reference refuses these too).
    #[error("video frames are {width}x{height}, smaller than the 5x5 PDQ can hash")]
    TooSmall {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
    /// More bytes than [`crate::video::VideoLimits::max_input_bytes`].
    #[error("video is {len} bytes, more than the limit of {max} bytes")]
    TooManyBytes {
        /// Bytes given.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// Longer than [`crate::video::VideoLimits::max_duration_s`], by the container's declared
    /// duration or by the frames decoded so far.
    #[error("video lasts {seconds:.1} s or more, more than the limit of {max:.1} s")]
    TooLong {
        /// Duration found (declared, or reached while decoding).
        seconds: f64,
        /// The configured limit.
        max: f64,
    },
    /// Frames larger than the configured width, height or pixel count.
    #[error(
        "video frames are {width}x{height}, more than the limit of {max_width}x{max_height} \
         and {max_pixels} pixels"
    )]
    TooLarge {
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
        /// The configured width limit.
        max_width: u32,
        /// The configured height limit.
        max_height: u32,
        /// The configured pixel-count limit.
        max_pixels: u64,
    },
    /// More frames than [`crate::video::VideoLimits::max_frames`], declared or decoded.
    #[error("video has {frames} frames or more, more than the limit of {max}")]
    TooManyFrames {
        /// Frames found (declared, or reached while decoding).
        frames: u64,
        /// The configured limit.
        max: u64,
    },
    /// Probing and decoding took longer than [`crate::video::VideoLimits::deadline`]; the
    /// decoder was killed.
    #[error("decoding took longer than the limit of {seconds:.1} s and was stopped")]
    Deadline {
        /// The configured limit in seconds.
        seconds: f64,
    },
    /// The decoder used more CPU time than [`crate::video::VideoLimits::cpu_seconds`].
    #[error("decoding used more than the limit of {seconds} s of CPU time and was stopped")]
    CpuTime {
        /// The configured limit.
        seconds: u64,
    },
    /// The decoder ran out of its address-space limit
    /// ([`crate::video::VideoLimits::address_space_bytes`]).
    #[error("decoding needed more than the limit of {limit_bytes} bytes of memory: {detail}")]
    OutOfMemory {
        /// The configured limit.
        limit_bytes: u64,
        /// What the decoder said.
        detail: String,
    },
    /// The decoder program could not be started.
    #[error("video decoder {program} is unavailable: {detail}")]
    DecoderUnavailable {
        /// The program that could not run.
        program: String,
        /// Why.
        detail: String,
    },
}

impl VideoError {
    /// Which kind of refusal this is.
    pub fn kind(&self) -> VideoErrorKind {
        use VideoError::*;
        match self {
            Empty | NotAVideo { .. } | Corrupt { .. } | NoFrameRate { .. } | TooSmall { .. } => {
                VideoErrorKind::InvalidInput
            }
            TooManyBytes { .. }
            | TooLong { .. }
            | TooLarge { .. }
            | TooManyFrames { .. }
            | Deadline { .. }
            | CpuTime { .. }
            | OutOfMemory { .. } => VideoErrorKind::OverLimit,
            DecoderUnavailable { .. } => VideoErrorKind::DecoderUnavailable,
        }
    }
}
