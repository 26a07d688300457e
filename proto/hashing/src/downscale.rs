//! PDQ's downsampling: two passes of Jarosz box filters in each direction, then decimation to
//! 64x64, computed bit for bit like the reference C++ (`downscaling.cpp`) but faster.
//!
//! The reference filters the whole image four times (rows, columns, rows, columns) through two
//! full-size float buffers, then keeps 64x64 samples. Every output value is a running sum of
//! float additions and subtractions followed by one division; as long as each running sum sees
//! exactly the same operations in the same order, the result is identical. This module keeps that
//! invariant and changes only the schedule:
//!
//! * row passes run 8 rows at a time, so 8 independent sum chains overlap in the CPU pipeline
//!   (the reference's single chain per row is latency bound);
//! * column passes walk the image row by row with one running sum per column (the reference
//!   walks each column with a stride of a whole row, missing the cache at every step), which also
//!   lets the compiler vectorise them;
//! * the four passes are chained as a stream of rows (each column pass keeps a ring of the
//!   last `window + 8` rows of its input), so no buffer of the image's size is allocated and
//!   the working set stays in cache;
//! * the second row pass and the second column pass divide and store only at the 64 columns and
//!   64 rows that decimation keeps.

/// Rows filtered together by the row passes. Eight independent running sums hide the latency of
/// float addition without spilling registers.
const ROW_BLOCK: usize = 8;

/// Side of PDQ's downsampled image.
pub(crate) const OUT_DIM: usize = 64;

/// The reference's `computeJaroszFilterWindowSize(old, 64)`: half the input pixels per output
/// pixel, rounded up, since two passes of a box of that size cover a whole output pixel.
pub(crate) fn jarosz_window(old_dimension: usize) -> usize {
    old_dimension.div_ceil(2 * OUT_DIM)
}

/// The reference's decimation sample index: the input index under the centre of output cell `out`.
fn decimation_index(out: usize, in_len: usize) -> usize {
    (((out as f64 + 0.5) * in_len as f64) / OUT_DIM as f64) as usize
}

/// The four phase lengths of the reference's `box1DFloat`: accumulate only, write with a growing
/// window, write with the full window, write with a shrinking window.
fn phases(len: usize, window: usize) -> [usize; 4] {
    let half = (window + 2) / 2;
    [half - 1, window - half + 1, len - window, half - 1]
}

/// Runs `R` independent 1-D box filters along `R` consecutive rows of `block` (each `len` long),
/// calling `emit(output_index, window_size, sums)` where the reference writes `sum / window`.
#[inline(always)]
fn box_rows<const R: usize>(
    block: &[f32],
    len: usize,
    window: usize,
    mut emit: impl FnMut(usize, f32, &[f32; R]),
) {
    let [p1, p2, p3, p4] = phases(len, window);
    let rows: [&[f32]; R] = std::array::from_fn(|r| &block[r * len..(r + 1) * len]);
    let mut sum = [0f32; R];
    let mut window_now = 0usize;
    let (mut li, mut ri, mut oi) = (0usize, 0usize, 0usize);
    for _ in 0..p1 {
        for r in 0..R {
            sum[r] += rows[r][ri];
        }
        window_now += 1;
        ri += 1;
    }
    for _ in 0..p2 {
        for r in 0..R {
            sum[r] += rows[r][ri];
        }
        window_now += 1;
        emit(oi, window_now as f32, &sum);
        ri += 1;
        oi += 1;
    }
    let w = window_now as f32;
    for _ in 0..p3 {
        for r in 0..R {
            sum[r] += rows[r][ri];
            sum[r] -= rows[r][li];
        }
        emit(oi, w, &sum);
        li += 1;
        ri += 1;
        oi += 1;
    }
    for _ in 0..p4 {
        for r in 0..R {
            sum[r] -= rows[r][li];
        }
        window_now -= 1;
        emit(oi, window_now as f32, &sum);
        li += 1;
        oi += 1;
    }
}

