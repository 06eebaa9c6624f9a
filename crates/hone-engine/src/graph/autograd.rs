//! The autograd graph: every op composed from candle ops that carry a gradient (never the
//! fused ones that silently cut it; see `crate::ops`), on any device and dtype. Values are
//! `[tokens × features]` tensors like the host graph's; attention gathers each sequence into
//! a padded `[sequences, heads, longest, longest]` block and back.

use candle_core::{DType, Device, Tensor};

use super::gather::InvertibleRows;
use super::lookup::HostIndex;
use super::{bias, constant, cross_entropy, dropout, fused, gated, gelu, rotary, scores};
use super::{
    BiasBuckets, BiasedAttention, Disentangled, Graph, Heads, RelativeBuckets, Stream, TokenIds,
    Tokens,
};
use crate::cpu::kernels::DropMask;
use crate::models::nn::{LayerNorm, RmsNorm, Rotary};
use crate::ops::{self, Activation};
use crate::params::Param;
use crate::prefix::PrefixAt;
use crate::rng::HoneRng;
use crate::EngineError;

/// One token stream's ids and padded layout on the device, made once per batch.
struct Layout {
    /// Word, position and segment ids (their gradients scattered by plan, see [`HostIndex`]),
    /// planned and uploaded on first use (a family without segment ids never plans them).
    ids: [std::cell::OnceCell<HostIndex>; 3],
    /// For every (sequence, slot) of the padded layout, its token; padding slots point at
    /// token 0 (their keys are masked and their queries dropped, so any row will do). `None`
    /// when every sequence fills the layout (the tokens are the layout: no gather, whose
    /// backward, candle's `index_add`, runs one GPU thread per feature over every token).
    pad_index: Option<Tensor>,
    /// For every token, its slot in the padded layout (`None` as `pad_index`).
    unpad_index: Option<Tensor>,
    /// `[sequences · longest × 1]`: 1 for the slots that hold a token, 0 for padding (`None`
    /// as `pad_index`).
    real_slots: Option<Tensor>,
    /// `[sequences, 1, 1, longest]`: 0 for tokens, the lowest value for padding.
    mask_bias: Tensor,
    /// Each sequence's first token.
    first_index: HostIndex,
}

impl Layout {
    fn new(tokens: &Tokens, device: &Device, dtype: DType) -> Result<Self, EngineError> {
        let (b, s, t) = (tokens.sequences(), tokens.max_len(), tokens.len());
        let mut pad = vec![0u32; b * s];
        let mut unpad = Vec::with_capacity(t);
        let mut bias = vec![f32::MIN; b * s];
        for (row, span) in tokens.spans().iter().enumerate() {
            for j in 0..span.len {
                pad[row * s + j] = (span.start + j) as u32;
                unpad.push((row * s + j) as u32);
                bias[row * s + j] = 0.0;
            }
        }
        let first: Vec<u32> = tokens.spans().iter().map(|s| s.start as u32).collect();
        // Every slot a token, in order: the padded layout is the packed one.
        let dense = t == b * s
            && unpad
                .iter()
                .enumerate()
                .all(|(i, &slot)| slot as usize == i);
        Ok(Layout {
            ids: Default::default(),
            pad_index: (!dense)
                .then(|| Tensor::from_vec(pad, b * s, device))
                .transpose()?,
            unpad_index: (!dense)
                .then(|| Tensor::from_vec(unpad, t, device))
                .transpose()?,
            real_slots: (!dense)
                .then(|| {
                    let real: Vec<f32> = bias.iter().map(|&b| f32::from(b == 0.0)).collect();
                    Tensor::from_vec(real, (b * s, 1), device)?.to_dtype(dtype)
                })
                .transpose()?,
            mask_bias: Tensor::from_vec(bias, (b, 1, 1, s), device)?.to_dtype(dtype)?,
            first_index: HostIndex::new(&first, device)?,
        })
    }

