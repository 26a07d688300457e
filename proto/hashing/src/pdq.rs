//! PDQ, Meta's 256-bit perceptual hash, written from the reference C++
//! (ThreatExchange `pdq/cpp/hashing/pdqhashing.cpp` and `downscaling.cpp`) in `f32` like it, so
//! that identical pixels give identical bits.
//!
//! Steps, as in the reference:
//! 1. luma `Y = 0.299 R + 0.587 G + 0.114 B` for every pixel at full resolution. This is what
//!    the reference's in-memory entry points (`pdqHash256FromFloatLuma`, used by the `pdqhash`
//!    binding that made `expected.csv`) do. The reference's file-based CLI path
//!    (`pdqHash256FromFile` in `pdqio.cpp`) instead first squashes images larger than 512 px on
//!    a side to 512x512 with CImg; hashes from that tool can differ from these by a few bits;
//! 2. two passes of Jarosz box filters along rows and columns, window
//!    `(dim + 127) / 128`, then decimation to 64x64 (module `downscale`, same bits, faster schedule);
//! 3. quality: the sum of quantised gradients of the 64x64 image, `/ 90`, capped at 100;
//! 4. the 16x16 lowest non-DC frequencies of a 64x64 DCT (`D A Dᵀ` with the reference's 16x64
//!    DCT matrix);
//! 5. one bit per frequency: greater than the median (Torben's algorithm) of the 256.
//!
//! Luma from 8-bit RGB is computed as the widely used Python binding (`pdqhash` on PyPI, which
//! made `expected.csv`) does: in `f64`, then rounded to `f32`. The reference C++'s own
//! `fillFloatLumaFromRGB` multiplies in `f32`; the two differ by at most one unit in the last
//! place and almost never change a bit. Callers with luma from elsewhere use [`pdq_from_luma`].
//!
//! Images smaller than 5 pixels on a side get the all-zero hash with quality 0, as in the
//! reference. A 64x64 input skips the blur in [`pdq_from_luma`] (the reference's shortcut for
//! pre-downsampled video frames) but not in the dihedral variant, again as the reference does.
//!
//! EXIF orientation is not applied: the stored pixels are hashed, exactly like the reference
//! tools and the lists made with them. A rotated copy still matches through the dihedral hashes
//! ([`pdq_dihedral_from_image`]).

use std::sync::OnceLock;

use image::DynamicImage;

use crate::dihedral::Dihedral;
use crate::downscale::{blur_and_decimate, OUT_DIM};
use crate::signal::{to_hex, SignalType};
use crate::SignalError;

/// Smallest width and height the reference hashes; smaller images get a zero hash, quality 0.
pub const PDQ_MIN_DIM: usize = 5;

/// A 256-bit PDQ hash, stored in the byte order of its hex text: byte 0 is the first two hex
/// characters. Bit `k` of the reference (`k = 16 * row + column` of the 16x16 DCT block) is bit
/// `k % 8` of byte `31 - k / 8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PdqHash(pub [u8; 32]);

impl PdqHash {
    /// The reference's 64-character lowercase hex.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Result<PdqHash, SignalError> {
        let bytes = SignalType::Pdq.parse_hex(text)?;
        let mut out = [0u8; 32];
        out.copy_from_slice(&bytes);
        Ok(PdqHash(out))
    }

    /// The 32 bytes, in hex order.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Bit `k` (0..256) in the reference's numbering.
    pub fn bit(&self, k: usize) -> bool {
        self.0[31 - k / 8] >> (k % 8) & 1 == 1
    }

    /// Hamming distance to `other` (0..=256).
    pub fn distance(&self, other: &PdqHash) -> u32 {
        crate::hamming_distance(&self.0, &other.0)
    }

    fn set_bit(&mut self, k: usize) {
        self.0[31 - k / 8] |= 1 << (k % 8);
    }
}

/// A PDQ hash with its quality (0..=100). The reference advises ignoring hashes below quality 50:
/// flat or nearly flat images hash to noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pdq {
    /// The hash.
    pub hash: PdqHash,
    /// Gradient-based quality, 0..=100.
    pub quality: u8,
}

/// The PDQ hashes of the eight rotations and reflections of one image, computed from one DCT
/// (the reference's `pdqDihedralHash256esFromFloatLuma`). Matching an upload against all eight
/// finds copies that were rotated or mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PdqDihedral {
    /// Hashes in [`Dihedral::ALL`] order.
    pub hashes: [PdqHash; 8],
    /// Quality (the same for all eight).
    pub quality: u8,
}

