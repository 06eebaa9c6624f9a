//! Multi-head self-attention over packed sequences (no padding tokens at all): each
//! (sequence, head) pair is an independent task run in parallel, with its probabilities kept
//! for the backward pass.

use rayon::prelude::*;

use super::gemm::{matmul_into_raw, MatRef};
use super::kernels::DropMask;
use super::math;
use crate::rng::HoneRng;

pub use crate::graph::Span;

/// A raw pointer that tasks share to write disjoint blocks of one buffer.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: every user writes a block no other task touches (see the callers).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// What the forward pass keeps for the backward pass: the softmax probabilities, or (when
/// [`AttentionSaved::recomputed`]) only each row's log-sum-exp, from which the backward pass
/// computes them again — `len²` values per (sequence, head) against `len`.
#[derive(Default)]
pub struct AttentionSaved {
    /// Softmax probabilities before dropout, one `len × len` block per (sequence, head), in
    /// the first `probs_len` values (the buffer may be longer: it is reused across batches).
    probs: Vec<f32>,
    probs_len: usize,
    /// Recompute mode: `log(Σ exp(score · scale))` of every query row, per (sequence, head).
    log_sums: Option<Vec<f32>>,
    /// Dropout mask over the probabilities.
    mask: DropMask,
}

impl AttentionSaved {
    /// Saved state that writes its probabilities into `buffer` (grown when too short).
    pub fn with_buffer(buffer: Vec<f32>) -> Self {
        AttentionSaved {
            probs: buffer,
            ..Default::default()
        }
    }

    /// Saved state that keeps only each row's log-sum-exp: the backward pass recomputes the
    /// probabilities (one more `q·kᵀ` per sequence and head) instead of holding them, which
    /// for a decoder at 4 × 512 tokens is 1.3 GiB fewer for a 0.5B model.
    pub fn recomputed() -> Self {
        AttentionSaved {
            log_sums: Some(Vec::new()),
            ..Default::default()
        }
    }

    /// The probability buffer, for reuse.
    pub fn into_buffer(self) -> Vec<f32> {
        self.probs
    }
}

/// Attention calls whose probabilities take more bytes than this recompute them in the
/// backward pass when they may (decoders): below it, keeping them costs little memory and
/// saves the recomputation (~7% of a step at 4 × 512 tokens).
pub const KEEP_PROBABILITIES_UP_TO: usize = 4 << 20;

/// Whether an attention call with `probabilities` values should recompute them rather than
/// keep them.
pub fn recompute_pays(probabilities: usize) -> bool {
    probabilities * std::mem::size_of::<f32>() > KEEP_PROBABILITIES_UP_TO
}

/// Causal attention's query rows at least this many to a block (see [`row_blocks`]).
const CAUSAL_BLOCK_ROWS: usize = 64;

/// At most this many blocks of query rows: each block is one more small product per
/// product of the task.
const MAX_CAUSAL_BLOCKS: usize = 8;

/// A task's query rows in blocks, each with the keys its rows may look at: `(rows, seen)`.
/// Under a causal mask a block's rows see only the keys up to its last row, so products
/// over `rows × seen` skip the zero triangle above the diagonal beyond whole blocks (about
/// 44% of a 1,024-token sequence's score products, a quarter of a 128-token one's). Full
/// attention is one block over every key. The last block sees every key.
fn row_blocks(
    n: usize,
    causal: bool,
) -> impl DoubleEndedIterator<Item = (std::ops::Range<usize>, usize)> {
    let blocks = if causal {
        (n / CAUSAL_BLOCK_ROWS).clamp(1, MAX_CAUSAL_BLOCKS)
    } else {
        1
    };
    let size = n.div_ceil(blocks).max(1);
    (0..n).step_by(size).map(move |start| {
        let end = (start + size).min(n);
        (start..end, if causal { end } else { n })
    })
}

/// The share of a full `n × n` product's work attention under a causal mask does over a
/// sequence of `n` tokens (the blocks of [`row_blocks`]).
pub fn causal_work_share(n: usize) -> f64 {
    let done: usize = row_blocks(n, true)
        .map(|(rows, seen)| rows.len() * seen)
        .sum();
    done as f64 / (n * n).max(1) as f64
}

/// `p = q·kᵀ` into a task's `n × n` block `p` (`q`, `k`: `n × d`; the raw scores, or the
/// probabilities' gradient from the context's and the values): under a causal mask only the
/// blocks of [`row_blocks`], the rest of each row left as it was.
fn scores_into(p: &mut [f32], q: MatRef, k: MatRef, causal: bool) {
    let n = q.rows();
    assert!(p.len() >= n * n && k.rows() == n, "scores are n × n");
    for (rows, seen) in row_blocks(n, causal) {
        // SAFETY: rows `rows` of `p`'s `n × n` block, which the caller holds mutably.
        unsafe {
            matmul_into_raw(
                p.as_mut_ptr().add(rows.start * n),
                n,
                q.row_range(rows),
                k.row_range(0..seen).t(),
                false,
            )
        };
    }
}

/// Rows `rows` of an `n × n` block `x`, their first `seen` columns.
fn part(x: &[f32], n: usize, rows: std::ops::Range<usize>, seen: usize) -> MatRef<'_> {
    MatRef::strided(&x[rows.start * n..], rows.len(), seen, n)
}

/// `out = x · y` for a task's `n × n` block `x` (probabilities, or the scores' gradient; zero
/// above the blocks of [`row_blocks`] under a causal mask) and `y` (`n × d`): the context, or
/// the queries' gradient. `out` is `n × d` with rows `ld` apart.
///
/// # Safety
/// As [`matmul_into_raw`] for an `n × d` output at `out`.
unsafe fn times(out: *mut f32, ld: usize, x: &[f32], y: MatRef, causal: bool) {
    let n = y.rows();
    for (rows, seen) in row_blocks(n, causal) {
        // SAFETY: rows `rows` of the caller's `n × d` output.
        unsafe {
            matmul_into_raw(
                out.add(rows.start * ld),
                ld,
                part(x, n, rows, seen),
                y.row_range(0..seen),
                false,
            )
        };
    }
}

/// `out (+)= xᵀ · y` for a task's `n × n` block `x` (as in [`times`]) and `y` (`n × d`): the
/// values' gradient, or the keys'. The last block sees every key, so taken first it writes
/// (or, `accumulate`, adds to) all of `out`'s rows; the others add theirs.
///
/// # Safety
/// As [`matmul_into_raw`] for an `n × d` output at `out`.
unsafe fn transposed_times(
    out: *mut f32,
    ld: usize,
    x: &[f32],
    y: MatRef,
    causal: bool,
    accumulate: bool,
) {
    let n = y.rows();
    for (i, (rows, seen)) in row_blocks(n, causal).rev().enumerate() {
        // SAFETY: the first `seen` rows of the caller's `n × d` output.
        unsafe {
            matmul_into_raw(
                out,
                ld,
                part(x, n, rows.clone(), seen).t(),
                y.row_range(rows),
                accumulate || i > 0,
            )
        };
    }
}

