//! [`OnnxGraph`]: the third [`Graph`]. Instead of computing, each op appends ONNX nodes, so
//! a model's one definition (the same `forward` the CPU and GPU paths run) becomes an ONNX
//! graph. Values are named tensors over padded batches: `[batch × sequence × features]` for
//! token values, `[batch × features]` after [`Graph::first_tokens`], `[rows × features]` for
//! a [`Graph::table`]. The padding the packed graphs never see is masked in attention, so
//! the real tokens' values are the packed graphs' values.

use std::collections::HashMap;

use candle_core::DType;

use super::proto::{
    attribute_type, data_type, AttributeProto, NodeProto, TensorProto, ValueInfoProto,
};
use crate::graph::{
    BiasedAttention, Disentangled, Graph, Heads, RelativeBuckets, Stream, TokenIds, Tokens,
};
use crate::models::nn::{LayerNorm, RmsNorm, Rotary};
use crate::models::Positions;
use crate::ops::Activation;
use crate::params::Param;
use crate::prefix::PrefixAt;
use crate::EngineError;

/// A value of the ONNX graph: the name of the tensor a node outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named(pub String);

/// How the weights of the linear layers are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weights {
    /// f32, as trained.
    #[default]
    Float,
    /// Dynamic int8 quantization: every linear layer's weight as int8 with one scale per
    /// output feature (symmetric), activations quantized at run time
    /// (`DynamicQuantizeLinear` → `MatMulInteger`), and the word embeddings as int8 rows
    /// with one scale each.
    Int8,
}

/// What the graph needs to know of the model beyond its parameters.
#[derive(Debug, Clone, Copy)]
pub struct ModelShape {
    /// How the family numbers positions.
    pub positions: Positions,
    /// The padding token (RoBERTa's positions count from it).
    pub pad_token_id: u32,
    /// The attention layers' query features (heads × head size).
    pub hidden: usize,
    /// The longest sequence the graph accepts (DeBERTa's relative rows are tabled up to
    /// it).
    pub longest: usize,
}

/// Nodes and initializers written so far (see the module docs).
pub struct OnnxGraph {
    tokens: Tokens,
    shape: ModelShape,
    weights: Weights,
    /// `[batch × sequence]` int64 tensors the graph reads.
    input_ids: String,
    attention_mask: String,
    token_type_ids: Option<String>,
    pub(super) nodes: Vec<NodeProto>,
    pub(super) initializers: Vec<TensorProto>,
    /// Initializer names by parameter (and form), so a weight used twice is stored once.
    stored: HashMap<String, String>,
    /// Computed once per graph: the additive attention mask, the sequence length, position
    /// ids, the relative-row index of a DeBERTa graph.
    cached: HashMap<&'static str, String>,
    counter: usize,
}

pub(super) fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: attribute_type::INT,
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: ints.to_vec(),
        r#type: attribute_type::INTS,
        ..Default::default()
    }
}

fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f,
        r#type: attribute_type::FLOAT,
        ..Default::default()
    }
}

