//! Connecting to a node, with errors that say what to do next.

use thiserror::Error;
use tonic::transport::{Channel, Endpoint};

/// A call to a node failed.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("{url:?} is not a valid node URL ({detail}); expected e.g. http://127.0.0.1:7443")]
    BadUrl { url: String, detail: String },
    #[error("cannot reach the node at {url}: {detail}. Is redline-node running there? Check --node / REDLINE_NODE")]
    Unreachable { url: String, detail: String },
    #[error("the node refused the call: {}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    #[error("invalid input: {0}")]
    Input(String),
}

/// Opens a channel to the node at `url`.
pub async fn connect(url: &str) -> Result<Channel, ClientError> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| ClientError::BadUrl {
        url: url.to_owned(),
        detail: e.to_string(),
    })?;
    endpoint
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| ClientError::Unreachable {
            url: url.to_owned(),
            detail: source_chain(&e),
        })
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