/// The probabilities of one (sequence, head) task from its saved row log-sum-exps: the
/// scores again, `exp(score · scale − lse)` where the row may look (causal: up to itself).
fn recompute_probs(
    p: &mut [f32],
    q: MatRef,
    k: MatRef,
    log_sums: &[f32],
    scale: f32,
    causal: bool,
) {
    let n = log_sums.len();
    scores_into(p, q, k, causal);
    for (i, (row, &lse)) in p.chunks_exact_mut(n).zip(log_sums).enumerate() {
        let (seen, later) = row.split_at_mut(if causal { i + 1 } else { n });
        later.fill(0.0);
        seen.iter_mut()
            .for_each(|x| *x = math::exp(*x * scale - lse));
    }
}

/// The backward of a softmax over rows of `cols` values: `ds ← scale · p ∘ (ds − rowsum(ds ∘ p))`
/// in place, `p` the probabilities (`ds` the gradient of the probabilities on entry, of the
/// scores before `scale` on exit).
pub(crate) fn softmax_rows_backward(ds: &mut [f32], p: &[f32], cols: usize, scale: f32) {
    for (drow, prow) in ds.chunks_exact_mut(cols).zip(p.chunks_exact(cols)) {
        let dot = math::dot(drow, prow);
        for (d, &p) in drow.iter_mut().zip(prow) {
            *d = p * (*d - dot) * scale;
        }
    }
}

/// Shape of an attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention: each serves `heads / kv_heads` query heads;
    /// equal to `heads` for plain multi-head attention).
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Each token attends only to itself and the tokens before it (decoders).
    pub causal: bool,
}

impl AttentionShape {
    /// Plain multi-head self-attention over whole sequences (encoders).
    pub fn full(heads: usize, head_dim: usize) -> Self {
        AttentionShape {
            heads,
            kv_heads: heads,
            head_dim,
            causal: false,
        }
    }

    fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }

    fn kv_hidden(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Query heads per key/value head.
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }
}

/// Checks what the parallel tasks' disjoint writes rely on: spans non-empty, in order, not
/// overlapping and inside the buffers (`queries`: `tokens × hidden`, `keys`: `tokens × kv
/// hidden`).
fn check(spans: &[Span], shape: AttentionShape, queries: &[usize], keys: &[usize]) {
    assert!(
        shape.heads > 0
            && shape.head_dim > 0
            && shape.kv_heads > 0
            && shape.heads.is_multiple_of(shape.kv_heads),
        "attention needs heads, a whole number per key/value head"
    );
    let tokens = queries[0] / shape.hidden();
    assert!(
        queries.iter().all(|&len| len == tokens * shape.hidden())
            && keys.iter().all(|&len| len == tokens * shape.kv_hidden()),
        "attention buffers must be tokens × hidden (queries) and tokens × kv hidden (keys)"
    );
    check_spans(spans, tokens);
}

/// Checks that `spans` are non-empty, in order, not overlapping and inside `tokens` rows:
/// what the parallel attention tasks' disjoint writes rely on.
pub(crate) fn check_spans(spans: &[Span], tokens: usize) {
    let mut end = 0;
    for s in spans {
        assert!(
            s.len > 0 && s.start >= end,
            "spans must be non-empty and in order"
        );
        end = s.start + s.len;
    }
    assert!(end <= tokens, "a span goes past the last token");
}

/// The keys and values of a sequence's tokens so far, per layer (generation): each pass adds
/// its tokens' and attends to all of them, causally.
#[derive(Default)]
pub struct KvCache {
    layers: Vec<(Vec<f32>, Vec<f32>)>,
    /// The layer the next attention call of the pass belongs to.
    next: usize,
    /// Values per cached token (key/value heads × head size).
    width: usize,
}

impl KvCache {
    /// A cache that starts with each layer's `tokens` prefix rows (`(keys, values)`, `[tokens
    /// × kv hidden]` each: prefix tuning).
    pub fn with_prefix(layers: crate::prefix::LayerRows, tokens: usize) -> Self {
        let width = layers.first().map_or(0, |(k, _)| k.len() / tokens.max(1));
        KvCache {
            layers,
            next: 0,
            width,
        }
    }

    /// Tokens cached (in the first layer).
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .map_or(0, |(k, _)| k.len() / self.width.max(1))
    }

    /// True before the first pass.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A pass starts at the bottom layer.
    pub fn start_pass(&mut self) {
        self.next = 0;
    }

    /// `ctx` of the pass's tokens (`q`: `[n × hidden]`; `k`, `v`: their `[n × kv hidden]`),
    /// attending causally to the cached tokens and themselves; adds `k` and `v` to the cache.
    pub fn attend(
        &mut self,
        ctx: &mut [f32],
        q: &[f32],
        k: &[f32],
        v: &[f32],
        shape: AttentionShape,
    ) -> Result<(), crate::EngineError> {
        let (hidden, kv_hidden, d) = (shape.hidden(), shape.kv_hidden(), shape.head_dim);
        if self.layers.len() <= self.next {
            self.layers.push((Vec::new(), Vec::new()));
        }
        self.width = kv_hidden;
        let (keys, values) = &mut self.layers[self.next];
        self.next += 1;
        let past = keys.len() / kv_hidden;
        keys.extend_from_slice(k);
        values.extend_from_slice(v);
        let n = q.len() / hidden;
        if k.len() != n * kv_hidden || v.len() != k.len() || ctx.len() != q.len() {
            return Err(crate::EngineError::InvalidConfig(
                "cached attention takes one sequence's queries, keys and values".into(),
            ));
        }
        let scale = 1.0 / (d as f32).sqrt();
        let cached = Cached {
            keys,
            values,
            width: kv_hidden,
        };
        ctx.par_chunks_mut(d).enumerate().for_each(|(slot, out)| {
            let (i, head) = (slot / shape.heads, slot % shape.heads);
            let query = &q[i * hidden + head * d..][..d];
            let kv = head / shape.group();
            cached.attend(out, query, kv * d, past + i + 1, |_, dot| dot * scale);
        });
        Ok(())
    }
}

/// The keys and values a decoding pass attends to (`[rows × width]` each, one head's
/// `head_dim` columns at a time).
pub(crate) struct Cached<'a> {
    pub keys: &'a [f32],
    pub values: &'a [f32],
    pub width: usize,
}

