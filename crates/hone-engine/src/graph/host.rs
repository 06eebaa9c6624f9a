//! The CPU graph: every op is a fused f32 kernel over packed tokens (`crate::cpu`), and a
//! training forward records a tape of the ops whose output leads to a trained parameter.
//! [`Tape::backward`] runs that tape in reverse with each op's hand-derived backward, writing
//! parameter gradients straight into [`HostGrads`]. Ops that lead to no trained parameter
//! (frozen layers below the lowest trained one) are not recorded, so their backward costs
//! nothing. Every buffer comes from a [`Pool`] and goes back to it when its last user drops
//! it, so after the first step no large allocation (and no page fault) happens again.

use std::sync::{Arc, Mutex};

use candle_core::{Storage, StorageRef};

use super::{
    BiasBuckets, BiasedAttention, Disentangled, Graph, Heads, RelativeBuckets, Span, Stream,
    TokenIds, Tokens,
};
use crate::cpu::attention::{self, AttentionSaved, AttentionShape, RelativeTerms};
use crate::cpu::bf16::{PackedB, PackedCache, WeightPackings};
use crate::cpu::biased::{self, BiasTerms, BiasedSaved, BiasedShape};
use crate::cpu::decoder::{gated, gated_backward, rms_norm, rms_norm_backward, RotaryTable};
use crate::cpu::gemm::{linear, linear_backward, MatRef, Products};
use crate::cpu::grads::HostGrads;
use crate::cpu::int8::Int8Weights;
use crate::cpu::kernels::{
    activation, activation_backward, cross_entropy, layer_norm, layer_norm_backward, DropMask,
    NormStats,
};
use crate::cpu::lm_loss::{lm_head_loss, LmScratch};
use crate::cpu::prefix::{add_prefix_grad, narrow, widen, widened_spans, PrefixRows};
use crate::models::nn::{LayerNorm, RmsNorm, Rotary};
use crate::ops::Activation;
use crate::params::{Param, ParamStore};
use crate::prefix::PrefixAt;
use crate::rng::HoneRng;
use crate::EngineError;

/// Buffers kept for reuse: shared by every value of the graphs that use it. A buffer keeps the
/// longest length it ever had, so handing it out again for a shorter or equal size writes
/// nothing (no zero fill, no page faults).
#[derive(Clone, Default)]
pub struct Pool {
    free: Arc<Mutex<Vec<Vec<f32>>>>,
}

impl Pool {
    /// A buffer of at least `n` values, its contents unspecified: the shortest free buffer
    /// that holds `n`, else the longest (grown).
    fn take_vec(&self, n: usize) -> Vec<f32> {
        let mut v = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            let fits = (0..free.len())
                .filter(|&i| free[i].len() >= n)
                .min_by_key(|&i| free[i].len());
            let pick = fits.or_else(|| (0..free.len()).max_by_key(|&i| free[i].len()));
            pick.map(|i| free.swap_remove(i)).unwrap_or_default()
        };
        if v.len() < n {
            v.resize(n, 0.0);
        }
        v
    }

    /// Gives a buffer back.
    fn give_vec(&self, v: Vec<f32>) {
        if v.capacity() > 0 {
            if let Ok(mut free) = self.free.lock() {
                free.push(v);
            }
        }
    }

    /// A buffer of `n` values whose contents are unspecified (for kernels that write all of
    /// it).
    fn take(&self, n: usize) -> Buf {
        Buf {
            data: self.take_vec(n),
            len: n,
            pool: self.clone(),
        }
    }

    /// A zeroed buffer of `n` values.
    fn zeros(&self, n: usize) -> Buf {
        let mut b = self.take(n);
        b.fill(0.0);
        b
    }
}

/// A pooled buffer of `len` values: back to its pool when dropped.
pub struct Buf {
    data: Vec<f32>,
    len: usize,
    pool: Pool,
}

impl Drop for Buf {
    fn drop(&mut self) {
        self.pool.give_vec(std::mem::take(&mut self.data));
    }
}

impl std::ops::Deref for Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.data[..self.len]
    }
}

impl std::ops::DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.data[..self.len]
    }
}

/// A value of the host graph: `rows × cols` f32, row-major.
#[derive(Clone)]
pub struct HostValue {
    id: usize,
    data: Arc<Buf>,
    cols: usize,
    /// True when a trained parameter lies below (the value is on the tape).
    grad: bool,
}

impl HostValue {
    /// The values.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len() / self.cols.max(1)
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// Read access to every parameter's values for the length of a pass.
pub struct WeightGuards<'a> {
    guards: Vec<(StorageRef<'a>, &'a candle_core::Layout)>,
}

impl<'a> WeightGuards<'a> {
    /// Locks every parameter of `params` for reading.
    pub fn lock(params: &'a ParamStore) -> Self {
        WeightGuards {
            guards: params
                .all()
                .iter()
                .map(|p| p.var().storage_and_layout())
                .collect(),
        }
    }

    /// The parameter values as slices, by parameter index.
    pub fn weights(&self) -> Result<Weights<'_>, EngineError> {
        let mut slices = Vec::with_capacity(self.guards.len());
        for (storage, layout) in &self.guards {
            let Storage::Cpu(cpu) = &**storage else {
                return Err(EngineError::InvalidConfig(
                    "the CPU graph needs CPU tensors".into(),
                ));
            };
            let data = cpu.as_slice::<f32>()?;
            if !layout.is_contiguous() {
                return Err(EngineError::InvalidConfig(
                    "a parameter is not contiguous".into(),
                ));
            }
            slices.push(
                &data[layout.start_offset()..layout.start_offset() + layout.shape().elem_count()],
            );
        }
        Ok(Weights { slices })
    }
}

/// Parameter values by index (the model's parameter order).
pub struct Weights<'a> {
    slices: Vec<&'a [f32]>,
}

impl std::ops::Index<usize> for Weights<'_> {
    type Output = [f32];
    fn index(&self, i: usize) -> &[f32] {
        self.slices[i]
    }
}

/// True when every parameter is f32 on the CPU, so the host graph can run the model.
pub fn supports(params: &ParamStore) -> bool {
    params
        .all()
        .iter()
        .all(|p| p.var().device().is_cpu() && p.var().dtype() == candle_core::DType::F32)
}

struct Lin {
    w: usize,
    b: Option<usize>,
    in_f: usize,
    out_f: usize,
    /// The products' precision, for the backward pass's too.
    products: Products,
    /// The frozen weight's bf16 packing for the input's gradient.
    packed: Option<Arc<PackedB>>,
}

