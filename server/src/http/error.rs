//! Refusals of the HTTP API: a gRPC status (the one mapping of domain errors, `grpc::error`)
//! turned into an HTTP status by the table gRPC's own HTTP mapping uses (googleapis
//! `google/rpc/code.proto`), with a JSON body `{"message": …, "code": …}`. `message` is what
//! HMA's error responses carry, so HMA clients read it unchanged.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tonic::Code;

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The gRPC code's snake-case name, so a caller can tell e.g. a rate limit from a full
    /// disk without parsing the message.
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// 400 with `message`: a malformed parameter or body.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::from(tonic::Status::invalid_argument(message.into()))
    }

    /// A multipart body that could not be read: 413 when it is over the size limit, else 400.
    pub fn upload(e: &axum::extract::multipart::MultipartError) -> Self {
        let status = e.status();
        Self {
            status,
            code: if status == StatusCode::PAYLOAD_TOO_LARGE {
                "resource_exhausted"
            } else {
                "invalid_argument"
            },
            message: format!(
                "could not read the multipart/form-data upload: {}",
                e.body_text()
            ),
        }
    }
}

/// The HTTP status for a gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Snake-case name of a gRPC code.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        Self {
            status: http_status(s.code()),
            code: code_name(s.code()),
            message: s.message().to_owned(),
        }
    }
}

impl From<crate::node::NodeError> for ApiError {
    fn from(e: crate::node::NodeError) -> Self {
        Self::from(tonic::Status::from(e))
    }
}

/// The JSON body of every refusal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What is wrong, for a person (HMA's error field).
    pub message: String,
    /// The gRPC code's snake-case name (`invalid_argument`, `resource_exhausted`, …): what a
    /// program branches on.
    pub code: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            message: self.message,
            code: self.code.to_owned(),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        let headers = resp.headers_mut();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // The token bucket refills continuously; a second is a fair first wait.
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}

/// An error response for the guard (which answers before any handler runs), in the body type
/// tonic's server carries.
pub fn refusal(status: &tonic::Status) -> http::Response<tonic::body::Body> {
    ApiError::from(status.clone())
        .into_response()
        .map(tonic::body::Body::new)
}

/// 404 for a path the API does not serve.
pub fn not_found(path: &str) -> http::Response<tonic::body::Body> {
    let shown: String = path.chars().take(128).collect();
    let served: Vec<&str> = super::ROUTES.iter().map(|r| r.path).collect();
    refusal(&tonic::Status::not_found(format!(
        "no such path {shown:?}: the HTTP API serves {} and /tlog/<origin>/…, described in \
         /openapi.json; gRPC calls need content-type application/grpc",
        served.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_their_meaning_over_http() {
        for (code, want) in [
            (Code::InvalidArgument, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::Internal, 500),
        ] {
            assert_eq!(http_status(code).as_u16(), want, "{code:?}");
        }
        let e = ApiError::from(tonic::Status::resource_exhausted("over rate"));
        assert_eq!(
            (e.code, e.message.as_str()),
            ("resource_exhausted", "over rate")
        );
        let resp = e.into_response();
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
    }
}
