//! Why an image was refused ([`HashError`]). (Hash values and signal-type names are refused with
//! `redline_proto::signal::SignalError`.)
//!
//! Messages name what is wrong (the limit, the size found, the format) and never contain image
//! bytes, so they are safe to return to a client and to log.

use thiserror::Error;

/// An image could not be hashed. Every variant is a refusal of the input, never a bug: hostile or
/// broken uploads end here instead of in a panic or an unbounded allocation.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HashError {
    /// A video signal type was asked of an image hasher.
    #[error("{0} is computed from videos, not images")]
    VideoType(crate::SignalType),
    /// Zero bytes were given.
    #[error("image is empty (0 bytes)")]
    Empty,
    /// The encoded image is larger than [`crate::DecodeLimits::max_encoded_bytes`].
    #[error("image is {len} bytes, more than the limit of {max} bytes")]
    TooManyBytes {
        /// Bytes given.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The bytes do not start like any image format this crate can read.
    #[error("not a recognised image format (first bytes match no known signature)")]
    UnknownFormat,
    /// The format is recognised but not in [`crate::DecodeLimits::formats`].
    #[error("image format {format} is not allowed (allowed: {allowed})")]
    FormatNotAllowed {
        /// The detected format.
        format: String,
        /// The allowed formats, comma separated.
        allowed: String,
    },
    /// The header declares a zero width or height.
    #[error("image has a zero dimension ({width}x{height})")]
    ZeroSize {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// The declared width is above [`crate::DecodeLimits::max_width`].
    #[error("image width {width} is above the limit of {max}")]
    TooWide {
        /// Declared width.
        width: u32,
        /// The configured limit.
        max: u32,
    },
    /// The declared height is above [`crate::DecodeLimits::max_height`].
    #[error("image height {height} is above the limit of {max}")]
    TooTall {
        /// Declared height.
        height: u32,
        /// The configured limit.
        max: u32,
    },
    /// The declared pixel count is above [`crate::DecodeLimits::max_pixels`].
    #[error("image has {pixels} pixels ({width}x{height}), above the limit of {max}")]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// `width * height`.
        pixels: u64,
        /// The configured limit.
        max: u64,
    },
    /// The data ends before the image does.
    #[error("image data is truncated: {0}")]
    Truncated(String),
    /// The header could not be read.
    #[error("image header is unreadable: {0}")]
    BadHeader(String),
    /// The data is damaged or inconsistent.
    #[error("image data is corrupt: {0}")]
    Corrupt(String),
    /// The decoder would need more memory than [`crate::DecodeLimits::max_alloc_bytes`] allows.
    #[error("decoding would exceed the memory limit: {0}")]
    MemoryLimit(String),
    /// A valid image using a feature the decoder does not support (e.g. an exotic colour type).
    #[error("image uses an unsupported feature: {0}")]
    Unsupported(String),
}
