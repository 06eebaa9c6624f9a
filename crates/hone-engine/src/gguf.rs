//! GGUF export of decoders (llama.cpp's file format, version 3): a Llama-layout model
//! (Llama, Mistral, SmolLM: architecture `llama`; Qwen2: `qwen2`) with its hyperparameters,
//! its byte-level BPE tokenizer (and llama.cpp's name for its pre-tokenizer) and chat
//! template as metadata, and its tensors under
//! llama.cpp's names, as `convert_hf_to_gguf.py` writes them: the query and key rows of a
//! `llama` model interleaved for llama.cpp's rotary layout, vectors in f32, matrices in f16
//! or q8_0 (blocks of 32 values sharing one f16 scale).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use serde_json::Value;

use crate::models::llama::{DecoderConfig, RopeScaling};
use crate::models::{Model, ModelSpec, Task};
use crate::EngineError;

/// How the matrices are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GgufType {
    /// 16-bit floats.
    F16,
    /// llama.cpp's 8-bit blocks: 32 values as int8 with one f16 scale (`max |x| / 127`).
    Q8_0,
}

impl std::str::FromStr for GgufType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Ok(GgufType::F16),
            "q8_0" | "q8" => Ok(GgufType::Q8_0),
            _ => Err(format!("unknown GGUF type '{s}' (one of: f16, q8_0)")),
        }
    }
}

impl GgufType {
    /// `general.file_type` (llama.cpp's `LLAMA_FTYPE_MOSTLY_*`).
    fn file_type(self) -> u32 {
        match self {
            GgufType::F16 => 1,
            GgufType::Q8_0 => 7,
        }
    }

    /// The name used in file names (`model-q8_0.gguf`).
    pub fn name(self) -> &'static str {
        match self {
            GgufType::F16 => "f16",
            GgufType::Q8_0 => "q8_0",
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GgufFile {
    pub path: PathBuf,
    pub architecture: String,
    pub tensors: usize,
    pub bytes: u64,
    pub weights: GgufType,
}

/// ggml tensor types.
const GGML_F32: u32 = 0;
const GGML_F16: u32 = 1;
const GGML_Q8_0: u32 = 8;
const Q8_BLOCK: usize = 32;
const ALIGNMENT: usize = 32;

/// GGUF metadata value types.
const T_UINT32: u32 = 4;
const T_INT32: u32 = 5;
const T_FLOAT32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;

/// llama.cpp's token types.
const TOKEN_NORMAL: i32 = 1;
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;
const TOKEN_UNUSED: i32 = 5;

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// The metadata section, key by key.
#[derive(Default)]
struct Metadata {
    bytes: Vec<u8>,
    count: u64,
}

impl Metadata {
    fn key(&mut self, key: &str, kind: u32) {
        put_string(&mut self.bytes, key);
        self.bytes.extend(kind.to_le_bytes());
        self.count += 1;
    }
    fn u32(&mut self, key: &str, v: u32) {
        self.key(key, T_UINT32);
        self.bytes.extend(v.to_le_bytes());
    }
    fn f32(&mut self, key: &str, v: f32) {
        self.key(key, T_FLOAT32);
        self.bytes.extend(v.to_le_bytes());
    }
    fn bool(&mut self, key: &str, v: bool) {
        self.key(key, T_BOOL);
        self.bytes.push(u8::from(v));
    }
    fn string(&mut self, key: &str, v: &str) {
        self.key(key, T_STRING);
        put_string(&mut self.bytes, v);
    }
    fn strings(&mut self, key: &str, values: &[String]) {
        self.key(key, T_ARRAY);
        self.bytes.extend(T_STRING.to_le_bytes());
        self.bytes.extend((values.len() as u64).to_le_bytes());
        for v in values {
            put_string(&mut self.bytes, v);
        }
    }
    fn i32s(&mut self, key: &str, values: &[i32]) {
        self.key(key, T_ARRAY);
        self.bytes.extend(T_INT32.to_le_bytes());
        self.bytes.extend((values.len() as u64).to_le_bytes());
        for v in values {
            self.bytes.extend(v.to_le_bytes());
        }
    }
}

/// A tensor to write: its llama.cpp name, HF shape (`[rows, cols]` or `[n]`), ggml type and
/// encoded data.
struct Entry {
    name: String,
    shape: Vec<usize>,
    kind: u32,
    data: Vec<u8>,
}

fn f16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect()
}

/// llama.cpp's `quantize_row_q8_0`: per block of 32, `d = max |x| / 127` (as f16) and
/// `round(x / d)`.
pub fn q8_0_bytes(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / Q8_BLOCK * 34);
    for block in values.chunks(Q8_BLOCK) {
        let max = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        out.extend(half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|v| (v * inv).round() as i8 as u8));
    }
    out
}

