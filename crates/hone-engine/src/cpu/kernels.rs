//! Element-wise and row-wise kernels of the CPU training path, each with its backward:
//! layer norm, GELU, dropout, residual sums, bias gradients, embeddings and cross-entropy.
//! Rows are processed in parallel; anything random is drawn sequentially so results do not
//! depend on thread scheduling.

use rayon::prelude::*;

use super::math;
use crate::ops::Activation;
use crate::rng::HoneRng;

/// Rows per parallel task: enough work to amortise scheduling.
pub(super) fn rows_per_task(rows: usize, width: usize) -> usize {
    (16_384 / width.max(1)).clamp(1, rows.max(1))
}

/// Adds per-task partial sums into `acc` in task order. Partials are collected (which keeps
/// their order) rather than combined by rayon's `reduce`, whose grouping follows work stealing:
/// float sums would then differ from run to run, and so would training.
pub(super) fn add_partials(acc: &mut [f32], partials: Vec<Vec<f32>>) {
    for p in partials {
        for (a, v) in acc.iter_mut().zip(p) {
            *a += v;
        }
    }
}

/// `acc[j] += Σ_rows m[row, j]` for a row-major `m` with `cols` columns.
pub fn add_column_sums(acc: &mut [f32], m: &[f32], cols: usize) {
    let partial = m
        .par_chunks(cols * rows_per_task(m.len() / cols.max(1), cols))
        .map(|block| {
            let mut s = vec![0f32; cols];
            for row in block.chunks_exact(cols) {
                for (a, v) in s.iter_mut().zip(row) {
                    *a += v;
                }
            }
            s
        })
        .collect();
    let mut sum = vec![0f32; cols];
    add_partials(&mut sum, partial);
    for (a, p) in acc.iter_mut().zip(sum) {
        *a += p;
    }
}

/// Per-row statistics a layer norm keeps for its backward.
#[derive(Default, Clone)]
pub struct NormStats {
    pub mean: Vec<f32>,
    pub rstd: Vec<f32>,
}

/// `y = (x − mean) / √(var + eps) · gamma + beta` per row of `x` (`cols` wide).
pub fn layer_norm(
    y: &mut [f32],
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    cols: usize,
    stats: &mut NormStats,
) {
    let rows = x.len() / cols;
    stats.mean.resize(rows, 0.0);
    stats.rstd.resize(rows, 0.0);
    let chunk = rows_per_task(rows, cols);
    y.par_chunks_mut(chunk * cols)
        .zip(x.par_chunks(chunk * cols))
        .zip(
            stats
                .mean
                .par_chunks_mut(chunk)
                .zip(stats.rstd.par_chunks_mut(chunk)),
        )
        .for_each(|((yb, xb), (mb, rb))| {
            for (((yr, xr), m), r) in yb
                .chunks_exact_mut(cols)
                .zip(xb.chunks_exact(cols))
                .zip(mb)
                .zip(rb)
            {
                let mean = math::sum(xr) / cols as f32;
                let var = math::sum_sq_dev(xr, mean) / cols as f32;
                let rstd = 1.0 / (var + eps).sqrt();
                for (((o, v), g), b) in yr.iter_mut().zip(xr).zip(gamma).zip(beta) {
                    *o = (v - mean) * rstd * g + b;
                }
                *m = mean;
                *r = rstd;
            }
        });
}

