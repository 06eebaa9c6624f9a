//! T5's attention over packed sequences (`Graph::biased_attention` on the CPU): unscaled
//! scores plus a learned position bias, self-attention (causal or not) or cross-attention from
//! one stream's sequences to another's. Each (sequence, head) pair is an independent task run
//! in parallel; the probabilities are kept for the backward pass.

use rayon::prelude::*;

use super::attention::Cached;
use super::gemm::{matmul_into_raw, MatRef};
use super::kernels::DropMask;
use super::math;
use crate::graph::Span;
use crate::rng::HoneRng;

/// A raw pointer tasks share to write disjoint blocks of one buffer.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: every task writes blocks no other task touches (see the callers).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// Shape of a call: multi-head, queries, keys and values all `heads × head_dim` wide.
#[derive(Debug, Clone, Copy)]
pub struct BiasedShape {
    pub heads: usize,
    pub head_dim: usize,
    /// Each query looks at itself and earlier keys only (self-attention).
    pub causal: bool,
}

impl BiasedShape {
    fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// The position bias of a call: the `[buckets × heads]` table and the bucket of each
/// distance (`BiasBuckets::all`: entry `key − query + longest − 1`).
pub struct BiasTerms<'a> {
    pub table: &'a [f32],
    pub buckets: &'a [usize],
}

impl BiasTerms<'_> {
    fn longest(&self) -> usize {
        self.buckets.len().div_ceil(2)
    }

    /// The bucket of query `i` and key `j`.
    fn bucket(&self, i: usize, j: usize) -> usize {
        self.buckets[j + self.longest() - 1 - i]
    }
}

/// What the forward pass keeps for the backward pass.
#[derive(Default)]
pub struct BiasedSaved {
    /// Softmax probabilities before dropout, one `queries × keys` block per (sequence,
    /// head), in the first `probs_len` values (the buffer may be longer: it is reused).
    probs: Vec<f32>,
    probs_len: usize,
    mask: DropMask,
}

impl BiasedSaved {
    /// Saved state that writes its probabilities into `buffer` (grown when too short).
    pub fn with_buffer(buffer: Vec<f32>) -> Self {
        BiasedSaved {
            probs: buffer,
            ..Default::default()
        }
    }

    /// The probability buffer, for reuse.
    pub fn into_buffer(self) -> Vec<f32> {
        self.probs
    }
}

/// One (sequence, head) pair.
#[derive(Clone, Copy)]
struct Task {
    q: Span,
    kv: Span,
    head: usize,
    /// Where its probability block (and dropout mask) starts.
    offset: usize,
}

fn tasks(q_spans: &[Span], kv_spans: &[Span], heads: usize) -> Vec<Task> {
    let mut out = Vec::with_capacity(q_spans.len() * heads);
    let mut offset = 0;
    for (&q, &kv) in q_spans.iter().zip(kv_spans) {
        for head in 0..heads {
            out.push(Task {
                q,
                kv,
                head,
                offset,
            });
            offset += q.len * kv.len;
        }
    }
    out
}

/// The probabilities a call over these spans keeps.
pub fn probabilities(q_spans: &[Span], kv_spans: &[Span], heads: usize) -> usize {
    q_spans
        .iter()
        .zip(kv_spans)
        .map(|(q, kv)| q.len * kv.len)
        .sum::<usize>()
        * heads
}

/// Head `head`'s block of a `[tokens × hidden]` buffer.
fn block(data: &[f32], span: Span, head: usize, shape: BiasedShape) -> MatRef<'_> {
    MatRef::strided(
        &data[span.start * shape.hidden() + head * shape.head_dim..],
        span.len,
        shape.head_dim,
        shape.hidden(),
    )
}

/// Checks what the parallel tasks' disjoint writes rely on: as many key as query spans,
/// each list non-empty, in order and inside its buffers; causal calls over equal spans.
fn check(
    q_spans: &[Span],
    kv_spans: &[Span],
    shape: BiasedShape,
    queries: &[usize],
    keys: &[usize],
) {
    assert!(
        shape.heads > 0 && shape.head_dim > 0,
        "attention needs heads"
    );
    assert_eq!(q_spans.len(), kv_spans.len(), "one key span per query span");
    let h = shape.hidden();
    for (spans, lens) in [(q_spans, queries), (kv_spans, keys)] {
        let tokens = lens[0] / h;
        assert!(
            lens.iter().all(|&n| n == tokens * h),
            "attention buffers must be tokens × heads·head size"
        );
        super::attention::check_spans(spans, tokens);
    }
    if shape.causal {
        assert!(
            q_spans.iter().zip(kv_spans).all(|(q, k)| q.len == k.len),
            "causal attention is a sequence's attention to itself"
        );
    }
}

