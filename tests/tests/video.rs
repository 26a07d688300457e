//! Video end to end: a hotline lists a video, a platform two hops away matches copies of it.
//!
//! Hotline A (origin), relay hotline B and platform P run as real nodes on loopback, in a line
//! (A -> B -> P), with real sled dirs and real ffmpeg decoding in the nodes' sandboxed decoder.
//! A submits the bytes of `chair-orig-22-sd-bar.mp4` from `../shared/vpdq-reference` (the node
//! hashes it: dense, thinned vPDQ, video_md5, video_sha256). Copies are made with Debian's
//! ffmpeg: re-encoded (H.264 at CRF 36), half size, VP9/WebM, the middle half cut out as a
//! clip, and letterboxed (90-row black bars above and below). At P, each copy sent as video bytes to the Match RPC matches A's vPDQ entry with at
//! least 80 % of its frames (python-threatexchange's index policy), names A and the entry's
//! index, and reports matched time ranges; the clip's ranges lie in the middle of the listed
//! video. `redline match` (hashing locally, sending hashes) finds every copy too. An unrelated sample video does not match. After A retracts the entry, none match at
//! P. No file under the three nodes' data dirs, and no file the test's run leaves in the temp
//! dir, holds any 64-byte window of a video sent to a node.
//!
//! Skips (with a message) when `../shared/vpdq-reference` or ffmpeg is absent.

use redline_client::{HotlineClient, PlatformClient};
use redline_e2e::{eventually, federated_config, identity, reserve, temp_dir, trust_key, TestNode};
use redline_proto::pb;
use redline_server::config::Policy;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

const LONG: Duration = Duration::from_secs(60);

fn have_ffmpeg() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs ffmpeg on `input` with `args`, writing `out`.
fn transcode(input: &Path, args: &[&str], out: &Path) -> Vec<u8> {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(input)
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg {args:?} failed");
    std::fs::read(out).unwrap()
}

/// Every distinctive 64-byte window of `bytes` at a stride of 64 (any file holding 128
/// consecutive bytes of the video's compressed data holds one of these whole).
fn windows(bytes: &[u8]) -> HashSet<[u8; 64]> {
    bytes
        .chunks_exact(64)
        // Only windows specific to this video: a run of zeros or a repeated container pattern
        // also occurs in files other processes write to the temp dir meanwhile (a parallel
        // build, a fuzzer), which is no leak. Compressed frame data, which a leak would
        // carry by the thousand, has far more distinct bytes than this.
        .filter(|c| c.iter().collect::<HashSet<_>>().len() >= 32)
        .map(|c| c.try_into().unwrap())
        .collect()
}

/// Files under `dir` (recursively) holding any of `windows` at any offset.
fn files_holding(
    dir: &Path,
    windows: &HashSet<[u8; 64]>,
    since: SystemTime,
    skip: &Path,
) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.starts_with(skip) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() && meta.modified().is_ok_and(|m| m >= since) {
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                if bytes
                    .windows(64)
                    .any(|w| windows.contains(<&[u8; 64]>::try_from(w).unwrap()))
                {
                    found.push(path);
                }
            }
        }
    }
    found
}

