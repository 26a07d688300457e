//! Video hashing on the node: a hotline's listed video and a platform's query video are hashed
//! in the sandboxed decoder (`redline_hashing::video`: ffmpeg child processes under resource
//! limits, bytes in a sealed memfd, never on a filesystem) and dropped. One video at a time per
//! core, as for images: each decoder child takes a core and up to its address-space limit.

use redline_hashing::vpdq::ListingSampling;
use redline_hashing::{video_signals, ComputedSignal, VideoError, VideoLimits, VideoPurpose};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The node's video hasher.
#[derive(Debug, Clone)]
pub struct VideoHasher {
    limits: Arc<VideoLimits>,
    sampling: ListingSampling,
    permits: Arc<Semaphore>,
}

/// Hashing a video failed.
#[derive(Debug, thiserror::Error)]
pub enum VideoHashError {
    #[error("video refused: {0}")]
    Refused(#[from] VideoError),
    #[error("video hashing was interrupted")]
    Interrupted,
}

impl VideoHasher {
    /// A hasher decoding under `limits`, listing with `sampling`.
    pub fn new(limits: VideoLimits, sampling: ListingSampling) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            limits: Arc::new(limits),
            sampling,
            permits: Arc::new(Semaphore::new(cores)),
        }
    }

    /// Largest accepted video.
    pub fn max_video_bytes(&self) -> usize {
        self.limits.max_input_bytes
    }

    /// The signals of a video to be listed (dense, thinned vPDQ parts, then `video_md5`,
    /// `video_sha256`).
    pub async fn for_listing(&self, video: Vec<u8>) -> Result<Vec<ComputedSignal>, VideoHashError> {
        self.hash(video, VideoPurpose::Listing(self.sampling)).await
    }

    /// The signals of a video to look up (vPDQ at 1 frame a second, then the digests).
    pub async fn for_query(&self, video: Vec<u8>) -> Result<Vec<ComputedSignal>, VideoHashError> {
        self.hash(video, VideoPurpose::Query).await
    }

    async fn hash(
        &self,
        video: Vec<u8>,
        purpose: VideoPurpose,
    ) -> Result<Vec<ComputedSignal>, VideoHashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| VideoHashError::Interrupted)?;
        let limits = self.limits.clone();
        let result = tokio::task::spawn_blocking(move || {
            let out = video_signals(&video, &limits, purpose);
            drop(video);
            out
        })
        .await
        .map_err(|_| VideoHashError::Interrupted)?;
        Ok(result?)
    }
}
