//! Signal types: the names two nodes exchange, their sizes, and their canonical hex text.
//!
//! A signal type's name fixes the algorithm, the hash size and the preprocessing, so a hash
//! labelled `dhash-8x8` by one node means exactly the same bits on every other node. The server
//! and the client validate incoming hashes here (unknown type, wrong length, bad hex all give a
//! [`SignalError`] naming the problem).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A kind of hash this crate computes and Redline exchanges.
///
/// See each variant for the exact algorithm; the perceptual ones are compared by Hamming
/// distance ([`hamming_distance`]), the exact ones only by equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignalType {
    /// `pdq`: Meta's PDQ, 256 bits, hex as the reference implementation prints it
    /// (see `redline_hashing::pdq`). The industry's interchange hash.
    Pdq,
    /// `phash-dct-8x8`: img_hash-family pHash, 64 bits (see `redline_hashing::family`).
    PhashDct8x8,
    /// `dhash-8x8`: img_hash-family horizontal-gradient dHash, 64 bits.
    Dhash8x8,
    /// `ahash-8x8`: img_hash-family mean aHash, 64 bits.
    Ahash8x8,
    /// `blockhash-16x16`: img_hash-family blockhash, 256 bits.
    Blockhash16x16,
    /// `md5`: MD5 of the exact encoded bytes, 128 bits. Finds only byte-identical files.
    Md5,
    /// `sha256`: SHA-256 of the exact encoded bytes, 256 bits. Finds only byte-identical files.
    Sha256,
    /// `vpdq`: Meta's video PDQ, a list of 1..=1200 frames, each a PDQ hash with its quality and
    /// timestamp (see [`crate::vpdq`] for the bytes). Compared frame by frame
    /// ([`Distance::Frames`]), not as one bit string.
    Vpdq,
    /// `video_md5`: MD5 of a video file's bytes (python-threatexchange's `video_md5`,
    /// StopNCII's `VideoMD5`), 128 bits.
    VideoMd5,
    /// `video_sha256`: SHA-256 of a video file's bytes, 256 bits.
    VideoSha256,
}

impl SignalType {
    /// Every signal type, in a stable order (the order of [`SignalType::name`] listings).
    pub const ALL: [SignalType; 10] = [
        SignalType::Pdq,
        SignalType::PhashDct8x8,
        SignalType::Dhash8x8,
        SignalType::Ahash8x8,
        SignalType::Blockhash16x16,
        SignalType::Md5,
        SignalType::Sha256,
        SignalType::Vpdq,
        SignalType::VideoMd5,
        SignalType::VideoSha256,
    ];

    /// The types computed from an image (every type but the video ones), in [`SignalType::ALL`]'s
    /// order.
    pub const IMAGE: [SignalType; 7] = [
        SignalType::Pdq,
        SignalType::PhashDct8x8,
        SignalType::Dhash8x8,
        SignalType::Ahash8x8,
        SignalType::Blockhash16x16,
        SignalType::Md5,
        SignalType::Sha256,
    ];

