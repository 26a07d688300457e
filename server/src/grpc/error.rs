//! The one mapping from domain errors to gRPC statuses. Client mistakes get a message that says
//! what is wrong; internal failures are logged here and reach the caller only as "internal error".
//! The match is exhaustive, with no catch-all: a new error has to be placed here.
//!
//! Every refusal also carries `google.rpc` error details (AIP-193) in `grpc-status-details-bin`,
//! so a program can act on it without parsing English: an `ErrorInfo` whose `reason` is a stable
//! UPPER_SNAKE_CASE name in the domain [`DOMAIN`], a `BadRequest` naming the field
//! (`signals[3]`) when one signal is at fault, and a `RetryInfo` with the delay after which a
//! rate-limited token may call again.

use crate::hashing::{ImageError, VideoHashError};
use crate::log::LogError;
use crate::node::NodeError;
use redline_hashing::VideoErrorKind;
use redline_proto::tiles::TileError;
use std::time::Duration;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of Redline's refusals.
pub const DOMAIN: &str = "redline.v1";

/// A refusal: `code` and `message` as before, with an `ErrorInfo` of `reason` and whatever
/// else `details` already holds.
fn refusal(code: Code, message: String, reason: &str, mut details: ErrorDetails) -> Status {
    details.set_error_info(reason, DOMAIN, std::collections::HashMap::new());
    Status::with_error_details(code, message, details)
}

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Self {
        use crate::node::reports::ReportError;
        use NodeError::*;
        let message = e.to_string();
        let plain = ErrorDetails::new;
        let (code, reason, details) = match &e {
            BadSignal { position, .. } | BadEntry { position, .. } => (
                Code::InvalidArgument,
                if matches!(e, BadSignal { .. }) {
                    "BAD_SIGNAL"
                } else {
                    "BAD_ENTRY"
                },
                ErrorDetails::with_bad_request_violation(
                    format!("signals[{position}]"),
                    message.clone(),
                ),
            ),
            EmptyBatch | EmptyQuery => (Code::InvalidArgument, "EMPTY_REQUEST", plain()),
            BatchTooLarge { .. } => (Code::InvalidArgument, "BATCH_TOO_LARGE", plain()),
            NoReason => (
                Code::InvalidArgument,
                "NO_REASON",
                ErrorDetails::with_bad_request_violation("reason", message.clone()),
            ),
            Image(ImageError::Refused(_)) => (Code::InvalidArgument, "BAD_IMAGE", plain()),
            BadRange(_) => (Code::InvalidArgument, "BAD_RANGE", plain()),
            BadPageToken(_) => (
                Code::InvalidArgument,
                "BAD_PAGE_TOKEN",
                ErrorDetails::with_bad_request_violation("page_token", message.clone()),
            ),
            Tile(TileError::BadPath(_)) => (Code::InvalidArgument, "BAD_TILE_PATH", plain()),
            Log(LogError::Invalid(_)) => (Code::InvalidArgument, "INVALID_ENTRY", plain()),
            Video(VideoHashError::Refused(v)) => match v.kind() {
                VideoErrorKind::InvalidInput => (Code::InvalidArgument, "BAD_VIDEO", plain()),
                VideoErrorKind::OverLimit => (Code::ResourceExhausted, "VIDEO_OVER_LIMIT", plain()),
                VideoErrorKind::DecoderUnavailable => {
                    tracing::error!(error = %e, "video decoder unavailable");
                    (
                        Code::FailedPrecondition,
                        "VIDEO_DECODER_UNAVAILABLE",
                        plain(),
                    )
                }
            },
            UnknownOrigin(_) => (Code::NotFound, "UNKNOWN_ORIGIN", plain()),
            NoSuchEntry { .. } | Tile(TileError::BeyondTree { .. }) => {
                (Code::NotFound, "NO_SUCH_ENTRY", plain())
            }
            NotAnAdd(_) => (Code::FailedPrecondition, "NOT_AN_ADD", plain()),
            AlreadyRetracted(_) => (Code::FailedPrecondition, "ALREADY_RETRACTED", plain()),
            VictimReport(r) => match r {
                ReportError::Disabled => (Code::NotFound, "REPORTS_OFF", plain()),
                ReportError::NoSuchCase => (Code::NotFound, "NO_SUCH_CASE", plain()),
                ReportError::NotQueued { .. } => {
                    (Code::FailedPrecondition, "CASE_NOT_QUEUED", plain())
                }
                ReportError::Empty
                | ReportError::TooManySignals { .. }
                | ReportError::ContextTooLong { .. } => {
                    (Code::InvalidArgument, "BAD_REPORT", plain())
                }
                ReportError::OverRate { per_min, .. } => {
                    let mut details = plain();
                    let wait = std::time::Duration::from_secs_f64(60.0 / per_min.max(0.01));
                    details.set_retry_info(Some(wait.min(std::time::Duration::from_secs(3600))));
                    (Code::ResourceExhausted, "RATE_LIMITED", details)
                }
            },
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
                return Status::internal("internal error; see the node's log");
            }
        };
        refusal(code, message, reason, details)
    }
}

