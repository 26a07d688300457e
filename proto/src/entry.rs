//! Log leaves. The origin encodes an [`EntryBody`] once; those bytes are the leaf, hashed into the
//! tree and stored and sent verbatim. Receivers decode and validate leaves but never re-encode
//! them, so a signature over the root covers exactly what every party stores.

use crate::merkle::Hash;
use crate::pb::{entry_body::Kind, AddEntry, EntryBody, RetractEntry};
use crate::signal::{SignalError, SignalType};
use prost::Message;
use thiserror::Error;

/// The only body format this code writes and accepts.
pub const FORMAT_VERSION: u32 = 1;
/// Upper bound on one encoded leaf: the most a tlog-tiles entry bundle can carry (a uint16
/// length prefix). Only a `vpdq` ADD gets near it (see [`crate::vpdq::MAX_FRAMES`]).
pub const MAX_ENTRY_BYTES: usize = 65_535;
/// Upper bound on a leaf that is not a `vpdq` ADD; an honest one is a few hundred bytes.
pub const MAX_SMALL_ENTRY_BYTES: usize = 8 * 1024;
/// Upper bound on labels per entry and on the length of each text field.
pub const MAX_LABELS: usize = 16;
/// Upper bound on the length of a label, legal basis, case reference or reason, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;

/// A leaf that is not a valid entry.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("entry is {0} bytes, over the {MAX_ENTRY_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("entry is {0} bytes, over the {MAX_SMALL_ENTRY_BYTES}-byte limit of entries other than vpdq ADDs")]
    TooLargeForKind(usize),
    #[error("entry does not decode: {0}")]
    Decode(String),
    #[error("entry format version {0} is not supported (expected {FORMAT_VERSION})")]
    Version(u32),
    #[error("entry has neither ADD nor RETRACT")]
    NoKind,
    #[error(transparent)]
    Signal(#[from] SignalError),
    #[error("PDQ quality {0} is above 100")]
    Quality(u32),
    #[error("{field} is too long ({len} bytes, max {MAX_TEXT_BYTES})")]
    TextTooLong { field: &'static str, len: usize },
    #[error("{0} labels, max {MAX_LABELS}")]
    TooManyLabels(usize),
    #[error("retraction target leaf hash is {0} bytes, not 32")]
    TargetHash(usize),
}

/// A validated, decoded leaf.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// Lists `hash` of `signal_type`.
    Add {
        /// Parsed signal type.
        signal_type: SignalType,
        /// The entry as sent.
        add: AddEntry,
    },
    /// Withdraws the ADD at `target_index`.
    Retract(RetractEntry),
}

fn check_text(field: &'static str, s: &str) -> Result<(), EntryError> {
    if s.len() > MAX_TEXT_BYTES {
        return Err(EntryError::TextTooLong {
            field,
            len: s.len(),
        });
    }
    Ok(())
}

/// Validates the fields of an ADD.
pub fn validate_add(add: &AddEntry) -> Result<SignalType, EntryError> {
    let signal_type = SignalType::from_name(&add.signal_type)?;
    signal_type.check_bytes(&add.hash)?;
    if add.quality > 100 {
        return Err(EntryError::Quality(add.quality));
    }
    if add.labels.len() > MAX_LABELS {
        return Err(EntryError::TooManyLabels(add.labels.len()));
    }
    for l in &add.labels {
        check_text("label", l)?;
    }
    check_text("legal_basis", &add.legal_basis)?;
    check_text("case_ref", &add.case_ref)?;
    Ok(signal_type)
}

/// Decodes and validates one leaf.
pub fn decode(data: &[u8]) -> Result<Decoded, EntryError> {
    decode_leaf(data).map(|(_, decoded)| decoded)
}

/// Decodes and validates one leaf, with its `created_at_ms`.
pub fn decode_leaf(data: &[u8]) -> Result<(u64, Decoded), EntryError> {
    if data.len() > MAX_ENTRY_BYTES {
        return Err(EntryError::TooLarge(data.len()));
    }
    let body = EntryBody::decode(data).map_err(|e| EntryError::Decode(e.to_string()))?;
    if body.format_version != FORMAT_VERSION {
        return Err(EntryError::Version(body.format_version));
    }
    let decoded = match body.kind {
        Some(Kind::Add(add)) => Decoded::Add {
            signal_type: validate_add(&add)?,
            add,
        },
        Some(Kind::Retract(r)) => {
            if r.target_leaf_hash.len() != 32 {
                return Err(EntryError::TargetHash(r.target_leaf_hash.len()));
            }
            check_text("reason", &r.reason)?;
            Decoded::Retract(r)
        }
        None => return Err(EntryError::NoKind),
    };
    let vpdq_add = matches!(
        decoded,
        Decoded::Add {
            signal_type: SignalType::Vpdq,
            ..
        }
    );
    check_size(data.len(), vpdq_add)?;
    Ok((body.created_at_ms, decoded))
}