/// One recorded op: what its backward needs.
enum Op {
    Embed {
        lookups: Vec<(usize, TokenIds)>,
    },
    Linear {
        x: usize,
        x_data: Arc<Buf>,
        x_grad: bool,
        lin: Lin,
    },
    LayerNorm {
        x: usize,
        x_data: Arc<Buf>,
        x_grad: bool,
        g: usize,
        b: usize,
        stats: NormStats,
    },
    Activation {
        x: usize,
        pre: Arc<Buf>,
        act: Activation,
    },
    Dropout {
        x: usize,
        mask: DropMask,
    },
    DropoutAdd {
        x: Option<usize>,
        residual: Option<usize>,
        mask: DropMask,
    },
    Attention {
        inputs: [(usize, bool); 3],
        data: [Arc<Buf>; 3],
        shape: AttentionShape,
        saved: AttentionSaved,
        /// DeBERTa's position terms (disentangled attention).
        positions: Option<SavedPositions>,
    },
    /// Attention over the batch widened with a layer's prefix rows (`crate::cpu::prefix`).
    PrefixAttention {
        inputs: [(usize, bool); 3],
        /// The widened queries, keys and values.
        data: [Arc<Buf>; 3],
        shape: AttentionShape,
        saved: AttentionSaved,
        wide: Vec<Span>,
        /// The prefix table's value (when it takes a gradient) and where the layer's keys
        /// and values sit in it.
        table: Option<usize>,
        stride: usize,
        columns: [usize; 2],
        tokens: usize,
    },
    /// A whole parameter as a value.
    Table {
        param: usize,
    },
    FirstTokens {
        x: usize,
    },
    FirstTokenAttention {
        inputs: [(usize, bool); 3],
        data: [Arc<Buf>; 3],
        heads: usize,
        saved: crate::cpu::first_token::FirstTokenSaved,
    },
    AddScaled {
        x: Option<usize>,
        y: Option<usize>,
        scale: f32,
    },
    RmsNorm {
        x: usize,
        x_data: Arc<Buf>,
        x_grad: bool,
        g: usize,
        rstd: Vec<f32>,
    },
    Rotary {
        x: usize,
        heads: usize,
        table: Arc<RotaryTable>,
    },
    Gated {
        gate: (usize, bool),
        up: (usize, bool),
        data: [Arc<Buf>; 2],
        act: Activation,
    },
    /// T5's attention (`crate::cpu::biased`); the keys and values are the source stream's
    /// when `cross`.
    BiasedAttention {
        inputs: [(usize, bool); 3],
        data: [Arc<Buf>; 3],
        shape: BiasedShape,
        saved: BiasedSaved,
        cross: bool,
        bias: Option<SavedBias>,
    },
}

/// What a biased attention call keeps of its position bias for the backward pass.
struct SavedBias {
    /// The table's value and whether it takes a gradient.
    id: usize,
    grad: bool,
    table: Arc<Buf>,
    /// The bucket of every distance.
    buckets: Arc<[usize]>,
}

impl SavedBias {
    fn terms(&self) -> BiasTerms<'_> {
        BiasTerms {
            table: &self.table,
            buckets: &self.buckets,
        }
    }
}

/// What a disentangled attention call keeps of its position terms for the backward pass.
struct SavedPositions {
    /// The position keys and queries (c2p, p2c): value id, whether it takes a gradient, data.
    tables: [Option<(usize, bool, Arc<Buf>)>; 2],
    /// The relative row of every distance (`RelativeBuckets::rows`), shared by the layers.
    rows: Arc<[usize]>,
    scale: f32,
}

impl SavedPositions {
    fn terms(&self) -> RelativeTerms<'_> {
        let [keys, queries] = &self.tables;
        RelativeTerms {
            position_keys: keys.as_ref().map(|(_, _, d)| &d[..]),
            position_queries: queries.as_ref().map(|(_, _, d)| &d[..]),
            rows: &self.rows,
            scale: self.scale,
        }
    }
}

struct Node {
    out: usize,
    cols: usize,
    /// The token stream the op ran over.
    stream: Stream,
    op: Op,
}

/// A forward pass on the CPU over one packed batch.
pub struct HostGraph<'a> {
    /// The batch.
    root: &'a Tokens,
    /// The tokens of the stream the ops run over now.
    tokens: &'a Tokens,
    stream: Stream,
    /// T5's bucket of every distance for the buckets and longest sequence they were made for
    /// (every layer uses the same).
    bias_buckets: Option<(BiasBuckets, usize, Arc<[usize]>)>,
    weights: &'a Weights<'a>,
    params: &'a ParamStore,
    /// Which parameters are trained (have a gradient buffer) right now.
    trained: Vec<bool>,
    train: bool,
    record: bool,
    rng: &'a mut HoneRng,
    pool: Pool,
    tape: Vec<Node>,
    next_id: usize,
    /// The rotary angles of this batch's positions (every layer uses the same).
    rotary: Option<(Rotary, Arc<RotaryTable>)>,
    /// Generation: the keys and values of the tokens before this batch's, per layer.
    cache: Option<&'a mut attention::KvCache>,
    /// DeBERTa's relative row of every distance in this batch (every layer uses the same).
    relative_rows: Option<(RelativeBuckets, Arc<[usize]>)>,
    /// Evaluation in int8: the linear layers' quantized weights (`crate::cpu::int8`).
    int8: Option<&'a Int8Weights>,
    /// T5 generation: the decoder's keys and values of the passes before this one.
    decoder_cache: Option<&'a mut biased::DecoderCache>,
    /// The dense layers' products in bf16, the frozen weights' packings kept here across
    /// steps; `None`: in f32.
    bf16: Option<Arc<PackedCache>>,
}

impl<'a> HostGraph<'a> {
    /// A graph over `tokens`. `grads` (training) says which parameters are trained and turns
    /// on dropout and the tape; `None` is an evaluation pass.
    pub fn new(
        tokens: &'a Tokens,
        params: &'a ParamStore,
        weights: &'a Weights<'a>,
        grads: Option<&HostGrads>,
        rng: &'a mut HoneRng,
        pool: Pool,
    ) -> Self {
        let trained = (0..params.all().len())
            .map(|i| grads.is_some_and(|g| g.is_active(i)))
            .collect();
        HostGraph {
            root: tokens,
            tokens,
            stream: Stream::Main,
            bias_buckets: None,
            weights,
            params,
            trained,
            train: grads.is_some(),
            record: grads.is_some(),
            rng,
            pool,
            tape: Vec::new(),
            next_id: 0,
            rotary: None,
            cache: None,
            relative_rows: None,
            int8: None,
            decoder_cache: None,
            bf16: None,
        }
    }

    /// Runs the dense layers' products (forward and backward) with bf16 operands and f32
    /// sums, as mixed precision does on a GPU, when `bf16` holds the stepper's cache of the
    /// frozen weights' packings ([`Products::Bf16`]).
    pub fn with_bf16(mut self, bf16: Option<&Arc<PackedCache>>) -> Self {
        self.bf16 = bf16.cloned();
        self
    }

    /// The precision of the dense layers' products.
    fn products(&self) -> Products {
        match self.bf16 {
            Some(_) => Products::Bf16,
            None => Products::F32,
        }
    }

    /// Weight `w`'s kept bf16 packings ([`PackedCache::weight`]; the backward one when
    /// `backward`): only a frozen weight has them, and an evaluation pass packs a weight
    /// that is not frozen afresh.
    fn packings(&self, w: usize, out_f: usize, in_f: usize, backward: bool) -> WeightPackings {
        let Some(cache) = &self.bf16 else {
            return WeightPackings::default();
        };
        let param = &self.params.all()[w];
        let frozen = !self.trained[w] && param.is_frozen();
        let weight = MatRef::new(&self.weights[w], out_f, in_f);
        cache.weight(param.var().id(), frozen, weight, backward)
    }

    /// An evaluation pass of one target sequence that continues T5's decoder `cache`: the
    /// encoder runs on the first pass only, each biased attention reads and extends the cache.
    pub fn with_decoder_cache(mut self, cache: &'a mut biased::DecoderCache) -> Self {
        cache.start_pass();
        self.decoder_cache = Some(cache);
        self
    }

