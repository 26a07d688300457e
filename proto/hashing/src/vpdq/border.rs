//! Trimming letterbox and pillarbox bars before a frame is hashed.
//!
//! PDQ sees a letterboxed copy of a video as a different picture: the bars move every gradient
//! and the DCT's low frequencies with them, so the reference matches it only when the listed
//! video had the same bars. A frame whose top and bottom (or left and right) edges are bars is
//! therefore also hashed without them. Bars are runs of rows (columns) of one flat colour from
//! the edge inward, the same colour on both sides, each at least 2 % and at most 35 % of the
//! frame: content rarely has two flat bands of the same colour at both edges, and a frame that
//! is flat all over (a fade to black) is not cropped at all.

/// A rectangle of a frame, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub x: usize,
    /// Top row.
    pub y: usize,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
}

/// Largest spread of a flat row or column, on the 0..=255 luma-like scale of [`level`].
const FLAT_SPREAD: u8 = 24;
/// Largest difference of the two sides' bar colours.
const SAME_COLOUR: u8 = 24;

/// A cheap luma of one RGB pixel, `(r + 2g + b) / 4`.
fn level(p: &[u8]) -> u8 {
    ((u16::from(p[0]) + 2 * u16::from(p[1]) + u16::from(p[2])) / 4) as u8
}

/// Mean level of a run of pixels if they are flat (spread at most [`FLAT_SPREAD`]).
fn flat(pixels: impl Iterator<Item = u8>) -> Option<u8> {
    let (mut lo, mut hi, mut sum, mut n) = (u8::MAX, 0u8, 0u64, 0u64);
    for v in pixels {
        lo = lo.min(v);
        hi = hi.max(v);
        sum += u64::from(v);
        n += 1;
    }
    (n > 0 && hi - lo <= FLAT_SPREAD).then(|| (sum / n) as u8)
}

/// How many lines from one edge inward are flat and of the colour of the first, at most `max`.
fn bar(max: usize, line: impl Fn(usize) -> Option<u8>) -> (usize, Option<u8>) {
    let Some(colour) = line(0) else {
        return (0, None);
    };
    let n = (0..max)
        .take_while(|&i| line(i).is_some_and(|c| c.abs_diff(colour) <= SAME_COLOUR))
        .count();
    (n, Some(colour))
}

/// Bars of one axis: `(before, after)` lines, when both sides qualify.
fn bars(len: usize, line: impl Fn(usize) -> Option<u8>) -> Option<(usize, usize)> {
    let max = len * 35 / 100;
    let min = (len * 2 / 100).max(2);
    let (before, c1) = bar(max + 1, &line);
    let (after, c2) = bar(max + 1, |i| line(len - 1 - i));
    let (c1, c2) = (c1?, c2?);
    (before >= min
        && after >= min
        && before <= max
        && after <= max
        && c1.abs_diff(c2) <= SAME_COLOUR)
        .then_some((before, after))
}

/// The part of a packed RGB24 `width x height` frame inside its bars, or `None` when it has
/// none (the frame is hashed as it is).
pub fn content_rect(rgb: &[u8], width: usize, height: usize) -> Option<Rect> {
    if width < 16 || height < 16 || rgb.len() != 3 * width * height {
        return None;
    }
    let px = |x: usize, y: usize| level(&rgb[3 * (y * width + x)..3 * (y * width + x) + 3]);
    let row = |y: usize| flat((0..width).map(|x| px(x, y)));
    let (top, bottom) = bars(height, row).unwrap_or((0, 0));
    let (y0, y1) = (top, height - bottom);
    let column = |x: usize| flat((y0..y1).map(|y| px(x, y)));
    let (left, right) = bars(width, column).unwrap_or((0, 0));
    if top + bottom + left + right == 0 {
        return None;
    }
    Some(Rect {
        x: left,
        y: top,
        width: width - left - right,
        height: y1 - y0,
    })
}

/// Copies `rect` of a packed RGB24 frame of `width` columns into `out` (packed, resized).
pub fn crop_rgb24(rgb: &[u8], width: usize, rect: Rect, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(3 * rect.width * rect.height);
    for y in rect.y..rect.y + rect.height {
        let start = 3 * (y * width + rect.x);
        out.extend_from_slice(&rgb[start..start + 3 * rect.width]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w x h` frame of a diagonal gradient (content), with `bars` black rows at top and
    /// bottom and `side` black columns at left and right.
    fn frame(w: usize, h: usize, bars: usize, side: usize) -> Vec<u8> {
        let mut rgb = vec![0u8; 3 * w * h];
        for y in bars..h - bars {
            for x in side..w - side {
                let v = ((x * 7 + y * 3) % 256) as u8;
                rgb[3 * (y * w + x)..3 * (y * w + x) + 3].copy_from_slice(&[v, v / 2, 255 - v]);
            }
        }
        rgb
    }

    #[test]
    fn letterbox_and_pillarbox_bars_are_found() {
        assert_eq!(content_rect(&frame(160, 120, 0, 0), 160, 120), None);
        assert_eq!(
            content_rect(&frame(160, 120, 15, 0), 160, 120),
            Some(Rect {
                x: 0,
                y: 15,
                width: 160,
                height: 90
            })
        );
        assert_eq!(
            content_rect(&frame(160, 120, 0, 20), 160, 120),
            Some(Rect {
                x: 20,
                y: 0,
                width: 120,
                height: 120
            })
        );
        assert_eq!(
            content_rect(&frame(160, 120, 10, 20), 160, 120),
            Some(Rect {
                x: 20,
                y: 10,
                width: 120,
                height: 100
            })
        );
    }

    #[test]
    fn flat_frames_and_one_sided_bands_are_left_alone() {
        // All black: every row is flat, more than 35 % from each edge.
        assert_eq!(content_rect(&vec![0u8; 3 * 160 * 120], 160, 120), None);
        // A flat band at the top only (sky): no bar at the bottom.
        let mut rgb = frame(160, 120, 0, 0);
        rgb[..3 * 160 * 20].fill(200);
        assert_eq!(content_rect(&rgb, 160, 120), None);
        // Bars of different colours (white top, black bottom).
        let mut rgb = frame(160, 120, 15, 0);
        rgb[..3 * 160 * 15].fill(255);
        assert_eq!(content_rect(&rgb, 160, 120), None);
    }

    #[test]
    fn crop_copies_the_rectangle() {
        let rgb: Vec<u8> = (0..3 * 4 * 3).map(|i| i as u8).collect();
        let mut out = Vec::new();
        crop_rgb24(
            &rgb,
            4,
            Rect {
                x: 1,
                y: 1,
                width: 2,
                height: 2,
            },
            &mut out,
        );
        assert_eq!(out, [15, 16, 17, 18, 19, 20, 27, 28, 29, 30, 31, 32]);
    }
}
