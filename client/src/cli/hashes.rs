//! Commands about hashes: `hash` (local, no node), `submit` and `match`. Images are hashed
//! locally with `redline-hashing` so they never leave the machine, unless `--send-image` asks
//! the node to hash them.

use super::{checkpoint_json, checkpoint_line, hotline, Global, Out};
use anyhow::{Context, Result};
use clap::{ArgGroup, Args};
use redline_client::platform::MatchOptions;
use redline_client::PlatformClient;
use redline_hashing::DecodeLimits;
use redline_proto::pb::{MatchRequest, MatchResponse, Signal, SubmitRequest};
use redline_proto::signal::SignalType;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// PDQ hashes below this quality come from flat or tiny images and match poorly
/// (ThreatExchange's own recommendation).
const LOW_PDQ_QUALITY: u32 = 50;

/// Reads a hex value of `t` from the command line (upper case is accepted).
fn hex_of(t: SignalType, s: &str) -> Result<String, String> {
    let v = s.trim().to_ascii_lowercase();
    t.parse_hex(&v).map_err(|e| {
        format!(
            "{e}; a {} hash is {} hex digits (0-9, a-f)",
            t.name(),
            t.byte_len() * 2
        )
    })?;
    Ok(v)
}

fn pdq_hex(s: &str) -> Result<String, String> {
    hex_of(SignalType::Pdq, s)
}
fn md5_hex(s: &str) -> Result<String, String> {
    hex_of(SignalType::Md5, s)
}
fn sha256_hex(s: &str) -> Result<String, String> {
    hex_of(SignalType::Sha256, s)
}

/// Reads a signal type name.
fn signal_type(s: &str) -> Result<SignalType, String> {
    SignalType::from_name(s).map_err(|e| e.to_string())
}

/// Hashes one image file locally under `types`, or a video file (recognised by its first
/// bytes) as `purpose` asks: its vPDQ frames, `video_md5` and `video_sha256`, decoded here in
/// the sandboxed decoder (needs ffmpeg), so the video never leaves this machine either.
pub fn hash_file(
    path: &Path,
    types: &[SignalType],
    purpose: redline_hashing::VideoPurpose,
) -> Result<Vec<Signal>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if redline_hashing::looks_like_video(&bytes) {
        let computed = redline_hashing::video_signals(
            &bytes,
            &redline_hashing::VideoLimits::default(),
            purpose,
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok(computed
            .into_iter()
            .map(|c| Signal {
                signal_type: c.signal_type.name().to_owned(),
                value: c.hex(),
                quality: 0,
            })
            .collect());
    }
    let wanted: Vec<redline_hashing::SignalType> = types
        .iter()
        .map(|t| redline_hashing::SignalType::from_name(t.name()))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let computed = redline_hashing::hash_image(&bytes, &DecodeLimits::default(), &wanted)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(computed
        .into_iter()
        .map(|c| Signal {
            signal_type: c.signal_type.name().to_owned(),
            value: c.hex(),
            quality: c.quality.map_or(0, u32::from),
        })
        .collect())
}

fn warn_low_quality(file: &Path, s: &Signal) {
    if s.signal_type == "pdq" && s.quality < LOW_PDQ_QUALITY {
        eprintln!(
            "warning: {}: PDQ quality {} is below {LOW_PDQ_QUALITY}; hashes of flat or tiny images match poorly",
            file.display(),
            s.quality
        );
    }
}