/// An initializer with `dims` and raw little-endian `bytes`.
fn tensor(name: &str, dims: &[usize], data_type: i32, raw_data: Vec<u8>) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type,
        name: name.into(),
        raw_data,
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn i64_bytes(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A graph input or output: a tensor of `elem_type` with named (dynamic) or fixed dims.
pub(super) fn value_info(name: &str, elem_type: i32, dims: &[&str]) -> ValueInfoProto {
    use super::proto::{dimension, Dimension, TensorShapeProto, TensorTypeProto, TypeProto};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d.parse::<i64>() {
                Ok(n) => dimension::Value::DimValue(n),
                Err(_) => dimension::Value::DimParam(d.to_string()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

fn unsupported(what: &str) -> EngineError {
    EngineError::InvalidConfig(format!(
        "ONNX export does not cover {what} yet (encoders with their heads only)"
    ))
}

impl OnnxGraph {
    /// A graph reading `[batch × sequence]` int64 tensors named `input_ids` and
    /// `attention_mask` (and `token_type_ids` when the model reads segments).
    pub fn new(
        input_ids: &str,
        attention_mask: &str,
        token_type_ids: Option<&str>,
        shape: ModelShape,
        weights: Weights,
    ) -> Result<Self, EngineError> {
        // The Graph trait hands out a batch; the ONNX graph has none, so a one-token
        // placeholder stands in (no model code reads it).
        let placeholder = hone_data::Batch::one_sequence(vec![0]);
        let limits = crate::graph::IdLimits {
            words: 1,
            positions: 1,
            types: 1,
        };
        let tokens = Tokens::pack(
            &placeholder,
            &[0],
            &[0],
            crate::graph::LabelsPer::Sequence,
            limits,
        )?;
        Ok(OnnxGraph {
            tokens,
            shape,
            weights,
            input_ids: input_ids.into(),
            attention_mask: attention_mask.into(),
            token_type_ids: token_type_ids.map(str::to_string),
            nodes: Vec::new(),
            initializers: Vec::new(),
            stored: HashMap::new(),
            cached: HashMap::new(),
            counter: 0,
        })
    }

    /// Reads the ids, mask and segments from these tensors from now on (multiple choice
    /// reshapes the graph's inputs first).
    pub fn read_inputs(&mut self, input_ids: &str, attention_mask: &str, types: Option<&str>) {
        self.input_ids = input_ids.into();
        self.attention_mask = attention_mask.into();
        self.token_type_ids = types.map(str::to_string);
        self.cached.clear();
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("{hint}_{}", self.counter)
    }

    /// Appends an `op` node with one output; returns the output's name.
    pub(super) fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.op_into(op, inputs, &[&out], attrs);
        out
    }

    /// Appends an `op` node writing the named `outputs`.
    pub(super) fn op_into(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attribute: Vec<AttributeProto>,
    ) {
        let name = format!("{op}_{}", self.nodes.len());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name,
            op_type: op.into(),
            attribute,
        });
    }

    /// An int64 constant (an initializer).
    pub(super) fn ints(&mut self, values: &[i64], dims: &[usize]) -> String {
        let name = self.fresh("const_i64");
        self.initializers
            .push(tensor(&name, dims, data_type::INT64, i64_bytes(values)));
        name
    }

    /// A scalar f32 constant.
    fn scalar(&mut self, value: f32) -> String {
        let name = self.fresh("const_f32");
        self.initializers
            .push(tensor(&name, &[], data_type::FLOAT, f32_bytes(&[value])));
        name
    }

    fn float_data(param: &Param) -> Result<(Vec<f32>, Vec<usize>), EngineError> {
        let value = param.value();
        let dims = value.dims().to_vec();
        let data = value
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok((data, dims))
    }

    /// `param` as an f32 initializer, stored once.
    fn weight(&mut self, param: &Param) -> Result<String, EngineError> {
        if let Some(name) = self.stored.get(param.name()) {
            return Ok(name.clone());
        }
        let (data, dims) = Self::float_data(param)?;
        let name = param.name().to_string();
        self.initializers
            .push(tensor(&name, &dims, data_type::FLOAT, f32_bytes(&data)));
        self.stored.insert(name.clone(), name.clone());
        Ok(name)
    }

    /// A `[out × in]` weight transposed to `[in × out]` (MatMul's right side), stored once.
    fn weight_transposed(&mut self, param: &Param) -> Result<String, EngineError> {
        let key = format!("{}#t", param.name());
        if let Some(name) = self.stored.get(&key) {
            return Ok(name.clone());
        }
        let (data, dims) = Self::float_data(param)?;
        let (rows, cols) = matrix(&dims, param)?;
        let mut t = vec![0f32; data.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = data[r * cols + c];
            }
        }
        let name = format!("{}.T", param.name());
        self.initializers.push(tensor(
            &name,
            &[cols, rows],
            data_type::FLOAT,
            f32_bytes(&t),
        ));
        self.stored.insert(key, name.clone());
        Ok(name)
    }

    /// A `[out × in]` weight as int8 `[in × out]` with one scale per output (symmetric:
    /// `max |w| / 127`), stored once: (weights, scales).
    fn weight_int8(&mut self, param: &Param) -> Result<(String, String), EngineError> {
        let key = format!("{}#q", param.name());
        if let Some(name) = self.stored.get(&key) {
            return Ok((name.clone(), format!("{name}_scale")));
        }
        let (data, dims) = Self::float_data(param)?;
        let (rows, cols) = matrix(&dims, param)?;
        let (quantized, scales) = quantize_rows(&data, rows, cols);
        let mut t = vec![0u8; data.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = quantized[r * cols + c] as u8;
            }
        }
        let name = format!("{}.T.int8", param.name());
        let scale = format!("{name}_scale");
        self.initializers
            .push(tensor(&name, &[cols, rows], data_type::INT8, t));
        self.initializers.push(tensor(
            &scale,
            &[rows],
            data_type::FLOAT,
            f32_bytes(&scales),
        ));
        self.stored.insert(key, name.clone());
        Ok((name, scale))
    }

    /// `x` quantized to uint8 at run time (values, scale, zero point), once per tensor: the
    /// query, key and value projections of a layer share their input's.
    fn quantized(&mut self, x: &str) -> (String, String, String) {
        let key = format!("{x}#uint8");
        let q = match self.stored.get(&key) {
            Some(q) => q.clone(),
            None => {
                let q = self.fresh("x_uint8");
                let (qs, qz) = (format!("{q}_scale"), format!("{q}_zero"));
                self.op_into("DynamicQuantizeLinear", &[x], &[&q, &qs, &qz], vec![]);
                self.stored.insert(key, q.clone());
                q
            }
        };
        (q.clone(), format!("{q}_scale"), format!("{q}_zero"))
    }

    /// The int8 weights' zero point (symmetric: 0), one initializer for every layer.
    fn weight_zero(&mut self) -> String {
        if let Some(z) = self.stored.get("#weight_zero") {
            return z.clone();
        }
        let zero = "weight_zero_point".to_string();
        self.initializers
            .push(tensor(&zero, &[], data_type::INT8, vec![0]));
        self.stored.insert("#weight_zero".into(), zero.clone());
        zero
    }

    /// The sequence length, as a one-element int64 tensor and as a scalar.
    fn sequence_length(&mut self) -> (String, String) {
        if let (Some(v), Some(s)) = (self.cached.get("seq_1d"), self.cached.get("seq")) {
            return (v.clone(), s.clone());
        }
        let ids = self.input_ids.clone();
        let shape = self.op("Shape", &[&ids], vec![]);
        let one = self.ints(&[1], &[1]);
        let as_vector = self.op("Gather", &[&shape, &one], vec![attr_int("axis", 0)]);
        let zero = self.ints(&[0], &[1]);
        let scalar = self.op("Squeeze", &[&as_vector, &zero], vec![]);
        self.cached.insert("seq_1d", as_vector.clone());
        self.cached.insert("seq", scalar.clone());
        (as_vector, scalar)
    }

    /// `0, 1, …, sequence − 1` (int64).
    fn range(&mut self) -> String {
        if let Some(r) = self.cached.get("range") {
            return r.clone();
        }
        let (_, len) = self.sequence_length();
        let start = self.ints(&[0], &[]);
        let step = self.ints(&[1], &[]);
        let r = self.op("Range", &[&start, &len, &step], vec![]);
        self.cached.insert("range", r.clone());
        r
    }

    /// The position ids the family numbers tokens with: `[sequence]` from zero, or
    /// `[batch × sequence]` after the padding id (RoBERTa).
    fn position_ids(&mut self) -> String {
        if let Some(p) = self.cached.get("positions") {
            return p.clone();
        }
        let ids = match self.shape.positions {
            Positions::FromZero => self.range(),
            Positions::AfterPadding => {
                let input = self.input_ids.clone();
                let pad = self.ints(&[i64::from(self.shape.pad_token_id)], &[]);
                let is_pad = self.op("Equal", &[&input, &pad], vec![]);
                let real = self.op("Not", &[&is_pad], vec![]);
                let real = self.op("Cast", &[&real], vec![attr_int("to", 7)]);
                let one = self.ints(&[1], &[]);
                let counted = self.op("CumSum", &[&real, &one], vec![]);
                let counted = self.op("Mul", &[&counted, &real], vec![]);
                self.op("Add", &[&counted, &pad], vec![])
            }
        };
        self.cached.insert("positions", ids.clone());
        ids
    }

    /// `(1 − mask) · f32::MIN` as `[batch × 1 × 1 × sequence]`: what every key's score
    /// gets, so padding keys take no weight.
    fn mask_bias(&mut self) -> String {
        if let Some(m) = self.cached.get("mask") {
            return m.clone();
        }
        let mask = self.attention_mask.clone();
        let m = self.op("Cast", &[&mask], vec![attr_int("to", 1)]);
        let one = self.scalar(1.0);
        let inverted = self.op("Sub", &[&one, &m], vec![]);
        let min = self.scalar(f32::MIN);
        let bias = self.op("Mul", &[&inverted, &min], vec![]);
        let axes = self.ints(&[1, 2], &[2]);
        let bias = self.op("Unsqueeze", &[&bias, &axes], vec![]);
        self.cached.insert("mask", bias.clone());
        bias
    }

    /// `[b × s × heads·d]` → `[b × heads × s × d]` (keys: `[b × heads × d × s]`).
    fn split_heads(&mut self, x: &str, heads: usize, head_dim: usize, keys: bool) -> String {
        let shape = self.ints(&[0, 0, heads as i64, head_dim as i64], &[4]);
        let x = self.op("Reshape", &[x, &shape], vec![]);
        let perm: &[i64] = if keys { &[0, 2, 3, 1] } else { &[0, 2, 1, 3] };
        self.op("Transpose", &[&x], vec![attr_ints("perm", perm)])
    }

    /// Masked softmax of `scores` (`[b × h × s × s]`, scaled) times the values, heads
    /// merged back: `[b × s × h·d]`.
    fn attend(&mut self, scores: &str, v: &str, heads: usize, head_dim: usize) -> String {
        let bias = self.mask_bias();
        let scores = self.op("Add", &[scores, &bias], vec![]);
        let probs = self.op("Softmax", &[&scores], vec![attr_int("axis", -1)]);
        let vh = self.split_heads(v, heads, head_dim, false);
        let context = self.op("MatMul", &[&probs, &vh], vec![]);
        let context = self.op(
            "Transpose",
            &[&context],
            vec![attr_ints("perm", &[0, 2, 1, 3])],
        );
        let merged = self.ints(&[0, 0, -1], &[3]);
        self.op("Reshape", &[&context, &merged], vec![])
    }

    /// `x · scale` (no node when `scale` is 1).
    fn scaled(&mut self, x: &str, scale: f64) -> String {
        if scale == 1.0 {
            return x.to_string();
        }
        let s = self.scalar(scale as f32);
        self.op("Mul", &[x, &s], vec![])
    }

    /// Each query's and key's relative-embedding row, `[s × s]`: entry `(i, j)` is
    /// `buckets.row(i − j)` (sequences up to `longest` tokens).
    fn relative_rows(&mut self, buckets: RelativeBuckets, longest: usize) -> String {
        if let Some(r) = self.cached.get("relative_rows") {
            return r.clone();
        }
        let table: Vec<i64> = buckets.rows(longest).iter().map(|&r| r as i64).collect();
        let table = {
            let name = self.fresh("relative_rows_by_distance");
            let n = table.len();
            self.initializers
                .push(tensor(&name, &[n], data_type::INT64, i64_bytes(&table)));
            name
        };
        let range = self.range();
        let column = self.ints(&[1], &[1]);
        let row = self.ints(&[0], &[1]);
        let queries = self.op("Unsqueeze", &[&range, &column], vec![]);
        let keys = self.op("Unsqueeze", &[&range, &row], vec![]);
        let distance = self.op("Sub", &[&queries, &keys], vec![]);
        let offset = self.ints(&[longest as i64 - 1], &[]);
        let index = self.op("Add", &[&distance, &offset], vec![]);
        let rows = self.op("Gather", &[&table, &index], vec![attr_int("axis", 0)]);
        self.cached.insert("relative_rows", rows.clone());
        rows
    }

    /// `scores`' position term: `per_query` (`[b × h × s × d]`) against the projected
    /// relative embeddings `relative` (`[2·span × h·d]`), each pair at its row of `rows`.
    fn position_term(
        &mut self,
        per_query: &str,
        relative: &str,
        rows: &str,
        like: &str,
        heads: usize,
        head_dim: usize,
    ) -> String {
        let shape = self.ints(&[0, heads as i64, head_dim as i64], &[3]);
        let r = self.op("Reshape", &[relative, &shape], vec![]);
        let r = self.op("Transpose", &[&r], vec![attr_ints("perm", &[1, 2, 0])]);
        let all = self.op("MatMul", &[per_query, &r], vec![]);
        let full = self.op("Shape", &[like], vec![]);
        let index = self.op("Expand", &[rows, &full], vec![]);
        self.op("GatherElements", &[&all, &index], vec![attr_int("axis", 3)])
    }
}

