//! Image hashing on the node: uploads (a hotline's confirmed image, a platform's query) are
//! decoded under the configured limits, hashed with every configured signal type, and dropped.
//! The bytes never reach the store, the log or a tracing field; errors name the limit, never the
//! content. Decoding runs on the blocking pool, at most one image per core at a time, so a burst
//! of large uploads bounds memory instead of multiplying it.

use crate::config::HashingConfig;
use redline_hashing::{hash_image_with_dihedral, DecodeLimits, HashError, ImageHashes};
use redline_proto::signal::SignalType;
use std::sync::Arc;
use tokio::sync::Semaphore;

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
    /// A hasher with the configured limits and types.
    pub fn new(config: &HashingConfig) -> Result<Self, String> {
        let types = config
            .signal_types
            .iter()
            .map(|n| SignalType::from_name(n).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut formats = Vec::new();
        for f in &config.formats {
            let format = match f.as_str() {
                "jpeg" => image::ImageFormat::Jpeg,
                "png" => image::ImageFormat::Png,
                "webp" => image::ImageFormat::WebP,
                "gif" => image::ImageFormat::Gif,
                "bmp" => image::ImageFormat::Bmp,
                "tiff" => image::ImageFormat::Tiff,
                other => {
                    return Err(format!(
                        "unknown image format {other:?} (known: jpeg, png, webp, gif, bmp, tiff)"
                    ))
                }
            };
            formats.push(format);
        }
        let limits = DecodeLimits {
            max_encoded_bytes: config.max_image_bytes,
            max_width: config.max_dimension,
            max_height: config.max_dimension,
            max_pixels: config.max_pixels,
            formats,
            ..DecodeLimits::default()
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            limits: Arc::new(limits),
            types: Arc::new(types),
            permits: Arc::new(Semaphore::new(cores)),
        })
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