/// Compute the PDQ hash and quality of image files, locally (no node needed).
///
/// Prints one `pdq,quality,file` line per file, like the reference `pdq-photo-hasher`.
#[derive(Debug, Args)]
#[command(after_help = "\
Example:
  redline hash photo.jpg screenshots/*.png
  f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22,100,photo.jpg

Formats: JPEG, PNG, WebP, GIF, BMP, TIFF. Files that cannot be hashed are reported on stderr
and make the exit code 1; the others are still printed.")]
pub struct HashArgs {
    /// Image files.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn hash(a: HashArgs, out: &mut Out) -> Result<bool> {
    let mut ok = true;
    let mut rows = Vec::new();
    for file in &a.files {
        if let Some(frames) = video_frames(file)? {
            match frames {
                Ok(frames) => {
                    if out.json {
                        rows.push(json!({"file": file, "vpdq": redline_hashing::vpdq::format_signal(&frames)}));
                    } else {
                        for f in &frames {
                            out.line(redline_hashing::vpdq::text::format_reference_line(f))?;
                        }
                    }
                }
                Err(e) => {
                    ok = false;
                    eprintln!("error: {}: {e}", file.display());
                    if out.json {
                        rows.push(json!({"file": file, "error": e.to_string()}));
                    }
                }
            }
            continue;
        }
        match hash_file(
            file,
            &[SignalType::Pdq],
            redline_hashing::VideoPurpose::Query,
        ) {
            Ok(sigs) => {
                let s = &sigs[0];
                if out.json {
                    rows.push(json!({"file": file, "pdq": s.value, "quality": s.quality}));
                } else {
                    out.line(format!("{},{},{}", s.value, s.quality, file.display()))?;
                }
            }
            Err(e) => {
                ok = false;
                eprintln!("error: {e:#}");
                if out.json {
                    rows.push(json!({"file": file, "error": format!("{e:#}")}));
                }
            }
        }
    }
    if out.json {
        out.json_value(&rows)?;
    }
    Ok(ok)
}

/// The vPDQ frames of `file` at 1 frame a second, if it is a video (`None`: not a video).
fn video_frames(
    file: &Path,
) -> Result<Option<Result<Vec<redline_hashing::VpdqFrame>, redline_hashing::VideoError>>> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    if !redline_hashing::looks_like_video(&bytes) {
        return Ok(None);
    }
    Ok(Some(redline_hashing::hash_video(
        &bytes,
        &redline_hashing::VideoLimits::default(),
        &redline_hashing::VpdqOptions::PYTX_DEFAULT,
    )))
}

/// Add hashes to this hotline's own list (signed into its log).
///
/// Give image files (hashed here, so the image never leaves this machine) and/or hashes.
/// Hashes already active in the list are not added twice: their existing index is printed.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("what").required(true).multiple(true).args(["files", "pdq", "md5", "sha256"])),
    after_help = "\
Examples:
  redline submit photo.jpg --label ncii --legal-basis 'consent withdrawn' --case-ref C-2024-17
  redline submit --pdq f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22 --label ncii
  redline submit photo.jpg --type pdq,md5

Prints the log index of every hash and the new signed checkpoint."
)]
pub struct SubmitArgs {
    /// Image files to hash locally and submit.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// A PDQ hash (64 hex digits); repeatable.
    #[arg(long, value_name = "HEX", value_parser = pdq_hex)]
    pdq: Vec<String>,
    /// An MD5 of the exact file bytes (32 hex digits); repeatable.
    #[arg(long, value_name = "HEX", value_parser = md5_hex)]
    md5: Vec<String>,
    /// A SHA-256 of the exact file bytes (64 hex digits); repeatable.
    #[arg(long, value_name = "HEX", value_parser = sha256_hex)]
    sha256: Vec<String>,
    /// Signal types computed from FILEs (pdq, md5, sha256, phash-dct-8x8, dhash-8x8, ahash-8x8, blockhash-16x16).
    #[arg(long = "type", value_name = "TYPE", value_delimiter = ',', default_value = "pdq", value_parser = signal_type)]
    types: Vec<SignalType>,
    /// Category label such as ncii or csam; repeatable.
    #[arg(long = "label", value_name = "LABEL")]
    labels: Vec<String>,
    /// Legal basis under which the hotline lists these hashes.
    #[arg(long, value_name = "TEXT", default_value = "")]
    legal_basis: String,
    /// The hotline's own case reference (may be empty).
    #[arg(long, value_name = "TEXT", default_value = "")]
    case_ref: String,
    /// Send the image bytes to the node and let it hash them (the node drops them after
    /// hashing) instead of hashing here.
    #[arg(long)]
    send_image: bool,
}

pub async fn submit(a: SubmitArgs, global: &Global, out: &mut Out) -> Result<bool> {
    let mut signals: Vec<(Option<PathBuf>, Signal)> = Vec::new();
    for (t, values) in [
        (SignalType::Pdq, &a.pdq),
        (SignalType::Md5, &a.md5),
        (SignalType::Sha256, &a.sha256),
    ] {
        for v in values {
            signals.push((
                None,
                Signal {
                    signal_type: t.name().to_owned(),
                    value: v.clone(),
                    quality: 0,
                },
            ));
        }
    }
    let mut images: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for file in &a.files {
        if a.send_image {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            images.push((file.clone(), bytes));
        } else {
            let purpose = redline_hashing::VideoPurpose::Listing(Default::default());
            for s in hash_file(file, &a.types, purpose)? {
                warn_low_quality(file, &s);
                signals.push((Some(file.clone()), s));
            }
        }
    }

    let mut client = hotline(global).await?;
    let mut rows = Vec::new();
    let mut last_cp = None;
    if !signals.is_empty() {
        let (files, sigs): (Vec<_>, Vec<_>) = signals.into_iter().unzip();
        let total = sigs.len();
        let resps = client
            .submit_batched(
                sigs,
                a.labels.clone(),
                &a.legal_basis,
                &a.case_ref,
                |_| {},
            )
            .await
            .map_err(|(done, e)| {
                anyhow::anyhow!(
                    "{e}{}",
                    if done > 0 {
                        format!(" ({done} of {total} hashes were submitted before this failure; submitting again is safe: duplicates are not added twice)")
                    } else {
                        String::new()
                    }
                )
            })?;
        let mut files = files.into_iter();
        for r in resps {
            for e in r.entries {
                rows.push((files.next().flatten(), e));
            }
            last_cp = r.checkpoint;
        }
    }
    for (file, bytes) in images {
        let (image, video) = if redline_hashing::looks_like_video(&bytes) {
            (Vec::new(), bytes)
        } else {
            (bytes, Vec::new())
        };
        let r = client
            .submit_request(SubmitRequest {
                signals: Vec::new(),
                labels: a.labels.clone(),
                legal_basis: a.legal_basis.clone(),
                case_ref: a.case_ref.clone(),
                image,
                video,
            })
            .await
            .with_context(|| format!("{} was not submitted", file.display()))?;
        for e in r.entries {
            rows.push((Some(file.clone()), e));
        }
        last_cp = r.checkpoint;
    }

    if out.json {
        let entries: Vec<_> = rows
            .iter()
            .map(|(file, e)| {
                let s = e.signal.clone().unwrap_or_default();
                json!({
                    "signal_type": s.signal_type,
                    "value": s.value,
                    "quality": s.quality,
                    "index": e.index,
                    "duplicate": e.duplicate,
                    "file": file,
                })
            })
            .collect();
        out.json_value(&json!({
            "entries": entries,
            "checkpoint": checkpoint_json(last_cp.as_ref()),
        }))?;
    } else {
        for (file, e) in &rows {
            let s = e.signal.clone().unwrap_or_default();
            let what = if e.duplicate {
                "already listed"
            } else {
                "added"
            };
            let from = file
                .as_ref()
                .map(|f| format!("  ({})", f.display()))
                .unwrap_or_default();
            out.line(format!(
                "{what:14}  index {:>8}  {} {}{from}",
                e.index, s.signal_type, s.value
            ))?;
        }
        out.line(checkpoint_line(last_cp.as_ref()))?;
    }
    Ok(true)
}

/// Check images or hashes against the lists the node accepts (as a platform would).
///
/// Images are hashed here and only the hashes are sent, unless --send-image is given.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("what").required(true).multiple(true).args(["files", "pdq"])),
    after_help = "\
Examples:
  redline match upload.jpg
  redline match --pdq f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22 --max-distance 20
  redline match upload.jpg --dihedral --json

Each match names the origin (hotline) that lists the hash, its log index, the Hamming
distance and the labels. The exit code is 0 whether or not anything matched."
)]
pub struct MatchArgs {
    /// Image files to hash locally and match.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// A PDQ hash (64 hex digits); repeatable.
    #[arg(long, value_name = "HEX", value_parser = pdq_hex)]
    pdq: Vec<String>,
    /// Largest Hamming distance to report (default: the signal type's, 31 for PDQ).
    #[arg(long, value_name = "N")]
    max_distance: Option<u32>,
    /// Also match the 8 rotations and flips of each image. Rotations cannot be derived from a
    /// hash, so with --dihedral FILEs are sent to the node, which computes all 8 PDQ hashes in
    /// one pass (and drops the image); --pdq hashes are matched as given.
    #[arg(long)]
    dihedral: bool,
    /// Signal types computed from FILEs.
    #[arg(long = "type", value_name = "TYPE", value_delimiter = ',', default_value = "pdq", value_parser = signal_type)]
    types: Vec<SignalType>,
    /// Send the image bytes to the node and let it hash them instead of hashing here.
    #[arg(long)]
    send_image: bool,
}

pub async fn matches(a: MatchArgs, global: &Global, out: &mut Out) -> Result<bool> {
    let options = MatchOptions {
        max_distance: a.max_distance.unwrap_or(0),
        dihedral: a.dihedral,
    };
    let mut source: HashMap<(String, String), String> = HashMap::new();
    let mut signals = Vec::new();
    for v in &a.pdq {
        signals.push(Signal {
            signal_type: "pdq".into(),
            value: v.clone(),
            quality: 0,
        });
    }
    let mut images = Vec::new();
    for file in &a.files {
        if a.send_image || a.dihedral {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            images.push((file.clone(), bytes));
        } else {
            for s in hash_file(file, &a.types, redline_hashing::VideoPurpose::Query)? {
                warn_low_quality(file, &s);
                source.insert(
                    (s.signal_type.clone(), s.value.clone()),
                    file.display().to_string(),
                );
                signals.push(s);
            }
        }
    }
    let mut client = PlatformClient::connect_to(&global.target()).await?;
    let mut responses: Vec<(Option<String>, MatchResponse)> = Vec::new();
    if !signals.is_empty() {
        responses.push((None, client.match_signals(signals, options).await?));
    }
    for (file, bytes) in images {
        let (image, video) = if redline_hashing::looks_like_video(&bytes) {
            (Vec::new(), bytes)
        } else {
            (bytes, Vec::new())
        };
        let r = client
            .match_request(MatchRequest {
                signals: Vec::new(),
                image,
                video,
                max_distance: options.max_distance,
                dihedral: options.dihedral,
                ..Default::default()
            })
            .await
            .with_context(|| format!("{} was not matched", file.display()))?;
        responses.push((Some(file.display().to_string()), r));
    }

    let mut results = Vec::new();
    for (file, resp) in &responses {
        for q in &resp.results {
            let query = q.query.clone().unwrap_or_default();
            let from = file.clone().or_else(|| {
                source
                    .get(&(query.signal_type.clone(), query.value.clone()))
                    .cloned()
            });
            results.push((from, query, &q.matches));
        }
    }
    if out.json {
        let v: Vec<_> = results
            .iter()
            .map(|(file, query, matches)| {
                json!({
                    "file": file,
                    "query": {"signal_type": query.signal_type, "value": query.value, "quality": query.quality},
                    "matches": matches.iter().map(|m| {
                        let s = m.signal.clone().unwrap_or_default();
                        json!({
                            "origin": m.origin,
                            "index": m.index,
                            "signal_type": s.signal_type,
                            "value": s.value,
                            "distance": m.distance,
                            "labels": m.labels,
                            "legal_basis": m.legal_basis,
                            "quality": m.quality,
                            "video": m.video.as_ref().map(|v| json!({
                                "query_percent": v.query_percent,
                                "compared_percent": v.compared_percent,
                                "query_ranges": v.query_ranges.iter().map(|r| [r.start_ms, r.end_ms]).collect::<Vec<_>>(),
                                "compared_ranges": v.compared_ranges.iter().map(|r| [r.start_ms, r.end_ms]).collect::<Vec<_>>(),
                            })),
                        })
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        out.json_value(&json!({ "results": v }))?;
        return Ok(true);
    }
    for (file, query, matches) in &results {
        let from = file.as_ref().map(|f| format!(" ({f})")).unwrap_or_default();
        let n = matches.len();
        // A vPDQ value is 74 hex digits a frame: say how many instead.
        let value = if query.signal_type == SignalType::Vpdq.name() {
            format!(
                "({} frames)",
                query.value.len() / redline_proto::vpdq::FRAME_HEX
            )
        } else {
            query.value.clone()
        };
        out.line(format!(
            "{} {value}{from}: {}",
            query.signal_type,
            match n {
                0 => "no match".to_owned(),
                1 => "1 match".to_owned(),
                n => format!("{n} matches"),
            }
        ))?;
        for m in matches.iter() {
            out.line(format!(
                "  {}  index {}  distance {}  labels {}{}",
                m.origin,
                m.index,
                m.distance,
                if m.labels.is_empty() {
                    "-".to_owned()
                } else {
                    m.labels.join(",")
                },
                if m.legal_basis.is_empty() {
                    String::new()
                } else {
                    format!("  legal basis: {}", m.legal_basis)
                }
            ))?;
            if let Some(v) = &m.video {
                let spans = |r: &[redline_proto::pb::TimeRange]| {
                    r.iter()
                        .map(|t| {
                            format!(
                                "{:.1}-{:.1}s",
                                f64::from(t.start_ms) / 1e3,
                                f64::from(t.end_ms) / 1e3
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                };
                out.line(format!(
                    "    video: {:.1}% of the query's frames, {:.1}% of the listed video's; query {} listed {}",
                    v.query_percent,
                    v.compared_percent,
                    spans(&v.query_ranges),
                    spans(&v.compared_ranges)
                ))?;
            }
        }
    }
    Ok(true)
}
