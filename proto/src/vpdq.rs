//! How a vPDQ value travels: the binary frame list that `AddEntry.hash` and `Signal` carry.
//!
//! A vPDQ hash is not one bit string but a list of frames, each a PDQ hash with its quality and
//! timestamp (Meta's `vpdq`). On the wire (the `hash` bytes of an `AddEntry`, the hex of a
//! `Signal.value`) a value is those frames back to back, [`FRAME_BYTES`] each:
//!
//! | bytes  | field                                                                 |
//! |--------|-----------------------------------------------------------------------|
//! | 0..32  | the frame's PDQ hash, in the byte order of its hex text                |
//! | 32     | PDQ quality, 0..=100                                                   |
//! | 33..37 | timestamp in milliseconds from the start of the video, big-endian u32  |
//!
//! Timestamps never decrease. The frame number is not carried (python-threatexchange's text
//! form does not carry it either, so a list imported from HMA could not supply it).
//!
//! One value holds at most [`MAX_FRAMES`] frames, so that an entry stays within the 65,535 bytes
//! a tlog-tiles entry bundle can hold whatever its labels: 1,200 x 37 = 44,400 bytes of frames,
//! plus at most 18,432 bytes of labels, legal basis and case reference. A video with more
//! frames than that (after the listing side's de-duplication) is listed as several entries, each
//! a consecutive part of it; see the README ("Video").

use crate::signal::SignalError;

/// Bytes of one frame record.
pub const FRAME_BYTES: usize = 37;

/// Most frames one vPDQ value (one entry) holds.
pub const MAX_FRAMES: usize = 1200;

/// Hex characters of one frame record.
pub const FRAME_HEX: usize = FRAME_BYTES * 2;

/// One frame of a vPDQ value, as the protocol carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHash {
    /// The frame's PDQ hash.
    pub pdq: [u8; 32],
    /// PDQ quality 0..=100.
    pub quality: u8,
    /// Start of the frame, milliseconds from the start of the video.
    pub timestamp_ms: u32,
}

/// Checks that `bytes` is a valid vPDQ value: a whole number of frame records, 1 to
/// [`MAX_FRAMES`] of them, each quality at most 100, timestamps not decreasing.
pub fn check(bytes: &[u8]) -> Result<(), SignalError> {
    let frames = bytes.len() / FRAME_BYTES;
    if !bytes.len().is_multiple_of(FRAME_BYTES) || frames == 0 || frames > MAX_FRAMES {
        return Err(SignalError::BadFrameList {
            len: bytes.len(),
            problem: if !bytes.len().is_multiple_of(FRAME_BYTES) {
                "is not a whole number of 37-byte frames"
            } else if frames == 0 {
                "holds no frame"
            } else {
                "holds more than 1200 frames"
            },
        });
    }
    let mut previous = 0u32;
    for (i, record) in bytes.chunks_exact(FRAME_BYTES).enumerate() {
        let frame = read(record);
        if frame.quality > 100 {
            return Err(SignalError::BadFrame {
                frame: i,
                problem: "quality is above 100",
            });
        }
        if frame.timestamp_ms < previous {
            return Err(SignalError::BadFrame {
                frame: i,
                problem: "timestamp is before the previous frame's",
            });
        }
        previous = frame.timestamp_ms;
    }
    Ok(())
}

fn read(record: &[u8]) -> FrameHash {
    let mut pdq = [0u8; 32];
    pdq.copy_from_slice(&record[..32]);
    FrameHash {
        pdq,
        quality: record[32],
        timestamp_ms: u32::from_be_bytes(record[33..37].try_into().expect("4 bytes")),
    }
}

/// The frames of a value (checked with [`check`] first).
pub fn decode(bytes: &[u8]) -> Result<Vec<FrameHash>, SignalError> {
    check(bytes)?;
    Ok(bytes.chunks_exact(FRAME_BYTES).map(read).collect())
}

/// The frames of a value already checked (a stored entry): no validation, so a caller holding
/// many entries does not re-check each on every match. Trailing bytes short of a frame are
/// ignored.
pub fn frames_unchecked(bytes: &[u8]) -> impl Iterator<Item = FrameHash> + '_ {
    bytes.chunks_exact(FRAME_BYTES).map(read)
}

/// Encodes frames as one value. Errors when the result would not [`check`] (no frame, too many,
/// a quality above 100, decreasing timestamps).
pub fn encode(frames: &[FrameHash]) -> Result<Vec<u8>, SignalError> {
    let mut out = Vec::with_capacity(frames.len() * FRAME_BYTES);
    for f in frames {
        out.extend_from_slice(&f.pdq);
        out.push(f.quality);
        out.extend_from_slice(&f.timestamp_ms.to_be_bytes());
    }
    check(&out)?;
    Ok(out)
}

/// Milliseconds of a timestamp in seconds, rounded to the nearest millisecond and saturated to
/// the u32 range (49 days), so any float a hasher or an imported list gives has one encoding.
pub fn millis(seconds: f64) -> u32 {
    if seconds.is_nan() || seconds <= 0.0 {
        0
    } else {
        (seconds * 1000.0).round().min(f64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seed: u8, quality: u8, timestamp_ms: u32) -> FrameHash {
        FrameHash {
            pdq: [seed; 32],
            quality,
            timestamp_ms,
        }
    }

    #[test]
    fn frames_round_trip_in_the_documented_layout() {
        let frames = [frame(1, 90, 0), frame(2, 49, 1000), frame(3, 100, 1000)];
        let bytes = encode(&frames).unwrap();
        assert_eq!(bytes.len(), 3 * FRAME_BYTES);
        assert_eq!(&bytes[32..37], &[90, 0, 0, 0, 0]);
        assert_eq!(
            &bytes[FRAME_BYTES + 32..2 * FRAME_BYTES],
            &[49, 0, 0, 3, 232]
        );
        assert_eq!(decode(&bytes).unwrap(), frames);
        assert_eq!(frames_unchecked(&bytes).collect::<Vec<_>>(), frames);
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let e = check(&[0u8; 36]).unwrap_err().to_string();
        assert!(e.contains("whole number of 37-byte frames"), "{e}");
        assert!(check(&[]).unwrap_err().to_string().contains("no frame"));
        let too_many = vec![0u8; (MAX_FRAMES + 1) * FRAME_BYTES];
        assert!(check(&too_many).unwrap_err().to_string().contains("1200"));
        assert!(check(&vec![0u8; MAX_FRAMES * FRAME_BYTES]).is_ok());

        let mut bytes = encode(&[frame(1, 90, 5), frame(2, 90, 9)]).unwrap();
        bytes[FRAME_BYTES + 32] = 101;
        let e = check(&bytes).unwrap_err().to_string();
        assert!(e.contains("frame 1") && e.contains("quality"), "{e}");
        let e = encode(&[frame(1, 90, 9), frame(2, 90, 5)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("frame 1") && e.contains("timestamp"), "{e}");
    }

    #[test]
    fn millis_rounds_and_saturates() {
        assert_eq!(millis(0.033_333_335), 33);
        assert_eq!(millis(1.0005), 1001);
        assert_eq!(millis(-1.0), 0);
        assert_eq!(millis(f64::NAN), 0);
        assert_eq!(millis(1e12), u32::MAX);
    }
}