    /// `x` (`[tokens × n·d]`) as `[sequences, n, longest, d]`.
    fn padded(
        &self,
        x: &Tensor,
        tokens: &Tokens,
        n: usize,
        d: usize,
    ) -> Result<Tensor, EngineError> {
        let x = match (&self.pad_index, &self.unpad_index) {
            // The padding slots' gradients are zero (masked keys, dropped queries), so the
            // gradient goes back through the inverse map.
            (Some(pad), Some(unpad)) => InvertibleRows::new(unpad.clone(), None).apply(x, pad)?,
            _ => x.clone(),
        };
        Ok(x.reshape((tokens.sequences(), tokens.max_len(), n, d))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// The rows of the padded layout (`[sequences · longest × features]`) back as the tokens'.
    fn unpadded(&self, x: &Tensor) -> Result<Tensor, EngineError> {
        Ok(match (&self.unpad_index, &self.pad_index) {
            // Only the token slots are read: the padding slots get no gradient.
            (Some(unpad), Some(pad)) => {
                InvertibleRows::new(pad.clone(), self.real_slots.clone()).apply(x, unpad)?
            }
            _ => x.clone(),
        })
    }
}

/// A forward pass through candle over one packed batch.
pub struct AutogradGraph<'a> {
    /// The batch.
    root: &'a Tokens,
    /// The tokens of the stream the ops run over now.
    tokens: &'a Tokens,
    stream: Stream,
    device: Device,
    dtype: DType,
    train: bool,
    rng: &'a mut HoneRng,
    /// The batch's own tokens' layout, and its source's (encoder–decoder batches).
    main: Layout,
    source: Option<Layout>,
    /// The rotary cos and sin `[tokens × d/2]` of this batch's positions, made on first use.
    rotary: Option<(Rotary, Tensor, Tensor)>,
    /// DeBERTa's gathers of each (query, key) distance's row for the buckets they were made
    /// for: `[c2p, p2c]` indices into `[longest × 2·span]` scores, made on first use.
    position_index: Option<(RelativeBuckets, [HostIndex; 2])>,
    /// T5's gathers of each (query, key) distance's bucket for the buckets and (queries,
    /// keys) they were made for, made on first use (every layer reads the same).
    bias_index: Vec<((BiasBuckets, usize, usize), HostIndex)>,
    /// The dtype matrix products run in (mixed precision), `None`: the graph's own.
    autocast: Option<DType>,
    /// The last input a dense layer cast to the autocast dtype, by the id of the tensor it
    /// was cast from: the queries, keys and values of a layer read the same input.
    last_cast: Option<(candle_core::TensorId, Tensor)>,
    /// Dropout masks are drawn on the device, inside the dropout kernel from a seed per site
    /// (a GPU: drawing them on the host and uploading them would take longer than the step),
    /// not from `rng` as the host graph draws them.
    device_masks: bool,
}

impl<'a> AutogradGraph<'a> {
    /// A graph over `tokens` on `device`; `train` turns dropout on and tracks trained
    /// parameters (an evaluation pass builds no autograd graph).
    pub fn new(
        tokens: &'a Tokens,
        device: &Device,
        dtype: DType,
        train: bool,
        rng: &'a mut HoneRng,
    ) -> Result<Self, EngineError> {
        // While a census counts a step's operations (`hone bench --census`), the CPU draws its
        // masks as a GPU does, so that the count is a GPU's.
        let device_masks = !device.is_cpu() || candle_core::census::is_on();
        Ok(AutogradGraph {
            root: tokens,
            tokens,
            stream: Stream::Main,
            device: device.clone(),
            dtype,
            train,
            rng,
            main: Layout::new(tokens, device, dtype)?,
            source: tokens
                .source()
                .map(|s| Layout::new(s, device, dtype))
                .transpose()?,
            rotary: None,
            position_index: None,
            bias_index: Vec::new(),
            autocast: None,
            last_cast: None,
            device_masks,
        })
    }

    /// `n` keep flags drawn from the step's stream as the host graph draws them; none (the
    /// identity) where masks come from the device instead ([`AutogradGraph::device_dropout`]).
    fn host_mask(&mut self, n: usize, p: f64) -> DropMask {
        match self.device_masks {
            true => DropMask::default(),
            false => DropMask::draw(self.rng, n, p),
        }
    }

    /// `x` through dropout with its mask drawn on the device, from the step's stream
    /// ([`dropout::dropout`]).
    fn device_dropout(&mut self, x: &Tensor, p: f64) -> Result<Tensor, EngineError> {
        Ok(dropout::dropout(x, self.rng.next_u64(), p)?)
    }

    /// Runs every matrix product (dense layers, attention) in `dtype` when given (see
    /// [`crate::precision`]): its operands are cast down, and its result stays in `dtype`
    /// through what follows it elementwise (the bias, the activation, dropout) until an op
    /// that needs the graph's dtype (a residual sum, a norm, softmax, the loss), as PyTorch's
    /// autocast keeps it. Values may so be in either dtype; the ops cast what they need.
    pub fn with_autocast(mut self, dtype: Option<DType>) -> Self {
        self.autocast = dtype.filter(|&d| d != self.dtype);
        self
    }

    /// A value of the model's forward pass in the graph's dtype (its logits, for the loss and
    /// the metrics).
    pub fn output(&self, x: Tensor) -> Result<Tensor, EngineError> {
        self.full(&x)
    }