impl Cached<'_> {
    /// `out` = one query's attention over the first `seen` rows, in the columns from
    /// `column` on (its head's): softmax of `score(row, query · key)` over the rows, times
    /// their values.
    pub(crate) fn attend(
        &self,
        out: &mut [f32],
        query: &[f32],
        column: usize,
        seen: usize,
        score: impl Fn(usize, f32) -> f32,
    ) {
        let d = query.len();
        let mut scores: Vec<f32> = (0..seen)
            .map(|j| {
                score(
                    j,
                    math::dot(query, &self.keys[j * self.width + column..][..d]),
                )
            })
            .collect();
        let max = scores.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        scores.iter_mut().for_each(|s| *s = math::exp(*s - max));
        let inv = 1.0 / math::sum(&scores);
        out.fill(0.0);
        for (j, &p) in scores.iter().enumerate() {
            let row = &self.values[j * self.width + column..][..d];
            out.iter_mut().zip(row).for_each(|(o, v)| *o += p * inv * v);
        }
    }
}

/// One (sequence, query head) pair of an attention call.
#[derive(Clone, Copy)]
struct Task {
    span: Span,
    head: usize,
    /// Where its `len × len` probability block starts (and its dropout mask's).
    offset: usize,
    /// Where its rows' log-sum-exps start.
    rows: usize,
}

/// Every task, sequence by sequence.
fn tasks(spans: &[Span], heads: usize) -> Vec<Task> {
    let mut out = Vec::with_capacity(spans.len() * heads);
    let (mut offset, mut rows) = (0, 0);
    for &span in spans {
        for head in 0..heads {
            out.push(Task {
                span,
                head,
                offset,
                rows,
            });
            offset += span.len * span.len;
            rows += span.len;
        }
    }
    out
}

/// Query head `head`'s block of a `[tokens × hidden]` buffer (queries, context).
fn block(data: &[f32], span: Span, head: usize, shape: AttentionShape) -> MatRef<'_> {
    let hidden = shape.hidden();
    MatRef::strided(
        &data[span.start * hidden + head * shape.head_dim..],
        span.len,
        shape.head_dim,
        hidden,
    )
}

/// The key/value block query head `head` reads, of a `[tokens × kv hidden]` buffer.
fn kv_block(data: &[f32], span: Span, head: usize, shape: AttentionShape) -> MatRef<'_> {
    let hidden = shape.kv_hidden();
    MatRef::strided(
        &data[span.start * hidden + (head / shape.group()) * shape.head_dim..],
        span.len,
        shape.head_dim,
        hidden,
    )
}

/// DeBERTa's position terms of an attention call ([`crate::graph::Disentangled`] on the
/// CPU): the relative embeddings through the layer's key and query projections, `[rows ×
/// hidden]` each, and the row every distance reads.
pub struct RelativeTerms<'a> {
    /// Content → position (c2p): query `i` against row `row(i − j)` of these.
    pub position_keys: Option<&'a [f32]>,
    /// Position → content (p2c): key `j` against row `row(i − j)` of these.
    pub position_queries: Option<&'a [f32]>,
    /// The row of distance `i − j` at `i − j + longest − 1` (`RelativeBuckets::rows`).
    pub rows: &'a [usize],
    /// The scores' scale (`Disentangled::scale`: `1 / √(d · (1 + position terms))`).
    pub scale: f32,
}

/// One (sequence, head) task's gradients of the position tables: rows `first..` of its head's
/// columns.
struct PositionGrads {
    first: usize,
    head: usize,
    keys: Option<Vec<f32>>,
    queries: Option<Vec<f32>>,
}

impl RelativeTerms<'_> {
    fn longest(&self) -> usize {
        self.rows.len().div_ceil(2)
    }

    /// The row query `i` and key `j` read.
    fn row(&self, i: usize, j: usize) -> usize {
        self.rows[i + self.longest() - 1 - j]
    }

    /// The rows a sequence of `n` tokens reads: `first..first + count` (the rows grow with
    /// the distance).
    fn window(&self, n: usize) -> (usize, usize) {
        let m = self.longest();
        assert!(
            n <= m,
            "a sequence is longer than the relative rows were made for"
        );
        let (first, last) = (self.rows[m - n], self.rows[m + n - 2]);
        (first, last + 1 - first)
    }

    /// Head `head`'s columns of `count` rows of a position table from `first`.
    fn block<'t>(
        table: &'t [f32],
        first: usize,
        count: usize,
        head: usize,
        shape: AttentionShape,
    ) -> MatRef<'t> {
        let hidden = shape.hidden();
        MatRef::strided(
            &table[first * hidden + head * shape.head_dim..],
            count,
            shape.head_dim,
            hidden,
        )
    }

    /// The position tables with the content they meet: (table, content is the queries).
    fn terms(&self) -> [(Option<&[f32]>, bool); 2] {
        [(self.position_keys, true), (self.position_queries, false)]
    }

    /// Adds both position terms to a task's raw `n × n` scores `s`.
    fn add_scores(
        &self,
        s: &mut [f32],
        q: MatRef,
        k: MatRef,
        n: usize,
        head: usize,
        shape: AttentionShape,
    ) {
        let (first, count) = self.window(n);
        let mut c = vec![0f32; n * count];
        for (table, of_queries) in self.terms() {
            let Some(table) = table else { continue };
            let content = if of_queries { q } else { k };
            let rows = Self::block(table, first, count, head, shape);
            // SAFETY: `c` is local and `n × count`.
            unsafe { matmul_into_raw(c.as_mut_ptr(), count, content, rows.t(), false) };
            for (i, srow) in s.chunks_exact_mut(n).enumerate() {
                for (j, x) in srow.iter_mut().enumerate() {
                    let at = if of_queries { i } else { j };
                    *x += c[at * count + self.row(i, j) - first];
                }
            }
        }
    }

    /// The backward of [`RelativeTerms::add_scores`] for a task with score gradients `ds`:
    /// adds to its queries' and keys' gradients (at `dq`, `dk`, rows `stride` apart) and
    /// returns its position-table gradients.
    #[allow(clippy::too_many_arguments)]
    unsafe fn backward(
        &self,
        ds: &[f32],
        q: MatRef,
        k: MatRef,
        dq: *mut f32,
        dk: *mut f32,
        stride: usize,
        n: usize,
        head: usize,
        shape: AttentionShape,
    ) -> PositionGrads {
        let (first, count) = self.window(n);
        let mut out = PositionGrads {
            first,
            head,
            keys: None,
            queries: None,
        };
        for (table, of_queries) in self.terms() {
            let Some(table) = table else { continue };
            let mut dc = vec![0f32; n * count];
            for (i, drow) in ds.chunks_exact(n).enumerate() {
                for (j, &g) in drow.iter().enumerate() {
                    let at = if of_queries { i } else { j };
                    dc[at * count + self.row(i, j) - first] += g;
                }
            }
            let rows = Self::block(table, first, count, head, shape);
            let (content, dcontent) = if of_queries { (q, dq) } else { (k, dk) };
            let dc_m = MatRef::new(&dc, n, count);
            let mut dtable = vec![0f32; count * shape.head_dim];
            // SAFETY: the caller's task owns these rows and head columns of dq/dk; `dtable`
            // is local.
            unsafe {
                matmul_into_raw(dcontent, stride, dc_m, rows, true);
                matmul_into_raw(
                    dtable.as_mut_ptr(),
                    shape.head_dim,
                    dc_m.t(),
                    content,
                    false,
                );
            }
            if of_queries {
                out.keys = Some(dtable);
            } else {
                out.queries = Some(dtable);
            }
        }
        out
    }
}