/// The rows and columns of a matrix parameter.
fn matrix(dims: &[usize], param: &Param) -> Result<(usize, usize), EngineError> {
    match dims {
        [rows, cols] => Ok((*rows, *cols)),
        _ => Err(EngineError::InvalidConfig(format!(
            "{} is not a matrix ({dims:?})",
            param.name()
        ))),
    }
}

/// Symmetric int8 quantization of each row of a `[rows × cols]` matrix: the values
/// `round(w / scale)` and each row's scale `max |w| / 127` (1 for an all-zero row).
pub fn quantize_rows(data: &[f32], rows: usize, cols: usize) -> (Vec<i8>, Vec<f32>) {
    let mut values = Vec::with_capacity(data.len());
    let mut scales = Vec::with_capacity(rows);
    for row in data.chunks(cols.max(1)).take(rows) {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        values.extend(
            row.iter()
                .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8),
        );
        scales.push(scale);
    }
    (values, scales)
}

impl Graph for OnnxGraph {
    type Value = Named;

    fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    fn is_train(&self) -> bool {
        false
    }

    fn embed(&mut self, lookups: &[(&Param, TokenIds)]) -> Result<Named, EngineError> {
        let mut sum: Option<String> = None;
        for (param, which) in lookups {
            let looked_up = match which {
                TokenIds::Words if self.weights == Weights::Int8 => {
                    let key = format!("{}#rows", param.name());
                    let (table, scales) = match self.stored.get(&key) {
                        Some(name) => (name.clone(), format!("{name}_scale")),
                        None => {
                            let (data, dims) = Self::float_data(param)?;
                            let (rows, cols) = matrix(&dims, param)?;
                            let (q, s) = quantize_rows(&data, rows, cols);
                            let name = format!("{}.int8", param.name());
                            let bytes = q.iter().map(|&v| v as u8).collect();
                            self.initializers.push(tensor(
                                &name,
                                &[rows, cols],
                                data_type::INT8,
                                bytes,
                            ));
                            let scale = format!("{name}_scale");
                            self.initializers.push(tensor(
                                &scale,
                                &[rows, 1],
                                data_type::FLOAT,
                                f32_bytes(&s),
                            ));
                            self.stored.insert(key, name.clone());
                            (name, scale)
                        }
                    };
                    let ids = self.input_ids.clone();
                    let q = self.op("Gather", &[&table, &ids], vec![attr_int("axis", 0)]);
                    let q = self.op("Cast", &[&q], vec![attr_int("to", 1)]);
                    let s = self.op("Gather", &[&scales, &ids], vec![attr_int("axis", 0)]);
                    self.op("Mul", &[&q, &s], vec![])
                }
                TokenIds::Words => {
                    let table = self.weight(param)?;
                    let ids = self.input_ids.clone();
                    self.op("Gather", &[&table, &ids], vec![attr_int("axis", 0)])
                }
                TokenIds::Positions => {
                    let table = self.weight(param)?;
                    let ids = self.position_ids();
                    self.op("Gather", &[&table, &ids], vec![attr_int("axis", 0)])
                }
                TokenIds::Types => {
                    let table = self.weight(param)?;
                    let ids = match self.token_type_ids.clone() {
                        Some(types) => types,
                        // One segment type: every token reads row 0.
                        None => self.ints(&[0], &[]),
                    };
                    self.op("Gather", &[&table, &ids], vec![attr_int("axis", 0)])
                }
            };
            sum = Some(match sum {
                None => looked_up,
                Some(s) => self.op("Add", &[&s, &looked_up], vec![]),
            });
        }
        sum.map(Named)
            .ok_or_else(|| EngineError::InvalidConfig("an embedding needs a table".into()))
    }

