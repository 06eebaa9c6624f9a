//! The classifier's forward and backward passes on the CPU, written out by hand: no autograd
//! graph, no per-op allocation of gradients, fused kernels, and packed sequences (padding
//! tokens are dropped before the first layer; every layer but attention is per-token, and
//! attention runs per sequence, so the result for real tokens is exactly that of the padded
//! computation).

use candle_core::{Storage, StorageRef};
use hone_data::Batch;

use super::attention::{self, AttentionSaved, AttentionShape, Span};
use super::gemm::{linear, linear_backward};
use super::grads::HostGrads;
use super::kernels::{
    activation, activation_backward, cross_entropy, layer_norm, layer_norm_backward, DropMask,
    NormStats,
};
use super::math;
use crate::models::structure::{HeadBlock, LinearBlock, NormBlock};
use crate::models::Classifier;
use crate::ops::Activation;
use crate::params::{Param, ParamStore};
use crate::rng::HoneRng;
use crate::EngineError;

/// A batch with the padding removed: the real tokens of every sequence, back to back. Only
/// [`Packed::from_batch`] builds one, so its spans always tile its tokens exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    spans: Vec<Span>,
    input_ids: Vec<u32>,
    type_ids: Vec<u32>,
    position_ids: Vec<u32>,
    labels: Vec<u32>,
}

impl Packed {
    /// Packs a right-padded batch (every mask row is ones then zeros, with at least one token);
    /// `None` for any other layout.
    pub fn from_batch(model: &Classifier, batch: &Batch) -> Option<Self> {
        let s = batch.seq_len;
        let positions = model.position_ids(batch);
        let types = model.token_type_ids(batch);
        let mut packed = Packed {
            spans: Vec::with_capacity(batch.batch_size),
            input_ids: Vec::new(),
            type_ids: Vec::new(),
            position_ids: Vec::new(),
            labels: batch.labels.clone(),
        };
        for row in 0..batch.batch_size {
            let mask = &batch.attention_mask[row * s..(row + 1) * s];
            let len = mask.iter().take_while(|&&m| m == 1).count();
            if len == 0 || mask[len..].iter().any(|&m| m != 0) {
                return None;
            }
            let range = row * s..row * s + len;
            packed.spans.push(Span {
                start: packed.input_ids.len(),
                len,
            });
            packed
                .input_ids
                .extend_from_slice(&batch.input_ids[range.clone()]);
            packed.type_ids.extend_from_slice(&types[range.clone()]);
            packed.position_ids.extend_from_slice(&positions[range]);
        }
        Some(packed)
    }

    /// Number of real tokens.
    pub fn tokens(&self) -> usize {
        self.input_ids.len()
    }

    /// Number of sequences.
    pub fn sequences(&self) -> usize {
        self.spans.len()
    }

    /// Class ids, one per sequence (empty for unlabeled batches).
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }
}

#[derive(Clone, Copy)]
struct Lin {
    w: usize,
    b: usize,
    out: usize,
}

#[derive(Clone, Copy)]
struct Norm {
    g: usize,
    b: usize,
    eps: f32,
}

