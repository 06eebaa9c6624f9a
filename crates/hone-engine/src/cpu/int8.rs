//! Dynamic int8 inference of linear layers (`hone predict --int8`): each weight is quantized
//! once per output feature (symmetric int8, scale `max|w| / 127`), each input row when the
//! layer runs (symmetric 7-bit, scale `max|x| / 63`); the integer products are summed exactly
//! in i32 and rescaled to f32, then the bias is added. The scheme of the int8 ONNX export's
//! `MatMulInteger` graph, with a scale per token instead of one per tensor.
//!
//! Why 7 bits for activations: AVX2's `vpmaddubsw` multiplies 32 unsigned × signed byte pairs
//! and adds neighbours into i16, which must not saturate. Activations stored as `q + 64`
//! (1…127) times weights (±127) sum to at most 2·127·127 < 2¹⁵; the offset comes back out
//! with each weight row's sum (`Σ (q + 64)·w = Σ q·w + 64·Σ w`).

use std::sync::OnceLock;

use rayon::prelude::*;

/// The largest quantized weight magnitude (symmetric int8: −127…127).
const WEIGHT_LEVELS: f32 = 127.0;
/// The largest quantized activation magnitude (7 bits, see the module's comment).
const INPUT_LEVELS: f32 = 63.0;
/// What is added to a quantized activation to make it unsigned.
const INPUT_OFFSET: i32 = 64;
/// Features are padded to a multiple of this (one AVX2 register of bytes).
const LANES: usize = 32;
/// Rows a parallel task takes (two at a time in the kernel).
const ROWS_PER_TASK: usize = 16;
/// Output features a task sweeps at a time, so their weights stay in cache across its rows.
const COLS_PER_BLOCK: usize = 64;

/// A linear layer's `[out × in]` weight quantized per output feature.
pub struct QuantizedLinear {
    /// `out × padded_in`, zero past `in_f` in every row.
    weights: Vec<i8>,
    /// One scale per output feature.
    scales: Vec<f32>,
    /// `INPUT_OFFSET · Σ w` per output feature: what the activations' offset adds.
    offsets: Vec<i32>,
    in_f: usize,
    padded_in: usize,
    out_f: usize,
}

impl QuantizedLinear {
    /// Quantizes `w` (`[out_f × in_f]`, row-major, as `nn.Linear` stores it).
    pub fn quantize(w: &[f32], out_f: usize, in_f: usize) -> Self {
        assert_eq!(w.len(), out_f * in_f, "weight shape");
        let padded_in = in_f.div_ceil(LANES) * LANES;
        let mut weights = vec![0i8; out_f * padded_in];
        let mut scales = vec![0f32; out_f];
        let mut offsets = vec![0i32; out_f];
        for (((row, q), scale), offset) in w
            .chunks_exact(in_f.max(1))
            .zip(weights.chunks_exact_mut(padded_in.max(1)))
            .zip(scales.iter_mut())
            .zip(offsets.iter_mut())
        {
            *scale = quantize_row(row, WEIGHT_LEVELS, |v| v as i8, &mut q[..in_f]);
            *offset = INPUT_OFFSET * q.iter().map(|&v| v as i32).sum::<i32>();
        }
        QuantizedLinear {
            weights,
            scales,
            offsets,
            in_f,
            padded_in,
            out_f,
        }
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.in_f
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.out_f
    }

    /// `y = x · wᵀ (+ b)` for `rows` rows of `x` (`[rows × in_f]`) into `y` (`[rows × out_f]`).
    pub fn forward(&self, y: &mut [f32], x: &[f32], rows: usize, bias: Option<&[f32]>) {
        let (in_f, out_f, pin) = (self.in_f, self.out_f, self.padded_in);
        assert!(
            x.len() >= rows * in_f && y.len() >= rows * out_f,
            "buffer sizes"
        );
        if rows == 0 || out_f == 0 {
            return;
        }
        if in_f == 0 {
            for row in y.chunks_exact_mut(out_f).take(rows) {
                match bias {
                    Some(b) => row.copy_from_slice(&b[..out_f]),
                    None => row.fill(0.0),
                }
            }
            return;
        }
        // Padding holds the offset itself, i.e. a zero activation (its weights are zero).
        let mut xq = vec![INPUT_OFFSET as u8; rows * pin];
        let mut x_scales = vec![0f32; rows];
        xq.par_chunks_mut(pin)
            .zip(x.par_chunks(in_f))
            .zip(x_scales.par_iter_mut())
            .for_each(|((q, row), s)| {
                *s = quantize_row(
                    row,
                    INPUT_LEVELS,
                    |v| (v + INPUT_OFFSET) as u8,
                    &mut q[..in_f],
                )
            });
        let kernel = Kernel::detect();
        y[..rows * out_f]
            .par_chunks_mut(ROWS_PER_TASK * out_f)
            .zip(xq.par_chunks(ROWS_PER_TASK * pin))
            .zip(x_scales.par_chunks(ROWS_PER_TASK))
            .for_each(|((y, xq), xs)| self.rows(kernel, y, xq, xs, bias));
    }

