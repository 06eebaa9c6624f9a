//! `hone bench`: training steps and forward passes timed on one fixed batch of a real model
//! (a batch dumped by the PyTorch baseline, or a synthetic one from review sentences).

use std::path::Path;

use hone_data::{Batcher, TextTokenizer};
use hone_engine::bench::{batch_from_json, BenchReport, BenchSettings};
use hone_engine::config::FineTuneMethod;
use hone_engine::models::{Model, Task};
use hone_engine::{DeviceSpec, TrainingConfig};

use crate::AppError;

/// Texts of the synthetic batch when no --batch-file is given (cycled to fill the batch).
const SENTENCES: [&str; 8] = [
    "A gripping story told with warmth, wit and a cast that never hits a false note.",
    "The sequel repeats every joke of the first film and somehow makes them all worse.",
    "Fine.",
    "I expected little and got a thoughtful, beautifully shot meditation on grief and family.",
    "Two hours of loud noises, forgettable villains and a plot held together with tape.",
    "The hotel staff went out of their way to make our stay comfortable.",
    "Not bad, not great: a perfectly adequate way to spend a rainy afternoon.",
    "Every chapter ends on a cliffhanger, and I read the whole book in one sitting.",
];

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchRequest<'a> {
    /// Model folder (config.json, weights, tokenizer).
    pub model: &'a Path,
    pub batch_size: usize,
    /// Tokens per sequence (every sequence padded to it).
    pub max_length: usize,
    /// Timed training steps (and timed forward passes).
    pub steps: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// A fixed batch from `torch_baseline.py --dump-batch` (overrides size and length).
    pub batch_file: Option<&'a Path>,
    /// Learning rate of the timed AdamW steps.
    pub lr: f64,
    pub dropout: bool,
    /// No gradients or optimizer state for the word embeddings.
    pub freeze_embeddings: bool,
    /// Hone's CPU path (`false`: candle's autograd, for comparison).
    pub host_path: bool,
    pub device: &'a DeviceSpec,
    /// LoRA at this rank on the family's usual targets (alpha 2 × rank, the base frozen).
    pub lora_rank: Option<usize>,
}

/// Times `request.steps` training steps and forward passes of a 2-class text classifier (a
/// text-to-text model: of its language-model head on targets).
pub fn run_bench(request: &BenchRequest) -> Result<BenchReport, AppError> {
    if request.steps == 0 {
        return Err(AppError::Invalid("time at least one step".into()));
    }
    let device = request.device.open()?;
    let mut cfg = TrainingConfig {
        lr: request.lr,
        weight_decay: 0.01,
        clip_norm: None,
        freeze_embeddings: request.freeze_embeddings,
        dropout: (!request.dropout).then_some(0.0),
        ..Default::default()
    };
    if let Some(r) = request.lora_rank {
        cfg.peft = FineTuneMethod::Lora;
        cfg.lora_r = r;
        cfg.lora_alpha = 2.0 * r as f64;
    }
    // A text-to-text model (T5) is timed as one: sources in, targets teacher-forced.
    let family = hone_engine::models::ModelSpec::from_dir(request.model)?.family;
    let text2text = family.descriptor().tasks.contains(&Task::Text2Text);
    let (task, classes) = match text2text {
        true => (Task::Text2Text, 0),
        false => (Task::SequenceClassification, 2),
    };
    let model = Model::load_for_run(request.model, task, classes, &cfg, &device, 0)?;
    let batch = match request.batch_file {
        Some(path) => batch_from_json(path)?,
        None if text2text => {
            // Each sentence's first quarter as its target.
            let tokenizer = TextTokenizer::from_model_dir(request.model, request.max_length)?;
            let examples: Vec<hone_data::Example> = (0..request.batch_size)
                .map(|i| {
                    let text = SENTENCES[i % SENTENCES.len()];
                    let words: Vec<&str> = text.split_whitespace().collect();
                    hone_data::Example {
                        text: text.to_string(),
                        label: Some(words[..words.len().div_ceil(4)].join(" ")),
                        ..Default::default()
                    }
                })
                .collect();
            let start = model
                .spec()
                .encoder
                .t5
                .as_ref()
                .map_or(0, |t| t.decoder_start_token_id);
            let set = hone_engine::seq2seq::encode(
                &tokenizer,
                &examples,
                "",
                request.max_length,
                start,
                true,
            )?;
            let all: Vec<usize> = (0..set.len()).collect();
            set.batch(&Batcher::new(model.spec().encoder.pad_token_id), &all)
        }
        None => {
            let tokenizer = TextTokenizer::from_model_dir(request.model, request.max_length)?;
            let texts: Vec<(&str, Option<&str>)> = (0..request.batch_size)
                .map(|i| (SENTENCES[i % SENTENCES.len()], None))
                .collect();
            let encoded = tokenizer.encode(&texts)?;
            let labels: Vec<u32> = (0..request.batch_size as u32).map(|i| i % 2).collect();
            Batcher::new(model.spec().encoder.pad_token_id)
                .padding_to(request.max_length)
                .batch(&encoded.iter().collect::<Vec<_>>(), &labels)
        }
    };
    Ok(hone_engine::bench::run_bench(
        &model,
        &batch,
        &cfg,
        BenchSettings {
            warmup: request.warmup,
            steps: request.steps,
            lr: request.lr,
        },
        request.host_path,
    )?)
}
