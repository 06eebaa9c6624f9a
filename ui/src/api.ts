// Typed calls into the Rust side. Every command returns a promise; errors are
// `{ kind, message }` (CommandError in src-tauri/src/error.rs).
import { Channel, invoke } from "@tauri-apps/api/core";

/** A turn of a chat. */
export type ChatTurn = { role: "system" | "user" | "assistant"; content: string };
/** How tokens are chosen and when an answer stops (`hone_engine::generate::GenerationSettings`). */
export type GenerationSettings = {
  max_new_tokens: number; temperature: number; top_k: number; top_p: number;
  repetition_penalty: number; stop: string[]; seed: number;
};
/** How a text-to-text answer searches (`hone_engine::seq2seq::Search`). */
export type Search = { num_beams: number; length_penalty: number; early_stopping: boolean; no_repeat_ngram_size: number };
/** A finished answer. */
export type Generation = {
  text: string; tokens: number[]; prompt: number[]; prompt_tokens: number; new_tokens: number;
  stop: "end_token" | "stop_string" | "length" | "context" | "cancelled"; tokens_per_second: number;
};
export type CommandError = { kind: string; message: string };

export function errorText(e: unknown): string {
  if (e && typeof e === "object" && "message" in e) return String((e as CommandError).message);
  return String(e);
}

export type FitSettings = { batch_size: number; max_length: number; freeze_embeddings?: boolean; num_labels?: number; typical_length?: number | null; lora_rank?: number | null;
  /** The run's precision: on a GPU, and on the CPU in fp16 (bf16 without AVX512-BF16), the run takes candle's autograd graph and the estimate is of it. */
  autograd?: string | null;
  /** The run's device (cpu, auto, cuda, cuda:N, metal): the fit check judges its memory; absent as auto. */
  device?: string | null;
  /** A text-to-text model's target tokens per example (the run's max_target_length); absent as 128. */
  target_length?: number | null };
/** A stored dataset's lengths in a model's tokens (a sample of up to 2,000 examples). */
export type TokenLengths = { examples: number; mean: number; p95: number; longest: number; truncated: number; max_length: number };
export type MemoryEstimate = {
  settings: FitSettings; parameters: number; trainable_parameters: number; weights: number; gradients: number;
  optimizer: number; activations: number; runtime: number; checkpoint: number; total: number;
};
/** Expected speed on this machine's CPU (absent when judged against a GPU). */
export type SpeedEstimate = { matmul_gflops: number; step_seconds: number; samples_per_second: number; work: { batch_size: number; length: number } };
export type FitLine = { estimate: MemoryEstimate; verdict: "fits" | "tight" | "does-not-fit"; speed: SpeedEstimate | null };
export type FitReport = {
  full: FitLine; frozen_embeddings: FitLine; lora: FitLine; compared_with: string; available: number; total: number;
  /** Judged against a GPU: the RAM the run also needs (weights read there, program, data). */
  host: { needed: number; available: number; total: number; verdict: string } | null;
};
export type ModelCheck = {
  model_type: string | null; family: string | null; trainable: boolean; tasks: string[]; problems: string[];
  parameters: number | null; fit: FitReport | null; adapter?: string | null;
};
export type ModelSummary = {
  id: string; task: string | null; library: string | null; downloads: number; likes: number;
  last_modified: string | null; tags: string[]; gated: boolean; private: boolean;
};
/** A search result with the family Hone would train it as (from its tags), or null. */
export type SearchHit = ModelSummary & { family: string | null };
export type RepoFile = { name: string; size: number | null };
export type ModelInfo = ModelSummary & {
  sha: string | null; license: string | null; files: RepoFile[]; parameters: number | null; card: string | null;
  config_summary: { architectures: string[]; model_type: string | null; num_layers: number | null; hidden_size: number | null; max_positions: number | null } | null;
};
export type ModelPage = {
  info: ModelInfo; check: ModelCheck; download_bytes: number; cached: boolean; card_html: string | null;
  /** Set when the Hub was out of reach and the page comes from the cached copy. */
  offline: string | null;
};
export type KnownModel = { reference: string; source: string; path: string; model_type: string | null; size_bytes: number; revision: string | null };
export type DownloadEvent =
  | { kind: "planned"; total_bytes: number; done_bytes: number; files: { name: string; size: number; cached: boolean }[] }
  | { kind: "file_started"; name: string; size: number; resumed_from: number }
  | { kind: "progress"; name: string; done_bytes: number; total_bytes: number }
  | { kind: "retrying"; name: string; attempt: number; message: string }
  | { kind: "file_done"; name: string };