/// Backward of [`layer_norm`]: writes `dx`, adds to `dgamma` / `dbeta` when given.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    dx: &mut [f32],
    dy: &[f32],
    x: &[f32],
    gamma: &[f32],
    stats: &NormStats,
    cols: usize,
    dgamma: Option<&mut [f32]>,
    dbeta: Option<&mut [f32]>,
) {
    let rows = x.len() / cols;
    let chunk = rows_per_task(rows, cols);
    let want_params = dgamma.is_some() || dbeta.is_some();
    let partial = dx
        .par_chunks_mut(chunk * cols)
        .zip(dy.par_chunks(chunk * cols))
        .zip(x.par_chunks(chunk * cols))
        .zip(
            stats
                .mean
                .par_chunks(chunk)
                .zip(stats.rstd.par_chunks(chunk)),
        )
        .map(|(((dxb, dyb), xb), (mb, rb))| {
            let mut dg = if want_params {
                vec![0f32; cols]
            } else {
                Vec::new()
            };
            let mut dbt = if want_params {
                vec![0f32; cols]
            } else {
                Vec::new()
            };
            for ((((dxr, dyr), xr), &mean), &rstd) in dxb
                .chunks_exact_mut(cols)
                .zip(dyb.chunks_exact(cols))
                .zip(xb.chunks_exact(cols))
                .zip(mb)
                .zip(rb)
            {
                // Σ dxhat and Σ dxhat·xhat with dxhat = dy·gamma, xhat = (x − mean)·rstd, in eight
                // lanes so the loop vectorises.
                let (mut s1, mut s2) = ([0f32; 8], [0f32; 8]);
                let mut i = 0;
                while i + 8 <= cols {
                    for l in 0..8 {
                        let dxhat = dyr[i + l] * gamma[i + l];
                        s1[l] += dxhat;
                        s2[l] += dxhat * (xr[i + l] - mean);
                    }
                    i += 8;
                }
                let mut sum_dxhat: f32 = s1.iter().sum();
                let mut sum_dxhat_xc: f32 = s2.iter().sum();
                for j in i..cols {
                    let dxhat = dyr[j] * gamma[j];
                    sum_dxhat += dxhat;
                    sum_dxhat_xc += dxhat * (xr[j] - mean);
                }
                let sum_dxhat_xhat = sum_dxhat_xc * rstd;
                let inv_n = 1.0 / cols as f32;
                let (mean_dxhat, mean_dxhat_xhat) = (sum_dxhat * inv_n, sum_dxhat_xhat * inv_n);
                for (((o, d), v), g) in dxr.iter_mut().zip(dyr).zip(xr).zip(gamma) {
                    let xhat = (v - mean) * rstd;
                    *o = rstd * (d * g - mean_dxhat - xhat * mean_dxhat_xhat);
                }
                if want_params {
                    for (((a, b), d), v) in dg.iter_mut().zip(dbt.iter_mut()).zip(dyr).zip(xr) {
                        *a += d * (v - mean) * rstd;
                        *b += d;
                    }
                }
            }
            (dg, dbt)
        })
        .collect::<Vec<_>>();
    if !want_params {
        return;
    }
    let (g_parts, b_parts): (Vec<_>, Vec<_>) = partial.into_iter().unzip();
    for (target, parts) in [(dgamma, g_parts), (dbeta, b_parts)] {
        if let Some(target) = target {
            let mut sum = vec![0f32; cols];
            add_partials(&mut sum, parts);
            for (a, p) in target.iter_mut().zip(sum) {
                *a += p;
            }
        }
    }
}

/// Applies an activation in place.
pub fn activation(x: &mut [f32], act: Activation) {
    x.par_chunks_mut(16_384).for_each(|c| match act {
        Activation::Gelu => c.iter_mut().for_each(|v| *v = math::gelu(*v)),
        Activation::GeluTanh => c.iter_mut().for_each(|v| *v = math::gelu_tanh(*v)),
        Activation::Relu => c.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Silu => c.iter_mut().for_each(|v| *v *= math::sigmoid(*v)),
        Activation::Tanh => c.iter_mut().for_each(|v| *v = math::tanh(*v)),
    });
}

/// `grad ← grad · act'(pre)` in place, `pre` being the activation's input.
pub fn activation_backward(grad: &mut [f32], pre: &[f32], act: Activation) {
    // One loop per activation, so each inner loop is branch-free and vectorises.
    fn apply(grad: &mut [f32], pre: &[f32], derivative: impl Fn(f32) -> f32 + Sync) {
        grad.par_chunks_mut(16_384)
            .zip(pre.par_chunks(16_384))
            .for_each(|(g, p)| g.iter_mut().zip(p).for_each(|(g, &x)| *g *= derivative(x)));
    }
    match act {
        Activation::Gelu => apply(grad, pre, math::gelu_grad),
        Activation::GeluTanh => apply(grad, pre, math::gelu_tanh_grad),
        Activation::Relu => apply(grad, pre, |x| if x > 0.0 { 1.0 } else { 0.0 }),
        Activation::Silu => apply(grad, pre, |x| {
            let s = math::sigmoid(x);
            s * (1.0 + x * (1.0 - s))
        }),
        Activation::Tanh => apply(grad, pre, |x| {
            let t = math::tanh(x);
            1.0 - t * t
        }),
    }
}

