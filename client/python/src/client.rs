//! `Client`: one connection to a node (TLS for `https://` with an optional private CA, a bearer
//! token on every call) carrying the Rust `PlatformClient` (Matching) and `Auditor` (Audit).
//!
//! Images and videos are hashed here and only their hashes sent, unless the caller asks the
//! node to hash them (`send=True`, which it does and then drops the bytes).

use crate::errors::client_error;
use crate::hashing::{image_signals, signal_type, video_query_signals, Input, Signal};
use crate::matching::{flatten, results, Match, QueryResult};
use crate::runtime::{block_on, new_runtime};
use crate::verify::{self, origin_key, trusted, UpdateBatch, VerifiedLog};
use pyo3::prelude::*;
use redline_client::platform::{signal, MatchOptions};
use redline_client::{Auditor, BearerAuth, NodeTarget, PlatformClient};
use redline_proto::pb::{MatchRequest, Signal as PbSignal};
use std::path::PathBuf;
use std::time::Duration;

/// A query signal: a `Signal` or a `(signal_type, value)` pair.
#[derive(Debug, FromPyObject)]
pub enum Query<'py> {
    Signal(PyRef<'py, Signal>),
    Pair((String, String)),
}

impl Query<'_> {
    fn to_pb(&self) -> PyResult<PbSignal> {
        match self {
            Query::Signal(s) => Ok(s.to_pb()),
            Query::Pair((t, v)) => signal(t, v).map_err(client_error),
        }
    }
}

/// A connection to a Redline node.
#[pyclass(frozen, module = "redline._redline")]
#[derive(Debug)]
pub struct Client {
    rt: tokio::runtime::Runtime,
    platform: PlatformClient,
    auditor: Auditor,
    url: String,
    timeout: Option<Duration>,
}

impl Client {
    fn request(
        &self,
        py: Python<'_>,
        what: &str,
        req: MatchRequest,
    ) -> PyResult<redline_proto::pb::MatchResponse> {
        let mut platform = self.platform.clone();
        block_on(py, &self.rt, self.timeout, what, async move {
            platform.match_request(req).await.map_err(client_error)
        })
    }
}

#[pymethods]
impl Client {
    /// Connects to the node at `url` (`http://host:port`, or `https://host:port` with its
    /// certificate checked against `ca`, a PEM file, or the Mozilla roots without it). Every
    /// call carries `token` as `authorization: Bearer <token>`. `timeout` (seconds, `None` for
    /// none) bounds each match call; audits stream for as long as the log takes.
    #[new]
    #[pyo3(signature = (url, *, token = None, ca = None, timeout = Some(30.0)))]
    fn new(
        py: Python<'_>,
        url: String,
        token: Option<String>,
        ca: Option<PathBuf>,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let timeout = match timeout {
            None => None,
            Some(t) if t > 0.0 && t.is_finite() => Some(Duration::from_secs_f64(t)),
            Some(t) => {
                return Err(crate::errors::InputError::new_err(format!(
                    "timeout must be a positive number of seconds or None, got {t}"
                )))
            }
        };
        let target = NodeTarget {
            url: url.clone(),
            token,
            ca,
        };
        let auth: BearerAuth = target.auth().map_err(client_error)?;
        let rt = new_runtime()?;
        let channel = block_on(py, &rt, None, "connect", async {
            target.open().await.map_err(client_error)
        })?;
        // The channel is opened inside the runtime (its background task lives there), then
        // shared by both clients: one connection, one TLS session.
        let _guard = rt.enter();
        Ok(Client {
            platform: PlatformClient::with_auth(channel.clone(), auth.clone()),
            auditor: Auditor::with_auth(channel, auth),
            rt,
            url,
            timeout,
        })
    }

    /// The node's URL.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// Matches one hash given as hex (`signal_type` e.g. `pdq`, `md5`, `video_md5`). Returns the
    /// matches, nearest first; `max_distance` 0 is the type's default (PDQ: 31).
    #[pyo3(signature = (signal_type, value, *, max_distance = 0, max_hits = 0))]
    fn match_hash(
        &self,
        py: Python<'_>,
        signal_type: &str,
        value: &str,
        max_distance: u32,
        max_hits: u32,
    ) -> PyResult<Vec<Match>> {
        let s = signal(signal_type, value).map_err(client_error)?;
        let req = MatchRequest {
            signals: vec![s],
            max_distance,
            max_hits,
            ..Default::default()
        };
        Ok(flatten(self.request(py, "match_hash", req)?))
    }

