//! The eight rotations and reflections of a square (the dihedral group D4), applied to PDQ's
//! 16x16 DCT block instead of to the image: mirroring an image negates its odd-symmetry
//! frequencies and transposing it transposes the block, so all eight hashes cost one DCT.
//! Transcribed from the reference's `dct16OriginalTo*` functions.

use image::DynamicImage;

/// One of the eight symmetries of the square, named as in the reference.
///
/// [`Dihedral::apply_to_image`] gives the image-domain operation each one stands for, so the
/// hash of a transformed image is (up to resampling noise) the transformed hash of the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dihedral {
    /// The image as stored.
    Original = 0,
    /// Rotated 90 degrees counter-clockwise.
    Rotate90 = 1,
    /// Rotated 180 degrees.
    Rotate180 = 2,
    /// Rotated 270 degrees counter-clockwise (90 clockwise).
    Rotate270 = 3,
    /// Mirrored top to bottom (about the horizontal axis).
    FlipX = 4,
    /// Mirrored left to right (about the vertical axis).
    FlipY = 5,
    /// Transposed (mirrored about the main diagonal).
    FlipPlus1 = 6,
    /// Mirrored about the anti-diagonal.
    FlipMinus1 = 7,
}

impl Dihedral {
    /// All eight, in the reference's output order.
    pub const ALL: [Dihedral; 8] = [
        Dihedral::Original,
        Dihedral::Rotate90,
        Dihedral::Rotate180,
        Dihedral::Rotate270,
        Dihedral::FlipX,
        Dihedral::FlipY,
        Dihedral::FlipPlus1,
        Dihedral::FlipMinus1,
    ];

    /// The DCT block of the transformed image, from the block of the original.
    pub fn transform_dct(self, a: &[[f32; 16]; 16]) -> [[f32; 16]; 16] {
        let mut b = [[0f32; 16]; 16];
        let neg = |v: f32, negate: bool| if negate { -v } else { v };
        for i in 0..16 {
            for j in 0..16 {
                let v = a[i][j];
                let odd_i = i & 1 == 1;
                let odd_j = j & 1 == 1;
                let odd_sum = (i + j) & 1 == 1;
                match self {
                    Dihedral::Original => b[i][j] = v,
                    Dihedral::Rotate90 => b[j][i] = neg(v, !odd_j),
                    Dihedral::Rotate180 => b[i][j] = neg(v, odd_sum),
                    Dihedral::Rotate270 => b[j][i] = neg(v, !odd_i),
                    Dihedral::FlipX => b[i][j] = neg(v, !odd_i),
                    Dihedral::FlipY => b[i][j] = neg(v, !odd_j),
                    Dihedral::FlipPlus1 => b[j][i] = v,
                    Dihedral::FlipMinus1 => b[j][i] = neg(v, odd_sum),
                }
            }
        }
        b
    }

    /// The same symmetry applied to an image (for tests and for callers that want the pixels).
    pub fn apply_to_image(self, img: &DynamicImage) -> DynamicImage {
        match self {
            Dihedral::Original => img.clone(),
            Dihedral::Rotate90 => img.rotate270(),
            Dihedral::Rotate180 => img.rotate180(),
            Dihedral::Rotate270 => img.rotate90(),
            Dihedral::FlipX => img.flipv(),
            Dihedral::FlipY => img.fliph(),
            Dihedral::FlipPlus1 => img.rotate90().fliph(),
            Dihedral::FlipMinus1 => img.rotate90().flipv(),
        }
    }
}
