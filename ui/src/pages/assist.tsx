// The model helps label: a finished run pre-labels the unlabeled examples and orders them by
// how unsure it is (or at random, the control); "Next round" trains on the labels so far,
// continuing from that run, then re-scores the queue; the chart shows each round's score
// against the labels it had.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, CurvePoint, DatasetInfo, errorText, RunMessage, RunRecord, Strategy, Suggestion } from "../api";
import { Chart } from "../chart";

/** The scored queue: suggestions in the order to label them. */
export type Queue = { runId: number; strategy: Strategy; unlabeled: number; scored: number; order: Suggestion[]; byId: Map<number, Suggestion> };

const STRATEGIES: [Strategy, string][] = [
  ["margin", "Margin (two classes close)"],
  ["least-confidence", "Least confidence"],
  ["entropy", "Entropy"],
  ["random", "Random (control)"],
];

/** At most this many unlabeled examples are scored (a seeded sample of larger datasets). */
const POOL = 10000;

const RUN_TASK: Record<string, string> = { classification: "sequence-classification", token_classification: "token-classification" };

/** Completed runs that can pre-label a dataset of `task`: those trained on `dataset` first,
 * newest first. A run on a stored dataset has that dataset's task (its configuration's `task`
 * is only set for runs on files). */
export function helperRuns(runs: RunRecord[], datasets: DatasetInfo[], dataset: string, task: string): RunRecord[] {
  const wanted = RUN_TASK[task] ?? task;
  const taskOf = (r: RunRecord): string => {
    const stored = datasets.find((d) => d.name === r.config?.data?.dataset);
    return stored ? RUN_TASK[stored.task] ?? stored.task : r.config?.task ?? "sequence-classification";
  };
  const onThis = (r: RunRecord) => r.config?.data?.dataset === dataset;
  return runs
    // An ensemble's record trains nothing (a next round needs one run's recipe).
    .filter((r) => r.status === "completed" && !r.config?.ensemble && taskOf(r) === wanted)
    .sort((a, b) => Number(onThis(b)) - Number(onThis(a)) || b.id - a.id);
}

export function AssistPanel(props: { dataset: string; task: string; onQueue: (q: Queue | null) => void }) {
  const [runs, setRuns] = useState<RunRecord[]>([]);
  const [runId, setRunId] = useState<number | null>(null);
  const [strategy, setStrategy] = useState<Strategy>("margin");
  const [progress, setProgress] = useState<{ done: number; total: number } | null>(null);
  const [round, setRound] = useState<{ id: number | null; step: number; total: number } | null>(null);
  const [curve, setCurve] = useState<CurvePoint[]>([]);
  const [active, setActiveState] = useState<Queue | null>(null);
  // The round's end handler outlives the render that started it: it reads the queue here.
  const activeRef = useRef<Queue | null>(null);
  const setActive = (q: Queue | null) => { activeRef.current = q; setActiveState(q); };
  const [error, setError] = useState<string | null>(null);

  const loadRuns = async (prefer?: number) => {
    const [all, datasets] = await Promise.all([api.runsList(), api.datasetsList()]);
    const list = helperRuns(all, datasets, props.dataset, props.task);
    setRuns(list);
    setRunId((id) => prefer ?? (id !== null && list.some((r) => r.id === id) ? id : list[0]?.id ?? null));
  };
  const loadCurve = async () => { try { setCurve(await api.labelingCurve(props.dataset)); } catch (e) { setError(errorText(e)); } };
  useEffect(() => { loadRuns().catch((e) => setError(errorText(e))); loadCurve(); setActive(null); }, [props.dataset, props.task]);

  const score = async (id = runId, how = strategy) => {
    if (id === null) return;
    setError(null);
    setProgress({ done: 0, total: 0 });
    try {
      const s = await api.labelingSuggest(props.dataset, id, how, POOL, setProgress);
      const q: Queue = { runId: id, strategy: how, unlabeled: s.unlabeled, scored: s.scored, order: s.suggestions, byId: new Map(s.suggestions.map((x) => [x.example_id, x])) };
      setActive(q);
      props.onQueue(q);
    } catch (e) {
      if ((e as any)?.kind !== "cancelled") setError(errorText(e));
    } finally { setProgress(null); }
  };
  const stop = () => { setActive(null); props.onQueue(null); };

  const onRound = (m: RunMessage) => {
    if (m.type === "events") {
      for (const e of m.events) {
        if (e.event === "started") setRound((r) => ({ id: m.run_id, step: 0, total: e.total_steps, ...(r ? { step: r.step } : {}) }));
        if (e.event === "step") setRound({ id: m.run_id, step: e.step, total: e.total_steps });
      }
    } else {
      setRound(null);
      if (m.status === "completed") {
        loadRuns(m.run_id);
        loadCurve();
        const q = activeRef.current;
        if (q) score(m.run_id, q.strategy);
      } else {
        setError(m.error ? `The round failed: ${m.error}` : `The round ended ${m.status}.`);
      }
    }
  };
  const nextRound = async () => {
    if (runId === null) return;
    setError(null);
    setRound({ id: null, step: 0, total: 0 });
    try { await api.labelingNextRound(runId, props.dataset, onRound); } catch (e) { setRound(null); setError(errorText(e)); }
  };

  const metric = props.task === "token_classification" ? "entity F1" : "accuracy";
  return (
    <section class="card assist" data-testid="assist">
      <div class="row">
        <strong>Model help</strong>
        {runs.length === 0 ? (
          <span class="muted small" data-testid="assist-empty">Train a run on the labels you have (even a few dozen) and it will pre-label the rest, least sure first.</span>
        ) : (
          <>
            <select aria-label="Suggestions from run" value={runId ?? ""} onChange={(e) => setRunId(Number((e.target as HTMLSelectElement).value))}>
              {runs.map((r) => <option value={r.id}>Run {r.id}{r.name ? ` · ${r.name}` : ""}</option>)}
            </select>
            <select aria-label="Order" value={strategy} onChange={(e) => setStrategy((e.target as HTMLSelectElement).value as Strategy)}>
              {STRATEGIES.map(([v, l]) => <option value={v}>{l}</option>)}
            </select>
            {progress ? (
              <>
                <progress value={progress.done} max={progress.total || 1} data-testid="scoring" />
                <span class="small">scoring {progress.done} of {progress.total}</span>
                <button onClick={() => api.labelingCancel()}>Cancel</button>
              </>
            ) : (
              <button class={active ? "" : "primary"} onClick={() => score()} data-testid="suggest">{active ? "Re-score" : "Suggest labels"}</button>
            )}
            {active && !progress && <button class="ghost" onClick={stop}>Stop suggesting</button>}
            {round ? (
              <span class="small" data-testid="round">next round: step {round.step} of {round.total || "…"}</span>
            ) : (
              <button onClick={nextRound} title="Train on every label so far, continuing from this run, then re-score the queue" data-testid="next-round">Next round</button>
            )}
          </>
        )}
      </div>
      {error && <div class="error" role="alert">{error}</div>}
      {active && (
        <p class="muted small" data-testid="queue-info">
          {active.scored === active.unlabeled ? `${active.unlabeled} unlabeled` : `${active.scored} of ${active.unlabeled} unlabeled`} examples scored by run {active.runId}, {active.strategy === "random" ? "in random order (the control)" : "least sure first"}.
        </p>
      )}
      {curve.length > 0 && (
        <Chart title={`${metric} by labels`} testId="label-curve" xLabel="labels" yLabel={metric} height={160}
          series={[{ label: metric, x: curve.map((p) => p.labels), y: curve.map((p) => p.score) }]} />
      )}
    </section>
  );
}
