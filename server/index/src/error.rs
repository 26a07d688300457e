//! The one error type of the crate, so callers can map index failures to a
//! single gRPC status without matching on strings.

use thiserror::Error;

/// Why an index operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IndexError {
    /// A hash or query did not have the byte length the index was created for.
    #[error("hash has {got} bytes, this index holds {expected}-byte hashes")]
    WrongLength {
        /// Byte length the index expects.
        expected: usize,
        /// Byte length that was passed.
        got: usize,
    },
    /// The requested hash width cannot be indexed.
    #[error("unsupported hash width of {0} bits (need a multiple of 8 in 8..=2048)")]
    UnsupportedWidth(u32),
    /// The id is already stored; ids are handles and must be unique.
    #[error("id {0} is already in the index")]
    DuplicateId(u64),
    /// The index holds as many hashes as its 32-bit slot numbers can address.
    #[error("index is full ({0} hashes)")]
    Full(usize),
}
