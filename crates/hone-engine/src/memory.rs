//! How much memory fine-tuning a model takes, from its config.json alone (before anything is
//! downloaded): parameters, gradients, AdamW moments, the activations the backward pass keeps,
//! and the runtime around them.
//!
//! The activation terms follow what the CPU training path stores per layer (see `cpu::model`);
//! the runtime term was fitted to the peak resident memory of real `hone train` runs of
//! MiniLM-L6 (batch × length 16 × 64 and 32 × 128, full and frozen embeddings);
//! `bench/memory_estimate.sh` re-measures them and `bench/README.md` keeps the figures. A run
//! on a GPU, or in a mixed precision the CPU graph does not run (candle's autograd graph),
//! keeps more: its terms were fitted to the autograd graph's peaks
//! (`bench/autograd_memory.sh`; see [`autograd_activations`]).

use serde::{Deserialize, Serialize};

use crate::models::spec::{EncoderConfig, ModelSpec};

const MIB: u64 = 1 << 20;
const F32: u64 = 4;

/// Memory outside the model and its activations: the program, tokenizer, examples, database,
/// thread stacks (fitted).
const RUNTIME_BASE: u64 = 66 * MIB;
/// Per token of a batch: buffers the model terms below do not count (loss, masks, logits,
/// allocator slack; fitted).
const RUNTIME_PER_TOKEN: u64 = 14 * 1024;
/// On a GPU: the CUDA context and cuBLAS's workspace (what `nvidia-smi` shows in use before
/// the first tensor, measured on an H200).
const GPU_RUNTIME: u64 = 600 * MIB;

/// Parameter counts of a classifier built on a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterCount {
    /// All parameters, the classification head included.
    pub total: u64,
    /// The word, position and token-type tables (what `freeze_embeddings` freezes).
    pub embedding_tables: u64,
    /// Parameters never trained (DistilBERT's sinusoidal positions).
    pub fixed: u64,
    /// Elements of the largest single tensor (the word embeddings).
    pub largest_tensor: u64,
}

/// The sizes the estimates need, for encoders and decoders alike.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub hidden: u64,
    pub intermediate: u64,
    pub layers: u64,
    pub heads: u64,
    /// Width of the queries (heads × head size) and of the keys and values (fewer heads in
    /// grouped-query attention).
    pub query: u64,
    pub key_value: u64,
    pub vocab: u64,
    /// A decoder LM: gated feed-forward (three matrices), causal attention, an output layer
    /// over the vocabulary computed a chunk of tokens at a time with its loss.
    pub decoder: Option<DecoderDims>,
}

/// What a decoder LM adds to [`Dims`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecoderDims {
    /// The output layer is the embedding table (no weights of its own).
    pub tied: bool,
    pub attention_bias: bool,
    pub output_bias: bool,
    pub mlp_bias: bool,
}

impl Dims {
    pub fn of(config: &EncoderConfig) -> Self {
        let h = config.hidden_size as u64;
        let (query, key_value) = match &config.decoder {
            Some(d) => (
                (config.num_heads * d.head_dim) as u64,
                (d.kv_heads * d.head_dim) as u64,
            ),
            None => (h, h),
        };
        Dims {
            hidden: h,
            intermediate: config.intermediate_size as u64,
            layers: config.num_layers as u64,
            heads: config.num_heads as u64,
            query,
            key_value,
            vocab: config.vocab_size as u64,
            decoder: config.decoder.as_ref().map(|d| DecoderDims {
                tied: d.tie_word_embeddings,
                attention_bias: d.attention_bias,
                output_bias: d.output_bias,
                mlp_bias: d.mlp_bias,
            }),
        }
    }

    /// Weights of one layer's matrices: the four attention projections and the feed-forward
    /// block (two matrices, three when gated). Each token multiplies through all of them.
    pub fn layer_matrix_weights(&self) -> u64 {
        let (h, i) = (self.hidden, self.intermediate);
        let feed_forward = if self.decoder.is_some() { 3 } else { 2 };
        2 * h * self.query + 2 * h * self.key_value + feed_forward * h * i
    }
}

/// LoRA adapter parameters at rank `r` on the usual targets (the query and value
/// projections of every layer, PEFT's default for these families): `r × (in + out)` each.
pub fn lora_adapter_count(config: &EncoderConfig, rank: usize) -> u64 {
    let d = Dims::of(config);
    d.layers * rank as u64 * ((d.hidden + d.query) + (d.hidden + d.key_value))
}

/// Parameters of the head trained in full beside the adapters (the dense layer and classifier
/// of [`parameter_count`]'s head: an upper bound, BERT's pooler stays frozen); none for a
/// language model, whose output layer stays frozen as PEFT leaves it.
fn head_count(config: &EncoderConfig, num_labels: usize) -> u64 {
    if config.decoder.is_some() {
        return 0;
    }
    let (h, labels) = (config.hidden_size as u64, num_labels as u64);
    (h * h + h) + (h * labels + labels)
}

impl ParameterCount {
    /// Parameters a run updates.
    pub fn trainable(&self, freeze_embeddings: bool) -> u64 {
        let frozen = if freeze_embeddings {
            self.embedding_tables
        } else {
            self.fixed
        };
        self.total - frozen
    }
}