/// Runs one 1-D box filter down every column of a `rows x width` row-major matrix at once,
/// calling `emit(output_row, window_size, sums)` where the reference writes `sum / window`.
fn box_cols(
    src: &[f32],
    width: usize,
    rows: usize,
    window: usize,
    mut emit: impl FnMut(usize, f32, &[f32]),
) {
    let [p1, p2, p3, p4] = phases(rows, window);
    let row = |i: usize| &src[i * width..(i + 1) * width];
    let mut sum = vec![0f32; width];
    let mut window_now = 0usize;
    let (mut li, mut ri, mut oi) = (0usize, 0usize, 0usize);
    for _ in 0..p1 {
        sum.iter_mut().zip(row(ri)).for_each(|(s, a)| *s += a);
        window_now += 1;
        ri += 1;
    }
    for _ in 0..p2 {
        sum.iter_mut().zip(row(ri)).for_each(|(s, a)| *s += a);
        window_now += 1;
        emit(oi, window_now as f32, &sum);
        ri += 1;
        oi += 1;
    }
    let w = window_now as f32;
    for _ in 0..p3 {
        sum.iter_mut()
            .zip(row(ri).iter().zip(row(li)))
            .for_each(|(s, (a, b))| {
                *s += a;
                *s -= b;
            });
        emit(oi, w, &sum);
        li += 1;
        ri += 1;
        oi += 1;
    }
    for _ in 0..p4 {
        sum.iter_mut().zip(row(li)).for_each(|(s, b)| *s -= b);
        window_now -= 1;
        emit(oi, window_now as f32, &sum);
        li += 1;
        oi += 1;
    }
}

/// The distinct input indices decimation samples, and for each output index its slot among them.
struct Samples {
    /// `slot_of[input_index]`: position in the sampled list, or `usize::MAX` if not sampled.
    slot_of: Vec<usize>,
    /// For each of the 64 outputs, the slot it reads.
    out_slot: [usize; OUT_DIM],
    /// Number of distinct sampled inputs.
    count: usize,
}

impl Samples {
    fn new(in_len: usize) -> Samples {
        let mut slot_of = vec![usize::MAX; in_len];
        let mut out_slot = [0usize; OUT_DIM];
        let mut count = 0;
        for (out, slot) in out_slot.iter_mut().enumerate() {
            let i = decimation_index(out, in_len);
            if slot_of[i] == usize::MAX {
                slot_of[i] = count;
                count += 1;
            }
            *slot = slot_of[i];
        }
        Samples {
            slot_of,
            out_slot,
            count,
        }
    }
}
/// One running box filter down every column of a stream of rows (the reference's
/// `boxAlongColsFloat`, fed one input row at a time). Rows are read back from a [`Ring`], which
/// must still hold the last `window` rows.
struct ColumnBox {
    sum: Vec<f32>,
    len: usize,
    window: usize,
    window_now: usize,
    next_out: usize,
}

impl ColumnBox {
    fn new(width: usize, len: usize, window: usize) -> ColumnBox {
        ColumnBox {
            sum: vec![0f32; width],
            len,
            window,
            window_now: 0,
            next_out: 0,
        }
    }

    /// Consumes input row `ri` (already in `ring`), calling `emit(output_row, window, sums)`
    /// when the reference would write an output row.
    fn push(&mut self, ring: &Ring, ri: usize, mut emit: impl FnMut(usize, f32, &[f32])) {
        let [p1, p2, _, _] = phases(self.len, self.window);
        let add = ring.row(ri);
        if ri < p1 + p2 {
            self.sum.iter_mut().zip(add).for_each(|(s, a)| *s += a);
            self.window_now += 1;
            if ri < p1 {
                return;
            }
        } else {
            let sub = ring.row(ri - self.window);
            self.sum
                .iter_mut()
                .zip(add.iter().zip(sub))
                .for_each(|(s, (a, b))| {
                    *s += a;
                    *s -= b;
                });
        }
        emit(self.next_out, self.window_now as f32, &self.sum);
        self.next_out += 1;
    }

    /// After the last input row: the shrinking-window outputs.
    fn finish(&mut self, ring: &Ring, mut emit: impl FnMut(usize, f32, &[f32])) {
        let [_, _, p3, p4] = phases(self.len, self.window);
        for li in p3..p3 + p4 {
            self.sum
                .iter_mut()
                .zip(ring.row(li))
                .for_each(|(s, b)| *s -= b);
            self.window_now -= 1;
            emit(self.next_out, self.window_now as f32, &self.sum);
            self.next_out += 1;
        }
    }
}

/// The most recent rows of a row stream, in a circular buffer.
struct Ring {
    data: Vec<f32>,
    width: usize,
    rows: usize,
}

impl Ring {
    fn new(width: usize, rows: usize) -> Ring {
        Ring {
            data: vec![0f32; width * rows],
            width,
            rows,
        }
    }

    fn offset(&self, row: usize) -> usize {
        (row % self.rows) * self.width
    }

    fn row(&self, row: usize) -> &[f32] {
        let o = self.offset(row);
        &self.data[o..o + self.width]
    }
}

