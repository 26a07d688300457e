//! Node configuration: a TOML file (`--config`) and command-line flags that override it.
//! Unknown keys are an error naming the key, so a typo never silently falls back to a default.

use redline_proto::checkpoint::OriginKey;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./redline-data";
/// Default listen address (loopback: a node without tokens must not face a network).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";
/// Default origin name when none is given.
pub const DEFAULT_ORIGIN: &str = "redline.localhost";

/// The configuration could not be read.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("trust entry for {origin:?}: {message}")]
    Trust { origin: String, message: String },
    #[error("invalid origin name {0:?}: it must be non-empty, without spaces or '+'")]
    Origin(String),
    #[error("[[tokens]] {name:?}: {message}")]
    Token { name: String, message: String },
    #[error("[[peers]] {url}: {message}")]
    Peer { url: String, message: String },
    #[error("{0}")]
    Exposed(String),
}

/// What a node does with an origin's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Replicate and match against it.
    Accept,
    /// Replicate (and relay) only.
    Replicate,
    /// Ignore it.
    Reject,
}

impl Policy {
    /// Name as shown in status.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Accept => "accept",
            Policy::Replicate => "replicate",
            Policy::Reject => "reject",
        }
    }
}

/// A peer to sync from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// gRPC URL, e.g. `http://127.0.0.1:7444`, or `https://...` for TLS.
    pub url: String,
    /// Bearer token sent on every call to the peer (a token of the peer's with the `federate`
    /// scope); none when the peer needs no token.
    #[serde(default)]
    pub token: Option<Secret>,
    /// PEM file of the CA(s) that sign the peer's server certificate (`https` only); without
    /// it the Mozilla root set is used.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// PEM client certificate (chain) presented to the peer for mutual TLS; needs `key`.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Name the peer's certificate must carry when it differs from the URL's host.
    #[serde(default)]
    pub tls_server_name: Option<String>,
}

impl PeerConfig {
    /// A peer at `url` with no token and default TLS settings.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

/// A secret string from the configuration, never shown by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// What a bearer token may do. Each gRPC service needs one scope; health and reflection need
/// none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `Submission`: add and retract entries of this node's own list.
    Submit,
    /// `Matching`: check hashes and images.
    Match,
    /// `Audit`: read logs, checkpoints, proofs and evidence.
    Audit,
    /// `Federation`: what peers call to replicate.
    Federate,
    /// `Node.Status`: the operator's view.
    Admin,
}

impl Scope {
    /// Name as written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Submit => "submit",
            Scope::Match => "match",
            Scope::Audit => "audit",
            Scope::Federate => "federate",
            Scope::Admin => "admin",
        }
    }
}

/// A bearer token the node accepts. Only its SHA-256 is stored (`redline-node --hash-token`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (shown in logs, never the token).
    pub name: String,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
    /// What it may call.
    pub scopes: Vec<Scope>,
    /// Work units per second allowed on average (token bucket); unlimited when absent. A
    /// call is one unit; a Match or Submit is one per signal and 16 per image (+7 with
    /// `dihedral`), each message of a MatchStream likewise (`grpc::auth::units`).
    #[serde(default)]
    pub rate_per_sec: Option<f64>,
    /// Units allowed in a burst; default: `rate_per_sec` rounded up (at least 1).
    #[serde(default)]
    pub burst: Option<u32>,
}

/// TLS for the gRPC listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of this node.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// PEM CA(s) that sign client certificates. When set, every client must present a
    /// certificate signed by it (mutual TLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// An origin this node follows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// Origin name.
    pub origin: String,
    /// C2SP verifier key of the origin.
    pub key: String,
    /// What to do with its list.
    pub policy: Policy,
}

