//! A structural completeness check for JPEG: walks the marker segments and the entropy-coded
//! scans to the end-of-image marker.
//!
//! The JPEG decoder used by `image` conceals truncation (it fills missing blocks with grey and
//! returns an image), which would hash a half-received upload as if it were the real picture. An
//! upload cut short must instead be refused, so [`check_complete`] runs before decoding. It reads
//! each byte at most once and allocates nothing.

use crate::error::HashError;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const TEM: u8 = 0x01;

/// Ok if `data` is a JPEG whose segments and scans run through to an end-of-image marker
/// (trailing bytes after it are allowed, as many cameras append some).
pub(crate) fn check_complete(data: &[u8]) -> Result<(), HashError> {
    if data.len() < 2 || data[0] != 0xFF || data[1] != SOI {
        return Err(HashError::Corrupt(
            "JPEG does not start with a start-of-image marker".into(),
        ));
    }
    let truncated =
        |what: &str| HashError::Truncated(format!("JPEG ends {what} (no end-of-image marker)"));
    let mut pos = 2;
    loop {
        // Find the next marker; tolerate stray bytes between segments, as libjpeg does.
        let ff = data[pos..]
            .iter()
            .position(|&b| b == 0xFF)
            .ok_or_else(|| truncated("between segments"))?;
        pos += ff;
        while pos < data.len() && data[pos] == 0xFF {
            pos += 1; // fill bytes
        }
        let Some(&marker) = data.get(pos) else {
            return Err(truncated("inside a marker"));
        };
        pos += 1;
        match marker {
            EOI => return Ok(()),
            0x00 => continue, // stuffed byte outside a scan: stray data, skip
            TEM | 0xD0..=0xD7 => continue, // standalone markers
            _ => {
                let len_bytes = data
                    .get(pos..pos + 2)
                    .ok_or_else(|| truncated("inside a segment header"))?;
                let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
                if len < 2 {
                    return Err(HashError::Corrupt(format!(
                        "JPEG segment 0xFF{marker:02X} has invalid length {len}"
                    )));
                }
                if pos + len > data.len() {
                    return Err(truncated("inside a segment"));
                }
                pos += len;
                if marker == SOS {
                    pos = end_of_scan(data, pos)
                        .ok_or_else(|| truncated("inside compressed image data"))?;
                }
            }
        }
    }
}

/// Index of the first marker (an 0xFF not followed by a stuffed 0x00 or a restart marker) after
/// the entropy-coded data starting at `pos`, or `None` if the data ends first.
fn end_of_scan(data: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        pos += data.get(pos..)?.iter().position(|&b| b == 0xFF)?;
        match *data.get(pos + 1)? {
            0x00 | 0xD0..=0xD7 => pos += 2,
            0xFF => pos += 1, // fill byte before a marker
            _ => return Some(pos),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_structures() {
        // SOI, a 4-byte APP0, SOS with 2 bytes of header + scan data containing stuffing and a
        // restart marker, EOI.
        let ok = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB, 0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF,
            0x00, 0x34, 0xFF, 0xD3, 0x56, 0xFF, 0xD9, 0x00,
        ];
        assert!(check_complete(&ok).is_ok());
        for cut in 2..ok.len() - 2 {
            let e = check_complete(&ok[..cut]).unwrap_err();
            assert!(matches!(e, HashError::Truncated(_)), "cut at {cut}: {e}");
        }
        assert!(matches!(
            check_complete(b"\x89PNG"),
            Err(HashError::Corrupt(_))
        ));
        assert!(matches!(
            check_complete(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01]),
            Err(HashError::Corrupt(_))
        ));
    }
}