/// Counts the parameters of an encoder with `config`'s dimensions and a `num_labels` head
/// (DistilBERT has no token-type table: its `type_vocab_size` is 0).
pub fn parameter_count(config: &EncoderConfig, num_labels: usize) -> ParameterCount {
    let dims = Dims::of(config);
    if let Some(decoder) = dims.decoder {
        return decoder_parameter_count(dims, decoder);
    }
    if let Some(t5) = &config.t5 {
        return t5_parameter_count(config, t5);
    }
    let h = config.hidden_size as u64;
    let i = config.intermediate_size as u64;
    let labels = num_labels as u64;
    let deberta = config.deberta.as_ref();
    // DeBERTa's tables may be narrower than the layers (then projected) and may have no
    // positions.
    let e = deberta.map_or(h, |d| d.embedding_size as u64);
    let word = config.vocab_size as u64 * e;
    let positions = if deberta.is_none_or(|d| d.position_biased_input) {
        config.max_position_embeddings as u64 * e
    } else {
        0
    };
    let token_types = config.type_vocab_size as u64 * e;
    let embedding_norm = 2 * h + if e == h { 0 } else { e * h };
    let mut layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h;
    // DeBERTa: its relative embeddings (and their LayerNorm), and position projections of
    // each layer's own unless it shares the attention's.
    let mut relative = 0;
    if let Some(d) = deberta {
        relative = 2 * d.buckets.span as u64 * h + if d.norm_rel_ebd { 2 * h } else { 0 };
        if !d.share_att_key {
            layer += u64::from(u8::from(d.c2p) + u8::from(d.p2c)) * (h * h + h);
        }
    }
    // BERT: pooler + classifier; DistilBERT: pre_classifier + classifier; RoBERTa:
    // classifier.dense + classifier.out_proj; DeBERTa: pooler.dense + classifier. All are
    // h×h + h×labels.
    let head = (h * h + h) + (h * labels + labels);
    let embedding_tables = word + positions + token_types;
    ParameterCount {
        total: embedding_tables
            + embedding_norm
            + config.num_layers as u64 * layer
            + relative
            + head,
        embedding_tables,
        fixed: if config.sinusoidal_positions {
            positions
        } else {
            0
        },
        largest_tensor: word.max(h * i),
    }
}

/// Counts the parameters of a decoder LM: the embedding table, the layers (RMSNorms without
/// biases), the final norm and an output layer of its own unless tied to the embedding.
fn decoder_parameter_count(d: Dims, decoder: DecoderDims) -> ParameterCount {
    let (h, i) = (d.hidden, d.intermediate);
    let attention_biases = if decoder.attention_bias {
        d.query + 2 * d.key_value
    } else {
        0
    } + if decoder.output_bias { h } else { 0 };
    let mlp_biases = if decoder.mlp_bias { 2 * i + h } else { 0 };
    let layer = d.layer_matrix_weights() + attention_biases + mlp_biases + 2 * h;
    let embedding = d.vocab * h;
    let output = if decoder.tied { 0 } else { embedding };
    ParameterCount {
        total: embedding + d.layers * layer + h + output,
        embedding_tables: embedding,
        fixed: 0,
        largest_tensor: embedding.max(h * i),
    }
}

/// Counts the parameters of a T5-layout encoder–decoder: the shared embeddings, each stack's
/// layers (the decoder's with cross-attention), position biases and final norms, and an
/// `lm_head` of its own for the v1.1 layout (no output scaling; transformers 5 writes
/// `tie_word_embeddings: true` for both, so the scaling is what tells them apart).
fn t5_parameter_count(config: &EncoderConfig, t5: &crate::models::t5::T5Config) -> ParameterCount {
    let h = config.hidden_size as u64;
    let inner = (config.num_heads * t5.head_dim) as u64;
    let f = config.intermediate_size as u64;
    let feed_forward = if t5.gated { 3 } else { 2 } * h * f;
    let encoder_layer = 4 * h * inner + feed_forward + 2 * h;
    let decoder_layer = 8 * h * inner + feed_forward + 3 * h;
    let embedding = config.vocab_size as u64 * h;
    let biases = 2 * (t5.buckets * config.num_heads) as u64;
    let head = if t5.scale_decoder_outputs {
        0
    } else {
        embedding
    };
    ParameterCount {
        total: embedding
            + t5.encoder_layers as u64 * encoder_layer
            + t5.decoder_layers as u64 * decoder_layer
            + biases
            + 2 * h
            + head,
        embedding_tables: embedding,
        fixed: 0,
        largest_tensor: embedding.max(h * f),
    }
}

/// The shape of a training run the estimate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FitSettings {
    pub batch_size: usize,
    pub max_length: usize,
    pub freeze_embeddings: bool,
    pub num_labels: usize,
    /// The data's mean length in tokens, when known: the speed estimate uses it (the CPU path
    /// skips padding); memory stays sized for `max_length`, the longest batch.
    pub typical_length: Option<usize>,
    /// LoRA at this rank on the query and value projections (the head trained in full, the
    /// rest frozen) instead of full fine-tuning.
    pub lora_rank: Option<usize>,
    /// Set when the run takes candle's autograd graph, in this precision: on a GPU always, on
    /// the CPU in a mixed precision the CPU's own graph does not run
    /// ([`crate::precision::Precision::runs_on_cpu_graph`]).
    pub autograd: Option<crate::precision::Precision>,
    /// The run takes the CPU graph with bf16 products (`--precision bf16` on a CPU with
    /// AVX512-BF16): each frozen weight's two bf16 packings are kept as well.
    pub bf16_products: bool,
    /// The run trains on a GPU: the estimate is of the GPU's memory (its runtime is the CUDA
    /// context's, not the CPU's per-token buffers).
    pub gpu: bool,
    /// The device the run trains on, whose memory the app's fit check judges; `None` as
    /// `auto` (the machine's first GPU when there is one).
    pub device: Option<crate::device::DeviceSpec>,
    /// A text-to-text model's target tokens per example (the run's `max_target_length`, what
    /// its decoder reads); `None` as [`DEFAULT_TARGET_LENGTH`]. Other models ignore it.
    pub target_length: Option<usize>,
}

