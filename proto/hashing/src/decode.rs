//! Decoding untrusted image bytes within limits.
//!
//! Uploads are hostile until proven otherwise: a 100-byte PNG can declare 100,000 x 100,000
//! pixels, and a small IDAT can inflate to gigabytes. [`decode_image`] therefore
//! 1. checks the byte count,
//! 2. sniffs the format from the magic bytes and checks it is allowed,
//! 3. reads only the header and checks width, height and pixel count,
//! 4. for JPEG, checks the data runs through to its end marker (module `jpeg`),
//! 5. and only then decodes, with `image::Limits` set as a second line of defence against
//!    decoders that allocate more than the header suggests.
//!
//! Every failure is a [`HashError`]; nothing here panics on bad input. The bytes are neither
//! stored nor logged.

use std::io::{Cursor, ErrorKind};

use image::error::ImageError;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::error::HashError;
use crate::jpeg;

/// What an upload may be before it is decoded.
///
/// Memory for one [`crate::hash_image`] call is bounded by the encoded bytes, plus at most
/// `max_alloc_bytes` for the decoder, plus up to about 3 bytes per pixel for conversions (the
/// greyscale copy `image_hasher` makes per family hash; an 8-bit RGB copy of 16-bit or float
/// images for PDQ). PDQ itself streams and needs only about `4 * width * (height / 128 + 90)`
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest encoded image accepted, in bytes.
    pub max_encoded_bytes: usize,
    /// Largest width, in pixels.
    pub max_width: u32,
    /// Largest height, in pixels.
    pub max_height: u32,
    /// Largest `width * height`.
    pub max_pixels: u64,
    /// Most memory the decoder may allocate (passed to `image::Limits::max_alloc`).
    pub max_alloc_bytes: u64,
    /// Formats accepted; anything else is refused before decoding. GIF and TIFF are decoded as
    /// their first frame or page.
    pub formats: Vec<ImageFormat>,
}

impl Default for DecodeLimits {
    /// 50 MiB encoded, 16384 px per side, 50 megapixels (phone cameras up to ~50 MP), 512 MiB
    /// for the decoder; JPEG, PNG, WebP, GIF, BMP and TIFF.
    fn default() -> Self {
        DecodeLimits {
            max_encoded_bytes: 50 << 20,
            max_width: 16_384,
            max_height: 16_384,
            max_pixels: 50_000_000,
            max_alloc_bytes: 512 << 20,
            formats: vec![
                ImageFormat::Jpeg,
                ImageFormat::Png,
                ImageFormat::WebP,
                ImageFormat::Gif,
                ImageFormat::Bmp,
                ImageFormat::Tiff,
            ],
        }
    }
}

impl DecodeLimits {
    /// The `image` crate limits matching these (dimension caps and the allocation cap).
    pub fn image_limits(&self) -> Limits {
        let mut limits = Limits::default();
        limits.max_image_width = Some(self.max_width);
        limits.max_image_height = Some(self.max_height);
        limits.max_alloc = Some(self.max_alloc_bytes);
        limits
    }
}

/// What the header says, once it has passed the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// The detected format.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Checks size, format and header dimensions without decoding pixels.
pub fn probe(bytes: &[u8], limits: &DecodeLimits) -> Result<ImageInfo, HashError> {
    if bytes.is_empty() {
        return Err(HashError::Empty);
    }
    if bytes.len() > limits.max_encoded_bytes {
        return Err(HashError::TooManyBytes {
            len: bytes.len(),
            max: limits.max_encoded_bytes,
        });
    }
    let format = image::guess_format(bytes).map_err(|_| HashError::UnknownFormat)?;
    if !limits.formats.contains(&format) {
        return Err(HashError::FormatNotAllowed {
            format: format_name(format).to_owned(),
            allowed: limits
                .formats
                .iter()
                .map(|f| format_name(*f))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(header_limits(limits));
    let (width, height) = reader.into_dimensions().map_err(|e| map_error(e, true))?;
    check_dimensions(width, height, limits)?;
    Ok(ImageInfo {
        format,
        width,
        height,
    })
}

/// Decodes an untrusted image after [`probe`] accepts it (see the module docs for the steps).
///
/// Stored pixels are returned as they are: EXIF orientation is not applied, because the
/// reference PDQ tools and the lists made with them hash the stored pixels too.
pub fn decode_image(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, HashError> {
    let info = probe(bytes, limits)?;
    if info.format == ImageFormat::Jpeg {
        jpeg::check_complete(bytes)?;
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), info.format);
    reader.limits(limits.image_limits());
    let img = reader.decode().map_err(|e| map_error(e, false))?;
    // A decoder could in principle disagree with its own header; trust only what came out.
    check_dimensions(img.width(), img.height(), limits)?;
    Ok(img)
}

/// Header reading gets the allocation cap only: dimensions are checked by us afterwards, with
/// an error that says which limit was hit.
fn header_limits(limits: &DecodeLimits) -> Limits {
    let mut l = Limits::default();
    l.max_alloc = Some(limits.max_alloc_bytes);
    l
}

fn check_dimensions(width: u32, height: u32, limits: &DecodeLimits) -> Result<(), HashError> {
    if width == 0 || height == 0 {
        return Err(HashError::ZeroSize { width, height });
    }
    if width > limits.max_width {
        return Err(HashError::TooWide {
            width,
            max: limits.max_width,
        });
    }
    if height > limits.max_height {
        return Err(HashError::TooTall {
            height,
            max: limits.max_height,
        });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(HashError::TooManyPixels {
            width,
            height,
            pixels,
            max: limits.max_pixels,
        });
    }
    Ok(())
}

/// Short, stable name of a format for error messages.
fn format_name(format: ImageFormat) -> &'static str {
    format
        .extensions_str()
        .first()
        .copied()
        .unwrap_or("unknown")
}

/// Decoder messages can quote bytes of the input (e.g. a garbled PNG chunk name) and carry
/// stray newlines: keep printable ASCII only, on one line, at most 200 characters.
fn clean_message(text: &str) -> String {
    let cleaned: String = text
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(200)
        .collect();
    cleaned
}

fn map_error(e: ImageError, header: bool) -> HashError {
    let text = clean_message(&e.to_string());
    let looks_truncated = {
        let t = text.to_ascii_lowercase();
        [
            "eof",
            "end of file",
            "unexpected end",
            "truncat",
            "not enough bytes",
            "fill whole buffer",
        ]
        .iter()
        .any(|needle| t.contains(needle))
    };
    match e {
        ImageError::Limits(_) => HashError::MemoryLimit(text),
        ImageError::Unsupported(_) => HashError::Unsupported(text),
        ImageError::IoError(ref io) if io.kind() == ErrorKind::UnexpectedEof => {
            HashError::Truncated(text)
        }
        _ if looks_truncated => HashError::Truncated(text),
        _ if header => HashError::BadHeader(text),
        _ => HashError::Corrupt(text),
    }
}