    /// An evaluation pass whose linear layers run in int8 with `weights`' quantized copies
    /// (a training pass ignores them).
    pub fn with_int8(mut self, weights: Option<&'a Int8Weights>) -> Self {
        self.int8 = weights.filter(|_| !self.train);
        self
    }

    /// An evaluation pass of one sequence that continues the tokens in `cache`: each
    /// attention attends to them too and adds this pass's keys and values to them.
    pub fn with_cache(mut self, cache: &'a mut attention::KvCache) -> Self {
        cache.start_pass();
        self.cache = Some(cache);
        self
    }

    fn index(&self, p: &Param) -> Result<usize, EngineError> {
        self.params.index_of(p.name()).ok_or_else(|| {
            EngineError::InvalidConfig(format!("{} is not a parameter of this model", p.name()))
        })
    }

    fn value(&mut self, data: Buf, cols: usize, grad: bool, op: impl FnOnce() -> Op) -> HostValue {
        if !(grad && self.record) {
            return self.untracked(data, cols);
        }
        let id = self.next_id;
        self.next_id += 1;
        let op = op();
        self.tape.push(Node {
            out: id,
            cols,
            stream: self.stream,
            op,
        });
        HostValue {
            id,
            data: Arc::new(data),
            cols,
            grad: true,
        }
    }

    /// The buffer of a value to work on in place: its own when nobody else holds it, else a
    /// pooled copy.
    fn owned(&self, data: Arc<Buf>) -> Buf {
        Arc::try_unwrap(data).unwrap_or_else(|shared| {
            let mut b = self.pool.take(shared.len());
            b.copy_from_slice(&shared);
            b
        })
    }

    /// A value no backward pass will visit.
    fn untracked(&mut self, data: Buf, cols: usize) -> HostValue {
        let id = self.next_id;
        self.next_id += 1;
        HostValue {
            id,
            data: Arc::new(data),
            cols,
            grad: false,
        }
    }

    /// What an attention call over `spans` keeps for its backward pass. A decoder's attention
    /// over long sequences keeps each row's log-sum-exp, not its probabilities: the backward
    /// pass recomputes them (len² per head and layer would otherwise stay); short batches
    /// keep them, which is faster.
    fn attention_saved(&self, spans: &[Span], heads: Heads) -> AttentionSaved {
        let probs = spans.iter().map(|s| s.len * s.len).sum::<usize>() * heads.query;
        if heads.causal && attention::recompute_pays(probs) {
            AttentionSaved::recomputed()
        } else {
            AttentionSaved::with_buffer(self.pool.take_vec(probs))
        }
    }

    /// The relative row of every distance in this batch, made once for every layer.
    fn relative_rows(&mut self, buckets: RelativeBuckets) -> Arc<[usize]> {
        match &self.relative_rows {
            Some((made_for, rows)) if *made_for == buckets => rows.clone(),
            _ => {
                let rows: Arc<[usize]> = buckets.rows(self.tokens.max_len()).into();
                self.relative_rows = Some((buckets, rows.clone()));
                rows
            }
        }
    }

    /// Checks that DeBERTa's position tables are `[2·span × hidden]`.
    fn check_positions(
        positions: &Disentangled<'_, HostValue>,
        hidden: usize,
    ) -> Result<(), EngineError> {
        let span = positions.buckets.span;
        for table in [positions.position_keys, positions.position_queries]
            .into_iter()
            .flatten()
        {
            if table.cols != hidden || table.rows() != 2 * span {
                return Err(EngineError::InvalidConfig(format!(
                    "position terms of {} × {} do not fit {} relative rows of {hidden} features",
                    table.rows(),
                    table.cols,
                    2 * span
                )));
            }
        }
        Ok(())
    }

    /// Attention over the batch's sequences, with DeBERTa's position terms when given; a
    /// generation pass (no position terms) attends through the cache.
    fn attend(
        &mut self,
        q: &HostValue,
        k: &HostValue,
        v: &HostValue,
        heads: Heads,
        p: f64,
        positions: Option<Disentangled<'_, HostValue>>,
    ) -> Result<HostValue, EngineError> {
        let hidden = q.cols;
        let shape = Self::attention_shape(q, k, v, heads)?;
        let p = if self.train { p } else { 0.0 };
        let mut out = self.pool.take(q.data.len());
        if let Some(cache) = self.cache.as_deref_mut() {
            if positions.is_some() {
                return Err(EngineError::InvalidConfig(
                    "disentangled attention is an encoder's: it does not generate".into(),
                ));
            }
            cache.attend(&mut out, &q.data, &k.data, &v.data, shape)?;
            return Ok(self.untracked(out, hidden));
        }
        let saved_positions = match &positions {
            None => None,
            Some(positions) => {
                Self::check_positions(positions, hidden)?;
                let tables = [positions.position_keys, positions.position_queries];
                Some(SavedPositions {
                    tables: tables.map(|t| t.map(|t| (t.id, t.grad, t.data.clone()))),
                    rows: self.relative_rows(positions.buckets),
                    scale: positions.scale(shape.head_dim) as f32,
                })
            }
        };
        let mut saved = self.attention_saved(self.tokens.spans(), heads);
        attention::forward(
            &mut out,
            &q.data,
            &k.data,
            &v.data,
            self.tokens.spans(),
            shape,
            p,
            self.rng,
            &mut saved,
            saved_positions.as_ref().map(|s| s.terms()).as_ref(),
        );
        let positions_grad = saved_positions
            .as_ref()
            .is_some_and(|s| s.tables.iter().flatten().any(|(_, grad, _)| *grad));
        let grad = (q.grad || k.grad || v.grad || positions_grad) && self.record;
        if !grad {
            self.pool.give_vec(saved.into_buffer());
            return Ok(self.untracked(out, hidden));
        }
        Ok(self.value(out, hidden, grad, || Op::Attention {
            inputs: [(q.id, q.grad), (k.id, k.grad), (v.id, v.grad)],
            data: [q.data.clone(), k.data.clone(), v.data.clone()],
            shape,
            saved,
            positions: saved_positions,
        }))
    }

    /// The attention shape of `heads` over queries `q` and keys `k`, `v`.
    fn attention_shape(
        q: &HostValue,
        k: &HostValue,
        v: &HostValue,
        heads: Heads,
    ) -> Result<AttentionShape, EngineError> {
        let head_dim = heads.head_dim(q.cols, k.cols)?;
        if v.cols != k.cols {
            return Err(EngineError::InvalidConfig(format!(
                "attention keys have {} features and values {}",
                k.cols, v.cols
            )));
        }
        Ok(AttentionShape {
            heads: heads.query,
            kv_heads: heads.key_value,
            head_dim,
            causal: heads.causal,
        })
    }

    /// Ends the forward pass; the tape runs the backward pass.
    pub fn finish(self) -> Tape<'a> {
        Tape {
            nodes: self.tape,
            values: self.next_id,
            pool: self.pool,
            tokens: self.root,
        }
    }
}

