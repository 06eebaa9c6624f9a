//! The training options of a run (`[training]` of a run configuration): one serde type used by
//! the command line, the TOML file, the app's form and the database.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::curriculum::CurriculumOrder;
use crate::device::DeviceSpec;
use crate::metrics::Metric;
use crate::optim::OptimizerKind;
use crate::schedule::{CyclicMode, Schedule};
use crate::EngineError;

/// How layer-wise learning-rate decay falls from the head to the embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DecayShape {
    /// Each layer gets `base × factor^depth` (depth 0 = head, 1 = top layer, …,
    /// L + 1 = embeddings).
    #[default]
    Exponential,
    /// Same end points (1 at the head, `factor^(L+1)` at the embeddings) joined by half a
    /// cosine: the upper layers keep more of the base rate, the lowest ones a little less.
    Cosine,
}

impl std::str::FromStr for DecayShape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "exponential" | "exp" => Ok(DecayShape::Exponential),
            "cosine" => Ok(DecayShape::Cosine),
            other => Err(format!(
                "unknown decay shape '{other}': use exponential or cosine"
            )),
        }
    }
}

/// Where the weights of a run start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelInit {
    /// The model folder's trained weights (fine-tuning).
    #[default]
    Pretrained,
    /// Fresh weights from config.json alone, initialised as transformers does (training
    /// from scratch: needs far more data and steps than fine-tuning).
    Random,
}

impl std::str::FromStr for ModelInit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "pretrained" => Ok(ModelInit::Pretrained),
            "random" | "scratch" => Ok(ModelInit::Random),
            other => Err(format!(
                "unknown initialisation '{other}': use pretrained or random"
            )),
        }
    }
}

/// What a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FineTuneMethod {
    /// Every weight (full fine-tuning).
    #[default]
    Full,
    /// LoRA adapters and the head (`crate::lora`).
    Lora,
    /// Bottleneck adapters and the head (`crate::bottleneck`).
    Adapter,
    /// Prefix tuning: learned key/value rows in every attention layer of a decoder
    /// (`crate::prefix`).
    Prefix,
}

impl std::str::FromStr for FineTuneMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "full" | "none" => Ok(FineTuneMethod::Full),
            "lora" => Ok(FineTuneMethod::Lora),
            "adapter" | "adapters" | "bottleneck" => Ok(FineTuneMethod::Adapter),
            "prefix" | "prefix-tuning" | "prefix_tuning" => Ok(FineTuneMethod::Prefix),
            other => Err(format!(
                "unknown fine-tuning method '{other}': use full, lora, adapter or prefix"
            )),
        }
    }
}