/// `ctx = softmax(q·kᵀ + bias)·v` per sequence and head, dropout on the probabilities. `q`,
/// `ctx` are `[query tokens × hidden]` with sequences at `q_spans`; `k`, `v` `[key tokens ×
/// hidden]` at `kv_spans` (the same spans for self-attention).
#[allow(clippy::too_many_arguments)]
pub fn forward(
    ctx: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    q_spans: &[Span],
    kv_spans: &[Span],
    shape: BiasedShape,
    bias: Option<&BiasTerms>,
    dropout: f64,
    rng: &mut HoneRng,
    saved: &mut BiasedSaved,
) {
    check(
        q_spans,
        kv_spans,
        shape,
        &[q.len(), ctx.len()],
        &[k.len(), v.len()],
    );
    let hidden = shape.hidden();
    let total = probabilities(q_spans, kv_spans, shape.heads);
    if saved.probs.len() < total {
        saved.probs.resize(total, 0.0);
    }
    saved.probs_len = total;
    saved.mask = DropMask::draw(rng, total, dropout);
    let mask = &saved.mask;
    let out = Shared(ctx.as_mut_ptr());
    let probs = Shared(saved.probs.as_mut_ptr());
    tasks(q_spans, kv_spans, shape.heads)
        .par_iter()
        .for_each(|&task| {
            let (n, m) = (task.q.len, task.kv.len);
            // SAFETY: the probability blocks of different tasks are disjoint.
            let p = unsafe { std::slice::from_raw_parts_mut(probs.ptr().add(task.offset), n * m) };
            let qb = block(q, task.q, task.head, shape);
            // SAFETY: `p` is this task's own block.
            unsafe {
                matmul_into_raw(
                    p.as_mut_ptr(),
                    m,
                    qb,
                    block(k, task.kv, task.head, shape).t(),
                    false,
                )
            };
            for (i, row) in p.chunks_exact_mut(m).enumerate() {
                if let Some(b) = bias {
                    for (j, x) in row.iter_mut().enumerate() {
                        *x += b.table[b.bucket(i, j) * shape.heads + task.head];
                    }
                }
                let (seen, later) = row.split_at_mut(if shape.causal { i + 1 } else { m });
                later.fill(0.0);
                let max = seen.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                seen.iter_mut().for_each(|x| *x = math::exp(*x - max));
                let inv = 1.0 / math::sum(seen);
                seen.iter_mut().for_each(|x| *x *= inv);
            }
            let dropped: Vec<f32>;
            let used: &[f32] = if mask.is_identity() {
                p
            } else {
                dropped = p
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| x * mask.factor(task.offset + i))
                    .collect();
                &dropped
            };
            // SAFETY: rows of the query span, this head's columns: this task's only.
            unsafe {
                matmul_into_raw(
                    out.ptr()
                        .add(task.q.start * hidden + task.head * shape.head_dim),
                    hidden,
                    MatRef::new(used, n, m),
                    block(v, task.kv, task.head, shape),
                    false,
                )
            };
        });
}

