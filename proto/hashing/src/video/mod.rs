//! Hashing untrusted video: exact hashes of the bytes, and vPDQ through a sandboxed decoder.
//!
//! Video containers and codecs are the largest attack surface a node has, so decoding never
//! happens in the node's process. With the `ffmpeg` feature (default) on Linux, [`hash_video`]
//! runs Debian's `ffprobe` and `ffmpeg` as child processes (module `process`):
//!
//! - **No file, no network.** The bytes go into a sealed `memfd` (anonymous memory, never a path
//!   on a filesystem) that becomes the child's stdin; the child reads it as `file:/dev/stdin`.
//!   A pipe would do for most files, but an MP4 whose `moov` index comes after the media (what
//!   phones and ffmpeg write by default) cannot be read without seeking, and a pipe cannot seek.
//!   Only the `file` protocol is allowed (`-protocol_whitelist file`), only common video
//!   containers (`-format_whitelist`, which also shuts out playlist and concat demuxers that
//!   open other URLs or loop forever), and for decoding only video codecs
//!   (`-codec_whitelist`). Frames come back as raw `rgb24` on stdout, one at a time.
//! - **Resource limits without `unsafe`.** util-linux `prlimit` sets the child's CPU time,
//!   address space, open files, `fsize=0` (no file can be written) and `core=0` (no core dump
//!   that would hold video bytes); a watchdog thread kills the child at the wall-clock deadline;
//!   ffmpeg runs with [`VideoLimits::decoder_threads`] decoding threads and one filter thread.
//! - **Limits before and during decoding.** `ffprobe` reads the header (same sandbox) and the
//!   declared size, duration and frame count are checked before any frame is decoded; while
//!   decoding, every frame is counted and its timestamp checked, so a header that lies does not
//!   help. The parent holds one frame at a time.
//!
//! [`VideoLimits`] and [`VideoError`] exist everywhere (wasm32 too); the browser decodes frames
//! itself and hands them to [`crate::vpdq::VpdqHasher`].

mod error;
#[cfg(all(feature = "ffmpeg", target_os = "linux"))]
mod process;

use std::time::Duration;

pub use error::{VideoError, VideoErrorKind};
#[cfg(all(feature = "ffmpeg", target_os = "linux"))]
pub use process::{hash_video, FfmpegTools, VideoDecoder};

use crate::vpdq::VpdqFrame;

/// Limits for one untrusted video. Every limit is checked against the container's header before
/// decoding and again against what is actually decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoLimits {
    /// Largest upload, in bytes. Default 256 MiB: ten minutes of 1080p at a phone's 3 Mbit/s
    /// is about 225 MB. The parent holds the bytes and one sealed in-memory copy for the decoder.
    pub max_input_bytes: usize,
    /// Longest video, in seconds. Default 900 (15 minutes): longer than the clips hash lists
    /// carry, and at 1 hash/s already more frames than one log entry holds; an hour-long
    /// video is refused rather than decoded for minutes.
    pub max_duration_s: f64,
    /// Widest frame. Default 4096 (DCI 4K; a portrait 4K phone video is 2160 wide).
    pub max_width: u32,
    /// Tallest frame. Default 4096 (a portrait 4K phone video is 3840 tall).
    pub max_height: u32,
    /// Most pixels per frame. Default 3840x2160 (4K UHD): one RGB frame is then 25 MB in the
    /// parent and the decoder stays within [`VideoLimits::address_space_bytes`].
    pub max_pixels: u64,
    /// Most frames decoded. Default 54,000 (15 minutes at 60 fps): bounds decoding work when a
    /// header understates the duration or claims a tiny frame rate.
    pub max_frames: u64,
    /// Wall-clock budget for probing and decoding together; the decoder is killed after it.
    /// Default 120 s: single-threaded ffmpeg decodes and converts 1080p H.264 at several times
    /// real time, so a 15-minute upload fits, and a worker is never held longer.
    pub deadline: Duration,
    /// CPU seconds each decoder process may use (`prlimit --cpu`), all its threads together.
    /// Default 120, the deadline: the work one decoding thread can do before the deadline, so
    /// more [`VideoLimits::decoder_threads`] shorten the wait for a video but do not buy it
    /// more work.
    pub cpu_seconds: u64,
    /// Address space of each decoder process (`prlimit --as`). Default 1 GiB: ffmpeg with its
    /// libraries maps about 350 MB to decode 720p H.264, and 4K frames with their reference
    /// frames need a few hundred MB more.
    pub address_space_bytes: u64,
    /// Open files of each decoder process (`prlimit --nofile`). Default 32: ffmpeg needs about
    /// ten (its libraries, stdio, the input).
    pub max_open_files: u64,
    /// Decoding threads per video (ffmpeg `-threads`: frame threading for H.264, HEVC, VP9,
    /// AV1...; the decoded frames, and so the hashes, are the same for any count). Default: the
    /// CPUs this process may run on, at most 4, so one upload is hashed in about half the time
    /// on two cores; 1 where only one CPU is available. 4K H.264 on 4 threads fits the default
    /// address space. 0 is taken as 1.
    pub decoder_threads: u32,
}