/// `redline match FILE --json` against `url`: the matches of its vpdq query.
async fn cli_match(url: &str, file: &Path) -> Vec<serde_json::Value> {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let bin = BIN
        .get_or_init(|| redline_e2e::cargo_bin("redline-client", "redline"))
        .clone();
    let (url, file) = (url.to_owned(), file.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["match", "--json", "--node", &url])
            .arg(&file)
            .env_remove("REDLINE_NODE")
            .env_remove("REDLINE_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["query"]["signal_type"] == "vpdq")
        .flat_map(|r| r["matches"].as_array().unwrap().clone())
        .collect()
}

async fn match_video(url: &str, video: &[u8]) -> Vec<pb::Match> {
    let mut p = PlatformClient::connect(url).await.unwrap();
    let r = p
        .match_video(video.to_vec(), Default::default())
        .await
        .expect("match a video");
    r.results
        .into_iter()
        .filter(|q| q.query.as_ref().is_some_and(|s| s.signal_type == "vpdq"))
        .flat_map(|q| q.matches)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_video_matches_copies_two_hops_away_until_retracted() {
    let Some(shared) = redline_e2e::shared_dir() else {
        eprintln!("skipping: ../shared is absent");
        return;
    };
    let videos = shared.join("vpdq-reference/videos");
    let original_path = videos.join("chair-orig-22-sd-bar.mp4");
    if !original_path.exists() || !have_ffmpeg() {
        eprintln!("skipping: vpdq-reference videos or ffmpeg absent");
        return;
    }
    let since = SystemTime::now() - Duration::from_secs(1);
    let copies_dir = temp_dir();
    let original = std::fs::read(&original_path).unwrap();
    let c = copies_dir.path();
    let reencoded = transcode(
        &original_path,
        &["-c:v", "libx264", "-crf", "36", "-an"],
        &c.join("reencoded.mp4"),
    );
    let half = transcode(
        &original_path,
        &["-vf", "scale=240:360", "-c:v", "libx264", "-an"],
        &c.join("half.mp4"),
    );
    let webm = transcode(
        &original_path,
        &[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "500k",
            "-an",
        ],
        &c.join("copy.webm"),
    );
    // The middle half: 5.6 s to 16.8 s of 22.5 s, re-encoded (its frames are not the listed
    // video's sampled frames).
    let clip = transcode(
        &original_path,
        &["-ss", "5.6", "-t", "11.2", "-c:v", "libx264", "-an"],
        &c.join("clip.mp4"),
    );
    // Letterboxed: black bars of 90 rows above and below (480x900).
    let letterboxed = transcode(
        &original_path,
        &["-vf", "pad=iw:ih+180:0:90:black", "-c:v", "libx264", "-an"],
        &c.join("letterboxed.mp4"),
    );
    let unrelated = std::fs::read(videos.join("doorknob-hd-no-bar.mp4")).unwrap();

    let (da, db, dp) = (temp_dir(), temp_dir(), temp_dir());
    let ka = identity(da.path(), "hotline-a.example");
    let kb = identity(db.path(), "hotline-b.example");
    let ((la, ua), (lb, ub), (lp, up)) = (reserve().await, reserve().await, reserve().await);
    let a = TestNode::start_on(
        la,
        federated_config("hotline-a.example", da.path(), &[], vec![], 100),
    )
    .await;
    let b = TestNode::start_on(
        lb,
        federated_config(
            "hotline-b.example",
            db.path(),
            &[&ua],
            vec![trust_key(&ka, Policy::Accept)],
            100,
        ),
    )
    .await;
    let p = TestNode::start_on(
        lp,
        federated_config(
            "platform.example",
            dp.path(),
            &[&ub],
            vec![
                trust_key(&ka, Policy::Accept),
                trust_key(&kb, Policy::Accept),
            ],
            100,
        ),
    )
    .await;

    let mut hotline = HotlineClient::connect(&ua).await.unwrap();
    let submitted = hotline
        .submit_request(pb::SubmitRequest {
            labels: vec!["ncii".into()],
            legal_basis: "consent withdrawn".into(),
            video: original.clone(),
            ..Default::default()
        })
        .await
        .expect("submit a video");
    let types: Vec<&str> = submitted
        .entries
        .iter()
        .map(|e| e.signal.as_ref().unwrap().signal_type.as_str())
        .collect();
    assert_eq!(
        types,
        ["vpdq", "video_md5", "video_sha256"],
        "one vPDQ part for 22 s"
    );
    let vpdq_index = submitted.entries[0].index;
    let frames = submitted.entries[0].signal.as_ref().unwrap().value.len() / 74;
    eprintln!("listed {frames} vPDQ frames (22.5 s sampled 5/s, thinned)");
    // At most 113 frames sampled, twice where a frame has bars (also hashed without them).
    assert!(frames > 20 && frames <= 226, "{frames}");
    let size = submitted.checkpoint.as_ref().unwrap().tree_size;
    eventually(LONG, "P holds A's video entries", || async {
        p.size_of("hotline-a.example") >= size
    })
    .await;

    for (name, video) in [
        ("re-encoded", &reencoded),
        ("half-size", &half),
        ("VP9/WebM", &webm),
        ("middle-half clip", &clip),
        ("letterboxed", &letterboxed),
    ] {
        let matches = match_video(&up, video).await;
        let m = matches
            .iter()
            .find(|m| m.origin == "hotline-a.example" && m.index == vpdq_index)
            .unwrap_or_else(|| panic!("the {name} copy does not match at P: {matches:?}"));
        let v = m
            .video
            .as_ref()
            .expect("a vPDQ match carries its comparison");
        eprintln!(
            "{name}: query {:.1} %, listed {:.1} %, {} query ranges, {} listed ranges",
            v.query_percent,
            v.compared_percent,
            v.query_ranges.len(),
            v.compared_ranges.len()
        );
        assert!(v.query_percent >= 80.0, "{name}: {v:?}");
        assert!(
            !v.query_ranges.is_empty() && !v.compared_ranges.is_empty(),
            "{name}"
        );
        // The listed side is sampled 5 times as densely as the query, so its share is lower
        // by design; where its matched frames lie says what was found.
        // Matched runs closer than 1.5 s are one range: a copy is one span of the listed video.
        assert_eq!(v.compared_ranges.len(), 1, "{name}: {v:?}");
        let (first, last) = (v.compared_ranges[0].start_ms, v.compared_ranges[0].end_ms);
        if name == "middle-half clip" {
            assert!(
                (4_600..=6_600).contains(&first) && (15_800..=17_800).contains(&last),
                "the clip is 5.6-16.8 s of the listed video: {v:?}"
            );
        } else {
            assert!(
                first <= 1_000 && last >= 21_000,
                "{name} spans the listed video: {v:?}"
            );
        }
    }
    // The same through the CLI, which hashes the copy locally and sends only its hashes.
    for file in [
        "reencoded.mp4",
        "half.mp4",
        "copy.webm",
        "clip.mp4",
        "letterboxed.mp4",
    ] {
        let cli = cli_match(&up, &c.join(file)).await;
        assert!(
            cli.iter().any(|m| m["origin"] == "hotline-a.example"
                && m["index"] == vpdq_index
                && m["video"]["query_percent"].as_f64().unwrap() >= 80.0),
            "redline match {file} finds the listed video: {cli:?}"
        );
    }
    // The same edits under the reference's sampling (1 frame a second on both sides, pytx's
    // index policy), for comparison: printed, and the clip is asserted to be what the denser
    // listing adds (a miss there), so this test notices if the reference's sampling starts
    // finding it too.
    let pytx = |bytes: &[u8]| {
        redline_hashing::hash_video(
            bytes,
            &redline_hashing::VideoLimits::default(),
            &redline_hashing::VpdqOptions::PYTX_DEFAULT,
        )
        .unwrap()
    };
    let listed_1s = pytx(&original);
    for (name, video) in [
        ("re-encoded", &reencoded),
        ("middle-half clip", &clip),
        ("letterboxed", &letterboxed),
    ] {
        let m = redline_hashing::vpdq::match_brute(&pytx(video), &listed_1s, &Default::default());
        let decided = redline_hashing::vpdq::MatchPolicy::PYTX_INDEX.is_match(&m);
        eprintln!(
            "reference sampling, {name}: query {:.1} %, listed {:.1} %, match {decided}",
            m.query_percent, m.compared_percent
        );
        assert_eq!(
            decided,
            name == "re-encoded",
            "{name} under the reference's sampling"
        );
    }
    // A request's own thresholds: requiring half of the listed video's frames to match turns
    // the clip (about a tenth of the listed frames) away, while the full copy still matches.
    let strict = |video: &Vec<u8>| pb::MatchRequest {
        video: video.clone(),
        video_options: Some(pb::VideoMatchOptions {
            compared_match_percent: 50.0,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut platform = PlatformClient::connect(&up).await.unwrap();
    let vpdq_matches = |r: pb::MatchResponse| -> usize {
        r.results
            .iter()
            .filter(|q| q.query.as_ref().unwrap().signal_type == "vpdq")
            .map(|q| q.matches.len())
            .sum()
    };
    let clip_strict = platform.match_request(strict(&clip)).await.unwrap();
    assert_eq!(
        vpdq_matches(clip_strict),
        0,
        "a clip is not half the listed video"
    );
    let mut lenient = strict(&reencoded);
    lenient
        .video_options
        .as_mut()
        .unwrap()
        .compared_match_percent = 10.0;
    let full = platform.match_request(lenient).await.unwrap();
    assert_eq!(
        vpdq_matches(full),
        1,
        "the full copy passes a 10 % listed share"
    );
    // The exact copy also matches by its digest.
    let exact = platform
        .match_video(original.clone(), Default::default())
        .await
        .unwrap();
    let md5 = exact
        .results
        .iter()
        .find(|q| q.query.as_ref().unwrap().signal_type == "video_md5")
        .unwrap();
    assert_eq!(md5.matches.len(), 1, "the file's video_md5 is listed");
    assert!(
        match_video(&up, &unrelated).await.is_empty(),
        "an unrelated video does not match"
    );

    hotline
        .retract(vpdq_index, "withdrawn")
        .await
        .expect("retract");
    eventually(LONG, "the retraction reaches P", || async {
        p.size_of("hotline-a.example") > size
    })
    .await;
    for video in [&reencoded, &half, &webm, &clip, &letterboxed] {
        assert!(
            match_video(&up, video).await.is_empty(),
            "a retracted video matches no more"
        );
    }
    assert!(
        cli_match(&up, &c.join("reencoded.mp4")).await.is_empty(),
        "redline match: a retracted video matches no more"
    );

    // No video byte on disk: the nodes' data dirs and what this run left in the temp dir.
    let mut sent = windows(&original);
    for v in [&reencoded, &half, &webm, &clip, &letterboxed, &unrelated] {
        sent.extend(windows(v));
    }
    assert!(
        sent.len() > 1000,
        "enough windows to find any copy: {}",
        sent.len()
    );
    for dir in [da.path(), db.path(), dp.path(), &std::env::temp_dir()] {
        let held = files_holding(dir, &sent, since, c);
        assert!(held.is_empty(), "files holding video bytes: {held:?}");
    }
    drop((a, b, p));
}

/// Peak resident set of this process (the node runs in it), bytes.
fn vm_hwm() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// Hostile videos sent to a node's Match and Submit RPCs get a clear status within a stated
/// time: a truncated MP4 and 1 MiB of random bytes `INVALID_ARGUMENT` (10 s), a Y4M header of
/// 100,000x100,000 frames, an hour of 1x1 frames and an hour of frames whose header declares no
/// duration (it would decode for an hour) `RESOURCE_EXHAUSTED` (10 s, 20 s for the one found
/// while decoding). The node's process grows by less than 64 MiB of peak memory over all of
/// them, a refused Submit appends nothing, and Match still answers afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_videos_get_clear_statuses_in_bounded_time_and_memory() {
    let Some(shared) = redline_e2e::shared_dir() else {
        eprintln!("skipping: ../shared is absent");
        return;
    };
    let original_path = shared.join("vpdq-reference/videos/chair-orig-22-sd-bar.mp4");
    if !original_path.exists() || !have_ffmpeg() {
        eprintln!("skipping: vpdq-reference videos or ffmpeg absent");
        return;
    }
    let dir = temp_dir();
    let inputs = temp_dir();
    let original = std::fs::read(&original_path).unwrap();
    let lavfi = |name: &str, source: &str, extra: &[&str]| {
        let out = inputs.path().join(name);
        let status = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                source,
            ])
            .args(["-c:v", "libx264", "-preset", "ultrafast"])
            .args(extra)
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "ffmpeg made no {name}");
        std::fs::read(out).unwrap()
    };
    let mut huge = b"YUV4MPEG2 W100000 H100000 F30:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    huge.extend(std::iter::repeat_n(0x80u8, 4096));
    let mut random = vec![0u8; 1 << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in random.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let cases: Vec<(&str, Vec<u8>, tonic::Code, u64)> = vec![
        (
            "truncated MP4",
            original[..original.len() / 2].to_vec(),
            tonic::Code::InvalidArgument,
            10,
        ),
        (
            "1 MiB of random bytes",
            random,
            tonic::Code::InvalidArgument,
            10,
        ),
        (
            "100,000x100,000 Y4M header",
            huge,
            tonic::Code::ResourceExhausted,
            10,
        ),
        (
            "an hour of 1x1 frames",
            lavfi(
                "hour.mp4",
                "color=c=gray:size=16x16:rate=1:duration=3600,scale=1:1,format=yuv444p",
                &[],
            ),
            tonic::Code::ResourceExhausted,
            10,
        ),
        (
            "an hour with no declared duration",
            lavfi(
                "hour.mkv",
                "color=c=gray:size=16x16:rate=1:duration=3600",
                &["-f", "matroska", "-live", "1"],
            ),
            tonic::Code::ResourceExhausted,
            20,
        ),
    ];
    let (listener, url) = reserve().await;
    let node = TestNode::start_on(
        listener,
        federated_config("hotline.example", dir.path(), &[], vec![], 100),
    )
    .await;
    let mut platform = PlatformClient::connect(&url).await.unwrap();
    let mut hotline = HotlineClient::connect(&url).await.unwrap();
    let size = node.size_of("hotline.example");
    let peak_before = vm_hwm();
    for (what, bytes, code, secs) in &cases {
        let started = std::time::Instant::now();
        let err = platform
            .match_video(bytes.clone(), Default::default())
            .await
            .expect_err(what);
        let took = started.elapsed();
        let status = match err {
            redline_client::ClientError::Status(s) => s,
            other => panic!("{what}: not a status: {other}"),
        };
        eprintln!(
            "{what}: {:?} in {took:.1?}: {}",
            status.code(),
            status.message()
        );
        assert_eq!(status.code(), *code, "{what}: {}", status.message());
        assert!(took < Duration::from_secs(*secs), "{what} took {took:?}");
        let refused = hotline
            .submit_request(pb::SubmitRequest {
                video: bytes.clone(),
                ..Default::default()
            })
            .await
            .expect_err(what);
        assert!(refused.to_string().contains("video"), "{what}: {refused}");
    }
    let grown = vm_hwm().saturating_sub(peak_before);
    eprintln!(
        "peak memory grew by {:.1} MiB",
        grown as f64 / (1 << 20) as f64
    );
    assert!(grown < 64 << 20, "peak memory grew by {grown} bytes");
    assert_eq!(
        node.size_of("hotline.example"),
        size,
        "refused submits append nothing"
    );
    let answer = platform
        .match_pdq(&"ab".repeat(32), Default::default())
        .await
        .expect("Match still answers");
    assert_eq!(answer.results.len(), 1);
}