impl Graph for HostGraph<'_> {
    type Value = HostValue;

    fn tokens(&self) -> &Tokens {
        self.tokens
    }

    fn is_train(&self) -> bool {
        self.train
    }

    fn continues_cache(&self) -> bool {
        self.cache.is_some() || self.decoder_cache.as_ref().is_some_and(|c| c.is_filled())
    }

    fn embed(&mut self, lookups: &[(&Param, TokenIds)]) -> Result<HostValue, EngineError> {
        let first = lookups
            .first()
            .ok_or_else(|| EngineError::InvalidConfig("an embedding needs a table".into()))?;
        let h = first.0.var().dims().last().copied().unwrap_or(0);
        let t = self.tokens.len();
        let mut out = self.pool.zeros(t * h);
        let mut resolved = Vec::with_capacity(lookups.len());
        for (param, which) in lookups {
            let i = self.index(param)?;
            // `Tokens::pack` checked every id against the model's tables.
            let table = &self.weights[i];
            let ids = self.tokens.ids(*which);
            for (row, &id) in out.chunks_exact_mut(h).zip(ids) {
                let src = &table[id as usize * h..][..h];
                row.iter_mut().zip(src).for_each(|(o, v)| *o += v);
            }
            resolved.push((i, *which));
        }
        let grad = resolved.iter().any(|(i, _)| self.trained[*i]);
        Ok(self.value(out, h, grad, || Op::Embed { lookups: resolved }))
    }

    fn dense(
        &mut self,
        x: &HostValue,
        weight: &Param,
        bias: Option<&Param>,
    ) -> Result<HostValue, EngineError> {
        let w = self.index(weight)?;
        let b = bias.map(|b| self.index(b)).transpose()?;
        let dims = weight.var().dims();
        let (out_f, in_f) = (dims[0], dims[1]);
        if x.cols != in_f {
            return Err(EngineError::InvalidConfig(format!(
                "{} takes {in_f} features, got {}",
                weight.name(),
                x.cols
            )));
        }
        let rows = x.rows();
        let mut out = self.pool.take(rows * out_f);
        if let Some(quantized) = self
            .int8
            .and_then(|table| table.get(w, &self.weights[w], out_f, in_f))
        {
            quantized.forward(&mut out, &x.data, rows, b.map(|b| &self.weights[b]));
            return Ok(self.untracked(out, out_f));
        }
        let products = self.products();
        let packed = self.packings(w, out_f, in_f, x.grad);
        linear(
            &mut out,
            &x.data,
            rows,
            &self.weights[w],
            b.map(|b| &self.weights[b]),
            in_f,
            out_f,
            products,
            packed.forward.as_deref(),
        );
        let grad = x.grad || self.trained[w] || b.is_some_and(|b| self.trained[b]);
        Ok(self.value(out, out_f, grad, || Op::Linear {
            x: x.id,
            x_data: x.data.clone(),
            x_grad: x.grad,
            lin: Lin {
                w,
                b,
                in_f,
                out_f,
                products,
                packed: packed.backward,
            },
        }))
    }

    fn add_scaled(
        &mut self,
        x: HostValue,
        y: &HostValue,
        scale: f64,
    ) -> Result<HostValue, EngineError> {
        if x.data.len() != y.data.len() {
            return Err(EngineError::InvalidConfig(format!(
                "cannot add {} values to {}",
                y.data.len(),
                x.data.len()
            )));
        }
        let (id, cols, x_grad) = (x.id, x.cols, x.grad);
        let mut out = self.owned(x.data);
        let s = scale as f32;
        out.iter_mut()
            .zip(y.data.iter())
            .for_each(|(o, v)| *o += s * v);
        Ok(self.value(out, cols, x_grad || y.grad, || Op::AddScaled {
            x: x_grad.then_some(id),
            y: y.grad.then_some(y.id),
            scale: s,
        }))
    }

    fn layer_norm(&mut self, x: &HostValue, norm: &LayerNorm) -> Result<HostValue, EngineError> {
        let (g, b) = (self.index(norm.weight())?, self.index(norm.bias())?);
        let mut out = self.pool.take(x.data.len());
        let mut stats = NormStats::default();
        layer_norm(
            &mut out,
            &x.data,
            &self.weights[g],
            &self.weights[b],
            norm.eps() as f32,
            x.cols,
            &mut stats,
        );
        let grad = x.grad || self.trained[g] || self.trained[b];
        Ok(self.value(out, x.cols, grad, || Op::LayerNorm {
            x: x.id,
            x_data: x.data.clone(),
            x_grad: x.grad,
            g,
            b,
            stats,
        }))
    }

    fn activation(&mut self, x: &HostValue, act: Activation) -> Result<HostValue, EngineError> {
        let mut out = self.pool.take(x.data.len());
        out.copy_from_slice(&x.data);
        activation(&mut out, act);
        Ok(self.value(out, x.cols, x.grad, || Op::Activation {
            x: x.id,
            pre: x.data.clone(),
            act,
        }))
    }

    fn dropout(&mut self, x: HostValue, p: f64) -> Result<HostValue, EngineError> {
        let p = if self.train { p } else { 0.0 };
        let mask = DropMask::draw(self.rng, x.data.len(), p);
        if mask.is_identity() {
            return Ok(x);
        }
        let (id, cols, grad) = (x.id, x.cols, x.grad);
        let mut out = self.owned(x.data);
        mask.apply(&mut out);
        Ok(self.value(out, cols, grad, || Op::Dropout { x: id, mask }))
    }

    fn dropout_add(
        &mut self,
        x: HostValue,
        p: f64,
        residual: &HostValue,
    ) -> Result<HostValue, EngineError> {
        let p = if self.train { p } else { 0.0 };
        let mask = DropMask::draw(self.rng, x.data.len(), p);
        let (id, cols, x_grad) = (x.id, x.cols, x.grad);
        let mut out = self.owned(x.data);
        mask.apply_add(&mut out, &residual.data);
        let grad = x_grad || residual.grad;
        Ok(self.value(out, cols, grad, || Op::DropoutAdd {
            x: x_grad.then_some(id),
            residual: residual.grad.then_some(residual.id),
            mask,
        }))
    }

    fn attention(
        &mut self,
        q: &HostValue,
        k: &HostValue,
        v: &HostValue,
        heads: Heads,
        p: f64,
    ) -> Result<HostValue, EngineError> {
        self.attend(q, k, v, heads, p, None)
    }

    fn prefix_attention(
        &mut self,
        q: &HostValue,
        k: &HostValue,
        v: &HostValue,
        heads: Heads,
        p: f64,
        table: &HostValue,
        at: PrefixAt,
    ) -> Result<HostValue, EngineError> {
        if self.cache.is_some() {
            // Generation: the prefix rows are the cache's first tokens (`KvCache::with_prefix`).
            return self.attention(q, k, v, heads, p);
        }
        let shape = Self::attention_shape(q, k, v, heads)?;
        let (hidden, width) = (q.cols, k.cols);
        let stride = table.cols;
        if at.width != width || at.value_column() + width > stride || table.rows() != at.tokens {
            return Err(EngineError::InvalidConfig(format!(
                "a prefix table of {} × {stride} has no {} rows of {} values for keys of \
                 {width} features",
                table.rows(),
                at.tokens,
                at.width
            )));
        }
        let p = if self.train { p } else { 0.0 };
        let spans = self.tokens.spans();
        let wide = widened_spans(spans, at.tokens);
        let rows = self.tokens.len() + at.tokens * spans.len();
        let table_rows = |column| PrefixRows {
            table: &table.data,
            stride,
            column,
        };
        let (mut qx, mut kx, mut vx) = (
            self.pool.take(rows * hidden),
            self.pool.take(rows * width),
            self.pool.take(rows * width),
        );
        widen(&mut qx, &q.data, hidden, spans, &wide, None);
        let columns = [at.key_column, at.value_column()];
        widen(
            &mut kx,
            &k.data,
            width,
            spans,
            &wide,
            Some(table_rows(columns[0])),
        );
        widen(
            &mut vx,
            &v.data,
            width,
            spans,
            &wide,
            Some(table_rows(columns[1])),
        );
        let mut out_x = self.pool.take(rows * hidden);
        let mut saved = self.attention_saved(&wide, heads);
        attention::forward(
            &mut out_x, &qx, &kx, &vx, &wide, shape, p, self.rng, &mut saved, None,
        );
        let mut out = self.pool.take(q.data.len());
        narrow(&mut out, &out_x, hidden, spans, &wide);
        drop(out_x);
        let grad = (q.grad || k.grad || v.grad || table.grad) && self.record;
        if !grad {
            self.pool.give_vec(saved.into_buffer());
            return Ok(self.untracked(out, hidden));
        }
        Ok(self.value(out, hidden, grad, || Op::PrefixAttention {
            inputs: [(q.id, q.grad), (k.id, k.grad), (v.id, v.grad)],
            data: [Arc::new(qx), Arc::new(kx), Arc::new(vx)],
            shape,
            saved,
            wide,
            table: table.grad.then_some(table.id),
            stride,
            columns,
            tokens: at.tokens,
        }))
    }

    fn disentangled_attention(
        &mut self,
        q: &HostValue,
        k: &HostValue,
        v: &HostValue,
        heads: usize,
        p: f64,
        positions: Disentangled<'_, HostValue>,
    ) -> Result<HostValue, EngineError> {
        self.attend(q, k, v, Heads::full(heads), p, Some(positions))
    }

    fn table(&mut self, param: &Param) -> Result<HostValue, EngineError> {
        let i = self.index(param)?;
        let cols = param.var().dims().last().copied().unwrap_or(0);
        let values = &self.weights[i];
        let mut out = self.pool.take(values.len());
        out.copy_from_slice(values);
        let grad = self.trained[i];
        Ok(self.value(out, cols, grad, || Op::Table { param: i }))
    }

    fn rms_norm(&mut self, x: &HostValue, norm: &RmsNorm) -> Result<HostValue, EngineError> {
        let g = self.index(norm.weight())?;
        let mut out = self.pool.take(x.data.len());
        let mut rstd = Vec::new();
        rms_norm(
            &mut out,
            &x.data,
            &self.weights[g],
            norm.eps() as f32,
            x.cols,
            &mut rstd,
        );
        let grad = x.grad || self.trained[g];
        Ok(self.value(out, x.cols, grad, || Op::RmsNorm {
            x: x.id,
            x_data: x.data.clone(),
            x_grad: x.grad,
            g,
            rstd,
        }))
    }

    fn rotary(
        &mut self,
        x: HostValue,
        heads: usize,
        rope: &Rotary,
    ) -> Result<HostValue, EngineError> {
        if heads == 0 || x.cols != heads * 2 * rope.inv_freq.len() {
            return Err(EngineError::InvalidConfig(format!(
                "rotary embeddings of {} frequencies do not fit {heads} heads of {} features",
                rope.inv_freq.len(),
                x.cols
            )));
        }
        let table = match &self.rotary {
            Some((r, table)) if r == rope => table.clone(),
            _ => {
                let table = Arc::new(RotaryTable::new(
                    self.tokens.ids(TokenIds::Positions),
                    &rope.inv_freq,
                    rope.attention_scaling,
                ));
                self.rotary = Some((rope.clone(), table.clone()));
                table
            }
        };
        let (id, cols, grad) = (x.id, x.cols, x.grad);
        let mut out = self.owned(x.data);
        table.apply(&mut out, heads, false);
        Ok(self.value(out, cols, grad, || Op::Rotary {
            x: id,
            heads,
            table,
        }))
    }

    fn gated(
        &mut self,
        gate: &HostValue,
        up: &HostValue,
        act: Activation,
    ) -> Result<HostValue, EngineError> {
        if gate.data.len() != up.data.len() {
            return Err(EngineError::InvalidConfig(format!(
                "a gate of {} values for {} values",
                gate.data.len(),
                up.data.len()
            )));
        }
        let mut out = self.pool.take(gate.data.len());
        gated(&mut out, &gate.data, &up.data, act);
        Ok(
            self.value(out, gate.cols, gate.grad || up.grad, || Op::Gated {
                gate: (gate.id, gate.grad),
                up: (up.id, up.grad),
                data: [gate.data.clone(), up.data.clone()],
                act,
            }),
        )
    }

    fn first_tokens(&mut self, x: &HostValue) -> Result<HostValue, EngineError> {
        let h = x.cols;
        let spans = self.tokens.spans();
        let mut out = self.pool.take(spans.len() * h);
        for (row, span) in out.chunks_exact_mut(h).zip(spans) {
            row.copy_from_slice(&x.data[span.start * h..][..h]);
        }
        Ok(self.value(out, h, x.grad, || Op::FirstTokens { x: x.id }))
    }

    fn first_token_attention(
        &mut self,
        q: &HostValue,
        k: &HostValue,
        v: &HostValue,
        heads: usize,
        p: f64,
    ) -> Result<HostValue, EngineError> {
        let spans = self.tokens.spans();
        let hidden = q.cols;
        if heads == 0
            || !hidden.is_multiple_of(heads)
            || q.rows() != spans.len()
            || k.cols != hidden
            || v.cols != hidden
            || k.rows() != self.tokens.len()
            || v.rows() != self.tokens.len()
        {
            return Err(EngineError::InvalidConfig(format!(
                "first-token attention of {heads} heads: {} queries of {hidden} features for \
                 {} sequences, keys {} × {}, values {} × {}",
                q.rows(),
                spans.len(),
                k.rows(),
                k.cols,
                v.rows(),
                v.cols
            )));
        }
        let p = if self.train { p } else { 0.0 };
        let total = self.tokens.len() * heads;
        let mask = DropMask::draw(self.rng, total, p);
        let mut out = self.pool.take(q.data.len());
        let saved = crate::cpu::first_token::forward(
            &mut out, &q.data, &k.data, &v.data, spans, heads, mask,
        );
        let grad = (q.grad || k.grad || v.grad) && self.record;
        if !grad {
            return Ok(self.untracked(out, hidden));
        }
        Ok(self.value(out, hidden, grad, || Op::FirstTokenAttention {
            inputs: [(q.id, q.grad), (k.id, k.grad), (v.id, v.grad)],
            data: [q.data.clone(), k.data.clone(), v.data.clone()],
            heads,
            saved,
        }))
    }

    fn stream(&self) -> Stream {
        self.stream
    }

    fn select_stream(&mut self, stream: Stream) -> Result<(), EngineError> {
        if stream != self.stream {
            self.tokens = self.root.stream(stream)?;
            self.stream = stream;
            // Made for the other stream's positions and lengths.
            self.rotary = None;
            self.relative_rows = None;
        }
        Ok(())
    }

    fn biased_attention(
        &mut self,
        q: &HostValue,
        k: &HostValue,
        v: &HostValue,
        a: BiasedAttention<'_, HostValue>,
    ) -> Result<HostValue, EngineError> {
        if self.cache.is_some() {
            return Err(EngineError::InvalidConfig(
                "T5's attention does not continue a decoder's key/value cache".into(),
            ));
        }
        let hidden = q.cols;
        if let Some(cache) = self.decoder_cache.as_deref_mut() {
            if self.stream == Stream::Main {
                if self.tokens.sequences() != 1 || a.heads == 0 || !hidden.is_multiple_of(a.heads) {
                    return Err(EngineError::InvalidConfig(
                        "a cached decoder pass takes one sequence".into(),
                    ));
                }
                let shape = BiasedShape {
                    heads: a.heads,
                    head_dim: hidden / a.heads,
                    causal: a.causal,
                };
                let mut out = self.pool.take(q.data.len());
                let bias = a.bias.as_ref().map(|b| (&b.table.data[..], b.buckets));
                cache.attend(&mut out, &q.data, &k.data, &v.data, shape, a.cross, bias);
                return Ok(self.untracked(out, hidden));
            }
        }
        if a.heads == 0 || !hidden.is_multiple_of(a.heads) || k.cols != hidden || v.cols != hidden {
            return Err(EngineError::InvalidConfig(format!(
                "{} heads over queries of {hidden}, keys of {} and values of {} features",
                a.heads, k.cols, v.cols
            )));
        }
        if a.cross && self.stream != Stream::Main {
            return Err(EngineError::InvalidConfig(
                "cross-attention runs from the decoder's stream to the source".into(),
            ));
        }
        let kv_tokens = if a.cross {
            self.root.stream(Stream::Source)?
        } else {
            self.tokens
        };
        if k.rows() != kv_tokens.len() || v.rows() != kv_tokens.len() {
            return Err(EngineError::InvalidConfig(format!(
                "attention keys of {} rows over {} tokens",
                k.rows(),
                kv_tokens.len()
            )));
        }
        let shape = BiasedShape {
            heads: a.heads,
            head_dim: hidden / a.heads,
            causal: a.causal,
        };
        let bias = match &a.bias {
            None => None,
            Some(b) => {
                if b.table.cols != a.heads || b.table.rows() != b.buckets.buckets {
                    return Err(EngineError::InvalidConfig(format!(
                        "a position bias of {} × {} for {} buckets and {} heads",
                        b.table.rows(),
                        b.table.cols,
                        b.buckets.buckets,
                        a.heads
                    )));
                }
                let longest = self.tokens.max_len().max(kv_tokens.max_len());
                let rows = match &self.bias_buckets {
                    Some((made_for, n, rows)) if *made_for == b.buckets && *n == longest => {
                        rows.clone()
                    }
                    _ => {
                        let rows: Arc<[usize]> = b.buckets.all(longest).into();
                        self.bias_buckets = Some((b.buckets, longest, rows.clone()));
                        rows
                    }
                };
                Some(SavedBias {
                    id: b.table.id,
                    grad: b.table.grad,
                    table: b.table.data.clone(),
                    buckets: rows,
                })
            }
        };
        let p = if self.train { a.p } else { 0.0 };
        let (q_spans, kv_spans) = (self.tokens.spans(), kv_tokens.spans());
        let mut saved = BiasedSaved::with_buffer(
            self.pool
                .take_vec(biased::probabilities(q_spans, kv_spans, a.heads)),
        );
        let mut out = self.pool.take(q.data.len());
        let terms = bias.as_ref().map(SavedBias::terms);
        biased::forward(
            &mut out,
            &q.data,
            &k.data,
            &v.data,
            q_spans,
            kv_spans,
            shape,
            terms.as_ref(),
            p,
            self.rng,
            &mut saved,
        );
        let bias_grad = bias.as_ref().is_some_and(|b| b.grad);
        let grad = (q.grad || k.grad || v.grad || bias_grad) && self.record;
        if !grad {
            self.pool.give_vec(saved.into_buffer());
            return Ok(self.untracked(out, hidden));
        }
        Ok(self.value(out, hidden, grad, || Op::BiasedAttention {
            inputs: [(q.id, q.grad), (k.id, k.grad), (v.id, v.grad)],
            data: [q.data.clone(), k.data.clone(), v.data.clone()],
            shape,
            saved,
            cross: a.cross,
            bias,
        }))
    }
}

