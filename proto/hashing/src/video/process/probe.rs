//! Reading `ffprobe -of json` output for the first video stream into a [`VideoInfo`].

use serde_json::Value;

use crate::video::{VideoError, VideoInfo};

/// `ffprobe` arguments (after the common ones) that print what [`parse`] reads.
pub(crate) const SHOW_ENTRIES: &str = "stream=codec_type,codec_name,width,height,avg_frame_rate,\
r_frame_rate,nb_frames,duration:format=format_name,duration";

/// `"30000/1001"` -> 29.97; `None` for `0/0`, a zero or negative rate, or anything unparsable.
fn rate(text: &str) -> Option<f64> {
    let (num, den) = text.split_once('/')?;
    let num: i64 = num.trim().parse().ok()?;
    let den: i64 = den.trim().parse().ok()?;
    if num <= 0 || den <= 0 {
        return None;
    }
    Some(num as f64 / den as f64)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn number_text(v: &Value, key: &str) -> Option<f64> {
    let d: f64 = text(v, key).parse().ok()?;
    (d.is_finite() && d >= 0.0).then_some(d)
}

/// Parses ffprobe's JSON for `-select_streams v:0`.
pub(crate) fn parse(json: &str) -> Result<VideoInfo, VideoError> {
    let root: Value = serde_json::from_str(json).map_err(|e| VideoError::Corrupt {
        detail: format!("unreadable probe output: {e}"),
    })?;
    let stream = root
        .get("streams")
        .and_then(Value::as_array)
        .and_then(|s| s.first())
        .filter(|s| text(s, "codec_type") == "video")
        .ok_or_else(|| VideoError::NotAVideo {
            detail: "no video stream".into(),
        })?;
    let format = root.get("format").cloned().unwrap_or(Value::Null);
    let dim = |key: &str| stream.get(key).and_then(Value::as_u64).unwrap_or(0);
    let (width, height) = (dim("width"), dim("height"));
    if width == 0 || height == 0 {
        return Err(VideoError::Corrupt {
            detail: format!("video stream declares {width}x{height} frames"),
        });
    }
    let (avg, r) = (text(stream, "avg_frame_rate"), text(stream, "r_frame_rate"));
    let frame_rate = rate(avg)
        .or_else(|| rate(r))
        .ok_or_else(|| VideoError::NoFrameRate {
            avg: avg.to_string(),
            r: r.to_string(),
        })?;
    let duration_s = match (
        number_text(stream, "duration"),
        number_text(&format, "duration"),
    ) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let declared_frames = text(stream, "nb_frames").parse::<u64>().ok();
    // Dimensions beyond u32 cannot be valid; report them saturated so the limit check refuses.
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    Ok(VideoInfo {
        format: text(&format, "format_name").to_string(),
        codec: text(stream, "codec_name").to_string(),
        width: clamp(width),
        height: clamp(height),
        frame_rate,
        duration_s,
        declared_frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_real_probe() {
        let json = r#"{"programs":[],"streams":[{"codec_name":"h264","codec_type":"video",
            "width":480,"height":720,"r_frame_rate":"30/1","avg_frame_rate":"30000/1001",
            "duration":"18.800000","nb_frames":"564"}],
            "format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"18.816000"}}"#;
        let info = parse(json).unwrap();
        assert_eq!((info.width, info.height), (480, 720));
        assert_eq!(info.frame_rate, 30000.0 / 1001.0);
        assert_eq!(info.duration_s, Some(18.816));
        assert_eq!(info.declared_frames, Some(564));
        assert_eq!(info.codec, "h264");
    }

    #[test]
    fn refuses_what_the_reference_refuses() {
        assert!(matches!(
            parse(r#"{"streams":[],"format":{}}"#),
            Err(VideoError::NotAVideo { .. })
        ));
        assert!(matches!(
            parse(r#"{"streams":[{"codec_type":"video","width":0,"height":5}]}"#),
            Err(VideoError::Corrupt { .. })
        ));
        assert!(matches!(
            parse(
                r#"{"streams":[{"codec_type":"video","width":8,"height":8,
                "avg_frame_rate":"0/0","r_frame_rate":"0/0"}]}"#
            ),
            Err(VideoError::NoFrameRate { .. })
        ));
        // avg_frame_rate 0/0 falls back to r_frame_rate, as in the reference.
        let info = parse(
            r#"{"streams":[{"codec_type":"video","width":8,"height":8,
            "avg_frame_rate":"0/0","r_frame_rate":"25/1","duration":"N/A"}]}"#,
        )
        .unwrap();
        assert_eq!(info.frame_rate, 25.0);
        assert_eq!(info.duration_s, None);
    }
}
