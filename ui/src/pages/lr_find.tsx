// The learning-rate range test on the Train page: a short sweep of rising rates on the form's
// model, data and settings, the loss charted against the rate, and a suggested rate to use.
import { useState } from "preact/hooks";
import { api, errorText, LrFindPoint, LrFindResult } from "../api";
import { Chart } from "../chart";

/** `config` builds the run configuration from the form (null, with the form showing why, when it
 * cannot yet); `onUse` puts a rate into the form. */
export function LrFinder(props: { config: () => any | null; disabled: boolean; onUse: (lr: number) => void }) {
  const [running, setRunning] = useState(false);
  const [points, setPoints] = useState<LrFindPoint[]>([]);
  const [steps, setSteps] = useState(0);
  const [result, setResult] = useState<LrFindResult | null>(null);
  const [notices, setNotices] = useState<string[]>([]);
  const [error, setError] = useState<string | null>(null);

  const run = async () => {
    const config = props.config();
    if (!config) return;
    setRunning(true); setError(null); setResult(null); setPoints([]); setNotices([]); setSteps(0);
    try {
      const r = await api.lrFind(config, (m) => {
        if (m.type === "point") { setSteps(m.steps); setPoints((p) => [...p, m.point]); }
        else setNotices((n) => [...n, m.message]);
      });
      setResult(r);
      setPoints(r.points);
    } catch (e) { setError(errorText(e)); }
    setRunning(false);
  };

  const fmt = (x: number) => x.toExponential(1);
  const series = [{ label: "loss (smoothed)", x: points.map((p) => p.lr), y: points.map((p) => p.smoothed) }];
  const shown = running || points.length > 0 || error;
  return (
    <div class="lr-finder" data-testid="lr-finder">
      <div class="row">
        <button id="lr-find" onClick={run} disabled={props.disabled || running}
          title="A short run (100 steps) whose learning rate rises from 1e-7 to 1 until the loss blows up; suggests a rate where the loss still falls. Nothing is saved.">
          Find learning rate
        </button>
        {running && <>
          <progress value={points.length} max={steps || 100} />
          <span class="small muted">step {points.length} of {steps || 100}{points.length > 0 ? ` · lr ${fmt(points[points.length - 1].lr)}` : ""}</span>
          <button onClick={() => api.lrFindCancel()}>Stop</button>
        </>}
      </div>
      {shown && (
        <div class="card">
          {error && <div class="error" role="alert">{error}</div>}
          {notices.map((n) => <div class="notice">{n}</div>)}
          {points.length > 0 && <Chart title="Loss by learning rate" series={series} logX xLabel="learning rate" yLabel="loss" testId="chart-lr-find" />}
          {result && (result.suggested_lr != null ? (
            <p data-testid="lr-suggestion" data-lr={result.suggested_lr}>
              Suggested learning rate <strong>{fmt(result.suggested_lr)}</strong>: a tenth of {fmt(result.min_loss_lr!)}, where the loss was lowest
              {result.steepest_lr != null ? `; it fell fastest at ${fmt(result.steepest_lr)}` : ""}.
              {result.diverged ? ` The loss blew up at ${fmt(points[points.length - 1]?.lr ?? 0)}.` : ""}{" "}
              <button id="lr-use" class="primary" onClick={() => props.onUse(Number(fmt(result.suggested_lr!)))}>Use {fmt(result.suggested_lr)}</button>
            </p>
          ) : <p class="muted">No suggestion: the loss never settled. Try more steps or another batch size.</p>)}
          {result?.cancelled && <p class="muted small">Stopped before the end of the sweep.</p>}
        </div>
      )}
    </div>
  );
}
