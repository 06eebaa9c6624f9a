// Train: task, model, dataset, a preset, every option with a short explanation and a safe
// default, the memory estimate; then the live view (charts, progress, ETA, cancel).
import { AnswerSource } from "./answers";
import { ConversationSource } from "./conversations";
import { ChoiceSource, type ChoiceData } from "./choices";
import { SampleAnswers } from "./samples";
import { useEffect, useRef, useState } from "preact/hooks";
import { deviceChoices } from "../devices.js";
import { api, bytes, DatasetInfo, duration, errorText, KnownModel, ModelCheck, Preset, RunDetail, RunMessage, RunRecord, Target, TrainEvent, TrainingOption } from "../api";
import { Chart, Mark, Series } from "../chart";
import { LrFinder } from "./lr_find";
import type { Nav } from "../main";
import { FitTable, modelName, params } from "./models";
import { chartedValues, curveOf, metricLabel, phaseMark, phaseMarks, summary, taskLossCurves, validationSeries } from "../report";
import { Text2TextSource } from "./text2text";

/** The tasks trained from a file rather than a stored dataset, by the Task select's value. */
const FILE_TASKS = { choice: "multiple-choice", answer: "question-answering", chat: "causal-lm", t2t: "text2text" } as const;

type Training = Record<string, any>;

/** The learning rate a scaling preset gives a batch size (as `LrScaling::lr` in Rust). */
const scaledLr = (s: NonNullable<Preset["lr_scaling"]>, batch: number): number =>
  Number(((s.base_lr / Math.max(1, s.reference_batch)) * batch).toPrecision(6));

type Field = {
  key: string; label: string; help: string; kind: "int" | "float" | "bool" | "select" | "optfloat" | "optint" | "text"; options?: string[];
  /** Smallest and largest usable values (numbers); outside them Start stays disabled. */
  min?: number; max?: number; below?: number;
  /** A usable but implausible value: shown next to the field, Start stays enabled. */
  warn?: (n: number) => string | null;
  /** Shown under "More options". */
  advanced?: boolean;
};
/** What the form adds to each option the run configuration type describes (default, help and
 * kind come from Rust: `training_options`): a short label, the checks that keep Start off, and
 * a choice list where the type takes free text. */
type Extra = Partial<Omit<Field, "key" | "help">>;
const EXTRAS: Record<string, Extra> = {
  epochs: { label: "Epochs", min: 1 },
  batch_size: { label: "Batch size", min: 1 },
  max_length: { label: "Max tokens", min: 2 },
  lr: {
    label: "Learning rate",
    warn: (n) => n === 0 ? "A rate of 0 leaves the model as it is." : n >= 1 ? "Far above the usual 1e-5 to 1e-4: training will likely diverge." : n > 1e-2 ? "Unusually high for fine-tuning (usual: 1e-5 to 1e-4)." : null,
  },
  schedule: { label: "Schedule" },
  min_lr_ratio: { advanced: true, label: "Lowest LR share", below: 1 },
  lr_gamma: { advanced: true, label: "LR gamma", max: 1 },
  lr_power: { advanced: true, label: "Polynomial power" },
  lr_cycles: { advanced: true, label: "LR cycles", min: 1 },
  cyclic_mode: { advanced: true, label: "Cyclic mode" },
  warmup_ratio: { label: "Warmup share", max: 1 },
  warmup_steps: { advanced: true, label: "Warmup steps" },
  weight_decay: { label: "Weight decay" },
  clip_norm: { label: "Gradient clip" },
  grad_accum: { label: "Accumulation", min: 1 },
  seed: { label: "Seed" },
  eval_every: { label: "Validate every" },
  checkpoint_every: { advanced: true, label: "Checkpoint every (steps)", min: 1 },
  checkpoint_minutes: { label: "Checkpoint every (min)", below: 1e6 },
  resumable: { advanced: true, label: "Resumable" },
  early_stopping_patience: { label: "Early stopping" },
  early_stopping_metric: { label: "Best by" },
  early_stopping_min_delta: { advanced: true, label: "Min improvement" },
  freeze_embeddings: { label: "Freeze embeddings" },
  freeze_layers: { label: "Freeze layers" },
  layer_lr_decay: { label: "Layer LR decay", max: 1 },
  layer_lr_decay_shape: { advanced: true, label: "Decay shape" },
  head_warmup_steps: { advanced: true, label: "Head-only steps" },
  head_warmup_epochs: { label: "Head-only epochs" },
  unfreeze_every_steps: { advanced: true, label: "Unfreeze a layer every (steps)", min: 1 },
  unfreeze_every_epochs: { label: "Unfreeze a layer every (epochs)", min: 1 },
  dropout: { label: "Dropout", below: 1 },
  label_smoothing: { advanced: true, label: "Label smoothing", min: 0, below: 1 },
  label_all_subtokens: { advanced: true, label: "Tag every sub-token" },
  optimizer: { label: "Optimizer" },
  beta1: { advanced: true, label: "Adam β1", below: 1 },
  beta2: { advanced: true, label: "Adam β2", below: 1 },
  adam_eps: { advanced: true, label: "Adam ε" },
  momentum: { advanced: true, label: "SGD momentum", below: 1 },
  nesterov: { advanced: true, label: "Nesterov" },
  init: { label: "Start from" },
  distill_alpha: { advanced: true, label: "Teacher's share", max: 1 },
  distill_temperature: { advanced: true, label: "Distillation temperature" },
  curriculum: { label: "Curriculum" },
  curriculum_epochs: { advanced: true, label: "Curriculum epochs", min: 1 },
  ewc_lambda: { advanced: true, label: "EWC strength (λ)" },
  ewc_samples: { advanced: true, label: "EWC examples", min: 1 },
  task_temperature: { advanced: true, label: "Task sampling temperature", min: 0.01 },
  device: { label: "Device", kind: "select", options: ["cpu", "auto", "cuda", "metal"] },
  precision: { label: "Precision" },
  loss_scale: { advanced: true, label: "fp16 loss scale", min: 1 },
  peft: { label: "What trains" },
  lora_r: { label: "LoRA rank", min: 1 },
  lora_alpha: { label: "LoRA alpha", min: 0 },
  lora_dropout: { label: "LoRA dropout", below: 1 },
  lora_targets: { label: "LoRA layers" },
  lora_rslora: { advanced: true, label: "rsLoRA scaling" },
  lora_modules_to_save: { advanced: true, label: "Also train in full" },
  adapter_size: { label: "Adapter size", min: 1 },
  adapter_placement: { label: "Adapter placement" },
  adapter_activation: { advanced: true, label: "Adapter activation", kind: "select", options: ["relu", "gelu", "silu", "tanh"] },
  prefix_tokens: { label: "Prefix tokens", min: 1, max: 512 },
  prefix_projection: { advanced: true, label: "Prefix MLP width (0: none)", min: 0 },
  sample_prompts: { label: "Sample prompts" },
  packing: { advanced: true, label: "Pack conversations" },
  sample_tokens: { advanced: true, label: "Sample answer tokens", min: 1, max: 4096 },
};