    /// One task's rows: output blocks outermost, so a block's weights serve every row.
    fn rows(&self, kernel: Kernel, y: &mut [f32], xq: &[u8], xs: &[f32], bias: Option<&[f32]>) {
        let (pin, out_f) = (self.padded_in, self.out_f);
        let n = xs.len();
        for block in (0..out_f).step_by(COLS_PER_BLOCK) {
            let end = (block + COLS_PER_BLOCK).min(out_f);
            let mut r = 0;
            while r < n {
                let pair = (n - r).min(2);
                let x0 = &xq[r * pin..(r + 1) * pin];
                let x1 = if pair == 2 {
                    &xq[(r + 1) * pin..(r + 2) * pin]
                } else {
                    x0
                };
                let mut o = block;
                while o < end {
                    let quad = (end - o).min(4);
                    let w = |j: usize| {
                        let c = o + j.min(quad - 1);
                        &self.weights[c * pin..(c + 1) * pin]
                    };
                    let sums = kernel.dots(x0, x1, [w(0), w(1), w(2), w(3)]);
                    for (i, row_sums) in sums.iter().enumerate().take(pair) {
                        let scale = xs[r + i];
                        let out = &mut y[(r + i) * out_f..(r + i + 1) * out_f];
                        for (j, &s) in row_sums.iter().enumerate().take(quad) {
                            let c = o + j;
                            let b = bias.map_or(0.0, |b| b[c]);
                            let dot = s - self.offsets[c];
                            out[c] = dot as f32 * (scale * self.scales[c]) + b;
                        }
                    }
                    o += quad;
                }
                r += pair;
            }
        }
    }
}

/// Quantizes `row` to integers in `±levels` (stored through `store`) into `q` (same length);
/// returns the scale (`max|x| / levels`; 0 for an all-zero row, whose integers are all zero;
/// NaN when the row is not finite).
fn quantize_row<T>(row: &[f32], levels: f32, store: impl Fn(i32) -> T, q: &mut [T]) -> f32 {
    // `f32::max` skips NaN, so a NaN is looked for on its own: it must reach the output, as
    // it would in f32.
    let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    if max == 0.0 || !max.is_finite() || row.iter().any(|v| v.is_nan()) {
        q.iter_mut().for_each(|q| *q = store(0));
        return if max == 0.0 { 0.0 } else { f32::NAN };
    }
    let inv = levels / max;
    for (q, &v) in q.iter_mut().zip(row) {
        // Half away from zero, as `round` (which does not vectorise); clamped, since `inv`
        // overflows to infinity for a row of subnormal values.
        let r = (v * inv).clamp(-levels, levels);
        *q = store((r + 0.5f32.copysign(r)) as i32);
    }
    max / levels
}

/// The dot-product kernel this CPU runs.
#[derive(Clone, Copy)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            static AVX2: OnceLock<bool> = OnceLock::new();
            if *AVX2.get_or_init(|| std::arch::is_x86_feature_detected!("avx2")) {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    /// `Σ x·w` of two input rows with four weight rows (all padded to [`LANES`]).
    fn dots(self, x0: &[u8], x1: &[u8], w: [&[i8]; 4]) -> [[i32; 4]; 2] {
        match self {
            Kernel::Portable => dots_portable(x0, x1, w),
            // SAFETY: AVX2 was detected on this CPU; the kernel checks that every slice has
            // the same length, a multiple of LANES.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { dots_avx2(x0, x1, w) },
        }
    }
}

fn dots_portable(x0: &[u8], x1: &[u8], w: [&[i8]; 4]) -> [[i32; 4]; 2] {
    let mut out = [[0i32; 4]; 2];
    for (x, row) in [x0, x1].into_iter().zip(out.iter_mut()) {
        for (wj, s) in w.iter().zip(row.iter_mut()) {
            *s = x
                .iter()
                .zip(wj.iter())
                .map(|(&a, &b)| a as i32 * b as i32)
                .sum();
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dots_avx2(x0: &[u8], x1: &[u8], w: [&[i8]; 4]) -> [[i32; 4]; 2] {
    use std::arch::x86_64::*;
    let n = x0.len();
    assert!(n.is_multiple_of(LANES) && x1.len() == n && w.iter().all(|w| w.len() == n));
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); 4]; 2];
    let mut i = 0;
    while i < n {
        let a0 = _mm256_loadu_si256(x0.as_ptr().add(i) as *const __m256i);
        let a1 = _mm256_loadu_si256(x1.as_ptr().add(i) as *const __m256i);
        for j in 0..4 {
            let b = _mm256_loadu_si256(w[j].as_ptr().add(i) as *const __m256i);
            // u8 × i8 pairs summed into i16 (no saturation: see the module's comment), then
            // neighbouring i16 summed into i32.
            let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(a0, b), ones);
            let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(a1, b), ones);
            acc[0][j] = _mm256_add_epi32(acc[0][j], p0);
            acc[1][j] = _mm256_add_epi32(acc[1][j], p1);
        }
        i += LANES;
    }
    let mut out = [[0i32; 4]; 2];
    for r in 0..2 {
        for j in 0..4 {
            let v = acc[r][j];
            let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            let s = _mm_hadd_epi32(s, s);
            let s = _mm_hadd_epi32(s, s);
            out[r][j] = _mm_cvtsi128_si32(s);
        }
    }
    out
}