    fn dense(
        &mut self,
        x: &Named,
        weight: &Param,
        bias: Option<&Param>,
    ) -> Result<Named, EngineError> {
        let product = match self.weights {
            Weights::Float => {
                let w = self.weight_transposed(weight)?;
                self.op("MatMul", &[&x.0, &w], vec![])
            }
            Weights::Int8 => {
                let (w, scales) = self.weight_int8(weight)?;
                let (q, qs, qz) = self.quantized(&x.0);
                let zero = self.weight_zero();
                let product = self.op("MatMulInteger", &[&q, &w, &qz, &zero], vec![]);
                let product = self.op("Cast", &[&product], vec![attr_int("to", 1)]);
                let scale = self.op("Mul", &[&qs, &scales], vec![]);
                self.op("Mul", &[&product, &scale], vec![])
            }
        };
        Ok(Named(match bias {
            Some(b) => {
                let b = self.weight(b)?;
                self.op("Add", &[&product, &b], vec![])
            }
            None => product,
        }))
    }

    fn add_scaled(&mut self, x: Named, y: &Named, scale: f64) -> Result<Named, EngineError> {
        let y = self.scaled(&y.0, scale);
        Ok(Named(self.op("Add", &[&x.0, &y], vec![])))
    }

    fn layer_norm(&mut self, x: &Named, norm: &LayerNorm) -> Result<Named, EngineError> {
        let w = self.weight(norm.weight())?;
        let b = self.weight(norm.bias())?;
        Ok(Named(self.op(
            "LayerNormalization",
            &[&x.0, &w, &b],
            vec![
                attr_int("axis", -1),
                attr_float("epsilon", norm.eps() as f32),
            ],
        )))
    }