    /// `x` in the graph's dtype (a cast when mixed precision left it in the low one; candle's
    /// `to_dtype` is the tensor itself in its own dtype).
    fn full(&self, x: &Tensor) -> Result<Tensor, EngineError> {
        Ok(x.to_dtype(self.dtype)?)
    }

    /// `x` in the dtype of the matrix products.
    fn low(&self, x: &Tensor) -> Result<Tensor, EngineError> {
        Ok(x.to_dtype(self.autocast.unwrap_or(x.dtype()))?)
    }

    /// [`AutogradGraph::low`] of a dense layer's input, cast once for the layers that read
    /// the same input in a row.
    fn low_input(&mut self, x: &Tensor) -> Result<Tensor, EngineError> {
        match &self.last_cast {
            Some((id, cast)) if *id == x.id() => Ok(cast.clone()),
            _ => {
                let cast = self.low(x)?;
                if cast.id() != x.id() {
                    self.last_cast = Some((x.id(), cast.clone()));
                }
                Ok(cast)
            }
        }
    }

    /// `a` and `b` in one dtype: the graph's when they differ.
    fn alike(&self, a: Tensor, b: &Tensor) -> Result<(Tensor, Tensor), EngineError> {
        Ok(match a.dtype() == b.dtype() {
            true => (a, b.clone()),
            false => (self.full(&a)?, self.full(b)?),
        })
    }

    /// `a · b` (batched, `b` broadcast over `a`'s leading dimensions when `broadcast`), in
    /// the autocast dtype when one is set (the result too).
    fn product(&self, a: &Tensor, b: &Tensor, broadcast: bool) -> Result<Tensor, EngineError> {
        let (a, b) = (self.low(a)?, self.low(b)?);
        Ok(match broadcast {
            true => a.broadcast_matmul(&b)?,
            false => a.matmul(&b)?,
        })
    }

    /// [`AutogradGraph::product`] in the graph's dtype (attention's scores, which softmax
    /// reads).
    fn full_product(&self, a: &Tensor, b: &Tensor, broadcast: bool) -> Result<Tensor, EngineError> {
        self.full(&self.product(a, b, broadcast)?)
    }

    /// Attention's probabilities from raw scores (`[sequences, heads, queries, keys]`, in any
    /// float dtype): `softmax(scores · scale + key_bias)`, the keys after query `i + prefix`
    /// hidden when `causal` is `Some(prefix)`; one op each way in an f32 graph
    /// ([`scores::probabilities`]), else the composed ops in the graph's dtype.
    fn probabilities(
        &self,
        scores: &Tensor,
        key_bias: &Tensor,
        scale: f64,
        causal: Option<usize>,
    ) -> Result<Tensor, EngineError> {
        if self.dtype == DType::F32 {
            return Ok(scores::probabilities(scores, key_bias, scale, causal)?);
        }
        let (_, _, s, w) = scores.dims4()?;
        let mut x = constant::add_constant(&(self.full(scores)? * scale)?, key_bias)?;
        if let Some(prefix) = causal {
            let mask: Vec<f32> = (0..s * w)
                .map(|i| {
                    if i % w > i / w + prefix {
                        f32::MIN
                    } else {
                        0.0
                    }
                })
                .collect();
            let mask = Tensor::from_vec(mask, (s, w), &self.device)?.to_dtype(self.dtype)?;
            // Keys past the query (and padding) stay at the lowest value, not −∞.
            x = constant::add_constant(&x, &mask)?.maximum(f32::MIN as f64)?;
        }
        Ok(ops::softmax_last_dim(&x)?)
    }

    /// [`AutogradGraph::probabilities`] through dropout drawn on the device (its seed from the
    /// step's stream) when `p > 0`: one op each way in an f32 graph, its result in the scores'
    /// dtype ([`scores::dropped`]), else softmax then [`dropout::dropout`].
    fn dropped_probabilities(
        &mut self,
        scores: &Tensor,
        key_bias: &Tensor,
        scale: f64,
        causal: Option<usize>,
        p: f64,
    ) -> Result<Tensor, EngineError> {
        if self.dtype != DType::F32 {
            let probs = self.probabilities(scores, key_bias, scale, causal)?;
            return match p > 0.0 {
                true => self.device_dropout(&probs, p),
                false => Ok(probs),
            };
        }
        let drop = (p > 0.0).then(|| (self.rng.next_u64(), p));
        Ok(scores::dropped(scores, key_bias, scale, causal, drop)?)
    }

    /// The layout of `stream`.
    fn layout(&self, stream: Stream) -> Result<&Layout, EngineError> {
        match stream {
            Stream::Main => Ok(&self.main),
            Stream::Source => self.source.as_ref().ok_or_else(|| {
                EngineError::InvalidConfig("this batch has no source tokens".into())
            }),
        }
    }