export type SourceSpec = { format?: string | null; text?: string | null; text_pair?: string | null; label?: string | null; no_header?: boolean; encoding?: string | null };
export type FilePreview = {
  format: string; columns: string[]; spec: SourceSpec; rows: { line: number; text: string; text_pair: string | null; label: string | null }[];
  label_counts: Record<string, number>; error: string | null; warnings: string[];
  /** Rows counted (the whole file when `complete`), and how many of them have no label. */
  rows_counted: number; unlabeled: number; complete: boolean;
};
/** Which columns hold a multiple-choice question, its options and its answer. */
export type ChoiceColumns = { question: string; context?: string | null; choices: string[]; answer?: string | null; shuffle_seed?: number | null };
export type ChoiceSample = { line: number; question: string; context: string | null; options: string[]; answer: number | null; lengths: number[] };
/** A file of questions as it will be read: counts, answers per letter, the first questions. */
export type ChoicePreview = {
  questions: number; options: number; answers: [string, number][]; samples: ChoiceSample[];
  longest: number; truncated: number; max_length: number; warnings: string[];
};
/** A question with its options ranked by a multiple-choice model. */
export type ChoicePrediction = {
  question: string; context?: string | null; options: string[]; answer: number; letter: string;
  probabilities: number[]; logits: number[]; ranking: number[]; truncated: boolean;
};
/** A question-answering file as it will be read: counts, the first questions, windows. */
export type AnswerPreview = {
  questions: number; answered: number; passages: number; windows: number; most_windows: number; max_length: number; stride: number;
  samples: { line: number; question: string; context: string; answer: [string, number] | null; windows: number }[]; warnings: string[];
};
/** The answer a question-answering model found in a passage (character offsets). */
export type AnswerPrediction = { question: string; context: string; answer: string; score: number; start: number; end: number; windows: number };
/** An ensemble recorded as a run: its score and each member's on the validation examples
 * every member held out (none when they share none). */
export type EnsembleRecord = { run_id: number; examples: number; report: any | null; members: [number, any][] };
/** A named set of training options (from Rust); with `lr_scaling` the learning rate follows the
 * batch size: base_lr / reference_batch × batch_size. */
export type Preset = { key: string; label: string; help: string; values: Record<string, any>; lr_scaling: { base_lr: number; reference_batch: number } | null };
/** One training option as the run configuration type describes it (its doc comment is the help). */
export type TrainingOption = { key: string; default: any; help: string; kind: "bool" | "int" | "float" | "choice" | "text"; optional: boolean; choices: string[] };
export type DatasetInfo = {
  id: number; name: string; task: string; source: string; format: string; rows: number; labeled: number;
  label_names: string[]; label_counts: Record<string, number>; warnings: string[]; splits: string[]; created_at: string;
};
export type StoredExample = { id: number; position: number; source_line: number | null; text: string; text_pair: string | null; tokens: string[] | null; label: string | string[] | null };
export type RunRecord = {
  id: number; name: string | null; status: string; config: any; step: number; total_steps: number | null;
  final_metrics: any; created_at: string; started_at: string | null; finished_at: string | null; error: string | null;
  /** The person's tags and notes. */
  tags: string[]; notes: string | null;
  /** Asked to stop from another process or window; it stops after its current step. */
  cancel_requested: boolean;
  /** Where a run handed to a compute target went (`hone target`); null for runs on this machine. */
  remote?: RemotePlacement | null;
};
/** A run on a compute target: the target, its Slurm job element, its folder there. */
export type RemotePlacement = { target: string; job: string; dir: string; events_read: number; submissions: number };
/** A compute target (`hone target add`): a Slurm cluster here or over SSH. */
export type Target = { name: string; settings: { scheduler: string; ssh: string | null; dir: string; partition: string | null; gres: string | null } };
/** One trial of a sweep (`hone sweep show`): its varied settings and score. */
/** One failing example of a behavioral test: the text (and what a perturbation made of it). */
export interface BehaviorFailure { text: string; changed?: string; expected: string; got: string }