/// The target length a text-to-text run keeps by default (`max_target_length`).
pub const DEFAULT_TARGET_LENGTH: usize = 128;

/// The rank the fit check assumes for its LoRA line (the Train page's default).
pub const DEFAULT_LORA_RANK: usize = 8;

impl FitSettings {
    /// The parameters a run with these settings trains, and the LoRA adapters it adds.
    pub fn trained_and_added(&self, config: &EncoderConfig) -> (u64, u64) {
        let labels = self.num_labels.max(1);
        match self.lora_rank {
            Some(r) => {
                let adapters = lora_adapter_count(config, r);
                (adapters + head_count(config, labels), adapters)
            }
            None => (
                parameter_count(config, labels).trainable(self.freeze_embeddings),
                0,
            ),
        }
    }
}

impl FitSettings {
    /// The run multiplies its dense layers in bf16 on the CPU graph (what its memory and
    /// speed estimates price: the frozen weights' kept packings, the bf16 rate).
    pub fn runs_bf16_products(&self) -> bool {
        self.bf16_products && self.autograd.is_none() && !self.gpu
    }

    /// Tokens per sequence: `max_length`, capped at the model's maximum.
    pub fn length(&self, config: &EncoderConfig) -> usize {
        self.max_length.min(config.max_position_embeddings).max(1)
    }
}

impl Default for FitSettings {
    fn default() -> Self {
        FitSettings {
            batch_size: 16,
            max_length: 128,
            freeze_embeddings: false,
            num_labels: 2,
            typical_length: None,
            lora_rank: None,
            autograd: None,
            bf16_products: false,
            gpu: false,
            device: None,
            target_length: None,
        }
    }
}

/// Estimated peak memory of fine-tuning, by part, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEstimate {
    pub settings: FitSettings,
    pub parameters: u64,
    pub trainable_parameters: u64,
    /// f32 weights (and their bf16 packings, with `bf16_products`).
    pub weights: u64,
    /// Gradients of the trained parameters.
    pub gradients: u64,
    /// AdamW's two moments per trained parameter.
    pub optimizer: u64,
    /// What the forward pass keeps for the backward pass, and the backward pass's work buffers.
    pub activations: u64,
    /// Program, tokenizer, data and per-token buffers not counted above.
    pub runtime: u64,
    /// The one-tensor copy made while a checkpoint is written or the best one restored.
    pub checkpoint: u64,
    pub total: u64,
}

