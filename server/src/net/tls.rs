//! TLS for the gRPC listener, in the node's own accept loop (tokio-rustls with the ring
//! provider, as tonic uses), so the handshake has a deadline and the certificate can change
//! without a restart.
//!
//! [`Certificates`] holds the rustls configuration built from `[tls]` and rebuilds it when
//! the certificate, key or client CA file changes on disk (their contents are compared every
//! [`CHECK_EVERY`], so a renewal written in place, renamed over the old file or swapped in by
//! a Kubernetes secret's symlink is seen alike). New connections get the new
//! configuration; open ones keep theirs. A new file that does not load (unreadable, not PEM,
//! a key that does not match the certificate, or a renewal caught half written) is logged as
//! an error and the configuration loaded before keeps serving; it is retried when the files
//! change again.

use super::accept::Handshake;
use crate::config::TlsConfig;
use sha2::{Digest, Sha256};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

/// How often the files are checked for a change.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The `[tls]` files could not be turned into a TLS configuration.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("[tls] {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("[tls] {what} {path}: not PEM ({detail})")]
    Pem {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("[tls] {what} {path}: no certificate in it")]
    Empty { what: &'static str, path: PathBuf },
    #[error("[tls] client_ca {path}: {source}")]
    ClientCa {
        path: PathBuf,
        source: rustls::server::VerifierBuilderError,
    },
    #[error("[tls] cert {cert} and key {key}: {source}")]
    Identity {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// SHA-256 of each file of `[tls]` (cert, key, client CA), `None` for one that cannot be
/// read. Contents rather than modification times: a file rewritten within the same clock tick
/// with the same length would look unchanged, and a few KiB a second cost nothing.
type Stamps = Vec<Option<[u8; 32]>>;

/// A built configuration and what it was built from.
#[derive(Debug)]
struct Loaded {
    config: Arc<ServerConfig>,
    /// SHA-256 of the end-entity certificate (hex), for the logs.
    fingerprint: String,
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads `[tls]` and builds the listener's configuration: its certificate chain, HTTP/2 by
/// ALPN, and (with `client_ca`) client certificates required and verified.
fn load(files: &TlsConfig) -> Result<Loaded, TlsError> {
    let chain = certificates("cert", &files.cert)?;
    let key_pem = read_file("key", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        what: "key",
        path: files.key.clone(),
        detail: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Identity {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(certificates("client_ca", path)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .map_err(|source| TlsError::ClientCa {
                    path: path.clone(),
                    source,
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let fingerprint = hex::encode(Sha256::digest(chain[0].as_ref()));
    // Checks that the key is the certificate's.
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Identity {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })?;
    // h2 for gRPC (and HTTP/2 clients of the HTTP API), http/1.1 for the HTTP API.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        fingerprint,
    })
}

/// The listener's TLS configuration, reloaded when its files change.
#[derive(Debug)]
pub struct Certificates {
    files: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
    /// Stamps of the loaded files, and of the last state that failed to load (logged once).
    seen: Mutex<(Stamps, Option<Stamps>)>,
}

/// What [`Certificates::check`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// The files are as loaded (or as they were when they last failed).
    Unchanged,
    /// They changed and the new configuration serves new connections; the new certificate's
    /// SHA-256.
    Reloaded(String),
}

impl Certificates {
    /// Loads `[tls]`; an error here stops the node from starting.
    pub fn load(files: &TlsConfig) -> Result<Arc<Self>, TlsError> {
        let stamps = Self::stamps(files);
        let loaded = load(files)?;
        tracing::info!(
            cert = %files.cert.display(),
            sha256 = %loaded.fingerprint,
            mutual = files.client_ca.is_some(),
            "TLS certificate loaded"
        );
        Ok(Arc::new(Self {
            files: files.clone(),
            current: RwLock::new(loaded.config),
            seen: Mutex::new((stamps, None)),
        }))
    }

    fn stamps(files: &TlsConfig) -> Stamps {
        [
            Some(&files.cert),
            Some(&files.key),
            files.client_ca.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|p| std::fs::read(p).ok().map(|b| Sha256::digest(b).into()))
        .collect()
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reloads if the files changed since they were loaded (or last failed). Blocking file
    /// reads: call it off the runtime threads.
    pub fn check(&self) -> Result<Checked, TlsError> {
        let stamps = Self::stamps(&self.files);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.0 == stamps || seen.1.as_ref() == Some(&stamps) {
            return Ok(Checked::Unchanged);
        }
        match load(&self.files) {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = loaded.config;
                *seen = (stamps, None);
                Ok(Checked::Reloaded(loaded.fingerprint))
            }
            Err(e) => {
                seen.1 = Some(stamps);
                Err(e)
            }
        }
    }

    /// Checks the files every [`CHECK_EVERY`] until `stopping` turns true, logging each
    /// reload and each failed one.
    pub fn watch(self: &Arc<Self>, mut stopping: tokio::sync::watch::Receiver<bool>) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(CHECK_EVERY) => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
                let certs = this.clone();
                let Ok(checked) = tokio::task::spawn_blocking(move || certs.check()).await else {
                    return;
                };
                match checked {
                    Ok(Checked::Unchanged) => {}
                    Ok(Checked::Reloaded(sha256)) => tracing::info!(
                        cert = %this.files.cert.display(),
                        %sha256,
                        "TLS certificate reloaded; new connections use it"
                    ),
                    Err(e) => tracing::error!(
                        error = %e,
                        "TLS files changed but do not load; still serving the certificate \
                         loaded before"
                    ),
                }
            }
        });
    }
}

impl Handshake for Arc<Certificates> {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    async fn handshake(&self, tcp: TcpStream) -> io::Result<Self::Io> {
        tokio_rustls::TlsAcceptor::from(self.current())
            .accept(tcp)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a new self-signed certificate and its key to `files`; returns its SHA-256.
    fn write_identity(files: &TlsConfig) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        hex::encode(Sha256::digest(cert.der().as_ref()))
    }

    #[test]
    fn changed_files_reload_and_broken_ones_keep_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsConfig {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            client_ca: None,
        };
        write_identity(&files);
        let certs = Certificates::load(&files).unwrap();
        assert_eq!(certs.check().unwrap(), Checked::Unchanged);
        let first = certs.current();

        // Half a renewal: a new certificate next to the old key. Refused once, then not
        // retried until the files change again; the old configuration keeps serving.
        let old_key = std::fs::read(&files.key).unwrap();
        let renewed = write_identity(&files);
        let new_key = std::fs::read(&files.key).unwrap();
        std::fs::write(&files.key, &old_key).unwrap();
        let err = certs.check().unwrap_err();
        assert!(matches!(err, TlsError::Identity { .. }), "{err}");
        assert_eq!(certs.check().unwrap(), Checked::Unchanged);
        assert!(Arc::ptr_eq(&first, &certs.current()));

        // The key arrives: reloaded.
        std::fs::write(&files.key, &new_key).unwrap();
        assert_eq!(certs.check().unwrap(), Checked::Reloaded(renewed));
        assert!(!Arc::ptr_eq(&first, &certs.current()));

        // Garbage, then a missing file: errors naming the file, the last good one serves.
        let good = certs.current();
        std::fs::write(&files.cert, "not a certificate").unwrap();
        let err = certs.check().unwrap_err().to_string();
        assert!(err.contains("cert.pem"), "{err}");
        std::fs::remove_file(&files.cert).unwrap();
        let err = certs.check().unwrap_err().to_string();
        assert!(err.contains("cert.pem"), "{err}");
        assert!(Arc::ptr_eq(&good, &certs.current()));
    }
}