    fn param(&self, p: &Param) -> Tensor {
        if self.train && !p.is_frozen() {
            p.var().as_tensor().clone()
        } else {
            p.var().as_detached_tensor()
        }
    }

    /// A drawn mask as a tensor of factors (0 or `1 / (1 − p)`) in `dtype`, uploaded as its
    /// keep bytes.
    fn mask_tensor(
        &self,
        keep: Vec<u8>,
        scale: f32,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Tensor, EngineError> {
        let keep = Tensor::from_vec(keep, shape, &self.device)?.to_dtype(dtype)?;
        Ok((keep * scale as f64)?)
    }

    /// The bucket of every (query, key) of `sq` queries and `sk` keys (`[sq·sk]`), the rows
    /// of T5's `[buckets × heads]` bias table each score reads, made once per batch.
    fn bias_index(
        &mut self,
        buckets: BiasBuckets,
        sq: usize,
        sk: usize,
    ) -> Result<HostIndex, EngineError> {
        let key = (buckets, sq, sk);
        if let Some((_, index)) = self.bias_index.iter().find(|(k, _)| *k == key) {
            return Ok(index.clone());
        }
        let index: Vec<u32> = (0..sq * sk)
            .map(|ij| buckets.bucket((ij % sk) as i64 - (ij / sk) as i64) as u32)
            .collect();
        let index = HostIndex::new(&index, &self.device)?;
        self.bias_index.push((key, index.clone()));
        Ok(index)
    }

    /// The `[c2p, p2c]` gathers of [`AutogradGraph::position_scores`] for sequences padded
    /// to `s` tokens: entry `i·s + j` of each is the flat `[s × 2·span]` score query `i`
    /// (c2p) or key `j` (p2c) reads, made once per batch.
    fn position_index(
        &mut self,
        buckets: RelativeBuckets,
        s: usize,
    ) -> Result<[HostIndex; 2], EngineError> {
        if let Some((made_for, index)) = &self.position_index {
            if *made_for == buckets {
                return Ok(index.clone());
            }
        }
        let rows = buckets.rows(s);
        let w = 2 * buckets.span;
        let make = |of_queries: bool| {
            let index: Vec<u32> = (0..s * s)
                .map(|ij| {
                    let (i, j) = (ij / s, ij % s);
                    let at = if of_queries { i } else { j };
                    (at * w + rows[i + s - 1 - j]) as u32
                })
                .collect();
            HostIndex::new(&index, &self.device)
        };
        let index = [make(true)?, make(false)?];
        self.position_index = Some((buckets, index.clone()));
        Ok(index)
    }

    /// DeBERTa's position terms of the padded queries and keys (`[sequences, heads, longest,
    /// d]`): `[sequences, heads, longest, longest]`, each score reading its distance's row of
    /// the projected relative embeddings.
    fn position_scores(
        &mut self,
        qp: &Tensor,
        kp: &Tensor,
        positions: &Disentangled<'_, Tensor>,
    ) -> Result<Tensor, EngineError> {
        let (b, heads, s, d) = qp.dims4()?;
        let w = 2 * positions.buckets.span;
        let indices = self.position_index(positions.buckets, s)?;
        let mut sum: Option<Tensor> = None;
        for ((table, of_queries), index) in [
            (positions.position_keys, true),
            (positions.position_queries, false),
        ]
        .into_iter()
        .zip(indices.iter())
        {
            let Some(table) = table else { continue };
            let table = table
                .reshape((w, heads, d))?
                .transpose(0, 1)?
                .contiguous()?
                .unsqueeze(0)?;
            let content = if of_queries { qp } else { kp };
            // Every token against every row, then the row of each (query, key) distance.
            let all = self.full_product(content, &table.t()?, true)?;
            let picked = index
                .select(&all.reshape((b, heads, s * w))?, 2)?
                .reshape((b, heads, s, s))?;
            sum = Some(match sum {
                Some(x) => (x + picked)?,
                None => picked,
            });
        }
        sum.ok_or_else(|| EngineError::InvalidConfig("no position terms".into()))
    }

    /// Attention of every sequence (padded to the longest) with itself, its keys and values
    /// after `prefix`'s rows (`[prefix × kv hidden]` each) when given, DeBERTa's position
    /// terms added to the scores when given.
    #[allow(clippy::too_many_arguments)]
    fn attend(
        &mut self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        shape: Heads,
        p: f64,
        prefix: Option<(Tensor, Tensor)>,
        positions: Option<&Disentangled<'_, Tensor>>,
    ) -> Result<Tensor, EngineError> {
        let (t, hidden) = q.dims2()?;
        let d = shape.head_dim(hidden, k.dim(1)?)?;
        let heads = shape.query;
        let (b, s) = (self.tokens.sequences(), self.tokens.max_len());
        let m = prefix.as_ref().map_or(Ok(0), |(pk, _)| pk.dim(0))?;
        let layout = self.layout(self.stream)?;
        let mask_bias = layout.mask_bias.clone();
        let padded = |x: &Tensor, n: usize| layout.padded(x, self.tokens, n, d);
        // Each sequence's keys (values) after the prefix rows, then, for grouped queries, each
        // key/value head repeated for its query heads (transformers' repeat_kv); the
        // broadcasts' backward sums their gradients.
        let kv = shape.key_value;
        let keys = |x: &Tensor, rows: Option<&Tensor>| -> Result<Tensor, EngineError> {
            let mut x = padded(x, kv)?;
            if let Some(rows) = rows {
                let rows = rows
                    .to_dtype(x.dtype())?
                    .reshape((m, kv, d))?
                    .transpose(0, 1)?
                    .unsqueeze(0)?
                    .broadcast_as((b, kv, m, d))?;
                // Contiguous: candle concatenates along an inner dimension through
                // transposes, and a matrix product cannot read that layout.
                x = Tensor::cat(&[rows, x], 2)?.contiguous()?;
            }
            if kv == heads {
                return Ok(x);
            }
            Ok(x.unsqueeze(2)?
                .broadcast_as((b, kv, heads / kv, m + s, d))?
                .reshape((b, heads, m + s, d))?)
        };
        let (pk, pv) = prefix.as_ref().map(|(k, v)| (k, v)).unzip();
        let (qp, kp, vp) = (padded(q, heads)?, keys(k, pk)?, keys(v, pv)?);
        // The scores in the products' dtype (DeBERTa's position terms are added in f32).
        let (scores, scale) = match positions {
            None => (self.product(&qp, &kp.t()?, false)?, 1.0 / (d as f64).sqrt()),
            Some(pos) => (
                (self.full_product(&qp, &kp.t()?, false)?
                    + self.position_scores(&qp, &kp, pos)?)?,
                pos.scale(d),
            ),
        };
        let mask_bias = if m == 0 {
            mask_bias
        } else {
            let seen = Tensor::zeros((b, 1, 1, m), self.dtype, &self.device)?;
            Tensor::cat(&[seen, mask_bias], 3)?
        };
        // Query i sees the prefix and keys up to itself when causal.
        let causal = shape.causal.then_some(m);
        let p = if self.train { p } else { 0.0 };
        let probs = if self.device_masks || p <= 0.0 {
            self.dropped_probabilities(&scores, &mask_bias, scale, causal, p)?
        } else {
            let probs = self.probabilities(&scores, &mask_bias, scale, causal)?;
            // The mask in the host graph's layout (per sequence and head, its own block of
            // `(prefix + len)²` with the prefix's query rows first), placed into the padded
            // blocks, so both graphs drop the same probabilities.
            let blocks: usize = self
                .tokens
                .spans()
                .iter()
                .map(|sp| (m + sp.len) * (m + sp.len))
                .sum::<usize>()
                * heads;
            let mask = self.host_mask(blocks, p);
            if mask.is_identity() {
                probs
            } else {
                let w = m + s;
                let mut keep = vec![0u8; b * heads * s * w];
                let mut offset = 0;
                for (row, span) in self.tokens.spans().iter().enumerate() {
                    let n = m + span.len;
                    for h in 0..heads {
                        let base = (row * heads + h) * s * w;
                        for i in 0..span.len {
                            keep[base + i * w..][..n]
                                .copy_from_slice(&mask.keep()[offset + (m + i) * n..][..n]);
                        }
                        offset += n * n;
                    }
                }
                constant::mul_constant(
                    &probs,
                    &self.mask_tensor(keep, mask.scale(), &[b, heads, s, w], probs.dtype())?,
                )?
            }
        };
        let context = self
            .product(&probs, &vp, false)?
            .transpose(1, 2)?
            .reshape((b * s, hidden))?;
        let out = self.layout(self.stream)?.unpadded(&context)?;
        debug_assert_eq!(out.dims(), &[t, hidden]);
        Ok(out)
    }
}

impl Graph for AutogradGraph<'_> {
    type Value = Tensor;

