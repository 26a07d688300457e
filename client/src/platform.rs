//! What a platform does: check uploads against the merged lists of the origins a node accepts,
//! by hash (one or a batch), by image (hashed on the node, then dropped), or as a stream.
//!
//! Prefer hashing images locally (`redline_hashing::hash_image`) and sending only the hashes:
//! the image then never leaves the platform. [`PlatformClient::match_image`] is there for
//! platforms that cannot hash themselves.

use crate::connect::{connect, with_auth, AuthChannel, BearerAuth, ClientError, NodeTarget};
use futures::Stream;
use redline_proto::pb::{matching_client::MatchingClient, MatchRequest, MatchResponse, Signal};
use redline_proto::signal::SignalType;
use tonic::transport::Channel;
use tonic::Streaming;

/// How to match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchOptions {
    /// Largest Hamming distance; 0 means each signal type's default (PDQ: 31).
    pub max_distance: u32,
    /// Also match the 8 rotations/flips of a PDQ query.
    pub dihedral: bool,
}

/// A checked signal from text: `signal_type` must be known and `hex` of the right length.
/// Upper-case hex is accepted and sent lowercase.
pub fn signal(signal_type: &str, hex: &str) -> Result<Signal, ClientError> {
    let t = SignalType::from_name(signal_type).map_err(|e| ClientError::Input(e.to_string()))?;
    let value = hex.trim().to_ascii_lowercase();
    t.parse_hex(&value)
        .map_err(|e| ClientError::Input(e.to_string()))?;
    Ok(Signal {
        signal_type: t.name().to_owned(),
        value,
        quality: 0,
    })
}

/// Whether a call failed because its connection went away under it (a GOAWAY, a reset, a
/// closed socket), not because the node answered with an error: such a call is safe to send
/// again when it changes nothing. A node that answers `UNAVAILABLE` itself (still loading,
/// shutting down) says so in the message, and that is retried the same way.
fn is_connection_closing(s: &tonic::Status) -> bool {
    use std::error::Error as _;
    match s.code() {
        tonic::Code::Unavailable => true,
        // hyper cancels a request it had queued on a connection that began to close before
        // the request went out ("operation was canceled"): the node never saw it.
        tonic::Code::Cancelled => true,
        // tonic reports hyper's "connection closed before message completed" as UNKNOWN with
        // the transport error as its source.
        tonic::Code::Unknown => {
            let mut source = s.source();
            while let Some(e) = source {
                if e.is::<tonic::transport::Error>() {
                    return true;
                }
                source = e.source();
            }
            false
        }
        _ => false,
    }
}

/// Client of a node's `Matching` service.
#[derive(Debug, Clone)]
pub struct PlatformClient {
    matching: MatchingClient<AuthChannel>,
}

impl PlatformClient {
    /// Connects to the node at `url`, without a token.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        Ok(Self::new(connect(url).await?))
    }

    /// Connects to the node at `url`; every call carries `token` as a bearer token.
    pub async fn connect_with_token(url: &str, token: Option<&str>) -> Result<Self, ClientError> {
        Self::connect_to(&NodeTarget::with_token(url, token)).await
    }

    /// Connects to `target` (TLS for `https://`, its CA, its token).
    pub async fn connect_to(target: &NodeTarget) -> Result<Self, ClientError> {
        let auth = target.auth()?;
        Ok(Self::with_auth(target.open().await?, auth))
    }

    /// Uses an open channel, without a token.
    pub fn new(channel: Channel) -> Self {
        Self::with_auth(channel, BearerAuth::none())
    }

    /// Uses an open channel; every call carries `auth`.
    pub fn with_auth(channel: Channel, auth: BearerAuth) -> Self {
        Self {
            matching: MatchingClient::new(with_auth(channel, auth))
                .max_decoding_message_size(64 * 1024 * 1024)
                .max_encoding_message_size(64 * 1024 * 1024),
        }
    }

    /// Matches a batch of hashes.
    pub async fn match_signals(
        &mut self,
        signals: Vec<Signal>,
        options: MatchOptions,
    ) -> Result<MatchResponse, ClientError> {
        self.match_request(MatchRequest {
            signals,
            image: Vec::new(),
            max_distance: options.max_distance,
            dihedral: options.dihedral,
            ..Default::default()
        })
        .await
    }

    /// Matches one PDQ hash given as 64 hex digits.
    pub async fn match_pdq(
        &mut self,
        pdq_hex: &str,
        options: MatchOptions,
    ) -> Result<MatchResponse, ClientError> {
        let s = signal("pdq", pdq_hex)?;
        self.match_signals(vec![s], options).await
    }

    /// Sends an image; the node hashes it with every signal type it is configured for, matches
    /// the hashes, and drops the image.
    pub async fn match_image(
        &mut self,
        image: Vec<u8>,
        options: MatchOptions,
    ) -> Result<MatchResponse, ClientError> {
        self.match_request(MatchRequest {
            signals: Vec::new(),
            image,
            max_distance: options.max_distance,
            dihedral: options.dihedral,
            ..Default::default()
        })
        .await
    }

    /// Sends a video; the node hashes it (vPDQ at 1 frame a second, video_md5, video_sha256) in
    /// its sandboxed decoder, matches the hashes, and drops the video.
    pub async fn match_video(
        &mut self,
        video: Vec<u8>,
        options: MatchOptions,
    ) -> Result<MatchResponse, ClientError> {
        self.match_request(MatchRequest {
            video,
            max_distance: options.max_distance,
            ..Default::default()
        })
        .await
    }

    /// Sends a raw request.
    pub async fn match_request(&mut self, req: MatchRequest) -> Result<MatchResponse, ClientError> {
        if req.signals.is_empty() && req.image.is_empty() && req.video.is_empty() {
            return Err(ClientError::Input(
                "nothing to match: give at least one hash, an image or a video".into(),
            ));
        }
        // A Match only reads, so it is sent again once when the connection it went out on was
        // closing under it: a node ends every connection at `[limits] max_connection_age_ms`
        // with a GOAWAY, and a call racing that GOAWAY fails with a transport error that tonic
        // (unlike grpc-go) does not retry itself. Each attempt sends a copy, so one can be sent again.
        // Until the channel has reconnected, a resend can meet the same closing connection, so
        // each waits a little longer (a few attempts, well under a second in all).
        let mut waits = [20u64, 100, 400].into_iter();
        loop {
            match self.matching.r#match(req.clone()).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) if is_connection_closing(&s) => match waits.next() {
                    Some(ms) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
                    None => return Err(s.into()),
                },
                Err(s) => return Err(s.into()),
            }
        }
    }

    /// Opens a stream: one response per request, in order, for as long as `requests` yields.
    pub async fn match_stream(
        &mut self,
        requests: impl Stream<Item = MatchRequest> + Send + 'static,
    ) -> Result<Streaming<MatchResponse>, ClientError> {
        Ok(self.matching.match_stream(requests).await?.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_checked_before_sending() {
        let s = signal("pdq", &"AB".repeat(32)).unwrap();
        assert_eq!(s.value, "ab".repeat(32));
        assert!(signal("pdq", "abc").is_err());
        assert!(signal("sha1", &"ab".repeat(20)).is_err());
        assert!(signal("md5", &"zz".repeat(16)).is_err());
    }
}
