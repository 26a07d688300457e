//! vPDQ's two text forms, so hash lists move both ways between Redline, the reference tools and
//! python-threatexchange / HMA.
//!
//! - **Reference** (`vpdq-hash-video` output, `vpdq/sample-hashes/*.txt`, read by
//!   `match-hashes-brute`): one line per frame, `frame_number,quality,pdqhex,timestamp`, the
//!   timestamp printed with `std::fixed << std::setprecision(3)` (`%.3f`).
//! - **python-threatexchange signal string** (`VideoVPDQSignal`, `vpdq_util.vpdq_to_json`, which
//!   HMA stores and exchanges): `json.dumps` of a list with one string per frame,
//!   `f"{pdq_hex},{quality},{timestamp:.3}"`. Note `:.3` is Python's *general* format with 3
//!   significant digits, not 3 decimals: 12.345 s becomes `12.3`, 123.4 s becomes `1.23e+02`. pytx
//!   round-trips its own strings, so timestamps it exchanges really are that coarse; we write the
//!   same bytes and read any float. The frame number is not carried: frames parsed from this
//!   form are numbered by position.

use thiserror::Error;

use crate::pdq::PdqHash;
use crate::vpdq::VpdqFrame;

/// Why a vPDQ text could not be read. Messages quote at most the offending field, never a whole
/// list.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum VpdqTextError {
    /// A line or item does not have the expected number of comma-separated fields.
    #[error("vPDQ frame {index}: expected {expected} comma-separated fields, found {found}")]
    FieldCount {
        /// 0-based line or item.
        index: usize,
        /// Fields required by the form.
        expected: usize,
        /// Fields found.
        found: usize,
    },
    /// A field is not valid for its position.
    #[error("vPDQ frame {index}: invalid {field} {value:?}")]
    BadField {
        /// 0-based line or item.
        index: usize,
        /// Which field (`frame_number`, `quality`, `pdq`, `timestamp`).
        field: &'static str,
        /// The text of the field, cut to 80 characters.
        value: String,
    },
    /// Reference lines must number frames in increasing order (the reference CLI sorts them).
    #[error("vPDQ frame {index}: frame number {frame_number} does not follow {previous}")]
    FrameOrder {
        /// 0-based line.
        index: usize,
        /// This line's frame number.
        frame_number: u64,
        /// The previous line's frame number.
        previous: u64,
    },
    /// The python-threatexchange form is not a JSON list of strings.
    #[error("vPDQ signal is not a JSON list of strings: {0}")]
    NotJsonList(String),
}

fn bad(index: usize, field: &'static str, value: &str) -> VpdqTextError {
    VpdqTextError::BadField {
        index,
        field,
        value: value.chars().take(80).collect(),
    }
}

fn parse_quality(index: usize, text: &str) -> Result<u8, VpdqTextError> {
    match text.trim().parse::<u8>() {
        Ok(q) if q <= 100 => Ok(q),
        _ => Err(bad(index, "quality", text)),
    }
}

fn parse_pdq(index: usize, text: &str) -> Result<PdqHash, VpdqTextError> {
    let hash = PdqHash::from_hex(text.trim()).map_err(|_| bad(index, "pdq", text))?;
    Ok(hash)
}

fn parse_timestamp(index: usize, text: &str) -> Result<f64, VpdqTextError> {
    match text.trim().parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err(bad(index, "timestamp", text)),
    }
}

/// One frame in the reference's line form (no newline).
pub fn format_reference_line(frame: &VpdqFrame) -> String {
    format!(
        "{},{},{},{:.3}",
        frame.frame_number,
        frame.quality,
        frame.pdq.to_hex(),
        frame.timestamp_s
    )
}

/// Frames in the reference's file form: one line per frame, each ending in `\n`.
pub fn format_reference(frames: &[VpdqFrame]) -> String {
    let mut out = String::with_capacity(frames.len() * 84);
    for f in frames {
        out.push_str(&format_reference_line(f));
        out.push('\n');
    }
    out
}