/// Adds the tasks' position-table gradients into `[rows × hidden]` buffers.
fn add_position_grads(
    grads: Vec<PositionGrads>,
    dkeys: Option<&mut [f32]>,
    dqueries: Option<&mut [f32]>,
    shape: AttentionShape,
) {
    let (hidden, d) = (shape.hidden(), shape.head_dim);
    let mut targets = [dkeys, dqueries];
    for g in grads {
        for (local, target) in [g.keys, g.queries].into_iter().zip(targets.iter_mut()) {
            let (Some(local), Some(target)) = (local, target.as_deref_mut()) else {
                continue;
            };
            for (r, row) in local.chunks_exact(d).enumerate() {
                let at = (g.first + r) * hidden + g.head * d;
                target[at..at + d]
                    .iter_mut()
                    .zip(row)
                    .for_each(|(t, x)| *t += x);
            }
        }
    }
}

/// `ctx = softmax(q·kᵀ/√d) · v` per sequence and head, with dropout on the probabilities
/// (and, `causal`, no weight on later tokens). `q`, `ctx` are `[tokens × hidden]`, `k`, `v`
/// `[tokens × kv hidden]`. With `relative`, DeBERTa's position terms are added to the scores
/// (and their scale replaces `1/√d`); the probabilities are kept then (no recompute mode).
#[allow(clippy::too_many_arguments)]
pub fn forward(
    ctx: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    spans: &[Span],
    shape: AttentionShape,
    dropout: f64,
    rng: &mut HoneRng,
    saved: &mut AttentionSaved,
    relative: Option<&RelativeTerms>,
) {
    check(spans, shape, &[q.len(), ctx.len()], &[k.len(), v.len()]);
    check_relative(relative, shape, saved);
    let hidden = shape.hidden();
    let scale = relative.map_or(1.0 / (shape.head_dim as f32).sqrt(), |r| r.scale);
    let jobs = tasks(spans, shape.heads);
    let total: usize = spans.iter().map(|s| s.len * s.len).sum::<usize>() * shape.heads;
    let rows: usize = spans.iter().map(|s| s.len).sum::<usize>() * shape.heads;
    let keep = saved.log_sums.is_none();
    if keep && saved.probs.len() < total {
        saved.probs.resize(total, 0.0);
    }
    saved.probs_len = total;
    if let Some(log_sums) = &mut saved.log_sums {
        log_sums.resize(rows, 0.0);
    }
    saved.mask = DropMask::draw(rng, total, dropout);
    let mask = &saved.mask;
    let out = Shared(ctx.as_mut_ptr());
    let probs = Shared(saved.probs.as_mut_ptr());
    let sums = Shared(
        saved
            .log_sums
            .as_mut()
            .map_or(std::ptr::null_mut(), |l| l.as_mut_ptr()),
    );
    jobs.par_iter().for_each(|task| {
        let Task {
            span,
            head,
            offset,
            rows,
        } = *task;
        let n = span.len;
        let mut own = Vec::new();
        let p: &mut [f32] = if keep {
            // SAFETY: the probability blocks of different tasks are disjoint ranges of `probs`.
            unsafe { std::slice::from_raw_parts_mut(probs.ptr().add(offset), n * n) }
        } else {
            own.resize(n * n, 0.0);
            &mut own
        };
        scores_into(
            p,
            block(q, span, head, shape),
            kv_block(k, span, head, shape),
            shape.causal,
        );
        if let Some(rel) = relative {
            rel.add_scores(
                p,
                block(q, span, head, shape),
                kv_block(k, span, head, shape),
                n,
                head,
                shape,
            );
        }
        for (i, row) in p.chunks_exact_mut(n).enumerate() {
            let (seen, later) = row.split_at_mut(if shape.causal { i + 1 } else { n });
            later.fill(0.0);
            let max = seen.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) * scale;
            seen.iter_mut()
                .for_each(|x| *x = math::exp(*x * scale - max));
            let sum = math::sum(seen);
            let inv = 1.0 / sum;
            seen.iter_mut().for_each(|x| *x *= inv);
            if !keep {
                // SAFETY: rows `rows..rows + n` of the log-sum-exps are this task's.
                unsafe { *sums.ptr().add(rows + i) = max + sum.ln() };
            }
        }
        let dropped: Vec<f32>;
        let p_used: &[f32] = if mask.is_identity() {
            p
        } else {
            dropped = p
                .iter()
                .enumerate()
                .map(|(i, &x)| x * mask.factor(offset + i))
                .collect();
            &dropped
        };
        // SAFETY: rows span.start..+n, columns head·d..+d of `ctx` belong to this task only.
        unsafe {
            times(
                out.ptr().add(span.start * hidden + head * shape.head_dim),
                hidden,
                p_used,
                kv_block(v, span, head, shape),
                shape.causal,
            )
        };
    });
}

/// Checks that a call with position terms fits them: multi-head, whole sequences, its
/// probabilities kept, tables `[rows × hidden]`.
fn check_relative(relative: Option<&RelativeTerms>, shape: AttentionShape, saved: &AttentionSaved) {
    let Some(rel) = relative else { return };
    assert!(
        shape.kv_heads == shape.heads && !shape.causal && saved.log_sums.is_none(),
        "position terms are for multi-head attention over whole sequences, probabilities kept"
    );
    let rows = rel.rows.iter().max().map_or(0, |&r| r + 1);
    for table in [rel.position_keys, rel.position_queries]
        .into_iter()
        .flatten()
    {
        assert!(
            table.len().is_multiple_of(shape.hidden()) && table.len() / shape.hidden() >= rows,
            "a position table must be rows × hidden"
        );
    }
}

