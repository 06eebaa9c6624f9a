//! Exporting a fine-tuned model as a folder `transformers` loads unchanged:
//! `AutoModelFor{Sequence,Token}Classification.from_pretrained(dir)` and
//! `AutoTokenizer.from_pretrained(dir)`.

use std::path::Path;

use hone_data::TextTokenizer;
use serde_json::{json, Value};

use crate::checkpoint::{save_tensors, write_atomic};
use crate::lora::BaseModelRef;
use crate::metrics::Report;
use crate::models::{Adapters, Model, Task};
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
    if let (Some(obj), true) = (config.as_object_mut(), model.task().is_language_model()) {
        // A language model's classes are its vocabulary: no label names, no dropout keys
        // beyond the config's own.
        obj.insert(
            "architectures".into(),
            json!([spec.architecture(model.task())]),
        );
        obj.remove(crate::lora::BASE_FOLDER_KEY);
        obj.insert("torch_dtype".into(), json!("float32"));
        return config;
    }
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
        // Where an adapter's base lives on this machine: not part of a model's config.
        obj.remove(crate::lora::BASE_FOLDER_KEY);
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

fn model_card(
    model: &Model,
    labels: &[String],
    card: &ModelCard,
    adapter: Option<&BaseModelRef>,
) -> String {
    let (pipeline, what) = match model.task() {
        Task::SequenceClassification => ("text-classification", "sequence classifier"),
        Task::TokenClassification => ("token-classification", "token classifier"),
        Task::MultipleChoice => ("multiple-choice", "multiple-choice scorer"),
        Task::QuestionAnswering => ("question-answering", "answer-span scorer"),
        Task::CausalLm => ("text-generation", "causal language model"),
        Task::Text2Text => ("text2text-generation", "text-to-text model"),
    };
    let mut s = String::new();
    let library = if adapter.is_some() && model.spec().lora.is_some() {
        "peft"
    } else {
        "transformers"
    };
    s.push_str(&format!(
        "---\nlibrary_name: {library}\npipeline_tag: {pipeline}\n"
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
    if model.task() == Task::CausalLm {
        s.push_str(&format!(
            "# {} fine-tuned with Hone\n\nA {architecture} {what}, instruction-tuned on its chat template.\n\n",
            card.base_model,
        ));
    } else if model.task() == Task::Text2Text {
        s.push_str(&format!(
            "# {} fine-tuned with Hone\n\nA {architecture} {what}: it writes a target text from a source text.\n\n",
            card.base_model,
        ));
    } else if model.task() == Task::QuestionAnswering {
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
    if card.train_examples > 0 {
        s.push_str(&format!(
            "Trained on {} examples, validated on {}.\n\n",
            card.train_examples, card.valid_examples
        ));
    }
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
        Some(Report::Language(r)) => {
            s.push_str(&format!(
                "## Validation (best checkpoint{step})\n\n| metric | value |\n|---|---|\n| loss | {:.4} |\n| perplexity | {:.3} |\n| next-token accuracy | {:.4} |\n| tokens | {} |\n\n",
                r.loss, r.perplexity, r.token_accuracy, r.tokens
            ));
        }
        Some(Report::Generation(r)) => {
            s.push_str(&format!(
                "## Validation (best checkpoint{step}; greedy generations, rouge_score F-measures)\n\n| metric | value |\n|---|---|\n| loss | {:.4} |\n| ROUGE-1 | {:.4} |\n| ROUGE-2 | {:.4} |\n| ROUGE-L | {:.4} |\n| ROUGE-Lsum | {:.4} |\n| exact match | {:.4} |\n| examples | {} |\n\n",
                r.loss, r.rouge1, r.rouge2, r.rouge_l, r.rouge_lsum, r.exact_match, r.examples
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
        Task::CausalLm => "generator = pipeline(\"text-generation\", model=\"PATH_TO_THIS_FOLDER\")\nprint(generator([{\"role\": \"user\", \"content\": \"your question\"}], max_new_tokens=128))",
        Task::Text2Text => "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\ntokenizer = AutoTokenizer.from_pretrained(\"PATH_TO_THIS_FOLDER\")\nmodel = AutoModelForSeq2SeqLM.from_pretrained(\"PATH_TO_THIS_FOLDER\")\nprefix = getattr(model.config, \"prefix\", None) or \"\"\nids = tokenizer(prefix + \"your text\", return_tensors=\"pt\").input_ids\nprint(tokenizer.decode(model.generate(ids, max_new_tokens=64)[0], skip_special_tokens=True))",
    };
    match adapter {
        Some(base) => {
            let class = format!(
                "AutoModelFor{}",
                model.task().architecture_suffix().trim_start_matches("For")
            );
            match model.spec().adapters() {
                Some(Adapters::Lora(lora)) => {
                    s.push_str(&format!(
                        "## LoRA adapter\n\nRank {}, alpha {}, on {}; the base model's weights are unchanged (`hone export --merge` writes a full model).\n\n",
                        lora.r,
                        lora.alpha,
                        lora.target_entries().join(", "),
                    ));
                    s.push_str(&format!(
                        "## Use\n\n```python\nimport json\nfrom peft import PeftModel\nfrom transformers import {class}, AutoTokenizer\nhead = json.load(open(\"PATH_TO_THIS_FOLDER/head_config.json\"))\nbase = {class}.from_pretrained(\"{}\", id2label=head.get(\"id2label\"), label2id=head.get(\"label2id\"), ignore_mismatched_sizes=True)\nmodel = PeftModel.from_pretrained(base, \"PATH_TO_THIS_FOLDER\")\ntokenizer = AutoTokenizer.from_pretrained(\"PATH_TO_THIS_FOLDER\")\n```\n\n",
                        base.name
                    ));
                }
                Some(Adapters::Prefix(prefix)) => {
                    s.push_str(&format!(
                        "## Prefix (prefix tuning)\n\n{} virtual tokens of learned keys and values in every attention layer; the base model's weights are unchanged. PEFT's format (`PREFIX_TUNING`).\n\n",
                        prefix.tokens
                    ));
                    s.push_str(&format!(
                        "## Use\n\n```python\nfrom peft import PeftModel\nfrom transformers import {class}, AutoTokenizer\nbase = {class}.from_pretrained(\"{}\")\nmodel = PeftModel.from_pretrained(base, \"PATH_TO_THIS_FOLDER\")\ntokenizer = AutoTokenizer.from_pretrained(\"PATH_TO_THIS_FOLDER\")\n```\n\n",
                        base.name
                    ));
                }
                Some(Adapters::Bottleneck(b)) => s.push_str(&format!(
                    "## Bottleneck adapters\n\nSize {}, {:?} placement, {} activation; the base model's weights are unchanged. Hone's format (docs/ADAPTERS.md): hone_adapter.json, adapter_model.safetensors. Use it with `hone predict --model PATH_TO_THIS_FOLDER` (the base model: {}).\n\n",
                    b.size, b.placement, b.activation, base.name
                )),
                None => {}
            }
        }
        None => s.push_str(&format!(
            "## Use\n\n```python\nfrom transformers import pipeline\n{call}\n```\n\n"
        )),
    }
    s.push_str("## Training configuration\n\n```toml\n");
    s.push_str(card.config_text);
    s.push_str("\n```\n");
    s
}

/// Writes the model, its config with `labels`, the tokenizer and a model card into `out`.
/// `source` is the folder the model was loaded from (for the tokenizer files). A LoRA model
/// is written as a PEFT adapter folder ([`export_adapter`]).
pub fn export_model(
    model: &Model,
    labels: &[String],
    source: &Path,
    tokenizer: &TextTokenizer,
    out: &Path,
    card: &ModelCard,
) -> Result<(), EngineError> {
    match model.spec().adapters() {
        Some(adapters) => export_adapter(model, &adapters, labels, source, tokenizer, out, card),
        None => write_model(
            model,
            model.hub_values(),
            labels,
            source,
            tokenizer,
            out,
            card,
        ),
    }
}

/// Writes a full model folder with every LoRA adapter merged into its layer (`W + scale·B·A`),
/// which plain `transformers` loads; a model without adapters is written as it is.
pub fn export_merged(
    model: &Model,
    labels: &[String],
    source: &Path,
    tokenizer: &TextTokenizer,
    out: &Path,
    card: &ModelCard,
) -> Result<(), EngineError> {
    let values = match &model.spec().lora {
        Some(lora) => crate::lora::merged(lora, &model.hub_values())?,
        None => model.hub_values(),
    };
    write_model(model, values, labels, source, tokenizer, out, card)
}

/// Merges the LoRA adapter folder `dir` into its base model and writes the full model to
/// `out` ([`export_merged`]), with the adapter's head, labels and tokenizer.
pub fn merge_adapter(dir: &Path, out: &Path) -> Result<(), EngineError> {
    let spec = crate::models::ModelSpec::from_dir(dir)?;
    let adapter = match crate::lora::AdapterFolder::open(dir)? {
        Some(a) if matches!(a.kind, crate::lora::AdapterKind::Lora(_)) => a,
        Some(a) if matches!(a.kind, crate::lora::AdapterKind::Prefix(_)) => {
            return Err(EngineError::InvalidConfig(
                "a prefix is extra keys and values in every attention layer, not a change of \
                 weights: it cannot be merged; use the adapter folder as the model"
                    .into(),
            ))
        }
        Some(_) => {
            return Err(EngineError::InvalidConfig(
                "bottleneck adapters put a nonlinearity between layers: they cannot be merged \
                 into the weights; use the adapter folder as the model"
                    .into(),
            ))
        }
        None => {
            return Err(EngineError::InvalidConfig(format!(
                "{} is not a LoRA adapter folder (no adapter_config.json): nothing to merge",
                dir.display()
            )))
        }
    };
    let task = spec.task().unwrap_or_default();
    let labels = match (task, spec.labels.clone()) {
        // A language model's classes are its vocabulary.
        (Task::CausalLm | Task::Text2Text, _) => Vec::new(),
        (_, Some(labels)) => labels,
        (_, None) => {
            return Err(EngineError::NoClassificationHead {
                path: dir.to_path_buf(),
            })
        }
    };
    let model = Model::load(dir, task, labels.len(), None, &candle_core::Device::Cpu, 0)?;
    let tokenizer = TextTokenizer::from_model_dir(
        &crate::lora::tokenizer_folder(dir)?,
        spec.max_sequence_length(),
    )?;
    let base = BaseModelRef::for_folder(&adapter.base_dir);
    let config_text = serde_json::to_string_pretty(&adapter.settings).unwrap_or_default();
    let card = ModelCard {
        base_model: &base.name,
        train_examples: 0,
        valid_examples: 0,
        best_step: None,
        report: None,
        config_text: &config_text,
    };
    export_merged(&model, &labels, dir, &tokenizer, out, &card)
}

/// Writes a LoRA model as PEFT saves one (bottleneck adapters alike, with `hone_adapter.json`): `adapter_config.json` and
/// `adapter_model.safetensors` (the adapters and the saved modules under
/// `base_model.model.` names), plus Hone's `head_config.json` (the labels), the tokenizer and
/// a model card. The base model is named by its Hub id when it is a cached snapshot, else by
/// its folder.
pub fn export_adapter(
    model: &Model,
    adapters: &Adapters,
    labels: &[String],
    source: &Path,
    tokenizer: &TextTokenizer,
    out: &Path,
    card: &ModelCard,
) -> Result<(), EngineError> {
    check_labels(model, labels)?;
    let base_dir = crate::lora::base_folder(source)?;
    check_not_source(&base_dir, out)?;
    check_not_source(source, out)?;
    std::fs::create_dir_all(out).map_err(|e| EngineError::io(out, e))?;
    let weights = out.join(crate::lora::ADAPTER_WEIGHTS);
    let trains = |name: &str| adapters.trains(name);
    let mut values = model.hub_values();
    if let Adapters::Prefix(_) = adapters {
        // PEFT saves the table a projection makes (its `prompt_embeddings`), not the MLP.
        values.retain(|name, _| !name.starts_with(crate::prefix::PROJECTION_PREFIX));
        if let Some(table) = model.prefix_table()? {
            values.insert(crate::prefix::PREFIX_PARAM.into(), table);
        }
    }
    save_tensors(&crate::lora::adapter_tensors(trains, &values), &weights)?;
    let base = BaseModelRef::for_folder(&base_dir);
    let (file, settings) = match adapters {
        Adapters::Lora(lora) => (
            crate::lora::ADAPTER_CONFIG,
            serde_json::to_value(crate::lora::PeftAdapterConfig::for_lora(
                lora,
                model.task(),
                &base,
            )),
        ),
        Adapters::Prefix(prefix) => (
            crate::lora::ADAPTER_CONFIG,
            Ok(crate::prefix::peft_config(
                prefix,
                prefix_shape(model)?,
                model.task(),
                &base,
            )),
        ),
        Adapters::Bottleneck(b) => (
            crate::bottleneck::ADAPTER_FILE,
            serde_json::to_value(crate::bottleneck::AdapterFile {
                method: "bottleneck".into(),
                config: (*b).clone(),
                task_type: crate::lora::peft_task_type(model.task()).map(str::to_string),
                base_model_name_or_path: base.name.clone(),
                revision: base.revision.clone(),
            }),
        ),
    };
    let settings = settings.map_err(|e| EngineError::Export {
        path: out.join(file),
        message: e.to_string(),
    })?;
    write_json(&out.join(file), &settings)?;
    let mut head = head_config(model, labels);
    if let Some(obj) = head.as_object_mut() {
        let folder = base_dir.canonicalize().unwrap_or_else(|_| base_dir.clone());
        obj.insert(
            crate::lora::BASE_FOLDER_KEY.into(),
            json!(folder.display().to_string()),
        );
    }
    write_json(&out.join(crate::lora::HEAD_CONFIG), &head)?;
    share_like(&weights, &out.join(file))?;
    copy_tokenizer(model, &[source, &base_dir], tokenizer, out)?;
    write_atomic(
        &out.join("README.md"),
        model_card(model, labels, card, Some(&base)).as_bytes(),
    )
}

fn check_labels(model: &Model, labels: &[String]) -> Result<(), EngineError> {
    // A language model's classes are its vocabulary, which has no label names.
    if model.task().is_language_model() {
        return Ok(());
    }
    if labels.len() != model.num_labels() {
        return Err(EngineError::InvalidConfig(format!(
            "{} label names for a {}-class model",
            labels.len(),
            model.num_labels()
        )));
    }
    Ok(())
}

fn check_not_source(source: &Path, out: &Path) -> Result<(), EngineError> {
    if let (Ok(a), Ok(b)) = (source.canonicalize(), out.canonicalize()) {
        if a == b {
            return Err(EngineError::InvalidConfig(
                "the output folder is the pretrained model's folder; choose another output folder"
                    .into(),
            ));
        }
    }
    Ok(())
}

fn write_json(path: &Path, value: &Value) -> Result<(), EngineError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| EngineError::Export {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())
}

/// The safetensors writer creates its file private (0600, a temp file renamed); an export is
/// meant to be shared like its other files, so `file` gets `like`'s permissions.
fn share_like(file: &Path, like: &Path) -> Result<(), EngineError> {
    let shared = std::fs::metadata(like)
        .map_err(|e| EngineError::io(like, e))?
        .permissions();
    std::fs::set_permissions(file, shared).map_err(|e| EngineError::io(file, e))
}

/// Copies the tokenizer's files from the first of `sources` that has each; writes
/// `tokenizer.json` from `tokenizer` when none has it.
fn copy_tokenizer(
    model: &Model,
    sources: &[&Path],
    tokenizer: &TextTokenizer,
    out: &Path,
) -> Result<(), EngineError> {
    let has_json = copy_tokenizer_files(model.spec(), sources, out)?;
    if !has_json {
        tokenizer.save_json(out)?;
    }
    Ok(())
}

/// Copies the family's tokenizer files from the first of `sources` that has each into `out`;
/// true when `tokenizer.json` was among them.
pub(crate) fn copy_tokenizer_files(
    spec: &crate::models::ModelSpec,
    sources: &[&Path],
    out: &Path,
) -> Result<bool, EngineError> {
    let mut has_json = false;
    for name in spec.descriptor().tokenizer_files {
        if let Some(from) = sources.iter().map(|s| s.join(name)).find(|f| f.is_file()) {
            let bytes = std::fs::read(&from).map_err(|e| EngineError::io(&from, e))?;
            write_atomic(&out.join(name), &bytes)?;
            has_json |= *name == "tokenizer.json";
        }
    }
    Ok(has_json)
}

fn write_model(
    model: &Model,
    values: std::collections::HashMap<String, candle_core::Tensor>,
    labels: &[String],
    source: &Path,
    tokenizer: &TextTokenizer,
    out: &Path,
    card: &ModelCard,
) -> Result<(), EngineError> {
    check_labels(model, labels)?;
    check_not_source(source, out)?;
    std::fs::create_dir_all(out).map_err(|e| EngineError::io(out, e))?;
    let weights = out.join("model.safetensors");
    save_tensors(&values, &weights)?;
    write_json(&out.join("config.json"), &head_config(model, labels))?;
    share_like(&weights, &out.join("config.json"))?;
    let base_dir = crate::lora::base_folder(source)?;
    copy_tokenizer(model, &[source, &base_dir], tokenizer, out)?;
    write_atomic(
        &out.join("README.md"),
        model_card(model, labels, card, None).as_bytes(),
    )
}

/// The sizes of the decoder a prefix export applies to.
fn prefix_shape(model: &Model) -> Result<crate::prefix::PrefixShape, EngineError> {
    let e = &model.spec().encoder;
    let d = e
        .decoder
        .as_ref()
        .ok_or_else(|| EngineError::InvalidConfig("prefix tuning is built for decoders".into()))?;
    Ok(crate::prefix::PrefixShape {
        layers: e.num_layers,
        kv_heads: d.kv_heads,
        head_dim: d.head_dim,
    })
}

/// For an export that needs a full model: a LoRA adapter folder `dir` is merged into its base
/// model in a scratch folder beside `out` (same file system), handed to `export` and removed
/// after; `Ok(None)` for a folder that is no adapter; other adapters (no merged form) are
/// refused with `refusal`.
pub(crate) fn through_merged_adapter<T>(
    dir: &Path,
    out: &Path,
    refusal: &str,
    export: impl FnOnce(&Path) -> Result<T, EngineError>,
) -> Result<Option<T>, EngineError> {
    let Some(adapter) = crate::lora::AdapterFolder::open(dir)? else {
        return Ok(None);
    };
    if !matches!(adapter.kind, crate::lora::AdapterKind::Lora(_)) {
        return Err(EngineError::InvalidConfig(refusal.into()));
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "export".into());
    let merged = out.with_file_name(format!(".{name}.merged-{}", std::process::id()));
    if merged.exists() {
        std::fs::remove_dir_all(&merged).map_err(|e| EngineError::io(&merged, e))?;
    }
    let result = merge_adapter(dir, &merged).and_then(|()| export(&merged));
    let _ = std::fs::remove_dir_all(&merged);
    result.map(Some)
}
