//! The kernels decoder LMs add (Llama and its relatives), each with its backward: RMS
//! normalisation, rotary position embeddings and the gated feed-forward product.

use rayon::prelude::*;

use super::kernels::{activation, activation_backward, add_partials, rows_per_task};
use super::math;
use crate::ops::Activation;

/// `y = x / √(mean(x²) + eps) · gamma` per row of `x` (`cols` wide); `rstd` receives each
/// row's `1 / √(mean(x²) + eps)` for the backward.
pub fn rms_norm(
    y: &mut [f32],
    x: &[f32],
    gamma: &[f32],
    eps: f32,
    cols: usize,
    rstd: &mut Vec<f32>,
) {
    let rows = x.len() / cols;
    rstd.resize(rows, 0.0);
    let chunk = rows_per_task(rows, cols);
    y.par_chunks_mut(chunk * cols)
        .zip(x.par_chunks(chunk * cols))
        .zip(rstd.par_chunks_mut(chunk))
        .for_each(|((yb, xb), rb)| {
            for ((yr, xr), r) in yb.chunks_exact_mut(cols).zip(xb.chunks_exact(cols)).zip(rb) {
                let ms = math::dot(xr, xr) / cols as f32;
                *r = 1.0 / (ms + eps).sqrt();
                for ((o, v), g) in yr.iter_mut().zip(xr).zip(gamma) {
                    *o = v * *r * g;
                }
            }
        });
}

/// Backward of [`rms_norm`]: writes `dx`, adds to `dgamma` when given.
pub fn rms_norm_backward(
    dx: &mut [f32],
    dy: &[f32],
    x: &[f32],
    gamma: &[f32],
    rstd: &[f32],
    cols: usize,
    dgamma: Option<&mut [f32]>,
) {
    let rows = x.len() / cols;
    let chunk = rows_per_task(rows, cols);
    let parts: Vec<Vec<f32>> = dx
        .par_chunks_mut(chunk * cols)
        .zip(dy.par_chunks(chunk * cols))
        .zip(x.par_chunks(chunk * cols))
        .zip(rstd.par_chunks(chunk))
        .map(|(((dxb, dyb), xb), rb)| {
            let mut dg = vec![0f32; cols];
            for (((dxr, dyr), xr), &r) in dxb
                .chunks_exact_mut(cols)
                .zip(dyb.chunks_exact(cols))
                .zip(xb.chunks_exact(cols))
                .zip(rb)
            {
                // y = g·x·r:  dx = r·(g·dy) − x·r³·mean(g·dy·x)
                let mut dot = 0f32;
                for (((d, &dyv), &xv), &g) in dxr.iter_mut().zip(dyr).zip(xr).zip(gamma) {
                    *d = dyv * g;
                    dot += *d * xv;
                }
                let c = dot / cols as f32 * r * r * r;
                for ((d, &xv), (acc, &dyv)) in dxr.iter_mut().zip(xr).zip(dg.iter_mut().zip(dyr)) {
                    *acc += dyv * xv * r;
                    *d = *d * r - xv * c;
                }
            }
            dg
        })
        .collect();
    if let Some(target) = dgamma {
        add_partials(target, parts);
    }
}

/// Rotary position embeddings, as `transformers`' `apply_rotary_pos_emb` (the "rotate half"
/// layout): per head, feature `j < d/2` and `j + d/2` turn by the angle `position · freq[j]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RotaryTable {
    /// `[tokens × d/2]` cosines and sines of each token's angles.
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl RotaryTable {
    /// The angles of `positions` for the inverse frequencies `inv_freq` (`d/2` of them),
    /// scaled by `attention_scaling` as some rope types ask.
    pub fn new(positions: &[u32], inv_freq: &[f32], attention_scaling: f32) -> Self {
        let half = inv_freq.len();
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            for &f in inv_freq {
                // As transformers: the angle is computed in f32, then cos/sin.
                let angle = p as f32 * f;
                cos.push(angle.cos() * attention_scaling);
                sin.push(angle.sin() * attention_scaling);
            }
        }
        RotaryTable { cos, sin, half }
    }

    /// The `[tokens × d/2]` cosines and sines.
    pub fn cos_sin(&self) -> (&[f32], &[f32]) {
        (&self.cos, &self.sin)
    }

    /// Rotates every head of `x` (`[tokens × heads·d]`) in place; `inverse` turns the other
    /// way (the backward of a rotation is its transpose).
    pub fn apply(&self, x: &mut [f32], heads: usize, inverse: bool) {
        rotate(x, &self.cos, &self.sin, heads, self.half, inverse);
    }
}

/// Rotates every head of `x` (`[tokens × heads·2·half]`) in place by the angles whose cosines
/// and sines are `cos` and `sin` (`[tokens × half]`); `inverse` turns the other way. Also the
/// CPU side of the autograd graph's rotary op (`graph::rotary`).
pub fn rotate(x: &mut [f32], cos: &[f32], sin: &[f32], heads: usize, half: usize, inverse: bool) {
    let (h, width) = (half, heads * 2 * half);
    if width == 0 {
        return;
    }
    let sign = if inverse { -1.0 } else { 1.0 };
    x.par_chunks_mut(width)
        .zip(cos.par_chunks(h))
        .zip(sin.par_chunks(h))
        .for_each(|((row, cos), sin)| {
            for head in row.chunks_exact_mut(2 * h) {
                let (a, b) = head.split_at_mut(h);
                for j in 0..h {
                    let (x1, x2) = (a[j], b[j]);
                    let (c, s) = (cos[j], sign * sin[j]);
                    a[j] = x1 * c - x2 * s;
                    b[j] = x2 * c + x1 * s;
                }
            }
        });
}

