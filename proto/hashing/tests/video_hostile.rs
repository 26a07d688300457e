//! Hostile videos against the sandboxed decoder: each is refused with the right kind of
//! [`VideoError`] within a stated wall time, and the test process's peak memory (`VmHWM`) grows
//! by less than [`MEMORY_BOUND`] (frames are read one at a time; a decoder that balloons is
//! limited by `prlimit --as` in its own process).
//!
//! Inputs are made at test time by ffmpeg (in a temporary directory that is deleted) or in code.
//! Skips with a message when ffmpeg, ffprobe or prlimit is missing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use redline_hashing::{
    FfmpegTools, VideoDecoder, VideoError, VideoErrorKind, VideoLimits, VpdqOptions,
};

/// Most the test process's peak resident memory may grow while refusing one input.
const MEMORY_BOUND: u64 = 64 << 20;

fn tools() -> Option<FfmpegTools> {
    let tools = FfmpegTools::from_env();
    match tools.check() {
        Ok(()) => Some(tools),
        Err(e) => {
            eprintln!("SKIP: {e} (apt-get install ffmpeg util-linux)");
            None
        }
    }
}

/// Peak resident set of this process, bytes.
fn vm_hwm() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// Runs ffmpeg to make a test input in `dir`, returns its bytes.
fn make(dir: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make {name}");
    std::fs::read(&out).expect("read generated video")
}

/// A small real video: 2 s of a moving test pattern, 160x120 at 30 fps, H.264 in MP4 with
/// its index first (`faststart`) or last (ffmpeg's and most phones' default).
fn small_mp4(dir: &Path, faststart: bool) -> Vec<u8> {
    make(
        dir,
        if faststart { "fast.mp4" } else { "small.mp4" },
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=30:duration=2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            if faststart {
                "+faststart"
            } else {
                "+use_metadata_tags"
            },
        ],
    )
}

/// Hashes `bytes` expecting a refusal; checks the kind, the wall time and the memory bound.
fn refused(
    what: &str,
    decoder: &VideoDecoder,
    bytes: &[u8],
    options: &VpdqOptions,
    kind: VideoErrorKind,
    within: Duration,
) -> VideoError {
    let before = vm_hwm();
    let start = Instant::now();
    let result = decoder.hash(bytes, options);
    let took = start.elapsed();
    let grew = vm_hwm().saturating_sub(before);
    let err = match result {
        Ok(v) => panic!(
            "{what}: hashed {} frames instead of refusing",
            v.frames.len()
        ),
        Err(e) => e,
    };
    eprintln!(
        "{what}: {} bytes refused in {:.3} s, peak memory +{} KiB: {err}",
        bytes.len(),
        took.as_secs_f64(),
        grew >> 10
    );
    assert_eq!(err.kind(), kind, "{what}: {err}");
    assert!(took < within, "{what}: took {took:?}, bound {within:?}");
    assert!(grew < MEMORY_BOUND, "{what}: peak memory grew {grew} bytes");
    err
}

fn decoder(tools: FfmpegTools) -> VideoDecoder {
    VideoDecoder::new(tools, VideoLimits::default())
}

/// The small video hashes, index first or last (so the refusals below are about the input, not
/// the setup). Truncated copies are refused as invalid within 5 s: cut at half its bytes inside
/// the media data (index first) it is corrupt, though the reference would hash the frames
/// before the cut; cut before its trailing index, or inside its header, it is no video at all.
#[test]
fn truncated_video_is_invalid() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bytes = small_mp4(dir.path(), true);
    let moov_last = small_mp4(dir.path(), false);
    let d = decoder(tools);
    for b in [&bytes, &moov_last] {
        let whole = d
            .hash(b, &VpdqOptions::EVERY_FRAME)
            .expect("whole video hashes");
        assert_eq!(whole.frames.len(), 60);
    }
    refused(
        "index last, truncated at half",
        &d,
        &moov_last[..moov_last.len() / 2],
        &VpdqOptions::EVERY_FRAME,
        VideoErrorKind::InvalidInput,
        Duration::from_secs(5),
    );
    let err = refused(
        "truncated at half",
        &d,
        &bytes[..bytes.len() / 2],
        &VpdqOptions::EVERY_FRAME,
        VideoErrorKind::InvalidInput,
        Duration::from_secs(5),
    );
    assert!(matches!(err, VideoError::Corrupt { .. }), "{err}");
    refused(
        "truncated in the header",
        &d,
        &bytes[..40],
        &VpdqOptions::EVERY_FRAME,
        VideoErrorKind::InvalidInput,
        Duration::from_secs(5),
    );
}