    /// Matches a batch of signals (`Signal`s or `(signal_type, value)` pairs) in one call:
    /// one `QueryResult` per signal.
    #[pyo3(signature = (signals, *, max_distance = 0, max_hits = 0))]
    fn match_signals(
        &self,
        py: Python<'_>,
        signals: Vec<Query<'_>>,
        max_distance: u32,
        max_hits: u32,
    ) -> PyResult<Vec<QueryResult>> {
        let signals = signals
            .iter()
            .map(Query::to_pb)
            .collect::<PyResult<Vec<_>>>()?;
        let req = MatchRequest {
            signals,
            max_distance,
            max_hits,
            ..Default::default()
        };
        Ok(results(self.request(py, "match_signals", req)?))
    }

    /// Matches an image (bytes or a path). It is hashed here under `types` (default PDQ) and
    /// only the hashes are sent; with `send=True` or `dihedral=True` (the 8 rotations/flips,
    /// which need the pixels) the node hashes it and drops it.
    #[pyo3(signature = (image, *, types = vec!["pdq".to_owned()], max_distance = 0, dihedral = false, send = false))]
    fn match_image(
        &self,
        py: Python<'_>,
        image: Input,
        types: Vec<String>,
        max_distance: u32,
        dihedral: bool,
        send: bool,
    ) -> PyResult<Vec<Match>> {
        let name = image.name();
        let bytes = image.read()?;
        let options = MatchOptions {
            max_distance,
            dihedral,
        };
        let req = if send || dihedral {
            MatchRequest {
                image: bytes,
                max_distance: options.max_distance,
                dihedral: options.dihedral,
                ..Default::default()
            }
        } else {
            let types = types
                .iter()
                .map(|t| signal_type(t))
                .collect::<PyResult<Vec<_>>>()?;
            let signals = py.detach(|| image_signals(&bytes, &types, &name))?;
            MatchRequest {
                signals: signals.iter().map(Signal::to_pb).collect(),
                max_distance: options.max_distance,
                ..Default::default()
            }
        };
        Ok(flatten(self.request(py, "match_image", req)?))
    }

    /// Matches a video (bytes or a path): hashed here (vPDQ at 1 frame a second, video_md5,
    /// video_sha256; needs ffmpeg) and only the hashes sent, or sent to the node with
    /// `send=True`. vPDQ matches carry `video` (the frame comparison).
    #[pyo3(signature = (video, *, max_distance = 0, send = false))]
    fn match_video(
        &self,
        py: Python<'_>,
        video: Input,
        max_distance: u32,
        send: bool,
    ) -> PyResult<Vec<Match>> {
        let name = video.name();
        let bytes = video.read()?;
        let req = if send {
            MatchRequest {
                video: bytes,
                max_distance,
                ..Default::default()
            }
        } else {
            let signals = py.detach(|| video_query_signals(&bytes, &name))?;
            MatchRequest {
                signals: signals.iter().map(Signal::to_pb).collect(),
                max_distance,
                ..Default::default()
            }
        };
        Ok(flatten(self.request(py, "match_video", req)?))
    }

    /// Fetches an origin's log from the node and verifies it against `verifier_key` (the
    /// origin's C2SP key, from its operator, never from the node): the checkpoint's signature,
    /// every leaf against the signed root, retractions, inclusion proofs, and, with `previous`
    /// (an earlier `VerifiedLog.checkpoint`), that the log extends what was verified then.
    /// Raises `VerificationError` if anything does not verify.
    #[pyo3(signature = (verifier_key, *, origin = None, previous = None))]
    fn verify_origin(
        &self,
        py: Python<'_>,
        verifier_key: &str,
        origin: Option<&str>,
        previous: Option<(u64, String)>,
    ) -> PyResult<VerifiedLog> {
        let key = origin_key(verifier_key, origin)?;
        let previous = trusted(previous)?;
        let auditor = self.auditor.clone();
        block_on(py, &self.rt, None, "verify_origin", async move {
            verify::verify_origin(auditor, key, previous).await
        })
    }

    /// Verifies the origin's whole log like `verify_origin` (extending `since`, a `(size, root)`
    /// resume point) and returns the changes of the leaves after `since` in log order, in
    /// batches of `batch_size` leaves each ending at a resume point.
    #[pyo3(signature = (verifier_key, *, since = None, batch_size = 10_000))]
    fn log_updates(
        &self,
        py: Python<'_>,
        verifier_key: &str,
        since: Option<(u64, String)>,
        batch_size: u64,
    ) -> PyResult<Vec<UpdateBatch>> {
        let key = origin_key(verifier_key, None)?;
        let since = trusted(since)?;
        let auditor = self.auditor.clone();
        block_on(py, &self.rt, None, "log_updates", async move {
            verify::log_updates(auditor, key, since, batch_size).await
        })
    }

    fn __repr__(&self) -> String {
        format!("Client({:?})", self.url)
    }
}
