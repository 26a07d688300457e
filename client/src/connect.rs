//! Connecting to a node, with errors that say what to do next, and the bearer token that every
//! call carries (`authorization: Bearer <token>` metadata, added by [`BearerAuth`]).

use std::fmt;
use std::path::PathBuf;
use thiserror::Error;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

/// A call to a node failed.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("{url:?} is not a valid node URL ({detail}); expected e.g. http://127.0.0.1:7443")]
    BadUrl { url: String, detail: String },
    #[error("cannot reach the node at {url}: {detail}. Is redline-node running there? Check --node / REDLINE_NODE")]
    Unreachable { url: String, detail: String },
    /// The node answered with an error status (not a `source`: the message says it all).
    #[error("{}", describe_status(.0))]
    Status(tonic::Status),
    #[error("invalid input: {0}")]
    Input(String),
}

impl From<Status> for ClientError {
    fn from(s: Status) -> Self {
        ClientError::Status(s)
    }
}

/// A status from the node as one line that says what to do about it.
fn describe_status(s: &Status) -> String {
    let msg = if s.message().is_empty() {
        "no details"
    } else {
        s.message()
    };
    match s.code() {
        Code::Unauthenticated => format!(
            "the node refused the token ({msg}). Pass a valid one with --token or REDLINE_TOKEN"
        ),
        Code::PermissionDenied => format!(
            "the node refused the call: {msg}. The token lacks the permission for it; ask the node's operator"
        ),
        Code::InvalidArgument => format!("the node rejected the input: {msg}"),
        Code::NotFound => format!("not found on the node: {msg}"),
        Code::FailedPrecondition => format!("the node refused the change: {msg}"),
        Code::Unimplemented => format!(
            "the node does not offer this call ({msg}). Is it an older redline-node, or is the service disabled there?"
        ),
        Code::Unavailable => format!(
            "the node is unavailable ({msg}). Is redline-node running? Check --node / REDLINE_NODE, then retry"
        ),
        Code::DeadlineExceeded => {
            format!("the node did not answer in time ({msg}). Retry, or send smaller batches")
        }
        Code::ResourceExhausted => {
            format!("the node refused the call as too large or too many ({msg}). Send smaller batches")
        }
        code => format!("the node refused the call: {code}: {msg}"),
    }
}

/// Adds `authorization: Bearer <token>` to every call when a token is set. `Debug` never
/// shows the token.
#[derive(Clone, Default)]
pub struct BearerAuth {
    header: Option<MetadataValue<Ascii>>,
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.header {
            Some(_) => f.write_str("BearerAuth(<token>)"),
            None => f.write_str("BearerAuth(none)"),
        }
    }
}

impl BearerAuth {
    /// No token: calls go out without `authorization` metadata.
    pub fn none() -> Self {
        Self::default()
    }