    /// The wire name, stable forever: changing it (or what it means) splits the federation.
    pub const fn name(self) -> &'static str {
        match self {
            SignalType::Pdq => "pdq",
            SignalType::PhashDct8x8 => "phash-dct-8x8",
            SignalType::Dhash8x8 => "dhash-8x8",
            SignalType::Ahash8x8 => "ahash-8x8",
            SignalType::Blockhash16x16 => "blockhash-16x16",
            SignalType::Md5 => "md5",
            SignalType::Sha256 => "sha256",
            SignalType::Vpdq => "vpdq",
            SignalType::VideoMd5 => "video_md5",
            SignalType::VideoSha256 => "video_sha256",
        }
    }

    /// Parses a wire name (exact, lowercase). Unknown names are an error listing the known ones.
    pub fn from_name(name: &str) -> Result<SignalType, SignalError> {
        SignalType::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| SignalError::UnknownType {
                name: name.chars().take(64).collect(),
                known: SignalType::ALL.map(SignalType::name).join(", "),
            })
    }

    /// Hash size in bits (`vpdq`: of one frame's PDQ hash).
    pub const fn bits(self) -> u32 {
        match self {
            SignalType::Pdq
            | SignalType::Blockhash16x16
            | SignalType::Sha256
            | SignalType::Vpdq
            | SignalType::VideoSha256 => 256,
            SignalType::PhashDct8x8 | SignalType::Dhash8x8 | SignalType::Ahash8x8 => 64,
            SignalType::Md5 | SignalType::VideoMd5 => 128,
        }
    }

    /// Size of a value in bytes; `vpdq`: of one frame record (a value holds 1 to
    /// [`crate::vpdq::MAX_FRAMES`] of them).
    pub const fn byte_len(self) -> usize {
        match self {
            SignalType::Vpdq => crate::vpdq::FRAME_BYTES,
            _ => (self.bits() / 8) as usize,
        }
    }

    /// Length of the canonical hex text (two lowercase characters per byte); `vpdq`: of one
    /// frame record.
    pub const fn hex_len(self) -> usize {
        self.byte_len() * 2
    }

    /// Whether the value's length is fixed (every type but `vpdq`).
    pub const fn is_fixed_len(self) -> bool {
        !matches!(self, SignalType::Vpdq)
    }

    /// Whether near (not only equal) hashes mean similar content, i.e. whether a
    /// Hamming-distance search makes sense. False for the file digests.
    pub const fn is_perceptual(self) -> bool {
        !matches!(
            self,
            SignalType::Md5 | SignalType::Sha256 | SignalType::VideoMd5 | SignalType::VideoSha256
        )
    }

    /// Whether this type is computed from a video file (false: from an image file).
    pub const fn is_video(self) -> bool {
        matches!(
            self,
            SignalType::Vpdq | SignalType::VideoMd5 | SignalType::VideoSha256
        )
    }

    /// Whether computing this type needs an image's decoded pixels (false: only the encoded
    /// bytes, or a video).
    pub const fn needs_pixels(self) -> bool {
        self.is_perceptual() && !self.is_video()
    }

    /// Checks that raw hash bytes are a value of this type: its length, and for `vpdq` a
    /// well-formed frame list ([`crate::vpdq::check`]).
    pub fn check_bytes(self, bytes: &[u8]) -> Result<(), SignalError> {
        if self == SignalType::Vpdq {
            return crate::vpdq::check(bytes);
        }
        if bytes.len() == self.byte_len() {
            Ok(())
        } else {
            Err(SignalError::WrongByteLength {
                signal_type: self.name(),
                expected: self.byte_len(),
                bits: self.bits(),
                got: bytes.len(),
            })
        }
    }

    /// Parses hex text into hash bytes, checking the length for this type. Upper-case digits are
    /// accepted (the canonical form from [`SignalType::format_hex`] is lowercase); whitespace is not.
    pub fn parse_hex(self, text: &str) -> Result<Vec<u8>, SignalError> {
        let got = text.chars().count();
        if self == SignalType::Vpdq {
            // Bounded before parsing: the frame list's own check follows.
            if got == 0
                || !got.is_multiple_of(crate::vpdq::FRAME_HEX)
                || got > crate::vpdq::MAX_FRAMES * crate::vpdq::FRAME_HEX
            {
                return Err(SignalError::VpdqHexLength { got });
            }
        } else if got != self.hex_len() {
            return Err(SignalError::WrongHexLength {
                signal_type: self.name(),
                expected: self.hex_len(),
                bits: self.bits(),
                got,
            });
        }
        let mut out = Vec::with_capacity(self.byte_len());
        let mut hi = 0u8;
        for (position, ch) in text.chars().enumerate() {
            let nibble = ch.to_digit(16).ok_or(SignalError::BadHex {
                signal_type: self.name(),
                ch,
                position,
            })? as u8;
            if position % 2 == 0 {
                hi = nibble;
            } else {
                out.push(hi << 4 | nibble);
            }
        }
        if self == SignalType::Vpdq {
            crate::vpdq::check(&out)?;
        }
        Ok(out)
    }

    /// How values are compared, with the default radius for bit hashes.
    pub const fn distance(self) -> Distance {
        match self {
            // 31 is ThreatExchange's recommended PDQ match threshold (distance <= 31).
            SignalType::Pdq => Distance::Hamming { default_max: 31 },
            // ~8% of the bits, as for PDQ's 31/256.
            SignalType::Blockhash16x16 => Distance::Hamming { default_max: 20 },
            SignalType::PhashDct8x8 | SignalType::Dhash8x8 | SignalType::Ahash8x8 => {
                Distance::Hamming { default_max: 6 }
            }
            // A frame matches a frame within ThreatExchange's PDQ threshold.
            SignalType::Vpdq => Distance::Frames { default_max: 31 },
            SignalType::Md5
            | SignalType::Sha256
            | SignalType::VideoMd5
            | SignalType::VideoSha256 => Distance::Exact,
        }
    }

    /// Formats hash bytes as canonical lowercase hex, checking the length for this type.
    pub fn format_hex(self, bytes: &[u8]) -> Result<String, SignalError> {
        self.check_bytes(bytes)?;
        Ok(to_hex(bytes))
    }
}

