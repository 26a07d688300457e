//! What an auditor brings from outside the node: the origin keys it trusts ([`KeyRing`], from
//! `--key` strings and TOML trust files shaped like the node's config) and what its previous
//! audit verified ([`AuditState`], a JSON file `{origin: {size, root}}` replaced atomically).

use crate::audit::TrustedSize;
use redline_proto::checkpoint::OriginKey;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A key or state file could not be used.
#[derive(Debug, Error)]
pub enum TrustError {
    #[error("{0}")]
    Key(String),
    #[error("cannot read {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("{path} is not a valid trust file: {detail}. Expected entries like [[trust]] origin = \"a.example\" key = \"a.example+1234abcd+AQ...\"")]
    TrustFile { path: PathBuf, detail: String },
    #[error("{path} is not a valid audit state file: {detail}. Move it away to start afresh (the next audit then trusts what it sees)")]
    StateFile { path: PathBuf, detail: String },
    #[error("cannot write {path}: {detail}")]
    Write { path: PathBuf, detail: String },
}

/// Origin keys the auditor trusts, by origin name.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<String, OriginKey>,
}

#[derive(Deserialize)]
struct TrustFile {
    #[serde(default)]
    trust: Vec<TrustFileEntry>,
}

/// One `[[trust]]` table; other fields (`policy`, …) are ignored.
#[derive(Deserialize)]
struct TrustFileEntry {
    origin: String,
    key: String,
}

impl KeyRing {
    /// An empty ring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a C2SP verifier key `name+keyid+base64`; the key's name is the origin.
    pub fn add_verifier_key(&mut self, vkey: &str) -> Result<(), TrustError> {
        let key = OriginKey::parse(vkey.trim()).map_err(|e| {
            TrustError::Key(format!(
                "{e}. Copy the verifier key the node printed at first start (or `redline status` on a node you trust)"
            ))
        })?;
        self.insert(key, "--key")
    }

    fn insert(&mut self, key: OriginKey, from: &str) -> Result<(), TrustError> {
        if let Some(existing) = self.keys.get(key.name()) {
            if existing != &key {
                return Err(TrustError::Key(format!(
                    "two different keys given for origin {} (the second from {from}); keep only the right one",
                    key.name()
                )));
            }
        }
        self.keys.insert(key.name().to_owned(), key);
        Ok(())
    }

    /// Adds every `[[trust]] origin = .. key = ..` of a TOML file (a node config works).
    pub fn add_trust_file(&mut self, path: &Path) -> Result<usize, TrustError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrustError::Read {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        self.add_trust_toml(&text, path)
    }

    /// Like [`KeyRing::add_trust_file`], from text; `path` names it in errors.
    pub fn add_trust_toml(&mut self, text: &str, path: &Path) -> Result<usize, TrustError> {
        let bad = |detail: String| TrustError::TrustFile {
            path: path.to_owned(),
            detail,
        };
        let file: TrustFile = toml::from_str(text).map_err(|e| bad(e.message().to_owned()))?;
        let n = file.trust.len();
        for (i, t) in file.trust.into_iter().enumerate() {
            let key = OriginKey::parse(t.key.trim())
                .map_err(|e| bad(format!("entry {} ({}): {e}", i + 1, t.origin)))?;
            if key.name() != t.origin {
                return Err(bad(format!(
                    "entry {}: the key is for origin {:?}, not {:?}",
                    i + 1,
                    key.name(),
                    t.origin
                )));
            }
            self.insert(key, &path.display().to_string())?;
        }
        Ok(n)
    }

    /// The key of `origin`, if given.
    pub fn get(&self, origin: &str) -> Option<&OriginKey> {
        self.keys.get(origin)
    }

    /// Every key, by origin name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &OriginKey)> {
        self.keys.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key was given.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What earlier audits verified, by origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditState {
    /// Verified size and root of each origin.
    pub origins: BTreeMap<String, TrustedSize>,
}

impl AuditState {
    /// Reads a state file; a missing file is an empty state (the first audit).
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(TrustError::Read {
                    path: path.to_owned(),
                    detail: e.to_string(),
                })
            }
        };
        let origins: BTreeMap<String, TrustedSize> =
            serde_json::from_str(&text).map_err(|e| TrustError::StateFile {
                path: path.to_owned(),
                detail: e.to_string(),
            })?;
        for (origin, t) in &origins {
            let ok = hex::decode(&t.root).map(|r| r.len() == 32).unwrap_or(false);
            if !ok {
                return Err(TrustError::StateFile {
                    path: path.to_owned(),
                    detail: format!("root of {origin} is not 64 hex digits"),
                });
            }
        }
        Ok(Self { origins })
    }

    /// Writes the state atomically: a temporary file in the same directory, flushed to disk,
    /// then renamed over `path`, so a crash leaves either the old or the new state.
    pub fn save(&self, path: &Path) -> Result<(), TrustError> {
        let werr = |e: &dyn std::fmt::Display| TrustError::Write {
            path: path.to_owned(),
            detail: e.to_string(),
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".redline-audit-state")
            .tempfile_in(dir)
            .map_err(|e| werr(&e))?;
        let mut text = serde_json::to_string_pretty(&self.origins).map_err(|e| werr(&e))?;
        text.push('\n');
        tmp.write_all(text.as_bytes()).map_err(|e| werr(&e))?;
        tmp.as_file().sync_all().map_err(|e| werr(&e))?;
        tmp.persist(path).map_err(|e| werr(&e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redline_proto::checkpoint::OriginSigner;

    #[test]
    fn trust_file_takes_origin_and_key_and_ignores_the_rest() {
        let a = OriginSigner::generate("a.example").unwrap();
        let b = OriginSigner::generate("b.example").unwrap();
        let text = format!(
            "origin = \"me\"\n[[peers]]\nurl = \"http://x\"\n[[trust]]\norigin = \"a.example\"\nkey = \"{}\"\npolicy = \"accept\"\n",
            a.public().verifier_key()
        );
        let mut ring = KeyRing::new();
        assert_eq!(ring.add_trust_toml(&text, Path::new("t.toml")).unwrap(), 1);
        assert_eq!(ring.get("a.example"), Some(a.public()));
        // The same key again is fine; another key for the same origin is not.
        ring.add_verifier_key(&a.public().verifier_key()).unwrap();
        let a2 = OriginSigner::generate("a.example").unwrap();
        assert!(ring.add_verifier_key(&a2.public().verifier_key()).is_err());
        // A key filed under the wrong origin is refused.
        let wrong = format!(
            "[[trust]]\norigin = \"a.example\"\nkey = \"{}\"\n",
            b.public().verifier_key()
        );
        let e = KeyRing::new()
            .add_trust_toml(&wrong, Path::new("t.toml"))
            .unwrap_err();
        assert!(e.to_string().contains("b.example"), "{e}");
        assert!(KeyRing::new().add_verifier_key("junk").is_err());
    }

    #[test]
    fn state_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(AuditState::load(&path).unwrap(), AuditState::default());
        let mut s = AuditState::default();
        s.origins.insert(
            "a.example".into(),
            TrustedSize {
                size: 3,
                root: "ab".repeat(32),
            },
        );
        s.save(&path).unwrap();
        assert_eq!(AuditState::load(&path).unwrap(), s);
        std::fs::write(&path, "{\"a\": {\"size\": 1, \"root\": \"xyz\"}}").unwrap();
        assert!(AuditState::load(&path).is_err());
    }
}