    fn activation(&mut self, x: &Named, act: Activation) -> Result<Named, EngineError> {
        let x = x.0.as_str();
        Ok(Named(match act {
            Activation::Gelu => {
                // x · ½ · (1 + erf(x / √2))
                let inv_sqrt2 = self.scalar(std::f32::consts::FRAC_1_SQRT_2);
                let scaled = self.op("Mul", &[x, &inv_sqrt2], vec![]);
                let erf = self.op("Erf", &[&scaled], vec![]);
                let one = self.scalar(1.0);
                let plus = self.op("Add", &[&erf, &one], vec![]);
                let half = self.scalar(0.5);
                let half_x = self.op("Mul", &[x, &half], vec![]);
                self.op("Mul", &[&half_x, &plus], vec![])
            }
            Activation::GeluTanh => {
                // ½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))
                let cube = self.op("Mul", &[x, x], vec![]);
                let cube = self.op("Mul", &[&cube, x], vec![]);
                let c = self.scalar(0.044715);
                let cube = self.op("Mul", &[&cube, &c], vec![]);
                let inner = self.op("Add", &[x, &cube], vec![]);
                let k = self.scalar((2.0 / std::f32::consts::PI).sqrt());
                let inner = self.op("Mul", &[&inner, &k], vec![]);
                let t = self.op("Tanh", &[&inner], vec![]);
                let one = self.scalar(1.0);
                let plus = self.op("Add", &[&t, &one], vec![]);
                let half = self.scalar(0.5);
                let half_x = self.op("Mul", &[x, &half], vec![]);
                self.op("Mul", &[&half_x, &plus], vec![])
            }
            Activation::Relu => self.op("Relu", &[x], vec![]),
            Activation::Silu => {
                let s = self.op("Sigmoid", &[x], vec![]);
                self.op("Mul", &[x, &s], vec![])
            }
            Activation::Tanh => self.op("Tanh", &[x], vec![]),
        }))
    }