/// Random bytes (1 MiB, fixed seed) are not a video: refused within 5 s. (ffmpeg's probe takes
/// such bytes for MP3; the container whitelist refuses it.)
#[test]
fn random_bytes_are_not_a_video() {
    let Some(tools) = tools() else { return };
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let bytes: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    refused(
        "random bytes",
        &decoder(tools),
        &bytes,
        &VpdqOptions::PYTX_DEFAULT,
        VideoErrorKind::InvalidInput,
        Duration::from_secs(5),
    );
}

/// A Y4M header claiming 100,000x100,000 frames (then 4 KB of data) is refused as too large
/// within 5 s, before any frame buffer exists; so is 16,000x16,000, which ffmpeg itself would
/// accept (a 384 MB frame) but our 4096x4096 limit does not.
#[test]
fn huge_frame_header_is_refused_before_decoding() {
    let Some(tools) = tools() else { return };
    let d = decoder(tools);
    for side in [100_000u64, 16_000] {
        let mut bytes =
            format!("YUV4MPEG2 W{side} H{side} F30:1 Ip A1:1 C420jpeg\nFRAME\n").into_bytes();
        bytes.extend(std::iter::repeat_n(0x80u8, 4096));
        let err = refused(
            &format!("{side}x{side} header"),
            &d,
            &bytes,
            &VpdqOptions::PYTX_DEFAULT,
            VideoErrorKind::OverLimit,
            Duration::from_secs(5),
        );
        assert!(
            matches!(err, VideoError::TooLarge { width, height, .. } if width == side && height == side),
            "{err}"
        );
    }
}

/// An hour of 1x1 frames (H.264 in MP4, 3,600 frames at 1 fps, a few KB) is refused as too
/// long from its header, before decoding, within 5 s. The same hour of 16x16 frames as streamed
/// Matroska, whose header declares no duration, is refused while decoding when frame 901
/// (past the 900 s limit) arrives, within 10 s.
#[test]
fn hour_long_videos_are_too_long() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = decoder(tools);
    let hour_1x1 = make(
        dir.path(),
        "hour.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=c=gray:size=16x16:rate=1:duration=3600,scale=1:1,format=yuv444p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ],
    );
    let err = refused(
        "an hour of 1x1 frames",
        &d,
        &hour_1x1,
        &VpdqOptions::PYTX_DEFAULT,
        VideoErrorKind::OverLimit,
        Duration::from_secs(5),
    );
    assert!(matches!(err, VideoError::TooLong { .. }), "{err}");
    let streamed = make(
        dir.path(),
        "hour.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=c=gray:size=16x16:rate=1:duration=3600",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-f",
            "matroska",
            "-live",
            "1",
        ],
    );
    let info = d.probe(&streamed).expect("probe streamed mkv");
    assert_eq!(
        info.duration_s, None,
        "the header must not declare the duration"
    );
    let err = refused(
        "an hour of 16x16 frames, no declared duration",
        &d,
        &streamed,
        &VpdqOptions::EVERY_FRAME,
        VideoErrorKind::OverLimit,
        Duration::from_secs(10),
    );
    assert!(matches!(err, VideoError::TooLong { .. }), "{err}");
}

