//! The one mapping from domain errors to gRPC statuses. Client mistakes get a message that says
//! what is wrong; internal failures are logged here and reach the caller only as "internal error".
//! The match is exhaustive, with no catch-all: a new error has to be placed here.

use crate::hashing::{ImageError, VideoHashError};
use crate::log::LogError;
use crate::node::NodeError;
use redline_hashing::VideoErrorKind;
use redline_proto::tiles::TileError;
use tonic::Status;

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Self {
        use NodeError::*;
        match &e {
            BadSignal { .. }
            | BadEntry { .. }
            | EmptyBatch
            | BatchTooLarge { .. }
            | EmptyQuery
            | NoReason
            | Image(ImageError::Refused(_))
            | BadRange(_)
            | BadPageToken(_)
            | Tile(TileError::BadPath(_))
            | Log(LogError::Invalid(_)) => Status::invalid_argument(e.to_string()),
            Video(VideoHashError::Refused(v)) => match v.kind() {
                VideoErrorKind::InvalidInput => Status::invalid_argument(e.to_string()),
                VideoErrorKind::OverLimit => Status::resource_exhausted(e.to_string()),
                VideoErrorKind::DecoderUnavailable => {
                    tracing::error!(error = %e, "video decoder unavailable");
                    Status::failed_precondition(e.to_string())
                }
            },
            UnknownOrigin(_) | NoSuchEntry { .. } | Tile(TileError::BeyondTree { .. }) => {
                Status::not_found(e.to_string())
            }
            NotAnAdd(_) | AlreadyRetracted(_) => Status::failed_precondition(e.to_string()),
            Image(ImageError::Interrupted)
            | Video(VideoHashError::Interrupted)
            | MissingLeaves { .. }
            | Config(_)
            | Log(LogError::Replay(_) | LogError::Proof(_) | LogError::Store(_))
            | Store(_)
            | Checkpoint(_)
            | Proof(_)
            | TlogProof(_)
            | Tile(
                TileError::Truncated { .. }
                | TileError::WrongCount { .. }
                | TileError::EntryTooLarge(_)
                | TileError::Read(_),
            )
            | Identity(_)
            | Join(_) => {
                tracing::error!(error = %e, "internal error");
                Status::internal("internal error; see the node's log")
            }
        }
    }
}

impl From<super::wire::WireError> for Status {
    fn from(e: super::wire::WireError) -> Self {
        use super::wire::WireError::*;
        match &e {
            // gRPC's code for a message over the receiver's size limit.
            TooLarge { .. } => Status::resource_exhausted(e.to_string()),
            TooMany { .. }
            | TooMuch { .. }
            | TooLong { .. }
            | Malformed { .. }
            | Compressed { .. } => Status::invalid_argument(e.to_string()),
        }
    }
}

impl From<super::auth::OverRate> for Status {
    fn from(e: super::auth::OverRate) -> Self {
        Status::resource_exhausted(e.to_string())
    }
}
