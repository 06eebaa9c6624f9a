//! Exporting a fine-tuned model as a folder `transformers` loads unchanged:
//! `AutoModelFor{Sequence,Token}Classification.from_pretrained(dir)` and
//! `AutoTokenizer.from_pretrained(dir)`.

use std::path::Path;

use hone_data::TextTokenizer;
use serde_json::{json, Value};

use crate::checkpoint::{save_tensors, write_atomic};
use crate::metrics::Report;
use crate::models::{Model, Task};
use crate::EngineError;

/// What the model card says about the run.
pub struct ModelCard<'a> {
    pub base_model: &'a str,
    pub train_examples: u64,
    pub valid_examples: u64,
    pub best_step: Option<u64>,
    pub report: Option<&'a Report>,
    /// The run configuration, as TOML or JSON text.
    pub config_text: &'a str,
}

/// The model's config.json with the fields its `transformers` head needs.
pub fn head_config(model: &Model, labels: &[String]) -> Value {
    let spec = model.spec();
    let mut config = spec.raw.clone();
    let id2label: serde_json::Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), json!(l)))
        .collect();
    let label2id: serde_json::Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), json!(i)))
        .collect();
    if let Some(obj) = config.as_object_mut() {
        obj.insert(
            "architectures".into(),
            json!([spec.architecture(model.task())]),
        );
        obj.insert("id2label".into(), Value::Object(id2label));
        obj.insert("label2id".into(), Value::Object(label2id));
        if model.task() == Task::SequenceClassification {
            obj.insert("problem_type".into(), json!("single_label_classification"));
        } else {
            obj.remove("problem_type");
        }
        obj.remove("num_labels");
        obj.insert("torch_dtype".into(), json!("float32"));
        let d = spec.encoder.dropout;
        let keys = spec.descriptor().dropout_keys;
        obj.insert(keys.hidden.into(), json!(d.hidden));
        obj.insert(keys.attention.into(), json!(d.attention));
        if !keys.classifier_defaults_to_hidden || d.classifier != d.hidden {
            obj.insert(keys.classifier.into(), json!(d.classifier));
        } else {
            obj.remove(keys.classifier);
        }
    }
    config
}

