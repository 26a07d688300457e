//! Hashing, locally, with redline-hashing: the same calls the `redline` command makes, so a
//! hash computed here has the bits `redline hash` prints (and the node computes).
//!
//! Every function takes the file's bytes or a path, and hashes with the GIL released: threads
//! of one Python process hash in parallel.

use crate::errors::{HashingError, InputError};
use pyo3::prelude::*;
use redline_hashing::{
    vpdq, DecodeLimits, SignalType, VideoLimits, VideoPurpose, VpdqFrame as RustFrame, VpdqOptions,
};
use std::path::PathBuf;

/// A file given as its bytes or as a path (`str` or `os.PathLike`).
#[derive(Debug, FromPyObject)]
pub enum Input {
    Bytes(Vec<u8>),
    Path(PathBuf),
}

impl Input {
    /// The bytes, read from disk for a path.
    pub fn read(self) -> PyResult<Vec<u8>> {
        match self {
            Input::Bytes(b) => Ok(b),
            Input::Path(p) => std::fs::read(&p).map_err(|e| {
                PyErr::from(e).into_value_err(&format!("cannot read {}", p.display()))
            }),
        }
    }

    /// How an error about this input names it.
    pub fn name(&self) -> String {
        match self {
            Input::Bytes(b) => format!("<{} bytes>", b.len()),
            Input::Path(p) => p.display().to_string(),
        }
    }
}

/// Keeps Python's `OSError` class (FileNotFoundError, PermissionError...) and prefixes what
/// was being read.
trait WithContext {
    fn into_value_err(self, context: &str) -> PyErr;
}

impl WithContext for PyErr {
    fn into_value_err(self, context: &str) -> PyErr {
        Python::attach(|py| {
            let ty = self.get_type(py);
            let msg = format!("{context}: {}", self.value(py));
            PyErr::from_type(ty, msg)
        })
    }
}

/// A signal type from its name, or `InputError` listing the known ones.
pub fn signal_type(name: &str) -> PyResult<SignalType> {
    SignalType::from_name(name).map_err(|e| InputError::new_err(e.to_string()))
}

/// One hash of a file.
#[pyclass(frozen, get_all, module = "redline._redline")]
#[derive(Debug, Clone)]
pub struct Signal {
    /// Redline signal type name (`pdq`, `md5`, `vpdq`, ...).
    pub signal_type: String,
    /// Lowercase hex (for `vpdq`: 74 digits a frame, the wire form).
    pub value: String,
    /// PDQ quality 0..=100; 0 when the type has none.
    pub quality: u32,
}

#[pymethods]
impl Signal {
    #[new]
    #[pyo3(signature = (signal_type, value, quality = 0))]
    fn new(signal_type: &str, value: &str, quality: u32) -> PyResult<Self> {
        let s = redline_client::platform::signal(signal_type, value)
            .map_err(|e| InputError::new_err(e.to_string()))?;
        Ok(Signal {
            signal_type: s.signal_type,
            value: s.value,
            quality,
        })
    }

    pub(crate) fn __repr__(&self) -> String {
        format!(
            "Signal(signal_type={:?}, value={:?}, quality={})",
            self.signal_type, self.value, self.quality
        )
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.signal_type == other.signal_type && self.value == other.value
    }
}

impl Signal {
    pub fn to_pb(&self) -> redline_proto::pb::Signal {
        redline_proto::pb::Signal {
            signal_type: self.signal_type.clone(),
            value: self.value.clone(),
            quality: self.quality,
        }
    }
}

/// Hashes an image under `types` (one decode), as `redline hash` / `redline match` do.
pub fn image_signals(bytes: &[u8], types: &[SignalType], name: &str) -> PyResult<Vec<Signal>> {
    let computed = redline_hashing::hash_image(bytes, &DecodeLimits::default(), types)
        .map_err(|e| HashingError::new_err(format!("{name}: {e}")))?;
    Ok(computed
        .into_iter()
        .map(|c| Signal {
            signal_type: c.signal_type.name().to_owned(),
            value: c.hex(),
            quality: c.quality.map_or(0, u32::from),
        })
        .collect())
}

/// The vPDQ values (parts of at most 1,200 frames), `video_md5` and `video_sha256` of a video,
/// sampled for a query (1 frame a second, bars trimmed), as `redline match` does.
pub fn video_query_signals(bytes: &[u8], name: &str) -> PyResult<Vec<Signal>> {
    let computed =
        redline_hashing::video_signals(bytes, &VideoLimits::default(), VideoPurpose::Query)
            .map_err(|e| HashingError::new_err(format!("{name}: {e}")))?;
    Ok(computed
        .into_iter()
        .map(|c| Signal {
            signal_type: c.signal_type.name().to_owned(),
            value: c.hex(),
            quality: 0,
        })
        .collect())
}

/// PDQ hash and quality of an image file: `(hex, quality)`, exactly what `redline hash` prints.
#[pyfunction]
pub fn pdq(py: Python<'_>, image: Input) -> PyResult<(String, u32)> {
    let name = image.name();
    let bytes = image.read()?;
    let sigs = py.detach(|| image_signals(&bytes, &[SignalType::Pdq], &name))?;
    let s = &sigs[0];
    Ok((s.value.clone(), s.quality))
}

/// Hashes an image under each of `types` (default `pdq`) from one decode.
#[pyfunction]
#[pyo3(signature = (image, types = vec!["pdq".to_owned()]))]
pub fn hash_image(py: Python<'_>, image: Input, types: Vec<String>) -> PyResult<Vec<Signal>> {
    let types = types
        .iter()
        .map(|t| signal_type(t))
        .collect::<PyResult<Vec<_>>>()?;
    let name = image.name();
    let bytes = image.read()?;
    py.detach(|| image_signals(&bytes, &types, &name))
}

