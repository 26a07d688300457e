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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// gRPC URL, e.g. `http://127.0.0.1:7444`.
    pub url: String,
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
    /// Largest accepted gRPC message, bytes.
    pub max_message_bytes: usize,
    /// Most signals in one Submit.
    pub max_batch: usize,
    /// Deadline for unary calls, milliseconds.
    pub request_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024 * 1024,
            max_batch: 10_000,
            request_timeout_ms: 30_000,
        }
    }
}

/// Federation timing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Periodic pull interval, milliseconds (push is the fast path).
    pub poll_interval_ms: u64,
    /// First retry delay for an unreachable peer, milliseconds; doubles up to the max.
    pub backoff_initial_ms: u64,
    /// Longest retry delay, milliseconds.
    pub backoff_max_ms: u64,
    /// Entries per fetch request.
    pub fetch_batch: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 10_000,
            backoff_initial_ms: 200,
            backoff_max_ms: 30_000,
            fetch_batch: 10_000,
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

/// Matching radii.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchingConfig {
    /// Default (and largest) Hamming radius per signal type, e.g. `{ pdq = 31 }`; types not
    /// listed use the protocol default. Requests may lower it, never raise it.
    pub max_distance: std::collections::BTreeMap<String, u32>,
    /// Most signals in one Match request.
    pub max_signals: usize,
}

impl Default for MatchingConfig {
    fn default() -> Self {
        Self {
            max_distance: Default::default(),
            max_signals: 1024,
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
    /// Matching.
    #[serde(default)]
    pub matching: MatchingConfig,
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
        crate::hashing::ImageHasher::new(&self.hashing).map_err(|message| ConfigError::Parse {
            path: PathBuf::from("[hashing]"),
            message,
        })?;
        for name in self.matching.max_distance.keys() {
            redline_proto::signal::SignalType::from_name(name).map_err(|e| ConfigError::Parse {
                path: PathBuf::from("[matching]"),
                message: e.to_string(),
            })?;
        }
        Ok(())
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
