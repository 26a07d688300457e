//! Image hashing for Redline: PDQ, the img_hash family (pHash, dHash, aHash, blockhash), and
//! MD5/SHA-256 of the exact bytes, with strict limits for hostile uploads.
//!
//! The server hashes uploaded images with [`hash_image`] (decode once, every requested type) and
//! validates hashes received as text with [`SignalType`]; the index compares them with
//! [`hamming_distance`]. Image bytes are never stored or logged here.
//!
//! Signal types and [`hamming_distance`] are protocol, defined once in `redline_proto::signal`
//! and re-exported here. Modules, one job each: [`decode`] (limits and decoding),
//! [`pdq`] (PDQ from the reference algorithm), [`dihedral`] (PDQ's eight rotations/flips),
//! [`family`] (img_hash family configurations), [`exact`] (MD5/SHA-256).

pub mod decode;
pub mod dihedral;
mod downscale;
mod error;
pub mod exact;
pub mod family;
mod jpeg;
pub mod pdq;
pub mod video;
#[cfg(all(feature = "ffmpeg", target_os = "linux"))]
pub mod video_signals;
pub mod vpdq;

pub use decode::{decode_image, probe, DecodeLimits, ImageInfo};
pub use dihedral::Dihedral;
pub use error::HashError;
pub use pdq::{
    pdq_dihedral_from_image, pdq_dihedral_from_luma, pdq_from_image, pdq_from_luma, Pdq,
    PdqDihedral, PdqHash,
};
pub use redline_proto::signal::{self, hamming_distance, SignalError, SignalType};
#[cfg(all(feature = "ffmpeg", target_os = "linux"))]
pub use video::{hash_video, FfmpegTools, VideoDecoder};
pub use video::{
    video_md5, video_sha256, VideoError, VideoErrorKind, VideoInfo, VideoLimits, VpdqVideo,
};
#[cfg(all(feature = "ffmpeg", target_os = "linux"))]
pub use video_signals::{looks_like_video, video_signals, VideoPurpose};
pub use vpdq::{VpdqFrame, VpdqOptions};

/// One hash computed from an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputedSignal {
    /// Which kind of hash.
    pub signal_type: SignalType,
    /// The hash, `signal_type.byte_len()` bytes, in the order of its hex text.
    pub bytes: Vec<u8>,
    /// PDQ's quality (0..=100) for `pdq`, `None` for other types.
    pub quality: Option<u8>,
}

impl ComputedSignal {
    /// Canonical lowercase hex of the hash.
    pub fn hex(&self) -> String {
        signal::to_hex(&self.bytes)
    }
}

/// Hashes an untrusted encoded image under every requested signal type, decoding it at most once.
///
/// Results come in the order of `types` (a type listed twice is computed once and reported once).
/// If only `md5`/`sha256` are requested, the pixels are not decoded, but the size, format and
/// header dimensions are still checked, so the same uploads are refused whatever is asked.
/// Stored pixels are hashed: EXIF orientation is not applied (see [`pdq`]).
pub fn hash_image(
    bytes: &[u8],
    limits: &DecodeLimits,
    types: &[SignalType],
) -> Result<Vec<ComputedSignal>, HashError> {
    Ok(hash_image_with_dihedral(bytes, limits, types, false)?.signals)
}

/// Everything computed from one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageHashes {
    /// One per requested type, in request order.
    pub signals: Vec<ComputedSignal>,
    /// PDQ's eight rotations/flips, when asked for (their `Original` is the `pdq` signal).
    pub pdq_dihedral: Option<PdqDihedral>,
}

/// Like [`hash_image`], and with `dihedral` also PDQ's eight rotations/flips from the same
/// decode and the same DCT pass (for matching rotated or mirrored re-uploads).
pub fn hash_image_with_dihedral(
    bytes: &[u8],
    limits: &DecodeLimits,
    types: &[SignalType],
    dihedral: bool,
) -> Result<ImageHashes, HashError> {
    let mut wanted: Vec<SignalType> = Vec::with_capacity(types.len());
    if let Some(&t) = types.iter().find(|t| t.is_video()) {
        return Err(HashError::VideoType(t));
    }
    for t in types {
        if !wanted.contains(t) {
            wanted.push(*t);
        }
    }
    let img = if dihedral || wanted.iter().any(|t| t.needs_pixels()) {
        Some(decode_image(bytes, limits)?)
    } else {
        probe(bytes, limits)?;
        None
    };
    let pdq_dihedral = match (&img, dihedral) {
        (Some(img), true) => Some(pdq_dihedral_from_image(img)),
        _ => None,
    };
    let signals = wanted
        .into_iter()
        .map(|signal_type| {
            let (bytes, quality) = match (signal_type, &img) {
                (SignalType::Md5, _) => (exact::md5(bytes).to_vec(), None),
                (SignalType::Sha256, _) => (exact::sha256(bytes).to_vec(), None),
                (SignalType::Pdq, Some(img)) => match &pdq_dihedral {
                    Some(d) => (d.get(Dihedral::Original).0.to_vec(), Some(d.quality)),
                    None => {
                        let p = pdq_from_image(img);
                        (p.hash.0.to_vec(), Some(p.quality))
                    }
                },
                (t, Some(img)) => (family::family_hash(t, img).expect("family type"), None),
                (_, None) => {
                    unreachable!("pixels are decoded whenever a perceptual type is requested")
                }
            };
            ComputedSignal {
                signal_type,
                bytes,
                quality,
            }
        })
        .collect();
    Ok(ImageHashes {
        signals,
        pdq_dihedral,
    })
}