impl fmt::Display for SignalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SignalType {
    type Err = SignalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SignalType::from_name(s)
    }
}

/// How two values of a signal type are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distance {
    /// Bit hashes: any Hamming distance up to a type default.
    Hamming {
        /// Radius used when a request does not lower it.
        default_max: u32,
    },
    /// Cryptographic digests: equal or not.
    Exact,
    /// Frame lists (`vpdq`): two frames match within a Hamming radius (default 31), and two
    /// videos by the share of frames that match (see `redline_hashing::vpdq::matcher`).
    Frames {
        /// Frame radius used when a request does not lower it.
        default_max: u32,
    },
}

/// A signal-type name or a hash value was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalError {
    /// The name is not one of [`SignalType::ALL`].
    #[error("unknown signal type {name:?} (known: {known})")]
    UnknownType {
        /// The name given (truncated to 64 characters).
        name: String,
        /// The known names, comma separated.
        known: String,
    },
    /// The hex text has the wrong number of characters for the type.
    #[error("{signal_type} hash must be {expected} hex characters ({bits} bits), got {got}")]
    WrongHexLength {
        /// The signal type's name.
        signal_type: &'static str,
        /// Hex characters expected.
        expected: usize,
        /// Bits in the hash.
        bits: u32,
        /// Hex characters given.
        got: usize,
    },
    /// A character is not a hex digit.
    #[error("{signal_type} hash has a non-hex character {ch:?} at position {position}")]
    BadHex {
        /// The signal type's name.
        signal_type: &'static str,
        /// The offending character.
        ch: char,
        /// Its character index in the text.
        position: usize,
    },
    /// A `vpdq` hex text whose length is not 1 to 1200 frames of 74 hex characters.
    #[error(
        "vpdq hash must be 1 to 1200 frames of 74 hex characters (37 bytes) each, got {got} characters"
    )]
    VpdqHexLength {
        /// Hex characters given.
        got: usize,
    },
    /// A `vpdq` value that is not a whole list of frames.
    #[error("vpdq hash of {len} bytes {problem}")]
    BadFrameList {
        /// Bytes given.
        len: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// One frame of a `vpdq` value is invalid.
    #[error("vpdq frame {frame}: {problem}")]
    BadFrame {
        /// 0-based frame.
        frame: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// Raw hash bytes of the wrong length.
    #[error("{signal_type} hash must be {expected} bytes ({bits} bits), got {got}")]
    WrongByteLength {
        /// The signal type's name.
        signal_type: &'static str,
        /// Bytes expected.
        expected: usize,
        /// Bits in the hash.
        bits: u32,
        /// Bytes given.
        got: usize,
    },
}

/// Number of differing bits between `a` and `b`.
///
/// Pure and allocation-free, so index scans can call it in a tight loop. Hashes of one signal
/// type always have equal lengths; if the lengths differ anyway, every bit of the bytes past the
/// shorter slice counts as different, so a length mismatch can never look like a close match.
pub fn hamming_distance(a: &[u8], b: &[u8]) -> u32 {
    let n = a.len().min(b.len());
    let (a_head, a_tail) = a.split_at(n);
    let (b_head, b_tail) = b.split_at(n);
    let mut a_words = a_head.chunks_exact(8);
    let mut b_words = b_head.chunks_exact(8);
    let mut dist = 0u32;
    for (x, y) in (&mut a_words).zip(&mut b_words) {
        let x = u64::from_le_bytes(x.try_into().expect("chunk of 8"));
        let y = u64::from_le_bytes(y.try_into().expect("chunk of 8"));
        dist += (x ^ y).count_ones();
    }
    for (x, y) in a_words.remainder().iter().zip(b_words.remainder()) {
        dist += (x ^ y).count_ones();
    }
    dist + 8 * (a_tail.len() + b_tail.len()) as u32
}

/// Lowercase hex of any bytes (no length check; see [`SignalType::format_hex`] for the checked
/// form).
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sizes() {
        for t in SignalType::ALL {
            assert_eq!(SignalType::from_name(t.name()), Ok(t));
            assert_eq!(t.name().parse::<SignalType>(), Ok(t));
            if t.is_fixed_len() {
                assert_eq!(t.byte_len() * 8, t.bits() as usize);
            }
            let zeros = vec![0u8; t.byte_len()];
            let hex = t.format_hex(&zeros).unwrap();
            assert_eq!(hex.len(), t.hex_len());
            assert_eq!(t.parse_hex(&hex).unwrap(), zeros);
        }
        assert_eq!(SignalType::Pdq.hex_len(), 64);
        assert_eq!(SignalType::Md5.hex_len(), 32);
        assert_eq!(SignalType::Dhash8x8.hex_len(), 16);
    }

    #[test]
    fn image_types_are_all_but_the_video_ones() {
        let image: Vec<SignalType> = SignalType::ALL
            .into_iter()
            .filter(|t| !t.is_video())
            .collect();
        assert_eq!(image, SignalType::IMAGE);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = SignalType::from_name("PDQ").unwrap_err().to_string();
        assert!(
            e.contains("unknown signal type \"PDQ\"") && e.contains("pdq, phash-dct-8x8"),
            "{e}"
        );

        let e = SignalType::Pdq.parse_hex("abcd").unwrap_err();
        assert_eq!(
            e.to_string(),
            "pdq hash must be 64 hex characters (256 bits), got 4"
        );

        let mut bad = "0".repeat(31);
        bad.push('g');
        let e = SignalType::Md5.parse_hex(&bad).unwrap_err();
        assert_eq!(
            e,
            SignalError::BadHex {
                signal_type: "md5",
                ch: 'g',
                position: 31
            }
        );
        assert!(e.to_string().contains("'g' at position 31"));

        let e = SignalType::Sha256
            .format_hex(&[0u8; 31])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "sha256 hash must be 32 bytes (256 bits), got 31");

        // Multi-byte characters count as characters, never panic on a char boundary.
        assert!(SignalType::Dhash8x8
            .parse_hex("ééééééééééééééé\u{e9}")
            .is_err());
    }

    #[test]
    fn hex_is_lowercase_and_upper_is_accepted() {
        let t = SignalType::Dhash8x8;
        let bytes = t.parse_hex("00FF7fA5b6C7d8E9").unwrap();
        assert_eq!(bytes, [0x00, 0xff, 0x7f, 0xa5, 0xb6, 0xc7, 0xd8, 0xe9]);
        assert_eq!(t.format_hex(&bytes).unwrap(), "00ff7fa5b6c7d8e9");
    }
}

#[cfg(test)]
mod hamming_tests {
    use super::hamming_distance;

    #[test]
    fn counts_bits() {
        assert_eq!(hamming_distance(&[], &[]), 0);
        assert_eq!(hamming_distance(&[0xff; 32], &[0x00; 32]), 256);
        assert_eq!(hamming_distance(&[0b1010_0000], &[0b0010_0001]), 2);
        let mut a = [0u8; 13];
        let b = [0u8; 13];
        a[12] = 0x81;
        a[3] = 0x01;
        assert_eq!(hamming_distance(&a, &b), 3);
    }

    #[test]
    fn length_mismatch_counts_as_different() {
        assert_eq!(hamming_distance(&[0u8; 8], &[0u8; 10]), 16);
        assert_eq!(hamming_distance(&[0u8; 10], &[0u8; 8]), 16);
    }
}