/// Every option of a fine-tuning run, with safe defaults. The doc comment of each field is
/// also its help text in the app's Train form ([`training_options`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Passes over the training data.
    pub epochs: u32,
    /// Examples per forward pass.
    pub batch_size: usize,
    /// Longest input in tokens (special tokens included); longer texts are truncated.
    pub max_length: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// How the learning rate moves after warmup: linear, cosine, constant, cosine_restarts,
    /// polynomial, exponential, cyclic or one_cycle (which rises over the warmup steps itself).
    pub schedule: Schedule,
    /// The lowest learning rate as a share of `lr`: where polynomial (default 0) and exponential
    /// (0.01) decay end, the bottom of a cyclic schedule (0.25) and one-cycle's starting rate
    /// (0.04, ending 10⁴ times lower).
    pub min_lr_ratio: Option<f64>,
    /// Exponential decay and cyclic exp_range: the factor per optimizer step; empty derives it
    /// from the run's length (exponential ends at `lr × min_lr_ratio`, exp_range's peaks fall
    /// to 1%).
    pub lr_gamma: Option<f64>,
    /// Polynomial decay's power (1 is linear).
    pub lr_power: f64,
    /// Cosine with restarts and cyclic: how many cycles the steps after warmup hold.
    pub lr_cycles: u32,
    /// Cyclic: triangular (same peaks), triangular2 (each peak half the last) or exp_range
    /// (peaks shrink by `lr_gamma` every step).
    pub cyclic_mode: CyclicMode,
    /// Share of the optimizer steps spent warming up linearly from 0.
    pub warmup_ratio: f64,
    /// Warmup steps; overrides `warmup_ratio` when set.
    pub warmup_steps: Option<u64>,
    /// Decoupled weight decay (never applied to biases and LayerNorm weights).
    pub weight_decay: f64,
    /// Clip gradients to this global L2 norm; `None` disables clipping.
    pub clip_norm: Option<f64>,
    /// Batches whose gradients are summed before each optimizer step.
    pub grad_accum: u32,
    /// Seed of shuffling, dropout, head initialisation and the validation split: same seed,
    /// same run.
    pub seed: u64,
    /// Shuffle the training examples every epoch; off takes them in the file's order (to
    /// repeat another tool's run batch for batch, or for data already in the order wanted).
    pub shuffle: bool,
    /// Causal LM: pack conversations into bins of max-length tokens, a step taking batch-size
    /// bins instead of batch-size conversations (fewer, fuller steps when they are short).
    pub packing: bool,
    /// Evaluate every N optimizer steps; `None` evaluates at the end of each epoch.
    pub eval_every: Option<u64>,
    /// Also write the resumable `last` checkpoint every N optimizer steps (it is always written
    /// at the end of each epoch and on cancel).
    pub checkpoint_every: Option<u64>,
    /// Also write it when this many minutes passed since the last one (default 5), so a crash
    /// inside a long epoch costs at most that; `None` writes it only by steps and epochs.
    pub checkpoint_minutes: Option<f64>,
    /// Write the resumable checkpoint at all; off, a stopped run cannot be resumed, but short
    /// runs (the labeling loop's rounds) save the time and disk of weights + optimizer state.
    pub resumable: bool,
    /// Stop after this many evaluations without improvement; `None` never stops early.
    pub early_stopping_patience: Option<u32>,
    /// The metric that picks the best checkpoint and drives early stopping (language models
    /// take the loss or accuracy; text-to-text also ROUGE-L and exact match).
    pub early_stopping_metric: Metric,
    /// Smallest change of the metric that counts as an improvement.
    pub early_stopping_min_delta: f64,
    /// Keep the embedding tables (word, position, token type) fixed.
    pub freeze_embeddings: bool,
    /// Keep the bottom N encoder layers fixed.
    pub freeze_layers: usize,
    /// Layer-wise learning-rate decay factor (e.g. 0.9); `None` gives every layer the base rate.
    pub layer_lr_decay: Option<f64>,
    /// How layer-wise decay falls from the head to the embeddings: exponential or cosine.
    pub layer_lr_decay_shape: DecayShape,
    /// Train only the new head for this many optimizer steps first.
    pub head_warmup_steps: u64,
    /// Train only the new head for this many epochs first (added to `head_warmup_steps`).
    pub head_warmup_epochs: u32,
    /// Gradual unfreezing (ULMFiT): start with the head alone and make one more layer
    /// trainable, from the top, every N optimizer steps (after any head-only warm-up).
    pub unfreeze_every_steps: Option<u64>,
    /// Gradual unfreezing by epochs: one more layer from the top every N epochs.
    pub unfreeze_every_epochs: Option<u32>,
    /// Override every dropout probability of the model config.
    pub dropout: Option<f64>,
    /// Label smoothing ε: each label's target is 1 − ε, and ε is spread evenly over every
    /// class (transformers' label_smoothing_factor); 0 is off, 0.1 is usual. Classification,
    /// token classification, text-to-text and causal LM; the validation loss stays the plain
    /// cross-entropy.
    pub label_smoothing: f64,
    /// Token classification: put each word's tag on every sub-token (B- turned into I- after
    /// the first) instead of the first sub-token only.
    pub label_all_subtokens: bool,
    /// Question answering: context tokens a window shares with the one before when a passage
    /// is longer than the maximum length (transformers' `doc_stride`).
    pub doc_stride: usize,
    /// Question answering: the longest answer, in tokens, inference may pick.
    pub max_answer_length: usize,
    /// The update rule: adamw, sgd (with momentum) or lamb (AdamW with a per-layer trust
    /// ratio, for large batches).
    pub optimizer: OptimizerKind,
    /// AdamW's and LAMB's decay rate of the gradient's running mean.
    pub beta1: f64,
    /// AdamW's and LAMB's decay rate of the squared gradient's running mean.
    pub beta2: f64,
    /// AdamW's and LAMB's epsilon, added to the root of the squared-gradient mean.
    pub adam_eps: f64,
    /// SGD's momentum (0 for plain SGD); SGD's weight decay is added to the gradient (L2).
    pub momentum: f64,
    /// SGD with Nesterov momentum.
    pub nesterov: bool,
    /// Start from the model's trained weights (pretrained) or train from scratch (random).
    pub init: ModelInit,
    /// Knowledge distillation, with a teacher: the share of the loss that follows the
    /// teacher's softened probabilities (the rest follows the labels).
    pub distill_alpha: f64,
    /// Knowledge distillation: the softmax temperature (higher shows more of what the teacher
    /// thinks of the wrong classes).
    pub distill_temperature: f64,
    /// Curriculum learning: order the first epoch(s) from easy to hard by length (shorter
    /// first) or loss (by the teacher's loss on each example), then shuffle; off shuffles
    /// every epoch.
    pub curriculum: CurriculumOrder,
    /// Curriculum learning: how many epochs go from easy to hard.
    pub curriculum_epochs: u32,
    /// Elastic weight consolidation, with a previous task: how strongly weights that mattered
    /// to it are held (λ of `λ Σ F (θ − θ*)²`).
    pub ewc_lambda: f64,
    /// Elastic weight consolidation: examples of the previous task the Fisher information is
    /// estimated on.
    pub ewc_samples: usize,
    /// Multi-task learning: each step trains one task, drawn with probability ∝ its examples
    /// to the power 1/T; 1 samples in proportion to the tasks' sizes, higher values give small
    /// tasks more steps (very high: every task equally often).
    pub task_temperature: f64,
    /// What trains: full (every weight), lora (small low-rank adapters on chosen layers and
    /// the head; the rest frozen: far less optimizer memory, saved in PEFT's adapter format)
    /// or adapter (bottleneck adapters in every layer and the head, the rest frozen), or
    /// prefix (decoders: learned key/value rows every attention layer starts with; the rest
    /// frozen, saved in PEFT's prefix-tuning format).
    pub peft: FineTuneMethod,
    /// LoRA rank r: the adapters' inner size (4–64; higher learns more, costs more).
    pub lora_r: usize,
    /// LoRA alpha: the adapters' output is scaled by alpha / r (alpha / √r with rsLoRA).
    pub lora_alpha: f64,
    /// Dropout on the LoRA adapters' input.
    pub lora_dropout: f64,
    /// Linear layers that get LoRA adapters, comma-separated module names (query,value);
    /// empty: the family's usual choice (PEFT's defaults).
    pub lora_targets: String,
    /// Rank-stabilised LoRA: scale by alpha / √r instead of alpha / r.
    pub lora_rslora: bool,
    /// Modules LoRA trains in full besides the head, comma-separated (e.g. LayerNorm); the
    /// head's new layers are always trained.
    pub lora_modules_to_save: String,
    /// Bottleneck adapters: their inner width.
    pub adapter_size: usize,
    /// Bottleneck adapters: houlsby (after attention and feed-forward) or pfeiffer (after the
    /// feed-forward only).
    pub adapter_placement: crate::bottleneck::Placement,
    /// Bottleneck adapters: the activation between down and up (relu, gelu, silu, tanh).
    pub adapter_activation: String,
    /// Prefix tuning: the virtual tokens every attention layer starts with (10–30 is usual).
    pub prefix_tokens: usize,
    /// Prefix tuning: learn the rows through a two-layer MLP of this many hidden units
    /// (PEFT's prefix_projection, the paper's reparameterisation; steadier training); 0
    /// learns them directly.
    pub prefix_projection: usize,
    /// Causal LM: how conversations are written: auto (the model's chat template, else the
    /// Alpaca prompt), none (the Alpaca prompt) or the path of a Jinja template.
    pub chat_template: String,
    /// Causal LM: the tokens the loss is taken on: assistant (the answers and the token
    /// ending each) or all.
    #[schemars(with = "String")]
    pub loss_on: hone_data::LossOn,
    /// Causal LM: prompts the model answers (greedily) at each evaluation, one per line, to
    /// watch what it says as it learns; empty: none.
    pub sample_prompts: String,
    /// Causal LM: the longest sample answer, in tokens.
    pub sample_tokens: usize,
    /// Text-to-text: written before every source text (T5's task prefix, e.g. "summarize: ").
    pub source_prefix: String,
    /// Text-to-text: the longest target, in tokens (the end token included); longer ones are
    /// cut.
    pub max_target_length: usize,
    /// Text-to-text: validation examples the model writes a target for at each validation,
    /// scored with ROUGE (generation is slow: the first N); 0 scores the loss only.
    pub generate_examples: usize,
    /// Text-to-text: ROUGE with the Porter stemmer (rouge_score's use_stemmer).
    pub rouge_stemmer: bool,
    /// The dtype of matrix products: fp32, bf16 (mixed precision: f32 weights, optimizer
    /// state, norms, softmax and loss; for GPUs with bfloat16, compute capability 8.0+) or
    /// fp16 (with dynamic loss scaling, for older GPUs). On the CPU, bf16 runs Hone's CPU
    /// graph where the CPU has AVX512-BF16; otherwise mixed precision runs the slower autograd
    /// graph.
    pub precision: crate::precision::Precision,
    /// fp16's initial loss scale (PyTorch GradScaler's init_scale): halved on every step
    /// whose gradients overflow (the step is skipped), doubled after 2,000 steps without.
    pub loss_scale: f64,
    /// Where training runs: cpu, auto, cuda[:N] or metal[:N] (GPUs need a build with them).
    #[schemars(with = "String")]
    pub device: DeviceSpec,
}