/** One behavioral test's result (`hone test`). */
export interface BehaviorResult {
  name: string;
  kind: "mft" | "invariance" | "directional";
  examples: number;
  failures: number;
  failure_rate: number;
  failing: BehaviorFailure[];
}

/** A behavioral suite's results on a run's model, with accuracy per slice of its held-out examples. */
export interface SuiteReport {
  suite: string | null;
  tests: BehaviorResult[];
  robustness: number | null;
  slices: { name: string; examples: number; accuracy: number | null }[];
}

export type SweepTrial = {
  run_id: number; status: string; settings: [string, any][];
  /** The metric that picked the run's best checkpoint, and that checkpoint's value. */
  metric: string; value: number | null;
};
export type MetricRow = { step: number; epoch: number | null; name: string; value: number };
export type EvaluationRecord = { step: number; part: string; report: any; predictions: any[] | null };
export type RunDetail = {
  run: RunRecord; metrics: MetricRow[]; evaluations: EvaluationRecord[]; artifacts: { kind: string; path: string }[];
  /** A causal-LM run's answers to its sample prompts, by step. */
  samples: { step: number; prompt: string; answer: string; tokens: number }[];
  live: boolean;
};
export type TrainEvent = { event: string; [key: string]: any };
/** One step of the learning-rate range test. */
export type LrFindPoint = { step: number; lr: number; loss: number; smoothed: number };
export type LrFindResult = {
  points: LrFindPoint[]; suggested_lr: number | null; min_loss_lr: number | null; steepest_lr: number | null;
  diverged: boolean; cancelled: boolean;
};
export type LrFindMessage = { type: "point"; point: LrFindPoint; steps: number } | { type: "notice"; message: string };
export type RunMessage =
  | { type: "events"; run_id: number; events: TrainEvent[] }
  | { type: "ended"; run_id: number; status: string; error: string | null };
export type Prediction = { text: string; label: string; probabilities: number[]; labels: string[] };
/** An entity a token classifier found: character offsets into the text. */
export type EntityPrediction = { text: string; type: string; start: number; end: number; score: number };
export type TokenPrediction = { text: string; entities: EntityPrediction[]; tokens: { text: string; tag: string; score: number; start: number; end: number }[]; truncated: boolean };
/** What a run's model says about texts, by the task of its head. */
export type Predictions =
  | { task: "sequence-classification"; predictions: Prediction[] }
  | { task: "token-classification"; predictions: TokenPrediction[] }
  | { task: "multiple-choice"; predictions: ChoicePrediction[] }
  | { task: "question-answering"; predictions: AnswerPrediction[] };

/** How the labeling queue is ordered (hone_app::active::Strategy). */
export type Strategy = "margin" | "least-confidence" | "entropy" | "random";
/** An unlabeled example with the model's suggested label (a class, or a tag per word). */
export type Suggestion = {
  example_id: number; text: string; text_pair: string | null; tokens: string[] | null;
  label: string | string[]; confidence: number; uncertainty: number;
};
export type Suggestions = { dataset: string; run_id: number; strategy: Strategy; labels: string[]; unlabeled: number; scored: number; suggestions: Suggestion[] };
/** A finished run on a dataset: the labels it learned from and its score. */
export type CurvePoint = { run_id: number; labels: number; score: number; part: string; finished_at: string | null };

