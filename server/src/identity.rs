//! The node's Ed25519 identity: created on first start in the data dir (mode 0600), reused after.
//! Stored as a C2SP private key string so standard signed-note tools can read it.

use redline_proto::checkpoint::{CheckpointError, OriginSigner};
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// File name of the identity inside the data dir.
pub const KEY_FILE: &str = "identity.key";

/// The identity could not be loaded or created.
#[derive(Debug, Error)]
pub enum IdentityError {
    #[error("reading or writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid private key: {source}")]
    Parse {
        path: PathBuf,
        source: CheckpointError,
    },
    #[error("{path} holds the key of origin {found:?}, but this node is configured as {expected:?}; point --data-dir elsewhere or fix --origin")]
    WrongOrigin {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("origin name {0:?} is not valid: {1}")]
    BadName(String, CheckpointError),
}

/// Loads the identity for `origin` from `data_dir`, creating it on first start.
/// Returns the signer and whether it was just created.
pub fn load_or_create(
    data_dir: &Path,
    origin: &str,
) -> Result<(OriginSigner, bool), IdentityError> {
    let path = data_dir.join(KEY_FILE);
    let io = |source| IdentityError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let signer =
                OriginSigner::parse(text.trim()).map_err(|source| IdentityError::Parse {
                    path: path.clone(),
                    source,
                })?;
            if signer.public().name() != origin {
                return Err(IdentityError::WrongOrigin {
                    path,
                    found: signer.public().name().to_owned(),
                    expected: origin.to_owned(),
                });
            }
            Ok((signer, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(io)?;
            let signer = OriginSigner::generate(origin)
                .map_err(|e| IdentityError::BadName(origin.to_owned(), e))?;
            // Write to a temporary file with 0600 and rename, so a crash never leaves a
            // half-written key that would lock the node out of its own log.
            let tmp = data_dir.join(format!("{KEY_FILE}.tmp"));
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(io)?;
            writeln!(f, "{}", signer.private_key()).map_err(io)?;
            f.sync_all().map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)?;
            Ok((signer, true))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_0600_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = load_or_create(dir.path(), "uk.example").unwrap();
        assert!(created);
        let (b, created) = load_or_create(dir.path(), "uk.example").unwrap();
        assert!(!created);
        assert_eq!(a.public(), b.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            load_or_create(dir.path(), "kr.example"),
            Err(IdentityError::WrongOrigin { .. })
        ));
    }
}