/// A language model's output layer (`weight`, no bias) and its cross-entropy against
/// `labels` (one per row of `hidden`) in one chunked pass ([`lm_head_loss`]): the summed loss,
/// and `∂(loss · scale)/∂hidden`; the layer's weight gradient is added to `grads` when it
/// trains (a tied embedding, in full fine-tuning). `smoothing` is label smoothing's ε.
/// `scratch` holds the chunk buffers across steps.
#[allow(clippy::too_many_arguments)]
pub fn language_model_loss_grad(
    hidden: &HostValue,
    weight: &Param,
    params: &ParamStore,
    weights: &Weights,
    labels: &[u32],
    scale: f64,
    smoothing: f64,
    pool: &Pool,
    grads: &mut HostGrads,
    scratch: &mut LmScratch,
    bf16: Option<&PackedCache>,
) -> Result<(f64, Buf), EngineError> {
    let w = params.index_of(weight.name()).ok_or_else(|| {
        EngineError::InvalidConfig(format!(
            "{} is not a parameter of this model",
            weight.name()
        ))
    })?;
    let dims = weight.var().dims();
    let (vocab, h) = (dims[0], dims[1]);
    if hidden.cols != h || labels.len() != hidden.rows() {
        return Err(EngineError::InvalidConfig(format!(
            "{} labels for {} rows of {} features; the output layer takes {h}",
            labels.len(),
            hidden.rows(),
            hidden.cols
        )));
    }
    if let Some(&bad) = labels
        .iter()
        .find(|&&y| y != super::IGNORE_LABEL && y as usize >= vocab)
    {
        return Err(EngineError::InvalidConfig(format!(
            "token {bad} is past the model's {vocab}-word vocabulary"
        )));
    }
    let mut d_hidden = pool.take(hidden.data.len());
    let (products, packed) = match bf16 {
        Some(cache) => {
            let param = &params.all()[w];
            let frozen = grads.get_mut(w).is_none() && param.is_frozen();
            let weight = MatRef::new(&weights[w], vocab, h);
            let packed = cache.weight(param.var().id(), frozen, weight, true);
            (Products::Bf16, packed)
        }
        None => (Products::F32, WeightPackings::default()),
    };
    let loss = lm_head_loss(
        &hidden.data,
        h,
        &weights[w],
        vocab,
        labels,
        scale,
        smoothing,
        &mut d_hidden,
        grads.get_mut(w),
        scratch,
        products,
        &packed,
    );
    Ok((loss, d_hidden))
}

