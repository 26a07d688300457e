//! Turning a failed decoder run into the right [`VideoError`]: invalid input, over a limit, or
//! decoder unavailable. ffmpeg runs with `-loglevel error`, so its stderr holds only error lines.

use crate::video::process::sandbox::Outcome;
use crate::video::{VideoError, VideoLimits};

const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;

/// The first error line, without ffmpeg's `[h264 @ 0x55d7...]` context pointers, cut to 200
/// characters.
pub(crate) fn first_line(stderr: &str) -> String {
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(" @ 0x") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 5..];
        let skip = tail
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(tail.len());
        rest = &tail[skip..];
    }
    out.push_str(rest);
    out.chars().take(200).collect()
}

/// `Picture size 100000x100000 is invalid` -> `(100000, 100000)`.
fn picture_size(stderr: &str) -> Option<(u64, u64)> {
    let at = stderr.find("Picture size ")? + "Picture size ".len();
    let dims = stderr[at..].split_whitespace().next()?;
    let (w, h) = dims.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

/// Why a decoder run that did not succeed failed.
pub(crate) fn failure(outcome: &Outcome, limits: &VideoLimits) -> VideoError {
    if outcome.timed_out {
        return VideoError::Deadline {
            seconds: limits.deadline.as_secs_f64(),
        };
    }
    let stderr = outcome.stderr.as_str();
    let detail = first_line(stderr);
    match outcome.signal() {
        Some(SIGXCPU) => {
            return VideoError::CpuTime {
                seconds: limits.cpu_seconds,
            }
        }
        // Not our watchdog: the kernel's OOM killer, or an operator.
        Some(SIGKILL) => {
            return VideoError::OutOfMemory {
                limit_bytes: limits.address_space_bytes,
                detail: "decoder was killed (SIGKILL)".into(),
            }
        }
        Some(sig) => {
            return VideoError::Corrupt {
                detail: format!("the decoder crashed on this input (signal {sig})"),
            }
        }
        None => {}
    }
    let lower = stderr.to_ascii_lowercase();
    let has = |needle: &str| lower.contains(needle);
    if let Some((width, height)) = picture_size(stderr) {
        if let Err(e) = limits.check_dimensions(width, height) {
            return e;
        }
    }
    if has("cannot allocate memory")
        || has("out of memory")
        || has("failed to map segment")
        || has("error while loading shared libraries")
    {
        return VideoError::OutOfMemory {
            limit_bytes: limits.address_space_bytes,
            detail,
        };
    }
    if has("not on whitelist")
        || has("invalid data found when processing input")
        || has("could not find codec parameters")
        || has("moov atom not found")
        || has("no video stream")
    {
        return VideoError::NotAVideo { detail };
    }
    if detail.is_empty() {
        // ffmpeg exits silently when a library allocation fails under the address-space limit.
        return VideoError::OutOfMemory {
            limit_bytes: limits.address_space_bytes,
            detail: format!(
                "decoder exited with {} and no message (usually the address-space limit)",
                outcome.status
            ),
        };
    }
    VideoError::Corrupt { detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_drops_pointers() {
        assert_eq!(
            first_line("\n[h264 @ 0x55d71e8e6900] Invalid NAL unit size (10097 > 9599).\nmore"),
            "[h264] Invalid NAL unit size (10097 > 9599)."
        );
        assert_eq!(first_line(""), "");
    }

    #[test]
    fn picture_size_is_parsed() {
        assert_eq!(
            picture_size("[IMGUTILS @ 0x7ffe] Picture size 100000x100000 is invalid\n"),
            Some((100_000, 100_000))
        );
        assert_eq!(picture_size("nothing"), None);
    }
}
