//! vPDQ speed against Meta's reference (PyPI `vpdq`, ThreatExchange's C++ on the system's
//! libavcodec), on the sample videos of `shared/vpdq-reference`, in one run. Not a test: run
//! `proto/hashing/benches/run-vpdq-bench.sh`, which sets up the Python side in a virtualenv and
//! pins both sides to one CPU.
//!
//! For every video and both samplings (every frame, as the reference's sample hashes were made;
//! 1 hash/s, python-threatexchange's default) it prints frames hashed, wall seconds (fastest of
//! `REDLINE_BENCH_REPEAT` runs) and frames/s for ours (`VideoDecoder::hash` on the bytes:
//! sealing, probing, sandboxed decoding and hashing, everything a node does) and for the
//! reference (`vpdq.computeHash` on the file, in its Python process), the ratio, and whether
//! both hashed the same frames with the same hashes, qualities and timestamps (a digest over
//! every frame, computed on both sides). Runs interleave, video by video, so load changes hit
//! both sides alike. Without `REDLINE_VPDQ_PYTHON` only ours is timed.
//!
//! Environment: `REDLINE_VPDQ_PYTHON` (python with `vpdq`), `REDLINE_SHARED` (else
//! `../shared` beside the workspace), `REDLINE_BENCH_REPEAT` (runs per figure, default 3),
//! `REDLINE_VPDQ_BENCH_VIDEOS` (comma-separated name fragments; default every video),
//! `REDLINE_VPDQ_REF_THREADS` (the reference's `thread_count`, default 0: its own choice, as
//! python-threatexchange calls it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use redline_hashing::{FfmpegTools, VideoDecoder, VideoLimits, VpdqFrame, VpdqOptions};
use sha2::{Digest, Sha256};

/// The two samplings: every frame, and python-threatexchange's 1 hash/s.
const SAMPLINGS: [(&str, VpdqOptions); 2] = [
    ("every", VpdqOptions::EVERY_FRAME),
    ("1/s", VpdqOptions::PYTX_DEFAULT),
];