/// `convert_hf_to_gguf.py`'s `LlamaModel.permute`: each head's rows `[first half; second
/// half]` interleaved (`row 2i ← i`, `row 2i+1 ← half + i`), for llama.cpp's rotary layout.
fn interleave_heads(values: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let d = rows / heads;
    let half = d / 2;
    let mut out = vec![0f32; values.len()];
    for h in 0..heads {
        for two in 0..2 {
            for i in 0..half {
                let from = h * d + two * half + i;
                let to = h * d + i * 2 + two;
                out[to * cols..(to + 1) * cols]
                    .copy_from_slice(&values[from * cols..(from + 1) * cols]);
            }
        }
    }
    out
}

fn floats(t: &Tensor) -> Result<Vec<f32>, EngineError> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// The llama.cpp name of a Hub tensor name (`None` for tensors GGUF has no place for).
fn gguf_name(hub: &str) -> Option<String> {
    let fixed = match hub {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = hub.strip_prefix("model.layers.")?;
    let (layer, module) = rest.split_once('.')?;
    let (module, kind) = module.rsplit_once('.')?;
    let short = match module {
        "input_layernorm" => "attn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "post_attention_layernorm" => "ffn_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{short}.{kind}"))
}

/// The tokenizer's metadata from `tokenizer.json` (byte-level BPE: llama.cpp's `gpt2`
/// model): every id's token and type, the merges, the special ids.
fn tokenizer_metadata(
    meta: &mut Metadata,
    dir: &Path,
    vocab_size: usize,
    pre: Option<&'static str>,
) -> Result<(), EngineError> {
    let path = dir.join("tokenizer.json");
    let bad = |message: String| EngineError::BadModelConfig {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| EngineError::io(&path, e))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let model = &json["model"];
    if model["type"] != "BPE" || model["byte_fallback"] == Value::Bool(true) {
        return Err(bad(format!(
            "GGUF export writes byte-level BPE tokenizers (llama.cpp's gpt2 model); this one \
             is {} (byte fallback: {}), which needs llama.cpp's SentencePiece conversion",
            model["type"], model["byte_fallback"]
        )));
    }
    let mut tokens: Vec<Option<(String, i32)>> = vec![None; vocab_size];
    let mut place = |id: u64, token: &str, kind: i32| -> Result<(), EngineError> {
        let slot = tokens.get_mut(id as usize).ok_or_else(|| {
            bad(format!(
                "token id {id} is past the model's vocabulary of {vocab_size}"
            ))
        })?;
        *slot = Some((token.to_string(), kind));
        Ok(())
    };
    if let Some(vocab) = model["vocab"].as_object() {
        for (token, id) in vocab {
            let id = id
                .as_u64()
                .ok_or_else(|| bad(format!("'{token}' has no id")))?;
            place(id, token, TOKEN_NORMAL)?;
        }
    }
    for added in json["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(content)) = (added["id"].as_u64(), added["content"].as_str()) else {
            continue;
        };
        let kind = if added["special"] == Value::Bool(true) {
            TOKEN_CONTROL
        } else {
            TOKEN_USER_DEFINED
        };
        place(id, content, kind)?;
    }
    let (names, kinds): (Vec<String>, Vec<i32>) = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.unwrap_or_else(|| (format!("[PAD{i}]"), TOKEN_UNUSED)))
        .unzip();
    let merges: Vec<String> = model["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            Value::String(s) => Some(s.clone()),
            Value::Array(pair) => Some(format!(
                "{} {}",
                pair.first()?.as_str()?,
                pair.get(1)?.as_str()?
            )),
            _ => None,
        })
        .collect();
    meta.string("tokenizer.ggml.model", "gpt2");
    let pre = pre.unwrap_or_else(|| pre_tokenizer_name(&json["pre_tokenizer"]));
    meta.string("tokenizer.ggml.pre", pre);
    meta.strings("tokenizer.ggml.tokens", &names);
    meta.i32s("tokenizer.ggml.token_type", &kinds);
    meta.strings("tokenizer.ggml.merges", &merges);
    Ok(())
}