    fn dropout(&mut self, x: Named, _p: f64) -> Result<Named, EngineError> {
        Ok(x)
    }

    fn dropout_add(&mut self, x: Named, _p: f64, residual: &Named) -> Result<Named, EngineError> {
        Ok(Named(self.op("Add", &[&x.0, &residual.0], vec![])))
    }

    fn attention(
        &mut self,
        q: &Named,
        k: &Named,
        v: &Named,
        heads: Heads,
        _p: f64,
    ) -> Result<Named, EngineError> {
        if heads.causal || heads.key_value != heads.query {
            return Err(unsupported("decoders' causal and grouped-query attention"));
        }
        let head_dim = self.head_dim(q, heads.query)?;
        let qh = self.split_heads(&q.0, heads.query, head_dim, false);
        let kh = self.split_heads(&k.0, heads.query, head_dim, true);
        let scores = self.op("MatMul", &[&qh, &kh], vec![]);
        let scores = self.scaled(&scores, 1.0 / (head_dim as f64).sqrt());
        Ok(Named(self.attend(&scores, &v.0, heads.query, head_dim)))
    }

    fn prefix_attention(
        &mut self,
        _q: &Named,
        _k: &Named,
        _v: &Named,
        _heads: Heads,
        _p: f64,
        _table: &Named,
        _at: PrefixAt,
    ) -> Result<Named, EngineError> {
        Err(unsupported("prefix tuning"))
    }