/// Limits on requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest gRPC response message, bytes (Audit pages are sized from it). Requests are
    /// bounded per method by what they can hold instead: Match and Submit by `max_signals`,
    /// `max_batch`, the label and text limits and `[hashing] max_image_bytes`
    /// (`grpc::wire`), the other services by their own small limits.
    pub max_message_bytes: usize,
    /// Most signals in one Submit.
    pub max_batch: usize,
    /// Deadline for unary calls, milliseconds.
    pub request_timeout_ms: u64,
    /// Most concurrent HTTP/2 streams (calls) one connection may open.
    pub max_concurrent_streams: u32,
    /// After SIGTERM/SIGINT, how long in-flight calls may take to finish before the node
    /// closes their connections anyway, milliseconds.
    pub shutdown_grace_ms: u64,
    /// A new connection must complete its TLS handshake (when `[tls]` is set) and send its
    /// HTTP/2 opening (the preface and the whole first SETTINGS frame, counted on the
    /// decrypted stream) within this of being accepted, milliseconds, or it is closed: a
    /// client that stalls or trickles its ClientHello or its preface does not hold a
    /// connection.
    pub handshake_timeout_ms: u64,
    /// Most connections the gRPC listener holds at once, from all callers together; one over
    /// it is closed as soon as it is accepted (`redline_rejected_total{source="connection",
    /// reason="connection_cap"}`). Each costs a file descriptor and tens of KiB of TLS and
    /// HTTP/2 buffers; keep it under the process's open-file limit.
    pub max_connections: usize,
    /// Most connections from one address (an IPv6 caller: from one /64, what a single host is
    /// usually given), so one caller cannot take all of `max_connections`. Loopback is not
    /// exempt. Behind a proxy every connection comes from the proxy: raise it to
    /// `max_connections` there.
    pub max_connections_per_address: usize,
    /// A connection with no call in flight for this long (since its opening or its last call
    /// ended) is closed, milliseconds; 0: never. Calls, not bytes, because HTTP/2 keepalive
    /// PINGs keep an idle connection sending. Clients reconnect on their next call.
    pub idle_timeout_ms: u64,
    /// A connection older than this is asked to go away (HTTP/2 GOAWAY: its open calls
    /// finish, new calls go to a new connection), milliseconds; 0: never. Bounds what one
    /// connection holds however it is used, including endless streams (health `Watch`,
    /// reflection, `WatchCheckpoints`).
    pub max_connection_age_ms: u64,
    /// After that GOAWAY, how long its open calls may continue before the connection is
    /// closed anyway, milliseconds. Longer than `[sync] fetch_timeout_ms`, so a fetch in
    /// flight finishes.
    pub max_connection_age_grace_ms: u64,
    /// A streaming call (MatchStream, GetEntries, health `Watch`, reflection) that carried no
    /// message either way for this long is ended with DEADLINE_EXCEEDED, milliseconds; 0:
    /// never. `WatchCheckpoints`, federation's push path, is quiet by nature and exempt.
    pub stream_idle_ms: u64,
    /// A streaming call of a service that needs a token is ended this long after it opened,
    /// milliseconds (the client opens a new one); 0: never. `WatchCheckpoints` is exempt.
    pub stream_max_ms: u64,
    /// The same for the services anyone may call without a token (health `Watch`,
    /// reflection), milliseconds; 0: never.
    pub open_stream_max_ms: u64,
    /// HTTP/2 PING to every connection that has sent nothing for this long, milliseconds; a
    /// connection that does not answer within `keepalive_timeout_ms` is closed (a slowloris
    /// client that trickles its headers, or a dead peer). Real clients answer by themselves.
    pub keepalive_interval_ms: u64,
    /// See `keepalive_interval_ms`.
    pub keepalive_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024 * 1024,
            max_batch: 10_000,
            request_timeout_ms: 30_000,
            max_concurrent_streams: 128,
            shutdown_grace_ms: 10_000,
            handshake_timeout_ms: 10_000,
            max_connections: 4096,
            max_connections_per_address: 256,
            idle_timeout_ms: 300_000,
            max_connection_age_ms: 3_600_000,
            max_connection_age_grace_ms: 300_000,
            stream_idle_ms: 60_000,
            stream_max_ms: 3_600_000,
            open_stream_max_ms: 60_000,
            keepalive_interval_ms: 30_000,
            keepalive_timeout_ms: 20_000,
        }
    }
}