fn main() {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let repeat: u32 = env("REDLINE_BENCH_REPEAT")
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let ref_threads = env("REDLINE_VPDQ_REF_THREADS").unwrap_or_else(|| "0".into());
    let filter: Vec<String> = env("REDLINE_VPDQ_BENCH_VIDEOS")
        .map(|s| s.split(',').map(|p| p.trim().to_owned()).collect())
        .unwrap_or_default();
    let shared = env("REDLINE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("vpdq-reference/videos");
    let Ok(listing) = std::fs::read_dir(&dir) else {
        println!(
            "SKIP: no reference videos at {} (set REDLINE_SHARED)",
            dir.display()
        );
        return;
    };
    let mut videos: Vec<PathBuf> = listing
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .filter(|p| {
            let name = p.file_stem().unwrap().to_string_lossy();
            filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))
        })
        .collect();
    videos.sort();
    let tools = FfmpegTools::from_env();
    if let Err(e) = tools.check() {
        println!("SKIP: {e} (apt-get install ffmpeg util-linux)");
        return;
    }
    let decoder = VideoDecoder::new(tools, VideoLimits::default());
    let python = std::env::var_os("REDLINE_VPDQ_PYTHON");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/vpdq_reference_bench.py");
    println!(
        "{} videos from {}; fastest of {repeat} runs each; load average {}; reference \
         thread_count={ref_threads}",
        videos.len(),
        dir.display(),
        loadavg()
    );
    if python.is_none() {
        println!(
            "REDLINE_VPDQ_PYTHON not set: reference not timed (use benches/run-vpdq-bench.sh)"
        );
    }
    println!(
        "{:<30} {:>9} {:>5} {:>6} | {:>7} {:>7} | {:>7} {:>7} | {:>6} output",
        "video", "size", "rate", "frames", "ours s", "fps", "ref s", "fps", "ratio"
    );
    // Per sampling: frames, our seconds, reference seconds.
    let mut totals = [(0usize, 0f64, 0f64); 2];
    let mut all_identical = true;
    let mut ref_version = String::new();
    for path in &videos {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).expect("read video");
        for (i, (label, options)) in SAMPLINGS.iter().enumerate() {
            let mut best = f64::INFINITY;
            let mut video = None;
            for _ in 0..repeat {
                let start = Instant::now();
                let v = decoder.hash(&bytes, options).expect("hash sample video");
                best = best.min(start.elapsed().as_secs_f64());
                video = Some(v);
            }
            let video = video.expect("at least one run");
            let frames = video.frames.len();
            let size = format!("{}x{}", video.info.width, video.info.height);
            let ours_fps = frames as f64 / best;
            let mut line = format!(
                "{name:<30} {size:>9} {label:>5} {frames:>6} | {best:>7.3} {ours_fps:>7.1} |"
            );
            totals[i].0 += frames;
            totals[i].1 += best;
            if let Some(python) = &python {
                let r = reference(python, &script, path, options, repeat, &ref_threads);
                let ref_fps = r.frames as f64 / r.seconds;
                let same = r.frames == frames && r.digest == digest(&video.frames);
                all_identical &= same;
                totals[i].2 += r.seconds;
                ref_version = r.version;
                line += &format!(
                    " {:>7.3} {ref_fps:>7.1} | {:>5.2}x {}",
                    r.seconds,
                    ours_fps / ref_fps,
                    if same {
                        "identical".to_owned()
                    } else {
                        format!("DIFFERENT (reference: {} frames)", r.frames)
                    }
                );
            }
            println!("{line}");
        }
    }
    for (i, (label, _)) in SAMPLINGS.iter().enumerate() {
        let (frames, ours, theirs) = totals[i];
        let mut line = format!(
            "total {label:>5}: {frames} frames, ours {ours:.2} s ({:.1} frames/s)",
            frames as f64 / ours
        );
        if python.is_some() {
            line += &format!(
                ", reference {theirs:.2} s ({:.1} frames/s), ratio {:.2}x",
                frames as f64 / theirs,
                theirs / ours
            );
        }
        println!("{line}");
    }
    if python.is_some() {
        println!(
            "reference: PyPI vpdq {ref_version}; load average at the end {}",
            loadavg()
        );
        assert!(all_identical, "output differs from the reference");
    }
}

/// What one reference run reported.
struct Reference {
    seconds: f64,
    frames: usize,
    digest: String,
    version: String,
}

fn reference(
    python: &std::ffi::OsStr,
    script: &Path,
    video: &Path,
    options: &VpdqOptions,
    repeat: u32,
    threads: &str,
) -> Reference {
    assert!(options.downscale.is_none(), "the bench hashes at full size");
    let out = Command::new(python)
        .arg(script)
        .arg(video)
        .arg(options.seconds_per_hash.to_string())
        .arg(repeat.to_string())
        .arg(threads)
        .output()
        .expect("run python reference bench");
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        panic!("python reference bench failed on {}", video.display());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("python output lacks {name}: {text}"))
            .trim()
            .to_owned()
    };
    Reference {
        seconds: field("seconds").parse().expect("seconds"),
        frames: field("frames").parse().expect("frames"),
        digest: field("digest"),
        version: field("version"),
    }
}

/// SHA-256 of "frame_number,quality,pdq_hex,timestamp_f32_bits\n" per frame, as the Python
/// script computes it.
fn digest(frames: &[VpdqFrame]) -> String {
    let mut h = Sha256::new();
    for f in frames {
        let bits = (f.timestamp_s as f32).to_bits();
        h.update(
            format!(
                "{},{},{},{bits:08x}\n",
                f.frame_number,
                f.quality,
                f.pdq.to_hex()
            )
            .as_bytes(),
        );
    }
    redline_hashing::signal::to_hex(&h.finalize())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
