//! Connections to peers: plain `http://` on a trusted network, `https://` with the peer's CA
//! (or the Mozilla roots) and optionally a client certificate for mutual TLS; the peer's bearer
//! token, when configured, goes with every call.

use crate::config::PeerConfig;
use crate::federation::bounded::{CheckpointAnswer, MAX_CHECKPOINT_LIST_BYTES};
use redline_proto::pb::federation_client::FederationClient;
use redline_proto::pb::{GetCheckpointsRequest, GossipRequest};
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A connection to a peer could not be set up.
#[derive(Debug, Error)]
pub enum PeerError {
    #[error("bad peer URL {url}: {source}")]
    Url {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("peer {url}: {what} {}: {source}", .path.display())]
    Read {
        url: String,
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("peer {url}: TLS: {source}")]
    Tls {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("peer {url}: the token is not a valid header value")]
    Token { url: String },
    #[error("connect {url}: {}", error_chain(.source))]
    Connect {
        url: String,
        source: tonic::transport::Error,
    },
}

/// The channel to a peer, with its token added to each call.
pub type PeerChannel = InterceptedService<Channel, PeerAuth>;

/// Adds `authorization: Bearer <token>` when the peer has a token. `Debug` hides it.
#[derive(Clone)]
pub struct PeerAuth(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "PeerAuth(<token>)"
        } else {
            "PeerAuth(none)"
        })
    }
}

impl tonic::service::Interceptor for PeerAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// The endpoint (TLS included) and token interceptor for `peer`. Files are read here, so a
/// replaced certificate is picked up at the next reconnection.
pub fn endpoint(peer: &PeerConfig) -> Result<(Endpoint, PeerAuth), PeerError> {
    let url = &peer.url;
    let mut endpoint = Endpoint::from_shared(url.clone())
        .map_err(|source| PeerError::Url {
            url: url.clone(),
            source,
        })?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if url.starts_with("https://") {
        let read = |p: &std::path::Path, what: &'static str| {
            std::fs::read(p).map_err(|source| PeerError::Read {
                url: url.clone(),
                what,
                path: p.to_owned(),
                source,
            })
        };
        let mut tls = ClientTlsConfig::new();
        tls = match &peer.ca {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(read(ca, "ca")?)),
            None => tls.with_webpki_roots(),
        };
        if let (Some(cert), Some(key)) = (&peer.cert, &peer.key) {
            tls = tls.identity(Identity::from_pem(read(cert, "cert")?, read(key, "key")?));
        }
        if let Some(name) = &peer.tls_server_name {
            tls = tls.domain_name(name.clone());
        }
        endpoint = endpoint.tls_config(tls).map_err(|source| PeerError::Tls {
            url: url.clone(),
            source,
        })?;
    }
    let auth = match &peer.token {
        Some(t) => Some(
            MetadataValue::try_from(format!("Bearer {}", t.0))
                .map_err(|_| PeerError::Token { url: url.clone() })?,
        ),
        None => None,
    };
    Ok((endpoint, PeerAuth(auth)))
}

/// Largest single message read on a peer's [`FederationClient`]: an entry (at most
/// `MAX_ENTRY_BYTES`) or one pushed checkpoint (a signed note is at most 16 KiB). Anything
/// bigger is refused from its length prefix, before it is read into memory. Lists of
/// checkpoints go through [`Peer::checkpoints`] and [`Peer::gossip`] instead.
pub const MAX_PEER_MESSAGE: usize = 64 * 1024;

/// A connection to a peer.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Entries, consistency proofs and the watch stream, with [`MAX_PEER_MESSAGE`].
    pub federation: FederationClient<PeerChannel>,
    channel: PeerChannel,
}

impl Peer {
    /// `GetCheckpoints`, decoded with a cap ([`bounded`]).
    pub async fn checkpoints(
        &self,
        req: tonic::Request<GetCheckpointsRequest>,
    ) -> Result<CheckpointAnswer, tonic::Status> {
        self.list(req, "/redline.v1.Federation/GetCheckpoints")
            .await
    }

    /// `Gossip`, its answer decoded with a cap ([`bounded`]).
    pub async fn gossip(
        &self,
        req: tonic::Request<GossipRequest>,
    ) -> Result<CheckpointAnswer, tonic::Status> {
        self.list(req, "/redline.v1.Federation/Gossip").await
    }

    async fn list<Req: prost::Message + Send + 'static>(
        &self,
        req: tonic::Request<Req>,
        path: &'static str,
    ) -> Result<CheckpointAnswer, tonic::Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone())
            .max_decoding_message_size(MAX_CHECKPOINT_LIST_BYTES)
            .max_encoding_message_size(MAX_CHECKPOINT_LIST_BYTES);
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("peer not ready: {e}")))?;
        let codec = tonic_prost::ProstCodec::<Req, CheckpointAnswer>::default();
        Ok(grpc
            .unary(req, http::uri::PathAndQuery::from_static(path), codec)
            .await?
            .into_inner())
    }
}

/// Connects to `peer`.
pub async fn connect(peer: &PeerConfig) -> Result<Peer, PeerError> {
    let (endpoint, auth) = endpoint(peer)?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|source| PeerError::Connect {
            url: peer.url.clone(),
            source,
        })?;
    let channel = InterceptedService::new(channel, auth);
    Ok(Peer {
        federation: FederationClient::new(channel.clone())
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_CHECKPOINT_LIST_BYTES),
        channel,
    })
}

/// An error with its sources, so "transport error" says which TLS check failed.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