/// Federation timing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Periodic pull interval, milliseconds (push is the fast path).
    pub poll_interval_ms: u64,
    /// Shortest retry delay for an unreachable peer, milliseconds. Each retry waits a random
    /// time between this and three times the previous wait (decorrelated jitter, so followers
    /// that lost a peer together do not come back together), up to `backoff_max_ms`; a session
    /// that completed an exchange starts over from here.
    pub backoff_initial_ms: u64,
    /// Longest retry delay, milliseconds.
    pub backoff_max_ms: u64,
    /// Entries per fetch request.
    pub fetch_batch: u64,
    /// Deadline of one fetch request (`fetch_batch` entries), milliseconds: a peer that
    /// drips its answer is cut off after this and the session retried with backoff.
    pub fetch_timeout_ms: u64,
    /// Most leaf bytes one replication step holds in memory before it can verify them
    /// (counted as each leaf's length plus 32 bytes of overhead; a step may end one entry
    /// past it). A checkpoint further ahead is caught up in steps of this size: each step's
    /// prefix is committed once a consistency proof reconciles its root with the origin's
    /// signed root, so this bounds a step, never what can be joined (an origin that signs a
    /// tree of 2^63 leaves costs one step and is refused as `root_mismatch`). 16 MiB is
    /// ~150,000 typical entries per step. The catch-up benchmark (`tests/benches/catch_up.rs`,
    /// figures in README) measured larger steps no faster and heavier: at 3M entries 16 and
    /// 64 MiB catch up equally fast with peaks of 1.49 and 1.98 GiB; at 10M, steps of 512 MiB
    /// (the old default) were 2.3x slower than 64 MiB (sled commits millions of entries in
    /// one batch superlinearly) with 2.3x the peak.
    pub max_fetch_bytes: u64,
    /// Report not ready (`/readyz` 503, gRPC health NOT_SERVING for `""` and
    /// `redline.v1.Matching`) after start until the node has caught up with every origin it
    /// replicates from at least one peer (`node::Readiness` says exactly when), so a new or
    /// autoscaled follower gets no Match traffic while it holds nothing. A node without peers
    /// is ready at once. Turn off on nodes whose own readiness gates how their peers reach
    /// them (two hotlines each waiting for the other behind a readiness-gated load balancer).
    pub ready_after_first_sync: bool,
    /// With `ready_after_first_sync`: become ready anyway after this long, milliseconds,
    /// logging a warning that names the origins not caught up with; 0 = wait as long as it
    /// takes (a follower that cannot reach its peers stays out of rotation rather than
    /// answering "no match").
    pub ready_timeout_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 10_000,
            backoff_initial_ms: 200,
            backoff_max_ms: 30_000,
            fetch_batch: 10_000,
            fetch_timeout_ms: 120_000,
            max_fetch_bytes: 16 * 1024 * 1024,
            ready_after_first_sync: true,
            ready_timeout_ms: 0,
        }
    }
}

/// Image hashing on the node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashingConfig {
    /// Signal types computed from every image (names as in `Signal.signal_type`).
    pub signal_types: Vec<String>,
    /// Largest encoded image, bytes.
    pub max_image_bytes: usize,
    /// Largest width or height, pixels (checked from the header, before decoding).
    pub max_dimension: u32,
    /// Largest width x height (decompression bombs are refused before decoding).
    pub max_pixels: u64,
    /// Accepted formats: jpeg, png, webp, gif (first frame), bmp, tiff.
    pub formats: Vec<String>,
}