/// Refuses label smoothing where a row of classes is not all real classes (multiple
/// choice's padded options, answer spans' padded slots).
pub(crate) fn check_smoothing(tokens: &Tokens, smoothing: f64) -> Result<(), EngineError> {
    use super::tokens::LabelsPer;
    if smoothing != 0.0
        && (tokens.labels_per() == LabelsPer::Span
            || tokens.group() > 1
            || !tokens.padded_options().is_empty())
    {
        return Err(EngineError::InvalidConfig(
            "label smoothing covers classification, token classification and language \
             models, not multiple choice or answer spans"
                .into(),
        ));
    }
    Ok(())
}

/// Cross-entropy of `logits` against `labels` (one per row, [`super::IGNORE_LABEL`] for no
/// loss): the summed loss, and `∂(loss · scale)/∂logits`. The rows of a group of consecutive
/// sequences (the options of a question, one score each; `tokens.group()`) form one row of
/// classes, without the options that only pad the question. For answer spans each sequence's
/// start scores and its end scores are a row of classes over its tokens. With `soft` (a
/// teacher's scores, one row per label, and the distillation settings) the loss is the
/// distillation loss ([`crate::distill`]); else `smoothing` is label smoothing's ε (rows
/// whose classes are all real: not multiple choice, not answer spans).
pub fn cross_entropy_grad(
    logits: &HostValue,
    tokens: &Tokens,
    labels: &[u32],
    soft: Option<(&[f32], crate::distill::Distill)>,
    scale: f64,
    smoothing: f64,
    pool: &Pool,
) -> Result<(f64, Buf), EngineError> {
    use super::tokens::LabelsPer;
    if soft.is_some() && matches!(tokens.labels_per(), LabelsPer::Token | LabelsPer::Span) {
        return Err(EngineError::InvalidConfig(
            "distillation covers text classification and multiple choice".into(),
        ));
    }
    check_smoothing(tokens, smoothing)?;
    if tokens.labels_per() == super::tokens::LabelsPer::Span {
        let rows = tokens.span_rows(&logits.data);
        let width = tokens.max_len();
        if labels.len() * width != rows.len() {
            return Err(EngineError::InvalidConfig(format!(
                "{} labels for the answer spans of {} sequences",
                labels.len(),
                tokens.sequences()
            )));
        }
        let mut d_rows = vec![0f32; rows.len()];
        let loss = cross_entropy(&rows, labels, width, scale, 0.0, &mut d_rows);
        let mut d = pool.take(logits.data.len());
        tokens.span_rows_backward(&d_rows, &mut d);
        return Ok((loss, d));
    }
    let group = tokens.group();
    let classes = logits.cols * group.max(1);
    let rows = logits.data.len() / classes.max(1);
    if labels.len() != rows || rows * classes != logits.data.len() {
        return Err(EngineError::InvalidConfig(format!(
            "{} labels for {} rows of logits in groups of {group}",
            labels.len(),
            logits.rows()
        )));
    }
    if let Some(&bad) = labels
        .iter()
        .find(|&&y| y != super::IGNORE_LABEL && y as usize >= classes)
    {
        return Err(EngineError::InvalidConfig(format!(
            "label {bad} is past the model's {classes} classes"
        )));
    }
    let mut d = pool.take(logits.data.len());
    let masked;
    let scores: &[f32] = if tokens.padded_options().is_empty() {
        &logits.data
    } else {
        let mut scores = logits.data.to_vec();
        tokens.mask_padded_options(&mut scores);
        masked = scores;
        &masked
    };
    let loss = match soft {
        Some((teacher, distill)) => {
            if teacher.len() != scores.len() {
                return Err(EngineError::InvalidConfig(format!(
                    "{} teacher scores for {} scores",
                    teacher.len(),
                    scores.len()
                )));
            }
            crate::distill::distilled_cross_entropy(
                scores, labels, teacher, classes, scale, distill, &mut d,
            )
        }
        None => cross_entropy(scores, labels, classes, scale, smoothing, &mut d),
    };
    Ok((loss, d))
}