export const api = {
  appInfo: () => invoke<any>("app_info"),
  pick: (kind: "data_file" | "model_folder" | "export_folder") => invoke<string | null>("pick_path", { kind }),
  hubSearch: (query: { text: string; task: string | null; library: string | null; sort: string; limit: number }, next?: string | null) =>
    invoke<{ models: SearchHit[]; next: string | null }>("hub_search", { query, next: next ?? null }),
  hubInfo: (repo: string, settings?: FitSettings) => invoke<ModelPage>("hub_info", { repo, settings: settings ?? null }),
  hubDownload: (repo: string, onEvent: (e: DownloadEvent) => void) => {
    const channel = new Channel<DownloadEvent>();
    channel.onmessage = onEvent;
    return invoke<any>("hub_download", { repo, onEvent: channel });
  },
  hubCancelDownload: (repo: string) => invoke<boolean>("hub_cancel_download", { repo }),
  modelsList: () => invoke<KnownModel[]>("models_list"),
  modelCheck: (reference: string, settings?: FitSettings) => invoke<ModelCheck>("model_check", { reference, settings: settings ?? null }),
  modelImport: (dir: string) => invoke<{ model: any; check: ModelCheck }>("model_import", { dir }),
  modelRemove: (reference: string) => invoke<number>("model_remove", { reference }),
  datasetPreview: (path: string, spec?: SourceSpec) => invoke<FilePreview>("dataset_preview", { path, spec: spec ?? null }),
  choicePreview: (path: string, columns: ChoiceColumns, model: string | null, maxLength: number) =>
    invoke<ChoicePreview>("choice_preview", { path, columns, model, maxLength }),
  answerPreview: (path: string, model: string | null, maxLength: number, stride: number) =>
    invoke<AnswerPreview>("answer_preview", { path, model, maxLength, stride }),
  /** `labelMap` renames labels as they are read (class names for a 0/1 file). */
  datasetImport: (path: string, name: string, spec: SourceSpec, labelMap: Record<string, string> | null, onProgress: (p: { done: number; total: number }) => void) => {
    const channel = new Channel<{ done: number; total: number }>();
    channel.onmessage = onProgress;
    return invoke<any>("dataset_import", { path, name, spec, labelMap, onProgress: channel });
  },
  datasetRenameClass: (name: string, old: string, renamed: string) => invoke<DatasetInfo>("dataset_rename_class", { name, old, new: renamed }),
  datasetsList: () => invoke<DatasetInfo[]>("datasets_list"),
  datasetExamples: (name: string, query: { labeled?: boolean | null; text_contains?: string; offset?: number; limit?: number }) =>
    invoke<{ dataset: DatasetInfo; examples: StoredExample[]; total: number }>("dataset_examples", { name, query }),
  setLabel: (exampleId: number, label: string | string[] | null) => invoke<void>("example_set_label", { exampleId, label }),
  datasetSplit: (name: string, split: string, valid: number, test: number, seed: number) =>
    invoke<any>("dataset_split", { name, split, valid, test, seed }),
  datasetDelete: (name: string) => invoke<void>("dataset_delete", { name }),
  runsList: () => invoke<RunRecord[]>("runs_list"),
  sweepTrials: (name: string) => invoke<SweepTrial[]>("sweep_trials", { name }),
  runShow: (id: number) => invoke<RunDetail>("run_show", { id }),
  runsMetrics: (ids: number[]) => invoke<[number, MetricRow[]][]>("runs_metrics", { ids }),
  runsCompare: (a: number, b: number) => invoke<{ config_diff: [string, any, any][]; metrics: [string, number | null, number | null][] }>("runs_compare", { a, b }),
  runDelete: (id: number) => invoke<void>("run_delete", { id }),
  /** Adds/removes a run's tags and/or sets its notes (each when given); the run as stored. */
  runAnnotate: (id: number, change: { add?: string[]; remove?: string[]; notes?: string }) => invoke<RunRecord>("run_annotate", { id, ...change }),
  /** Asks a run to stop after its current step, whichever process trains it. */
  runRequestStop: (id: number) => invoke<void>("run_request_stop", { id }),
  datasetTokenLengths: (name: string, model: string, maxLength: number) =>
    invoke<TokenLengths>("dataset_token_lengths", { name, model, maxLength }),
  trainingOptions: () => invoke<TrainingOption[]>("training_options"),
  trainingPresets: () => invoke<Preset[]>("training_presets"),
  trainStart: (config: any, name: string | null, onMessage: (m: RunMessage) => void) => {
    const channel = new Channel<RunMessage>();
    channel.onmessage = onMessage;
    return invoke<number>("train_start", { config, name, onEvent: channel });
  },
  trainResume: (runId: number, onMessage: (m: RunMessage) => void) => {
    const channel = new Channel<RunMessage>();
    channel.onmessage = onMessage;
    return invoke<number>("train_resume", { runId, onEvent: channel });
  },
  trainCancel: (runId: number) => invoke<boolean>("train_cancel", { runId }),
  /** The compute targets runs can be submitted to. */
  targetsList: () => invoke<Target[]>("targets_list"),
  /** Creates a run and submits it to compute target `target`; its id. */
  trainSubmit: (config: any, name: string | null, target: string) => invoke<number>("train_submit", { config, name, target }),
  /** Submits a stopped run on a compute target again (it continues from its last checkpoint). */
  runResubmit: (id: number) => invoke<string>("run_resubmit", { id }),
  /** The learning-rate range test on a run configuration; steps stream to `onMessage`. */
  lrFind: (config: any, onMessage: (m: LrFindMessage) => void) => {
    const channel = new Channel<LrFindMessage>();
    channel.onmessage = onMessage;
    return invoke<LrFindResult>("lr_find", { config, settings: null, onEvent: channel });
  },
  lrFindCancel: () => invoke<boolean>("lr_find_cancel"),
  labelingSuggest: (dataset: string, runId: number, strategy: Strategy, pool: number | null, onProgress: (p: { done: number; total: number }) => void) => {
    const channel = new Channel<{ done: number; total: number }>();
    channel.onmessage = onProgress;
    return invoke<Suggestions>("labeling_suggest", { dataset, runId, strategy, pool, onProgress: channel });
  },
  labelingCancel: () => invoke<boolean>("labeling_cancel"),
  labelingCurve: (dataset: string) => invoke<CurvePoint[]>("labeling_curve", { dataset }),
  labelingNextRound: (runId: number, dataset: string, onMessage: (m: RunMessage) => void) => {
    const channel = new Channel<RunMessage>();
    channel.onmessage = onMessage;
    return invoke<number>("labeling_next_round", { runId, dataset, onEvent: channel });
  },
  /** `int8`: the model's linear layers in int8 (the scores change a little). */
  predict: (runId: number, texts: string[], int8 = false) => invoke<Predictions>("predict", { runId, texts, int8 }),
  predictChoices: (runId: number, question: string, context: string | null, options: string[], int8 = false) =>
    invoke<Predictions>("predict_choices", { runId, question, context, options, int8 }),
  /** Run `runId`'s language model answers the conversation; the answer streams to `onText`. */
  /** `search`: a text-to-text run's beams (`hone_engine::seq2seq::Search`). */
  chat: (runId: number, messages: ChatTurn[], settings: Partial<GenerationSettings>, onText: (text: string) => void, search?: Search) => {
    const channel = new Channel<{ type: "text"; text: string }>();
    channel.onmessage = (m) => onText(m.text);
    return invoke<Generation>("chat", { runId, messages, chat: true, settings, search: search ?? null, onEvent: channel });
  },
  /** Stops the answer being written (what it has stays). */
  chatStop: () => invoke<boolean>("chat_stop"),
  conversationPreview: (path: string, model: string | null) =>
    invoke<import("./pages/conversations").ConversationPreview>("conversation_preview", { path, model }),
  predictAnswer: (runId: number, question: string, context: string, int8 = false) =>
    invoke<Predictions>("predict_answer", { runId, question, context, int8 }),
  behaviorStarter: (runId: number) => invoke<string>("behavior_starter", { runId }),
  behaviorRun: (runId: number, suite: string, slices: string[]) =>
    invoke<SuiteReport>("behavior_run", { runId, suite, slices }),
  exportRun: (runId: number, dest: string, name: string, merge = false) => invoke<string>("export_run", { runId, dest, name, merge }),
  /** The run's model as ONNX (onnx/model.onnx, with int8 also onnx/model_quantized.onnx). */
  exportRunOnnx: (runId: number, dest: string, name: string, int8: boolean) => invoke<string>("export_run", { runId, dest, name, onnx: true, int8 }),
  /** A decoder run as one GGUF file `name` in `dest` (llama.cpp; f16 or q8_0 matrices). */
  exportRunGguf: (runId: number, dest: string, name: string, gguf: "f16" | "q8_0") => invoke<string>("export_run", { runId, dest, name, gguf }),
  ensembleCreate: (runIds: number[], dest: string, name: string) =>
    invoke<[string, { task: string; members: { source: string }[]; mean: string }, EnsembleRecord]>("ensemble_create", { runIds, dest, name, mean: null }),
};

export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** A parameter count for people: 22.7M, 32.4K. */
export function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

export function duration(s: number): string {
  if (!isFinite(s)) return "–";
  if (s < 1) return "<1 s";
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}