/// One option of [`TrainingConfig`] as the app's Train form shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingOption {
    /// The key in `[training]`.
    pub key: String,
    /// The default value.
    pub default: serde_json::Value,
    /// Its doc comment: what it does.
    pub help: String,
    /// `bool`, `int`, `float` or `choice` (from the type), `optional` when it may be empty.
    pub kind: String,
    pub optional: bool,
    /// The values of a `choice`.
    pub choices: Vec<String>,
}

/// Every option of [`TrainingConfig`] with its default, help (the field's doc comment) and
/// kind, in declaration order, read from the type itself (its JSON schema), so the form
/// cannot drift from it.
pub fn training_options() -> Vec<TrainingOption> {
    let schema = schemars::schema_for!(TrainingConfig);
    let root = schema.as_value();
    let defaults = serde_json::to_value(TrainingConfig::default()).unwrap_or_default();
    let resolve = |v: &serde_json::Value| -> serde_json::Value {
        match v.get("$ref").and_then(|r| r.as_str()) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap_or_default();
                root.pointer(&format!("/$defs/{name}"))
                    .cloned()
                    .unwrap_or_default()
            }
            None => v.clone(),
        }
    };
    let Some(props) = root.get("properties").and_then(|p| p.as_object()) else {
        return Vec::new();
    };
    // Declaration order: a struct serialises its fields in that order (a JSON map would sort
    // them).
    let text = serde_json::to_string(&TrainingConfig::default()).unwrap_or_default();
    let mut keys: Vec<&String> = props.keys().collect();
    keys.sort_by_key(|k| text.find(&format!("\"{k}\":")).unwrap_or(usize::MAX));
    keys.into_iter()
        .filter_map(|key| props.get(key).map(|prop| (key, prop)))
        .map(|(key, prop)| {
            let types: Vec<String> = match prop.get("type") {
                Some(serde_json::Value::String(t)) => vec![t.clone()],
                Some(serde_json::Value::Array(ts)) => ts
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            let optional = types.iter().any(|t| t == "null");
            let target = resolve(prop);
            let choices: Vec<String> = target
                .get("enum")
                .or_else(|| target.get("oneOf"))
                .and_then(|e| e.as_array())
                .map(|values| {
                    // Plain values, or (with documented variants) `oneOf` entries holding a
                    // `const` or an `enum` of several.
                    values
                        .iter()
                        .flat_map(|v| {
                            let listed = v.get("enum").and_then(|e| e.as_array());
                            let one = v
                                .as_str()
                                .or_else(|| v.get("const").and_then(|c| c.as_str()));
                            listed
                                .into_iter()
                                .flatten()
                                .filter_map(|e| e.as_str())
                                .chain(one)
                                .map(str::to_string)
                                .collect::<Vec<_>>()
                        })
                        .collect()
                })
                .unwrap_or_default();
            let kind = if !choices.is_empty() {
                "choice"
            } else if types.iter().any(|t| t == "boolean") {
                "bool"
            } else if types.iter().any(|t| t == "integer") {
                "int"
            } else if types.iter().any(|t| t == "number") {
                "float"
            } else {
                "text"
            };
            TrainingOption {
                key: key.clone(),
                default: defaults.get(key).cloned().unwrap_or_default(),
                help: prop
                    .get("description")
                    .or_else(|| target.get("description"))
                    .and_then(|d| d.as_str())
                    .unwrap_or_default()
                    .replace('\n', " "),
                kind: kind.into(),
                optional,
                choices,
            }
        })
        .collect()
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            epochs: 3,
            batch_size: 16,
            max_length: 128,
            lr: 5e-5,
            schedule: Schedule::Linear,
            min_lr_ratio: None,
            lr_gamma: None,
            lr_power: 1.0,
            lr_cycles: 2,
            cyclic_mode: CyclicMode::Triangular,
            warmup_ratio: 0.1,
            warmup_steps: None,
            weight_decay: 0.01,
            clip_norm: Some(1.0),
            grad_accum: 1,
            seed: 42,
            shuffle: true,
            packing: false,
            eval_every: None,
            checkpoint_every: None,
            checkpoint_minutes: Some(5.0),
            resumable: true,
            early_stopping_patience: None,
            early_stopping_metric: Metric::MacroF1,
            early_stopping_min_delta: 0.0,
            freeze_embeddings: false,
            freeze_layers: 0,
            layer_lr_decay: None,
            layer_lr_decay_shape: DecayShape::Exponential,
            head_warmup_steps: 0,
            head_warmup_epochs: 0,
            unfreeze_every_steps: None,
            unfreeze_every_epochs: None,
            dropout: None,
            label_smoothing: 0.0,
            label_all_subtokens: false,
            doc_stride: 32,
            max_answer_length: 30,
            optimizer: OptimizerKind::AdamW,
            beta1: 0.9,
            beta2: 0.999,
            adam_eps: 1e-8,
            momentum: 0.9,
            nesterov: false,
            init: ModelInit::Pretrained,
            distill_alpha: 0.5,
            distill_temperature: 2.0,
            curriculum: CurriculumOrder::Off,
            curriculum_epochs: 1,
            ewc_lambda: 10_000.0,
            task_temperature: 1.0,
            peft: FineTuneMethod::Full,
            lora_r: 8,
            lora_alpha: 16.0,
            lora_dropout: 0.1,
            lora_targets: String::new(),
            lora_rslora: false,
            lora_modules_to_save: String::new(),
            adapter_size: 64,
            adapter_placement: crate::bottleneck::Placement::Houlsby,
            prefix_tokens: 20,
            prefix_projection: 0,
            adapter_activation: "relu".into(),
            chat_template: "auto".into(),
            loss_on: hone_data::LossOn::Assistant,
            sample_prompts: String::new(),
            sample_tokens: 48,
            source_prefix: String::new(),
            max_target_length: crate::memory::DEFAULT_TARGET_LENGTH,
            generate_examples: 64,
            rouge_stemmer: false,
            ewc_samples: 200,
            precision: crate::precision::Precision::Fp32,
            loss_scale: crate::precision::LossScaler::INITIAL,
            device: DeviceSpec::Cpu,
        }
    }
}