/// `out = act(gate) · up`, elementwise (the SwiGLU feed-forward's product).
pub fn gated(out: &mut [f32], gate: &[f32], up: &[f32], act: Activation) {
    out.copy_from_slice(gate);
    activation(out, act);
    out.par_chunks_mut(16_384)
        .zip(up.par_chunks(16_384))
        .for_each(|(o, u)| o.iter_mut().zip(u).for_each(|(o, u)| *o *= u));
}

/// Backward of [`gated`]: `d_gate = dy · up · act'(gate)`, `d_up = dy · act(gate)`.
pub fn gated_backward(
    d_gate: &mut [f32],
    d_up: &mut [f32],
    dy: &[f32],
    gate: &[f32],
    up: &[f32],
    act: Activation,
) {
    d_up.copy_from_slice(gate);
    activation(d_up, act);
    d_up.par_chunks_mut(16_384)
        .zip(dy.par_chunks(16_384))
        .for_each(|(o, d)| o.iter_mut().zip(d).for_each(|(o, d)| *o *= d));
    d_gate
        .par_chunks_mut(16_384)
        .zip(dy.par_chunks(16_384).zip(up.par_chunks(16_384)))
        .for_each(|(o, (d, u))| {
            o.iter_mut()
                .zip(d.iter().zip(u))
                .for_each(|(o, (d, u))| *o = d * u)
        });
    activation_backward(d_gate, gate, act);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::HoneRng;

    fn numeric(f: impl Fn(&[f32]) -> f64, x: &[f32], i: usize) -> f64 {
        let h = 1e-2f32;
        let mut a = x.to_vec();
        a[i] += h;
        let up = f(&a);
        a[i] -= 2.0 * h;
        (up - f(&a)) / (2.0 * h as f64)
    }

    #[test]
    fn rms_norm_backward_matches_finite_differences() {
        let mut rng = HoneRng::new(1, 1);
        let (rows, cols) = (3, 5);
        let x = rng.normal(rows * cols, 1.0);
        let g = rng.normal(cols, 1.0);
        let w = rng.normal(rows * cols, 1.0);
        let loss = |x: &[f32], g: &[f32]| {
            let mut y = vec![0f32; x.len()];
            rms_norm(&mut y, x, g, 1e-6, cols, &mut Vec::new());
            y.iter().zip(&w).map(|(a, b)| (a * b) as f64).sum::<f64>()
        };
        let mut y = vec![0f32; x.len()];
        let mut rstd = Vec::new();
        rms_norm(&mut y, &x, &g, 1e-6, cols, &mut rstd);
        let mut dx = vec![0f32; x.len()];
        let mut dg = vec![0f32; cols];
        rms_norm_backward(&mut dx, &w, &x, &g, &rstd, cols, Some(&mut dg));
        for (i, &got) in dx.iter().enumerate() {
            let want = numeric(|a| loss(a, &g), &x, i);
            assert!((got as f64 - want).abs() < 2e-3, "dx[{i}] {got} vs {want}");
        }
        for (i, &got) in dg.iter().enumerate() {
            let want = numeric(|a| loss(&x, a), &g, i);
            assert!((got as f64 - want).abs() < 2e-3, "dg[{i}] {got} vs {want}");
        }
    }

    #[test]
    fn rotation_keeps_norms_and_its_inverse_undoes_it() {
        let mut rng = HoneRng::new(2, 2);
        let table = RotaryTable::new(&[0, 1, 7], &[1.0, 0.1], 1.0);
        let x = rng.normal(3 * 2 * 4, 1.0);
        let mut y = x.clone();
        table.apply(&mut y, 2, false);
        // Position 0 does not turn; the others keep each pair's length.
        assert_eq!(&y[..8], &x[..8]);
        let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>();
        assert!((norm(&y) - norm(&x)).abs() < 1e-4);
        assert_ne!(&y[8..], &x[8..]);
        table.apply(&mut y, 2, true);
        for (a, b) in y.iter().zip(&x) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn gated_backward_matches_finite_differences() {
        let mut rng = HoneRng::new(3, 3);
        let n = 7;
        let (g, u, w) = (rng.normal(n, 1.0), rng.normal(n, 1.0), rng.normal(n, 1.0));
        let loss = |g: &[f32], u: &[f32]| {
            let mut o = vec![0f32; n];
            gated(&mut o, g, u, Activation::Silu);
            o.iter().zip(&w).map(|(a, b)| (a * b) as f64).sum::<f64>()
        };
        let (mut dg, mut du) = (vec![0f32; n], vec![0f32; n]);
        gated_backward(&mut dg, &mut du, &w, &g, &u, Activation::Silu);
        for i in 0..n {
            assert!((dg[i] as f64 - numeric(|a| loss(a, &u), &g, i)).abs() < 2e-3);
            assert!((du[i] as f64 - numeric(|a| loss(&g, a), &u, i)).abs() < 2e-3);
        }
    }
}