impl PdqDihedral {
    /// The hash of the image transformed by `d`.
    pub fn get(&self, d: Dihedral) -> PdqHash {
        self.hashes[d as usize]
    }
}

/// PDQ of a decoded image (any colour type; alpha is ignored, 16-bit and float images are first
/// converted to 8-bit RGB). Stored pixels are hashed; EXIF orientation is not applied.
pub fn pdq_from_image(img: &DynamicImage) -> Pdq {
    let (dct, quality) = with_luma_rows(img, |w, h, rows| dct_of(w, h, false, rows));
    finish(dct.as_ref(), quality)
}

/// PDQ of all eight dihedral transforms of a decoded image, in one pass.
pub fn pdq_dihedral_from_image(img: &DynamicImage) -> PdqDihedral {
    let (dct, quality) = with_luma_rows(img, |w, h, rows| dct_of(w, h, true, rows));
    finish_dihedral(dct.as_ref(), quality)
}

/// PDQ of a row-major `width x height` luma image (values nominally 0..=255).
///
/// # Panics
/// If `luma.len() != width * height`.
pub fn pdq_from_luma(luma: &[f32], width: usize, height: usize) -> Pdq {
    assert_eq!(
        luma.len(),
        width * height,
        "luma buffer is not width * height"
    );
    let (dct, quality) = dct_of(width, height, false, |y, out| {
        out.copy_from_slice(&luma[y * width..(y + 1) * width])
    });
    finish(dct.as_ref(), quality)
}

/// The eight dihedral PDQ hashes of a row-major `width x height` luma image.
///
/// # Panics
/// If `luma.len() != width * height`.
pub fn pdq_dihedral_from_luma(luma: &[f32], width: usize, height: usize) -> PdqDihedral {
    assert_eq!(
        luma.len(),
        width * height,
        "luma buffer is not width * height"
    );
    let (dct, quality) = dct_of(width, height, true, |y, out| {
        out.copy_from_slice(&luma[y * width..(y + 1) * width])
    });
    finish_dihedral(dct.as_ref(), quality)
}

/// Luma of one 8-bit RGB pixel as `pdqhash` computes it (`f64`, rounded to `f32`).
#[inline(always)]
pub fn luma_from_rgb(r: u8, g: u8, b: u8) -> f32 {
    (f64::from(r) * 0.299 + f64::from(g) * 0.587 + f64::from(b) * 0.114) as f32
}

/// `f64::from(v) * coefficient` for every byte value and each of R, G, B: the exact products
/// [`luma_from_rgb`] computes, looked up instead of converted and multiplied per pixel.
fn luma_tables() -> &'static [[f64; 256]; 3] {
    static TABLES: OnceLock<[[f64; 256]; 3]> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut t = [[0f64; 256]; 3];
        let [tr, tg, tb] = &mut t;
        for (v, ((r, g), b)) in tr
            .iter_mut()
            .zip(tg.iter_mut())
            .zip(tb.iter_mut())
            .enumerate()
        {
            *r = v as f64 * 0.299;
            *g = v as f64 * 0.587;
            *b = v as f64 * 0.114;
        }
        t
    })
}

/// Fills `out` with the luma of packed pixels of `channels` bytes each (RGB first, or grey),
/// bit-identical to [`luma_from_rgb`].
fn luma_row(src: &[u8], channels: usize, out: &mut [f32]) {
    let [tr, tg, tb] = luma_tables();
    match channels {
        1 | 2 => {
            for (o, p) in out.iter_mut().zip(src.chunks_exact(channels)) {
                let v = usize::from(p[0]);
                *o = (tr[v] + tg[v] + tb[v]) as f32;
            }
        }
        _ => {
            for (o, p) in out.iter_mut().zip(src.chunks_exact(channels)) {
                *o = (tr[usize::from(p[0])] + tg[usize::from(p[1])] + tb[usize::from(p[2])]) as f32;
            }
        }
    }
}

/// Calls `f(width, height, fill_row)` with a row filler that produces luma straight from the
/// image's own buffer for 8-bit types (no full-size copy), converting other types to RGB first.
fn with_luma_rows<T>(
    img: &DynamicImage,
    f: impl FnOnce(usize, usize, &mut dyn FnMut(usize, &mut [f32])) -> T,
) -> T {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let converted;
    let (bytes, channels): (&[u8], usize) = match img {
        DynamicImage::ImageRgb8(b) => (b.as_raw(), 3),
        DynamicImage::ImageRgba8(b) => (b.as_raw(), 4),
        DynamicImage::ImageLuma8(b) => (b.as_raw(), 1),
        DynamicImage::ImageLumaA8(b) => (b.as_raw(), 2),
        other => {
            converted = other.to_rgb8();
            (converted.as_raw(), 3)
        }
    };
    let stride = w * channels;
    f(w, h, &mut |y, out| {
        luma_row(&bytes[y * stride..(y + 1) * stride], channels, out)
    })
}

