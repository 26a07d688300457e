//! Log leaves. The origin encodes an [`EntryBody`] once; those bytes are the leaf, hashed into the
//! tree and stored and sent verbatim. Receivers decode and validate leaves but never re-encode
//! them, so a signature over the root covers exactly what every party stores.

use crate::merkle::{leaf_hash, Hash};
use crate::pb::{entry_body::Kind, AddEntry, EntryBody, RetractEntry};
use crate::signal::{SignalError, SignalType};
use prost::Message;
use thiserror::Error;

/// The only body format this code writes and accepts.
pub const FORMAT_VERSION: u32 = 1;
/// Upper bound on one encoded leaf; an honest one is a few hundred bytes.
pub const MAX_ENTRY_BYTES: usize = 8 * 1024;
/// Upper bound on labels per entry and on the length of each text field.
pub const MAX_LABELS: usize = 16;
/// Upper bound on the length of a label, legal basis, case reference or reason, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;

/// A leaf that is not a valid entry.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("entry is {0} bytes, over the {MAX_ENTRY_BYTES}-byte limit")]
    TooLarge(usize),
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
    if data.len() > MAX_ENTRY_BYTES {
        return Err(EntryError::TooLarge(data.len()));
    }
    let body = EntryBody::decode(data).map_err(|e| EntryError::Decode(e.to_string()))?;
    if body.format_version != FORMAT_VERSION {
        return Err(EntryError::Version(body.format_version));
    }
    match body.kind {
        Some(Kind::Add(add)) => Ok(Decoded::Add {
            signal_type: validate_add(&add)?,
            add,
        }),
        Some(Kind::Retract(r)) => {
            if r.target_leaf_hash.len() != 32 {
                return Err(EntryError::TargetHash(r.target_leaf_hash.len()));
            }
            check_text("reason", &r.reason)?;
            Ok(Decoded::Retract(r))
        }
        None => Err(EntryError::NoKind),
    }
}

/// Encodes an ADD leaf after validating it.
pub fn encode_add(add: AddEntry, created_at_ms: u64) -> Result<Vec<u8>, EntryError> {
    validate_add(&add)?;
    Ok(EntryBody {
        format_version: FORMAT_VERSION,
        created_at_ms,
        kind: Some(Kind::Add(add)),
    }
    .encode_to_vec())
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

/// Checks a retraction against the log it appears in: it must name an earlier ADD of the same
/// log by index and leaf hash. `leaf_at` reads earlier leaves.
pub fn check_retraction(
    retract_index: u64,
    r: &RetractEntry,
    target_data: Option<&[u8]>,
) -> Result<(), RetractionError> {
    if r.target_index >= retract_index {
        return Err(RetractionError::NotEarlier {
            target: r.target_index,
            at: retract_index,
        });
    }
    let data = target_data.ok_or(RetractionError::Missing(r.target_index))?;
    if leaf_hash(data).0.as_slice() != r.target_leaf_hash.as_slice() {
        return Err(RetractionError::HashMismatch(r.target_index));
    }
    match decode(data) {
        Ok(Decoded::Add { .. }) => Ok(()),
        _ => Err(RetractionError::NotAnAdd(r.target_index)),
    }
}

/// A retraction that does not name an earlier ADD of its own log.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RetractionError {
    #[error("retraction at {at} targets index {target}, which is not earlier")]
    NotEarlier { target: u64, at: u64 },
    #[error("retraction targets index {0}, which does not exist")]
    Missing(u64),
    #[error("retraction of index {0} names a different leaf hash")]
    HashMismatch(u64),
    #[error("retraction targets index {0}, which is not an ADD")]
    NotAnAdd(u64),
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

    #[test]
    fn retraction_must_name_an_earlier_add_by_hash() {
        let target = encode_add(add(), 1).unwrap();
        let th = leaf_hash(&target);
        let r = match decode(&encode_retract(0, &th, "false positive", 2).unwrap()).unwrap() {
            Decoded::Retract(r) => r,
            other => panic!("decoded {other:?}"),
        };
        assert_eq!(check_retraction(5, &r, Some(&target)), Ok(()));
        assert_eq!(
            check_retraction(0, &r, Some(&target)),
            Err(RetractionError::NotEarlier { target: 0, at: 0 })
        );
        assert_eq!(
            check_retraction(5, &r, Some(b"other")),
            Err(RetractionError::HashMismatch(0))
        );
        assert_eq!(
            check_retraction(5, &r, None),
            Err(RetractionError::Missing(0))
        );
    }
}
