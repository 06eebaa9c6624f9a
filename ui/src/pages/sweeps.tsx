// A hyperparameter sweep on the Runs page (`hone sweep create`): the trials' scores against a
// setting they vary, the best trial highlighted, the ranked trials, and the best K ticked in one
// click so the comparison (and its Ensemble button) opens with them.
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, errorText, RunRecord, SweepTrial } from "../api";

const SWEEP_TAG = "sweep:";

/** The sweeps the runs belong to (their `sweep:NAME` tags), newest run's first. */
export function sweepNames(runs: RunRecord[]): string[] {
  const names: string[] = [];
  for (const r of [...runs].sort((a, b) => b.id - a.id)) {
    for (const t of r.tags ?? []) {
      const name = t.startsWith(SWEEP_TAG) ? t.slice(SWEEP_TAG.length) : null;
      if (name && !names.includes(name)) names.push(name);
    }
  }
  return names;
}

function shown(v: unknown): string {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(3);
  return v == null ? "–" : String(v);
}

/** Scores against one setting: numbers on a linear or (spanning 20× or more) log axis, other
 * values as evenly spaced categories; the best trial drawn larger and labelled. */
function Scatter(props: { trials: SweepTrial[]; setting: string; metric: string }) {
  // Axes at `pad`; points kept `inset` inside them so none sits on an axis or the edge.
  const [w, h, pad, inset] = [520, 220, 44, 14];
  const points = props.trials.filter((t) => t.value != null);
  const raw = points.map((t) => t.settings.find(([k]) => k === props.setting)?.[1]);
  const numeric = raw.every((v) => typeof v === "number");
  const nums = raw as number[];
  const log = numeric && Math.min(...nums) > 0 && Math.max(...nums) / Math.min(...nums) >= 20;
  const categories = numeric ? [] : Array.from(new Set(raw.map(shown)));
  const xOf = (v: unknown): number => {
    const span = w - 2 * pad - 2 * inset;
    if (!numeric) return pad + inset + ((categories.indexOf(shown(v)) + 0.5) / Math.max(categories.length, 1)) * span;
    const f = (x: number) => (log ? Math.log10(x) : x);
    const [lo, hi] = [f(Math.min(...nums)), f(Math.max(...nums))];
    return pad + inset + (hi > lo ? (f(v as number) - lo) / (hi - lo) : 0.5) * span;
  };
  const ys = points.map((t) => t.value as number);
  const [ylo, yhi] = [Math.min(...ys), Math.max(...ys)];
  const yOf = (v: number) => h - pad - inset - (yhi > ylo ? (v - ylo) / (yhi - ylo) : 0.5) * (h - 2 * pad - 2 * inset);
  const best = props.trials[0];
  return (
    <svg class="scatter" data-testid="sweep-chart" viewBox={`0 0 ${w} ${h}`} role="img"
      aria-label={`${props.metric} against ${props.setting}`}>
      <line x1={pad} y1={h - pad} x2={w - pad} y2={h - pad} class="axis" />
      <line x1={pad} y1={pad} x2={pad} y2={h - pad} class="axis" />
      <text x={w / 2} y={h - 8} class="axis-label">{props.setting}{log ? " (log)" : ""}</text>
      <text x={12} y={h / 2} class="axis-label" transform={`rotate(-90 12 ${h / 2})`}>{props.metric}</text>
      <text x={pad - 4} y={yOf(yhi) + 4} class="tick" text-anchor="end">{shown(yhi)}</text>
      <text x={pad - 4} y={yOf(ylo) + 4} class="tick" text-anchor="end">{shown(ylo)}</text>
      {numeric
        ? [Math.min(...nums), Math.max(...nums)].map((v) => <text x={xOf(v)} y={h - pad + 14} class="tick" text-anchor="middle">{shown(v)}</text>)
        : categories.map((c) => <text x={xOf(c)} y={h - pad + 14} class="tick" text-anchor="middle">{c}</text>)}
      {points.map((t, i) => {
        const isBest = t.run_id === best?.run_id;
        return (
          <g class={isBest ? "point best" : "point"} data-run={t.run_id}>
            <circle cx={xOf(raw[i])} cy={yOf(t.value as number)} r={isBest ? 7 : 4.5}>
              <title>run {t.run_id}: {props.metric} {shown(t.value)}, {t.settings.map(([k, v]) => `${k} ${shown(v)}`).join(", ")}</title>
            </circle>
            {isBest && (() => {
              // The label on the side of the point with room.
              const [x, right] = [xOf(raw[i]), xOf(raw[i]) > w / 2];
              return <text x={right ? x - 10 : x + 10} y={yOf(t.value as number) + 4} class="tick" text-anchor={right ? "end" : "start"}>best: run {t.run_id}</text>;
            })()}
          </g>
        );
      })}
    </svg>
  );
}

