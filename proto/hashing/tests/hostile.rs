//! Hostile uploads: every one must be refused with a clear error, never a panic, and without
//! allocating anywhere near what the image claims to need.

mod common;

use image::ImageFormat;
use redline_hashing::{decode_image, hash_image, probe, DecodeLimits, HashError, SignalType};

/// Memory growth allowed while refusing every hostile input in one test.
const MEMORY_BOUND: u64 = 64 << 20;

fn refuse(name: &str, bytes: &[u8], limits: &DecodeLimits) -> HashError {
    let err = match decode_image(bytes, limits) {
        Ok(img) => panic!(
            "{name}: decoded a hostile input as {}x{}",
            img.width(),
            img.height()
        ),
        Err(e) => e,
    };
    // The full entry point refuses it too, whatever is asked.
    assert!(
        hash_image(bytes, limits, &SignalType::IMAGE).is_err(),
        "{name}: hash_image accepted it"
    );
    let msg = err.to_string();
    assert!(
        msg.chars().all(|c| c.is_ascii_graphic() || c == ' '),
        "{name}: message is not clean one-line ASCII: {msg:?}"
    );
    println!("{name:44} -> {msg}");
    err
}

#[test]
fn hostile_inputs_are_refused_with_bounded_memory() {
    let limits = DecodeLimits::default();
    // Build every input first so that only refusing them is measured.
    let huge_header = {
        let mut png = common::png_header(100_000, 100_000);
        common::png_chunk(
            &mut png,
            b"IDAT",
            &[0x78, 0xDA, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        );
        common::png_chunk(&mut png, b"IEND", &[]);
        png
    };
    // 16000 x 16000 greyscale: within the width and height caps, 256 MB of pixels inflated from
    // a few hundred KB, above the 50-megapixel cap.
    let bomb = common::zip_bomb_png(16_000, 16_000);
    // Within every dimension cap (12000 x 12000) when they are raised, so only image::Limits'
    // allocation cap stands between the decoder and a 144 MB buffer.
    let bomb_in_caps = common::zip_bomb_png(12_000, 12_000);
    println!(
        "zip bombs: {} bytes -> 256 MB of pixels, {} bytes -> 144 MB",
        bomb.len(),
        bomb_in_caps.len()
    );
    let permissive_dims = DecodeLimits {
        max_width: 200_000,
        max_height: 200_000,
        max_pixels: u64::MAX,
        max_alloc_bytes: 32 << 20,
        ..DecodeLimits::default()
    };

    let before = common::peak_rss_bytes();

    let e = refuse("100000x100000 PNG header", &huge_header, &limits);
    assert!(
        matches!(
            e,
            HashError::TooWide {
                width: 100_000,
                max: 16_384
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "image width 100000 is above the limit of 16384"
    );

    let e = refuse(
        "100000x100000 PNG header, dims allowed",
        &huge_header,
        &permissive_dims,
    );
    assert!(matches!(e, HashError::MemoryLimit(_)), "{e}");

    let e = refuse("zip-bomb PNG 16000x16000", &bomb, &limits);
    assert!(
        matches!(
            e,
            HashError::TooManyPixels {
                pixels: 256_000_000,
                ..
            }
        ),
        "{e}"
    );
    assert!(e
        .to_string()
        .contains("256000000 pixels (16000x16000), above the limit of 50000000"));

    let e = refuse(
        "zip-bomb PNG 12000x12000, dims allowed",
        &bomb_in_caps,
        &permissive_dims,
    );
    assert!(matches!(e, HashError::MemoryLimit(_)), "{e}");

    let after = common::peak_rss_bytes();
    match (before, after) {
        (Some(b), Some(a)) => {
            println!("peak RSS {} MiB -> {} MiB", b >> 20, a >> 20);
            assert!(
                a - b < MEMORY_BOUND,
                "peak memory grew by {} MiB",
                (a - b) >> 20
            );
        }
        _ => println!("no /proc/self/status: memory growth not measured"),
    }
}

#[test]
fn zip_bomb_generator_makes_valid_pngs() {
    // The same construction at a decodable size really is a valid all-black PNG, so the refusals
    // above are of genuine bombs, not of broken files.
    let small = common::zip_bomb_png(3000, 700);
    assert!(small.len() < 10_000, "{} bytes", small.len());
    let img = decode_image(&small, &DecodeLimits::default()).expect("valid PNG");
    assert_eq!((img.width(), img.height()), (3000, 700));
    assert!(img.to_luma8().iter().all(|&p| p == 0));
}

#[test]
fn truncated_jpegs_are_refused() {
    let limits = DecodeLimits::default();
    let jpeg = common::encode(&common::drawn_image(512, 384), ImageFormat::Jpeg);
    assert!(
        decode_image(&jpeg, &limits).is_ok(),
        "the complete JPEG decodes"
    );
    let len = jpeg.len();
    for cut in [3, 20, len / 10, len / 2, len * 9 / 10, len - 2, len - 1] {
        let e = refuse(
            &format!("JPEG cut at {cut} of {len} bytes"),
            &jpeg[..cut],
            &limits,
        );
        assert!(
            matches!(
                e,
                HashError::Truncated(_) | HashError::Corrupt(_) | HashError::BadHeader(_)
            ),
            "cut at {cut}: {e}"
        );
        if cut >= len / 10 {
            assert!(matches!(e, HashError::Truncated(_)), "cut at {cut}: {e}");
            assert!(
                e.to_string()
                    .starts_with("image data is truncated: JPEG ends"),
                "{e}"
            );
        }
    }
    // Bytes after the end marker are fine (cameras append trailers).
    let mut trailer = jpeg.clone();
    trailer.extend_from_slice(b"trailing vendor data");
    assert!(decode_image(&trailer, &limits).is_ok());
}

#[test]
fn truncated_images_of_other_formats_are_refused() {
    let limits = DecodeLimits::default();
    let img = common::drawn_image(300, 200);
    for format in [
        ImageFormat::Png,
        ImageFormat::Gif,
        ImageFormat::Bmp,
        ImageFormat::Tiff,
        ImageFormat::WebP,
    ] {
        let bytes = common::encode(&img, format);
        assert!(decode_image(&bytes, &limits).is_ok(), "{format:?} complete");
        for cut in [bytes.len() / 2, bytes.len() * 9 / 10] {
            refuse(
                &format!("{format:?} cut at {cut} of {}", bytes.len()),
                &bytes[..cut],
                &limits,
            );
        }
    }
}

#[test]
fn garbage_empty_and_zero_size_are_refused() {
    let limits = DecodeLimits::default();
    let e = refuse("empty file", &[], &limits);
    assert!(matches!(e, HashError::Empty));
    assert_eq!(e.to_string(), "image is empty (0 bytes)");

    for (i, len) in [1usize, 7, 100, 4096, 1 << 20].into_iter().enumerate() {
        let e = refuse(
            &format!("{len} random bytes"),
            &common::random_bytes(len, 77 + i as u64),
            &limits,
        );
        assert!(matches!(e, HashError::UnknownFormat), "{e}");
    }

    // Right signatures, random rest.
    for (name, magic) in [
        ("PNG", &b"\x89PNG\r\n\x1a\n"[..]),
        ("JPEG", &b"\xFF\xD8\xFF\xE0"[..]),
        ("GIF", &b"GIF89a"[..]),
        ("WebP", &b"RIFF\x00\x10\x00\x00WEBPVP8 "[..]),
        ("BMP", &b"BM"[..]),
        ("TIFF", &b"II*\x00"[..]),
    ] {
        let mut bytes = magic.to_vec();
        bytes.extend(common::random_bytes(2000, 5));
        refuse(&format!("{name} signature + random bytes"), &bytes, &limits);
    }

    let mut zero_width = common::png_header(0, 100);
    common::png_chunk(&mut zero_width, b"IEND", &[]);
    refuse("PNG declaring 0x100", &zero_width, &limits);
}

#[test]
fn byte_and_format_limits_name_the_limit() {
    let png = common::encode(&common::drawn_image(64, 64), ImageFormat::Png);
    let small = DecodeLimits {
        max_encoded_bytes: 100,
        ..DecodeLimits::default()
    };
    let e = refuse("PNG over the byte limit", &png, &small);
    assert_eq!(
        e.to_string(),
        format!(
            "image is {} bytes, more than the limit of 100 bytes",
            png.len()
        )
    );

    let jpeg_only = DecodeLimits {
        formats: vec![ImageFormat::Jpeg],
        ..DecodeLimits::default()
    };
    let e = refuse("PNG when only JPEG is allowed", &png, &jpeg_only);
    assert_eq!(
        e.to_string(),
        "image format png is not allowed (allowed: jpg)"
    );

    let narrow = DecodeLimits {
        max_height: 63,
        ..DecodeLimits::default()
    };
    let e = refuse("PNG over the height limit", &png, &narrow);
    assert_eq!(e.to_string(), "image height 64 is above the limit of 63");
    assert_eq!(probe(&png, &DecodeLimits::default()).unwrap().width, 64);
}