    /// A token (`None` or empty means none). It must be printable ASCII without spaces.
    pub fn new(token: Option<&str>) -> Result<Self, ClientError> {
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Self::none());
        };
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClientError::Input(
                "the token has characters a gRPC header cannot carry (only printable ASCII \
                 without spaces); check --token / REDLINE_TOKEN"
                    .into(),
            ));
        }
        let value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
            ClientError::Input("the token cannot be sent as a header; check --token".into())
        })?;
        Ok(Self {
            header: Some(value),
        })
    }

    /// Whether a token is set.
    pub fn is_set(&self) -> bool {
        self.header.is_some()
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.header {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A channel whose calls carry the bearer token.
pub type AuthChannel = InterceptedService<Channel, BearerAuth>;

/// Wraps an open channel with `auth`.
pub fn with_auth(channel: Channel, auth: BearerAuth) -> AuthChannel {
    InterceptedService::new(channel, auth)
}

/// Where and how to reach a node: what `--node`, `--token` and `--ca` say.
#[derive(Debug, Clone, Default)]
pub struct NodeTarget {
    /// `http://host:port`, or `https://host:port` for a node serving TLS.
    pub url: String,
    /// Bearer token sent with every call.
    pub token: Option<String>,
    /// PEM file of the CA(s) that sign the node's certificate (`https` only); without it the
    /// Mozilla root set is used.
    pub ca: Option<PathBuf>,
}

impl NodeTarget {
    /// The node at `url`, without token or private CA.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The node at `url` with `token` (`None` or empty: no token).
    pub fn with_token(url: &str, token: Option<&str>) -> Self {
        Self {
            url: url.to_owned(),
            token: token.map(str::to_owned),
            ca: None,
        }
    }

    /// The token's interceptor (checked here, before any connection).
    pub fn auth(&self) -> Result<BearerAuth, ClientError> {
        BearerAuth::new(self.token.as_deref())
    }

    /// Opens a channel (TLS for `https://`), without the token.
    pub async fn open(&self) -> Result<Channel, ClientError> {
        let url = self.url.as_str();
        let bad = |detail: &str| ClientError::BadUrl {
            url: url.to_owned(),
            detail: detail.to_owned(),
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad("no scheme"));
        };
        let https = match scheme {
            "http" => false,
            "https" => true,
            _ => return Err(bad("the scheme must be http or https")),
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(bad("no host"));
        }
        if !https && self.ca.is_some() {
            return Err(ClientError::Input(format!(
                "--ca is for https:// nodes, but {url} is plain http"
            )));
        }
        let mut endpoint =
            Endpoint::from_shared(url.to_owned()).map_err(|e| bad(&source_chain(&e)))?;
        if https {
            let tls = match &self.ca {
                Some(ca) => {
                    let pem = std::fs::read(ca).map_err(|e| {
                        ClientError::Input(format!("cannot read --ca {}: {e}", ca.display()))
                    })?;
                    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
                }
                None => ClientTlsConfig::new().with_webpki_roots(),
            };
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| bad(&source_chain(&e)))?;
        }
        endpoint
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: url.to_owned(),
                detail: source_chain(&e),
            })
    }

    /// Opens a channel whose calls carry the token.
    pub async fn connect(&self) -> Result<AuthChannel, ClientError> {
        let auth = self.auth()?;
        Ok(with_auth(self.open().await?, auth))
    }
}

/// Opens a channel to the node at `url` (`https://` verified against the Mozilla roots).
pub async fn connect(url: &str) -> Result<Channel, ClientError> {
    NodeTarget::new(url).open().await
}

/// Opens a channel to `url` whose calls carry `token` (if any).
pub async fn connect_with_token(
    url: &str,
    token: Option<&str>,
) -> Result<AuthChannel, ClientError> {
    NodeTarget::with_token(url, token).connect().await
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        if !s.ends_with(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_goes_into_the_authorization_header() {
        let mut auth = BearerAuth::new(Some("s3cret")).unwrap();
        let req = auth.call(Request::new(())).unwrap();
        assert_eq!(
            req.metadata().get("authorization").unwrap(),
            "Bearer s3cret"
        );
        assert!(!format!("{auth:?}").contains("s3cret"));
        let mut none = BearerAuth::new(Some("  ")).unwrap();
        assert!(none
            .call(Request::new(()))
            .unwrap()
            .metadata()
            .get("authorization")
            .is_none());
        assert!(BearerAuth::new(Some("a b")).is_err());
        assert!(BearerAuth::new(Some("é")).is_err());
    }

    #[test]
    fn statuses_say_what_to_do() {
        let e = ClientError::from(Status::unauthenticated("bad token"));
        assert_eq!(
            e.to_string(),
            "the node refused the token (bad token). Pass a valid one with --token or REDLINE_TOKEN"
        );
        assert!(
            std::error::Error::source(&e).is_none(),
            "one line, no chain"
        );
        let e = ClientError::from(Status::unimplemented(""));
        assert!(e.to_string().contains("(no details)"), "{e}");
        let e = ClientError::from(Status::unavailable("connection reset"));
        assert!(e.to_string().contains("REDLINE_NODE"), "{e}");
    }

    #[tokio::test]
    async fn bad_urls_say_what_to_type() {
        for url in ["127.0.0.1:7443", "ftp://x", "http://", "https://"] {
            let e = connect(url).await.unwrap_err();
            assert!(matches!(e, ClientError::BadUrl { .. }), "{url}: {e}");
            assert!(e.to_string().contains("http://127.0.0.1:7443"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_ca_needs_https_and_a_readable_file() {
        let mut target = NodeTarget::new("http://127.0.0.1:1");
        target.ca = Some("/nonexistent/ca.pem".into());
        let e = target.open().await.unwrap_err();
        assert!(e.to_string().contains("plain http"), "{e}");
        target.url = "https://127.0.0.1:1".into();
        let e = target.open().await.unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot read --ca /nonexistent/ca.pem"),
            "{e}"
        );
    }
}