/** The sweeps among the runs: one shown at a time. `changed` is anything that changes when the
 * runs do (their list is polled), so the trials are read again; `onTick` ticks run ids. */
export function SweepView(props: { names: string[]; changed: string; onTick: (ids: number[]) => void }) {
  const [name, setName] = useState(props.names[0]);
  const [trials, setTrials] = useState<SweepTrial[] | null>(null);
  const [setting, setSetting] = useState<string | null>(null);
  const [k, setK] = useState(3);
  const [error, setError] = useState<string | null>(null);
  const current = props.names.includes(name) ? name : props.names[0];
  useEffect(() => {
    api.sweepTrials(current).then((t) => { setTrials(t); setError(null); }).catch((e) => setError(errorText(e)));
  }, [current, props.changed]);
  const keys = trials?.[0]?.settings.map(([key]) => key) ?? [];
  const axis = setting && keys.includes(setting) ? setting : keys[0];
  const scored = useMemo(() => (trials ?? []).filter((t) => t.value != null && t.status === "completed"), [trials]);
  const best = trials?.[0];
  const metric = best?.metric ?? "score";
  const top = Math.min(k, scored.length);
  return (
    <article class="card" data-testid="sweep">
      <h2>
        Sweep{" "}
        {props.names.length > 1 ? (
          <select id="sweep-name" value={current} onChange={(e) => setName((e.target as HTMLSelectElement).value)} aria-label="Sweep">
            {props.names.map((n) => <option value={n}>{n}</option>)}
          </select>
        ) : current}
      </h2>
      {error && <div class="error" role="alert">{error}</div>}
      {trials === null ? <p class="muted small">Loading the trials…</p> : (
        <>
          <p class="muted small">
            {trials.length} trials, {scored.length} finished with a score
            {best?.value != null && <>; best {metric} {shown(best.value)} (run {best.run_id})</>}.
          </p>
          {keys.length > 0 && scored.length > 0 && (
            <>
              {keys.length > 1 && (
                <label class="small">Against{" "}
                  <select id="sweep-axis" value={axis} onChange={(e) => setSetting((e.target as HTMLSelectElement).value)}>
                    {keys.map((key) => <option value={key}>{key}</option>)}
                  </select>
                </label>
              )}
              <Scatter trials={trials} setting={axis} metric={metric} />
            </>
          )}
          <table class="list" data-testid="sweep-trials">
            <thead><tr><th class="num">Rank</th><th>Run</th>{keys.map((key) => <th>{key}</th>)}<th class="num">{metric}</th><th>Status</th></tr></thead>
            <tbody>
              {trials.map((t, i) => (
                <tr class={i === 0 && t.value != null ? "selected" : ""} data-run={t.run_id}>
                  <td class="num">{t.value != null ? i + 1 : "–"}</td>
                  <td>{t.run_id}</td>
                  {t.settings.map(([, v]) => <td>{shown(v)}</td>)}
                  <td class="num">{shown(t.value)}</td>
                  <td><span class={`run-status ${t.status}`}>{t.status}</span></td>
                </tr>
              ))}
            </tbody>
          </table>
          {scored.length >= 2 && (
            <div class="row">
              <label class="small">Best{" "}
                <input id="sweep-k" type="number" min={2} max={scored.length} value={top} style="width: 4em"
                  onInput={(e) => setK(Math.max(2, Number((e.target as HTMLInputElement).value) || 2))} />
              </label>
              <button id="sweep-tick-best" onClick={() => props.onTick(scored.slice(0, top).map((t) => t.run_id))}
                title="Ticks the best finished trials: the comparison opens below, with its Ensemble button">
                Compare the best {top}
              </button>
              <span class="muted small">then Ensemble them in the comparison.</span>
            </div>
          )}
        </>
      )}
    </article>
  );
}
