//! Tests on images drawn here, so they run on any machine: dihedral consistency, the one-call
//! entry point, robustness to re-encoding, and golden values that catch silent algorithm drift.

mod common;

use image::{DynamicImage, ImageFormat, RgbImage};
use redline_hashing::{
    exact, family, hamming_distance, hash_image, pdq::luma_from_rgb, pdq_dihedral_from_image,
    pdq_dihedral_from_luma, pdq_from_image, pdq_from_luma, DecodeLimits, Dihedral, SignalType,
};

#[test]
fn rotated_and_mirrored_images_match_dihedral_hashes() {
    // 576x320: 9 and 5 pixels per output cell and odd box windows (5 and 3), so decimation
    // samples and blur windows map onto each other under every flip: only float rounding differs.
    // 301x517 has neither property; PDQ itself then moves a few more bits.
    for (w, h, bound) in [(576, 320, 4), (301, 517, 16)] {
        let img = common::drawn_image(w, h);
        let dih = pdq_dihedral_from_image(&img);
        assert_eq!(dih.quality, 100);
        assert_eq!(dih.get(Dihedral::Original), pdq_from_image(&img).hash);
        for d in Dihedral::ALL {
            let direct = pdq_from_image(&d.apply_to_image(&img)).hash;
            let dist = direct.distance(&dih.get(d));
            println!("{w}x{h} {d:?}: PDQ of transformed image vs dihedral hash: {dist} bits");
            assert!(dist <= bound, "{w}x{h} {d:?}: {dist} bits");
        }
        // The eight are really different hashes (the picture has no symmetry).
        for (i, a) in dih.hashes.iter().enumerate() {
            for b in &dih.hashes[i + 1..] {
                assert!(a.distance(b) > 64, "two dihedral hashes are too close");
            }
        }
    }
}

#[test]
fn hash_image_computes_every_type_once() {
    let img = common::drawn_image(400, 300);
    let png = common::encode(&img, ImageFormat::Png);
    let types = [
        SignalType::Sha256,
        SignalType::Pdq,
        SignalType::Md5,
        SignalType::Pdq,
        SignalType::PhashDct8x8,
        SignalType::Dhash8x8,
        SignalType::Ahash8x8,
        SignalType::Blockhash16x16,
    ];
    let out = hash_image(&png, &DecodeLimits::default(), &types).expect("hash");
    let got: Vec<SignalType> = out.iter().map(|s| s.signal_type).collect();
    assert_eq!(
        got,
        [&types[..3], &types[4..]].concat(),
        "request order, duplicates once"
    );
    for s in &out {
        assert_eq!(s.bytes.len(), s.signal_type.byte_len(), "{}", s.signal_type);
        assert_eq!(s.signal_type.parse_hex(&s.hex()).unwrap(), s.bytes);
        assert_eq!(s.quality.is_some(), s.signal_type == SignalType::Pdq);
        println!("{:16} {}", s.signal_type.name(), s.hex());
    }
    let pdq = pdq_from_image(&img);
    assert_eq!(out[1].bytes, pdq.hash.0);
    assert_eq!(out[1].quality, Some(pdq.quality));
    assert_eq!(out[0].bytes, exact::sha256(&png));
    assert_eq!(out[2].bytes, exact::md5(&png));
    assert_eq!(
        out[3].bytes,
        family::family_hash(SignalType::PhashDct8x8, &img).unwrap()
    );

    // Exact types alone don't need pixels, but the header is still checked.
    let md5_only = hash_image(b"abc", &DecodeLimits::default(), &[SignalType::Md5]);
    assert!(md5_only.is_err(), "non-images are refused even for md5");
    let md5_only = hash_image(&png, &DecodeLimits::default(), &[SignalType::Md5]).unwrap();
    assert_eq!(md5_only[0].bytes, exact::md5(&png));
}

#[test]
fn exact_hashes_of_known_bytes() {
    assert_eq!(
        SignalType::Md5
            .format_hex(&exact::md5(b"The quick brown fox jumps over the lazy dog"))
            .unwrap(),
        "9e107d9d372bb6826bd81d3542a419d6"
    );
    assert_eq!(
        SignalType::Sha256
            .format_hex(&exact::sha256(
                b"The quick brown fox jumps over the lazy dog"
            ))
            .unwrap(),
        "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"
    );
}

#[test]
fn re_encoding_keeps_perceptual_hashes_close() {
    let img = common::drawn_image(640, 480);
    let jpeg = common::encode(&img, ImageFormat::Jpeg);
    let other = Dihedral::Rotate180.apply_to_image(&common::drawn_image(640, 480));
    let limits = DecodeLimits::default();
    let png_hashes = hash_image(
        &common::encode(&img, ImageFormat::Png),
        &limits,
        &SignalType::IMAGE,
    )
    .unwrap();
    let jpeg_hashes = hash_image(&jpeg, &limits, &SignalType::IMAGE).unwrap();
    let other_hashes = hash_image(
        &common::encode(&other, ImageFormat::Png),
        &limits,
        &SignalType::IMAGE,
    )
    .unwrap();
    for ((a, b), c) in png_hashes.iter().zip(&jpeg_hashes).zip(&other_hashes) {
        let same = hamming_distance(&a.bytes, &b.bytes);
        let diff = hamming_distance(&a.bytes, &c.bytes);
        println!(
            "{:16} PNG vs JPEG: {same:3} bits; vs another picture: {diff:3} bits",
            a.signal_type.name()
        );
        if a.signal_type.is_perceptual() {
            let bits = a.signal_type.bits();
            assert!(
                same <= bits / 16,
                "{}: re-encoding moved {same} bits",
                a.signal_type
            );
            assert!(diff > same, "{}", a.signal_type);
        } else {
            assert!(same > 0, "exact hashes differ for different bytes");
        }
    }
}

