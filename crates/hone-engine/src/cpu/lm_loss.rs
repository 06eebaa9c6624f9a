//! A language model's output layer and its cross-entropy in one pass over chunks of the
//! learned tokens: the `[tokens × vocabulary]` logits and their gradient are never held whole
//! (for a 151,936-word vocabulary and 2,048 tokens each would be 1.2 GiB), and the tokens that
//! are not learned (a prompt, padding) get no logits at all.

use rayon::prelude::*;

use super::bf16::WeightPackings;
use super::gemm::{linear, linear_backward, Products};
use super::kernels::smoothed_nll;
use crate::graph::IGNORE_LABEL;

/// Logits per chunk are kept under this many bytes.
pub const CHUNK_BYTES: usize = 32 << 20;

/// Work buffers of [`lm_head_loss`] (a chunk's rows, logits and row gradients), kept by the
/// caller so that steps reuse them instead of faulting in fresh pages.
#[derive(Default)]
pub struct LmScratch {
    pub rows: Vec<f32>,
    pub logits: Vec<f32>,
    pub d_rows: Vec<f32>,
}

/// The output layer `weight` (`[vocab × hidden]`, no bias) over the rows of `hidden` whose
/// label is not [`IGNORE_LABEL`], with the cross-entropy against those labels. Returns the
/// summed loss; writes `d_hidden` (every row: zero where not learned) and adds to `d_weight`
/// (when the layer trains) the gradients of `scale ×` that sum. `smoothing` is label
/// smoothing's ε ([`super::kernels::cross_entropy`]). The products run in `products`, from
/// `packed` where it holds them (a frozen layer's packings, kept across steps).
#[allow(clippy::too_many_arguments)]
pub fn lm_head_loss(
    hidden: &[f32],
    hidden_size: usize,
    weight: &[f32],
    vocab: usize,
    labels: &[u32],
    scale: f64,
    smoothing: f64,
    d_hidden: &mut [f32],
    mut d_weight: Option<&mut [f32]>,
    scratch: &mut LmScratch,
    products: Products,
    packed: &WeightPackings,
) -> f64 {
    d_hidden.fill(0.0);
    let learned: Vec<usize> = (0..labels.len())
        .filter(|&r| labels[r] != IGNORE_LABEL)
        .collect();
    let chunk = (CHUNK_BYTES / (4 * vocab.max(1))).clamp(8, 1024);
    let rows = chunk.min(learned.len());
    let grow = |v: &mut Vec<f32>, n: usize| {
        if v.len() < n {
            v.resize(n, 0.0);
        }
    };
    grow(&mut scratch.rows, rows * hidden_size);
    grow(&mut scratch.logits, rows * vocab);
    grow(&mut scratch.d_rows, rows * hidden_size);
    let (x, logits, dx) = (&mut scratch.rows, &mut scratch.logits, &mut scratch.d_rows);
    let mut loss = 0f64;
    for block in learned.chunks(chunk) {
        let n = block.len();
        for (dst, &r) in x.chunks_exact_mut(hidden_size).zip(block) {
            dst.copy_from_slice(&hidden[r * hidden_size..(r + 1) * hidden_size]);
        }
        let (x, logits, dx) = (
            &x[..n * hidden_size],
            &mut logits[..n * vocab],
            &mut dx[..n * hidden_size],
        );
        linear(
            logits,
            x,
            n,
            weight,
            None,
            hidden_size,
            vocab,
            products,
            packed.forward.as_deref(),
        );
        loss += logits
            .par_chunks_mut(vocab)
            .zip(block.par_iter())
            .map(|(row, &r)| softmax_cross_entropy(row, labels[r] as usize, scale, smoothing))
            .sum::<f64>();
        linear_backward(
            logits,
            x,
            n,
            weight,
            hidden_size,
            vocab,
            Some((dx, false)),
            d_weight.as_deref_mut(),
            None,
            products,
            packed.backward.as_deref(),
        );
        for (src, &r) in dx.chunks_exact(hidden_size).zip(block) {
            d_hidden[r * hidden_size..(r + 1) * hidden_size].copy_from_slice(src);
        }
    }
    loss
}

/// The loss of one row of logits against `label` (label-smoothed by `smoothing`); the row
/// becomes its gradient × `scale`.
fn softmax_cross_entropy(row: &mut [f32], label: usize, scale: f64, smoothing: f64) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let sum: f64 = row.iter().map(|&v| (v - max).exp() as f64).sum();
    let log_sum = sum.ln() + max as f64;
    let loss = smoothed_nll(row, label, log_sum, smoothing);
    let (shift, s) = (log_sum as f32, scale as f32);
    let spread = (smoothing / row.len() as f64 * scale) as f32;
    for v in row.iter_mut() {
        *v = (*v - shift).exp() * s - spread;
    }
    row[label] -= ((1.0 - smoothing) * scale) as f32;
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::kernels::cross_entropy;

    /// The output layer then `kernels::cross_entropy`, whole: what the fused pass must equal.
    fn whole(
        hidden: &[f32],
        h: usize,
        w: &[f32],
        v: usize,
        labels: &[u32],
        scale: f64,
        smoothing: f64,
    ) -> Vec<f64> {
        let rows = labels.len();
        let mut logits = vec![0f32; rows * v];
        linear(
            &mut logits,
            hidden,
            rows,
            w,
            None,
            h,
            v,
            Products::F32,
            None,
        );
        let mut d = vec![0f32; rows * v];
        let loss = cross_entropy(&logits, labels, v, scale, smoothing, &mut d);
        let mut dx = vec![0f32; rows * h];
        let mut dw = vec![0f32; v * h];
        linear_backward(
            &d,
            hidden,
            rows,
            w,
            h,
            v,
            Some((&mut dx, false)),
            Some(&mut dw),
            None,
            Products::F32,
            None,
        );
        std::iter::once(loss)
            .chain(dx.iter().chain(&dw).map(|&g| g as f64))
            .collect()
    }

    #[test]
    fn chunks_give_the_whole_layer_and_loss() {
        let (h, v) = (6, 5_000);
        let mut seed = 7u64;
        let mut draw = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                })
                .collect()
        };
        let rows = 3_000; // several chunks of 1,677 rows
        let hidden = draw(rows * h);
        let w = draw(v * h);
        let labels: Vec<u32> = (0..rows)
            .map(|r| {
                if r % 3 == 0 {
                    IGNORE_LABEL
                } else {
                    (r * 37 % v) as u32
                }
            })
            .collect();
        let scale = 1.0 / 2_000.0;
        for smoothing in [0.0, 0.1] {
            let want = whole(&hidden, h, &w, v, &labels, scale, smoothing);
            let mut dx = vec![1f32; rows * h];
            let mut dw = vec![0f32; v * h];
            let mut scratch = LmScratch::default();
            let loss = lm_head_loss(
                &hidden,
                h,
                &w,
                v,
                &labels,
                scale,
                smoothing,
                &mut dx,
                Some(&mut dw),
                &mut scratch,
                Products::F32,
                &WeightPackings::default(),
            );
            assert!(
                (loss - want[0]).abs() < 1e-6 * want[0],
                "ε {smoothing}: {loss} {}",
                want[0]
            );
            for (i, (got, want)) in dx.iter().chain(&dw).zip(&want[1..]).enumerate() {
                assert!(
                    (*got as f64 - want).abs() < 1e-6,
                    "ε {smoothing}, {i}: {got} {want}"
                );
            }
            assert!(
                dx[..h].iter().all(|&g| g == 0.0),
                "an ignored row has no gradient"
            );
        }
    }
}