/// Estimates the peak memory of fine-tuning `spec` with `settings` (the sequence length is
/// capped at the model's maximum, every batch is assumed full length).
pub fn estimate(spec: &ModelSpec, settings: FitSettings) -> MemoryEstimate {
    let config = &spec.encoder;
    let count = parameter_count(config, settings.num_labels.max(1));
    let (trainable, adapters) = settings.trained_and_added(config);
    let length = settings.length(config) as u64;
    let batch = settings.batch_size.max(1) as u64;
    let tokens = batch * length;
    let dims = Dims::of(config);
    let (h, i) = (dims.hidden, dims.intermediate);
    let (layers, heads) = (dims.layers, dims.heads);
    // LoRA, per targeted projection (two per layer) and token: the dropped input and its mask,
    // and the rank-wide product.
    let per_token_lora = settings
        .lora_rank
        .map_or(0, |r| 2 * (F32 * h + h + F32 * r as u64));
    // Mixed precision keeps each weight's low-precision copy too (two bytes a parameter).
    let low_precision_weights = match settings.autograd.is_some_and(|p| p.is_mixed()) {
        true => 2 * (count.total + adapters),
        false => 0,
    };
    let activations = match (settings.autograd, dims.decoder, &config.t5) {
        (autograd, _, Some(t5)) => {
            let target = settings
                .target_length
                .unwrap_or(DEFAULT_TARGET_LENGTH)
                .max(1) as u64;
            let t5 = T5Dims::of(config, t5);
            // LoRA's q and v: the encoder's two over the source; in each decoder layer its own
            // attention's two and cross-attention's q over the targets, cross-attention's v
            // over the source (`per_token_lora` is two projections').
            let sources_and_targets =
                2 * t5.encoder_layers * tokens + t5.decoder_layers * (3 * batch * target + tokens);
            let lora = sources_and_targets * per_token_lora / 2;
            t5_activations(&dims, &t5, batch, length, target, autograd)
                + lora
                + low_precision_weights
        }
        (Some(precision), _, None) => {
            let lora = layers * tokens * per_token_lora;
            let relative_width = config.deberta.as_ref().map(|d| 2 * d.buckets.span as u64);
            autograd_activations(&dims, batch, length, precision, relative_width)
                + lora
                + low_precision_weights
        }
        (None, None, None) => {
            // Per layer and token: eight h-wide and two i-wide f32 tensors (inputs of the four
            // projections, Q/K/V, context, the two normalised outputs, the feed-forward input
            // and activation), two byte dropout masks and the normalisation statistics.
            let per_token_layer = F32 * (8 * h + 2 * i) + 2 * h + 16;
            // Per layer and head: attention probabilities (f32) and their dropout mask (byte).
            let attention = batch * heads * length * length * (F32 + 1);
            // DeBERTa, per layer: the dropped relative embeddings (and mask) and their key
            // and query projections.
            let relative = config
                .deberta
                .as_ref()
                .map_or(0, |d| 2 * d.buckets.span as u64 * h * (3 * F32 + 1));
            let saved =
                layers * (tokens * (per_token_layer + per_token_lora) + attention + relative);
            let embeddings = tokens * (F32 * 2 * h + h);
            let scratch = F32 * tokens * (6 * h + i);
            saved + embeddings + scratch
        }
        (None, Some(_), None) => {
            // Per layer and token: the two residual inputs and two normalised outputs, the
            // rotated queries and keys, the values, the context, and the gate, up and gated
            // products; no dropout (decoders train without it).
            let (q, kv) = (dims.query, dims.key_value);
            let per_token_layer = F32 * (4 * h + 2 * q + 2 * kv + 3 * i) + 8;
            // Per layer: the attention probabilities, or for long batches each query row's
            // log-sum-exp (the backward pass recomputes the probabilities:
            // `cpu::attention::recompute_pays`).
            let probabilities = batch * heads * length * length;
            let attention = if crate::cpu::attention::recompute_pays(probabilities as usize) {
                batch * heads * length * F32
            } else {
                probabilities * F32
            };
            let saved = layers * (tokens * (per_token_layer + per_token_lora) + attention);
            // The embedding output and the final norm's, the gradient of the hidden states,
            // and the output layer's chunk of logits with its loss (`cpu::lm_loss`).
            let embeddings = tokens * F32 * 3 * h;
            let output_chunk = crate::cpu::lm_loss::CHUNK_BYTES as u64;
            // The backward pass's buffers, and one sequence's probabilities per thread.
            let scratch = F32 * tokens * (6 * h + 3 * i) + 8 * F32 * length * length;
            saved + embeddings + output_chunk + scratch
        }
    };

    // bf16 products on the CPU graph keep every frozen weight's two packings (`cpu::bf16`,
    // two bytes an element each; the frozen embeddings counted too, an upper bound).
    let packed = match settings.runs_bf16_products() {
        true => 4 * (count.total + adapters).saturating_sub(trainable),
        false => 0,
    };
    let weights = F32 * (count.total + adapters) + packed;
    let gradients = F32 * trainable;
    let optimizer = 2 * F32 * trainable;
    let runtime = match (settings.gpu, settings.autograd) {
        (true, _) => GPU_RUNTIME,
        // The autograd terms' fit includes the per-token buffers.
        (false, Some(_)) => RUNTIME_BASE,
        (false, None) => RUNTIME_BASE + RUNTIME_PER_TOKEN * tokens,
    };
    let checkpoint = F32 * count.largest_tensor;
    MemoryEstimate {
        settings,
        parameters: count.total + adapters,
        trainable_parameters: trainable,
        weights,
        gradients,
        optimizer,
        activations,
        runtime,
        checkpoint,
        total: weights + gradients + optimizer + activations + runtime + checkpoint,
    }
}

/// What a T5 layout adds to [`Dims`] (whose `layers` count both stacks).
#[derive(Debug, Clone, Copy)]
pub(crate) struct T5Dims {
    /// Layers of the encoder, which reads the source.
    pub encoder_layers: u64,
    /// Layers of the decoder, which reads the target and attends to the source.
    pub decoder_layers: u64,
    /// Heads × head size: the width of each attention's queries, keys and values.
    pub inner: u64,
    /// A gated feed-forward (v1.1: two input matrices and their product).
    pub gated: bool,
}

impl T5Dims {
    fn of(config: &EncoderConfig, t5: &crate::models::t5::T5Config) -> Self {
        T5Dims {
            encoder_layers: t5.encoder_layers as u64,
            decoder_layers: t5.decoder_layers as u64,
            inner: (config.num_heads * t5.head_dim) as u64,
            gated: t5.gated,
        }
    }
}

/// What fine-tuning a T5-layout encoder–decoder keeps, on the CPU's graph (`autograd` `None`)
/// or candle's autograd graph: per layer and source token (the encoder's layer, and each
/// decoder layer's cross-attention keys and values), per layer and target token (the decoder's
/// layer), per attention score (the encoder's, the decoder's own and its cross-attention's,
/// each with its position bias) and per target token and vocabulary entry (the output layer's
/// logits). Fitted by least squares (relative error) to `hone bench` peaks less each model's
/// peak on one 8-token pair (bench/t5_memory.sh: random t5-small and a copy with 2 + 2
/// layers, sources 64–512 tokens, targets 32–512, 2026-12-05): within 0.97–1.04 of what the
/// autograd graph keeps, 0.86–1.24 on the CPU's graph (which keeps a tenth as much). Not
/// measured: a gated feed-forward (v1.1), counted as one and a half times as wide; and models
/// whose heads are wider than the model (t5-3b, t5-11b), whose attention tensors the terms
/// per model width undercount (t5-small's are as wide).
fn t5_activations(
    dims: &Dims,
    t5: &T5Dims,
    batch: u64,
    source: u64,
    target: u64,
    autograd: Option<crate::precision::Precision>,
) -> u64 {
    let (h, inner) = (dims.hidden, t5.inner);
    let f = if t5.gated {
        dims.intermediate * 3 / 2
    } else {
        dims.intermediate
    };
    // Bytes per encoder layer and source token, per decoder layer and source token (its
    // cross-attention's keys and values), per decoder layer and target token, per score and
    // per target token and vocabulary entry.
    let (encoder, cross, decoder, per_score, per_entry) = match autograd {
        None => (F32 * (8 * h + 2 * f) + 2 * h + 16, 41 * inner, 42 * h, 6, 6),
        Some(p) if p.is_mixed() => {
            let layer = 96 * h + 5 * f;
            (layer, 59 * inner, layer + 47 * h, 29, 11)
        }
        Some(_) => {
            let layer = 96 * h + 10 * f;
            (layer, 51 * inner, layer + 30 * h, 22, 7)
        }
    };
    let heads = batch * dims.heads;
    let (sources, targets) = (batch * source, batch * target);
    t5.encoder_layers * (sources * encoder + per_score * heads * source * source)
        + t5.decoder_layers
            * (sources * cross + targets * decoder + per_score * heads * target * (target + source))
        + per_entry * targets * dims.vocab
}