    fn tokens(&self) -> &Tokens {
        self.tokens
    }

    fn is_train(&self) -> bool {
        self.train
    }

    fn embed(&mut self, lookups: &[(&Param, TokenIds)]) -> Result<Tensor, EngineError> {
        let mut sum: Option<Tensor> = None;
        for (param, which) in lookups {
            let cell = &self.layout(self.stream)?.ids[*which as usize];
            let ids = match cell.get() {
                Some(ids) => ids,
                None => {
                    let planned = HostIndex::new(self.tokens.ids(*which), &self.device)?;
                    cell.get_or_init(|| planned)
                }
            };
            let rows = ids.select(&self.param(param), 0)?;
            sum = Some(match sum {
                Some(s) => (s + rows)?,
                None => rows,
            });
        }
        sum.ok_or_else(|| EngineError::InvalidConfig("an embedding needs a table".into()))
    }

    fn dense(
        &mut self,
        x: &Tensor,
        weight: &Param,
        bias: Option<&Param>,
    ) -> Result<Tensor, EngineError> {
        let w = self.param(weight);
        let b = bias.map(|b| self.param(b));
        match self.autocast {
            // The product and its output in the low dtype, the f32 bias added in f32 and
            // rounded once.
            Some(low) => {
                let y = ops::linear(&self.low_input(x)?, &w.to_dtype(low)?, None)?;
                Ok(match b {
                    Some(b) => bias::add_bias(&y, &b)?,
                    None => y,
                })
            }
            None => Ok(ops::linear(x, &w, b.as_ref())?),
        }
    }