/// Parses the reference's file form. Blank lines (and a final newline) are ignored; frame numbers
/// must increase. Timestamps are kept as printed (3 decimals).
pub fn parse_reference(text: &str) -> Result<Vec<VpdqFrame>, VpdqTextError> {
    let mut frames: Vec<VpdqFrame> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 4 {
            return Err(VpdqTextError::FieldCount {
                index,
                expected: 4,
                found: fields.len(),
            });
        }
        let frame_number = fields[0]
            .trim()
            .parse::<u64>()
            .map_err(|_| bad(index, "frame_number", fields[0]))?;
        if let Some(prev) = frames.last() {
            if frame_number <= prev.frame_number {
                return Err(VpdqTextError::FrameOrder {
                    index,
                    frame_number,
                    previous: prev.frame_number,
                });
            }
        }
        frames.push(VpdqFrame {
            frame_number,
            quality: parse_quality(index, fields[1])?,
            pdq: parse_pdq(index, fields[2])?,
            timestamp_s: parse_timestamp(index, fields[3])?,
        });
    }
    Ok(frames)
}

/// Python's `format(x, ".3")` for a finite float: general format with 3 significant digits,
/// trailing zeros dropped, `.0` added to integral fixed-point results, scientific from 100 up
/// (exponent >= precision - 1, unlike C's `%g`) with exponents as `e+02`.
pub fn python_general_3(x: f64) -> String {
    const PRECISION: i32 = 3;
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // The exponent after rounding to 3 significant digits decides the notation, as in C's %g.
    let sci = format!("{:.*e}", (PRECISION - 1) as usize, x);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    // Python switches to scientific notation at `exp >= precision - 1`, one earlier than %g.
    if (-4..PRECISION - 1).contains(&exp) {
        let decimals = (PRECISION - 1 - exp) as usize;
        let mut s = format!("{:.*}", decimals, x);
        if s.contains('.') {
            while s.ends_with('0') {
                s.pop();
            }
            if s.ends_with('.') {
                s.pop();
            }
        }
        if !s.contains('.') {
            s.push_str(".0");
        }
        s
    } else {
        let mut m = mantissa.to_string();
        if m.contains('.') {
            while m.ends_with('0') {
                m.pop();
            }
            if m.ends_with('.') {
                m.pop();
            }
        }
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    }
}

/// One frame as python-threatexchange's `VpdqCompactFeature.__str__`: `pdqhex,quality,timestamp`.
pub fn format_signal_item(frame: &VpdqFrame) -> String {
    format!(
        "{},{},{}",
        frame.pdq.to_hex(),
        frame.quality,
        python_general_3(frame.timestamp_s)
    )
}

/// Frames as python-threatexchange's vPDQ signal string (`vpdq_to_json`): the same bytes
/// `json.dumps` writes, `["hex,q,t", "hex,q,t"]`.
pub fn format_signal(frames: &[VpdqFrame]) -> String {
    let items: Vec<String> = frames
        .iter()
        .map(|f| format!("\"{}\"", format_signal_item(f)))
        .collect();
    format!("[{}]", items.join(", "))
}

/// Parses one `pdqhex,quality,timestamp` item (python-threatexchange's
/// `VpdqCompactFeature.from_str`), numbering it `frame_number`.
pub fn parse_signal_item(
    index: usize,
    frame_number: u64,
    item: &str,
) -> Result<VpdqFrame, VpdqTextError> {
    let fields: Vec<&str> = item.split(',').collect();
    if fields.len() != 3 {
        return Err(VpdqTextError::FieldCount {
            index,
            expected: 3,
            found: fields.len(),
        });
    }
    Ok(VpdqFrame {
        frame_number,
        pdq: parse_pdq(index, fields[0])?,
        quality: parse_quality(index, fields[1])?,
        timestamp_s: parse_timestamp(index, fields[2])?,
    })
}

