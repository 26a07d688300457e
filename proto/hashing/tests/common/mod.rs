//! Helpers shared by the integration tests: finding `../shared`, drawing images, encoding them.

#![allow(dead_code)]

use std::path::PathBuf;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// The shared reference folder: `$REDLINE_SHARED`, else `../shared` beside the workspace root.
/// `None` (after printing why) when it is missing, so tests can skip on machines without it.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("REDLINE_SHARED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    if dir.join("pdq-reference/expected.csv").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: no PDQ reference data at {} (set REDLINE_SHARED to the shared folder)",
            dir.display()
        );
        None
    }
}

/// A deterministic test picture: smooth gradients, a few shapes and mild noise, so PDQ has
/// structure to hash (quality 100) and every dihedral transform looks different.
pub fn drawn_image(width: u32, height: u32) -> DynamicImage {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let img = RgbImage::from_fn(width, height, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let mut r = 255.0 * fx;
        let mut g = 200.0 * fy * fy + 50.0 * (fx * 37.0).sin() * (fy * 23.0).cos();
        let mut b = 128.0 + 100.0 * (fx * 19.0 + fy * 11.0).sin();
        // An off-centre disc and a bar break the symmetry.
        if (fx - 0.3).powi(2) + (fy - 0.35).powi(2) < 0.03 {
            r = 240.0;
            g = 30.0;
            b = 40.0;
        }
        if fx > 0.6 && fx < 0.9 && fy > 0.7 && fy < 0.8 {
            r *= 0.2;
            g = 250.0;
        }
        let n = (seed % 16) as f32 - 8.0;
        Rgb([
            (r + n).clamp(0.0, 255.0) as u8,
            (g + n).clamp(0.0, 255.0) as u8,
            (b + n).clamp(0.0, 255.0) as u8,
        ])
    });
    DynamicImage::ImageRgb8(img)
}

/// Encodes an image in memory.
pub fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}

/// Peak resident memory of this process so far (VmHWM), in bytes, if /proc is available.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CRC-32 (IEEE), as PNG chunks need.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for part in parts {
        for &byte in *part {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
    }
    !crc
}

/// Appends one PNG chunk (length, type, data, CRC).
pub fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
}

/// PNG signature + IHDR for an 8-bit greyscale image of the given size.
pub fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // depth 8, greyscale, deflate, filter 0, no interlace
    png_chunk(&mut png, b"IHDR", &ihdr);
    png
}

/// A complete, valid, all-black 8-bit greyscale PNG whose single IDAT inflates to
/// `height * (width + 1)` bytes while being about a thousand times smaller: a zip bomb.
///
/// Built without ever holding the inflated data: one 1 MiB run of zeros is deflated once with a
/// sync flush (byte-aligned, self-contained) and that compressed run is repeated; back-references
/// in a repeated run only ever see zeros, so the stream inflates to zeros throughout.
pub fn zip_bomb_png(width: u32, height: u32) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};

    fn deflate_zeros(n: usize) -> Vec<u8> {
        let zeros = vec![0u8; n];
        let mut c = Compress::new(Compression::best(), false);
        let mut out = Vec::with_capacity(n / 500 + 1024);
        c.compress_vec(&zeros, &mut out, FlushCompress::Sync)
            .expect("deflate");
        assert_eq!(c.total_in() as usize, n, "deflate consumed everything");
        out
    }

    const RUN: usize = 1 << 20;
    let total = u64::from(height) * (u64::from(width) + 1);
    let full_runs = total / RUN as u64;
    let rest = (total % RUN as u64) as usize;
    let run = deflate_zeros(RUN);
    let mut zlib = vec![0x78, 0xDA];
    for _ in 0..full_runs {
        zlib.extend_from_slice(&run);
    }
    if rest > 0 {
        zlib.extend_from_slice(&deflate_zeros(rest));
    }
    zlib.extend_from_slice(&[0x01, 0x00, 0x00, 0xFF, 0xFF]); // final empty stored block
                                                             // Adler-32 of `total` zero bytes: a stays 1, b adds 1 per byte.
    let adler = ((total % 65521) as u32) << 16 | 1;
    zlib.extend_from_slice(&adler.to_be_bytes());

    let mut png = png_header(width, height);
    png_chunk(&mut png, b"IDAT", &zlib);
    png_chunk(&mut png, b"IEND", &[]);
    png
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}