    fn add_scaled(&mut self, x: Tensor, y: &Tensor, scale: f64) -> Result<Tensor, EngineError> {
        let (x, y) = self.alike(x, y)?;
        Ok((x + (y * scale)?)?)
    }

    fn layer_norm(&mut self, x: &Tensor, norm: &LayerNorm) -> Result<Tensor, EngineError> {
        let (g, b) = (self.param(norm.weight()), self.param(norm.bias()));
        Ok(fused::layer_norm(&self.full(x)?, &g, &b, norm.eps())?)
    }

    fn activation(&mut self, x: &Tensor, act: Activation) -> Result<Tensor, EngineError> {
        Ok(match act {
            // One kernel each way (candle's composed backward is thirteen).
            Activation::Gelu => gelu::gelu(x, false)?,
            Activation::GeluTanh => gelu::gelu(x, true)?,
            other => other.apply(x)?,
        })
    }

    fn dropout(&mut self, x: Tensor, p: f64) -> Result<Tensor, EngineError> {
        let p = if self.train { p } else { 0.0 };
        if self.device_masks && p > 0.0 {
            return self.device_dropout(&x, p);
        }
        let n = x.elem_count();
        let mask = DropMask::draw(self.rng, n, p);
        if mask.is_identity() {
            return Ok(x);
        }
        // The factors in f32 (1/(1 − p) has no exact bf16), the product rounded once.
        let m = self.mask_tensor(mask.keep().to_vec(), mask.scale(), x.dims(), self.dtype)?;
        Ok(constant::mul_constant(&self.full(&x)?, &m)?.to_dtype(x.dtype())?)
    }

    fn dropout_add(&mut self, x: Tensor, p: f64, residual: &Tensor) -> Result<Tensor, EngineError> {
        let dropped = self.dropout(x, p)?;
        let (x, residual) = self.alike(dropped, residual)?;
        Ok((x + residual)?)
    }

    fn attention(
        &mut self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        shape: Heads,
        p: f64,
    ) -> Result<Tensor, EngineError> {
        self.attend(q, k, v, shape, p, None, None)
    }

    fn disentangled_attention(
        &mut self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        heads: usize,
        p: f64,
        positions: Disentangled<'_, Tensor>,
    ) -> Result<Tensor, EngineError> {
        self.attend(q, k, v, Heads::full(heads), p, None, Some(&positions))
    }

    fn prefix_attention(
        &mut self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        shape: Heads,
        p: f64,
        table: &Tensor,
        at: PrefixAt,
    ) -> Result<Tensor, EngineError> {
        let rows = |column| table.narrow(1, column, at.width);
        let kv = (rows(at.key_column)?, rows(at.value_column())?);
        self.attend(q, k, v, shape, p, Some(kv), None)
    }

    fn table(&mut self, param: &Param) -> Result<Tensor, EngineError> {
        Ok(self.param(param))
    }

    fn rms_norm(&mut self, x: &Tensor, norm: &RmsNorm) -> Result<Tensor, EngineError> {
        let g = self.param(norm.weight());
        Ok(fused::rms_norm(&self.full(x)?, &g, norm.eps())?)
    }

