//! The Python exceptions the package raises, and how each Rust error becomes one.
//!
//! One hierarchy under `RedlineError`, so a caller can catch everything Redline raises or only
//! what it can act on: a refused token (`AuthenticationError`) is not a log that failed to verify
//! (`VerificationError`). Messages are the Rust errors' own (they name the origin, index or
//! file and what to do), except where they speak of the `redline` command's flags.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::PyErr;
use redline_client::{AuditError, ClientError};
use tonic::Code;

create_exception!(
    redline,
    RedlineError,
    PyException,
    "Base class of every error raised by redline."
);
create_exception!(
    redline,
    InputError,
    RedlineError,
    "An argument is not valid: an unknown signal type, malformed hex, a bad URL or key."
);
create_exception!(
    redline,
    HashingError,
    RedlineError,
    "An image or video could not be hashed (unreadable, unsupported, corrupt or over a limit)."
);
create_exception!(
    redline,
    NodeError,
    RedlineError,
    "The node answered a call with an error."
);
create_exception!(
    redline,
    UnreachableError,
    NodeError,
    "The node could not be reached (not running, wrong address, TLS failure)."
);
create_exception!(
    redline,
    AuthenticationError,
    NodeError,
    "The node refused the token (UNAUTHENTICATED): none given, unknown, or malformed."
);
create_exception!(
    redline,
    PermissionDeniedError,
    NodeError,
    "The token is valid but lacks the scope the call needs (PERMISSION_DENIED)."
);
create_exception!(
    redline,
    VerificationError,
    RedlineError,
    "An origin's log did not verify against the key given (bad signature, altered leaves, \
     rewritten history); nothing from it is returned."
);

/// A client error as the Python exception that says what to do.
pub fn client_error(e: ClientError) -> PyErr {
    match e {
        ClientError::Status(s) => {
            let msg = if s.message().is_empty() {
                "no details"
            } else {
                s.message()
            };
            match s.code() {
                Code::Unauthenticated => AuthenticationError::new_err(format!(
                    "the node refused the token ({msg}); pass a valid one as Client(..., token=...)"
                )),
                Code::PermissionDenied => PermissionDeniedError::new_err(format!(
                    "the node refused the call: {msg}; the token lacks the scope for it, ask the \
                     node's operator"
                )),
                Code::InvalidArgument => {
                    InputError::new_err(format!("the node rejected the input: {msg}"))
                }
                _ => NodeError::new_err(ClientError::Status(s).to_string()),
            }
        }
        ClientError::Unreachable { .. } => UnreachableError::new_err(e.to_string()),
        ClientError::BadUrl { .. } | ClientError::Input(_) => InputError::new_err(e.to_string()),
    }
}

/// An audit error: the node's own errors stay node errors, everything the verification found
/// is a `VerificationError`.
pub fn audit_error(e: AuditError) -> PyErr {
    match e {
        AuditError::Client(c) => client_error(c),
        other => VerificationError::new_err(other.to_string()),
    }
}