fn model_card(model: &Model, labels: &[String], card: &ModelCard) -> String {
    let (pipeline, what) = match model.task() {
        Task::SequenceClassification => ("text-classification", "sequence classifier"),
        Task::TokenClassification => ("token-classification", "token classifier"),
        Task::MultipleChoice => ("multiple-choice", "multiple-choice scorer"),
        Task::QuestionAnswering => ("question-answering", "answer-span scorer"),
    };
    let mut s = String::new();
    s.push_str(&format!(
        "---\nlibrary_name: transformers\npipeline_tag: {pipeline}\n"
    ));
    s.push_str(&format!(
        "base_model: {}\ntags:\n- hone\n- {pipeline}\n---\n\n",
        card.base_model
    ));
    let unit = if model.task() == Task::MultipleChoice {
        "options"
    } else {
        "classes"
    };
    let architecture = model.spec().architecture(model.task());
    if model.task() == Task::QuestionAnswering {
        s.push_str(&format!(
            "# {} fine-tuned with Hone\n\nA {architecture} {what}: for each token of a passage, the score of the answer starting and of it ending there.\n\n",
            card.base_model,
        ));
    } else {
        s.push_str(&format!(
            "# {} fine-tuned with Hone\n\nA {architecture} {what} with {} {unit}: {}.\n\n",
            card.base_model,
            labels.len(),
            labels.join(", ")
        ));
    }
    s.push_str(&format!(
        "Trained on {} examples, validated on {}.\n\n",
        card.train_examples, card.valid_examples
    ));
    let step = card
        .best_step
        .map(|s| format!(", step {s}"))
        .unwrap_or_default();
    match card.report {
        Some(Report::Classification(r)) => {
            s.push_str(&format!(
                "## Validation (best checkpoint{step})\n\n| metric | value |\n|---|---|\n| loss | {:.4} |\n| accuracy | {:.4} |\n| macro F1 | {:.4} |\n| macro precision | {:.4} |\n| macro recall | {:.4} |\n\n",
                r.loss, r.accuracy, r.macro_f1, r.macro_precision, r.macro_recall
            ));
            s.push_str("| class | precision | recall | F1 | support |\n|---|---|---|---|---|\n");
            for c in &r.per_class {
                s.push_str(&format!(
                    "| {} | {:.4} | {:.4} | {:.4} | {} |\n",
                    c.label, c.precision, c.recall, c.f1, c.support
                ));
            }
            s.push('\n');
        }
        Some(Report::Entities(r)) => {
            s.push_str(&format!(
                "## Validation (best checkpoint{step}; entity level, conlleval rules)\n\n| metric | value |\n|---|---|\n| loss | {:.4} |\n| entity F1 | {:.4} |\n| precision | {:.4} |\n| recall | {:.4} |\n| token accuracy | {:.4} |\n\n",
                r.loss, r.entity_f1, r.precision, r.recall, r.token_accuracy
            ));
            s.push_str("| entity | precision | recall | F1 | support |\n|---|---|---|---|---|\n");
            for (kind, c) in &r.per_type {
                s.push_str(&format!(
                    "| {kind} | {:.4} | {:.4} | {:.4} | {} |\n",
                    c.precision, c.recall, c.f1, c.support
                ));
            }
            s.push('\n');
        }
        Some(Report::Choices(r)) => {
            s.push_str(&format!(
                "## Validation (best checkpoint{step})\n\n| metric | value |\n|---|---|\n| loss | {:.4} |\n| accuracy | {:.4} |\n| MAP@3 | {:.4} |\n| questions | {} |\n\n",
                r.loss, r.accuracy, r.map_at_3, r.examples
            ));
        }
        Some(Report::Answers(r)) => {
            s.push_str(&format!(
                "## Validation (best checkpoint{step}; SQuAD v1.1 scores)\n\n| metric | value |\n|---|---|\n| loss | {:.4} |\n| exact match | {:.4} |\n| F1 | {:.4} |\n| questions | {} |\n| windows | {} |\n\n",
                r.loss, r.exact_match, r.f1, r.examples, r.windows
            ));
        }
        // Each head of a multi-task run is exported with its own task's report.
        Some(Report::Tasks(_)) | None => {}
    }
    let call = match model.task() {
        Task::SequenceClassification => "classifier = pipeline(\"text-classification\", model=\"PATH_TO_THIS_FOLDER\")\nprint(classifier(\"your text\"))",
        Task::TokenClassification => "classifier = pipeline(\"token-classification\", model=\"PATH_TO_THIS_FOLDER\", aggregation_strategy=\"first\")\nprint(classifier(\"your text\"))",
        Task::MultipleChoice => "from transformers import AutoModelForMultipleChoice, AutoTokenizer\ntokenizer = AutoTokenizer.from_pretrained(\"PATH_TO_THIS_FOLDER\")\nmodel = AutoModelForMultipleChoice.from_pretrained(\"PATH_TO_THIS_FOLDER\")\nquestion, options = \"your question\", [\"option A\", \"option B\"]\nenc = tokenizer([question] * len(options), options, return_tensors=\"pt\", padding=True)\nscores = model(**{k: v.unsqueeze(0) for k, v in enc.items()}).logits[0]\nprint(scores.softmax(-1))",
        Task::QuestionAnswering => "answerer = pipeline(\"question-answering\", model=\"PATH_TO_THIS_FOLDER\")\nprint(answerer(question=\"your question\", context=\"the passage that holds the answer\"))",
    };
    s.push_str(&format!(
        "## Use\n\n```python\nfrom transformers import pipeline\n{call}\n```\n\n"
    ));
    s.push_str("## Training configuration\n\n```toml\n");
    s.push_str(card.config_text);
    s.push_str("\n```\n");
    s
}

/// Writes the model, its config with `labels`, the tokenizer and a model card into `out`.
/// `source` is the folder the model was loaded from (for the tokenizer files).
pub fn export_model(
    model: &Model,
    labels: &[String],
    source: &Path,
    tokenizer: &TextTokenizer,
    out: &Path,
    card: &ModelCard,
) -> Result<(), EngineError> {
    if labels.len() != model.num_labels() {
        return Err(EngineError::InvalidConfig(format!(
            "{} label names for a {}-class model",
            labels.len(),
            model.num_labels()
        )));
    }
    if let (Ok(a), Ok(b)) = (source.canonicalize(), out.canonicalize()) {
        if a == b {
            return Err(EngineError::InvalidConfig(
                "the output folder is the pretrained model's folder; choose another output folder"
                    .into(),
            ));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| EngineError::io(out, e))?;
    save_tensors(&model.hub_values(), &out.join("model.safetensors"))?;
    let config = head_config(model, labels);
    let text = serde_json::to_string_pretty(&config).map_err(|e| EngineError::Export {
        path: out.join("config.json"),
        message: e.to_string(),
    })?;
    write_atomic(&out.join("config.json"), text.as_bytes())?;
    // The safetensors writer creates its file private (0600, a temp file renamed); the export
    // is meant to be shared like its other files, so it gets config.json's permissions.
    let weights = out.join("model.safetensors");
    let shared = std::fs::metadata(out.join("config.json"))
        .map_err(|e| EngineError::io(out, e))?
        .permissions();
    std::fs::set_permissions(&weights, shared).map_err(|e| EngineError::io(&weights, e))?;
    let mut has_json = false;
    for name in model.spec().descriptor().tokenizer_files {
        let from = source.join(name);
        if from.is_file() {
            let bytes = std::fs::read(&from).map_err(|e| EngineError::io(&from, e))?;
            write_atomic(&out.join(name), &bytes)?;
            has_json |= *name == "tokenizer.json";
        }
    }
    if !has_json {
        tokenizer.save_json(out)?;
    }
    write_atomic(
        &out.join("README.md"),
        model_card(model, labels, card).as_bytes(),
    )
}