/// Every linear weight of a model, quantized the first time an evaluation pass needs it
/// (indexed like the model's parameters).
pub struct Int8Weights {
    table: Vec<OnceLock<QuantizedLinear>>,
}

impl Int8Weights {
    /// Room for a model of `params` parameters.
    pub fn new(params: usize) -> Self {
        Int8Weights {
            table: (0..params).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Parameter `index`'s quantized weight (`w`, `[out_f × in_f]`), made on first use.
    pub fn get(
        &self,
        index: usize,
        w: &[f32],
        out_f: usize,
        in_f: usize,
    ) -> Option<&QuantizedLinear> {
        let slot = self.table.get(index)?;
        Some(slot.get_or_init(|| QuantizedLinear::quantize(w, out_f, in_f)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        rows: usize,
        in_f: usize,
        out_f: usize,
    ) -> Vec<f32> {
        let mut y = vec![0f32; rows * out_f];
        for r in 0..rows {
            for o in 0..out_f {
                let dot: f32 = (0..in_f).map(|i| x[r * in_f + i] * w[o * in_f + i]).sum();
                y[r * out_f + o] = dot + b[o];
            }
        }
        y
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 2001) as f32
                    / 1000.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn close_to_f32_for_odd_shapes_and_both_kernels() {
        // Odd rows, columns past a block and a quad, features not a multiple of 16.
        let (rows, in_f, out_f) = (37, 45, 70);
        let (x, w, b) = (
            values(rows * in_f, 1),
            values(out_f * in_f, 7),
            values(out_f, 3),
        );
        let want = reference(&x, &w, &b, rows, in_f, out_f);
        let q = QuantizedLinear::quantize(&w, out_f, in_f);
        let mut y = vec![f32::NAN; rows * out_f];
        q.forward(&mut y, &x, rows, Some(&b));
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (got, want) in y.iter().zip(&want) {
            assert!((got - want).abs() <= 0.02 * scale, "{got} vs {want}");
        }
        // The portable and the detected kernels agree exactly (integer sums).
        let pin = q.padded_in;
        let pad = |v: &[f32]| {
            let mut p = vec![INPUT_OFFSET as u8; pin];
            quantize_row(
                v,
                INPUT_LEVELS,
                |v| (v + INPUT_OFFSET) as u8,
                &mut p[..in_f],
            );
            p
        };
        let (x0, x1) = (pad(&x[..in_f]), pad(&x[in_f..2 * in_f]));
        let ws: Vec<&[i8]> = (0..4).map(|c| &q.weights[c * pin..(c + 1) * pin]).collect();
        let w4 = [ws[0], ws[1], ws[2], ws[3]];
        assert_eq!(
            Kernel::detect().dots(&x0, &x1, w4),
            dots_portable(&x0, &x1, w4)
        );
    }

    #[test]
    fn the_largest_products_do_not_saturate_and_nan_spreads() {
        // Every input at the 7-bit extreme against weights at ±127: the pairs vpmaddubsw adds
        // are at their largest (2·127·127 with the offset), and the sums stay exact.
        let in_f = 64;
        // Row 0 of the weights is all +127 and the first half of the inputs all +63 (stored
        // 127): those pairs sum to 2·127·127.
        let x: Vec<f32> = (0..in_f)
            .map(|i| {
                if i < in_f / 2 || i % 3 != 0 {
                    1.0
                } else {
                    -1.0
                }
            })
            .collect();
        let w: Vec<f32> = (0..2 * in_f)
            .map(|i| if i < in_f || i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let q = QuantizedLinear::quantize(&w, 2, in_f);
        let mut y = [0f32; 2];
        q.forward(&mut y, &x, 1, None);
        let want = reference(&x, &w, &[0.0, 0.0], 1, in_f, 2);
        for (got, want) in y.iter().zip(&want) {
            assert!((got - want).abs() < 1e-4, "{y:?} vs {want:?}");
        }
        // A NaN input makes its row NaN, as in f32, instead of a plausible score.
        let mut bad = x.clone();
        bad[5] = f32::NAN;
        q.forward(&mut y, &bad, 1, None);
        assert!(y.iter().all(|v| v.is_nan()), "{y:?}");
    }

    #[test]
    fn integers_are_exact_and_zero_rows_stay_zero() {
        // Weights on the int8 grid and inputs on the 7-bit one: the quantized product is
        // f32's.
        let w = [127.0, -127.0, 0.0, 127.0, 1.0, 2.0];
        let x = [0.0, 0.0, 0.0, 63.0, -63.0, 1.0];
        let q = QuantizedLinear::quantize(&w, 2, 3);
        let mut y = [0f32; 4];
        q.forward(&mut y, &x, 2, None);
        assert_eq!(
            y,
            [
                0.0,
                0.0,
                63.0 * 127.0 + 63.0 * 127.0,
                63.0 * 127.0 - 63.0 + 2.0
            ]
        );
    }
}