/// What candle's autograd graph holds at its peak, the backward pass's: every intermediate of
/// the forward pass (an op keeps its inputs alive until the graph is dropped) and the
/// gradients in flight. Per layer, bytes per token and hidden element, per token and
/// feed-forward element, and per attention score (sequences × heads × length²), fitted by
/// least squares (relative error) to the peak RSS of `hone bench --autograd` on the CPU less
/// the same model's peak on one short sequence (weights, gradients, moments, runtime): random
/// BERTs of MiniLM-L6's and BERT-base's shapes and a MiniLM with a feed-forward as wide as its
/// hidden size, batches 64 × 32 to 8 × 512, fp32 and bf16 (`bench/autograd_memory.sh`); the
/// hidden term then raised from 90 bytes so that BERT-base is not under. Whole estimates are
/// within 0.96–1.08 of the peaks. A GPU runs the same graph: before the fused ops, an H200's
/// peaks were the CPU's plus 0.3–0.8 GiB (its context, [`GPU_RUNTIME`]); the fused ops' CUDA
/// kernels keep a row's temporaries where their CPU twins hold whole f32 copies, so a GPU
/// should keep no more than this. Mixed precision also keeps each weight's low-precision copy
/// (two bytes a parameter, added by the caller).
///
/// A decoder (`hone bench --autograd` on the CPU, fp32 and bf16: SmolLM2-135M and a 10-layer
/// copy, LoRA rank 16 and full, 8 × 128 to 2 × 512; the 10-layer copy against the 30-layer
/// model separates the per-layer terms from the output layer's) keeps no more bytes per
/// feed-forward element in bf16 and 2 more in fp32 (its gate and up products; the gate itself
/// is one op, `graph::gated`), 5 bytes per score
/// in bf16 and 9 in fp32 (no dropout: only the scores and probabilities) and, once per token,
/// 14 per vocabulary entry in either precision (the output layer's logits and their gradient:
/// the loss is one op each way, `graph::cross_entropy`). LoRA's estimates are within 0.95–1.02
/// of the peaks, full fine-tuning's 1.10–1.13.
///
/// DeBERTa (`relative_width`: its 2 × span relative positions) adds, per layer, 24 bytes per
/// token, head and relative position (each query's and key's products with every position's
/// projection, c2p and p2c, and their gradients) and 8 per score (the two gathered position
/// terms and their sum): fitted to a random DeBERTa-v3-xsmall's peaks, 64 × 32 to 4 × 512,
/// within 0.87–1.13 of what it keeps (short sequences the lowest); whole estimates 0.95–1.15.
fn autograd_activations(
    dims: &Dims,
    batch: u64,
    length: u64,
    precision: crate::precision::Precision,
    relative_width: Option<u64>,
) -> u64 {
    let mixed = precision.is_mixed();
    let (per_hidden, mut per_intermediate, mut per_score) = match mixed {
        true => (96, 5, 19),
        false => (96, 10, 17),
    };
    let tokens = batch * length;
    // A decoder's output layer: its logits and their gradient (the loss is one op each way,
    // `graph::cross_entropy`), once per token.
    let mut output = 0;
    if dims.decoder.is_some() {
        // The gated feed-forward's gate and up products (its gate one op: `graph::gated`);
        // attention without dropout keeps only the scores and probabilities in the product's
        // dtype.
        per_intermediate += if mixed { 0 } else { 2 };
        per_score = if mixed { 5 } else { 9 };
        output = 14 * tokens * dims.vocab;
    }
    let per_token_layer = per_hidden * dims.hidden + per_intermediate * dims.intermediate;
    let score_count = batch * dims.heads * length * length;
    let relative = relative_width.map_or(0, |width| {
        24 * tokens * dims.heads * width + 8 * score_count
    });
    dims.layers * (tokens * per_token_layer + per_score * score_count + relative) + output
}

/// all-MiniLM-L6-v2's config.json as a spec (for the estimates' tests).
#[cfg(test)]
pub(crate) fn minilm() -> ModelSpec {
    let config = serde_json::json!({
        "model_type": "bert", "vocab_size": 30522, "hidden_size": 384,
        "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
        "max_position_embeddings": 512, "type_vocab_size": 2
    });
    ModelSpec::from_json(config, std::path::Path::new("config.json")).expect("valid")
}

