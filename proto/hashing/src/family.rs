//! The img_hash family (pHash, dHash, aHash, blockhash) through the `image_hasher` crate, each
//! with one fixed configuration per signal-type name so that two nodes get the same bits.
//!
//! | signal type       | `HashAlg`   | `hash_size` | preprocessing                 | resize filter | bit order  | bits |
//! |-------------------|-------------|-------------|-------------------------------|---------------|------------|------|
//! | `phash-dct-8x8`   | `Mean`      | 8 x 8       | `preproc_dct()` (16x16 → DCT, keep 8x8 incl. DC, bit = coeff ≥ mean) | Lanczos3 | `LsbFirst` | 64 |
//! | `dhash-8x8`       | `Gradient`  | 8 x 8       | none (resize to 9x8 grey, bit = left < right) | Lanczos3 | `LsbFirst` | 64 |
//! | `ahash-8x8`       | `Mean`      | 8 x 8       | none (resize to 8x8 grey, bit = pixel ≥ mean) | Lanczos3 | `LsbFirst` | 64 |
//! | `blockhash-16x16` | `Blockhash` | 16 x 16     | none (no resize; Yang et al. blocks over the full image) | n/a | `LsbFirst` | 256 |
//!
//! Grey conversion is `image`'s `imageops::grayscale` (Rec. 709 weights), done by `image_hasher`.
//! Hashes are `ImageHash::as_bytes()` as is. No Gaussian (difference-of-Gaussians)
//! preprocessing. The bits depend on `image_hasher` 3.x and `image` 0.25's resampling: the
//! golden-value test in `tests/synthetic.rs` fails if an upgrade changes them, which would be a
//! protocol change needing a new signal-type name.

use image::imageops::FilterType;
use image::DynamicImage;
use image_hasher::{BitOrder, HashAlg, Hasher, HasherConfig};

use crate::signal::SignalType;

/// The exact `image_hasher` configuration a family signal type stands for, or `None` for
/// types outside the family (`pdq`, `md5`, `sha256`).
pub fn hasher_config(signal_type: SignalType) -> Option<HasherConfig> {
    let base = HasherConfig::new()
        .resize_filter(FilterType::Lanczos3)
        .bit_order(BitOrder::LsbFirst);
    Some(match signal_type {
        SignalType::PhashDct8x8 => base.hash_alg(HashAlg::Mean).hash_size(8, 8).preproc_dct(),
        SignalType::Dhash8x8 => base.hash_alg(HashAlg::Gradient).hash_size(8, 8),
        SignalType::Ahash8x8 => base.hash_alg(HashAlg::Mean).hash_size(8, 8),
        SignalType::Blockhash16x16 => base.hash_alg(HashAlg::Blockhash).hash_size(16, 16),
        SignalType::Pdq
        | SignalType::Md5
        | SignalType::Sha256
        | SignalType::Vpdq
        | SignalType::VideoMd5
        | SignalType::VideoSha256 => return None,
    })
}

/// A ready hasher for a family signal type (building one precomputes DCT tables, so reuse it
/// across images when hashing many).
pub fn hasher(signal_type: SignalType) -> Option<Hasher> {
    hasher_config(signal_type).map(|c| c.to_hasher())
}

/// The hash of `img` under a family signal type, `None` for types outside the family.
/// Stored pixels are hashed; EXIF orientation is not applied.
pub fn family_hash(signal_type: SignalType, img: &DynamicImage) -> Option<Vec<u8>> {
    let bytes = hasher(signal_type)?.hash_image(img).as_bytes().to_vec();
    debug_assert_eq!(bytes.len(), signal_type.byte_len());
    Some(bytes)
}