/// The position tables' gradients a backward pass with position terms adds into: `[keys,
/// queries]`, `[rows × hidden]` each (`None` where the table takes none).
pub type PositionGradients<'a> = [Option<&'a mut [f32]>; 2];

/// Backward of [`forward`]: writes `dq` (`[tokens × hidden]`), `dk`, `dv` (`[tokens × kv
/// hidden]`) from `dctx`; with `relative`, also adds the position tables' gradients.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    dctx: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    spans: &[Span],
    shape: AttentionShape,
    saved: &AttentionSaved,
    relative: Option<(&RelativeTerms, PositionGradients)>,
) {
    let (relative, dpositions) = relative.unzip();
    check_relative(relative, shape, saved);
    check(
        spans,
        shape,
        &[q.len(), dctx.len(), dq.len()],
        &[k.len(), v.len(), dk.len(), dv.len()],
    );
    assert_eq!(
        saved.probs_len,
        spans.iter().map(|s| s.len * s.len).sum::<usize>() * shape.heads,
        "the saved probabilities belong to another batch"
    );
    let hidden = shape.hidden();
    let kv_hidden = shape.kv_hidden();
    let scale = relative.map_or(1.0 / (shape.head_dim as f32).sqrt(), |r| r.scale);
    // One task per (sequence, key/value head): the query heads sharing its keys add their
    // gradients into the same dk/dv block one after the other.
    let all = tasks(spans, shape.heads);
    let jobs: Vec<&[Task]> = all.chunks(shape.group()).collect();
    let (dq_p, dk_p, dv_p) = (
        Shared(dq.as_mut_ptr()),
        Shared(dk.as_mut_ptr()),
        Shared(dv.as_mut_ptr()),
    );
    let mask = &saved.mask;
    // A group's position-table gradients (none without position terms: no allocation).
    let run = |group: &&[Task]| -> Vec<PositionGrads> {
        let mut position_grads = Vec::new();
        for (g, task) in group.iter().enumerate() {
            let Task {
                span,
                head,
                offset,
                rows,
            } = *task;
            let n = span.len;
            let accumulate = g > 0;
            let mut own = Vec::new();
            let p: &[f32] = match &saved.log_sums {
                None => &saved.probs[offset..offset + n * n],
                Some(log_sums) => {
                    own.resize(n * n, 0.0);
                    recompute_probs(
                        &mut own,
                        block(q, span, head, shape),
                        kv_block(k, span, head, shape),
                        &log_sums[rows..rows + n],
                        scale,
                        shape.causal,
                    );
                    &own
                }
            };
            let at_q = span.start * hidden + head * shape.head_dim;
            let at_kv = span.start * kv_hidden + (head / shape.group()) * shape.head_dim;
            let dctx_b = block(dctx, span, head, shape);
            let (queries, keys, values) = (
                block(q, span, head, shape),
                kv_block(k, span, head, shape),
                kv_block(v, span, head, shape),
            );

            // dv = P'ᵀ · dctx
            let p_dropped: std::borrow::Cow<[f32]> = if mask.is_identity() {
                p.into()
            } else {
                p.iter()
                    .enumerate()
                    .map(|(i, &x)| x * mask.factor(offset + i))
                    .collect::<Vec<_>>()
                    .into()
            };
            // SAFETY: each task writes only its own (rows, head columns) blocks of dq, dk
            // and dv: its query heads' and their one key/value head's.
            unsafe {
                transposed_times(
                    dv_p.ptr().add(at_kv),
                    kv_hidden,
                    &p_dropped,
                    dctx_b,
                    shape.causal,
                    accumulate,
                )
            };
            // dP' = dctx · vᵀ (zero where no key is seen), then through dropout and softmax.
            let mut ds = vec![0f32; n * n];
            scores_into(&mut ds, dctx_b, values, shape.causal);
            if !mask.is_identity() {
                let raw = ds.clone();
                mask.apply_block(&mut ds, &raw, offset);
            }
            softmax_rows_backward(&mut ds, p, n, scale);
            // SAFETY: as above.
            unsafe {
                times(dq_p.ptr().add(at_q), hidden, &ds, keys, shape.causal);
                transposed_times(
                    dk_p.ptr().add(at_kv),
                    kv_hidden,
                    &ds,
                    queries,
                    shape.causal,
                    accumulate,
                );
            }
            if let Some(rel) = relative {
                // SAFETY: as above (multi-head: the key block is this task's alone).
                position_grads.push(unsafe {
                    rel.backward(
                        &ds,
                        block(q, span, head, shape),
                        kv_block(k, span, head, shape),
                        dq_p.ptr().add(at_q),
                        dk_p.ptr().add(at_kv),
                        hidden,
                        n,
                        head,
                        shape,
                    )
                });
            }
        }
        position_grads
    };
    match dpositions {
        None => jobs.par_iter().for_each(|group| {
            run(group);
        }),
        Some([dkeys, dqueries]) => {
            let grads: Vec<PositionGrads> = jobs.par_iter().flat_map_iter(run).collect();
            add_position_grads(grads, dkeys, dqueries, shape);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`forward`]'s context (no position terms), dropout `p` drawn from `seed`.
    #[allow(clippy::too_many_arguments)]
    fn context(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        spans: &[Span],
        shape: AttentionShape,
        p: f64,
        seed: u64,
        saved: &mut AttentionSaved,
    ) -> Vec<f32> {
        let mut ctx = vec![0f32; q.len()];
        let mut rng = HoneRng::new(seed, seed);
        forward(&mut ctx, q, k, v, spans, shape, p, &mut rng, saved, None);
        ctx
    }

    /// `Σ context · w`, the context without dropout.
    fn loss(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        w: &[f32],
        spans: &[Span],
        shape: AttentionShape,
    ) -> f64 {
        let ctx = context(
            q,
            k,
            v,
            spans,
            shape,
            0.0,
            0,
            &mut AttentionSaved::default(),
        );
        ctx.iter().zip(w).map(|(a, b)| (a * b) as f64).sum()
    }

    #[test]
    fn forward_matches_a_direct_computation_and_backward_matches_finite_differences() {
        let shape = AttentionShape::full(2, 3);
        let spans = [Span { start: 0, len: 3 }, Span { start: 3, len: 2 }];
        let t = 5;
        let mut rng = HoneRng::new(3, 3);
        let q = rng.normal(t * 6, 1.0);
        let k = rng.normal(t * 6, 1.0);
        let v = rng.normal(t * 6, 1.0);
        let w = rng.normal(t * 6, 1.0);
        // Direct: token 4 (second sequence, position 1), head 1.
        let mut ctx = vec![0f32; t * 6];
        let mut saved = AttentionSaved::default();
        forward(
            &mut ctx, &q, &k, &v, &spans, shape, 0.0, &mut rng, &mut saved, None,
        );
        let s: Vec<f64> = (3..5)
            .map(|j| {
                (0..3)
                    .map(|d| (q[4 * 6 + 3 + d] * k[j * 6 + 3 + d]) as f64)
                    .sum::<f64>()
                    / 3f64.sqrt()
            })
            .collect();
        let z: f64 = s.iter().map(|x| x.exp()).sum();
        for d in 0..3 {
            let want: f64 = (0..2)
                .map(|j| s[j].exp() / z * v[(3 + j) * 6 + 3 + d] as f64)
                .sum();
            assert!((ctx[4 * 6 + 3 + d] as f64 - want).abs() < 1e-5);
        }
        let (mut dq, mut dk, mut dv) = (vec![0f32; t * 6], vec![0f32; t * 6], vec![0f32; t * 6]);
        backward(
            &mut dq, &mut dk, &mut dv, &w, &q, &k, &v, &spans, shape, &saved, None,
        );
        let h = 1e-2f32;
        for (name, grad, which) in [("q", &dq, 0), ("k", &dk, 1), ("v", &dv, 2)] {
            for i in 0..t * 6 {
                let mut inputs = [q.clone(), k.clone(), v.clone()];
                inputs[which][i] += h;
                let up = loss(&inputs[0], &inputs[1], &inputs[2], &w, &spans, shape);
                inputs[which][i] -= 2.0 * h;
                let down = loss(&inputs[0], &inputs[1], &inputs[2], &w, &spans, shape);
                let want = (up - down) / (2.0 * h as f64);
                assert!(
                    (grad[i] as f64 - want).abs() < 2e-3,
                    "d{name}[{i}] {} vs {want}",
                    grad[i]
                );
            }
        }
    }

    #[test]
    fn causal_grouped_query_attention_matches_repeated_keys_and_finite_differences() {
        let grouped = AttentionShape {
            heads: 4,
            kv_heads: 2,
            head_dim: 3,
            causal: true,
        };
        let spans = [Span { start: 0, len: 4 }, Span { start: 4, len: 3 }];
        let t = 7;
        let mut rng = HoneRng::new(5, 5);
        let q = rng.normal(t * 12, 1.0);
        let k = rng.normal(t * 6, 1.0);
        let v = rng.normal(t * 6, 1.0);
        let w = rng.normal(t * 12, 1.0);
        // The same keys repeated per query head (transformers' repeat_kv) give the same context.
        let repeat = |x: &[f32]| -> Vec<f32> {
            x.chunks(6)
                .flat_map(|row| [&row[0..3], &row[0..3], &row[3..6], &row[3..6]].concat())
                .collect()
        };
        let plain = AttentionShape {
            kv_heads: 4,
            ..grouped
        };
        let run = |shape, k: &[f32], v: &[f32]| {
            let mut saved = AttentionSaved::default();
            (context(&q, k, v, &spans, shape, 0.0, 0, &mut saved), saved)
        };
        let (ctx, saved) = run(grouped, &k, &v);
        let (want, _) = run(plain, &repeat(&k), &repeat(&v));
        for (a, b) in ctx.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6);
        }
        // Causal: a sequence's first token sees only itself.
        assert_eq!(&ctx[4 * 12..4 * 12 + 3], &v[4 * 6..4 * 6 + 3]);
        let loss = |q: &[f32], k: &[f32], v: &[f32]| loss(q, k, v, &w, &spans, grouped);
        let (mut dq, mut dk, mut dv) = (vec![0f32; t * 12], vec![0f32; t * 6], vec![0f32; t * 6]);
        backward(
            &mut dq, &mut dk, &mut dv, &w, &q, &k, &v, &spans, grouped, &saved, None,
        );
        let h = 1e-2f32;
        for (name, grad, which) in [("q", &dq, 0), ("k", &dk, 1), ("v", &dv, 2)] {
            for i in 0..grad.len() {
                let mut inputs = [q.clone(), k.clone(), v.clone()];
                inputs[which][i] += h;
                let up = loss(&inputs[0], &inputs[1], &inputs[2]);
                inputs[which][i] -= 2.0 * h;
                let down = loss(&inputs[0], &inputs[1], &inputs[2]);
                let want = (up - down) / (2.0 * h as f64);
                assert!(
                    (grad[i] as f64 - want).abs() < 3e-3,
                    "d{name}[{i}] {} vs {want}",
                    grad[i]
                );
            }
        }
    }

    /// Causal attention of one query head over one sequence in f64, straight from the
    /// definition: the context and the inputs' gradients for the context's gradient `dctx`
    /// (`q`, `dctx`: `n × d` blocks of width `wq`; `k`, `v` of width `wk`).
    #[allow(clippy::too_many_arguments)]
    fn direct_causal(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        dctx: &[f32],
        (wq, wk): (usize, usize),
        (at_q, at_k): (usize, usize),
        n: usize,
        d: usize,
    ) -> [Vec<f64>; 4] {
        let scale = 1.0 / (d as f64).sqrt();
        let get = |x: &[f32], w: usize, at: usize, i: usize, c: usize| x[i * w + at + c] as f64;
        let mut p = vec![vec![0f64; n]; n];
        for (i, row) in p.iter_mut().enumerate() {
            let scores: Vec<f64> = (0..=i)
                .map(|j| {
                    (0..d)
                        .map(|c| get(q, wq, at_q, i, c) * get(k, wk, at_k, j, c))
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
            for (j, s) in scores.iter().enumerate() {
                row[j] = (s - max).exp() / sum;
            }
        }
        let (mut ctx, mut dq, mut dk, mut dv) = (
            vec![0f64; n * d],
            vec![0f64; n * d],
            vec![0f64; n * d],
            vec![0f64; n * d],
        );
        for i in 0..n {
            let dp: Vec<f64> = (0..=i)
                .map(|j| {
                    (0..d)
                        .map(|c| get(dctx, wq, at_q, i, c) * get(v, wk, at_k, j, c))
                        .sum()
                })
                .collect();
            let dot: f64 = (0..=i).map(|j| dp[j] * p[i][j]).sum();
            for j in 0..=i {
                let ds = p[i][j] * (dp[j] - dot) * scale;
                for c in 0..d {
                    ctx[i * d + c] += p[i][j] * get(v, wk, at_k, j, c);
                    dv[j * d + c] += p[i][j] * get(dctx, wq, at_q, i, c);
                    dq[i * d + c] += ds * get(k, wk, at_k, j, c);
                    dk[j * d + c] += ds * get(q, wq, at_q, i, c);
                }
            }
        }
        [ctx, dq, dk, dv]
    }

    #[test]
    fn causal_attention_over_several_row_blocks_matches_a_direct_computation() {
        // Two query heads per key/value head; sequences long enough for several blocks of
        // rows (200 → 3, 131 → 2), probabilities kept and recomputed.
        let shape = AttentionShape {
            heads: 4,
            kv_heads: 2,
            head_dim: 4,
            causal: true,
        };
        assert_eq!(row_blocks(200, true).count(), 3);
        assert_eq!(row_blocks(131, true).count(), 2);
        assert_eq!(row_blocks(200, false).count(), 1);
        let spans = [
            Span { start: 0, len: 200 },
            Span {
                start: 203,
                len: 131,
            },
        ];
        let t = 334;
        let (hidden, kv_hidden, d) = (16, 8, 4);
        let mut rng = HoneRng::new(9, 1);
        let q = rng.normal(t * hidden, 1.0);
        let k = rng.normal(t * kv_hidden, 1.0);
        let v = rng.normal(t * kv_hidden, 1.0);
        let dctx = rng.normal(t * hidden, 1.0);
        for mut saved in [AttentionSaved::default(), AttentionSaved::recomputed()] {
            let ctx = context(&q, &k, &v, &spans, shape, 0.0, 0, &mut saved);
            let (mut dq, mut dk, mut dv) = (
                vec![0f32; t * hidden],
                vec![7f32; t * kv_hidden],
                vec![7f32; t * kv_hidden],
            );
            backward(
                &mut dq, &mut dk, &mut dv, &dctx, &q, &k, &v, &spans, shape, &saved, None,
            );
            let near = |got: f32, want: f64, what: &str| {
                assert!(
                    (got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "{what}: {got} vs {want}"
                );
            };
            for span in spans {
                let n = span.len;
                let (mut want_dk, mut want_dv) = (vec![0f64; n * d], vec![0f64; n * d]);
                for head in 0..shape.heads {
                    let (at_q, at_k) = (head * d, (head / 2) * d);
                    let [want_ctx, want_dq, dk_h, dv_h] = direct_causal(
                        &q[span.start * hidden..],
                        &k[span.start * kv_hidden..],
                        &v[span.start * kv_hidden..],
                        &dctx[span.start * hidden..],
                        (hidden, kv_hidden),
                        (at_q, at_k),
                        n,
                        d,
                    );
                    for i in 0..n {
                        for c in 0..d {
                            let at = (span.start + i) * hidden + at_q + c;
                            near(ctx[at], want_ctx[i * d + c], "ctx");
                            near(dq[at], want_dq[i * d + c], "dq");
                        }
                    }
                    want_dk.iter_mut().zip(&dk_h).for_each(|(a, b)| *a += b);
                    want_dv.iter_mut().zip(&dv_h).for_each(|(a, b)| *a += b);
                    if head % 2 == 1 {
                        for i in 0..n {
                            for c in 0..d {
                                let at = (span.start + i) * kv_hidden + at_k + c;
                                near(dk[at], want_dk[i * d + c], "dk");
                                near(dv[at], want_dv[i * d + c], "dv");
                            }
                        }
                        want_dk.fill(0.0);
                        want_dv.fill(0.0);
                    }
                }
            }
        }
        // With dropout on the probabilities (the same masks every pass: the same seed), the
        // blocked gradients match finite differences of the blocked forward pass, kept and
        // recomputed probabilities alike.
        let dropped = |q: &[f32], k: &[f32], v: &[f32], saved: &mut AttentionSaved| -> f64 {
            let ctx = context(q, k, v, &spans, shape, 0.3, 3, saved);
            ctx.iter().zip(&dctx).map(|(a, b)| (a * b) as f64).sum()
        };
        for mut saved in [AttentionSaved::default(), AttentionSaved::recomputed()] {
            dropped(&q, &k, &v, &mut saved);
            let (mut dq, mut dk, mut dv) = (
                vec![0f32; t * hidden],
                vec![0f32; t * kv_hidden],
                vec![0f32; t * kv_hidden],
            );
            backward(
                &mut dq, &mut dk, &mut dv, &dctx, &q, &k, &v, &spans, shape, &saved, None,
            );
            // Rows early and late in both sequences (the first and the last blocks).
            let picks = [
                (0, 5),
                (0, 150 * hidden + 7),
                (0, 330 * hidden + 3),
                (1, 3),
                (1, 190 * kv_hidden + 6),
                (1, 205 * kv_hidden + 1),
                (2, 11),
                (2, 120 * kv_hidden + 2),
                (2, 300 * kv_hidden + 5),
            ];
            for (which, i) in picks {
                let grad = [&dq, &dk, &dv][which][i] as f64;
                let mut inputs = [q.clone(), k.clone(), v.clone()];
                let h = 1e-2f32;
                inputs[which][i] += h;
                let up = dropped(&inputs[0], &inputs[1], &inputs[2], &mut Default::default());
                inputs[which][i] -= 2.0 * h;
                let down = dropped(&inputs[0], &inputs[1], &inputs[2], &mut Default::default());
                let want = (up - down) / (2.0 * h as f64);
                assert!(
                    (grad - want).abs() < 1e-2 * (1.0 + want.abs()),
                    "input {which}[{i}]: {grad} vs {want}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "past the last token")]
    fn spans_outside_the_buffers_are_refused() {
        let shape = AttentionShape::full(1, 2);
        let x = vec![0f32; 2];
        let mut ctx = vec![0f32; 2];
        let spans = [Span { start: 0, len: 3 }];
        forward(
            &mut ctx,
            &x,
            &x,
            &x,
            &spans,
            shape,
            0.0,
            &mut HoneRng::new(0, 0),
            &mut AttentionSaved::default(),
            None,
        );
    }

    #[test]
    #[should_panic(expected = "in order")]
    fn overlapping_spans_are_refused() {
        let shape = AttentionShape::full(1, 2);
        let x = vec![0f32; 8];
        let mut ctx = vec![0f32; 8];
        let spans = [Span { start: 0, len: 2 }, Span { start: 1, len: 2 }];
        forward(
            &mut ctx,
            &x,
            &x,
            &x,
            &spans,
            shape,
            0.0,
            &mut HoneRng::new(0, 0),
            &mut AttentionSaved::default(),
            None,
        );
    }

    #[test]
    fn dropout_on_probabilities_is_consistent_between_passes() {
        let shape = AttentionShape::full(1, 2);
        let spans = [Span { start: 0, len: 4 }];
        let mut rng = HoneRng::new(9, 9);
        let (q, k, v) = (rng.normal(8, 1.0), rng.normal(8, 1.0), rng.normal(8, 1.0));
        let w = rng.normal(8, 1.0);
        let run = |q: &[f32]| {
            let mut saved = AttentionSaved::default();
            let ctx = context(q, &k, &v, &spans, shape, 0.5, 1, &mut saved);
            (
                ctx.iter().zip(&w).map(|(a, b)| (a * b) as f64).sum::<f64>(),
                saved,
            )
        };
        let (_, saved) = run(&q);
        let (mut dq, mut dk, mut dv) = (vec![0f32; 8], vec![0f32; 8], vec![0f32; 8]);
        backward(
            &mut dq, &mut dk, &mut dv, &w, &q, &k, &v, &spans, shape, &saved, None,
        );
        for i in 0..8 {
            let mut a = q.clone();
            a[i] += 1e-2;
            let up = run(&a).0;
            a[i] -= 2e-2;
            let down = run(&a).0;
            let want = (up - down) / 2e-2;
            assert!((dq[i] as f64 - want).abs() < 2e-3, "dq[{i}]");
        }
    }

    #[test]
    fn recomputed_probabilities_give_the_kept_ones_results() {
        for (causal, dropout) in [(true, 0.0), (true, 0.3), (false, 0.2)] {
            let shape = AttentionShape {
                heads: 4,
                kv_heads: 2,
                head_dim: 3,
                causal,
            };
            let spans = [Span { start: 0, len: 5 }, Span { start: 6, len: 3 }];
            let t = 9;
            let mut rng = HoneRng::new(7, 7);
            let q = rng.normal(t * 12, 1.0);
            let k = rng.normal(t * 6, 1.0);
            let v = rng.normal(t * 6, 1.0);
            let w = rng.normal(t * 12, 1.0);
            let run = |mut saved: AttentionSaved| {
                let ctx = context(&q, &k, &v, &spans, shape, dropout, 2, &mut saved);
                let (mut dq, mut dk, mut dv) =
                    (vec![0f32; t * 12], vec![0f32; t * 6], vec![0f32; t * 6]);
                backward(
                    &mut dq, &mut dk, &mut dv, &w, &q, &k, &v, &spans, shape, &saved, None,
                );
                assert!(saved.probs.is_empty() == saved.log_sums.is_some());
                [ctx, dq, dk, dv]
            };
            let kept = run(AttentionSaved::default());
            let again = run(AttentionSaved::recomputed());
            for (a, b) in kept.iter().flatten().zip(again.iter().flatten()) {
                assert!((a - b).abs() < 1e-5, "{causal} {dropout}: {a} vs {b}");
            }
        }
    }

    fn relative_loss(inputs: &[Vec<f32>; 5], w: &[f32], spans: &[Span], rows: &[usize]) -> f64 {
        let shape = AttentionShape::full(2, 3);
        let mut ctx = vec![0f32; inputs[0].len()];
        let rel = RelativeTerms {
            position_keys: Some(&inputs[3]),
            position_queries: Some(&inputs[4]),
            rows,
            scale: 1.0 / 3.0,
        };
        forward(
            &mut ctx,
            &inputs[0],
            &inputs[1],
            &inputs[2],
            spans,
            shape,
            0.0,
            &mut HoneRng::new(0, 0),
            &mut AttentionSaved::default(),
            Some(&rel),
        );
        ctx.iter().zip(w).map(|(a, b)| (a * b) as f64).sum()
    }

    /// DeBERTa's disentangled scores against a direct computation, and every gradient
    /// (queries, keys, values and both position tables) against finite differences; the
    /// rows clamp at both ends.
    #[test]
    fn relative_terms_match_a_direct_computation_and_finite_differences() {
        let shape = AttentionShape::full(2, 3);
        let spans = [Span { start: 0, len: 4 }, Span { start: 4, len: 2 }];
        let t = 6;
        let buckets = crate::graph::RelativeBuckets {
            span: 2,
            buckets: 0,
            max_distance: 0,
        };
        let rows = buckets.rows(4);
        assert_eq!(rows, [0, 0, 1, 2, 3, 3, 3]);
        let mut rng = HoneRng::new(5, 5);
        let inputs = [
            rng.normal(t * 6, 1.0),
            rng.normal(t * 6, 1.0),
            rng.normal(t * 6, 1.0),
            rng.normal(4 * 6, 1.0),
            rng.normal(4 * 6, 1.0),
        ];
        let w = rng.normal(t * 6, 1.0);
        let [q, k, v, pk, pq] = &inputs;
        let rel = RelativeTerms {
            position_keys: Some(pk),
            position_queries: Some(pq),
            rows: &rows,
            scale: 1.0 / 3.0,
        };
        let mut ctx = vec![0f32; t * 6];
        let mut saved = AttentionSaved::default();
        forward(
            &mut ctx,
            q,
            k,
            v,
            &spans,
            shape,
            0.0,
            &mut rng,
            &mut saved,
            Some(&rel),
        );
        // Direct: token 1 of the first sequence, head 1.
        let dot = |a: &[f32], at: usize, b: &[f32], bt: usize| -> f64 {
            (0..3)
                .map(|d| (a[at * 6 + 3 + d] * b[bt * 6 + 3 + d]) as f64)
                .sum()
        };
        let row = |i: usize, j: usize| buckets.row(i as i64 - j as i64);
        let s: Vec<f64> = (0..4)
            .map(|j| {
                (dot(q, 1, k, j) + dot(q, 1, pk, row(1, j)) + dot(k, j, pq, row(1, j)))
                    / 9f64.sqrt()
            })
            .collect();
        let z: f64 = s.iter().map(|x| x.exp()).sum();
        for d in 0..3 {
            let want: f64 = (0..4)
                .map(|j| s[j].exp() / z * v[j * 6 + 3 + d] as f64)
                .sum();
            assert!((ctx[6 + 3 + d] as f64 - want).abs() < 1e-5);
        }
        let mut grads: Vec<Vec<f32>> = inputs.iter().map(|x| vec![0f32; x.len()]).collect();
        let [dq, dk, dv, dpk, dpq] = &mut grads[..] else {
            unreachable!()
        };
        backward(
            dq,
            dk,
            dv,
            &w,
            q,
            k,
            v,
            &spans,
            shape,
            &saved,
            Some((&rel, [Some(dpk), Some(dpq)])),
        );
        let h = 1e-2f32;
        for (which, grad) in grads.iter().enumerate() {
            for i in 0..grad.len() {
                let mut x = inputs.clone();
                x[which][i] += h;
                let up = relative_loss(&x, &w, &spans, &rows);
                x[which][i] -= 2.0 * h;
                let down = relative_loss(&x, &w, &spans, &rows);
                let want = (up - down) / (2.0 * h as f64);
                assert!(
                    (grad[i] as f64 - want).abs() < 2e-3,
                    "input {which}[{i}]: {} vs {want}",
                    grad[i]
                );
            }
        }
    }
}
