//! Signal types and their text form. A signal is a hash of an image under one named algorithm;
//! the name fixes algorithm, size and parameters so two nodes agree bit for bit.

use std::fmt;
use thiserror::Error;

/// A signal type this protocol knows. Adding one is a protocol change: every node must agree on
/// its byte length and its distance function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignalType {
    /// Meta's PDQ, 256 bits; Hamming distance.
    Pdq,
    /// img_hash family (through `image_hasher`): DCT pHash on an 8x8 grid, 64 bits.
    PhashDct8x8,
    /// img_hash family: gradient dHash, 8x8, 64 bits.
    Dhash8x8,
    /// img_hash family: mean aHash, 8x8, 64 bits.
    Ahash8x8,
    /// img_hash family: blockhash 16x16, 256 bits.
    Blockhash16x16,
    /// MD5 of the exact file bytes; exact match only.
    Md5,
    /// SHA-256 of the exact file bytes; exact match only.
    Sha256,
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
}

/// A value could not be read as a signal.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignalError {
    #[error("unknown signal type {0:?} (known: pdq, phash-dct-8x8, dhash-8x8, ahash-8x8, blockhash-16x16, md5, sha256)")]
    UnknownType(String),
    #[error("{signal_type} value is not lowercase hex: {value:?}")]
    NotHex {
        signal_type: &'static str,
        value: String,
    },
    #[error("{signal_type} value has {got} hex digits, expected {expected}")]
    WrongLength {
        signal_type: &'static str,
        got: usize,
        expected: usize,
    },
}

impl SignalType {
    /// Every known type, in a stable order.
    pub const ALL: [SignalType; 7] = [
        SignalType::Pdq,
        SignalType::PhashDct8x8,
        SignalType::Dhash8x8,
        SignalType::Ahash8x8,
        SignalType::Blockhash16x16,
        SignalType::Md5,
        SignalType::Sha256,
    ];

    /// The protocol name, as in `Signal.signal_type`.
    pub fn name(self) -> &'static str {
        match self {
            SignalType::Pdq => "pdq",
            SignalType::PhashDct8x8 => "phash-dct-8x8",
            SignalType::Dhash8x8 => "dhash-8x8",
            SignalType::Ahash8x8 => "ahash-8x8",
            SignalType::Blockhash16x16 => "blockhash-16x16",
            SignalType::Md5 => "md5",
            SignalType::Sha256 => "sha256",
        }
    }

    /// Parses a protocol name.
    pub fn from_name(name: &str) -> Result<Self, SignalError> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| SignalError::UnknownType(name.to_owned()))
    }

    /// Length of a value in bytes.
    pub fn byte_len(self) -> usize {
        match self {
            SignalType::Pdq | SignalType::Blockhash16x16 | SignalType::Sha256 => 32,
            SignalType::PhashDct8x8 | SignalType::Dhash8x8 | SignalType::Ahash8x8 => 8,
            SignalType::Md5 => 16,
        }
    }

    /// How values are compared, with the default radius for bit hashes.
    pub fn distance(self) -> Distance {
        match self {
            // 31 is ThreatExchange's recommended PDQ match threshold.
            SignalType::Pdq => Distance::Hamming { default_max: 31 },
            SignalType::Blockhash16x16 => Distance::Hamming { default_max: 20 },
            SignalType::PhashDct8x8 | SignalType::Dhash8x8 | SignalType::Ahash8x8 => {
                Distance::Hamming { default_max: 8 }
            }
            SignalType::Md5 | SignalType::Sha256 => Distance::Exact,
        }
    }

    /// Reads a lowercase hex value of this type.
    pub fn parse_hex(self, value: &str) -> Result<Vec<u8>, SignalError> {
        let expected = self.byte_len() * 2;
        if value.len() != expected {
            return Err(SignalError::WrongLength {
                signal_type: self.name(),
                got: value.len(),
                expected,
            });
        }
        if !value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(SignalError::NotHex {
                signal_type: self.name(),
                value: value.chars().take(80).collect(),
            });
        }
        hex::decode(value).map_err(|_| SignalError::NotHex {
            signal_type: self.name(),
            value: value.chars().take(80).collect(),
        })
    }

    /// Checks a raw value's length.
    pub fn check_bytes(self, bytes: &[u8]) -> Result<(), SignalError> {
        if bytes.len() != self.byte_len() {
            return Err(SignalError::WrongLength {
                signal_type: self.name(),
                got: bytes.len() * 2,
                expected: self.byte_len() * 2,
            });
        }
        Ok(())
    }
}

impl fmt::Display for SignalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Hamming distance between two equal-length bit strings.
pub fn hamming_distance(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in SignalType::ALL {
            assert_eq!(SignalType::from_name(t.name()), Ok(t));
        }
        assert!(matches!(
            SignalType::from_name("PDQ"),
            Err(SignalError::UnknownType(_))
        ));
    }

    #[test]
    fn hex_is_checked_for_length_and_case() {
        let pdq = "f".repeat(64);
        assert_eq!(SignalType::Pdq.parse_hex(&pdq).unwrap(), vec![0xff; 32]);
        assert!(matches!(
            SignalType::Pdq.parse_hex(&"f".repeat(63)),
            Err(SignalError::WrongLength {
                got: 63,
                expected: 64,
                ..
            })
        ));
        assert!(matches!(
            SignalType::Pdq.parse_hex(&"F".repeat(64)),
            Err(SignalError::NotHex { .. })
        ));
        assert!(matches!(
            SignalType::Md5.parse_hex(&"zz".repeat(16)),
            Err(SignalError::NotHex { .. })
        ));
    }

    #[test]
    fn hamming_counts_differing_bits() {
        assert_eq!(hamming_distance(&[0b1010, 0xff], &[0b0110, 0x00]), 2 + 8);
    }
}