    fn rotary(&mut self, x: Tensor, heads: usize, rope: &Rotary) -> Result<Tensor, EngineError> {
        let (t, cols) = x.dims2()?;
        let half = rope.inv_freq.len();
        if heads == 0 || cols != heads * 2 * half {
            return Err(EngineError::InvalidConfig(format!(
                "rotary embeddings of {half} frequencies do not fit {heads} heads of {cols} features"
            )));
        }
        if self
            .rotary
            .as_ref()
            .is_none_or(|(r, cos, _)| r != rope || cos.dtype() != x.dtype())
        {
            let table = crate::cpu::decoder::RotaryTable::new(
                self.tokens.ids(TokenIds::Positions),
                &rope.inv_freq,
                rope.attention_scaling,
            );
            let (cos, sin) = table.cos_sin();
            // In the dtype of the queries and keys (PyTorch casts its tables to theirs).
            let upload = |v: &[f32]| -> Result<Tensor, EngineError> {
                Ok(Tensor::from_slice(v, (t, 1, half), &self.device)?.to_dtype(x.dtype())?)
            };
            self.rotary = Some((rope.clone(), upload(cos)?, upload(sin)?));
        }
        let Some((_, cos, sin)) = &self.rotary else {
            return Err(EngineError::InvalidConfig("no rotary table".into()));
        };
        // Per head: (x1, x2) → (x1·cos − x2·sin, x2·cos + x1·sin), one op each way.
        Ok(rotary::rotary(&x, cos, sin, heads)?)
    }

    fn gated(
        &mut self,
        gate: &Tensor,
        up: &Tensor,
        act: Activation,
    ) -> Result<Tensor, EngineError> {
        let (gate, up) = self.alike(gate.clone(), up)?;
        Ok(match act {
            // One kernel each way (candle's composed backward is about ten).
            Activation::Silu => gated::silu_gated(&gate, &up)?,
            other => other.apply(&gate)?.mul(&up)?,
        })
    }

    fn first_tokens(&mut self, x: &Tensor) -> Result<Tensor, EngineError> {
        Ok(self.layout(self.stream)?.first_index.select(x, 0)?)
    }

    fn first_token_attention(
        &mut self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        heads: usize,
        p: f64,
    ) -> Result<Tensor, EngineError> {
        let (b, s) = (self.tokens.sequences(), self.tokens.max_len());
        let (rows, hidden) = q.dims2()?;
        if heads == 0 || !hidden.is_multiple_of(heads) || rows != b {
            return Err(EngineError::InvalidConfig(format!(
                "first-token attention of {heads} heads: {rows} queries of {hidden} features \
                 for {b} sequences"
            )));
        }
        let d = hidden / heads;
        let layout = self.layout(self.stream)?;
        let (kp, vp) = (
            layout.padded(k, self.tokens, heads, d)?,
            layout.padded(v, self.tokens, heads, d)?,
        );
        let mask_bias = layout.mask_bias.clone();
        let qp = q.reshape((b, 1, heads, d))?.transpose(1, 2)?.contiguous()?;
        let scores = self.product(&qp, &kp.t()?, false)?;
        let scale = 1.0 / (d as f64).sqrt();
        let p = if self.train { p } else { 0.0 };
        let probs = if self.device_masks || p <= 0.0 {
            self.dropped_probabilities(&scores, &mask_bias, scale, None, p)?
        } else {
            let probs = self.probabilities(&scores, &mask_bias, scale, None)?;
            // The host graph's mask (sequence by sequence, head by head, a row of the
            // sequence's length) placed into the padded rows, so both graphs drop the same
            // probabilities.
            let mask = self.host_mask(self.tokens.len() * heads, p);
            let mut keep = vec![0u8; b * heads * s];
            let mut offset = 0;
            for (row, span) in self.tokens.spans().iter().enumerate() {
                for h in 0..heads {
                    keep[(row * heads + h) * s..][..span.len]
                        .copy_from_slice(&mask.keep()[offset..][..span.len]);
                    offset += span.len;
                }
            }
            constant::mul_constant(
                &probs,
                &self.mask_tensor(keep, mask.scale(), &[b, heads, 1, s], probs.dtype())?,
            )?
        };
        Ok(self
            .product(&probs, &vp, false)?
            .transpose(1, 2)?
            .reshape((b, hidden))?)
    }

    fn stream(&self) -> Stream {
        self.stream
    }

    fn select_stream(&mut self, stream: Stream) -> Result<(), EngineError> {
        if stream != self.stream {
            self.layout(stream)?;
            self.tokens = self.root.stream(stream)?;
            self.stream = stream;
            // Made for the other stream's positions and lengths.
            self.rotary = None;
            self.position_index = None;
        }
        Ok(())
    }