/// Downsample, quality and DCT; `None` for images below the minimum size.
fn dct_of(
    width: usize,
    height: usize,
    always_blur: bool,
    mut fill_row: impl FnMut(usize, &mut [f32]),
) -> (Option<[[f32; 16]; 16]>, u8) {
    if width < PDQ_MIN_DIM || height < PDQ_MIN_DIM {
        return (None, 0);
    }
    let small = if !always_blur && width == OUT_DIM && height == OUT_DIM {
        let mut small = [[0f32; OUT_DIM]; OUT_DIM];
        for (y, row) in small.iter_mut().enumerate() {
            fill_row(y, row);
        }
        small
    } else {
        blur_and_decimate(width, height, fill_row)
    };
    let quality = quality_of(&small);
    (Some(dct64_to_16(&small)), quality)
}

fn finish(dct: Option<&[[f32; 16]; 16]>, quality: u8) -> Pdq {
    Pdq {
        hash: dct.map(bits_from_dct).unwrap_or_default(),
        quality,
    }
}

fn finish_dihedral(dct: Option<&[[f32; 16]; 16]>, quality: u8) -> PdqDihedral {
    let hashes = match dct {
        Some(dct) => Dihedral::ALL.map(|d| bits_from_dct(&d.transform_dct(dct))),
        None => [PdqHash::default(); 8],
    };
    PdqDihedral { hashes, quality }
}

/// The reference's `pdqImageDomainQualityMetric`: quantised vertical and horizontal gradients.
pub(crate) fn quality_of(a: &[[f32; OUT_DIM]; OUT_DIM]) -> u8 {
    let grad = |u: f32, v: f32| (((u - v) * 100.0) / 255.0) as i32;
    let mut sum: i32 = 0;
    for pair in a.windows(2) {
        for (&u, &v) in pair[0].iter().zip(&pair[1]) {
            sum += grad(u, v).abs();
        }
    }
    for row in a {
        for pair in row.windows(2) {
            sum += grad(pair[0], pair[1]).abs();
        }
    }
    (sum / 90).min(100) as u8
}

/// The reference's 16x64 DCT matrix: `sqrt(2/64) * cos(pi/128 * (i+1) * (2j+1))`, computed in
/// `f64` with the scale factor first rounded to `f32`, then stored as `f32`.
fn dct_matrix() -> &'static [[f32; 64]; 16] {
    static MATRIX: OnceLock<[[f32; 64]; 16]> = OnceLock::new();
    MATRIX.get_or_init(|| {
        let scale = (2.0f64 / 64.0).sqrt() as f32;
        let mut d = [[0f32; 64]; 16];
        for (i, row) in d.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                let angle =
                    (std::f64::consts::PI / 2.0 / 64.0) * (i + 1) as f64 * (2 * j + 1) as f64;
                *v = (f64::from(scale) * angle.cos()) as f32;
            }
        }
        d
    })
}

/// `B = D A Dᵀ` restricted to frequencies 1..=16 in each direction (the reference's `dct64To16`).
/// Each output is a sum over `k` in increasing order, as in the reference, so results are
/// bit-identical; the loops are ordered so the innermost one runs over independent outputs.
pub(crate) fn dct64_to_16(a: &[[f32; OUT_DIM]; OUT_DIM]) -> [[f32; 16]; 16] {
    let d = dct_matrix();
    // T = D A (16x64).
    let mut t = [[0f32; 64]; 16];
    for (t_row, d_row) in t.iter_mut().zip(d) {
        for (&dk, a_row) in d_row.iter().zip(a) {
            for (tj, &ak) in t_row.iter_mut().zip(a_row) {
                *tj += dk * ak;
            }
        }
    }
    // B = T Dᵀ (16x16): B[i][j] = sum_k T[i][k] D[j][k].
    let mut dt = [[0f32; 16]; 64];
    for (j, d_row) in d.iter().enumerate() {
        for (k, &v) in d_row.iter().enumerate() {
            dt[k][j] = v;
        }
    }
    let mut b = [[0f32; 16]; 16];
    for (b_row, t_row) in b.iter_mut().zip(&t) {
        for (&tk, dt_row) in t_row.iter().zip(&dt) {
            for (bj, &dkj) in b_row.iter_mut().zip(dt_row) {
                *bj += tk * dkj;
            }
        }
    }
    b
}