struct Layer {
    q: Lin,
    k: Lin,
    v: Lin,
    o: Lin,
    ln1: Norm,
    f1: Lin,
    f2: Lin,
    ln2: Norm,
    shape: AttentionShape,
    act: Activation,
    hidden_dropout: f64,
    attention_dropout: f64,
    output_dropout: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HeadKind {
    Pooler,
    PreClassifier,
    ClassificationHead,
}

struct Head {
    kind: HeadKind,
    dense: Lin,
    out: Lin,
    dropout: f64,
}

struct Emb {
    word: usize,
    position: usize,
    token_type: Option<usize>,
    norm: Norm,
    dropout: f64,
}

/// Activations of one layer kept for the backward pass.
#[derive(Default)]
struct LayerSaved {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: AttentionSaved,
    ctx: Vec<f32>,
    drop1: DropMask,
    s1: Vec<f32>,
    st1: NormStats,
    h1: Vec<f32>,
    f: Vec<f32>,
    g: Vec<f32>,
    drop2: DropMask,
    s2: Vec<f32>,
    st2: NormStats,
    out: Vec<f32>,
}

/// Everything a forward pass keeps for its backward pass; reused across steps.
#[derive(Default)]
pub struct Saved {
    emb_sum: Vec<f32>,
    st0: NormStats,
    drop0: DropMask,
    x0: Vec<f32>,
    layers: Vec<LayerSaved>,
    cls: Vec<f32>,
    cls_drop: DropMask,
    cls_in: Vec<f32>,
    pre: Vec<f32>,
    act: Vec<f32>,
    head_drop: DropMask,
    head_in: Vec<f32>,
    logits: Vec<f32>,
}

/// Token-sized buffers the backward pass borrows and returns, kept across steps so the large
/// allocations (and their page faults) happen once per shape, not once per layer and step.
#[derive(Default)]
pub struct Scratch {
    free: Vec<Vec<f32>>,
}

impl Scratch {
    /// A zeroed buffer of `n` values.
    fn zeros(&mut self, n: usize) -> Vec<f32> {
        // Best fit: the smallest free buffer that holds `n` values, else the largest (it grows),
        // so token × hidden requests do not keep token × intermediate buffers busy.
        let fits = (0..self.free.len())
            .filter(|&i| self.free[i].capacity() >= n)
            .min_by_key(|&i| self.free[i].capacity());
        let pick = fits.or_else(|| (0..self.free.len()).max_by_key(|&i| self.free[i].capacity()));
        let mut v = pick.map(|i| self.free.swap_remove(i)).unwrap_or_default();
        v.clear();
        v.resize(n, 0.0);
        v
    }

