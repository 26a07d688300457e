//! Image hashing on the node: uploads (a hotline's confirmed image, a platform's query) are
//! decoded under the configured limits, hashed with every configured signal type, and dropped.
//! The bytes never reach the store, the log or a tracing field; errors name the limit, never the
//! content. Decoding runs on the blocking pool, at most one image per core at a time, so a burst
//! of large uploads bounds memory instead of multiplying it.

use redline_hashing::{hash_image_with_dihedral, DecodeLimits, HashError, ImageHashes};
use redline_proto::signal::SignalType;
use std::sync::Arc;
use tokio::sync::Semaphore;

mod video;
pub use video::{VideoHashError, VideoHasher};

/// The node's image hasher.
#[derive(Debug, Clone)]
pub struct ImageHasher {
    limits: Arc<DecodeLimits>,
    types: Arc<Vec<SignalType>>,
    permits: Arc<Semaphore>,
}

/// Hashing an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image refused: {0}")]
    Refused(#[from] HashError),
    #[error("image hashing was interrupted")]
    Interrupted,
}

impl ImageHasher {
    /// A hasher computing `types` from images decoded under `limits` (see
    /// `config::HashingConfig::parsed`).
    pub fn new(limits: DecodeLimits, types: Vec<SignalType>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            limits: Arc::new(limits),
            types: Arc::new(types),
            permits: Arc::new(Semaphore::new(cores)),
        }
    }

    /// Largest accepted encoded image.
    pub fn max_image_bytes(&self) -> usize {
        self.limits.max_encoded_bytes
    }

    /// Hashes `image` with every configured type (and PDQ's dihedral set when asked), then
    /// drops it.
    pub async fn hash(&self, image: Vec<u8>, dihedral: bool) -> Result<ImageHashes, ImageError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ImageError::Interrupted)?;
        let (limits, types) = (self.limits.clone(), self.types.clone());
        let result = tokio::task::spawn_blocking(move || {
            let out = hash_image_with_dihedral(&image, &limits, &types, dihedral);
            drop(image);
            out
        })
        .await
        .map_err(|_| ImageError::Interrupted)?;
        Ok(result?)
    }
}