/// Parses python-threatexchange's vPDQ signal string (`json_to_vpdq`): a JSON list of
/// `"pdqhex,quality,timestamp"` strings; an empty string is an empty list, as in pytx. Frames are
/// numbered by position (the form carries no frame numbers).
pub fn parse_signal(text: &str) -> Result<Vec<VpdqFrame>, VpdqTextError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<String> =
        serde_json::from_str(text).map_err(|e| VpdqTextError::NotJsonList(e.to_string()))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_signal_item(i, i as u64, item))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_general_format_matches_cpython() {
        // Left: the float; right: CPython 3.11's f"{x:.3}".
        let cases = [
            (0.0, "0.0"),
            (0.033, "0.033"),
            (0.0333333, "0.0333"),
            (1.0, "1.0"),
            (5.0, "5.0"),
            (10.0, "10.0"),
            (12.345, "12.3"),
            (99.96, "1e+02"),
            (100.0, "1e+02"),
            (123.4, "1.23e+02"),
            (1234.5, "1.23e+03"),
            (0.00001, "1e-05"),
            (0.0001, "0.0001"),
            (19.7666, "19.8"),
            (0.9999, "1.0"),
            (9.9999, "10.0"),
            (0.125, "0.125"),
            (0.0625, "0.0625"),
            (2.5, "2.5"),
            (12.25, "12.2"),
            (123.0, "1.23e+02"),
            (50.0, "50.0"),
            (99.4, "99.4"),
            (0.00012345, "0.000123"),
        ];
        for (x, want) in cases {
            assert_eq!(python_general_3(x), want, "{x}");
        }
    }

    fn frame(n: u64, q: u8, t: f64) -> VpdqFrame {
        let mut bytes = [0u8; 32];
        bytes[0] = n as u8;
        bytes[31] = 0xab;
        VpdqFrame {
            frame_number: n,
            quality: q,
            pdq: PdqHash(bytes),
            timestamp_s: t,
        }
    }

    #[test]
    fn reference_form_round_trips() {
        let frames = vec![
            frame(0, 100, 0.0),
            frame(1, 49, 1.0 / 30.0),
            frame(7, 0, 0.2333),
        ];
        let text = format_reference(&frames);
        assert!(text.starts_with(
            "0,100,00000000000000000000000000000000000000000000000000000000000000ab,0.000\n1,49,"
        ));
        let back = parse_reference(&text).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[1].timestamp_s, 0.033);
        assert_eq!(back[2].pdq, frames[2].pdq);
        assert_eq!(back[2].frame_number, 7);
    }

    #[test]
    fn reference_form_refuses_bad_lines() {
        let h = "ab".repeat(32);
        assert!(matches!(
            parse_reference(&format!("0,100,{h}\n")),
            Err(VpdqTextError::FieldCount { found: 3, .. })
        ));
        assert!(matches!(
            parse_reference(&format!("0,101,{h},0.0\n")),
            Err(VpdqTextError::BadField {
                field: "quality",
                ..
            })
        ));
        assert!(matches!(
            parse_reference(&format!("0,1,{h}x,0.0\n")),
            Err(VpdqTextError::BadField { field: "pdq", .. })
        ));
        assert!(matches!(
            parse_reference(&format!("0,1,{h},-1\n")),
            Err(VpdqTextError::BadField {
                field: "timestamp",
                ..
            })
        ));
        assert!(matches!(
            parse_reference(&format!("1,1,{h},0\n1,1,{h},0\n")),
            Err(VpdqTextError::FrameOrder { index: 1, .. })
        ));
    }

    #[test]
    fn signal_form_is_pytx_json() {
        let frames = vec![
            frame(0, 100, 0.0),
            frame(30, 87, 1.0),
            frame(3690, 50, 123.0),
        ];
        let text = format_signal(&frames);
        let h0 = frames[0].pdq.to_hex();
        assert!(
            text.starts_with(&format!("[\"{h0},100,0.0\", \"")),
            "{text}"
        );
        assert!(text.ends_with(",50,1.23e+02\"]"), "{text}");
        let back = parse_signal(&text).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[2].frame_number, 2, "numbered by position");
        assert_eq!(back[2].timestamp_s, 123.0);
        assert_eq!(back[1].pdq, frames[1].pdq);
        assert_eq!(parse_signal("").unwrap(), vec![]);
        assert!(matches!(
            parse_signal("{}"),
            Err(VpdqTextError::NotJsonList(_))
        ));
        assert!(matches!(
            parse_signal("[\"ab,1\"]"),
            Err(VpdqTextError::FieldCount { expected: 3, .. })
        ));
    }
}