impl Default for VideoLimits {
    fn default() -> Self {
        VideoLimits {
            max_input_bytes: 256 << 20,
            max_duration_s: 900.0,
            max_width: 4096,
            max_height: 4096,
            max_pixels: 3840 * 2160,
            max_frames: 54_000,
            deadline: Duration::from_secs(120),
            cpu_seconds: 120,
            address_space_bytes: 1 << 30,
            max_open_files: 32,
            decoder_threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get().min(4) as u32),
        }
    }
}

/// What the container header says about the video stream that is hashed (the first one, as the
/// reference picks it).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Container format as the decoder names it (e.g. `mov,mp4,m4a,3gp,3g2,mj2`).
    pub format: String,
    /// Codec of the stream (e.g. `h264`).
    pub codec: String,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second used for sampling and timestamps: `avg_frame_rate`, else
    /// `r_frame_rate`, as the reference reads it.
    pub frame_rate: f64,
    /// Declared duration in seconds (stream or container), when the header has one.
    pub duration_s: Option<f64>,
    /// Declared number of frames, when the header has one.
    pub declared_frames: Option<u64>,
}

/// A hashed video.
#[derive(Debug, Clone, PartialEq)]
pub struct VpdqVideo {
    /// What the header declared.
    pub info: VideoInfo,
    /// Hashed frames in frame order.
    pub frames: Vec<VpdqFrame>,
}

/// python-threatexchange's `video_md5`: MD5 of the file's bytes (StopNCII's `VideoMD5`).
pub fn video_md5(bytes: &[u8]) -> [u8; 16] {
    crate::exact::md5(bytes)
}

/// SHA-256 of the file's bytes (python-threatexchange's `video_sha256`).
pub fn video_sha256(bytes: &[u8]) -> [u8; 32] {
    crate::exact::sha256(bytes)
}

impl VideoLimits {
    /// Checks the input size before anything is started.
    pub fn check_bytes(&self, len: usize) -> Result<(), VideoError> {
        if len == 0 {
            return Err(VideoError::Empty);
        }
        if len > self.max_input_bytes {
            return Err(VideoError::TooManyBytes {
                len,
                max: self.max_input_bytes,
            });
        }
        Ok(())
    }

    /// Checks frame dimensions (declared, or of the frames that will be hashed).
    pub fn check_dimensions(&self, width: u64, height: u64) -> Result<(), VideoError> {
        if width > u64::from(self.max_width)
            || height > u64::from(self.max_height)
            || width.saturating_mul(height) > self.max_pixels
        {
            return Err(VideoError::TooLarge {
                width,
                height,
                max_width: self.max_width,
                max_height: self.max_height,
                max_pixels: self.max_pixels,
            });
        }
        Ok(())
    }

    /// Checks what the header declares, before decoding.
    pub fn check_info(&self, info: &VideoInfo) -> Result<(), VideoError> {
        self.check_dimensions(u64::from(info.width), u64::from(info.height))?;
        if let Some(d) = info.duration_s {
            self.check_time(d)?;
        }
        if let Some(n) = info.declared_frames {
            self.check_frame_count(n)?;
        }
        Ok(())
    }

    /// Checks a duration (declared, or reached while decoding).
    pub fn check_time(&self, seconds: f64) -> Result<(), VideoError> {
        if seconds > self.max_duration_s {
            return Err(VideoError::TooLong {
                seconds,
                max: self.max_duration_s,
            });
        }
        Ok(())
    }

    /// Checks a frame count (declared, or the number of frames decoded so far).
    pub fn check_frame_count(&self, frames: u64) -> Result<(), VideoError> {
        if frames > self.max_frames {
            return Err(VideoError::TooManyFrames {
                frames,
                max: self.max_frames,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_what_they_say() {
        let l = VideoLimits::default();
        assert!(matches!(l.check_bytes(0), Err(VideoError::Empty)));
        assert!(matches!(
            l.check_bytes(l.max_input_bytes + 1),
            Err(VideoError::TooManyBytes { .. })
        ));
        l.check_dimensions(2160, 3840).unwrap();
        let e = l.check_dimensions(100_000, 100_000).unwrap_err();
        assert_eq!(e.kind(), VideoErrorKind::OverLimit);
        assert!(l.check_dimensions(4096, 4096).is_err(), "pixel count");
        assert!(l.check_time(3600.0).is_err());
        assert!(l.check_frame_count(90_000).is_err());
        assert_eq!(
            VideoError::Corrupt { detail: "x".into() }.kind(),
            VideoErrorKind::InvalidInput
        );
    }

    #[test]
    fn exact_hashes_are_of_the_bytes() {
        assert_eq!(
            crate::signal::to_hex(&video_md5(b"abc")),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(video_sha256(b"abc"), crate::exact::sha256(b"abc"));
    }
}