    fn disentangled_attention(
        &mut self,
        q: &Named,
        k: &Named,
        v: &Named,
        heads: usize,
        _p: f64,
        positions: Disentangled<'_, Named>,
    ) -> Result<Named, EngineError> {
        let head_dim = self.head_dim(q, heads)?;
        let scale = positions.scale(head_dim);
        let qh = self.split_heads(&q.0, heads, head_dim, false);
        let kt = self.split_heads(&k.0, heads, head_dim, true);
        let mut scores = self.op("MatMul", &[&qh, &kt], vec![]);
        let longest = self.longest_relative();
        let rows = self.relative_rows(positions.buckets, longest);
        if let Some(keys) = positions.position_keys {
            // content → position: query i against the key projection of row(i − j).
            let term = self.position_term(&qh, &keys.0, &rows, &scores, heads, head_dim);
            scores = self.op("Add", &[&scores, &term], vec![]);
        }
        if let Some(queries) = positions.position_queries {
            // position → content: key j against the query projection of row(i − j),
            // gathered per key (rows transposed) and turned back to queries × keys.
            let kh = self.split_heads(&k.0, heads, head_dim, false);
            let rows_t = self.op("Transpose", &[&rows], vec![attr_ints("perm", &[1, 0])]);
            let term = self.position_term(&kh, &queries.0, &rows_t, &scores, heads, head_dim);
            let term = self.op(
                "Transpose",
                &[&term],
                vec![attr_ints("perm", &[0, 1, 3, 2])],
            );
            scores = self.op("Add", &[&scores, &term], vec![]);
        }
        let scores = self.scaled(&scores, scale);
        Ok(Named(self.attend(&scores, &v.0, heads, head_dim)))
    }

    fn table(&mut self, param: &Param) -> Result<Named, EngineError> {
        Ok(Named(self.weight(param)?))
    }

    fn rms_norm(&mut self, _x: &Named, _norm: &RmsNorm) -> Result<Named, EngineError> {
        Err(unsupported("decoders (RMS norm)"))
    }

    fn rotary(&mut self, _x: Named, _heads: usize, _rope: &Rotary) -> Result<Named, EngineError> {
        Err(unsupported("decoders (rotary positions)"))
    }

    fn gated(&mut self, gate: &Named, up: &Named, act: Activation) -> Result<Named, EngineError> {
        let g = self.activation(gate, act)?;
        Ok(Named(self.op("Mul", &[&g.0, &up.0], vec![])))
    }

    fn first_tokens(&mut self, x: &Named) -> Result<Named, EngineError> {
        let zero = self.ints(&[0], &[]);
        Ok(Named(self.op(
            "Gather",
            &[&x.0, &zero],
            vec![attr_int("axis", 1)],
        )))
    }

    fn stream(&self) -> Stream {
        Stream::Main
    }

    fn select_stream(&mut self, stream: Stream) -> Result<(), EngineError> {
        match stream {
            Stream::Main => Ok(()),
            Stream::Source => Err(no_encoder_decoder()),
        }
    }

    fn prunes_to_first_tokens(&self) -> bool {
        false
    }

    fn first_token_attention(
        &mut self,
        _q: &Named,
        _k: &Named,
        _v: &Named,
        _heads: usize,
        _p: f64,
    ) -> Result<Named, EngineError> {
        Err(EngineError::InvalidConfig(
            "the ONNX graph runs every token of the last layer (no first-token attention)".into(),
        ))
    }

    fn biased_attention(
        &mut self,
        _q: &Named,
        _k: &Named,
        _v: &Named,
        _attention: BiasedAttention<'_, Named>,
    ) -> Result<Named, EngineError> {
        Err(no_encoder_decoder())
    }
}

/// What an encoder–decoder (T5) export to ONNX says: not built yet.
fn no_encoder_decoder() -> EngineError {
    EngineError::InvalidConfig(
        "ONNX export of encoder–decoder models (T5) is not built yet; export the Hugging Face \
         folder and convert it with Optimum (`optimum-cli export onnx`)"
            .into(),
    )
}

impl OnnxGraph {
    /// The head size of `heads` over the model's attention features.
    fn head_dim(&self, _q: &Named, heads: usize) -> Result<usize, EngineError> {
        let hidden = self.shape.hidden;
        Heads::full(heads).head_dim(hidden, hidden)
    }

    fn longest_relative(&self) -> usize {
        self.shape.longest.max(1)
    }
}