/// Backward of [`forward`]: writes `dq`, `dk`, `dv` from `dctx`; with a bias, adds its
/// table's gradient (`[buckets × heads]`) into `dbias`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    dctx: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    q_spans: &[Span],
    kv_spans: &[Span],
    shape: BiasedShape,
    bias: Option<(&BiasTerms, &mut [f32])>,
    saved: &BiasedSaved,
) {
    check(
        q_spans,
        kv_spans,
        shape,
        &[q.len(), dq.len(), dctx.len()],
        &[k.len(), v.len(), dk.len(), dv.len()],
    );
    assert_eq!(
        saved.probs_len,
        probabilities(q_spans, kv_spans, shape.heads),
        "the saved probabilities belong to another batch"
    );
    let hidden = shape.hidden();
    let (terms, dbias) = bias.unzip();
    let (dq_p, dk_p, dv_p) = (
        Shared(dq.as_mut_ptr()),
        Shared(dk.as_mut_ptr()),
        Shared(dv.as_mut_ptr()),
    );
    let mask = &saved.mask;
    let run = |task: &Task| -> Option<(usize, Vec<f32>)> {
        let (n, m) = (task.q.len, task.kv.len);
        let p = &saved.probs[task.offset..task.offset + n * m];
        let (at_q, at_kv) = (
            task.q.start * hidden + task.head * shape.head_dim,
            task.kv.start * hidden + task.head * shape.head_dim,
        );
        let dctx_b = block(dctx, task.q, task.head, shape);
        let used: std::borrow::Cow<[f32]> = if mask.is_identity() {
            p.into()
        } else {
            p.iter()
                .enumerate()
                .map(|(i, &x)| x * mask.factor(task.offset + i))
                .collect::<Vec<_>>()
                .into()
        };
        let mut ds = vec![0f32; n * m];
        // SAFETY: each task writes only its own (rows, head columns) blocks of dq, dk and
        // dv; `ds` is local.
        unsafe {
            matmul_into_raw(
                dv_p.ptr().add(at_kv),
                hidden,
                MatRef::new(&used, n, m).t(),
                dctx_b,
                false,
            );
            matmul_into_raw(
                ds.as_mut_ptr(),
                m,
                dctx_b,
                block(v, task.kv, task.head, shape).t(),
                false,
            );
        }
        if !mask.is_identity() {
            ds.iter_mut()
                .enumerate()
                .for_each(|(i, d)| *d *= mask.factor(task.offset + i));
        }
        super::attention::softmax_rows_backward(&mut ds, p, m, 1.0);
        // SAFETY: as above.
        unsafe {
            matmul_into_raw(
                dq_p.ptr().add(at_q),
                hidden,
                MatRef::new(&ds, n, m),
                block(k, task.kv, task.head, shape),
                false,
            );
            matmul_into_raw(
                dk_p.ptr().add(at_kv),
                hidden,
                MatRef::new(&ds, n, m).t(),
                block(q, task.q, task.head, shape),
                false,
            );
        }
        terms.map(|b| {
            let mut local = vec![0f32; b.table.len() / shape.heads];
            for (i, row) in ds.chunks_exact(m).enumerate() {
                for (j, &g) in row.iter().enumerate() {
                    local[b.bucket(i, j)] += g;
                }
            }
            (task.head, local)
        })
    };
    let all = tasks(q_spans, kv_spans, shape.heads);
    let grads: Vec<(usize, Vec<f32>)> = all.par_iter().filter_map(run).collect();
    if let Some(dbias) = dbias {
        for (head, local) in grads {
            for (bucket, g) in local.into_iter().enumerate() {
                dbias[bucket * shape.heads + head] += g;
            }
        }
    }
}

/// The keys and values of a T5 decoder's attention calls so far, for generation: one slot
/// per call of a pass, in call order (layer by layer, self-attention then cross-attention).
/// Self-attention slots grow by each pass's tokens; cross-attention slots hold the source's
/// keys and values from the first pass on.
#[derive(Default, Clone)]
pub struct DecoderCache {
    slots: Vec<(Vec<f32>, Vec<f32>)>,
    next: usize,
    /// Target tokens of the passes so far.
    past: usize,
}

impl DecoderCache {
    /// A pass starts at the first call.
    pub fn start_pass(&mut self) {
        self.next = 0;
    }

    /// A pass of `tokens` target tokens is over.
    pub fn end_pass(&mut self, tokens: usize) {
        self.past += tokens;
    }

    /// True once a pass has filled the cache (the next passes skip the encoder).
    pub fn is_filled(&self) -> bool {
        self.past > 0
    }