impl From<super::wire::WireError> for Status {
    fn from(e: super::wire::WireError) -> Self {
        use super::wire::WireError::*;
        match &e {
            // gRPC's code for a message over the receiver's size limit.
            TooLarge { .. } => refusal(
                Code::ResourceExhausted,
                e.to_string(),
                "MESSAGE_TOO_LARGE",
                ErrorDetails::new(),
            ),
            TooMany { .. } | TooMuch { .. } | TooLong { .. } => refusal(
                Code::InvalidArgument,
                e.to_string(),
                "REQUEST_OVER_LIMIT",
                ErrorDetails::new(),
            ),
            Malformed { .. } | Compressed { .. } => refusal(
                Code::InvalidArgument,
                e.to_string(),
                "MALFORMED_MESSAGE",
                ErrorDetails::new(),
            ),
        }
    }
}

impl From<super::auth::OverRate> for Status {
    fn from(e: super::auth::OverRate) -> Self {
        let delay = retry_delay(e.units, e.rate);
        refusal(
            Code::ResourceExhausted,
            e.to_string(),
            "RATE_LIMITED",
            ErrorDetails::with_retry_info(Some(delay)),
        )
    }
}

/// When a token refilling at `rate` units/s holds `units` again (at least one second, so a
/// client that honours it does not spin).
pub fn retry_delay(units: u64, rate: f64) -> Duration {
    let secs = if rate > 0.0 { units as f64 / rate } else { 1.0 };
    Duration::from_secs_f64(secs.clamp(1.0, 3600.0).ceil())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redline_proto::signal::SignalError;

    #[test]
    fn refusals_carry_a_reason_the_field_and_when_to_retry() {
        let bad = Status::from(NodeError::BadSignal {
            position: 3,
            source: SignalError::UnknownType {
                name: "nope".into(),
                known: "pdq".into(),
            },
        });
        assert_eq!(bad.code(), Code::InvalidArgument);
        let info = bad.get_details_error_info().expect("an ErrorInfo");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("BAD_SIGNAL", DOMAIN)
        );
        let field = &bad
            .get_details_bad_request()
            .expect("a BadRequest")
            .field_violations[0];
        assert_eq!(field.field, "signals[3]");

        let missing = Status::from(NodeError::UnknownOrigin("x".into()));
        assert_eq!(
            missing.get_details_error_info().unwrap().reason,
            "UNKNOWN_ORIGIN"
        );
        assert!(missing.get_details_bad_request().is_none());

        let rate = Status::from(super::super::auth::OverRate {
            token: "t".into(),
            rate: 2.0,
            burst: 4.0,
            units: 16,
        });
        assert_eq!(rate.code(), Code::ResourceExhausted);
        assert_eq!(
            rate.get_details_error_info().unwrap().reason,
            "RATE_LIMITED"
        );
        assert_eq!(
            rate.get_details_retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(8))
        );

        // Internal failures say nothing about themselves.
        let internal = Status::from(NodeError::Join("boom".into()));
        assert_eq!(internal.code(), Code::Internal);
        assert!(internal.get_details_error_info().is_none());
    }
}