/** Whether a setting applies to the method the run trains with (`peft`): LoRA's, the
 * bottleneck adapters' and the prefix's own settings show only for their method (modules to
 * save for all three). */
const appliesTo = (key: string, peft: string) =>
  key === "lora_modules_to_save" ? peft === "lora" || peft === "adapter" || peft === "prefix"
    : key.startsWith("lora_") ? peft === "lora"
    : key.startsWith("adapter_") ? peft === "adapter"
    : key.startsWith("prefix_") ? peft === "prefix"
    : true;

/** A doc comment as help text: code marks dropped, `None` said as the empty field it is. */
const helpText = (doc: string) => doc.replace(/`None`/g, "empty").replace(/`([^`]*)`/g, "$1");

/** The form's fields, in the order of the run configuration type. */
function fieldsOf(options: TrainingOption[]): Field[] {
  return options.map((o) => {
    const kind: Field["kind"] = o.kind === "choice" ? "select" : o.kind === "bool" ? "bool" : o.kind === "text" ? "text"
      : o.kind === "int" ? (o.optional ? "optint" : "int") : o.optional ? "optfloat" : "float";
    const label = o.key.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
    return { key: o.key, label, help: helpText(o.help), kind, options: o.choices, ...EXTRAS[o.key] } as Field;
  });
}

/** The task a stored dataset trains: tagged sentences a token classifier, texts a classifier. */
const datasetTaskOf = (d: DatasetInfo | undefined): string =>
  d?.task === "token_classification" ? "token-classification" : "sequence-classification";

/** The run configuration type's defaults. */
const defaultsOf = (options: TrainingOption[]): Training => Object.fromEntries(options.map((o) => [o.key, o.default]));

type Live = {
  runId: number; status: string; error: string | null; step: number; total: number; eta: number; epoch: number;
  loss: Series; lr: Series; grad: Series; speed: Series; evals: Record<string, Series>; lastEval: any; notices: string[];
  /** Multi-task runs: each task's training loss, from the steps that trained it. */
  taskLoss: Record<string, Series>;
  best?: { step: number; report: any } | null;
  /** Steps where the trained parameters changed (head-only warm start, gradual unfreezing). */
  phases: Mark[];
  /** A causal-LM run's latest answers to its sample prompts. */
  samples?: { step: number; samples: { prompt: string; text: string }[] } | null;
};

function emptySeries(label: string): Series { return { label, x: [], y: [] }; }

// The run being watched lives outside the page, so leaving Train and coming back (or resuming
// from Runs) shows the same live view.
let liveRun: Live | null = null;
const listeners = new Set<(l: Live | null) => void>();
// Events apply at once; the page redraws at most every 500 ms, however fast they come (its
// charts at most once a second).
let redraw: ReturnType<typeof setTimeout> | null = null;
function setLive(update: (l: Live | null) => Live | null) {
  liveRun = update(liveRun);
  if (redraw !== null) return;
  redraw = setTimeout(() => {
    redraw = null;
    listeners.forEach((f) => f(liveRun));
  }, 500);
}
function useLive(): Live | null {
  const [l, setL] = useState(liveRun);
  useEffect(() => {
    listeners.add(setL);
    return () => { listeners.delete(setL); };
  }, []);
  return l;
}

function freshLive(runId: number): Live {
  return {
    runId, status: "running", error: null, step: 0, total: 0, eta: NaN, epoch: 0,
    loss: emptySeries("loss"), lr: emptySeries("lr"), grad: emptySeries("grad norm"), speed: emptySeries("samples/s"), evals: {}, lastEval: null, notices: [], phases: [], taskLoss: {},
  };
}

function onRunMessage(m: RunMessage) {
  if (m.type === "events") setLive((l) => applyEvents(l && l.runId === m.run_id ? l : freshLive(m.run_id), m.events));
  else setLive((l) => ({ ...(l && l.runId === m.run_id ? l : freshLive(m.run_id)), status: m.status, error: m.error }));
}

/** The curves a run has so far, from the store: a resumed run's live view continues them. */
export function liveFromHistory(d: RunDetail): Live {
  const rows = [...d.metrics].sort((a, b) => a.step - b.step);
  const live = {
    ...freshLive(d.run.id),
    loss: curveOf(rows, "loss", "loss"), lr: curveOf(rows, "lr", "lr"),
    grad: curveOf(rows, "grad_norm", "grad norm"), speed: curveOf(rows, "samples_per_s", "samples/s"),
  };
  for (const [name, label] of validationSeries(new Set(rows.map((m) => m.name)))) {
    const key = name.replace(/^eval_/, "");
    const s = curveOf(rows, name, key.includes("/") ? label : metricLabel(key));
    if (s.x.length > 0) live.evals[key] = s;
  }
  live.taskLoss = taskLossCurves(rows);
  live.phases = phaseMarks(rows);
  live.step = d.run.step;
  live.total = d.run.total_steps ?? 0;
  const lastSamples = d.samples.length ? d.samples[d.samples.length - 1].step : null;
  if (lastSamples != null) {
    live.samples = { step: lastSamples, samples: d.samples.filter((s) => s.step === lastSamples).map((s) => ({ prompt: s.prompt, text: s.answer })) };
  }
  return live;
}

/** Continues an interrupted run and watches it on the Train page, its curves so far included. */
export async function resumeRun(id: number) {
  let start = freshLive(id);
  try { start = liveFromHistory(await api.runShow(id)); } catch { /* the live events still come */ }
  setLive(() => start);
  await api.trainResume(id, onRunMessage);
}

/** Drops the points at or after `step`: a resumed run repeats the steps after its checkpoint. */
function cutFrom(s: Series, step: number) {
  while (s.x.length > 0 && s.x[s.x.length - 1] >= step) { s.x.pop(); s.y.pop(); }
}

export function applyEvents(live: Live, events: TrainEvent[]): Live {
  const next = { ...live, loss: { ...live.loss }, lr: { ...live.lr }, grad: { ...live.grad }, speed: { ...live.speed }, evals: { ...live.evals }, notices: [...live.notices], phases: [...live.phases], taskLoss: { ...live.taskLoss } };
  const push = (s: Series, x: number, y: number) => { s.x.push(x); s.y.push(y); };
  for (const e of events) {
    if (e.event === "step") {
      for (const s of [next.loss, next.lr, next.grad, next.speed]) cutFrom(s, e.step);
      push(next.loss, e.step, e.loss); push(next.lr, e.step, e.lr); push(next.grad, e.step, e.grad_norm); push(next.speed, e.step, e.samples_per_s);
      if (typeof e.task === "string") {
        const s = { ...(next.taskLoss[e.task] ?? emptySeries(`${e.task} loss`)) };
        cutFrom(s, e.step);
        push(s, e.step, e.loss);
        next.taskLoss[e.task] = s;
      }
      next.step = e.step; next.total = e.total_steps; next.eta = e.eta_s; next.epoch = e.epoch;
    } else if (e.event === "started") {
      next.total = e.total_steps;
    } else if (e.event === "evaluated") {
      for (const [k, label, value] of chartedValues(e.report)) {
        const s = { ...(next.evals[k] ?? emptySeries(label)) };
        cutFrom(s, e.step);
        push(s, e.step, value);
        next.evals[k] = s;
      }
      next.lastEval = e.report;
    } else if (e.event === "samples") {
      next.samples = { step: e.step, samples: e.samples };
    } else if (e.event === "finished" && e.best) {
      next.best = { step: e.best_step, report: e.best };
    } else if (e.event === "notice") {
      next.notices.push(e.message);
    } else if (e.event === "phase_changed") {
      next.phases = [...next.phases.filter((m) => m.x < e.step), phaseMark(e.step, e.params_trainable)];
    }
  }
  return next;
}

export function LiveView(props: { live: Live; onCancel: () => void; nav: Nav }) {
  const l = props.live;
  const running = l.status === "running";
  return (
    <article class="card" data-testid="live" data-run={l.runId} data-status={l.status} data-step={l.step}>
      <h2>Run {l.runId} · {l.status}</h2>
      {l.error && <div class="error">{l.error}</div>}
      {l.notices.map((n) => <div class="notice">{n}</div>)}
      <div class="row">
        <progress value={l.step} max={l.total || 1} />
        <span class="small">step {l.step} of {l.total} · epoch {l.epoch.toFixed(2)}{running ? ` · ETA ${duration(l.eta)}` : ""}</span>
        {running ? <button onClick={props.onCancel}>Cancel</button> : <button onClick={() => props.nav("runs", l.runId)}>Open in Runs</button>}
      </div>
      {l.best && <p class="ok">Best checkpoint (exported): step {l.best.step} · {summary(l.best.report)}</p>}
      {l.lastEval && <p class="small" data-testid="last-eval">Last validation: {summary(l.lastEval)}</p>}
      {l.samples && <SampleAnswers step={l.samples.step} samples={l.samples.samples.map((s) => ({ prompt: s.prompt, answer: s.text }))} />}
      <div class="grid2">
        <Chart title="Training loss" series={Object.keys(l.taskLoss).length > 0 ? Object.values(l.taskLoss) : [l.loss]} testId="chart-loss" marks={l.phases} />
        {Object.keys(l.evals).length > 0
          ? <Chart title="Validation" series={Object.values(l.evals)} testId="chart-valid" yLabel="score" />
          : <div class="chart-placeholder muted small">Validation scores appear here after the first validation.</div>}
        <Chart title="Learning rate" series={[l.lr]} marks={l.phases} testId="chart-lr" />
        <Chart title="Gradient norm" series={[l.grad]} />
        <Chart title="Samples / s" series={[l.speed]} />
      </div>
    </article>
  );
}

/** What is wrong with the text typed into a number field, or null when it can be used. */
export function numberProblem(f: Pick<Field, "kind" | "min" | "max" | "below">, raw: string): string | null {
  const t = raw.trim();
  if (t === "") return f.kind.startsWith("opt") ? null : "Enter a number.";
  const n = Number(t);
  if (!isFinite(n)) return `"${t}" is not a number.`;
  if (f.kind.endsWith("int") && !Number.isInteger(n)) return "Enter a whole number.";
  const min = f.min ?? 0;
  if (n < min) return min === 0 ? "Must not be negative." : `Must be at least ${min}.`;
  if (f.max != null && n > f.max) return `Must be at most ${f.max}.`;
  if (f.below != null && n >= f.below) return `Must be below ${f.below}.`;
  return null;
}

/** A number field that keeps what is typed, valid or not (empty means "off" for optional
 * settings): invalid text stays visible and marked, is reported through `onProblem` and is not
 * applied, so Start can wait for it. A new value from outside (a preset) replaces the text
 * unless the field is being edited; the page remounts the fields to reset them all. */
function NumberInput(props: { field: Field; value: number | null; onCommit: (n: number | null) => void; onProblem: (p: string | null) => void }) {
  const [text, setText] = useState(props.value == null ? "" : String(props.value));
  const editing = useRef(false);
  useEffect(() => {
    if (editing.current) return;
    setText(props.value == null ? "" : String(props.value));
    props.onProblem(null);
  }, [props.value]);
  const problem = numberProblem(props.field, text);
  return (
    <input value={text} inputMode="decimal" class={problem ? "invalid" : ""} aria-invalid={!!problem}
      onFocus={() => { editing.current = true; }}
      onBlur={() => { editing.current = false; }}
      onInput={(e) => {
        const raw = (e.target as HTMLInputElement).value;
        setText(raw);
        const p = numberProblem(props.field, raw);
        props.onProblem(p);
        if (!p) props.onCommit(raw.trim() === "" ? null : Number(raw.trim()));
      }} />
  );
}

export function TrainPage(props: { preset: any; nav: Nav }) {
  const [models, setModels] = useState<KnownModel[]>([]);
  // Both lists have arrived: "no model / no dataset yet" is not said while they load.
  const [listed, setListed] = useState(false);
  const [datasets, setDatasets] = useState<DatasetInfo[]>([]);
  const [model, setModel] = useState<string>(props.preset?.model ?? "");
  const [dataset, setDataset] = useState<string>(props.preset?.dataset ?? "");
  const [split, setSplit] = useState<string>("");
  // Multiple choice trains from a file of questions instead of a stored dataset.
  // …and question answering from a SQuAD file.
  const [fileTask, setFileTask] = useState<"" | "choice" | "answer" | "chat" | "t2t">("");
  const choice = fileTask !== "";
  const [choiceData, setChoiceData] = useState<{ data: ChoiceData; questions: number } | null>(null);
  // The options, their defaults and help, from the run configuration type.
  const [options, setOptions] = useState<TrainingOption[] | null>(null);
  const fields = options ? fieldsOf(options) : [];
  const defaults = options ? defaultsOf(options) : {};
  const [training, setTraining] = useState<Training>({});
  const [name, setName] = useState("");
  // Where the run trains: here (""), or a compute target added with `hone target add`.
  const [targets, setTargets] = useState<Target[]>([]);
  const [target, setTarget] = useState("");
  useEffect(() => { api.targetsList().then(setTargets).catch(() => setTargets([])); }, []);
  // This machine's GPUs, each a Device choice of its own (cuda:0, cuda:1 …).
  const [machine, setMachine] = useState<any>(null);
  useEffect(() => { api.appInfo().then((i) => setMachine(i.machine)).catch(() => setMachine(null)); }, []);
  // Finished runs: a teacher to distill from, or a previous task to hold on to (EWC).
  const [finished, setFinished] = useState<RunRecord[]>([]);
  const [teacher, setTeacher] = useState("");
  const [previous, setPrevious] = useState("");
  // Multi-task learning: other stored datasets trained on the same encoder, a head each.
  const [also, setAlso] = useState<string[]>([]);
  const [check, setCheck] = useState<ModelCheck | null>(null);
  const [error, setError] = useState<string | null>(null);
  // Fields whose typed text cannot be used, with why: Start waits until there are none.
  const [problems, setProblems] = useState<Record<string, string>>({});
  // Bumped by presets and Defaults: the number fields remount with the new values.
  const [formVersion, setFormVersion] = useState(0);
  // The preset the settings came from, until one is changed by hand.
  const [preset, setPreset] = useState<string | null>("defaults");
  // The presets (from Rust); the active one's rate may follow the batch size.
  const [presets, setPresets] = useState<Preset[]>([]);
  const activePreset = presets.find((p) => p.key === preset);
  const resetTo = (values: Training, from: string | null) => { setTraining(values); setProblems({}); setFormVersion((v) => v + 1); setPreset(from); };
  const live = useLive();
  // The finished runs, again whenever the form comes back (a run may have just finished).
  useEffect(() => {
    if (live) return;
    api.runsList().then((runs) => setFinished(runs.filter((r) => r.status === "completed" && !r.config?.ensemble))).catch(() => { /* no teachers to offer */ });
  }, [live === null]);

  useEffect(() => {
    api.trainingOptions().then((o) => { setOptions(o); setTraining(defaultsOf(o)); setFormVersion((v) => v + 1); }).catch((e) => setError(errorText(e)));
    api.trainingPresets().then(setPresets).catch((e) => setError(errorText(e)));
    Promise.all([
      api.modelsList().then((m) => { setModels(m); if (!model && m.length) setModel(m[0].reference); }),
      api.datasetsList().then((d) => { setDatasets(d); if (!dataset && d.length) setDataset(d[0].name); }),
    ]).then(() => setListed(true)).catch((e) => setError(errorText(e)));
  }, []);
  // The dataset's real lengths in the model's tokens: the speed estimate follows them (the CPU
  // path skips padding), the memory estimate stays sized for the longest batch.
  const [typical, setTypical] = useState<number | null>(null);
  useEffect(() => {
    setTypical(null);
    if (!model || !dataset || choice) return;
    let stale = false;
    api.datasetTokenLengths(dataset, model, Number(training.max_length) || 128)
      .then((l) => { if (!stale && l.examples > 0) setTypical(Math.max(1, Math.round(l.mean))); })
      .catch(() => { /* the estimate then assumes full length */ });
    return () => { stale = true; };
  }, [model, dataset, choice, training.max_length]);
  useEffect(() => {
    if (!model) return;
    const labels = datasets.find((d) => d.name === dataset)?.label_names.length ?? 2;
    const lora_rank = training.peft === "lora" ? Math.max(1, Number(training.lora_r) || 8) : null;
    api.modelCheck(model, { batch_size: Number(training.batch_size), max_length: Number(training.max_length), num_labels: Math.max(2, labels), typical_length: typical, lora_rank, autograd: training.precision ?? "fp32", device: training.device ?? "cpu", target_length: Number(training.max_target_length) || null })
      .then(setCheck).catch(() => setCheck(null));
  }, [model, dataset, training.batch_size, training.max_length, typical, training.peft, training.lora_r, training.precision, training.device, training.max_target_length]);
  const ds = datasets.find((d) => d.name === dataset);
  const datasetTask = ds?.task === "token_classification" ? "token" : "text";
  // Training examples per epoch, roughly: the labeled rows less the held-out 10%, or about 80%
  // with a stored split (its default train share).
  const trainExamples = choice
    ? Math.round((choiceData?.questions ?? 0) * 0.9)
    : Math.round((ds?.labeled ?? 0) * (split ? 0.8 : 0.9));

  const set = (key: string, value: any) => {
    const scaling = activePreset?.lr_scaling;
    if (key === "batch_size" && scaling && typeof value === "number") {
      // The preset's rate follows the new batch size; the preset stays.
      setTraining((t) => ({ ...t, batch_size: value, lr: scaledLr(scaling, value) }));
      setFormVersion((v) => v + 1);
      return;
    }
    setTraining((t) => ({ ...t, [key]: value })); setPreset(null);
  };
  const applyPreset = (p: Preset) => {
    const values: Training = { ...defaults, ...training, ...p.values };
    if (p.lr_scaling) values.lr = scaledLr(p.lr_scaling, Number(values.batch_size) || 16);
    resetTo(values, p.key);
  };
  const field = (f: Field) => {
    const v = training[f.key];
    const input = f.kind === "bool" ? (
      <input type="checkbox" checked={!!v} onChange={(e) => set(f.key, (e.target as HTMLInputElement).checked)} />
    ) : f.kind === "select" ? (
      <select value={v} onChange={(e) => set(f.key, (e.target as HTMLSelectElement).value)}>
        {f.key === "device"
          ? deviceChoices(f.options!, machine, v, bytes).map((c) => <option value={c.value}>{c.label}</option>)
          : f.options!.map((o) => <option value={o}>{o}</option>)}
      </select>
    ) : f.key === "sample_prompts" ? (
      <textarea rows={3} value={v ?? ""} placeholder="one prompt per line: answered at each validation"
        onChange={(e) => set(f.key, (e.target as HTMLTextAreaElement).value)} />
    ) : f.kind === "text" ? (
      <input type="text" value={v ?? ""} placeholder={f.key === "lora_targets" ? "the family's usual (query,value)" : ""}
        onChange={(e) => set(f.key, (e.target as HTMLInputElement).value)} />
    ) : (
      <NumberInput field={f} value={v} onCommit={(n) => set(f.key, n)}
        onProblem={(p) => setProblems((all) => {
          if ((all[f.key] ?? null) === p) return all;
          const next = { ...all };
          if (p) next[f.key] = p; else delete next[f.key];
          return next;
        })} />
    );
    const problem = problems[f.key];
    const warning = !problem && typeof v === "number" ? f.warn?.(v) : null;
    return (
      <label class="field" data-field={f.key}>
        <span>{f.label}</span>{input}
        {problem ? <small class="field-error" role="alert">{problem}</small>
          : warning ? <small class="field-warn">{warning}</small>
          : <small class="muted">{f.help}</small>}
      </label>
    );
  };

  /** The run configuration of the form, or null (with the reason shown) when it is not ready. */
  const runConfig = (): any | null => {
    setError(null);
    if (!model || (choice ? !choiceData : !dataset)) { setError(choice ? "Choose a model and a file of questions first." : "Choose a model and a dataset first."); return null; }
    if (Object.keys(problems).length > 0) { setError("Some settings cannot be used yet; they are marked in red."); return null; }
    const refs = { ...(teacher ? { teacher } : {}), ...(previous ? { ewc: { from: previous } } : {}) };
    const others = also.filter((a) => a !== dataset && datasets.some((d) => d.name === a));
    if (others.length > 0 && (teacher || previous || (training.curriculum && training.curriculum !== "off"))) {
      setError("A multi-task run cannot take a teacher, a task not to forget or a curriculum yet: clear them or the other tasks.");
      return null;
    }
    const alsoTasks = others.map((a) => ({ task: datasetTaskOf(datasets.find((d) => d.name === a)), data: { dataset: a } }));
    return choice && choiceData
      ? { task: FILE_TASKS[fileTask as keyof typeof FILE_TASKS], model, data: choiceData.data, training, ...refs }
      : { model, data: { dataset, ...(split ? { split } : {}) }, training, ...refs, ...(alsoTasks.length > 0 ? { also: alsoTasks } : {}) };
  };
  const runLabel = (r: RunRecord) => `run ${r.id}${r.name ? ` · ${r.name}` : ""}`;
  const task = fileTask ? FILE_TASKS[fileTask] : datasetTask === "token" ? "token-classification" : "sequence-classification";
  // A causal LM's sample prompts and packing show only for a causal-LM run.
  const causalOnly = (key: string) => key.startsWith("sample_") || key === "packing" || key === "chat_template" || key === "loss_on";
  // Extractive QA's windows and answer length show only for question answering.
  const answersOnly = (key: string) => key === "doc_stride" || key === "max_answer_length";
  // A text-to-text run's prefix, target length and validation generations show only for it.
  const text2textOnly = (key: string) => key === "source_prefix" || key === "max_target_length" || key === "generate_examples" || key === "rouge_stemmer";
  // The encoder recipes (head-only warm start, layer-wise decay) are not for generating models.
  const languageTask = task === "causal-lm" || task === "text2text";
  // Label smoothing needs rows of real classes: not multiple choice, not answer spans.
  const smoothingApplies = task !== "multiple-choice" && task !== "question-answering";
  const shownFields = fields.filter((f) => appliesTo(f.key, String(training.peft ?? "full"))
    && (!causalOnly(f.key) || task === "causal-lm") && (!answersOnly(f.key) || task === "question-answering")
    && (!text2textOnly(f.key) || task === "text2text") && (f.key !== "label_smoothing" || smoothingApplies));
  const runTask = (r: RunRecord) => r.config?.task ?? "sequence-classification";
  // Distillation covers classification and multiple choice, with a teacher of the same task.
  const teachers = task === "sequence-classification" || task === "multiple-choice" ? finished.filter((r) => runTask(r) === task) : [];
  const previousTasks = task === "sequence-classification" ? finished.filter((r) => runTask(r) === "sequence-classification") : [];

  const start = async () => {
    const config = runConfig();
    if (!config) return;
    try {
      if (target) {
        const id = await api.trainSubmit(config, name || null, target);
        setName("");
        props.nav("runs", id);
        return;
      }
      const id = await api.trainStart(config, name || null, onRunMessage);
      setName("");
      setLive((l) => (l && l.runId === id ? l : freshLive(id)));
    } catch (e) { setError(errorText(e)); }
  };

  if (live) return (
    <section>
      <h1>Train</h1>
      <LiveView live={live} nav={props.nav} onCancel={() => api.trainCancel(live.runId)} />
      {live.status !== "running" && <button onClick={() => setLive(() => null)}>New run</button>}
    </section>
  );

  return (
    <section>
      <h1>Train</h1>
      {error && <div class="error" role="alert">{error}</div>}
      {listed && !choice && (models.length === 0 || datasets.length === 0) && (
        <div class="notice">
          {models.length === 0 && <>No model yet: <button onClick={() => props.nav("models")}>get one</button>. </>}
          {datasets.length === 0 && <>No dataset yet: <button onClick={() => props.nav("datasets")}>import one</button>.</>}
        </div>
      )}
      <div class="row">
        <label title="Classification follows the dataset (tagged sentences train a token classifier); multiple choice and question answering train from a file of questions">Task <select id="train-task" data-task={fileTask || datasetTask} value={fileTask || datasetTask}
          onChange={(e) => { const v = (e.target as HTMLSelectElement).value; setFileTask(v in FILE_TASKS ? v as keyof typeof FILE_TASKS : ""); setChoiceData(null); }}>
          <option value="text" disabled={datasetTask !== "text"}>Text classification</option>
          <option value="token" disabled={datasetTask !== "token"}>Token classification (named entities)</option>
          <option value="choice">Multiple choice (questions from a file)</option>
          <option value="answer">Question answering (SQuAD file)</option>
          <option value="chat">Causal LM: chat / instruction tuning (a decoder such as SmolLM2 or Qwen2)</option>
          <option value="t2t">Text to text: summaries, translation (an encoder–decoder such as T5 or Flan-T5)</option>
        </select></label>
        <label>Model <select id="train-model" value={model} onChange={(e) => setModel((e.target as HTMLSelectElement).value)}>
          {models.map((m) => <option value={m.reference} title={m.path}>{modelName(m)}</option>)}
        </select></label>
        {!choice && <label>Dataset <select id="train-dataset" value={dataset} onChange={(e) => setDataset((e.target as HTMLSelectElement).value)}>
          {datasets.map((d) => <option value={d.name}>{d.name} ({d.labeled} labeled)</option>)}
        </select></label>}
        {!choice && <label>Split <select value={split} onChange={(e) => setSplit((e.target as HTMLSelectElement).value)}>
          <option value="">hold out 10%</option>
          {(ds?.splits ?? []).map((s) => <option value={s}>{s}</option>)}
        </select></label>}
        <label>Run name <input id="run-name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} placeholder="optional" /></label>
      </div>
      {fileTask === "choice" && <ChoiceSource model={model} maxLength={Number(training.max_length) || 128} onChange={setChoiceData} />}
      {fileTask === "chat" && <ConversationSource model={model} onChange={setChoiceData} />}
      {fileTask === "t2t" && <Text2TextSource prefix={String(training.source_prefix ?? "")} onChange={setChoiceData} />}
      {fileTask === "answer" && <AnswerSource model={model} maxLength={Number(training.max_length) || 128} stride={Number(training.doc_stride) || 32} onChange={setChoiceData} />}
      <div class="row">
        {presets.filter((p) => p.key !== "kaggle-mc" || !languageTask).map((p) => (
          <button data-preset={p.key} title={p.help} aria-pressed={preset === p.key} class={preset === p.key ? "active" : ""} onClick={() => applyPreset(p)}>{p.label}</button>
        ))}
        <button class="ghost" aria-pressed={preset === "defaults"} onClick={() => resetTo({ ...defaults }, "defaults")}>Defaults</button>
        <span class="muted small" data-testid="preset">{preset == null ? "custom settings" : preset === "defaults" ? "defaults" : `preset: ${activePreset?.label ?? preset}`}</span>
      </div>
      {!choice && datasets.length > 1 && (
        <div class="row" data-testid="also-train">
          <span title="Multi-task learning: one encoder with a head per dataset; each step trains one task, drawn in proportion to its size (the sampling temperature under More options evens them out). Each head is exported to its own folder.">
            Also train (multi-task):
          </span>
          {datasets.filter((d) => d.name !== dataset).map((d) => (
            <label data-also={d.name}>
              <input type="checkbox" checked={also.includes(d.name)}
                onChange={(e) => { const on = (e.target as HTMLInputElement).checked; setAlso((a) => on ? [...a.filter((x) => x !== d.name), d.name] : a.filter((x) => x !== d.name)); }} />
              {d.name} <span class="muted small">({d.task === "token_classification" ? "entities" : "classes"})</span>
            </label>
          ))}
          {also.filter((a) => a !== dataset).length > 0 && <span class="muted small" data-testid="multi-task-note">one encoder, {1 + also.filter((a) => a !== dataset).length} heads: each exported to its own folder</span>}
        </div>
      )}
      {(teachers.length > 0 || previousTasks.length > 0) && (
        <div class="row" data-testid="learn-from">
          {teachers.length > 0 && (
            <label title="Knowledge distillation: the run also learns the teacher's softened probabilities (its share and temperature are under More options); a loss curriculum orders examples by the teacher's loss">
              Teacher <select id="train-teacher" value={teacher} onChange={(e) => setTeacher((e.target as HTMLSelectElement).value)}>
                <option value="">none</option>
                {teachers.map((r) => <option value={String(r.id)}>{runLabel(r)}</option>)}
              </select>
            </label>
          )}
          {previousTasks.length > 0 && (
            <label title="Elastic weight consolidation: continue from a finished run's model (choose it as the model) and hold the weights its task needed, so it is not forgotten">
              Don't forget <select id="train-previous" value={previous} onChange={(e) => setPrevious((e.target as HTMLSelectElement).value)}>
                <option value="">nothing</option>
                {previousTasks.map((r) => <option value={String(r.id)}>{runLabel(r)}</option>)}
              </select>
            </label>
          )}
          {previous && <span class="muted small" data-testid="continues-from">continues from run {previous}'s model, holding what its task needed</span>}
        </div>
      )}
      {activePreset?.lr_scaling && (
        <p class="muted small" data-testid="lr-scaling">
          {activePreset.help} Learning rate {activePreset.lr_scaling.base_lr} / {activePreset.lr_scaling.reference_batch} × batch {training.batch_size} = <strong>{training.lr}</strong> (it follows the batch size).
        </p>
      )}
      {training.peft === "lora" && check?.fit && (
        <p class="muted small" data-testid="lora-summary">
          LoRA trains {params(check.fit.lora.estimate.trainable_parameters)} of {params(check.fit.full.estimate.parameters)} parameters
          ({(100 * check.fit.lora.estimate.trainable_parameters / Math.max(1, check.fit.full.estimate.parameters)).toFixed(2)}%):
          gradients and AdamW state {bytes(check.fit.lora.estimate.gradients + check.fit.lora.estimate.optimizer)} instead
          of {bytes(check.fit.full.estimate.gradients + check.fit.full.estimate.optimizer)}. The run exports a PEFT adapter
          (Playground & Export can also merge it into a full model).
        </p>
      )}
      <div class="fields" key={formVersion} data-testid="fields">{shownFields.filter((f) => !f.advanced).map(field)}</div>
      <details class="more-options" key={`more-${formVersion}`}>
        <summary>More options ({shownFields.filter((f) => f.advanced).length}): schedule shape, warmup steps, checkpoints, early-stopping delta, decay shape, unfreezing by steps, optimizer settings…</summary>
        <div class="fields">{shownFields.filter((f) => f.advanced).map(field)}</div>
      </details>
      {training.init === "random" && (
        <div class="notice" data-testid="scratch-warning">
          Training from scratch: the model starts from random weights (only its config.json is used), so it knows nothing
          about language yet. Expect to need far more data and steps than fine-tuning for a useful model.
        </div>
      )}
      {check && !check.trainable && <div class="error">{check.problems.join("; ")}</div>}
      {check && <FitTable fit={check.fit} plan={{ examples: trainExamples, epochs: Math.max(1, Number(training.epochs) || 1) }} />}
      <LrFinder config={runConfig} disabled={!options || !model || (choice ? !choiceData : !dataset) || Object.keys(problems).length > 0}
        onUse={(lr) => { setTraining((t) => ({ ...t, lr })); setPreset(null); setFormVersion((v) => v + 1); }} />
      <div class="row start-bar">
        {targets.length > 0 && (
          <label title="Where the run trains: this machine, or a Slurm cluster added with `hone target add` (its curves arrive every few seconds)">
            Run on{" "}
            <select id="run-target" value={target} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)}>
              <option value="">this machine</option>
              {targets.map((t) => <option value={t.name}>{t.name} (Slurm{t.settings.ssh ? ` via ${t.settings.ssh}` : ""})</option>)}
            </select>
          </label>
        )}
        <button id="start" class="primary" onClick={start} disabled={!options || !model || (choice ? !choiceData : !dataset) || Object.keys(problems).length > 0}>{target ? `Submit to ${target}` : "Start training"}</button>
        {Object.keys(problems).length > 0 && (
          <span class="field-error" data-testid="start-blocked">
            Fix {Object.keys(problems).map((k) => fields.find((f) => f.key === k)?.label ?? k).join(", ")} first.
          </span>
        )}
      </div>
    </section>
  );
}