/// Runs the 1-D box along `n <= ROW_BLOCK` rows of `block`, writing output `oi` of block row
/// `r` to `q[oi][r]`. Writing the eight quotients of one position together lets the compiler
/// divide them as vectors; callers then pick the outputs they need out of `q`.
fn box_row_block(block: &[f32], n: usize, width: usize, window: usize, q: &mut [[f32; ROW_BLOCK]]) {
    if n == ROW_BLOCK {
        box_rows::<ROW_BLOCK>(block, width, window, |oi, w, s| q[oi] = s.map(|v| v / w));
    } else {
        for r in 0..n {
            box_rows::<1>(
                &block[r * width..(r + 1) * width],
                width,
                window,
                |oi, w, s| {
                    q[oi][r] = s[0] / w;
                },
            );
        }
    }
}

/// Blurs and decimates a `width x height` luma image (both at least 1) to the 64x64 buffer PDQ
/// hashes, as the reference's `jaroszFilterFloat` (2 passes) followed by `decimateFloat`.
///
/// `fill_row(y, out)` writes row `y` of the luma image into `out` (`width` floats); it is called
/// once per row, in order, so callers can convert pixels to luma on the fly. The passes are
/// chained as a stream: no buffer of the full image size is allocated, only a ring of
/// `window + 8` rows per stage and one float per sampled column per row.
pub(crate) fn blur_and_decimate(
    width: usize,
    height: usize,
    mut fill_row: impl FnMut(usize, &mut [f32]),
) -> [[f32; OUT_DIM]; OUT_DIM] {
    let win_rows = jarosz_window(width); // box along each row, i.e. across columns
    let win_cols = jarosz_window(height);
    let cols = Samples::new(width);
    let ncols = cols.count;

    let mut luma = vec![0f32; ROW_BLOCK * width]; // pass-1 input block
    let mut pass1 = Ring::new(width, win_cols + ROW_BLOCK); // pass-1 output, pass-2 input
    let mut col1 = ColumnBox::new(width, height, win_cols); // pass 2
    let mut pass2 = vec![0f32; ROW_BLOCK * width]; // pass-2 output block, pass-3 input
    let mut pass2_rows = 0; // rows of `pass2` filled
    let mut pass3 = vec![0f32; height * ncols]; // pass-3 output at the sampled columns
    let mut q = vec![[0f32; ROW_BLOCK]; width]; // row-pass outputs, position-major

    // Pass 3 (rows) on a block of pass-2 output starting at image row `start`; only the
    // sampled columns are divided and stored.
    let sampled_cols: Vec<usize> = (0..width)
        .filter(|&c| cols.slot_of[c] != usize::MAX)
        .collect();
    let pass3_block =
        |block: &[f32], start: usize, n: usize, pass3: &mut [f32], q: &mut [[f32; ROW_BLOCK]]| {
            box_row_block(block, n, width, win_rows, q);
            for (r, dst) in pass3[start * ncols..(start + n) * ncols]
                .chunks_exact_mut(ncols)
                .enumerate()
            {
                for (d, &c) in dst.iter_mut().zip(&sampled_cols) {
                    *d = q[c][r];
                }
            }
        };
    // Pass 2 output row `oi` goes into the pass-3 block; a full block runs pass 3.
    let take_pass2_row = |oi: usize,
                          w: f32,
                          sums: &[f32],
                          pass2: &mut [f32],
                          pass2_rows: &mut usize,
                          pass3: &mut [f32],
                          q: &mut [[f32; ROW_BLOCK]]| {
        pass2[*pass2_rows * width..(*pass2_rows + 1) * width]
            .iter_mut()
            .zip(sums)
            .for_each(|(d, s)| *d = s / w);
        *pass2_rows += 1;
        if *pass2_rows == ROW_BLOCK {
            pass3_block(pass2, oi + 1 - ROW_BLOCK, ROW_BLOCK, pass3, q);
            *pass2_rows = 0;
        }
    };

    let mut y = 0;
    while y < height {
        // Pass 1 (rows) on the next block of luma rows, into the ring.
        let n = ROW_BLOCK.min(height - y);
        for r in 0..n {
            fill_row(y + r, &mut luma[r * width..(r + 1) * width]);
        }
        box_row_block(&luma, n, width, win_rows, &mut q);
        for r in 0..n {
            let o = pass1.offset(y + r);
            for (d, v) in pass1.data[o..o + width].iter_mut().zip(&q) {
                *d = v[r];
            }
        }
        // Pass 2 (columns) consumes those rows as they come.
        for ri in y..y + n {
            col1.push(&pass1, ri, |oi, w, sums| {
                take_pass2_row(oi, w, sums, &mut pass2, &mut pass2_rows, &mut pass3, &mut q)
            });
        }
        y += n;
    }
    col1.finish(&pass1, |oi, w, sums| {
        take_pass2_row(oi, w, sums, &mut pass2, &mut pass2_rows, &mut pass3, &mut q)
    });
    if pass2_rows > 0 {
        pass3_block(&pass2, height - pass2_rows, pass2_rows, &mut pass3, &mut q);
    }

    // Pass 4 (columns) over the sampled columns, dividing only at the sampled rows.
    let rows = Samples::new(height);
    let mut pass4 = vec![0f32; rows.count * ncols];
    box_cols(&pass3, ncols, height, win_cols, |oi, w, sums| {
        let slot = rows.slot_of[oi];
        if slot != usize::MAX {
            pass4[slot * ncols..(slot + 1) * ncols]
                .iter_mut()
                .zip(sums)
                .for_each(|(d, s)| *d = s / w);
        }
    });

    let mut out = [[0f32; OUT_DIM]; OUT_DIM];
    for (out_row, &rs) in out.iter_mut().zip(&rows.out_slot) {
        for (o, &cs) in out_row.iter_mut().zip(&cols.out_slot) {
            *o = pass4[rs * ncols + cs];
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The reference's `box1DFloat`, transcribed literally (strided, one sum chain).
    fn box1d_ref(input: &[f32], out: &mut [f32], len: usize, stride: usize, window: usize) {
        let half = (window + 2) / 2;
        let (p1, p2, p3, p4) = (half - 1, window - half + 1, len - window, half - 1);
        let (mut li, mut ri, mut oi) = (0, 0, 0);
        let mut sum = 0f32;
        let mut cur = 0i32;
        for _ in 0..p1 {
            sum += input[ri];
            cur += 1;
            ri += stride;
        }
        for _ in 0..p2 {
            sum += input[ri];
            cur += 1;
            out[oi] = sum / cur as f32;
            ri += stride;
            oi += stride;
        }
        for _ in 0..p3 {
            sum += input[ri];
            sum -= input[li];
            out[oi] = sum / cur as f32;
            li += stride;
            ri += stride;
            oi += stride;
        }
        for _ in 0..p4 {
            sum -= input[li];
            cur -= 1;
            out[oi] = sum / cur as f32;
            li += stride;
            oi += stride;
        }
    }

    /// The reference's `jaroszFilterFloat` (2 passes) + `decimateFloat`, transcribed literally.
    pub(crate) fn reference_downsample(luma: &[f32], w: usize, h: usize) -> [[f32; 64]; 64] {
        let mut b1 = luma.to_vec();
        let mut b2 = vec![0f32; w * h];
        let (wr, wc) = (jarosz_window(w), jarosz_window(h));
        for _ in 0..2 {
            for i in 0..h {
                box1d_ref(&b1[i * w..], &mut b2[i * w..], w, 1, wr);
            }
            for j in 0..w {
                box1d_ref(&b2[j..], &mut b1[j..], h, w, wc);
            }
        }
        let mut out = [[0f32; 64]; 64];
        for (oi, row) in out.iter_mut().enumerate() {
            let ini = decimation_index(oi, h);
            for (oj, o) in row.iter_mut().enumerate() {
                *o = b1[ini * w + decimation_index(oj, w)];
            }
        }
        out
    }

    fn noise_luma(w: usize, h: usize, seed: u64) -> Vec<f32> {
        let mut x = seed | 1;
        (0..w * h)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mix smooth structure and noise, with fractional values like real luma.
                let (r, c) = ((i / w) as f32, (i % w) as f32);
                (r * 0.37 + c * 0.11).sin() * 90.0 + 128.0 + (x % 4000) as f32 * 0.01
            })
            .collect()
    }

    #[test]
    fn window_sizes_match_reference_formula() {
        assert_eq!(jarosz_window(1024), 8);
        assert_eq!(jarosz_window(1025), 9);
        assert_eq!(jarosz_window(128), 1);
        assert_eq!(jarosz_window(129), 2);
        assert_eq!(jarosz_window(5), 1);
    }

    #[test]
    fn fast_schedule_is_bit_identical_to_reference() {
        for &(w, h) in &[
            (5, 5),
            (7, 300),
            (64, 64),
            (100, 37),
            (129, 257),
            (640, 480),
            (333, 1001),
        ] {
            let luma = noise_luma(w, h, (w * 31 + h) as u64);
            let expected = reference_downsample(&luma, w, h);
            let got = blur_and_decimate(w, h, |y, out| {
                out.copy_from_slice(&luma[y * w..(y + 1) * w])
            });
            for i in 0..64 {
                for j in 0..64 {
                    assert_eq!(
                        got[i][j].to_bits(),
                        expected[i][j].to_bits(),
                        "{w}x{h} at ({i},{j}): {} vs {}",
                        got[i][j],
                        expected[i][j]
                    );
                }
            }
        }
    }
}
