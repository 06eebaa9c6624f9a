//! Attention of each sequence's first token only (a classifier's last layer: its head reads
//! the first token alone, so the other tokens need keys and values but no output): per
//! sequence and head, `softmax(q·kᵀ/√d)·v` of one query over the sequence's tokens, dropout
//! on the probabilities; and its backward pass.

use rayon::prelude::*;

use super::kernels::DropMask;
use super::math;
use crate::graph::Span;

/// The probabilities of a forward pass (before dropout) and its dropout mask, both laid out
/// sequence by sequence, head by head, a row of the sequence's length each.
pub struct FirstTokenSaved {
    pub probs: Vec<f32>,
    pub mask: DropMask,
}

/// Where each (sequence, head)'s row of probabilities starts.
fn offsets(spans: &[Span], heads: usize) -> Vec<usize> {
    let mut at = 0;
    spans
        .iter()
        .flat_map(|s| std::iter::repeat_n(s.len, heads))
        .map(|len| {
            let start = at;
            at += len;
            start
        })
        .collect()
}

/// `out` `[sequences × hidden]`: each sequence's query row of `q` (`[sequences × hidden]`)
/// attending to its tokens' rows of `k` and `v` (`[tokens × hidden]`) over `heads` heads,
/// dropout `mask` on the probabilities. Returns what the backward pass needs.
pub fn forward(
    out: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    spans: &[Span],
    heads: usize,
    mask: DropMask,
) -> FirstTokenSaved {
    let hidden = q.len() / spans.len().max(1);
    let d = hidden / heads.max(1);
    let scale = 1.0 / (d as f32).sqrt();
    let total: usize = spans.iter().map(|s| s.len).sum::<usize>() * heads;
    let starts = offsets(spans, heads);
    let mut probs = vec![0f32; total];
    let mut rows: Vec<&mut [f32]> = Vec::with_capacity(starts.len());
    let mut rest = &mut probs[..];
    for s in spans {
        for _ in 0..heads {
            let (row, tail) = rest.split_at_mut(s.len);
            rows.push(row);
            rest = tail;
        }
    }
    let keep = mask.keep();
    let kept = mask.scale();
    out.par_chunks_mut(d)
        .zip(rows.into_par_iter())
        .enumerate()
        .for_each(|(at, (ctx, p))| {
            let (seq, head) = (at / heads, at % heads);
            let span = spans[seq];
            let query = &q[seq * hidden + head * d..][..d];
            for (j, score) in p.iter_mut().enumerate() {
                let key = &k[(span.start + j) * hidden + head * d..][..d];
                *score = math::dot(query, key) * scale;
            }
            let max = p.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            p.iter_mut().for_each(|s| *s = math::exp(*s - max));
            let inv = 1.0 / math::sum(p);
            p.iter_mut().for_each(|s| *s *= inv);
            ctx.fill(0.0);
            let row_keep = (!keep.is_empty()).then(|| &keep[starts[at]..][..span.len]);
            for (j, &pj) in p.iter().enumerate() {
                let w = match row_keep {
                    Some(keep) => pj * f32::from(keep[j]) * kept,
                    None => pj,
                };
                let value = &v[(span.start + j) * hidden + head * d..][..d];
                ctx.iter_mut().zip(value).for_each(|(o, x)| *o += w * x);
            }
        });
    FirstTokenSaved { probs, mask }
}