    fn biased_attention(
        &mut self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        a: BiasedAttention<'_, Tensor>,
    ) -> Result<Tensor, EngineError> {
        let (t, hidden) = q.dims2()?;
        let heads = a.heads;
        if heads == 0 || !hidden.is_multiple_of(heads) || k.dim(1)? != hidden || v.dim(1)? != hidden
        {
            return Err(EngineError::InvalidConfig(format!(
                "{heads} heads over queries of {hidden} features and keys of {}",
                k.dim(1)?
            )));
        }
        if a.cross && self.stream != Stream::Main {
            return Err(EngineError::InvalidConfig(
                "cross-attention runs from the decoder's stream to the source".into(),
            ));
        }
        let d = hidden / heads;
        let kv_stream = if a.cross { Stream::Source } else { self.stream };
        let kv_tokens = self.root.stream(kv_stream)?;
        let (b, sq, sk) = (
            self.tokens.sequences(),
            self.tokens.max_len(),
            kv_tokens.max_len(),
        );
        let (lq, lk) = (self.layout(self.stream)?, self.layout(kv_stream)?);
        let qp = lq.padded(q, self.tokens, heads, d)?;
        let kp = lk.padded(k, kv_tokens, heads, d)?;
        let vp = lk.padded(v, kv_tokens, heads, d)?;
        let key_mask = lk.mask_bias.clone();
        let mut scores = self.full_product(&qp, &kp.t()?, false)?;
        if let Some(bias) = &a.bias {
            let values = self
                .bias_index(bias.buckets, sq, sk)?
                .select(bias.table, 0)?
                .reshape((sq, sk, heads))?
                .permute((2, 0, 1))?
                .unsqueeze(0)?;
            scores = scores.broadcast_add(&values)?;
        }
        // T5 does not scale its scores; a decoder's query i sees keys up to itself.
        let causal = a.causal.then_some(0);
        let p = if self.train { a.p } else { 0.0 };
        let probs = if self.device_masks || p <= 0.0 {
            self.dropped_probabilities(&scores, &key_mask, 1.0, causal, p)?
        } else {
            let probs = self.probabilities(&scores, &key_mask, 1.0, causal)?;
            // The mask in the host graph's layout (per sequence and head, its own queries ×
            // keys block), placed into the padded blocks.
            let spans: Vec<_> = self.tokens.spans().iter().zip(kv_tokens.spans()).collect();
            let blocks: usize = spans.iter().map(|(q, k)| q.len * k.len).sum::<usize>() * heads;
            let mask = self.host_mask(blocks, p);
            let mut keep = vec![0u8; b * heads * sq * sk];
            let mut offset = 0;
            for (row, (qs, ks)) in spans.iter().enumerate() {
                for h in 0..heads {
                    let base = (row * heads + h) * sq * sk;
                    for i in 0..qs.len {
                        keep[base + i * sk..][..ks.len]
                            .copy_from_slice(&mask.keep()[offset + i * ks.len..][..ks.len]);
                    }
                    offset += qs.len * ks.len;
                }
            }
            constant::mul_constant(
                &probs,
                &self.mask_tensor(keep, mask.scale(), &[b, heads, sq, sk], probs.dtype())?,
            )?
        };
        let context = self
            .product(&probs, &vp, false)?
            .transpose(1, 2)?
            .reshape((b * sq, hidden))?;
        let out = self.layout(self.stream)?.unpadded(&context)?;
        debug_assert_eq!(out.dims(), &[t, hidden]);
        Ok(out)
    }
}

/// Cross-entropy of `logits` `[rows × classes]` against `labels` (one per row,
/// [`super::IGNORE_LABEL`] for no loss), summed over the labeled rows, with label smoothing
/// `smoothing` (ε; 0 for none: [`crate::cpu::kernels::cross_entropy`]).
pub fn cross_entropy_sum(
    logits: &Tensor,
    labels: &[u32],
    smoothing: f64,
) -> Result<Tensor, EngineError> {
    let (rows, classes) = logits.dims2()?;
    if labels.len() != rows {
        return Err(EngineError::InvalidConfig(format!(
            "{} labels for {rows} rows of logits",
            labels.len()
        )));
    }
    let (kept, ids): (Vec<u32>, Vec<u32>) = labels
        .iter()
        .enumerate()
        .filter(|(_, &y)| y != super::IGNORE_LABEL)
        .map(|(i, &y)| (i as u32, y))
        .unzip();
    if let Some(&bad) = ids.iter().find(|&&y| y as usize >= classes) {
        return Err(EngineError::InvalidConfig(format!(
            "label {bad} is past the model's {classes} classes"
        )));
    }
    let dev = logits.device();
    if kept.is_empty() {
        return Ok(Tensor::zeros((), DType::F32, dev)?);
    }
    let n = kept.len();
    // Every row scored (a classifier's batch): the logits as they are, no gathered copy.
    let picked = match n == rows {
        true => logits.clone(),
        false => HostIndex::new(&kept, dev)?.select(logits, 0)?,
    };
    let ids = Tensor::from_vec(ids, n, dev)?;
    Ok(cross_entropy::row_losses(&picked, &ids, smoothing)?.sum_all()?)
}