/// Torben Mogensen's median, transcribed from the reference (`torben.cpp`). For 256 values it
/// returns a value with at most 128 values below and at most 128 above it.
pub(crate) fn torben_median(m: &[f32]) -> f32 {
    let n = m.len();
    let half = n.div_ceil(2);
    let mut min = m[0];
    let mut max = m[0];
    for &v in &m[1..] {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    loop {
        let guess = (min + max) / 2.0;
        let (mut less, mut greater, mut equal) = (0usize, 0usize, 0usize);
        let mut max_lt_guess = min;
        let mut min_gt_guess = max;
        for &v in m {
            if v < guess {
                less += 1;
                if v > max_lt_guess {
                    max_lt_guess = v;
                }
            } else if v > guess {
                greater += 1;
                if v < min_gt_guess {
                    min_gt_guess = v;
                }
            } else {
                equal += 1;
            }
        }
        if less <= half && greater <= half {
            return if less >= half {
                max_lt_guess
            } else if less + equal >= half {
                guess
            } else {
                min_gt_guess
            };
        } else if less > greater {
            max = max_lt_guess;
        } else {
            min = min_gt_guess;
        }
    }
}

/// The reference's `pdqBuffer16x16ToBits`: bit `16 i + j` is set when coefficient `(i, j)` is
/// greater than the median.
pub(crate) fn bits_from_dct(dct: &[[f32; 16]; 16]) -> PdqHash {
    let flat: Vec<f32> = dct.iter().flatten().copied().collect();
    let median = torben_median(&flat);
    let mut hash = PdqHash::default();
    for (k, &v) in flat.iter().enumerate() {
        if v > median {
            hash.set_bit(k);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_numbering_matches_reference_hex() {
        // Reference Hash256::format prints words w[15]..w[0] as %04hx; bit k is bit k%16 of w[k/16].
        let mut h = PdqHash::default();
        h.set_bit(0);
        assert!(h.to_hex().ends_with("0001"));
        h.set_bit(255);
        assert!(h.to_hex().starts_with("8000"));
        assert!(h.bit(0) && h.bit(255) && !h.bit(1));
        assert_eq!(PdqHash::from_hex(&h.to_hex()).unwrap(), h);
    }

    #[test]
    fn torben_is_a_median() {
        let mut x = 12345u32;
        let v: Vec<f32> = (0..256)
            .map(|_| {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                (x >> 8) as f32 / 1000.0
            })
            .collect();
        let m = torben_median(&v);
        let below = v.iter().filter(|&&a| a < m).count();
        let above = v.iter().filter(|&&a| a > m).count();
        assert!(below <= 128 && above <= 128, "{below} {above}");
        assert!(v.contains(&m));
    }

    #[test]
    fn tiny_images_hash_to_zero() {
        let p = pdq_from_luma(&[1.0; 16], 4, 4);
        assert_eq!(
            p,
            Pdq {
                hash: PdqHash::default(),
                quality: 0
            }
        );
        let d = pdq_dihedral_from_luma(&[1.0; 20], 4, 5);
        assert_eq!(d.quality, 0);
        assert!(d.hashes.iter().all(|h| *h == PdqHash::default()));
    }

    #[test]
    fn luma_tables_match_direct_formula() {
        let mut row = Vec::new();
        for r in (0..=255u8).step_by(5) {
            for g in (0..=255u8).step_by(3) {
                for b in (0..=255u8).step_by(7) {
                    row.extend_from_slice(&[r, g, b]);
                }
            }
        }
        let mut out = vec![0f32; row.len() / 3];
        luma_row(&row, 3, &mut out);
        for (o, p) in out.iter().zip(row.chunks_exact(3)) {
            assert_eq!(o.to_bits(), luma_from_rgb(p[0], p[1], p[2]).to_bits());
        }
    }

    #[test]
    fn luma_matches_numpy_float64() {
        // numpy: (r*0.299 + g*0.587 + b*0.114).astype(float32)
        assert_eq!(luma_from_rgb(255, 255, 255), 255.0);
        assert_eq!(
            luma_from_rgb(10, 20, 30),
            (10.0f64 * 0.299 + 20.0 * 0.587 + 30.0 * 0.114) as f32
        );
    }
}