    /// Gives buffers back for reuse.
    fn recycle<const N: usize>(&mut self, bufs: [Vec<f32>; N]) {
        self.free.extend(bufs);
    }
}

/// Read access to every parameter's values for the length of a pass.
pub struct WeightGuards<'a> {
    guards: Vec<(StorageRef<'a>, &'a candle_core::Layout)>,
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

impl WeightGuards<'_> {
    /// The parameter values as slices.
    pub fn weights(&self) -> Result<Weights<'_>, EngineError> {
        let mut slices = Vec::with_capacity(self.guards.len());
        for (storage, layout) in &self.guards {
            let Storage::Cpu(cpu) = &**storage else {
                return Err(EngineError::InvalidConfig(
                    "the CPU path needs CPU tensors".into(),
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

/// The network of a [`Classifier`] as parameter indices and sizes, run by hand.
pub struct CpuModel {
    params: ParamStore,
    emb: Emb,
    layers: Vec<Layer>,
    head: Head,
    hidden: usize,
    num_labels: usize,
}

fn index(params: &ParamStore, p: &Param) -> usize {
    params
        .index_of(p.name())
        .expect("a structure's parameters belong to its store")
}

fn lin(params: &ParamStore, b: &LinearBlock) -> Lin {
    let dims = b.weight.var().dims();
    Lin {
        w: index(params, &b.weight),
        b: index(params, &b.bias),
        out: dims[0],
    }
}

fn norm(params: &ParamStore, b: &NormBlock) -> Norm {
    Norm {
        g: index(params, &b.weight),
        b: index(params, &b.bias),
        eps: b.eps as f32,
    }
}

impl CpuModel {
    /// The CPU path for `model`, or `None` when its parameters are not f32 on the CPU.
    pub fn new(model: &Classifier) -> Option<Self> {
        if !model.device().is_cpu()
            || model
                .params()
                .all()
                .iter()
                .any(|p| p.var().dtype() != candle_core::DType::F32)
        {
            return None;
        }
        let params = model.params().clone();
        let s = model.structure();
        let e = &s.embeddings;
        let emb = Emb {
            word: index(&params, &e.word),
            position: index(&params, &e.position),
            token_type: e.token_type.as_ref().map(|p| index(&params, p)),
            norm: norm(&params, &e.norm),
            dropout: e.dropout,
        };
        let hidden = model.spec().encoder.hidden_size;
        let layers = s
            .layers
            .iter()
            .map(|l| Layer {
                q: lin(&params, &l.query),
                k: lin(&params, &l.key),
                v: lin(&params, &l.value),
                o: lin(&params, &l.attention_output),
                ln1: norm(&params, &l.attention_norm),
                f1: lin(&params, &l.ffn_in),
                f2: lin(&params, &l.ffn_out),
                ln2: norm(&params, &l.output_norm),
                shape: AttentionShape {
                    heads: l.num_heads,
                    head_dim: hidden / l.num_heads,
                },
                act: l.activation,
                hidden_dropout: l.hidden_dropout,
                attention_dropout: l.attention_dropout,
                output_dropout: l.attention_output_dropout,
            })
            .collect();
        let head = match &s.head {
            HeadBlock::Pooler {
                dense,
                classifier,
                dropout,
            } => Head {
                kind: HeadKind::Pooler,
                dense: lin(&params, dense),
                out: lin(&params, classifier),
                dropout: *dropout,
            },
            HeadBlock::PreClassifier {
                dense,
                classifier,
                dropout,
            } => Head {
                kind: HeadKind::PreClassifier,
                dense: lin(&params, dense),
                out: lin(&params, classifier),
                dropout: *dropout,
            },
            HeadBlock::ClassificationHead {
                dense,
                out_proj,
                dropout,
            } => Head {
                kind: HeadKind::ClassificationHead,
                dense: lin(&params, dense),
                out: lin(&params, out_proj),
                dropout: *dropout,
            },
        };
        Some(CpuModel {
            params,
            emb,
            layers,
            head,
            hidden,
            num_labels: model.num_labels(),
        })
    }

    /// The parameters, in index order.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// Locks every parameter for reading during a pass.
    pub fn lock(&self) -> WeightGuards<'_> {
        WeightGuards {
            guards: self
                .params
                .all()
                .iter()
                .map(|p| p.var().storage_and_layout())
                .collect(),
        }
    }

    /// Runs the network on `packed`, keeping what the backward pass needs in `saved`; dropout
    /// only when `train`. Returns the logits `[sequences × labels]`.
    pub fn forward<'s>(
        &self,
        w: &Weights,
        packed: &Packed,
        train: bool,
        rng: &mut HoneRng,
        saved: &'s mut Saved,
    ) -> &'s [f32] {
        let (t, h) = (packed.tokens(), self.hidden);
        let p = |prob: f64| if train { prob } else { 0.0 };
        let Saved {
            emb_sum,
            st0,
            drop0,
            x0,
            layers: saved_layers,
            ..
        } = saved;
        emb_sum.resize(t * h, 0.0);
        let word = &w[self.emb.word];
        let position = &w[self.emb.position];
        let types = self.emb.token_type.map(|i| &w[i]);
        for (tok, row) in emb_sum.chunks_exact_mut(h).enumerate() {
            let wr = &word[packed.input_ids[tok] as usize * h..][..h];
            let pr = &position[packed.position_ids[tok] as usize * h..][..h];
            for ((o, a), b) in row.iter_mut().zip(wr).zip(pr) {
                *o = a + b;
            }
            if let Some(types) = types {
                let tr = &types[packed.type_ids[tok] as usize * h..][..h];
                row.iter_mut().zip(tr).for_each(|(o, v)| *o += v);
            }
        }
        x0.resize(t * h, 0.0);
        let n0 = self.emb.norm;
        layer_norm(x0, emb_sum, &w[n0.g], &w[n0.b], n0.eps, h, st0);
        *drop0 = DropMask::draw(rng, t * h, p(self.emb.dropout));
        drop0.apply(x0);

        // Training keeps every layer for the backward pass; evaluation needs only the layer it
        // computes and the one below, so it cycles through two slots.
        let slot = |l: usize| if train { l } else { l % 2 };
        let slots = if train {
            self.layers.len()
        } else {
            self.layers.len().min(2)
        };
        if saved_layers.len() < slots {
            saved_layers.resize_with(slots, LayerSaved::default);
        }
        for (l, layer) in self.layers.iter().enumerate() {
            let (x, ls): (&[f32], &mut LayerSaved) = if l == 0 {
                (x0, &mut saved_layers[0])
            } else {
                let (below, above) = (slot(l - 1), slot(l));
                if below < above {
                    let (lo, hi) = saved_layers.split_at_mut(above);
                    (&lo[below].out, &mut hi[0])
                } else {
                    let (lo, hi) = saved_layers.split_at_mut(below);
                    (&hi[0].out, &mut lo[above])
                }
            };
            let inter = layer.f1.out;
            for (buf, lin_) in [
                (&mut ls.q, layer.q),
                (&mut ls.k, layer.k),
                (&mut ls.v, layer.v),
            ] {
                buf.resize(t * h, 0.0);
                linear(buf, x, t, &w[lin_.w], Some(&w[lin_.b]), h, h);
            }
            ls.ctx.resize(t * h, 0.0);
            attention::forward(
                &mut ls.ctx,
                &ls.q,
                &ls.k,
                &ls.v,
                &packed.spans,
                layer.shape,
                p(layer.attention_dropout),
                rng,
                &mut ls.attn,
            );
            ls.s1.resize(t * h, 0.0);
            linear(
                &mut ls.s1,
                &ls.ctx,
                t,
                &w[layer.o.w],
                Some(&w[layer.o.b]),
                h,
                h,
            );
            let drop1 = if layer.output_dropout {
                p(layer.hidden_dropout)
            } else {
                0.0
            };
            ls.drop1 = DropMask::draw(rng, t * h, drop1);
            ls.drop1.apply_add(&mut ls.s1, x);
            ls.h1.resize(t * h, 0.0);
            layer_norm(
                &mut ls.h1,
                &ls.s1,
                &w[layer.ln1.g],
                &w[layer.ln1.b],
                layer.ln1.eps,
                h,
                &mut ls.st1,
            );
            ls.f.resize(t * inter, 0.0);
            linear(
                &mut ls.f,
                &ls.h1,
                t,
                &w[layer.f1.w],
                Some(&w[layer.f1.b]),
                h,
                inter,
            );
            ls.g.clear();
            ls.g.extend_from_slice(&ls.f);
            activation(&mut ls.g, layer.act);
            ls.s2.resize(t * h, 0.0);
            linear(
                &mut ls.s2,
                &ls.g,
                t,
                &w[layer.f2.w],
                Some(&w[layer.f2.b]),
                inter,
                h,
            );
            ls.drop2 = DropMask::draw(rng, t * h, p(layer.hidden_dropout));
            ls.drop2.apply_add(&mut ls.s2, &ls.h1);
            ls.out.resize(t * h, 0.0);
            layer_norm(
                &mut ls.out,
                &ls.s2,
                &w[layer.ln2.g],
                &w[layer.ln2.b],
                layer.ln2.eps,
                h,
                &mut ls.st2,
            );
        }

        let last: &[f32] = match self.layers.len() {
            0 => &saved.x0,
            n => &saved.layers[slot(n - 1)].out,
        };
        let b = packed.spans.len();
        saved.cls.resize(b * h, 0.0);
        for (row, span) in saved.cls.chunks_exact_mut(h).zip(&packed.spans) {
            row.copy_from_slice(&last[span.start * h..][..h]);
        }
        let head = &self.head;
        saved.cls_in.clear();
        saved.cls_in.extend_from_slice(&saved.cls);
        saved.cls_drop = if head.kind == HeadKind::ClassificationHead {
            DropMask::draw(rng, b * h, p(head.dropout))
        } else {
            DropMask::default()
        };
        saved.cls_drop.apply(&mut saved.cls_in);
        saved.pre.resize(b * h, 0.0);
        linear(
            &mut saved.pre,
            &saved.cls_in,
            b,
            &w[head.dense.w],
            Some(&w[head.dense.b]),
            h,
            h,
        );
        saved.act.clear();
        saved.act.extend(saved.pre.iter().map(|&x| match head.kind {
            HeadKind::PreClassifier => x.max(0.0),
            _ => math::tanh(x),
        }));
        saved.head_in.clear();
        saved.head_in.extend_from_slice(&saved.act);
        saved.head_drop = DropMask::draw(rng, b * h, p(head.dropout));
        saved.head_drop.apply(&mut saved.head_in);
        saved.logits.resize(b * self.num_labels, 0.0);
        linear(
            &mut saved.logits,
            &saved.head_in,
            b,
            &w[head.out.w],
            Some(&w[head.out.b]),
            h,
            self.num_labels,
        );
        &saved.logits
    }

    /// Mean cross-entropy of the last forward pass against `packed.labels`, and the gradient of
    /// every parameter that has a buffer in `grads` (added to it).
    /// `loss_scale` multiplies the gradients (a micro-batch's share of an accumulated step).
    pub fn backward(
        &self,
        w: &Weights,
        packed: &Packed,
        saved: &Saved,
        loss_scale: f32,
        grads: &mut HostGrads,
        scratch: &mut Scratch,
    ) -> f64 {
        let (t, h, b) = (packed.tokens(), self.hidden, packed.spans.len());
        let c = self.num_labels;
        let mut dlogits = vec![0f32; b * c];
        let loss = cross_entropy(&saved.logits, &packed.labels, c, &mut dlogits);
        dlogits.iter_mut().for_each(|d| *d *= loss_scale);
        let head = &self.head;

        // Head.
        let mut d_in = vec![0f32; b * h];
        let (dw, db) = grads.pair(head.out.w, head.out.b);
        linear_backward(
            &dlogits,
            &saved.head_in,
            b,
            &w[head.out.w],
            h,
            c,
            Some((&mut d_in, false)),
            dw,
            db,
        );
        saved.head_drop.apply(&mut d_in);
        for ((d, &a), &x) in d_in.iter_mut().zip(&saved.act).zip(&saved.pre) {
            *d *= match head.kind {
                HeadKind::PreClassifier => {
                    if x > 0.0 {
                        1.0
                    } else {
                        0.0
                    }
                }
                _ => 1.0 - a * a,
            };
        }
        let mut d_cls = vec![0f32; b * h];
        let (dw, db) = grads.pair(head.dense.w, head.dense.b);
        linear_backward(
            &d_in,
            &saved.cls_in,
            b,
            &w[head.dense.w],
            h,
            h,
            Some((&mut d_cls, false)),
            dw,
            db,
        );
        saved.cls_drop.apply(&mut d_cls);

        // Which layers need the gradient of their input.
        let emb_trainable = [
            self.emb.word,
            self.emb.position,
            self.emb.norm.g,
            self.emb.norm.b,
        ]
        .into_iter()
        .chain(self.emb.token_type)
        .any(|i| grads.is_active(i));
        let mut below = Vec::with_capacity(self.layers.len());
        let mut any = emb_trainable;
        for layer in &self.layers {
            below.push(any);
            any |= layer_params(layer).iter().any(|&i| grads.is_active(i));
        }

        let mut d = scratch.zeros(t * h);
        for (i, span) in packed.spans.iter().enumerate() {
            d[span.start * h..][..h].copy_from_slice(&d_cls[i * h..][..h]);
        }
        for (l, layer) in self.layers.iter().enumerate().rev() {
            let own = layer_params(layer).iter().any(|&i| grads.is_active(i));
            if !own && !below[l] {
                scratch.recycle([d]);
                return loss;
            }
            let ls = &saved.layers[l];
            let x: &[f32] = if l == 0 {
                &saved.x0
            } else {
                &saved.layers[l - 1].out
            };
            let inter = layer.f1.out;
            let mut ds2 = scratch.zeros(t * h);
            let (dg, dbt) = grads.pair(layer.ln2.g, layer.ln2.b);
            layer_norm_backward(&mut ds2, &d, &ls.s2, &w[layer.ln2.g], &ls.st2, h, dg, dbt);
            let mut d_out = scratch.zeros(t * h);
            d_out.copy_from_slice(&ds2);
            ls.drop2.apply(&mut d_out);
            let mut dgv = scratch.zeros(t * inter);
            let (dw, db) = grads.pair(layer.f2.w, layer.f2.b);
            linear_backward(
                &d_out,
                &ls.g,
                t,
                &w[layer.f2.w],
                inter,
                h,
                Some((&mut dgv, false)),
                dw,
                db,
            );
            activation_backward(&mut dgv, &ls.f, layer.act);
            let mut dh1 = ds2;
            let (dw, db) = grads.pair(layer.f1.w, layer.f1.b);
            linear_backward(
                &dgv,
                &ls.h1,
                t,
                &w[layer.f1.w],
                h,
                inter,
                Some((&mut dh1, true)),
                dw,
                db,
            );
            scratch.recycle([dgv]);
            let mut ds1 = d_out;
            let (dg, dbt) = grads.pair(layer.ln1.g, layer.ln1.b);
            layer_norm_backward(&mut ds1, &dh1, &ls.s1, &w[layer.ln1.g], &ls.st1, h, dg, dbt);
            let mut da = dh1;
            da.copy_from_slice(&ds1);
            ls.drop1.apply(&mut da);
            let mut dctx = scratch.zeros(t * h);
            let (dw, db) = grads.pair(layer.o.w, layer.o.b);
            linear_backward(
                &da,
                &ls.ctx,
                t,
                &w[layer.o.w],
                h,
                h,
                Some((&mut dctx, false)),
                dw,
                db,
            );
            let (mut dq, mut dk, mut dv) = (da, scratch.zeros(t * h), scratch.zeros(t * h));
            attention::backward(
                &mut dq,
                &mut dk,
                &mut dv,
                &dctx,
                &ls.q,
                &ls.k,
                &ls.v,
                &packed.spans,
                layer.shape,
                &ls.attn,
            );
            let mut dx = ds1;
            for (dproj, lin_) in [(&dq, layer.q), (&dk, layer.k), (&dv, layer.v)] {
                let (dw, db) = grads.pair(lin_.w, lin_.b);
                let dx_arg = below[l].then_some((&mut dx[..], true));
                linear_backward(dproj, x, t, &w[lin_.w], h, h, dx_arg, dw, db);
            }
            scratch.recycle([dq, dk, dv, dctx, d]);
            d = dx;
        }
        if !emb_trainable {
            scratch.recycle([d]);
            return loss;
        }
        saved.drop0.apply(&mut d);
        let mut de = scratch.zeros(t * h);
        let n0 = self.emb.norm;
        let (dg, dbt) = grads.pair(n0.g, n0.b);
        layer_norm_backward(
            &mut de,
            &d,
            &saved.emb_sum,
            &w[n0.g],
            &saved.st0,
            h,
            dg,
            dbt,
        );
        grads.scatter_rows(self.emb.word, &packed.input_ids, &de, h);
        grads.scatter_rows(self.emb.position, &packed.position_ids, &de, h);
        if let Some(types) = self.emb.token_type {
            grads.scatter_rows(types, &packed.type_ids, &de, h);
        }
        scratch.recycle([d, de]);
        loss
    }
}

fn layer_params(l: &Layer) -> [usize; 16] {
    [
        l.q.w, l.q.b, l.k.w, l.k.b, l.v.w, l.v.b, l.o.w, l.o.b, l.ln1.g, l.ln1.b, l.f1.w, l.f1.b,
        l.f2.w, l.f2.b, l.ln2.g, l.ln2.b,
    ]
}