/// A frame-count bomb: 20 s of 16x16 frames at 600 fps (12,000 frames in a small file) against
/// a frame budget of 6,000 (the default is 54,000; a smaller budget tests the same check at a
/// ninth of the decoding, which took over 10 s on CI's two busy cores at the default) is
/// refused — from the header's frame count, and again while decoding when the header does not
/// say (streamed Matroska) — within 10 s.
#[test]
fn too_many_frames_are_refused() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = VideoDecoder::new(
        tools,
        VideoLimits {
            max_frames: 6_000,
            ..VideoLimits::default()
        },
    );
    let args = |fmt: &'static str| {
        vec![
            "-f",
            "lavfi",
            "-i",
            "color=c=gray:size=16x16:rate=600:duration=20",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-f",
            fmt,
        ]
    };
    let mp4 = make(dir.path(), "bomb.mp4", &args("mp4"));
    let err = refused(
        "12,000 frames (declared)",
        &d,
        &mp4,
        &VpdqOptions::PYTX_DEFAULT,
        VideoErrorKind::OverLimit,
        Duration::from_secs(10),
    );
    assert!(matches!(err, VideoError::TooManyFrames { .. }), "{err}");
    let mut live = args("matroska");
    live.extend(["-live", "1"]);
    let mkv = make(dir.path(), "bomb.mkv", &live);
    let err = refused(
        "12,000 frames (undeclared)",
        &d,
        &mkv,
        &VpdqOptions::PYTX_DEFAULT,
        VideoErrorKind::OverLimit,
        Duration::from_secs(10),
    );
    assert!(matches!(err, VideoError::TooManyFrames { .. }), "{err}");
}

/// A decode that outlasts the wall-clock deadline is killed and refused when the deadline
/// passes: the small video hashed at every frame with a 0.2 s deadline comes back as
/// `Deadline` within 2 s.
#[test]
fn slow_decode_hits_the_deadline() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bytes = make(
        dir.path(),
        "slow.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x480:rate=30:duration=20",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ],
    );
    let limits = VideoLimits {
        deadline: Duration::from_millis(200),
        ..VideoLimits::default()
    };
    let err = refused(
        "600 frames of 640x480 with a 0.2 s deadline",
        &VideoDecoder::new(tools, limits),
        &bytes,
        &VpdqOptions::EVERY_FRAME,
        VideoErrorKind::OverLimit,
        Duration::from_secs(2),
    );
    assert!(matches!(err, VideoError::Deadline { .. }), "{err}");
}

/// Inputs that would make a permissive ffmpeg read other files or loop: a concat script naming
/// its own input twice, and an HLS live playlist (refreshed forever). Both are refused as not a
/// video (their demuxers are not on the whitelist) within 5 s.
#[test]
fn playlists_and_scripts_are_not_videos() {
    let Some(tools) = tools() else { return };
    let d = decoder(tools);
    let concat =
        b"ffconcat version 1.0\nfile 'file:/proc/self/fd/0'\nfile 'file:/proc/self/fd/0'\n";
    let hls = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n\
#EXTINF:1.0,\nfile:/proc/self/fd/0\n";
    for (what, bytes) in [("concat script", &concat[..]), ("HLS playlist", &hls[..])] {
        let err = refused(
            what,
            &d,
            bytes,
            &VpdqOptions::PYTX_DEFAULT,
            VideoErrorKind::InvalidInput,
            Duration::from_secs(5),
        );
        assert!(matches!(err, VideoError::NotAVideo { .. }), "{what}: {err}");
    }
}

/// Limits on the bytes themselves are checked before any process starts; a missing decoder is
/// reported as unavailable, not as a bad video.
#[test]
fn empty_oversized_and_unavailable() {
    let Some(tools) = tools() else { return };
    let limits = VideoLimits {
        max_input_bytes: 1000,
        ..VideoLimits::default()
    };
    let d = VideoDecoder::new(tools.clone(), limits);
    assert!(matches!(
        d.hash(&[], &VpdqOptions::PYTX_DEFAULT),
        Err(VideoError::Empty)
    ));
    assert!(matches!(
        d.hash(&[0u8; 1001], &VpdqOptions::PYTX_DEFAULT),
        Err(VideoError::TooManyBytes {
            len: 1001,
            max: 1000
        })
    ));
    let missing = FfmpegTools {
        ffprobe: "/nonexistent/ffprobe".into(),
        ..tools
    };
    let err = VideoDecoder::new(missing, VideoLimits::default())
        .hash(&[0u8; 100], &VpdqOptions::PYTX_DEFAULT)
        .unwrap_err();
    assert_eq!(err.kind(), VideoErrorKind::DecoderUnavailable, "{err}");
}