/// llama.cpp's name for a byte-level pre-tokenizer (`tokenizer.ggml.pre`, which its
/// converter finds by hashing the tokenizer's output): SmolLM's digits one by one before the
/// byte-level split is `smollm`, a lone byte-level split `gpt-2`, anything else `default`.
fn pre_tokenizer_name(pre: &Value) -> &'static str {
    let steps: Vec<&Value> = match pre["type"].as_str() {
        Some("Sequence") => pre["pretokenizers"]
            .as_array()
            .into_iter()
            .flatten()
            .collect(),
        Some(_) => vec![pre],
        None => Vec::new(),
    };
    let kinds: Vec<&str> = steps.iter().filter_map(|s| s["type"].as_str()).collect();
    let individual_digits = steps
        .iter()
        .any(|s| s["type"] == "Digits" && s["individual_digits"] == Value::Bool(true));
    match kinds.as_slice() {
        ["Digits", "ByteLevel"] if individual_digits => "smollm",
        ["ByteLevel"] => "gpt-2",
        _ => "default",
    }
}

/// The GGUF file of the decoder `model` (loaded from `dir`, whose tokenizer it carries).
pub fn file_bytes(
    model: &Model,
    dir: &Path,
    weights: GgufType,
) -> Result<(Vec<u8>, String, usize), EngineError> {
    let spec: &ModelSpec = model.spec();
    let e = &spec.encoder;
    let refuse = |m: String| EngineError::InvalidConfig(m);
    let dec: &DecoderConfig = e
        .decoder
        .as_ref()
        .filter(|_| model.task() == Task::CausalLm)
        .ok_or_else(|| {
            refuse(format!(
                "GGUF export is for decoders (causal language models); this is a {} {} model: \
                 export it as ONNX",
                spec.family.name(),
                model.task().name()
            ))
        })?;
    let arch = match spec.model_type.as_str() {
        "llama" | "mistral" => "llama",
        "qwen2" => "qwen2",
        other => {
            return Err(refuse(format!(
                "GGUF export knows llama, mistral and qwen2 models, not {other}"
            )))
        }
    };
    let interleave = arch == "llama";
    if dec.output_bias || dec.mlp_bias || (arch == "llama" && dec.attention_bias) {
        return Err(refuse(
            "llama.cpp's llama architecture has no attention or MLP biases; this model has them"
                .into(),
        ));
    }
    let mut meta = Metadata::default();
    meta.string("general.architecture", arch);
    let name = dir
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().to_string());
    meta.string("general.name", &name);
    meta.u32("general.file_type", weights.file_type());
    meta.u32("general.quantization_version", 2);
    let k = |key: &str| format!("{arch}.{key}");
    meta.u32(&k("context_length"), e.max_position_embeddings as u32);
    meta.u32(&k("embedding_length"), e.hidden_size as u32);
    meta.u32(&k("block_count"), e.num_layers as u32);
    meta.u32(&k("feed_forward_length"), e.intermediate_size as u32);
    meta.u32(&k("attention.head_count"), e.num_heads as u32);
    meta.u32(&k("attention.head_count_kv"), dec.kv_heads as u32);
    meta.f32(
        &k("attention.layer_norm_rms_epsilon"),
        e.layer_norm_eps as f32,
    );
    meta.f32(&k("rope.freq_base"), dec.rope.theta as f32);
    meta.u32(&k("rope.dimension_count"), dec.head_dim as u32);
    if dec.head_dim * e.num_heads != e.hidden_size {
        meta.u32(&k("attention.key_length"), dec.head_dim as u32);
        meta.u32(&k("attention.value_length"), dec.head_dim as u32);
    }
    meta.u32(&k("vocab_size"), e.vocab_size as u32);
    match dec.rope.scaling {
        RopeScaling::None => {}
        RopeScaling::Linear { factor } => {
            meta.string(&k("rope.scaling.type"), "linear");
            meta.f32(&k("rope.scaling.factor"), factor as f32);
        }
        RopeScaling::Llama3 { .. } => {
            return Err(refuse(
                "llama3 rotary scaling is written by llama.cpp as a rope_freqs tensor, which \
                 Hone's GGUF export does not write yet"
                    .into(),
            ))
        }
    }
    let tokenizer_dir = crate::lora::tokenizer_folder(dir)?;
    let pre = (arch == "qwen2").then_some("qwen2");
    tokenizer_metadata(&mut meta, &tokenizer_dir, e.vocab_size, pre)?;
    if let Some(bos) = dec.bos_token_id {
        meta.u32("tokenizer.ggml.bos_token_id", bos);
    }
    if let Some(eos) = dec.eos_token_ids.first() {
        meta.u32("tokenizer.ggml.eos_token_id", *eos);
    }
    meta.u32("tokenizer.ggml.padding_token_id", e.pad_token_id);
    meta.bool("tokenizer.ggml.add_bos_token", false);
    if let Some(template) = hone_data::ChatTemplate::from_model_dir(&tokenizer_dir)? {
        meta.string("tokenizer.chat_template", template.source());
    }

    let values: HashMap<String, Tensor> = model.hub_values();
    let mut names: Vec<&String> = values.keys().collect();
    names.sort_by_key(|n| tensor_order(n));
    let mut entries = Vec::new();
    for hub in names {
        let Some(gguf) = gguf_name(hub) else {
            return Err(refuse(format!("GGUF has no place for the tensor {hub}")));
        };
        let t = &values[hub];
        let shape = t.dims().to_vec();
        let mut data = floats(t)?;
        let heads = if hub.contains("q_proj") {
            Some(e.num_heads)
        } else if hub.contains("k_proj") {
            Some(dec.kv_heads)
        } else {
            None
        };
        if let (true, Some(heads)) = (interleave, heads) {
            let cols = shape.get(1).copied().unwrap_or(1);
            data = interleave_heads(&data, shape[0], cols, heads);
        }
        let (kind, bytes) = match (shape.as_slice(), weights) {
            ([_], _) => (
                GGML_F32,
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            ([_, cols], GgufType::Q8_0) if cols % Q8_BLOCK == 0 => (GGML_Q8_0, q8_0_bytes(&data)),
            _ => (GGML_F16, f16_bytes(&data)),
        };
        entries.push(Entry {
            name: gguf,
            shape,
            kind,
            data: bytes,
        });
    }
    // A tied head is the embedding table (no `lm_head` parameter): llama.cpp reads it from
    // token_embd.

    let mut out = Vec::new();
    out.extend(b"GGUF");
    out.extend(3u32.to_le_bytes());
    out.extend((entries.len() as u64).to_le_bytes());
    out.extend(meta.count.to_le_bytes());
    out.extend(&meta.bytes);
    let mut offset = 0u64;
    for entry in &entries {
        put_string(&mut out, &entry.name);
        out.extend((entry.shape.len() as u32).to_le_bytes());
        for d in entry.shape.iter().rev() {
            out.extend((*d as u64).to_le_bytes());
        }
        out.extend(entry.kind.to_le_bytes());
        out.extend(offset.to_le_bytes());
        offset += padded(entry.data.len()) as u64;
    }
    out.resize(padded(out.len()), 0);
    for entry in &entries {
        out.extend(&entry.data);
        out.resize(padded(out.len()), 0);
    }
    Ok((out, arch.to_string(), entries.len()))
}

