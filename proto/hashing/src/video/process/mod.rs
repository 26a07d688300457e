//! vPDQ of untrusted video bytes through sandboxed `ffprobe` and `ffmpeg` processes (see the
//! parent module for the sandbox). Modules: `sandbox` (one limited process), `probe` (header
//! fields), `classify` (failure -> [`VideoError`]).
//!
//! Decoding follows the reference's `filehasher.cpp`: the first video stream, every decoded
//! frame counted (`-fps_mode passthrough`: no frame dropped or duplicated to a constant rate),
//! no display-matrix rotation (`-noautorotate`), converted to RGB24 by swscale with `SWS_AREA`
//! at the stream's size or the requested one. Unlike the reference, a decoding error ends the
//! run (`-xerror`): the reference silently hashes the frames before a truncation, which would
//! list half a video as if it were whole.
//!
//! Unsampled frames are dropped inside ffmpeg (`select`) rather than converted and piped, so
//! 1 hash/s costs a thirtieth of the conversion; one extra "sentinel" frame — the first one past
//! the frame or duration limit — is always passed, so those limits are enforced on what is
//! decoded whatever the sampling.

mod classify;
mod probe;
mod sandbox;

use std::io::{ErrorKind, Read};
use std::time::Instant;

pub use sandbox::FfmpegTools;
use sandbox::{Running, SealedInput};

use crate::pdq::PDQ_MIN_DIM;
use crate::video::{VideoError, VideoInfo, VideoLimits, VpdqVideo};
use crate::vpdq::{frame_mod, VpdqFrame, VpdqHasher, VpdqOptions};

/// Containers ffmpeg may open (`-format_whitelist`): what phones, cameras, browsers and
/// messengers produce, plus Y4M. No playlists (`hls`, `dash`), no `concat`, no image sequences,
/// no raw elementary streams: those open other URLs, loop, or guess formats from content.
const FORMATS: &str = "mov,matroska,webm,avi,flv,mpegts,mpeg,ogg,asf,gif,ivf,yuv4mpegpipe";

/// Decoders ffmpeg may run (`-codec_whitelist`): video codecs found in those containers. Audio
/// is never decoded (`-map 0:v:0 -an`).
const CODECS: &str = "h264,hevc,vp8,vp9,av1,libdav1d,mpeg4,mpeg1video,mpeg2video,h263,flv,mjpeg,\
theora,wmv1,wmv2,wmv3,vc1,prores,gif,rawvideo";

/// The input as the child sees it: its stdin (the sealed memfd), opened by path so it can seek.
const INPUT: &str = "file:/proc/self/fd/0";

/// Largest `ffprobe` output read (a few hundred bytes in practice).
const PROBE_OUTPUT_MAX: u64 = 1 << 20;

