//! ONNX export: a fine-tuned encoder with its head written as an ONNX model (opset 17,
//! dynamic batch and sequence axes, Optimum's input and output names), the config and
//! tokenizer beside it, so ONNX Runtime, Optimum and Transformers.js load the folder.
//!
//! The graph is not a second definition of the model: [`graph::OnnxGraph`] is a
//! [`crate::graph::Graph`] whose ops write ONNX nodes, and the model's one `forward` runs on
//! it. [`graph::Weights::Int8`] writes the dynamically quantized form ONNX Runtime runs
//! with integer matrix products.

pub mod graph;
pub mod proto;

use std::path::{Path, PathBuf};

use prost::Message;

pub use self::graph::{quantize_rows, Weights};
use self::graph::{value_info, ModelShape, Named, OnnxGraph};
use self::proto::{data_type, GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto};
use crate::models::{Model, Task};
use crate::EngineError;

/// The operator set the graph is written against (LayerNormalization needs 17).
pub const OPSET: i64 = 17;
/// The ONNX IR version of opset 17.
const IR_VERSION: i64 = 8;
/// Protobuf's limit on one message; bigger models would need ONNX's external data.
const PROTOBUF_LIMIT: usize = (1 << 31) - 1;

/// Where an exported folder keeps its models: Transformers.js reads `onnx/` (config and
/// tokenizer at the top), and Optimum's `from_pretrained` finds `onnx/model.onnx` too.
pub const MODEL_FOLDER: &str = "onnx";
/// The float32 model's file in [`MODEL_FOLDER`] (Optimum's and Transformers.js' default).
pub const MODEL_FILE: &str = "model.onnx";
/// The int8 model's file (Optimum's `file_name=`, Transformers.js' `dtype: "q8"`).
pub const QUANTIZED_FILE: &str = "model_quantized.onnx";

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OnnxModel {
    pub path: PathBuf,
    pub task: Task,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub nodes: usize,
    pub bytes: u64,
    pub int8: bool,
}

/// The ONNX model of `model` (inference: no dropout) as protobuf bytes, and what it is (its
/// `path` empty).
pub fn model_bytes(model: &Model, weights: Weights) -> Result<(Vec<u8>, OnnxModel), EngineError> {
    let spec = model.spec();
    if spec.family.is_decoder() {
        return Err(decoder_refused(spec));
    }
    let task = model.task();
    let e = &spec.encoder;
    let token_types = e.type_vocab_size > 1;
    let choices = task == Task::MultipleChoice;
    let mut names = vec!["input_ids", "attention_mask"];
    if token_types {
        names.push("token_type_ids");
    }
    let axes: &[&str] = if choices {
        &["batch_size", "num_choices", "sequence_length"]
    } else {
        &["batch_size", "sequence_length"]
    };
    let shape = ModelShape {
        positions: spec.descriptor().positions,
        pad_token_id: e.pad_token_id,
        hidden: e.hidden_size,
        longest: e.max_position_embeddings.max(spec.max_sequence_length()),
    };
    let inputs: Vec<_> = names
        .iter()
        .map(|n| value_info(n, data_type::INT64, axes))
        .collect();

    let mut g = OnnxGraph::new(
        "input_ids",
        "attention_mask",
        token_types.then_some("token_type_ids"),
        shape,
        weights,
    )?;
    if choices {
        // Multiple choice reads `[batch × options × sequence]` and scores rows of options.
        let ids_shape = g.op("Shape", &["input_ids"], vec![]);
        let (two, three) = (g.ints(&[2], &[1]), g.ints(&[3], &[1]));
        let seq = g.op("Slice", &[&ids_shape, &two, &three], vec![]);
        let minus_one = g.ints(&[-1], &[1]);
        let rows = g.op(
            "Concat",
            &[&minus_one, &seq],
            vec![graph::attr_int("axis", 0)],
        );
        let read: Vec<String> = names
            .iter()
            .map(|n| g.op("Reshape", &[n, &rows], vec![]))
            .collect();
        g.read_inputs(&read[0], &read[1], read.get(2).map(String::as_str));
    }
    let Named(logits) = model.forward(&mut g)?;
    let labels = model.num_labels().to_string();
    let (outputs, output_names) = match task {
        Task::QuestionAnswering => {
            let split = g.ints(&[1, 1], &[2]);
            let (start, end) = ("start_raw".to_string(), "end_raw".to_string());
            g.op_into(
                "Split",
                &[&logits, &split],
                &[&start, &end],
                vec![graph::attr_int("axis", -1)],
            );
            let last = g.ints(&[-1], &[1]);
            g.op_into("Squeeze", &[&start, &last], &["start_logits"], vec![]);
            g.op_into("Squeeze", &[&end, &last], &["end_logits"], vec![]);
            let dims = ["batch_size", "sequence_length"];
            (
                vec![
                    value_info("start_logits", data_type::FLOAT, &dims),
                    value_info("end_logits", data_type::FLOAT, &dims),
                ],
                vec!["start_logits".to_string(), "end_logits".to_string()],
            )
        }
        Task::MultipleChoice => {
            let ids_shape = g.op("Shape", &["input_ids"], vec![]);
            let (zero, two) = (g.ints(&[0], &[1]), g.ints(&[2], &[1]));
            let questions = g.op("Slice", &[&ids_shape, &zero, &two], vec![]);
            g.op_into("Reshape", &[&logits, &questions], &["logits"], vec![]);
            (
                vec![value_info(
                    "logits",
                    data_type::FLOAT,
                    &["batch_size", "num_choices"],
                )],
                vec!["logits".to_string()],
            )
        }
        Task::TokenClassification => {
            g.op_into("Identity", &[&logits], &["logits"], vec![]);
            (
                vec![value_info(
                    "logits",
                    data_type::FLOAT,
                    &["batch_size", "sequence_length", &labels],
                )],
                vec!["logits".to_string()],
            )
        }
        Task::SequenceClassification => {
            g.op_into("Identity", &[&logits], &["logits"], vec![]);
            (
                vec![value_info(
                    "logits",
                    data_type::FLOAT,
                    &["batch_size", &labels],
                )],
                vec!["logits".to_string()],
            )
        }
        Task::CausalLm | Task::Text2Text => {
            return Err(EngineError::InvalidConfig(
                "ONNX export covers encoders' heads, not language models".into(),
            ))
        }
    };
    let nodes = g.nodes.len();
    let model_proto = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "hone".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "{} {} exported by Hone",
            spec.family.name(),
            task.display_name()
        ),
        graph: Some(GraphProto {
            node: std::mem::take(&mut g.nodes),
            name: format!("hone_{}", task.name().replace('-', "_")),
            initializer: std::mem::take(&mut g.initializers),
            input: inputs,
            output: outputs,
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        metadata_props: vec![StringStringEntryProto {
            key: "hone.weights".into(),
            value: match weights {
                Weights::Float => "float32".into(),
                Weights::Int8 => "int8 (dynamic)".into(),
            },
        }],
    };
    let len = model_proto.encoded_len();
    if len > PROTOBUF_LIMIT {
        return Err(EngineError::InvalidConfig(format!(
            "the model is {} MB, past ONNX's 2 GB limit for one file (external weights are not \
             written yet); export it int8 or use the transformers folder",
            len >> 20
        )));
    }
    let bytes = model_proto.encode_to_vec();
    let summary = OnnxModel {
        path: PathBuf::new(),
        task,
        inputs: names.iter().map(|n| n.to_string()).collect(),
        outputs: output_names,
        nodes,
        bytes: bytes.len() as u64,
        int8: weights == Weights::Int8,
    };
    Ok((bytes, summary))
}