    /// `ctx` of one sequence's query rows `q` (positions `past…` of the target), as
    /// [`forward`] computes them without dropout: self-attention adds `k`, `v` to the cached
    /// rows and attends to all of them (causally), cross-attention stores the source's `k`, `v`
    /// on the first pass and reads them after (the ones given then are not read).
    #[allow(clippy::too_many_arguments)]
    pub fn attend(
        &mut self,
        ctx: &mut [f32],
        q: &[f32],
        k: &[f32],
        v: &[f32],
        shape: BiasedShape,
        cross: bool,
        bias: Option<(&[f32], crate::graph::BiasBuckets)>,
    ) {
        let slot = self.next;
        self.next += 1;
        if self.slots.len() <= slot {
            self.slots.push((Vec::new(), Vec::new()));
        }
        let (keys, values) = &mut self.slots[slot];
        if !cross || keys.is_empty() {
            keys.extend_from_slice(k);
            values.extend_from_slice(v);
        }
        let (hidden, d) = (shape.hidden(), shape.head_dim);
        let cached = Cached {
            keys,
            values,
            width: hidden,
        };
        let m = keys.len() / hidden;
        let past = self.past;
        ctx.par_chunks_mut(d).enumerate().for_each(|(at, out)| {
            let (i, head) = (at / shape.heads, at % shape.heads);
            let position = past + i;
            let seen = if shape.causal {
                (position + 1).min(m)
            } else {
                m
            };
            let query = &q[i * hidden + head * d..][..d];
            cached.attend(out, query, head * d, seen, |j, dot| {
                dot + bias.map_or(0.0, |(table, b)| {
                    table[b.bucket(j as i64 - position as i64) * shape.heads + head]
                })
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::BiasBuckets;

    /// A seeded value in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    struct Case {
        q_spans: Vec<Span>,
        kv_spans: Vec<Span>,
        shape: BiasedShape,
        buckets: Vec<usize>,
        bucket_count: usize,
    }

    impl Case {
        fn new(q_lens: &[usize], kv_lens: Option<&[usize]>, causal: bool) -> Self {
            let spans = |lens: &[usize]| {
                let mut start = 0;
                lens.iter()
                    .map(|&len| {
                        let s = Span { start, len };
                        start += len;
                        s
                    })
                    .collect::<Vec<_>>()
            };
            let kv = kv_lens.unwrap_or(q_lens);
            let longest = q_lens.iter().chain(kv).copied().max().unwrap_or(1);
            let b = BiasBuckets {
                buckets: 8,
                max_distance: 16,
                bidirectional: !causal,
            };
            Case {
                q_spans: spans(q_lens),
                kv_spans: spans(kv),
                shape: BiasedShape {
                    heads: 2,
                    head_dim: 3,
                    causal,
                },
                buckets: b.all(longest),
                bucket_count: 8,
            }
        }

        fn tokens(spans: &[Span]) -> usize {
            spans.last().map_or(0, |s| s.start + s.len)
        }

        /// Σ w·ctx of a forward pass, in f64 for finite differences.
        fn loss(&self, q: &[f32], k: &[f32], v: &[f32], table: &[f32], w: &[f32]) -> f64 {
            let mut ctx = vec![0f32; q.len()];
            let mut saved = BiasedSaved::default();
            let terms = BiasTerms {
                table,
                buckets: &self.buckets,
            };
            forward(
                &mut ctx,
                q,
                k,
                v,
                &self.q_spans,
                &self.kv_spans,
                self.shape,
                Some(&terms),
                0.0,
                &mut HoneRng::new(0, 0),
                &mut saved,
            );
            ctx.iter()
                .zip(w)
                .map(|(c, w)| (*c as f64) * (*w as f64))
                .sum()
        }
    }

    /// The forward against a direct computation, and every gradient (queries, keys, values,
    /// bias table) against central finite differences.
    fn check_case(case: &Case) {
        let h = case.shape.hidden();
        let (tq, tk) = (Case::tokens(&case.q_spans), Case::tokens(&case.kv_spans));
        let q = values(tq * h, 1);
        let k = values(tk * h, 2);
        let v = values(tk * h, 3);
        let table = values(case.bucket_count * case.shape.heads, 4);
        let w = values(tq * h, 5);
        let terms = BiasTerms {
            table: &table,
            buckets: &case.buckets,
        };
        let mut ctx = vec![0f32; tq * h];
        let mut saved = BiasedSaved::default();
        forward(
            &mut ctx,
            &q,
            &k,
            &v,
            &case.q_spans,
            &case.kv_spans,
            case.shape,
            Some(&terms),
            0.0,
            &mut HoneRng::new(0, 0),
            &mut saved,
        );
        // Direct: per sequence, head, query.
        let d = case.shape.head_dim;
        for (qs, ks) in case.q_spans.iter().zip(&case.kv_spans) {
            for head in 0..case.shape.heads {
                for i in 0..qs.len {
                    let seen = if case.shape.causal { i + 1 } else { ks.len };
                    let scores: Vec<f64> = (0..seen)
                        .map(|j| {
                            let dot: f64 = (0..d)
                                .map(|c| {
                                    q[(qs.start + i) * h + head * d + c] as f64
                                        * k[(ks.start + j) * h + head * d + c] as f64
                                })
                                .sum();
                            dot + table[terms.bucket(i, j) * case.shape.heads + head] as f64
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for c in 0..d {
                        let want: f64 = (0..seen)
                            .map(|j| e[j] / z * v[(ks.start + j) * h + head * d + c] as f64)
                            .sum();
                        let got = ctx[(qs.start + i) * h + head * d + c] as f64;
                        assert!((got - want).abs() < 1e-5, "ctx {got} vs {want}");
                    }
                }
            }
        }
        let (mut dq, mut dk, mut dv) = (
            vec![0f32; q.len()],
            vec![0f32; k.len()],
            vec![0f32; v.len()],
        );
        let mut dtable = vec![0f32; table.len()];
        backward(
            &mut dq,
            &mut dk,
            &mut dv,
            &w,
            &q,
            &k,
            &v,
            &case.q_spans,
            &case.kv_spans,
            case.shape,
            Some((&terms, &mut dtable)),
            &saved,
        );
        let eps = 1e-2f32;
        for (which, grads) in [(0, &dq), (1, &dk), (2, &dv), (3, &dtable)] {
            for i in 0..grads.len() {
                let mut inputs = [q.clone(), k.clone(), v.clone(), table.clone()];
                inputs[which][i] += eps;
                let up = case.loss(&inputs[0], &inputs[1], &inputs[2], &inputs[3], &w);
                inputs[which][i] -= 2.0 * eps;
                let down = case.loss(&inputs[0], &inputs[1], &inputs[2], &inputs[3], &w);
                let numeric = (up - down) / (2.0 * eps as f64);
                let got = grads[i] as f64;
                assert!(
                    (got - numeric).abs() < 2e-3 * (1.0 + numeric.abs()),
                    "input {which} element {i}: {got} vs {numeric}"
                );
            }
        }
    }

    #[test]
    fn bidirectional_self_attention_matches_a_direct_computation_and_finite_differences() {
        check_case(&Case::new(&[3, 5], None, false));
    }

    #[test]
    fn causal_self_attention_matches_a_direct_computation_and_finite_differences() {
        check_case(&Case::new(&[4, 2, 5], None, true));
    }

    #[test]
    fn cross_attention_to_other_spans_matches_a_direct_computation_and_finite_differences() {
        check_case(&Case::new(&[2, 4], Some(&[5, 3]), false));
    }

    #[test]
    fn buckets_match_transformers() {
        // torch: T5Attention._relative_position_bucket(arange(-20, 21), bidirectional, 8, 16)
        let both = BiasBuckets {
            buckets: 8,
            max_distance: 16,
            bidirectional: true,
        };
        let got: Vec<usize> = (-20..=20).map(|d| both.bucket(d)).collect();
        let want = [
            3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 1, 0, 5, 6, 6, 6, 6, 7, 7, 7,
            7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
        ];
        assert_eq!(got, want);
        let back = BiasBuckets {
            bidirectional: false,
            ..both
        };
        let got: Vec<usize> = (-20..=3).map(|d| back.bucket(d)).collect();
        let want = [
            7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 5, 5, 4, 4, 3, 2, 1, 0, 0, 0, 0,
        ];
        assert_eq!(got, want);
        // T5's own settings: 32 buckets up to 128.
        let t5 = BiasBuckets {
            buckets: 32,
            max_distance: 128,
            bidirectional: true,
        };
        let got: Vec<usize> = (-300..=300).step_by(37).map(|d| t5.bucket(d)).collect();
        let want = [
            15, 15, 15, 15, 15, 15, 14, 12, 4, 28, 30, 31, 31, 31, 31, 31, 31,
        ];
        assert_eq!(got, want);
    }
}