/// SmolLM2-135M's config.json (tied embeddings, 3 key/value heads of 9) as a spec.
#[cfg(test)]
pub(crate) fn smollm2() -> ModelSpec {
    let config = serde_json::json!({
        "model_type": "llama", "vocab_size": 49152, "hidden_size": 576,
        "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "head_dim": 64, "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": true,
        "hidden_act": "silu"
    });
    ModelSpec::from_json(config, std::path::Path::new("config.json")).expect("valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random BERT of these sizes (the shapes `bench/gpu_step.py make-model` builds).
    fn bert(hidden: usize, layers: usize, intermediate: usize) -> ModelSpec {
        let config = serde_json::json!({
            "model_type": "bert", "vocab_size": 30522, "hidden_size": hidden,
            "num_hidden_layers": layers, "num_attention_heads": 12,
            "intermediate_size": intermediate, "max_position_embeddings": 512,
            "type_vocab_size": 2
        });
        ModelSpec::from_json(config, std::path::Path::new("config.json")).expect("valid")
    }

    /// The peak RSS (MiB) of `hone bench --autograd --steps 1 --warmup 1` on the CPU at
    /// 2cf230c (`bench/autograd_memory.sh`, 2026-12-05; DeBERTa with `MODELS=deberta`), dense
    /// batches: the run the estimate describes (a mixed-precision run on the CPU; on a GPU the
    /// same graph).
    #[test]
    fn the_autograd_estimate_matches_measured_peaks() {
        use crate::precision::Precision::{Bf16, Fp32};
        let (minilm, narrow, bert_base) =
            (bert(384, 6, 1536), bert(384, 6, 384), bert(768, 12, 3072));
        for (name, spec, batch, length, precision, mib) in [
            ("minilm", &minilm, 64, 32, Fp32, 1_119u64),
            ("minilm", &minilm, 4, 256, Fp32, 1_001),
            ("minilm", &minilm, 32, 128, Fp32, 2_174),
            ("minilm", &minilm, 8, 512, Fp32, 3_885),
            ("minilm", &minilm, 64, 32, Bf16, 1_030),
            ("minilm", &minilm, 32, 128, Bf16, 2_112),
            ("minilm", &minilm, 8, 512, Bf16, 4_172),
            ("narrow feed-forward", &narrow, 32, 128, Fp32, 1_814),
            ("narrow feed-forward", &narrow, 32, 128, Bf16, 1_873),
            ("bert-base", &bert_base, 32, 128, Fp32, 8_278),
            ("bert-base", &bert_base, 8, 512, Fp32, 11_716),
            ("bert-base", &bert_base, 32, 128, Bf16, 7_689),
            ("bert-base", &bert_base, 8, 512, Bf16, 11_797),
        ] {
            let settings = FitSettings {
                batch_size: batch,
                max_length: length,
                autograd: Some(precision),
                ..FitSettings::default()
            };
            let ratio = estimate(spec, settings).total as f64 / (mib * MIB) as f64;
            assert!(
                (0.95..1.1).contains(&ratio),
                "{name} {batch}x{length} {precision}: estimate / measured = {ratio:.3}"
            );
        }
        // DeBERTa-v3-xsmall's shape (bench/deberta_model.py): its relative positions' terms,
        // fitted more loosely (0.95–1.15; short sequences keep the most beside them).
        let deberta = ModelSpec::from_json(
            serde_json::json!({
                "model_type": "deberta-v2", "vocab_size": 128100, "hidden_size": 384,
                "num_hidden_layers": 12, "num_attention_heads": 6, "intermediate_size": 1536,
                "max_position_embeddings": 512, "type_vocab_size": 0, "relative_attention": true,
                "position_buckets": 256, "pos_att_type": ["p2c", "c2p"], "share_att_key": true,
                "norm_rel_ebd": "layer_norm", "position_biased_input": false,
                "max_relative_positions": -1
            }),
            std::path::Path::new("config.json"),
        )
        .expect("valid");
        for (batch, length, precision, mib) in [
            (64, 32, Fp32, 4_610u64),
            (4, 256, Fp32, 2_960),
            (32, 128, Fp32, 7_106),
            (4, 512, Fp32, 5_782),
            (32, 128, Bf16, 7_085),
            (4, 512, Bf16, 5_983),
        ] {
            let settings = FitSettings {
                batch_size: batch,
                max_length: length,
                autograd: Some(precision),
                ..FitSettings::default()
            };
            let ratio = estimate(&deberta, settings).total as f64 / (mib * MIB) as f64;
            assert!(
                (0.9..1.2).contains(&ratio),
                "deberta {batch}x{length} {precision}: estimate / measured = {ratio:.3}"
            );
        }
        // Decoders, whole runs (bench/decoder/memory_decoder.sh with PRECISION=bf16: `hone
        // train` of SmolLM2-135M, LoRA rank 16, 2026-12-05, with the frozen weights' gradients
        // gone and rotary embeddings and the SiLU gate one op each; estimates 0.99–1.01).
        for (name, spec, batch, length, lora, mib) in [
            ("smollm2", smollm2(), 8, 128, Some(16), 3_849u64),
            ("smollm2", smollm2(), 4, 256, Some(16), 3_964),
            ("smollm2", smollm2(), 2, 512, Some(16), 4_273),
        ] {
            let settings = FitSettings {
                batch_size: batch,
                max_length: length,
                lora_rank: lora,
                autograd: Some(Bf16),
                ..FitSettings::default()
            };
            let ratio = estimate(&spec, settings).total as f64 / (mib * MIB) as f64;
            assert!(
                (0.95..1.1).contains(&ratio),
                "{name} {batch}x{length} LoRA {lora:?}: estimate / measured = {ratio:.3}"
            );
        }
        // The graph alone (`hone bench --autograd --steps 1 --warmup 1`, a synthetic batch of
        // full sequences; bench/decoder/memory_autograd.sh): fp32, which the CPU trains on its
        // own graph but a GPU on this one, and bf16. LoRA 0.95–1.02, full fine-tuning 1.10–1.13.
        let mut smol10 = smollm2();
        smol10.encoder.num_layers = 10;
        for (name, spec, batch, length, precision, lora, mib) in [
            ("smollm2", smollm2(), 8, 128, Fp32, Some(16), 3_996u64),
            ("smollm2", smollm2(), 4, 256, Fp32, Some(16), 4_325),
            ("smollm2", smollm2(), 2, 512, Fp32, Some(16), 4_853),
            ("smollm2", smollm2(), 4, 256, Fp32, None, 5_167),
            ("smollm2", smollm2(), 8, 128, Bf16, Some(16), 3_807),
            ("smollm2", smollm2(), 4, 256, Bf16, Some(16), 3_931),
            ("smollm2", smollm2(), 2, 512, Bf16, Some(16), 4_254),
            ("smollm2", smollm2(), 4, 256, Bf16, None, 4_729),
            (
                "smollm2, 10 layers",
                smol10.clone(),
                8,
                128,
                Fp32,
                Some(16),
                1_946,
            ),
            (
                "smollm2, 10 layers",
                smol10.clone(),
                4,
                256,
                Fp32,
                Some(16),
                2_055,
            ),
            (
                "smollm2, 10 layers",
                smol10.clone(),
                2,
                512,
                Fp32,
                Some(16),
                2_238,
            ),
            (
                "smollm2, 10 layers",
                smol10.clone(),
                4,
                256,
                Fp32,
                None,
                2_472,
            ),
            (
                "smollm2, 10 layers",
                smol10.clone(),
                8,
                128,
                Bf16,
                Some(16),
                2_043,
            ),
            (
                "smollm2, 10 layers",
                smol10.clone(),
                4,
                256,
                Bf16,
                Some(16),
                2_087,
            ),
            (
                "smollm2, 10 layers",
                smol10.clone(),
                2,
                512,
                Bf16,
                Some(16),
                2_188,
            ),
            ("smollm2, 10 layers", smol10, 4, 256, Bf16, None, 2_414),
        ] {
            let settings = FitSettings {
                batch_size: batch,
                max_length: length,
                lora_rank: lora,
                autograd: Some(precision),
                ..FitSettings::default()
            };
            let ratio = estimate(&spec, settings).total as f64 / (mib * MIB) as f64;
            assert!(
                (0.95..1.15).contains(&ratio),
                "{name} {batch}x{length} {precision} LoRA {lora:?}: estimate / measured = \
                 {ratio:.3}"
            );
        }
        // On a GPU: the CUDA context instead of the host's runtime, and still well above what
        // the CPU's own graph keeps.
        let cpu = estimate(&bert_base, FitSettings::default());
        let gpu = estimate(
            &bert_base,
            FitSettings {
                autograd: Some(Fp32),
                gpu: true,
                ..FitSettings::default()
            },
        );
        assert_eq!(gpu.runtime, GPU_RUNTIME);
        assert!(gpu.activations > 2 * cpu.activations);
    }

    /// A random T5 of t5-small's shape with `layers` encoder and decoder layers each
    /// (bench/t5_memory.sh makes it).
    fn t5_small(layers: usize) -> ModelSpec {
        let config = serde_json::json!({
            "model_type": "t5", "vocab_size": 32128, "d_model": 512, "d_kv": 64, "d_ff": 2048,
            "num_layers": layers, "num_decoder_layers": layers, "num_heads": 8,
            "feed_forward_proj": "relu", "decoder_start_token_id": 0, "pad_token_id": 0,
            "eos_token_id": 1, "tie_word_embeddings": true, "scale_decoder_outputs": true
        });
        ModelSpec::from_json(config, std::path::Path::new("config.json")).expect("valid")
    }

    /// The peak RSS (MiB) of `hone bench --steps 1 --warmup 1` of random T5s on dense
    /// text-to-text batches (bench/t5_memory.sh, 2026-12-05): batch × source × target, on
    /// the CPU's graph (`None`) and candle's autograd graph in fp32 and bf16. Whole estimates
    /// 0.94–1.09 of the peaks.
    #[test]
    fn the_t5_estimate_matches_measured_peaks() {
        use crate::precision::Precision::{Bf16, Fp32};
        for (layers, shape, graph, mib) in [
            (6, (8, 128, 32), None, 1_488u64),
            (6, (4, 512, 32), None, 1_906),
            (6, (4, 128, 512), None, 2_155),
            (2, (8, 64, 256), None, 1_213),
            (6, (8, 128, 32), Some(Fp32), 2_062),
            (6, (16, 64, 64), Some(Fp32), 2_650),
            (6, (4, 512, 32), Some(Fp32), 3_430),
            (6, (4, 128, 512), Some(Fp32), 4_223),
            (2, (4, 512, 32), Some(Fp32), 1_470),
            (6, (8, 128, 32), Some(Bf16), 2_270),
            (6, (8, 64, 256), Some(Bf16), 4_132),
            (6, (4, 128, 512), Some(Bf16), 4_973),
            (2, (8, 64, 256), Some(Bf16), 2_150),
        ] {
            let (batch, source, target) = shape;
            let settings = FitSettings {
                batch_size: batch,
                max_length: source,
                target_length: Some(target),
                autograd: graph,
                ..FitSettings::default()
            };
            let ratio = estimate(&t5_small(layers), settings).total as f64 / (mib * MIB) as f64;
            assert!(
                (0.93..1.1).contains(&ratio),
                "t5, {layers} layers, {batch}x{source}->{target} {graph:?}: estimate / measured \
                 = {ratio:.3}"
            );
        }
    }

    #[test]
    fn t5_parameter_counts_match_transformers() {
        // transformers' own count of the tiny fixtures (tests/reference/make_t5_fixtures.py).
        for (name, want) in [("tiny-t5", 46_912), ("tiny-t5-v1_1", 75_552)] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures")
                .join(name);
            let spec = ModelSpec::from_dir(&dir).unwrap();
            assert_eq!(parameter_count(&spec.encoder, 0).total, want, "{name}");
        }
    }

    #[test]
    fn decoder_parameter_counts_match_the_saved_models() {
        // Summed from the safetensors that transformers saved (bench/decoder/).
        assert_eq!(parameter_count(&smollm2().encoder, 0).total, 134_515_008);
        let qwen = serde_json::json!({
            "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896,
            "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
            "num_key_value_heads": 2, "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true,
            "use_sliding_window": false, "hidden_act": "silu"
        });
        let qwen = ModelSpec::from_json(qwen, std::path::Path::new("config.json")).unwrap();
        assert_eq!(parameter_count(&qwen.encoder, 0).total, 494_032_768);
        // LoRA rank 16 on q_proj (896 → 896) and v_proj (896 → 128) of 24 layers.
        let lora = estimate(
            &qwen,
            FitSettings {
                lora_rank: Some(16),
                batch_size: 4,
                max_length: 512,
                ..FitSettings::default()
            },
        );
        assert_eq!(
            lora.trainable_parameters,
            24 * 16 * ((896 + 896) + (896 + 128))
        );
        assert_eq!(lora.optimizer, 2 * 4 * lora.trainable_parameters);
    }

    #[test]
    fn parameter_count_matches_the_loaded_minilm() {
        let spec = minilm();
        let count = parameter_count(&spec.encoder, 2);
        // What `hone train` reports for all-MiniLM-L6-v2 with two classes.
        assert_eq!(count.total, 22_713_986);
        assert_eq!(count.trainable(true), 10_796_162);
        assert_eq!(count.largest_tensor, 30522 * 384);
    }

    #[test]
    fn parameter_count_matches_deberta_models_of_both_layouts() {
        let v3 = serde_json::json!({
            "model_type": "deberta-v2", "vocab_size": 128100, "hidden_size": 384,
            "num_hidden_layers": 12, "num_attention_heads": 6, "intermediate_size": 1536,
            "max_position_embeddings": 512, "type_vocab_size": 0, "relative_attention": true,
            "position_buckets": 256, "pos_att_type": "p2c|c2p", "share_att_key": true,
            "norm_rel_ebd": "layer_norm", "position_biased_input": false
        });
        let spec = ModelSpec::from_json(v3, std::path::Path::new("config.json")).unwrap();
        // DebertaV2ForSequenceClassification of deberta-v3-xsmall's shape with 2 labels
        // (bench/deberta_model.py), as transformers counts it.
        assert_eq!(parameter_count(&spec.encoder, 2).total, 70_830_722);
        let v2 = serde_json::json!({
            "model_type": "deberta-v2", "vocab_size": 50, "hidden_size": 16,
            "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32,
            "max_position_embeddings": 32, "type_vocab_size": 2, "relative_attention": true,
            "max_relative_positions": 6, "pos_att_type": ["c2p"], "share_att_key": false,
            "position_biased_input": true, "embedding_size": 12
        });
        let spec = ModelSpec::from_json(v2, std::path::Path::new("config.json")).unwrap();
        let model = crate::models::Model::random(
            spec.clone(),
            crate::models::Task::SequenceClassification,
            3,
            &candle_core::Device::Cpu,
            0,
        )
        .unwrap();
        let built: usize = model
            .params()
            .all()
            .iter()
            .map(|p| p.var().elem_count())
            .sum();
        assert_eq!(parameter_count(&spec.encoder, 3).total, built as u64);
    }

    #[test]
    fn lora_trains_a_small_share_and_needs_less_memory() {
        let spec = minilm();
        let full = estimate(&spec, FitSettings::default());
        let lora = estimate(
            &spec,
            FitSettings {
                lora_rank: Some(8),
                ..FitSettings::default()
            },
        );
        // 6 layers × query and value × 8 × (384 + 384), and the head.
        assert_eq!(
            lora.trainable_parameters,
            6 * 2 * 8 * 768 + (384 * 384 + 384) + (384 * 2 + 2)
        );
        assert_eq!(lora.parameters, full.parameters + 6 * 2 * 8 * 768);
        assert!(lora.optimizer * 50 < full.optimizer);
        assert!(lora.total < full.total);
        assert!(lora.activations > full.activations);
    }

    #[test]
    fn frozen_embeddings_need_less_and_longer_batches_need_more() {
        let spec = minilm();
        let full = estimate(&spec, FitSettings::default());
        let frozen = estimate(
            &spec,
            FitSettings {
                freeze_embeddings: true,
                ..FitSettings::default()
            },
        );
        assert_eq!(full.total - frozen.total, 12 * (30522 + 512 + 2) * 384);
        let long = estimate(
            &spec,
            FitSettings {
                max_length: 256,
                ..FitSettings::default()
            },
        );
        assert!(long.activations > 2 * full.activations);
        let capped = estimate(
            &spec,
            FitSettings {
                max_length: 100_000,
                ..FitSettings::default()
            },
        );
        assert_eq!(
            capped.activations,
            estimate(
                &spec,
                FitSettings {
                    max_length: 512,
                    ..FitSettings::default()
                }
            )
            .activations
        );
    }
}