impl Default for HashingConfig {
    fn default() -> Self {
        Self {
            signal_types: ["pdq", "md5", "sha256"].map(String::from).to_vec(),
            max_image_bytes: 20 * 1024 * 1024,
            max_dimension: 16_384,
            max_pixels: 50_000_000,
            formats: ["jpeg", "png", "webp", "gif", "bmp", "tiff"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// What `[hashing]` asks for, parsed: the signal types to compute and the decoding limits.
#[derive(Debug, Clone)]
pub struct ImageHashing {
    /// Signal types computed from every image, in the configured order.
    pub signal_types: Vec<redline_proto::signal::SignalType>,
    /// Limits every upload is decoded under.
    pub limits: redline_hashing::DecodeLimits,
}

impl HashingConfig {
    /// The configured types and limits as typed values; an unknown type or format is an error
    /// naming it.
    pub fn parsed(&self) -> Result<ImageHashing, ConfigError> {
        let err = |message: String| ConfigError::Parse {
            path: PathBuf::from("[hashing]"),
            message,
        };
        let signal_types = self
            .signal_types
            .iter()
            .map(|n| {
                redline_proto::signal::SignalType::from_name(n).map_err(|e| err(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let formats = self
            .formats
            .iter()
            .map(|f| match f.as_str() {
                "jpeg" => Ok(image::ImageFormat::Jpeg),
                "png" => Ok(image::ImageFormat::Png),
                "webp" => Ok(image::ImageFormat::WebP),
                "gif" => Ok(image::ImageFormat::Gif),
                "bmp" => Ok(image::ImageFormat::Bmp),
                "tiff" => Ok(image::ImageFormat::Tiff),
                other => Err(err(format!(
                    "unknown image format {other:?} (known: jpeg, png, webp, gif, bmp, tiff)"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ImageHashing {
            signal_types,
            limits: redline_hashing::DecodeLimits {
                max_encoded_bytes: self.max_image_bytes,
                max_width: self.max_dimension,
                max_height: self.max_dimension,
                max_pixels: self.max_pixels,
                formats,
                ..redline_hashing::DecodeLimits::default()
            },
        })
    }
}

/// Video hashing on the node (`[video]`): limits of the sandboxed decoder and how a listed video
/// is sampled. Decoding needs Debian's `ffmpeg` (`ffmpeg`, `ffprobe`) and util-linux `prlimit`
/// on `PATH`; without them video uploads are refused with FAILED_PRECONDITION.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VideoConfig {
    /// Largest video upload, bytes (default 64 MiB; a Match or Submit request may then be that
    /// large).
    pub max_video_bytes: usize,
    /// Longest video, seconds (default 900).
    pub max_duration_s: f64,
    /// Wall-clock budget for decoding one video, seconds (default 120).
    pub deadline_s: u64,
    /// Seconds between the frames hashed of a video being listed, before thinning (default 0.2).
    pub listing_seconds_per_hash: f64,
    /// A listed frame within this many bits of the last one kept is dropped (default 12).
    pub listing_thin_within: u32,
}

impl Default for VideoConfig {
    fn default() -> Self {
        let sampling = redline_hashing::vpdq::ListingSampling::default();
        Self {
            max_video_bytes: 64 << 20,
            max_duration_s: 900.0,
            deadline_s: 120,
            listing_seconds_per_hash: sampling.seconds_per_hash,
            listing_thin_within: sampling.thin_within,
        }
    }
}

impl VideoConfig {
    /// The decoder limits and listing sampling these settings give.
    pub fn parsed(
        &self,
    ) -> (
        redline_hashing::VideoLimits,
        redline_hashing::vpdq::ListingSampling,
    ) {
        let deadline = std::time::Duration::from_secs(self.deadline_s.max(1));
        (
            redline_hashing::VideoLimits {
                max_input_bytes: self.max_video_bytes,
                max_duration_s: self.max_duration_s,
                deadline,
                cpu_seconds: self.deadline_s.max(1),
                ..redline_hashing::VideoLimits::default()
            },
            redline_hashing::vpdq::ListingSampling {
                seconds_per_hash: self.listing_seconds_per_hash.max(0.0),
                thin_within: self.listing_thin_within,
            },
        )
    }
}

/// How vPDQ queries are decided (`[matching.video]`), python-threatexchange's index semantics
/// by default. A request may set its own thresholds (`VideoMatchOptions`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VideoMatchConfig {
    /// Frames of lower PDQ quality are left out on both sides (default 50).
    pub quality_threshold: u8,
    /// Percent of the query's frames that must match (default 80).
    pub query_match_percent: f64,
    /// Percent of the listed video's frames that must match (default 0).
    pub compared_match_percent: f64,
    /// Most candidate entries compared frame by frame per query (default 1,000; the ones near
    /// the most query frames first).
    pub max_candidates: usize,
}

impl Default for VideoMatchConfig {
    fn default() -> Self {
        Self {
            quality_threshold: 50,
            query_match_percent: 80.0,
            compared_match_percent: 0.0,
            max_candidates: 1000,
        }
    }
}

/// Matching radii.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchingConfig {
    /// Default (and largest) Hamming radius per signal type, e.g. `{ pdq = 31 }`; types not
    /// listed use the protocol default. Requests may lower it, never raise it.
    pub max_distance: std::collections::BTreeMap<String, u32>,
    /// Most signals in one Match request.
    pub max_signals: usize,
    /// Most matches returned per queried signal (nearest first); the result says `truncated`
    /// when there were more. Requests may ask for fewer, never more. Bounds the work and the
    /// answer of a query near a hash that an origin (or many) lists many times over.
    pub max_hits: usize,
    /// Seconds between catalog snapshots while the logs change (the snapshot a restart loads
    /// instead of replaying every log; one is also saved at every graceful shutdown). 0 saves
    /// only at shutdown. Commits (not Match queries) wait while one is written: ~1 s per
    /// million entries (9-11 s at 10M, `cargo bench -p redline-server --bench restart`).
    pub snapshot_interval_s: u64,
    /// How vPDQ queries are decided.
    pub video: VideoMatchConfig,
}

impl Default for MatchingConfig {
    fn default() -> Self {
        Self {
            max_distance: Default::default(),
            max_signals: 1024,
            max_hits: 100,
            snapshot_interval_s: 600,
            video: VideoMatchConfig::default(),
        }
    }
}

/// Evidence of refused peer material (`[evidence]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// Most bytes the evidence store keeps (each record plus its keys). When a new record would
    /// pass it, the oldest records that prove nothing are dropped first; proof of equivocation
    /// is never dropped (there is at most about one per trusted origin, as the origin is frozen
    /// once it is proven). Oversized notes are kept as a 4 KiB prefix with their length and
    /// SHA-256, so 64 MiB holds well over ten thousand records.
    pub max_bytes: u64,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The C2SP tlog-tiles view of every log the node holds (`[tiles]`), served under
/// `/tlog/<origin>/` on the listen address. Entry bundles always need a token with the `audit`
/// or `federate` scope: perceptual hashes say something about the images they were made from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TilesConfig {
    /// Serve checkpoints and hash tiles to anyone (witnesses, monitors, a CDN in front of the
    /// node): they reveal a list's size and Merkle hashes, nothing about its entries. Off, they
    /// need `audit` or `federate` like the entries.
    pub public: bool,
    /// Also write every origin's tiles as a static tree into this directory after each
    /// commit (`<dir>/<origin>/checkpoint`, `<dir>/<origin>/tile/…`), for any web server,
    /// object store or CDN to serve.
    pub publish_dir: Option<PathBuf>,
}

/// The node's web pages (`[web]`): the victim's page `/report/` (when `[report] enabled`) and
/// the hotline's console `/console/`, static files built by `web/build.sh`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// The built files (`web/build.sh` writes them to `target/web`): `<assets>/report/` and
    /// `<assets>/console/`. The node serves no page when absent.
    pub assets: Option<PathBuf>,
    /// Serve the console (it holds no data: every panel calls the API with the analyst's own
    /// token, which is never stored).
    pub console: bool,
}

/// How reports from the public page are handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportMode {
    /// Into a review queue an analyst approves from (`/v1/reports/approve`).
    #[default]
    Review,
    /// Straight into the node's own list.
    Direct,
}

/// The victim's page (`[report]`): `/report/`, where a person hashes her images on her own
/// device and sends only the hashes, getting a case number and a PIN to check or withdraw.
/// The API behind it needs no token (the reporter has none), so it has its own bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// Serve the page and accept reports.
    pub enabled: bool,
    /// Review queue or straight into the list.
    pub mode: ReportMode,
    /// Hashes in one report.
    pub max_signals: usize,
    /// Longest optional context a reporter may add, in bytes.
    pub max_context_bytes: usize,
    /// Calls (report, status, withdraw) one address may make per minute on average…
    pub per_address_per_min: f64,
    /// …and in a burst.
    pub per_address_burst: u32,
    /// Labels the entries of a report carry in the list.
    pub labels: Vec<String>,
    /// The legal basis they carry.
    pub legal_basis: String,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            mode: ReportMode::Review,
            max_signals: 64,
            max_context_bytes: 2000,
            per_address_per_min: 6.0,
            per_address_burst: 20,
            labels: vec!["ncii".into(), "victim-report".into()],
            legal_basis: "report by the person depicted".into(),
        }
    }
}

/// What one caller's `Gossip` may cost this node (`[gossip]`), per token (or per address when
/// tokens are off). Checkpoints over the budget are dropped unread and counted
/// (`redline_rejected_total{source="peer",reason="gossip_budget"}`), never queued.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GossipConfig {
    /// Signature checks per second on average. Only checkpoints of trusted origins that differ
    /// from the one this node holds are checked: an honest peer gossips what we already hold,
    /// so it costs nothing.
    pub signature_checks_per_sec: f64,
    /// Signature checks allowed in a burst.
    pub signature_check_burst: u32,
    /// Checkpoints that may end in an evidence record (a refusal), per minute on average.
    pub evidence_per_min: f64,
    /// Such checkpoints allowed in a burst.
    pub evidence_burst: u32,
}

impl Default for GossipConfig {
    fn default() -> Self {
        Self {
            signature_checks_per_sec: 16.0,
            signature_check_burst: 256,
            evidence_per_min: 6.0,
            evidence_burst: 8,
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's origin name.
    #[serde(default = "default_origin")]
    pub origin: String,
    /// Where sled and the identity live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// gRPC listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Peers to sync from.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Origins followed, with their keys.
    #[serde(default)]
    pub trust: Vec<TrustConfig>,
    /// Request limits.
    #[serde(default)]
    pub limits: Limits,
    /// Federation timing.
    #[serde(default)]
    pub sync: SyncConfig,
    /// Image hashing.
    #[serde(default)]
    pub hashing: HashingConfig,
    /// Video hashing.
    #[serde(default)]
    pub video: VideoConfig,
    /// Matching.
    #[serde(default)]
    pub matching: MatchingConfig,
    /// Evidence store.
    #[serde(default)]
    pub evidence: EvidenceConfig,
    /// Budget of gossip received.
    #[serde(default)]
    pub gossip: GossipConfig,
    /// The tlog-tiles view of the logs.
    #[serde(default)]
    pub tiles: TilesConfig,
    /// The victim's report page.
    #[serde(default)]
    pub report: ReportConfig,
    /// The web pages' files.
    #[serde(default)]
    pub web: WebConfig,
    /// Bearer tokens accepted. None: every caller may do everything, so the node then only
    /// listens on loopback.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// TLS for the listener; required off loopback.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Allow a non-loopback listener without tokens or TLS (e.g. behind a proxy that adds
    /// them). Also `--insecure`.
    #[serde(default)]
    pub insecure: bool,
    /// Address of the Prometheus `/metrics` HTTP endpoint; none when absent.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
}

fn default_origin() -> String {
    DEFAULT_ORIGIN.to_owned()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}
fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("valid default")
}

impl Default for Config {
    fn default() -> Self {
        Self::from_toml_str("", Path::new("<defaults>")).expect("defaults parse")
    }
}

impl Config {
    /// A config for `origin` in `data_dir` with defaults elsewhere.
    pub fn new(origin: &str, data_dir: &Path) -> Self {
        Self {
            origin: origin.to_owned(),
            data_dir: data_dir.to_owned(),
            ..Self::default()
        }
    }

    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, path)
    }

    /// Parses TOML text; `path` only names the source in errors.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks names and keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.origin.is_empty()
            || self.origin.contains('+')
            || self.origin.chars().any(char::is_whitespace)
        {
            return Err(ConfigError::Origin(self.origin.clone()));
        }
        for t in &self.trust {
            self.trusted_key(t)?;
        }
        self.hashing.parsed()?;
        self.validate_tokens()?;
        for p in &self.peers {
            let err = |message: &str| ConfigError::Peer {
                url: p.url.clone(),
                message: message.to_owned(),
            };
            let https = p.url.starts_with("https://");
            if !https && !p.url.starts_with("http://") {
                return Err(err("the URL must start with http:// or https://"));
            }
            if !https
                && (p.ca.is_some()
                    || p.cert.is_some()
                    || p.key.is_some()
                    || p.tls_server_name.is_some())
            {
                return Err(err(
                    "ca, cert, key and tls_server_name need an https:// URL",
                ));
            }
            if p.cert.is_some() != p.key.is_some() {
                return Err(err("cert and key go together"));
            }
            if let Some(t) = &p.token {
                if t.0.is_empty() || !t.0.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(err(
                        "token must be non-empty printable ASCII without spaces",
                    ));
                }
            }
        }
        let g = &self.gossip;
        let rate = |r: f64| r.is_finite() && r >= 0.0;
        if !rate(g.signature_checks_per_sec)
            || !rate(g.evidence_per_min)
            || g.signature_check_burst == 0
            || g.evidence_burst == 0
        {
            return Err(ConfigError::Parse {
                path: PathBuf::from("[gossip]"),
                message: "rates must be finite and not negative, bursts at least 1".into(),
            });
        }
        if self.limits.max_connections == 0 || self.limits.max_connections_per_address == 0 {
            return Err(ConfigError::Parse {
                path: PathBuf::from("[limits]"),
                message: "max_connections and max_connections_per_address must be at least 1"
                    .into(),
            });
        }
        for name in self.matching.max_distance.keys() {
            redline_proto::signal::SignalType::from_name(name).map_err(|e| ConfigError::Parse {
                path: PathBuf::from("[matching]"),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    fn validate_tokens(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::BTreeSet::new();
        for t in &self.tokens {
            let err = |message: &str| ConfigError::Token {
                name: t.name.clone(),
                message: message.to_owned(),
            };
            if t.name.is_empty() || !names.insert(t.name.as_str()) {
                return Err(err("every token needs a unique, non-empty name"));
            }
            if t.sha256.len() != 64
                || !t
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(err(
                    "sha256 must be 64 lowercase hex digits (redline-node --hash-token TOKEN)",
                ));
            }
            if t.scopes.is_empty() {
                return Err(err("scopes is empty: the token could call nothing"));
            }
            if let Some(r) = t.rate_per_sec {
                if !(r.is_finite() && r > 0.0) {
                    return Err(err("rate_per_sec must be a positive number"));
                }
            }
            if t.burst == Some(0) {
                return Err(err("burst must be at least 1"));
            }
        }
        Ok(())
    }

    /// Refuses to serve hash lists and open services to a network: a listener off loopback
    /// needs `[[tokens]]` and `[tls]`, unless `insecure` is set.
    pub fn check_exposure(&self, addr: SocketAddr) -> Result<(), ConfigError> {
        self.exposure("listen", addr)
    }

    /// The same rule for `metrics_listen`: `/metrics` (and `/livez`, `/readyz`) is plain HTTP
    /// without a token by design (Prometheus and probes), so its address off loopback is
    /// allowed exactly when the node is configured to face a network at all (`[[tokens]]` and
    /// `[tls]`, or `insecure`). A node without them is a loopback node, and a metrics port on
    /// another interface would be the one door it opens: its counters name the methods called,
    /// the origins held and their sizes, and its peers.
    pub fn check_metrics_exposure(&self, addr: SocketAddr) -> Result<(), ConfigError> {
        self.exposure("metrics_listen", addr)
    }

    /// The exposure rule for the listener `what` on `addr`.
    fn exposure(&self, what: &str, addr: SocketAddr) -> Result<(), ConfigError> {
        if addr.ip().is_loopback() {
            return Ok(());
        }
        let mut missing = Vec::new();
        if self.tokens.is_empty() {
            missing.push("no [[tokens]] (anyone could call every service)");
        }
        if self.tls.is_none() {
            missing.push("no [tls] (hash lists would cross the network in clear text)");
        }
        if missing.is_empty() {
            return Ok(());
        }
        if self.insecure {
            tracing::warn!(
                %addr,
                listener = what,
                problems = %missing.join("; "),
                "insecure = true: serving off loopback without protection"
            );
            return Ok(());
        }
        let on = if what == "listen" {
            format!("listen on {addr}")
        } else {
            format!("serve {what} on {addr}")
        };
        Err(ConfigError::Exposed(format!(
            "refusing to {on}, which is not loopback, with {}; configure \
             [[tokens]] and [tls], or pass --insecure (insecure = true) if a proxy in front \
             provides them",
            missing.join(" and ")
        )))
    }

    /// The parsed key of a trust entry; its name must be the origin's.
    pub fn trusted_key(&self, t: &TrustConfig) -> Result<OriginKey, ConfigError> {
        let key = OriginKey::parse(&t.key).map_err(|e| ConfigError::Trust {
            origin: t.origin.clone(),
            message: e.to_string(),
        })?;
        if key.name() != t.origin {
            return Err(ConfigError::Trust {
                origin: t.origin.clone(),
                message: format!("key is for {:?}", key.name()),
            });
        }
        Ok(key)
    }

    /// Unary call deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_full_file_parse() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        let signer =
            redline_proto::checkpoint::OriginSigner::generate("hotline-b.example").unwrap();
        let text = format!(
            r#"
            origin = "hotline-a.example"
            data_dir = "./a"
            listen = "127.0.0.1:7443"
            [[peers]]
            url = "http://127.0.0.1:7444"
            [[trust]]
            origin = "hotline-b.example"
            key = "{}"
            policy = "accept"
            "#,
            signer.public().verifier_key()
        );
        let c = Config::from_toml_str(&text, Path::new("t.toml")).unwrap();
        assert_eq!(c.trust[0].policy, Policy::Accept);
        assert_eq!(c.peers[0].url, "http://127.0.0.1:7444");
    }

    #[test]
    fn unknown_key_is_named() {
        let err =
            Config::from_toml_str("origin = \"a\"\nlisten_addr = \"x\"\n", Path::new("t.toml"))
                .unwrap_err()
                .to_string();
        assert!(err.contains("listen_addr"), "{err}");
    }

    #[test]
    fn metrics_off_loopback_needs_what_listen_needs() {
        let public: SocketAddr = "192.0.2.1:9090".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        let parse = |extra: &str| {
            Config::from_toml_str(
                &format!("metrics_listen = \"0.0.0.0:9090\"\n{extra}"),
                Path::new("t.toml"),
            )
            .unwrap()
        };
        let tokens = format!(
            "[[tokens]]\nname = \"ops\"\nsha256 = \"{}\"\nscopes = [\"admin\"]\n",
            "0".repeat(64)
        );
        let tls = "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";

        let bare = parse("");
        bare.check_metrics_exposure(loopback).unwrap();
        let err = bare.check_metrics_exposure(public).unwrap_err().to_string();
        assert!(
            err.contains("metrics_listen on 192.0.2.1:9090")
                && err.contains("no [[tokens]]")
                && err.contains("no [tls]")
                && err.contains("--insecure"),
            "{err}"
        );
        assert!(parse(tls).check_metrics_exposure(public).is_err());
        assert!(parse(&tokens).check_metrics_exposure(public).is_err());
        parse(&format!("{tokens}{tls}"))
            .check_metrics_exposure(public)
            .unwrap();
        parse("insecure = true\n")
            .check_metrics_exposure(public)
            .unwrap();
        // The gRPC rule is unchanged and says which listener it refused.
        let err = bare.check_exposure(public).unwrap_err().to_string();
        assert!(
            err.contains("refusing to listen on 192.0.2.1:9090"),
            "{err}"
        );
    }

    #[test]
    fn trust_key_must_belong_to_the_origin() {
        let signer = redline_proto::checkpoint::OriginSigner::generate("other.example").unwrap();
        let text = format!(
            "[[trust]]\norigin = \"b.example\"\nkey = \"{}\"\npolicy = \"accept\"\n",
            signer.public().verifier_key()
        );
        let err = Config::from_toml_str(&text, Path::new("t.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Trust { .. }), "{err}");
        let err = Config::from_toml_str(
            "[[trust]]\norigin = \"b\"\nkey = \"junk\"\npolicy = \"accept\"\n",
            Path::new("t.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("malformed verifier key"), "{err}");
    }
}