fn padded(n: usize) -> usize {
    n.div_ceil(ALIGNMENT) * ALIGNMENT
}

/// Embeddings first, then the layers in order, the final norm and head last (as llama.cpp
/// writes them; readers do not depend on it).
fn tensor_order(hub: &str) -> (usize, usize, String) {
    if hub.starts_with("model.embed_tokens") {
        return (0, 0, hub.to_string());
    }
    if let Some(rest) = hub.strip_prefix("model.layers.") {
        let layer = rest
            .split('.')
            .next()
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        return (1, layer, hub.to_string());
    }
    (2, 0, hub.to_string())
}

/// Exports the decoder folder `dir` (a full model, or a LoRA adapter merged first) as the
/// GGUF file `out`, written whole or not at all.
pub fn export_file(dir: &Path, out: &Path, weights: GgufType) -> Result<GgufFile, EngineError> {
    let merged = crate::export::through_merged_adapter(
        dir,
        out,
        "GGUF export takes a full model or a LoRA adapter (merged on export); a prefix \
                 has no merged form",
        |merged| export_file(merged, out, weights),
    )?;
    if let Some(done) = merged {
        return Ok(done);
    }
    let spec = ModelSpec::from_dir(dir)?;
    if !spec.family.is_decoder() {
        return Err(EngineError::InvalidConfig(format!(
            "GGUF export is for decoders; {} is an encoder: export it as ONNX (--onnx)",
            spec.family.name()
        )));
    }
    let model = Model::load(
        dir,
        Task::CausalLm,
        spec.encoder.vocab_size,
        None,
        &candle_core::Device::Cpu,
        0,
    )?;
    let (bytes, architecture, tensors) = file_bytes(&model, dir, weights)?;
    crate::checkpoint::write_atomic(out, &bytes)?;
    Ok(GgufFile {
        path: out.to_path_buf(),
        architecture,
        tensors,
        bytes: bytes.len() as u64,
        weights,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pre_tokenizers_get_llama_cpp_names() {
        let smollm = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            {"type": "ByteLevel", "add_prefix_space": false}]});
        assert_eq!(pre_tokenizer_name(&smollm), "smollm");
        assert_eq!(pre_tokenizer_name(&json!({"type": "ByteLevel"})), "gpt-2");
        let split = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split"}, {"type": "ByteLevel"}]});
        assert_eq!(pre_tokenizer_name(&split), "default");
    }

    #[test]
    fn q8_0_blocks_hold_a_scale_and_32_rounded_values() {
        let values: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
        let bytes = q8_0_bytes(&values);
        assert_eq!(bytes.len(), 34);
        let d = half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32();
        assert!((d - 16.0 / 127.0).abs() < 1e-4, "{d}");
        assert_eq!(bytes[2] as i8, -127);
        for (i, v) in values.iter().enumerate() {
            let back = f32::from(bytes[2 + i] as i8) * d;
            assert!((back - v).abs() <= d / 2.0 + 1e-3, "{i}: {back} vs {v}");
        }
    }

    #[test]
    fn query_rows_interleave_per_head_as_llama_cpp_permutes() {
        // Two heads of 4 rows, one column: each head's [a b c d] becomes [a c b d].
        let rows: Vec<f32> = (0..8).map(|i| i as f32).collect();
        assert_eq!(
            interleave_heads(&rows, 8, 1, 2),
            vec![0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]
        );
    }
}