/// Only a `vpdq` ADD may be larger than [`MAX_SMALL_ENTRY_BYTES`].
fn check_size(len: usize, vpdq_add: bool) -> Result<(), EntryError> {
    if len > MAX_ENTRY_BYTES {
        Err(EntryError::TooLarge(len))
    } else if len > MAX_SMALL_ENTRY_BYTES && !vpdq_add {
        Err(EntryError::TooLargeForKind(len))
    } else {
        Ok(())
    }
}

/// Encodes an ADD leaf after validating it (fields and encoded size).
pub fn encode_add(add: AddEntry, created_at_ms: u64) -> Result<Vec<u8>, EntryError> {
    let signal_type = validate_add(&add)?;
    let bytes = EntryBody {
        format_version: FORMAT_VERSION,
        created_at_ms,
        kind: Some(Kind::Add(add)),
    }
    .encode_to_vec();
    check_size(bytes.len(), signal_type == SignalType::Vpdq)?;
    Ok(bytes)
}

/// Encodes a RETRACT leaf of the entry at `target_index` whose leaf hash is `target_leaf`.
pub fn encode_retract(
    target_index: u64,
    target_leaf: &Hash,
    reason: &str,
    created_at_ms: u64,
) -> Result<Vec<u8>, EntryError> {
    check_text("reason", reason)?;
    Ok(EntryBody {
        format_version: FORMAT_VERSION,
        created_at_ms,
        kind: Some(Kind::Retract(RetractEntry {
            target_index,
            target_leaf_hash: target_leaf.0.to_vec(),
            reason: reason.to_owned(),
        })),
    }
    .encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add() -> AddEntry {
        AddEntry {
            signal_type: "pdq".into(),
            hash: vec![7; 32],
            quality: 90,
            labels: vec!["ncii".into()],
            legal_basis: "consent withdrawn".into(),
            case_ref: "case-1".into(),
        }
    }

    #[test]
    fn add_round_trips_and_bytes_are_stable() {
        let bytes = encode_add(add(), 1234).unwrap();
        match decode(&bytes).unwrap() {
            Decoded::Add {
                signal_type,
                add: a,
            } => {
                assert_eq!(signal_type, SignalType::Pdq);
                assert_eq!(a, add());
            }
            other => panic!("decoded {other:?}"),
        }
        assert_eq!(bytes, encode_add(add(), 1234).unwrap());
    }

    #[test]
    fn bad_adds_are_refused() {
        let mut a = add();
        a.hash.pop();
        assert!(matches!(encode_add(a, 0), Err(EntryError::Signal(_))));
        let mut a = add();
        a.signal_type = "sha1".into();
        assert!(matches!(encode_add(a, 0), Err(EntryError::Signal(_))));
        let mut a = add();
        a.quality = 101;
        assert_eq!(encode_add(a, 0), Err(EntryError::Quality(101)));
        assert!(matches!(
            decode(&[0xff, 0xff, 0xff]),
            Err(EntryError::Decode(_))
        ));
        assert_eq!(decode(&[]), Err(EntryError::Version(0)));
    }

    /// The largest vPDQ value with the longest labels still fits one tiles entry; the same
    /// labels on a PDQ ADD are over the small-entry limit.
    #[test]
    fn only_vpdq_adds_may_be_large() {
        let long = |c: char| c.to_string().repeat(MAX_TEXT_BYTES);
        let mut a = add();
        a.signal_type = "vpdq".into();
        a.hash = vec![0u8; crate::vpdq::MAX_FRAMES * crate::vpdq::FRAME_BYTES];
        a.labels = (0..MAX_LABELS)
            .map(|i| long(char::from(b'a' + i as u8)))
            .collect();
        a.legal_basis = long('x');
        a.case_ref = long('y');
        let bytes = encode_add(a.clone(), u64::MAX).unwrap();
        assert!(bytes.len() > MAX_SMALL_ENTRY_BYTES && bytes.len() <= MAX_ENTRY_BYTES);
        assert!(matches!(
            decode(&bytes),
            Ok(Decoded::Add {
                signal_type: SignalType::Vpdq,
                ..
            })
        ));

        let mut p = a;
        p.signal_type = "pdq".into();
        p.hash = vec![7; 32];
        let len = EntryBody {
            format_version: FORMAT_VERSION,
            created_at_ms: 0,
            kind: Some(Kind::Add(p.clone())),
        }
        .encode_to_vec();
        assert_eq!(decode(&len), Err(EntryError::TooLargeForKind(len.len())));
        assert!(matches!(
            encode_add(p, 0),
            Err(EntryError::TooLargeForKind(_))
        ));
    }
}
