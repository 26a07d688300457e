//! The signals of a video file, as a node (or `redline hash`) lists or queries it: vPDQ frame
//! lists and the file's `video_md5` / `video_sha256`, as [`ComputedSignal`]s like an image's.
//!
//! Listing and querying sample differently on purpose (see [`ListingSampling`]): the listed
//! video is hashed densely and thinned, the query once a second as python-threatexchange does,
//! so that a clip cut anywhere from a listed video still lands its frames on listed ones. Both
//! sides also hash frames without letterbox/pillarbox bars ([`crate::vpdq::border`]): a query
//! frame with bars is hashed trimmed, and a listing keeps both forms of such frames.

use crate::signal::SignalType;
use crate::video::{video_md5, video_sha256, VideoError, VideoLimits};
use crate::vpdq::{encode_values, thin, ListingSampling, VpdqOptions};
use crate::ComputedSignal;

/// A listing's thinned frames with, interleaved by time, the thinned frames hashed without bars
/// where a frame had bars (its trimmed hash differs from its plain one). So a listed
/// letterboxed video matches queries of the same video (trimmed, as queries are) and of its
/// copies with other bars or none, and its plain frames still match what pytx and HMA compute.
fn with_trimmed(
    kept: Vec<crate::VpdqFrame>,
    plain: &[crate::VpdqFrame],
    trimmed: Vec<crate::VpdqFrame>,
    thin_within: u32,
) -> Vec<crate::VpdqFrame> {
    let barred: Vec<crate::VpdqFrame> = trimmed
        .into_iter()
        .zip(plain)
        .filter(|(t, p)| t.pdq != p.pdq)
        .map(|(t, _)| t)
        .collect();
    if barred.is_empty() {
        return kept;
    }
    let mut out: Vec<crate::VpdqFrame> =
        kept.into_iter().chain(thin(&barred, thin_within)).collect();
    out.sort_by(|a, b| a.timestamp_s.total_cmp(&b.timestamp_s));
    out
}

/// Whether `bytes` start like a video container the decoder accepts (MP4/MOV, Matroska/WebM,
/// AVI, FLV, Ogg, ASF, IVF, Y4M, MPEG-TS), so a tool can route a file to the video hasher
/// rather than the image decoder. A guess from the first bytes; the decoder decides.
pub fn looks_like_video(bytes: &[u8]) -> bool {
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    at(4, b"ftyp")
        || at(0, &[0x1a, 0x45, 0xdf, 0xa3])
        || (at(0, b"RIFF") && at(8, b"AVI "))
        || at(0, b"FLV")
        || at(0, b"OggS")
        || at(0, &[0x30, 0x26, 0xb2, 0x75])
        || at(0, b"DKIF")
        || at(0, b"YUV4MPEG2")
        || (at(0, &[0x47]) && at(188, &[0x47]))
}

/// What the signals are for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VideoPurpose {
    /// Adding the video to a list: dense, thinned sampling.
    Listing(ListingSampling),
    /// Looking the video up: python-threatexchange's 1 frame a second.
    Query,
}

/// The vPDQ values (consecutive parts of at most 1,200 frames each; one for any video a
/// query's limits allow) and then `video_md5` and `video_sha256` of `bytes`, decoded under
/// `limits` in the sandboxed decoder.
pub fn video_signals(
    bytes: &[u8],
    limits: &VideoLimits,
    purpose: VideoPurpose,
) -> Result<Vec<ComputedSignal>, VideoError> {
    let frames = match purpose {
        VideoPurpose::Listing(sampling) => {
            let mut options = VpdqOptions {
                seconds_per_hash: sampling.seconds_per_hash,
                downscale: None,
                trim_borders: false,
            };
            let plain = crate::video::hash_video(bytes, limits, &options)?;
            options.trim_borders = true;
            let trimmed = crate::video::hash_video(bytes, limits, &options)?;
            with_trimmed(
                thin(&plain, sampling.thin_within),
                &plain,
                trimmed,
                sampling.thin_within,
            )
        }
        VideoPurpose::Query => {
            let options = VpdqOptions {
                trim_borders: true,
                ..VpdqOptions::PYTX_DEFAULT
            };
            crate::video::hash_video(bytes, limits, &options)?
        }
    };
    let mut out: Vec<ComputedSignal> = encode_values(&frames)
        .into_iter()
        .map(|value| ComputedSignal {
            signal_type: SignalType::Vpdq,
            bytes: value,
            quality: None,
        })
        .collect();
    if out.is_empty() {
        return Err(VideoError::Corrupt {
            detail: "no frame was decoded".into(),
        });
    }
    out.push(ComputedSignal {
        signal_type: SignalType::VideoMd5,
        bytes: video_md5(bytes).to_vec(),
        quality: None,
    });
    out.push(ComputedSignal {
        signal_type: SignalType::VideoSha256,
        bytes: video_sha256(bytes).to_vec(),
        quality: None,
    });
    Ok(out)
}