/// PDQ of a packed RGB24 buffer (`width * height * 3` bytes, rows top to bottom), without
/// decoding: what a caller that already holds pixels (a video frame, a numpy array) hashes.
#[pyfunction]
pub fn pdq_from_rgb(
    py: Python<'_>,
    rgb: Vec<u8>,
    width: usize,
    height: usize,
) -> PyResult<(String, u32)> {
    if width.checked_mul(height).and_then(|n| n.checked_mul(3)) != Some(rgb.len()) {
        return Err(InputError::new_err(format!(
            "an RGB buffer of {width}x{height} is {} bytes, got {}",
            width.saturating_mul(height).saturating_mul(3),
            rgb.len()
        )));
    }
    let p = py.detach(|| vpdq::pdq_from_rgb24(&rgb, width, height, &mut Vec::new()));
    Ok((hex::encode(p.hash.0), u32::from(p.quality)))
}

/// MD5 of the file's exact bytes (Redline's `md5`), lowercase hex.
#[pyfunction]
pub fn md5(py: Python<'_>, data: Input) -> PyResult<String> {
    let bytes = data.read()?;
    Ok(py.detach(|| hex::encode(redline_hashing::exact::md5(&bytes))))
}

/// SHA-256 of the file's exact bytes (Redline's `sha256`), lowercase hex.
#[pyfunction]
pub fn sha256(py: Python<'_>, data: Input) -> PyResult<String> {
    let bytes = data.read()?;
    Ok(py.detach(|| hex::encode(redline_hashing::exact::sha256(&bytes))))
}

/// Hamming distance between two hashes of the same length, given as hex.
#[pyfunction]
pub fn hamming_distance(a: &str, b: &str) -> PyResult<u32> {
    let decode = |s: &str| {
        hex::decode(s.trim()).map_err(|e| InputError::new_err(format!("{s:?} is not hex: {e}")))
    };
    let (a, b) = (decode(a)?, decode(b)?);
    if a.len() != b.len() {
        return Err(InputError::new_err(format!(
            "the hashes differ in length ({} and {} bytes)",
            a.len(),
            b.len()
        )));
    }
    Ok(redline_hashing::hamming_distance(&a, &b))
}

/// One hashed frame of a video.
#[pyclass(frozen, module = "redline._redline")]
#[derive(Debug, Clone)]
pub struct VpdqFrame {
    pub frame: RustFrame,
}

#[pymethods]
impl VpdqFrame {
    /// 0-based number of the frame among all decoded frames.
    #[getter]
    fn frame_number(&self) -> u64 {
        self.frame.frame_number
    }
    /// PDQ hash of the frame, 64 hex digits.
    #[getter]
    fn pdq(&self) -> String {
        hex::encode(self.frame.pdq.0)
    }
    /// PDQ quality 0..=100.
    #[getter]
    fn quality(&self) -> u8 {
        self.frame.quality
    }
    /// Start of the frame in seconds, as the reference computes it.
    #[getter]
    fn timestamp(&self) -> f64 {
        self.frame.timestamp_s
    }

    fn __repr__(&self) -> String {
        format!(
            "VpdqFrame(frame_number={}, pdq={:?}, quality={}, timestamp={})",
            self.frame.frame_number,
            hex::encode(self.frame.pdq.0),
            self.frame.quality,
            self.frame.timestamp_s
        )
    }
}

/// vPDQ frames of a video file (decoded by ffmpeg in the sandboxed decoder), one every
/// `seconds_per_hash` seconds (1.0: python-threatexchange's default; 0: every frame).
#[pyfunction]
#[pyo3(name = "vpdq", signature = (video, seconds_per_hash = 1.0))]
pub fn vpdq_frames(
    py: Python<'_>,
    video: Input,
    seconds_per_hash: f64,
) -> PyResult<Vec<VpdqFrame>> {
    if !(seconds_per_hash >= 0.0 && seconds_per_hash.is_finite()) {
        return Err(InputError::new_err(format!(
            "seconds_per_hash must be a finite number >= 0, got {seconds_per_hash}"
        )));
    }
    let name = video.name();
    let bytes = video.read()?;
    let options = VpdqOptions {
        seconds_per_hash,
        ..VpdqOptions::PYTX_DEFAULT
    };
    let frames = py
        .detach(|| redline_hashing::hash_video(&bytes, &VideoLimits::default(), &options))
        .map_err(|e| HashingError::new_err(format!("{name}: {e}")))?;
    Ok(frames
        .into_iter()
        .map(|frame| VpdqFrame { frame })
        .collect())
}

/// python-threatexchange's vPDQ signal string of `frames` (a JSON list of
/// `"pdqhex,quality,timestamp"`), what its `VideoVPDQSignal` stores and matches.
#[pyfunction]
pub fn vpdq_signal_str(frames: Vec<PyRef<'_, VpdqFrame>>) -> String {
    let frames: Vec<RustFrame> = frames.iter().map(|f| f.frame).collect();
    vpdq::format_signal(&frames)
}

/// A listed value as python-threatexchange writes it: vPDQ (wire hex) as its signal string,
/// every other type as its hex.
pub fn pytx_signal_str(signal_type: SignalType, bytes: &[u8]) -> String {
    if signal_type == SignalType::Vpdq {
        if let Ok(frames) = vpdq::decode_value(bytes) {
            return vpdq::format_signal(&frames);
        }
    }
    hex::encode(bytes)
}