/// An inverted-dropout mask: 0 (dropped) or 1 (kept) per value; kept values are scaled by
/// `1 / (1 − p)` where the mask is applied. Empty when `p` is 0.
#[derive(Default, Clone)]
pub struct DropMask {
    keep: Vec<u8>,
    scale: f32,
}

impl DropMask {
    /// Draws a mask for `n` values (16-bit resolution of `p`), or none when `p` ≤ 0.
    pub fn draw(rng: &mut HoneRng, n: usize, p: f64) -> Self {
        if p <= 0.0 {
            return DropMask::default();
        }
        let threshold = (p * 65_536.0).round() as u64;
        let mut keep = vec![0u8; n.div_ceil(4) * 4];
        for quad in keep.chunks_exact_mut(4) {
            let bits = rng.next_u64();
            for (s, k) in quad.iter_mut().enumerate() {
                *k = u8::from((bits >> (16 * s)) & 0xFFFF >= threshold);
            }
        }
        keep.truncate(n);
        DropMask {
            keep,
            scale: (1.0 / (1.0 - p)) as f32,
        }
    }

    /// The keep flags (1 kept, 0 dropped), one per value; empty when nothing is dropped.
    pub fn keep(&self) -> &[u8] {
        &self.keep
    }

    /// The factor kept values are scaled by, `1 / (1 − p)`.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// True when nothing is dropped.
    pub fn is_identity(&self) -> bool {
        self.keep.is_empty()
    }

    /// `x ← x · mask · scale` in place (also the backward of itself).
    pub fn apply(&self, x: &mut [f32]) {
        if self.is_identity() {
            return;
        }
        let s = self.scale;
        x.par_chunks_mut(16_384)
            .zip(self.keep.par_chunks(16_384))
            .for_each(|(x, k)| {
                for (v, &k) in x.iter_mut().zip(k) {
                    *v *= k as f32 * s;
                }
            });
    }

    /// `out ← x · mask · scale + residual`.
    pub fn apply_add(&self, x: &mut [f32], residual: &[f32]) {
        let s = self.scale;
        let identity = self.is_identity();
        x.par_chunks_mut(16_384)
            .zip(residual.par_chunks(16_384))
            .enumerate()
            .for_each(|(i, (x, r))| {
                if identity {
                    for (v, r) in x.iter_mut().zip(r) {
                        *v += r;
                    }
                } else {
                    let k = &self.keep[i * 16_384..];
                    for ((v, r), &k) in x.iter_mut().zip(r).zip(k) {
                        *v = *v * k as f32 * s + r;
                    }
                }
            });
    }

    /// The keep flag of value `i` times the scale (1 when there is no mask).
    #[inline]
    pub fn factor(&self, i: usize) -> f32 {
        if self.is_identity() {
            1.0
        } else {
            self.keep[i] as f32 * self.scale
        }
    }

    /// `out[i] = x[i] · factor(offset + i)`: the masked copy of a block that starts at
    /// `offset` in the masked buffer.
    pub fn apply_block(&self, out: &mut [f32], x: &[f32], offset: usize) {
        if self.is_identity() {
            out.copy_from_slice(x);
            return;
        }
        let s = self.scale;
        for ((o, &v), &k) in out.iter_mut().zip(x).zip(&self.keep[offset..]) {
            *o = v * k as f32 * s;
        }
    }
}