/// The gradients of [`forward`]: `dq` (`[sequences × hidden]`), `dk` and `dv` (`[tokens ×
/// hidden]`, written whole: zero outside the spans) from `dy`, the gradient of its output.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    dy: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    spans: &[Span],
    heads: usize,
    saved: &FirstTokenSaved,
) {
    let hidden = q.len() / spans.len().max(1);
    let d = hidden / heads.max(1);
    let scale = 1.0 / (d as f32).sqrt();
    let starts = offsets(spans, heads);
    let keep = saved.mask.keep();
    let kept = saved.mask.scale();
    dk.fill(0.0);
    dv.fill(0.0);
    // Each sequence's key and value gradients, computed apart and then put in place.
    let per_sequence: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = spans
        .par_iter()
        .enumerate()
        .map(|(seq, span)| {
            let (mut dqs, mut dks, mut dvs) = (
                vec![0f32; hidden],
                vec![0f32; span.len * hidden],
                vec![0f32; span.len * hidden],
            );
            for head in 0..heads {
                let at = seq * heads + head;
                let p = &saved.probs[starts[at]..][..span.len];
                let row_keep = (!keep.is_empty()).then(|| &keep[starts[at]..][..span.len]);
                let dctx = &dy[seq * hidden + head * d..][..d];
                let query = &q[seq * hidden + head * d..][..d];
                // ∂/∂p_j through the dropped weights, then through the softmax.
                let dp: Vec<f32> = (0..span.len)
                    .map(|j| {
                        let value = &v[(span.start + j) * hidden + head * d..][..d];
                        let m = row_keep.map_or(1.0, |keep| f32::from(keep[j]) * kept);
                        let w = p[j] * m;
                        dvs[j * hidden + head * d..][..d]
                            .iter_mut()
                            .zip(dctx)
                            .for_each(|(g, x)| *g += w * x);
                        math::dot(dctx, value) * m
                    })
                    .collect();
                let mean: f32 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
                let dq_head = &mut dqs[head * d..][..d];
                for j in 0..span.len {
                    let ds = p[j] * (dp[j] - mean) * scale;
                    let key = &k[(span.start + j) * hidden + head * d..][..d];
                    dq_head.iter_mut().zip(key).for_each(|(g, x)| *g += ds * x);
                    dks[j * hidden + head * d..][..d]
                        .iter_mut()
                        .zip(query)
                        .for_each(|(g, x)| *g += ds * x);
                }
            }
            (dqs, dks, dvs)
        })
        .collect();
    for ((span, (dqs, dks, dvs)), dq_row) in spans
        .iter()
        .zip(per_sequence)
        .zip(dq.chunks_exact_mut(hidden))
    {
        dq_row.copy_from_slice(&dqs);
        dk[span.start * hidden..][..span.len * hidden].copy_from_slice(&dks);
        dv[span.start * hidden..][..span.len * hidden].copy_from_slice(&dvs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::HoneRng;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        HoneRng::new(seed, 3).normal(n, 1.0)
    }

    /// Σ out · w for fixed weights `w`: a scalar whose gradient is `w` pushed back.
    fn loss(q: &[f32], k: &[f32], v: &[f32], spans: &[Span], w: &[f32], p: f64) -> f64 {
        let mut out = vec![0f32; q.len()];
        let mask = DropMask::draw(&mut HoneRng::new(5, 5), total(spans), p);
        forward(&mut out, q, k, v, spans, 2, mask);
        out.iter().zip(w).map(|(a, b)| (a * b) as f64).sum()
    }

    fn total(spans: &[Span]) -> usize {
        spans.iter().map(|s| s.len).sum::<usize>() * 2
    }

    #[test]
    fn equals_full_attention_read_at_the_first_tokens_and_gradients_match_finite_differences() {
        let spans = [Span { start: 0, len: 3 }, Span { start: 3, len: 5 }];
        let (hidden, tokens) = (8, 8);
        let (k, v) = (values(tokens * hidden, 1), values(tokens * hidden, 2));
        let full_q = values(tokens * hidden, 3);
        // The first tokens' queries.
        let q: Vec<f32> = spans
            .iter()
            .flat_map(|s| full_q[s.start * hidden..][..hidden].to_vec())
            .collect();
        // Full attention over every token, read at the first tokens.
        let shape = crate::cpu::attention::AttentionShape {
            heads: 2,
            kv_heads: 2,
            head_dim: 4,
            causal: false,
        };
        let mut full = vec![0f32; tokens * hidden];
        let mut saved =
            crate::cpu::attention::AttentionSaved::with_buffer(vec![0f32; (9 + 25) * 2]);
        crate::cpu::attention::forward(
            &mut full,
            &full_q,
            &k,
            &v,
            &spans,
            shape,
            0.0,
            &mut HoneRng::new(0, 0),
            &mut saved,
            None,
        );
        let mut out = vec![0f32; q.len()];
        forward(&mut out, &q, &k, &v, &spans, 2, DropMask::default());
        for (s, row) in spans.iter().zip(out.chunks_exact(hidden)) {
            for (a, b) in row.iter().zip(&full[s.start * hidden..][..hidden]) {
                assert!((a - b).abs() < 1e-5, "{a} {b}");
            }
        }
        for p in [0.0, 0.3] {
            let w = values(q.len(), 9);
            let mask = DropMask::draw(&mut HoneRng::new(5, 5), total(&spans), p);
            let mut out = vec![0f32; q.len()];
            let saved = forward(&mut out, &q, &k, &v, &spans, 2, mask);
            let (mut dq, mut dk, mut dv) = (
                vec![0f32; q.len()],
                vec![1f32; k.len()],
                vec![1f32; v.len()],
            );
            backward(&mut dq, &mut dk, &mut dv, &w, &q, &k, &v, &spans, 2, &saved);
            let eps = 1e-2f32;
            for (which, grad) in [(0, &dq), (1, &dk), (2, &dv)] {
                for i in 0..grad.len() {
                    let mut inputs = [q.clone(), k.clone(), v.clone()];
                    inputs[which][i] += eps;
                    let up = loss(&inputs[0], &inputs[1], &inputs[2], &spans, &w, p);
                    inputs[which][i] -= 2.0 * eps;
                    let down = loss(&inputs[0], &inputs[1], &inputs[2], &spans, &w, p);
                    let want = (up - down) / (2.0 * eps as f64);
                    assert!(
                        (grad[i] as f64 - want).abs() < 2e-3,
                        "p {p}, input {which}, {i}: {} vs {want}",
                        grad[i]
                    );
                }
            }
        }
    }
}