fn common_args() -> Vec<String> {
    [
        "-hide_banner",
        "-loglevel",
        "error",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        FORMATS,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Decodes and hashes untrusted videos with one set of tools and limits.
#[derive(Debug, Clone, Default)]
pub struct VideoDecoder {
    /// Where `ffmpeg`, `ffprobe` and `prlimit` are.
    pub tools: FfmpegTools,
    /// Limits applied to every video.
    pub limits: VideoLimits,
}

impl VideoDecoder {
    /// A decoder with these tools and limits.
    pub fn new(tools: FfmpegTools, limits: VideoLimits) -> VideoDecoder {
        VideoDecoder { tools, limits }
    }

    /// Reads and checks the header only (no frame is decoded into the parent).
    pub fn probe(&self, bytes: &[u8]) -> Result<VideoInfo, VideoError> {
        let deadline = Instant::now() + self.limits.deadline;
        self.limits.check_bytes(bytes.len())?;
        let input = sealed(bytes)?;
        self.probe_sealed(&input, deadline)
    }

    fn probe_sealed(
        &self,
        input: &SealedInput,
        deadline: Instant,
    ) -> Result<VideoInfo, VideoError> {
        let mut args = common_args();
        args.extend(
            [
                "-select_streams",
                "v:0",
                "-show_entries",
                probe::SHOW_ENTRIES,
                "-of",
                "json",
                "-i",
                INPUT,
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let mut run = Running::spawn(
            &self.tools,
            &self.tools.ffprobe,
            &args,
            input,
            &self.limits,
            deadline,
        )?;
        let mut json = String::new();
        let read = run
            .stdout()
            .take(PROBE_OUTPUT_MAX)
            .read_to_string(&mut json);
        let outcome = run.finish()?;
        if !outcome.success() {
            return Err(classify::failure(&outcome, &self.limits));
        }
        read.map_err(|e| VideoError::Corrupt {
            detail: format!("unreadable probe output: {e}"),
        })?;
        let info = probe::parse(&json)?;
        self.limits.check_info(&info)?;
        Ok(info)
    }

    /// vPDQ of an untrusted video: probe and check the header, then decode in a limited
    /// process and hash the sampled frames as the reference does.
    pub fn hash(&self, bytes: &[u8], options: &VpdqOptions) -> Result<VpdqVideo, VideoError> {
        let deadline = Instant::now() + self.limits.deadline;
        self.limits.check_bytes(bytes.len())?;
        let input = sealed(bytes)?;
        let info = self.probe_sealed(&input, deadline)?;
        let (width, height) = options.downscale.unwrap_or((info.width, info.height));
        if (width as usize) < PDQ_MIN_DIM || (height as usize) < PDQ_MIN_DIM {
            return Err(VideoError::TooSmall { width, height });
        }
        self.limits
            .check_dimensions(u64::from(width), u64::from(height))?;
        let frames = self.decode(&input, &info, width, height, options, deadline)?;
        Ok(VpdqVideo { info, frames })
    }

    fn decode(
        &self,
        input: &SealedInput,
        info: &VideoInfo,
        width: u32,
        height: u32,
        options: &VpdqOptions,
        deadline: Instant,
    ) -> Result<Vec<VpdqFrame>, VideoError> {
        let limits = &self.limits;
        let step = frame_mod(options.seconds_per_hash, info.frame_rate);
        // The first frame number past a limit: decoded frames 0..sentinel are acceptable.
        let past_duration = (limits.max_duration_s * info.frame_rate).floor() + 1.0;
        let past_duration = if past_duration.is_finite() && past_duration >= 0.0 {
            past_duration as u64
        } else {
            u64::MAX
        };
        let sentinel = limits.max_frames.min(past_duration);
        let mut filters = Vec::new();
        if step > 1 {
            filters.push(format!("select='not(mod(n\\,{step}))+eq(n\\,{sentinel})'"));
        }
        filters.push(format!("scale={width}:{height}:flags=area"));
        let threads = limits.decoder_threads.max(1).to_string();
        let mut args = common_args();
        args.extend(
            [
                "-nostdin",
                "-nostats",
                "-xerror",
                "-codec_whitelist",
                CODECS,
                "-threads",
                &threads,
                "-noautorotate",
                "-i",
                INPUT,
                "-map",
                "0:v:0",
                "-an",
                "-sn",
                "-dn",
                "-fps_mode",
                "passthrough",
                "-filter_threads",
                "1",
                "-vf",
                &filters.join(","),
                "-pix_fmt",
                "rgb24",
                "-f",
                "rawvideo",
                "pipe:1",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let mut run = Running::spawn(
            &self.tools,
            &self.tools.ffmpeg,
            &args,
            input,
            limits,
            deadline,
        )?;
        let (w, h) = (width as usize, height as usize);
        // ffmpeg converts the next frame while this one is hashed (on another CPU) only if the
        // pipe can hold it.
        run.grow_stdout_pipe(3 * w * h);
        let mut rgb = vec![0u8; 3 * w * h];
        let mut hasher = VpdqHasher::new(info.frame_rate, options.seconds_per_hash)
            .expect("probe checked the frame rate")
            .with_border_trim(options.trim_borders);
        let mut numbers = Numbering::new(step, sentinel);
        let mut frames = Vec::new();
        let mut stopped: Option<VideoError> = None;
        loop {
            match read_frame(run.stdout(), &mut rgb) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    stopped = Some(e);
                    break;
                }
            }
            let n = numbers.next();
            if n >= sentinel {
                stopped = Some(if n >= limits.max_frames {
                    VideoError::TooManyFrames {
                        frames: n + 1,
                        max: limits.max_frames,
                    }
                } else {
                    VideoError::TooLong {
                        seconds: n as f64 / info.frame_rate,
                        max: limits.max_duration_s,
                    }
                });
                break;
            }
            frames.push(hasher.hash_frame(n, &rgb, w, h));
        }
        if stopped.is_some() {
            run.kill();
        }
        let outcome = run.finish()?;
        if outcome.timed_out {
            return Err(classify::failure(&outcome, limits));
        }
        if let Some(e) = stopped {
            return Err(e);
        }
        if !outcome.success() {
            return Err(classify::failure(&outcome, limits));
        }
        if frames.is_empty() {
            return Err(VideoError::Corrupt {
                detail: "no frame could be decoded".into(),
            });
        }
        Ok(frames)
    }
}

/// Frame numbers of the frames ffmpeg passes: multiples of `step`, and the sentinel in order.
#[derive(Debug)]
struct Numbering {
    step: u64,
    sentinel: u64,
    next_multiple: u64,
    sentinel_done: bool,
}

impl Numbering {
    fn new(step: u64, sentinel: u64) -> Numbering {
        Numbering {
            step,
            sentinel,
            next_multiple: 0,
            sentinel_done: false,
        }
    }

    fn next(&mut self) -> u64 {
        if !self.sentinel_done && self.sentinel < self.next_multiple {
            self.sentinel_done = true;
            return self.sentinel;
        }
        let n = self.next_multiple;
        if n == self.sentinel {
            self.sentinel_done = true;
        }
        self.next_multiple = self.next_multiple.saturating_add(self.step);
        n
    }
}

/// Reads exactly one frame; `Ok(false)` at a clean end of stream. A stream that ends inside a
/// frame is corrupt output (the frame size is fixed by the scale filter).
fn read_frame(out: &mut impl Read, buf: &mut [u8]) -> Result<bool, VideoError> {
    let mut filled = 0;
    while filled < buf.len() {
        match out.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(VideoError::Corrupt {
                    detail: format!(
                        "decoder output ended {filled} bytes into a {}-byte frame",
                        buf.len()
                    ),
                })
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(VideoError::Corrupt {
                    detail: format!("reading decoder output failed: {e}"),
                })
            }
        }
    }
    Ok(true)
}

fn sealed(bytes: &[u8]) -> Result<SealedInput, VideoError> {
    SealedInput::new(bytes).map_err(|e| VideoError::DecoderUnavailable {
        program: "memfd".into(),
        detail: format!("cannot hold the video in sealed memory: {e}"),
    })
}

/// vPDQ of an untrusted video with the tools on `PATH` (see [`FfmpegTools::from_env`]).
pub fn hash_video(
    bytes: &[u8],
    limits: &VideoLimits,
    options: &VpdqOptions,
) -> Result<Vec<VpdqFrame>, VideoError> {
    let decoder = VideoDecoder::new(FfmpegTools::from_env(), limits.clone());
    Ok(decoder.hash(bytes, options)?.frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_interleaves_the_sentinel() {
        let mut n = Numbering::new(30, 45);
        let got: Vec<u64> = (0..4).map(|_| n.next()).collect();
        assert_eq!(got, [0, 30, 45, 60]);
        let mut n = Numbering::new(30, 60);
        let got: Vec<u64> = (0..4).map(|_| n.next()).collect();
        assert_eq!(got, [0, 30, 60, 90]);
        let mut n = Numbering::new(1, 3);
        let got: Vec<u64> = (0..5).map(|_| n.next()).collect();
        assert_eq!(got, [0, 1, 2, 3, 4]);
    }
}