impl TrainingConfig {
    /// The LoRA settings of a LoRA run on a `task` head of `spec`'s family (`None` for full
    /// fine-tuning): the named targets or the family's usual ones, and PEFT's modules to save
    /// for the task plus any named.
    pub fn lora_config(
        &self,
        spec: &crate::models::ModelSpec,
        task: crate::models::Task,
    ) -> Result<Option<crate::lora::LoraConfig>, EngineError> {
        use crate::lora::{LoraConfig, LoraTargets};
        if self.peft != FineTuneMethod::Lora {
            return Ok(None);
        }
        let targets = if self.lora_targets.trim().is_empty() {
            LoraTargets::Names(
                spec.descriptor()
                    .lora_targets
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            )
        } else {
            LoraTargets::parse_list(&self.lora_targets)
        };
        let modules_to_save = self.modules_to_save(task);
        let cfg = LoraConfig {
            r: self.lora_r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            targets,
            rslora: self.lora_rslora,
            modules_to_save,
        };
        cfg.validate()?;
        Ok(Some(cfg))
    }

    /// The bottleneck adapter settings of an adapter run on a `task` head (`None` otherwise):
    /// PEFT's modules to save for the task plus any named in `lora_modules_to_save`.
    pub fn bottleneck_config(
        &self,
        task: crate::models::Task,
    ) -> Result<Option<crate::bottleneck::BottleneckConfig>, EngineError> {
        if self.peft != FineTuneMethod::Adapter {
            return Ok(None);
        }
        let modules_to_save = self.modules_to_save(task);
        let cfg = crate::bottleneck::BottleneckConfig {
            size: self.adapter_size,
            placement: self.adapter_placement,
            activation: self.adapter_activation.trim().to_ascii_lowercase(),
            modules_to_save,
        };
        cfg.validate()?;
        Ok(Some(cfg))
    }