/// Writes `model` as ONNX to `path`.
pub fn write_model(model: &Model, path: &Path, weights: Weights) -> Result<OnnxModel, EngineError> {
    let (bytes, summary) = model_bytes(model, weights)?;
    crate::checkpoint::write_atomic(path, &bytes)?;
    Ok(OnnxModel {
        path: path.to_path_buf(),
        ..summary
    })
}

/// Exports the fine-tuned model folder `dir` (a transformers folder or a LoRA adapter
/// folder, merged first) into the existing empty folder `out`: `onnx/model.onnx`, with
/// `int8` also `onnx/model_quantized.onnx`, and the config and tokenizer files.
pub fn export_folder(dir: &Path, out: &Path, int8: bool) -> Result<Vec<OnnxModel>, EngineError> {
    let merged = crate::export::through_merged_adapter(
        dir,
        out,
        "ONNX export takes a full model or a LoRA adapter (merged on export); \
                 bottleneck adapters and prefixes are not exported to ONNX",
        |merged| export_folder(merged, out, int8),
    )?;
    if let Some(done) = merged {
        return Ok(done);
    }
    let spec = crate::models::ModelSpec::from_dir(dir)?;
    if spec.family.is_decoder() {
        return Err(decoder_refused(&spec));
    }
    let task = spec.task().unwrap_or(Task::SequenceClassification);
    let labels = spec
        .labels
        .clone()
        .ok_or_else(|| EngineError::NoClassificationHead {
            path: dir.to_path_buf(),
        })?;
    let num_labels = if task == Task::MultipleChoice {
        // A multiple-choice head scores one option at a time; any option count works.
        labels.len().max(2)
    } else {
        labels.len()
    };
    let device = candle_core::Device::Cpu;
    let model = Model::load(dir, task, num_labels, None, &device, 0)?;
    if !model.newly_initialized().is_empty() {
        return Err(EngineError::NoClassificationHead {
            path: dir.to_path_buf(),
        });
    }
    let models = out.join(MODEL_FOLDER);
    std::fs::create_dir_all(&models).map_err(|e| EngineError::io(&models, e))?;
    let mut written = vec![write_model(
        &model,
        &models.join(MODEL_FILE),
        Weights::Float,
    )?];
    if int8 {
        let quantized = models.join(QUANTIZED_FILE);
        written.push(write_model(&model, &quantized, Weights::Int8)?);
    }
    let config = dir.join("config.json");
    let bytes = std::fs::read(&config).map_err(|e| EngineError::io(&config, e))?;
    crate::checkpoint::write_atomic(&out.join("config.json"), &bytes)?;
    crate::export::copy_tokenizer_files(&spec, &[dir], out)?;
    Ok(written)
}

fn decoder_refused(spec: &crate::models::ModelSpec) -> EngineError {
    EngineError::InvalidConfig(format!(
        "ONNX export covers encoders (classification, tokens, multiple choice, question \
         answering); {} is a decoder, whose generation needs past key values in the graph, \
         not written yet: use the transformers folder (or its PEFT adapter)",
        spec.family.name()
    ))
}