/// Cross-entropy of `logits` `[rows × classes]` against `labels` (one per row; rows labeled
/// [`crate::graph::IGNORE_LABEL`] take no loss), with label smoothing `smoothing` (ε: the
/// target is `1 − ε` on the label plus `ε / classes` everywhere, as transformers'
/// `LabelSmoother` and torch's `label_smoothing`; 0 is plain cross-entropy): returns the
/// summed loss and writes `dlogits = (softmax − target) · scale` (zero on ignored rows).
/// `scale` is 1 / the number of labeled rows for a mean.
pub fn cross_entropy(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
    scale: f64,
    smoothing: f64,
    dlogits: &mut [f32],
) -> f64 {
    let mut loss = 0f64;
    let spread = smoothing / classes.max(1) as f64;
    for ((row, d), &y) in logits
        .chunks_exact(classes)
        .zip(dlogits.chunks_exact_mut(classes))
        .zip(labels)
    {
        if y == crate::graph::IGNORE_LABEL {
            d.fill(0.0);
            continue;
        }
        let log_sum = log_sum_exp(row);
        loss += smoothed_nll(row, y as usize, log_sum, smoothing);
        for (j, (o, &v)) in d.iter_mut().zip(row).enumerate() {
            let p = (v as f64 - log_sum).exp();
            let target = spread
                + if j == y as usize {
                    1.0 - smoothing
                } else {
                    0.0
                };
            *o = ((p - target) * scale) as f32;
        }
    }
    loss
}

/// `log Σ exp(row)`, in f64 from the row's largest value (NaN when the row holds one).
pub fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    sum.ln() + max
}