    /// The sample prompts, one per line (blank lines skipped).
    pub fn sample_prompt_list(&self) -> Vec<String> {
        self.sample_prompts
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The prefix-tuning settings of a prefix run on a `task` head (`None` otherwise).
    pub fn prefix_config(
        &self,
        task: crate::models::Task,
    ) -> Result<Option<crate::prefix::PrefixConfig>, EngineError> {
        if self.peft != FineTuneMethod::Prefix {
            return Ok(None);
        }
        let cfg = crate::prefix::PrefixConfig {
            tokens: self.prefix_tokens,
            projection: (self.prefix_projection > 0).then_some(self.prefix_projection),
            modules_to_save: self.modules_to_save(task),
        };
        cfg.validate()?;
        Ok(Some(cfg))
    }

    /// The modules an adapter run trains in full: PEFT's for the task (the classifier, or
    /// the span scorer) and any named in `lora_modules_to_save`.
    fn modules_to_save(&self, task: crate::models::Task) -> Vec<String> {
        let task_default: &[&str] = match task {
            crate::models::Task::QuestionAnswering => &["qa_outputs"],
            // A language model's head is the (frozen) output layer.
            crate::models::Task::CausalLm | crate::models::Task::Text2Text => &[],
            _ => &["classifier", "score"],
        };
        task_default
            .iter()
            .copied()
            .chain(self.lora_modules_to_save.split(',').map(str::trim))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Checks ranges; the message names the option and a valid value.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: String| Err(EngineError::InvalidConfig(m));
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch size must be at least 1".into());
        }
        if self.grad_accum == 0 {
            return bad("grad-accum must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!(
                "learning rate must be a positive number, got {}",
                self.lr
            ));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad(format!(
                "warmup ratio must be in [0, 1), got {}",
                self.warmup_ratio
            ));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(format!(
                "weight decay must be ≥ 0, got {}",
                self.weight_decay
            ));
        }
        if let Some(c) = self.clip_norm {
            if !(c > 0.0 && c.is_finite()) {
                return bad(format!("clip norm must be positive, got {c}"));
            }
        }
        if self.peft == FineTuneMethod::Adapter {
            self.bottleneck_config(crate::models::Task::SequenceClassification)?;
        }
        if self.peft == FineTuneMethod::Lora {
            crate::lora::check_numbers(self.lora_r, self.lora_alpha, self.lora_dropout)?;
        }
        if !(1..=4096).contains(&self.sample_tokens) {
            return bad(format!(
                "sample answers need 1 to 4096 tokens, got {}",
                self.sample_tokens
            ));
        }
        if self.peft == FineTuneMethod::Prefix {
            self.prefix_config(crate::models::Task::CausalLm)?;
        }
        if let Some(f) = self.layer_lr_decay {
            if !(f > 0.0 && f <= 1.0) {
                return bad(format!("layer LR decay must be in (0, 1], got {f}"));
            }
        }
        if self.max_answer_length == 0 {
            return bad("the longest answer must be at least 1 token".into());
        }
        if let Some(p) = self.dropout {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("dropout must be in [0, 1), got {p}"));
            }
        }
        if self.eval_every == Some(0) {
            return bad("eval-every must be at least 1 step".into());
        }
        if self.checkpoint_every == Some(0) {
            return bad("checkpoint-every must be at least 1 step".into());
        }
        if let Some(m) = self.checkpoint_minutes {
            if !(m.is_finite() && m > 0.0) {
                return bad(format!(
                    "checkpoint minutes must be a positive number (or off), got {m}"
                ));
            }
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad("Adam betas must be in [0, 1)".into());
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(format!("momentum must be in [0, 1), got {}", self.momentum));
        }
        if self.nesterov && self.momentum == 0.0 {
            return bad("Nesterov momentum needs a momentum above 0".into());
        }
        if let Some(r) = self.min_lr_ratio {
            if !(0.0..1.0).contains(&r) {
                return bad(format!("min LR ratio must be in [0, 1), got {r}"));
            }
        }
        if let Some(g) = self.lr_gamma {
            if !(g > 0.0 && g <= 1.0) {
                return bad(format!("LR gamma must be in (0, 1], got {g}"));
            }
        }
        if !(self.lr_power.is_finite() && self.lr_power > 0.0) {
            return bad(format!("LR power must be positive, got {}", self.lr_power));
        }
        if self.lr_cycles == 0 {
            return bad("LR cycles must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad(format!(
                "label smoothing must be in [0, 1), got {}",
                self.label_smoothing
            ));
        }
        if !(0.0..=1.0).contains(&self.distill_alpha) {
            return bad(format!(
                "distillation alpha must be in [0, 1], got {}",
                self.distill_alpha
            ));
        }
        if !(self.distill_temperature.is_finite() && self.distill_temperature > 0.0) {
            return bad(format!(
                "distillation temperature must be positive, got {}",
                self.distill_temperature
            ));
        }
        if !(self.loss_scale.is_finite() && self.loss_scale >= 1.0) {
            return bad(format!(
                "the fp16 loss scale must be at least 1, got {}",
                self.loss_scale
            ));
        }
        if self.curriculum_epochs == 0 {
            return bad("curriculum epochs must be at least 1".into());
        }
        if !(self.ewc_lambda.is_finite() && self.ewc_lambda >= 0.0) {
            return bad(format!("EWC lambda must be ≥ 0, got {}", self.ewc_lambda));
        }
        if self.ewc_samples == 0 {
            return bad("EWC needs at least 1 example to estimate on".into());
        }
        if !(self.task_temperature.is_finite() && self.task_temperature > 0.0) {
            return bad(format!(
                "the task sampling temperature must be positive, got {}",
                self.task_temperature
            ));
        }
        match (self.unfreeze_every_steps, self.unfreeze_every_epochs) {
            (Some(_), Some(_)) => {
                return bad(
                    "gradual unfreezing takes steps or epochs, not both: clear one of them".into(),
                )
            }
            (Some(0), _) | (_, Some(0)) => {
                return bad("gradual unfreezing needs at least 1 step or epoch per layer".into())
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn every_option_comes_with_its_default_help_and_kind() {
        let options = training_options();
        let keys: Vec<&str> = options.iter().map(|o| o.key.as_str()).collect();
        // In declaration order.
        assert_eq!(&keys[..4], ["epochs", "batch_size", "max_length", "lr"]);
        assert_eq!(keys.last(), Some(&"device"));
        let all = serde_json::to_value(TrainingConfig::default()).unwrap();
        assert_eq!(keys.len(), all.as_object().unwrap().len(), "{keys:?}");
        let get = |k: &str| options.iter().find(|o| o.key == k).unwrap();
        assert_eq!(get("lr").default, serde_json::json!(5e-5));
        assert_eq!(get("lr").kind, "float");
        assert_eq!(get("epochs").kind, "int");
        assert_eq!(get("resumable").kind, "bool");
        assert!(get("warmup_steps").optional && get("warmup_steps").kind == "int");
        assert_eq!(get("schedule").kind, "choice");
        assert!(get("schedule").choices.contains(&"cosine".to_string()));
        assert!(get("early_stopping_metric")
            .choices
            .contains(&"map_at_3".to_string()));
        assert_eq!(
            get("layer_lr_decay_shape").choices,
            ["exponential", "cosine"]
        );
        assert_eq!(get("device").default, serde_json::json!("cpu"));
        for o in &options {
            assert!(!o.help.is_empty(), "{} has no doc comment", o.key);
        }
    }

    use super::*;

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert!(toml::from_str::<TrainingConfig>("epoch = 3").is_err());
        let cfg = TrainingConfig {
            lr: -1.0,
            ..Default::default()
        };
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("learning rate"));
    }
}