#[test]
fn luma_entry_points_agree_with_image_entry_points() {
    let img = common::drawn_image(200, 150);
    let rgb = img.to_rgb8();
    let luma: Vec<f32> = rgb
        .pixels()
        .map(|p| luma_from_rgb(p[0], p[1], p[2]))
        .collect();
    assert_eq!(pdq_from_luma(&luma, 200, 150), pdq_from_image(&img));
    assert_eq!(
        pdq_dihedral_from_luma(&luma, 200, 150),
        pdq_dihedral_from_image(&img)
    );

    // Grey, grey+alpha and RGBA go through the same luma as RGB.
    let grey = DynamicImage::ImageLuma8(img.to_luma8());
    let grey_rgb = DynamicImage::ImageRgb8(DynamicImage::ImageLuma8(img.to_luma8()).to_rgb8());
    assert_eq!(pdq_from_image(&grey), pdq_from_image(&grey_rgb));
    assert_eq!(
        pdq_from_image(&DynamicImage::ImageRgba8(img.to_rgba8())),
        pdq_from_image(&img)
    );
    assert_eq!(
        pdq_from_image(&DynamicImage::ImageLumaA8(img.to_luma_alpha8())),
        pdq_from_image(&grey)
    );
    // 16-bit images are reduced to 8 bits first.
    assert_eq!(
        pdq_from_image(&DynamicImage::ImageRgb16(img.to_rgb16())),
        pdq_from_image(&img)
    );
}

#[test]
fn flat_and_tiny_images() {
    let flat = DynamicImage::ImageRgb8(RgbImage::from_pixel(300, 200, image::Rgb([90, 90, 90])));
    let p = pdq_from_image(&flat);
    assert_eq!(p.quality, 0, "a flat image has no gradients");
    let tiny = DynamicImage::ImageRgb8(RgbImage::from_pixel(4, 40, image::Rgb([1, 2, 3])));
    assert_eq!(
        pdq_from_image(&tiny).hash.0,
        [0u8; 32],
        "below 5 px the reference returns zero"
    );
    // 64x64 takes the reference's no-blur shortcut for one hash but not for the dihedral ones;
    // the two differ at most by float rounding.
    let img = common::drawn_image(64, 64);
    let plain = pdq_from_image(&img).hash;
    let dih = pdq_dihedral_from_image(&img).get(Dihedral::Original);
    assert!(plain.distance(&dih) <= 2, "{}", plain.distance(&dih));
}

/// Hashes of the drawn 640x480 picture, pinned. If a dependency upgrade (`image`'s resampling,
/// `image_hasher`) or an edit changes any of them, nodes would stop agreeing: that is a protocol
/// change and needs new signal-type names, not new golden values.
#[test]
fn golden_values() {
    let img = common::drawn_image(640, 480);
    let got: Vec<(SignalType, String)> = SignalType::IMAGE
        .into_iter()
        .filter(|t| t.is_perceptual())
        .map(|t| {
            let hex = match t {
                SignalType::Pdq => pdq_from_image(&img).hash.to_hex(),
                t => SignalType::to_hex_checked(t, &family::family_hash(t, &img).unwrap()),
            };
            (t, hex)
        })
        .collect();
    for (t, hex) in &got {
        println!("(SignalType::{t:?}, \"{hex}\"),");
    }
    let expected: [(SignalType, &str); 5] = GOLDEN;
    for ((t, hex), (et, ehex)) in got.iter().zip(expected) {
        assert_eq!((*t, hex.as_str()), (et, ehex));
    }
}

trait HexChecked {
    fn to_hex_checked(self, bytes: &[u8]) -> String;
}
impl HexChecked for SignalType {
    fn to_hex_checked(self, bytes: &[u8]) -> String {
        self.format_hex(bytes).unwrap()
    }
}

const GOLDEN: [(SignalType, &str); 5] = [
    (
        SignalType::Pdq,
        "27745a0b271e780474dbf8168771d8e125f427df7a118741c89f80bef8ee26b1",
    ),
    (SignalType::PhashDct8x8, "0102016812000182"),
    (SignalType::Dhash8x8, "b6d3d367a6377bcb"),
    (SignalType::Ahash8x8, "00000000c0fcffff"),
    (
        SignalType::Blockhash16x16,
        "40fc60dc30de38ee10e790f398f1c0f9c07840fc60fe30fe00c608ef98f78cf7",
    ),
];