/// `−Σ target · log softmax(row)` for the smoothed target of [`cross_entropy`], given the
/// row's log-sum-exp: `log_sum − (1 − ε)·row[label] − ε·mean(row)`.
pub fn smoothed_nll(row: &[f32], label: usize, log_sum: f64, smoothing: f64) -> f64 {
    let nll = log_sum - row[label] as f64;
    if smoothing == 0.0 {
        return nll;
    }
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / row.len() as f64;
    (1.0 - smoothing) * nll + smoothing * (log_sum - mean)
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;

    fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = HoneRng::new(seed, 5);
        rng.normal(n, 1.0)
    }

    /// Central finite difference of a scalar function of one input value.
    fn fd<F: Fn(&[f32]) -> f64>(f: F, x: &[f32], i: usize) -> f64 {
        let h = 1e-2f32;
        let mut a = x.to_vec();
        a[i] += h;
        let up = f(&a);
        a[i] -= 2.0 * h;
        let down = f(&a);
        (up - down) / (2.0 * h as f64)
    }

    #[test]
    fn layer_norm_backward_matches_finite_differences() {
        let (rows, cols) = (3, 8);
        let x = rand_vec(rows * cols, 1);
        let gamma = rand_vec(cols, 2);
        let beta = rand_vec(cols, 3);
        let w = rand_vec(rows * cols, 4); // loss = Σ w ⊙ y
        let loss = |x: &[f32], g: &[f32], b: &[f32]| {
            let mut y = vec![0f32; rows * cols];
            layer_norm(&mut y, x, g, b, 1e-5, cols, &mut NormStats::default());
            y.iter().zip(&w).map(|(a, b)| (a * b) as f64).sum::<f64>()
        };
        let mut y = vec![0f32; rows * cols];
        let mut stats = NormStats::default();
        layer_norm(&mut y, &x, &gamma, &beta, 1e-5, cols, &mut stats);
        let (mut dx, mut dg, mut db) =
            (vec![0f32; rows * cols], vec![0f32; cols], vec![0f32; cols]);
        layer_norm_backward(
            &mut dx,
            &w,
            &x,
            &gamma,
            &stats,
            cols,
            Some(&mut dg),
            Some(&mut db),
        );
        for i in 0..rows * cols {
            let want = fd(|x| loss(x, &gamma, &beta), &x, i);
            assert!(
                (dx[i] as f64 - want).abs() < 2e-3,
                "dx[{i}] {} vs {want}",
                dx[i]
            );
        }
        for j in 0..cols {
            let want = fd(|g| loss(&x, g, &beta), &gamma, j);
            assert!((dg[j] as f64 - want).abs() < 2e-3, "dgamma[{j}]");
            let want = fd(|b| loss(&x, &gamma, b), &beta, j);
            assert!((db[j] as f64 - want).abs() < 2e-3, "dbeta[{j}]");
        }
    }

    #[test]
    fn activation_backwards_match_finite_differences() {
        for act in [
            Activation::Gelu,
            Activation::GeluTanh,
            Activation::Relu,
            Activation::Silu,
        ] {
            let x = rand_vec(50, 7);
            let mut grad = vec![1f32; 50];
            activation_backward(&mut grad, &x, act);
            for i in 0..50 {
                if act == Activation::Relu && x[i].abs() < 0.02 {
                    continue;
                }
                let want = fd(
                    |x| {
                        let mut y = x.to_vec();
                        activation(&mut y, act);
                        y.iter().map(|&v| v as f64).sum()
                    },
                    &x,
                    i,
                );
                assert!((grad[i] as f64 - want).abs() < 2e-3, "{act:?} at {}", x[i]);
            }
        }
    }

    #[test]
    fn cross_entropy_gradient_matches_finite_differences() {
        let logits = rand_vec(12, 9);
        // The second row is ignored: no loss, no gradient; the mean is over the other two.
        let labels = [2u32, crate::graph::IGNORE_LABEL, 3];
        for smoothing in [0.0, 0.1] {
            let mut d = vec![0f32; 12];
            let loss = cross_entropy(&logits, &labels, 4, 0.5, smoothing, &mut d) * 0.5;
            assert!(loss > 0.0);
            assert!(d[4..8].iter().all(|&v| v == 0.0));
            for i in 0..12 {
                let want = fd(
                    |l| cross_entropy(l, &labels, 4, 0.5, smoothing, &mut [0f32; 12]) * 0.5,
                    &logits,
                    i,
                );
                assert!((d[i] as f64 - want).abs() < 1e-3, "ε {smoothing}: {i}");
            }
        }
    }

    #[test]
    fn label_smoothing_is_the_smoothed_targets_cross_entropy() {
        let row = [0.5f32, -1.0, 2.0, 0.25, 1.5];
        let log_sum = row.iter().map(|&v| (v as f64).exp()).sum::<f64>().ln();
        let eps = 0.2;
        let want: f64 = row
            .iter()
            .enumerate()
            .map(|(j, &v)| {
                let target = eps / 5.0 + if j == 2 { 1.0 - eps } else { 0.0 };
                -target * (v as f64 - log_sum)
            })
            .sum();
        let mut d = [0f32; 5];
        let got = cross_entropy(&row, &[2], 5, 1.0, eps, &mut d);
        assert!((got - want).abs() < 1e-12, "{got} {want}");
        assert!(d.iter().map(|&g| g as f64).sum::<f64>().abs() < 1e-6);
    }

    #[test]
    fn dropout_masks_are_seeded_and_scaled() {
        let a = DropMask::draw(&mut HoneRng::new(1, 1), 100_000, 0.1);
        let b = DropMask::draw(&mut HoneRng::new(1, 1), 100_000, 0.1);
        assert!(a.keep == b.keep);
        let kept = a.keep.iter().filter(|&&k| k == 1).count() as f64 / 1e5;
        assert!((kept - 0.9).abs() < 0.005, "{kept}");
        let mut x = vec![1f32; 100_000];
        a.apply(&mut x);
        assert!(x.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.9).abs() < 1e-6));
        let mut y = vec![2f32; 100_000];
        a.apply_add(&mut y, &vec![1f32; 100_000]);
        assert!((y[5] - (2.0 * a.factor(5) + 1.0)).abs() < 1e-6);
        assert!(DropMask::draw(&mut HoneRng::new(1, 1), 10, 0.0).is_identity());
    }

    #[test]
    fn column_sums_add_up() {
        let m: Vec<f32> = (0..40_000).map(|i| (i % 7) as f32).collect();
        let mut acc = vec![1f32; 4];
        add_column_sums(&mut acc, &m, 4);
        let want: Vec<f32> = (0..4)
            .map(|j| 1.0 + (0..10_000).map(|r| ((r * 4 + j) % 7) as f32).sum::<f32>())
            .collect();
        assert_eq!(acc, want);
    }
}