/// The recorded ops of one forward pass over a batch.
pub struct Tape<'a> {
    nodes: Vec<Node>,
    values: usize,
    pool: Pool,
    tokens: &'a Tokens,
}

/// Adds each of an op's input gradients into its input's slot, for the inputs that need one
/// (`(id, needs)` each).
fn accumulate_inputs<const N: usize>(
    slots: &mut [Option<Buf>],
    inputs: [(usize, bool); N],
    grads: [Buf; N],
) {
    for ((id, needs), d) in inputs.into_iter().zip(grads) {
        if needs {
            accumulate(slots, id, d);
        }
    }
}

/// Adds `src` into the gradient slot of value `id`.
fn accumulate(slots: &mut [Option<Buf>], id: usize, src: Buf) {
    match &mut slots[id] {
        Some(acc) => acc.iter_mut().zip(src.iter()).for_each(|(a, s)| *a += s),
        slot @ None => *slot = Some(src),
    }
}

impl Tape<'_> {
    /// Runs the backward pass from `d_out`, the gradient of the loss with respect to `out`,
    /// adding every trained parameter's gradient into `grads`.
    pub fn backward(
        self,
        weights: &Weights,
        out: &HostValue,
        d_out: Buf,
        grads: &mut HostGrads,
    ) -> Result<(), EngineError> {
        if !out.grad {
            return Ok(());
        }
        let mut slots: Vec<Option<Buf>> = (0..self.values).map(|_| None).collect();
        slots[out.id] = Some(d_out);
        let pool = self.pool;
        let root = self.tokens;
        for node in self.nodes.into_iter().rev() {
            let Some(mut dy) = slots[node.out].take() else {
                continue;
            };
            let cols = node.cols;
            let tokens = root.stream(node.stream)?;
            match node.op {
                Op::Embed { lookups } => {
                    for (i, which) in lookups {
                        grads.scatter_rows(i, tokens.ids(which), &dy, cols);
                    }
                }
                Op::Linear {
                    x,
                    x_data,
                    x_grad,
                    lin,
                } => {
                    let rows = dy.len() / lin.out_f;
                    let mut fresh = None;
                    let dx = if x_grad {
                        match &mut slots[x] {
                            Some(acc) => Some((&mut acc[..], true)),
                            None => {
                                Some((&mut fresh.insert(pool.take(rows * lin.in_f))[..], false))
                            }
                        }
                    } else {
                        None
                    };
                    let (dw, db) = match lin.b {
                        Some(b) => grads.pair(lin.w, b),
                        None => (grads.get_mut(lin.w), None),
                    };
                    linear_backward(
                        &dy,
                        &x_data,
                        rows,
                        &weights[lin.w],
                        lin.in_f,
                        lin.out_f,
                        dx,
                        dw,
                        db,
                        lin.products,
                        lin.packed.as_deref(),
                    );
                    if let Some(f) = fresh {
                        slots[x] = Some(f);
                    }
                }
                Op::LayerNorm {
                    x,
                    x_data,
                    x_grad,
                    g,
                    b,
                    stats,
                } => {
                    let mut dx = pool.take(dy.len());
                    let (dg, dbt) = grads.pair(g, b);
                    layer_norm_backward(&mut dx, &dy, &x_data, &weights[g], &stats, cols, dg, dbt);
                    if x_grad {
                        accumulate(&mut slots, x, dx);
                    }
                }
                Op::Activation { x, pre, act } => {
                    activation_backward(&mut dy, &pre, act);
                    accumulate(&mut slots, x, dy);
                }
                Op::Dropout { x, mask } => {
                    mask.apply(&mut dy);
                    accumulate(&mut slots, x, dy);
                }
                Op::DropoutAdd { x, residual, mask } => {
                    if let Some(r) = residual {
                        let mut copy = pool.take(dy.len());
                        copy.copy_from_slice(&dy);
                        accumulate(&mut slots, r, copy);
                    }
                    if let Some(x) = x {
                        mask.apply(&mut dy);
                        accumulate(&mut slots, x, dy);
                    }
                }
                Op::Attention {
                    inputs,
                    data,
                    shape,
                    saved,
                    positions,
                } => {
                    let (n, kv) = (dy.len(), data[1].len());
                    let (mut dq, mut dk, mut dv) = (pool.take(n), pool.take(kv), pool.take(kv));
                    let mut dpositions = positions.as_ref().map(|p| {
                        p.tables
                            .each_ref()
                            .map(|t| t.as_ref().map(|(_, _, d)| pool.zeros(d.len())))
                    });
                    let terms = positions.as_ref().map(|p| p.terms());
                    let relative = terms.as_ref().zip(dpositions.as_mut()).map(|(t, d)| {
                        let [keys, queries] = d;
                        (t, [keys.as_deref_mut(), queries.as_deref_mut()])
                    });
                    attention::backward(
                        &mut dq,
                        &mut dk,
                        &mut dv,
                        &dy,
                        &data[0],
                        &data[1],
                        &data[2],
                        tokens.spans(),
                        shape,
                        &saved,
                        relative,
                    );
                    pool.give_vec(saved.into_buffer());
                    accumulate_inputs(&mut slots, inputs, [dq, dk, dv]);
                    if let (Some(p), Some(d)) = (positions, dpositions) {
                        for (table, d) in p.tables.into_iter().zip(d) {
                            if let (Some((id, true, _)), Some(d)) = (table, d) {
                                accumulate(&mut slots, id, d);
                            }
                        }
                    }
                }
                Op::PrefixAttention {
                    inputs,
                    data,
                    shape,
                    saved,
                    wide,
                    table,
                    stride,
                    columns,
                    tokens: prefix_tokens,
                } => {
                    let spans = tokens.spans();
                    let hidden = cols;
                    let rows = data[0].len() / hidden;
                    let width = data[1].len() / rows;
                    let mut dctx = pool.take(rows * hidden);
                    widen(&mut dctx, &dy, hidden, spans, &wide, None);
                    let (mut dqx, mut dkx, mut dvx) = (
                        pool.take(rows * hidden),
                        pool.take(rows * width),
                        pool.take(rows * width),
                    );
                    attention::backward(
                        &mut dqx, &mut dkx, &mut dvx, &dctx, &data[0], &data[1], &data[2], &wide,
                        shape, &saved, None,
                    );
                    pool.give_vec(saved.into_buffer());
                    if let Some(t) = table {
                        let mut d = pool.zeros(prefix_tokens * stride);
                        for (dx, column) in [(&dkx, columns[0]), (&dvx, columns[1])] {
                            add_prefix_grad(&mut d, stride, column, dx, width, spans, &wide);
                        }
                        accumulate(&mut slots, t, d);
                    }
                    for ((id, needs), (dx, w)) in
                        inputs
                            .into_iter()
                            .zip([(dqx, hidden), (dkx, width), (dvx, width)])
                    {
                        if needs {
                            let mut d = pool.take(tokens.len() * w);
                            narrow(&mut d, &dx, w, spans, &wide);
                            accumulate(&mut slots, id, d);
                        }
                    }
                }
                Op::Table { param } => {
                    if let Some(g) = grads.get_mut(param) {
                        g.iter_mut().zip(dy.iter()).for_each(|(g, d)| *g += d);
                    }
                }
                Op::AddScaled { x, y, scale } => {
                    if let Some(y) = y {
                        let mut dy_scaled = pool.take(dy.len());
                        dy_scaled
                            .iter_mut()
                            .zip(dy.iter())
                            .for_each(|(o, d)| *o = scale * d);
                        accumulate(&mut slots, y, dy_scaled);
                    }
                    if let Some(x) = x {
                        accumulate(&mut slots, x, dy);
                    }
                }
                Op::RmsNorm {
                    x,
                    x_data,
                    x_grad,
                    g,
                    rstd,
                } => {
                    let mut dx = pool.take(dy.len());
                    rms_norm_backward(
                        &mut dx,
                        &dy,
                        &x_data,
                        &weights[g],
                        &rstd,
                        cols,
                        grads.get_mut(g),
                    );
                    if x_grad {
                        accumulate(&mut slots, x, dx);
                    }
                }
                Op::Rotary { x, heads, table } => {
                    table.apply(&mut dy, heads, true);
                    accumulate(&mut slots, x, dy);
                }
                Op::Gated {
                    gate,
                    up,
                    data,
                    act,
                } => {
                    let (mut d_gate, mut d_up) = (pool.take(dy.len()), pool.take(dy.len()));
                    gated_backward(&mut d_gate, &mut d_up, &dy, &data[0], &data[1], act);
                    if gate.1 {
                        accumulate(&mut slots, gate.0, d_gate);
                    }
                    if up.1 {
                        accumulate(&mut slots, up.0, d_up);
                    }
                }
                Op::BiasedAttention {
                    inputs,
                    data,
                    shape,
                    saved,
                    cross,
                    bias,
                } => {
                    let kv_tokens = if cross {
                        root.stream(Stream::Source)?
                    } else {
                        tokens
                    };
                    let (n, kv) = (dy.len(), data[1].len());
                    let (mut dq, mut dk, mut dv) = (pool.take(n), pool.take(kv), pool.take(kv));
                    let mut dbias = bias
                        .as_ref()
                        .filter(|b| b.grad)
                        .map(|b| pool.zeros(b.table.len()));
                    let terms = bias.as_ref().map(SavedBias::terms);
                    biased::backward(
                        &mut dq,
                        &mut dk,
                        &mut dv,
                        &dy,
                        &data[0],
                        &data[1],
                        &data[2],
                        tokens.spans(),
                        kv_tokens.spans(),
                        shape,
                        terms.as_ref().zip(dbias.as_deref_mut()),
                        &saved,
                    );
                    pool.give_vec(saved.into_buffer());
                    accumulate_inputs(&mut slots, inputs, [dq, dk, dv]);
                    if let (Some(b), Some(d)) = (bias, dbias) {
                        accumulate(&mut slots, b.id, d);
                    }
                }
                Op::FirstTokenAttention {
                    inputs,
                    data,
                    heads,
                    saved,
                } => {
                    let (mut dq, mut dk, mut dv) = (
                        pool.take(data[0].len()),
                        pool.take(data[1].len()),
                        pool.take(data[2].len()),
                    );
                    crate::cpu::first_token::backward(
                        &mut dq,
                        &mut dk,
                        &mut dv,
                        &dy,
                        &data[0],
                        &data[1],
                        &data[2],
                        tokens.spans(),
                        heads,
                        &saved,
                    );
                    accumulate_inputs(&mut slots, inputs, [dq, dk, dv]);
                }
                Op::FirstTokens { x } => {
                    let mut dx = pool.zeros(tokens.len() * cols);
                    for (row, span) in dy.chunks_exact(cols).zip(tokens.spans()) {
                        dx[span.start * cols..][..cols].copy_from_slice(row);
                    }
                    accumulate(&mut slots, x, dx);
                }
            }
        }
        Ok(())
    }
}
