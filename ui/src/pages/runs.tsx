// Runs: every run with status, model, dataset, key metric and duration; filter and sort; one
// run's curves, config, confusion matrix, per-class scores and worst errors; 2+ runs overlaid
// with a configuration diff.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, duration, EnsembleRecord, errorText, MetricRow, RunDetail, RunRecord } from "../api";
import { Chart } from "../chart";
import { smoothValues } from "../smooth.js";
import type { Nav } from "../main";
import { resumeRun } from "./train";
import { ConfirmButton } from "../confirm";
import { curveOf, isAnswerReport, isChoiceReport, isEntityReport, isGenerationReport, isTasksReport, phaseMarks, summary, taskLossCurves, validationSeries } from "../report";
import { SampleHistory } from "./samples";
import { sweepNames, SweepView } from "./sweeps";
import { BehaviorTests } from "./behavior";

/** The training loss: one curve per task for a multi-task run. */
const lossSeries = (rows: { step: number; name: string; value: number }[]) => {
  const perTask = Object.values(taskLossCurves(rows));
  return perTask.length > 0 ? perTask : [curveOf(rows, "loss", "loss")];
};

/** Training time: what the run measured (earlier sessions of a resumed run included, the time
 * it lay stopped or the app was closed not), else the wall clock from start to end. */
function seconds(r: RunRecord): number | null {
  const measured = r.final_metrics?.elapsed_s;
  if (typeof measured === "number") return measured;
  if (!r.started_at) return null;
  const end = r.finished_at ? Date.parse(r.finished_at) : Date.now();
  return (end - Date.parse(r.started_at)) / 1000;
}
/** A class as shown in the mistakes table; for multiple choice the option's letter and text. */
const option = (p: any, letter: string | null): string => {
  const i = letter ? letter.charCodeAt(0) - 65 : -1;
  return Array.isArray(p.options) && i >= 0 && i < p.options.length ? `${letter}. ${p.options[i]}` : letter ?? "";
};

/** The run's score: the test part's (scored once with the best checkpoint) when the split has
 * one, else the best validation's. */
const scored = (r: RunRecord) => r.final_metrics?.test ?? r.final_metrics?.best;
const headlineScore = (s: any): number | undefined => {
  if (isTasksReport(s)) {
    // A multi-task run: the mean of its tasks' scores.
    const each = s.tasks.map((t: any) => headlineScore(t.report)).filter((v: any) => typeof v === "number");
    return each.length === s.tasks.length && each.length > 0 ? each.reduce((a: number, b: number) => a + b, 0) / each.length : undefined;
  }
  return (s?.macro_f1 ?? s?.entity_f1 ?? s?.map_at_3 ?? s?.f1) as number | undefined;
};
const f1 = (r: RunRecord) => headlineScore(scored(r));
/** The model as a person knows it: the Hub repo of a cache snapshot, else the folder name. */
const modelOf = (r: RunRecord) => {
  const path = String(r.config?.model ?? "");
  const hub = path.match(/models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\]/);
  return hub ? `${hub[1]}/${hub[2]}` : path.split(/[\\/]/).filter(Boolean).pop() ?? path;
};
const sourceOf = (data: any) => data?.dataset ?? String(data?.train ?? "").split(/[\\/]/).pop();
/** The run's data; a multi-task run's every task's, joined with "+". */
const dataOf = (r: RunRecord) => [sourceOf(r.config?.data), ...(r.config?.also ?? []).map((t: any) => sourceOf(t.data))].join(" + ");

function flatten(value: any, prefix = "", out: Record<string, string> = {}): Record<string, string> {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out[prefix] = JSON.stringify(value);
  return out;
}

/** Relabels a validation example from the mistakes table: the model's class offered first. */
function Relabel(props: { id: number; labels: string[]; current: string; suggested: string; onError: (e: string | null) => void }) {
  const [choice, setChoice] = useState(props.suggested);
  const [done, setDone] = useState<string | null>(null);
  if (done != null) return <span class="ok small" data-relabeled={done}>✓ now {done}</span>;
  return (
    <span class="row small">
      <select aria-label="New label" value={choice} onChange={(e) => setChoice((e.target as HTMLSelectElement).value)}>
        {props.labels.map((l) => <option value={l}>{l}</option>)}
      </select>
      <button class="relabel" disabled={choice === props.current} onClick={async () => {
        try { await api.setLabel(props.id, choice); setDone(choice); props.onError(null); } catch (e) { props.onError(errorText(e)); }
      }}>Relabel</button>
    </span>
  );
}

/** A validation report of any task; a multi-task run's as one section per task. */
function ReportView(props: { report: any; step?: number; best: boolean; predictions: any[] }) {
  const { report } = props;
  if (isTasksReport(report)) {
    return (
      <section data-testid="task-reports">
        <h3>{props.best ? "Best validation" : "Latest validation"} (step {props.step}), per task</h3>
        {report.tasks.map((t: any) => (
          <div class="task-report" data-task-name={t.name}>
            <h4>{t.name} <span class="muted small">{t.task.replace(/-/g, " ")}</span></h4>
            <ReportView report={t.report} step={props.step} best={props.best} predictions={[]} />
          </div>
        ))}
      </section>
    );
  }
  const labels: string[] = (report?.per_class ?? []).map((c: any) => c.label);
  return (
    <>
      {report && isEntityReport(report) && <EntityReportView report={report} step={props.step} best={props.best} />}
      {report && isChoiceReport(report) && (
        <h3 data-testid="choice-report">{props.best ? "Best validation" : "Latest validation"} (step {props.step}): {summary(report)} <span class="muted small">on {report.examples} questions of {report.choices} options</span></h3>
      )}
      {report && isAnswerReport(report) && <AnswerReportView report={report} step={props.step} best={props.best} predictions={props.predictions} />}
      {report && isGenerationReport(report) && (
        <>
          <h3 data-testid="generation-report">{props.best ? "Best validation" : "Latest validation"} (step {props.step}): {summary(report)} <span class="muted small">on {report.examples} generated targets{report.stemmed ? ", stemmed" : ""}</span></h3>
          <table class="list" data-testid="generation-samples">
            <thead><tr><th>Source</th><th>Reference</th><th>Generated</th><th class="num">ROUGE-L</th></tr></thead>
            <tbody>{(report.samples ?? []).map((x: any) => <tr><td class="small">{x.source}</td><td>{x.reference}</td><td>{x.generated}</td><td class="num">{x.rougeL.toFixed(3)}</td></tr>)}</tbody>
          </table>
        </>
      )}
      {report && !isEntityReport(report) && !isChoiceReport(report) && !isAnswerReport(report) && !isGenerationReport(report) && (
        <>
          <h3>{props.best ? "Best validation" : "Latest validation"} (step {props.step}): {summary(report)}</h3>
          <div class="columns">
            <table class="list">
              <thead><tr><th>Class</th><th class="num">Precision</th><th class="num">Recall</th><th class="num">F1</th><th class="num">Support</th></tr></thead>
              <tbody>{(report.per_class ?? []).map((c: any) => <tr><td>{c.label}</td><td class="num">{c.precision.toFixed(3)}</td><td class="num">{c.recall.toFixed(3)}</td><td class="num">{c.f1.toFixed(3)}</td><td class="num">{c.support}</td></tr>)}</tbody>
            </table>
            <table class="list confusion" data-testid="confusion">
              <thead><tr><th>true \ predicted</th>{labels.map((l) => <th>{l}</th>)}</tr></thead>
              <tbody>{(report.confusion_matrix ?? []).map((row: number[], i: number) => <tr><th>{labels[i]}</th>{row.map((n) => <td class="num">{n}</td>)}</tr>)}</tbody>
            </table>
          </div>
        </>
      )}
    </>
  );
}

/** A run's tags (added with Enter, removed with ×) and notes (saved when the box loses focus
 * or with Ctrl+Enter). */
function RunNotes(props: { run: RunRecord; onSaved: () => void }) {
  const [tags, setTags] = useState<string[]>(props.run.tags ?? []);
  const [tag, setTag] = useState("");
  const [notes, setNotes] = useState(props.run.notes ?? "");
  const [status, setStatus] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  // Tags changed elsewhere (the command line) show when the run is read again.
  useEffect(() => { setTags(props.run.tags ?? []); }, [(props.run.tags ?? []).join("\n")]);
  const save = async (change: { add?: string[]; remove?: string[]; notes?: string }) => {
    try {
      const r = await api.runAnnotate(props.run.id, change);
      setTags(r.tags); setError(null); setStatus(change.notes != null ? "notes saved" : "tags saved");
      props.onSaved();
    } catch (e) { setError(errorText(e)); }
  };
  const addTag = () => { if (tag.trim()) { save({ add: [tag] }); setTag(""); } };
  return (
    <div class="run-notes" data-testid="run-notes">
      <div class="row">
        <span class="muted small">Tags</span>
        {tags.map((t) => <span class="tag" data-tag={t}>{t} <button class="ghost small" aria-label={`remove tag ${t}`} onClick={() => save({ remove: [t] })}>×</button></span>)}
        <input id="add-tag" placeholder="add a tag, Enter" value={tag}
          onInput={(e) => setTag((e.target as HTMLInputElement).value)}
          onKeyDown={(e) => { if (e.key === "Enter") { e.preventDefault(); addTag(); } }} />
        {status && <span class="ok small" data-testid="notes-status">{status}</span>}
        {error && <span class="field-error" role="alert">{error}</span>}
      </div>
      <textarea id="run-notes" rows={2} placeholder="Notes: what you tried, what you saw…" value={notes}
        onInput={(e) => { setNotes((e.target as HTMLTextAreaElement).value); setStatus(null); }}
        onBlur={() => { if (notes !== (props.run.notes ?? "")) save({ notes }); }}
        onKeyDown={(e) => { if (e.key === "Enter" && e.ctrlKey) { e.preventDefault(); save({ notes }); } }} />
    </div>
  );
}

type RunTab = "results" | "test" | "config";
const TAB_NAMES: Record<RunTab, string> = { results: "Results", test: "Test", config: "Configuration" };

/** The run page's tabs (arrow keys, Home and End move between them, as WAI-ARIA's tabs do). */
function RunTabs(props: { tab: RunTab; tabs: RunTab[]; onTab: (t: RunTab) => void }) {
  const move = (e: KeyboardEvent) => {
    if (e.ctrlKey || e.altKey || e.metaKey || e.shiftKey) return;
    const i = props.tabs.indexOf(props.tab);
    const to = e.key === "ArrowRight" ? (i + 1) % props.tabs.length
      : e.key === "ArrowLeft" ? (i + props.tabs.length - 1) % props.tabs.length
      : e.key === "Home" ? 0 : e.key === "End" ? props.tabs.length - 1 : -1;
    if (to < 0) return;
    e.preventDefault();
    props.onTab(props.tabs[to]);
    (document.getElementById(`run-tab-${props.tabs[to]}`) as HTMLElement | null)?.focus();
  };
  return (
    <div class="tabs" role="tablist" aria-label="Run" onKeyDown={move}>
      {props.tabs.map((t) => (
        <button role="tab" id={`run-tab-${t}`} aria-selected={t === props.tab} aria-controls={`run-panel-${t}`}
          tabIndex={t === props.tab ? 0 : -1} class={t === props.tab ? "tab active" : "tab"} onClick={() => props.onTab(t)}>
          {TAB_NAMES[t]}
        </button>
      ))}
    </div>
  );
}

function RunPage(props: { id: number; nav: Nav; onChanged: () => void; onDeleted: () => void }) {
  const [d, setD] = useState<RunDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  // Another run opens on its results.
  const [tab, setTab] = useState<RunTab>("results");
  useEffect(() => setTab("results"), [props.id]);
  // One request at a time: a long run's curves are a large answer, and a slow one must not
  // pile up behind the next poll. A load asked for meanwhile (another run opened, a note saved)
  // runs once the answer is in; an answer for a run no longer shown is dropped.
  const shown = useRef(props.id);
  shown.current = props.id;
  const inFlight = useRef(false);
  const again = useRef(false);
  const load = () => {
    if (inFlight.current) { again.current = true; return; }
    inFlight.current = true;
    const id = shown.current;
    api.runShow(id)
      .then((r) => { if (id === shown.current) { setD(r); setError(null); } })
      .catch((e) => { if (id === shown.current) setError(errorText(e)); })
      .finally(() => {
        inFlight.current = false;
        if (again.current) { again.current = false; load(); }
      });
  };
  useEffect(() => { load(); }, [props.id]);
  // A run that trains right now: its curves and status follow (every 3 s).
  const active = !!d && (d.live || d.run.status === "running" || d.run.status === "queued");
  useEffect(() => {
    if (!active) return;
    const t = setInterval(load, 3000);
    return () => clearInterval(t);
  }, [props.id, active]);
  if (error) return <div class="error">{error}</div>;
  // Another run's page is never shown for this one (its notes would be edited by mistake).
  if (!d || d.run.id !== props.id) return <p class="muted">Loading…</p>;
  // The best checkpoint's evaluation is the one stored with its predictions; before a run
  // finishes, the latest validation.
  const validations = d.evaluations.filter((e) => e.part === "validation");
  const bestStep = d.run.final_metrics?.best_step;
  const ev = validations.find((e) => bestStep != null && e.step === bestStep)
    ?? validations.find((e) => e.predictions && e.predictions.length > 0)
    ?? validations[validations.length - 1];
  const isBest = ev != null && (ev.step === bestStep || (ev.predictions?.length ?? 0) > 0);
  const report = ev?.report;
  const labels: string[] = (report?.per_class ?? []).map((c: any) => c.label);
  const worst = (isAnswerReport(report) ? [] : ev?.predictions ?? [])
    .filter((p: any) => p.label != null && p.predicted !== p.label)
    .map((p: any) => ({ ...p, confidence: Math.max(...(p.probabilities ?? [0])) }))
    .sort((a: any, b: any) => b.confidence - a.confidence)
    .slice(0, 10);
  const remote = d.run.remote ?? null;
  const resume = async () => {
    try {
      // A run on a compute target is submitted there again; its page follows it.
      if (remote) { await api.runResubmit(d.run.id); load(); props.onChanged(); return; }
      await resumeRun(d.run.id); props.onChanged(); props.nav("train");
    } catch (e) { setError(errorText(e)); }
  };
  // Behavioral tests need a finished text classifier (not an ensemble).
  const testable = d.run.status === "completed" && !d.run.config?.ensemble
    && (d.run.config?.task ?? "sequence-classification") === "sequence-classification";
  const tabs: RunTab[] = testable ? ["results", "test", "config"] : ["results", "config"];
  const shownTab = tabs.includes(tab) ? tab : "results";
  return (
    <article class="card" data-testid="run-page" data-run={d.run.id}>
      <h2>Run {d.run.id}{d.run.name ? ` · ${d.run.name}` : ""} <span class={`run-status ${d.run.status}`}>{d.run.status}</span></h2>
      {d.run.error && <div class="error">{d.run.error}</div>}
      {remote && (
        <p class="muted small" data-testid="remote-placement">
          On compute target <strong>{remote.target}</strong> · Slurm job {remote.job}
          {remote.submissions > 1 ? ` (submitted ${remote.submissions} times)` : ""} · folder there: <code>{remote.dir}</code>
          {(d.run.status === "queued" || d.run.status === "running") && " — its curves arrive every few seconds while the window is open"}
        </p>
      )}
      {d.run.final_metrics?.test && (
        <p class="ok" data-testid="test-score">
          Test: {summary(d.run.final_metrics.test)} <span class="muted small">— the run's score, on {d.run.final_metrics.test_examples} examples of the split's test part that neither training nor choosing the checkpoint saw. Validation below picked the checkpoint.</span>
        </p>
      )}
      <div class="row">
        {d.live && (
          <button id="cancel-run" onClick={async () => { await api.trainCancel(d.run.id); load(); props.onChanged(); }}
            title="Stop after the current step; the run keeps its best checkpoint and can be resumed">Cancel</button>
        )}
        {remote && d.run.status === "queued" && (
          <button id="stop-run" title="Cancel the Slurm job (scancel)"
            onClick={async () => { try { await api.runRequestStop(d.run.id); load(); } catch (e) { setError(errorText(e)); } }}>Cancel job</button>
        )}
        {!d.live && d.run.status === "running" && (
          d.run.cancel_requested
            ? <span class="muted small" data-testid="stop-asked">training in another process; asked to stop after its current step</span>
            : <>
                <span class="muted small">{remote ? `training on ${remote.target}` : "training in another process (the command line)"}</span>
                <button id="stop-run" title="The run stops after its current step, keeps its checkpoints and can be resumed"
                  onClick={async () => { try { await api.runRequestStop(d.run.id); load(); } catch (e) { setError(errorText(e)); } }}>Stop it</button>
              </>
        )}
        {["interrupted", "cancelled", "failed"].includes(d.run.status) && <button id="resume-run" onClick={resume}
          title={remote ? `Submit it to ${remote.target} again; it continues from its last checkpoint` : "Continue from its last checkpoint"}>{remote ? "Resume on " + remote.target : "Resume"}</button>}
        {d.run.status === "completed" && <button onClick={() => props.nav("playground", d.run.id)}>Playground & export</button>}
        <ConfirmButton id="delete-run" label="Delete run" confirm="Delete"
          question={`Delete run ${d.run.id} with its curves, checkpoints and the model in its folder?`}
          disabled={d.live || d.run.status === "running"} title={d.live ? "Cancel the run first" : undefined}
          onConfirm={async () => { await api.runDelete(d.run.id); props.onDeleted(); }} />
      </div>
      <RunNotes key={d.run.id} run={d.run} onSaved={() => { load(); props.onChanged(); }} />
      <RunTabs tab={shownTab} tabs={tabs} onTab={setTab} />
      {/* Every panel stays mounted (hidden when not shown): a test run keeps its report and a
          tab's aria-controls always finds its panel. */}
      <div role="tabpanel" id="run-panel-results" aria-labelledby="run-tab-results" tabIndex={0} hidden={shownTab !== "results"}>
      <div class="grid2">
        <Chart title="Training loss" series={lossSeries(d.metrics)} marks={phaseMarks(d.metrics)} />
        <Chart title="Validation" series={validationSeries(new Set(d.metrics.map((m) => m.name))).map(([name, label]) => curveOf(d.metrics, name, label))} />
      </div>
      {d.run.config?.ensemble && <EnsembleMembers run={d.run} />}
      {report && <ReportView report={report} step={ev?.step} best={isBest} predictions={ev?.predictions ?? []} />}
      <SampleHistory samples={d.samples} />
      {worst.length > 0 && (
        <>
          <h3>Most confident mistakes</h3>
          <p class="muted small">When the model is sure and the label disagrees, the label may be the mistake: relabel it here (the dataset changes; this run's scores stay as they were).</p>
          <table class="list" data-testid="mistakes"><thead><tr><th>Text</th><th>True</th><th>Predicted</th><th class="num">Confidence</th><th>Label</th></tr></thead>
            <tbody>{worst.map((w: any) => <tr data-example={w.example_id ?? ""}><td>{w.text}</td><td>{option(w, w.label)}</td><td>{option(w, w.predicted)}</td><td class="num">{(100 * w.confidence).toFixed(1)}%</td>
              <td>{w.example_id != null && !w.options && <Relabel id={w.example_id} labels={labels} current={w.label} suggested={w.predicted} onError={setError} />}</td></tr>)}</tbody></table>
        </>
      )}
      </div>
      {testable && <div role="tabpanel" id="run-panel-test" aria-labelledby="run-tab-test" tabIndex={0} hidden={shownTab !== "test"}>
        <BehaviorTests key={d.run.id} run={d.run} />
      </div>}
      <div role="tabpanel" id="run-panel-config" aria-labelledby="run-tab-config" tabIndex={0} hidden={shownTab !== "config"}>
        <pre class="config">{JSON.stringify(d.run.config, null, 2)}</pre>
      </div>
    </article>
  );
}

/** A passage with the gold answer and the predicted one marked (the predicted alone where
 * they overlap). Offsets are in characters. */
function MarkedPassage(props: { text: string; gold: [number, number] | null; predicted: [number, number] }) {
  const chars = Array.from(props.text);
  const spans: [number, number, string][] = [[props.predicted[0], props.predicted[1], "predicted"]];
  const g = props.gold;
  if (g && (g[1] <= props.predicted[0] || g[0] >= props.predicted[1])) spans.push([g[0], g[1], "gold"]);
  spans.sort((a, b) => a[0] - b[0]);
  const parts: any[] = [];
  let at = 0;
  for (const [start, end, kind] of spans) {
    parts.push(chars.slice(at, start).join(""));
    parts.push(<mark class={`answer-${kind}`} title={kind === "gold" ? "the gold answer" : "the model's answer"}>{chars.slice(start, end).join("")}</mark>);
    at = end;
  }
  parts.push(chars.slice(at).join(""));
  return <p class="small passage">{parts}</p>;
}

/** A question-answering run's scores and its worst answers: the questions it got least of,
 * predicted vs gold span in the passage. */
function AnswerReportView(props: { report: any; step?: number; best: boolean; predictions: any[] }) {
  const { report } = props;
  const wrong = props.predictions
    .filter((p) => p.label != null && !p.exact_match)
    .sort((a, b) => a.f1 - b.f1 || b.score - a.score)
    .slice(0, 10);
  return (
    <>
      <h3 data-testid="answer-report">{props.best ? "Best validation" : "Latest validation"} (step {props.step}): {summary(report)} <span class="muted small">on {report.examples} questions ({report.windows} windows; SQuAD v1.1 scoring)</span></h3>
      {wrong.length > 0 && (
        <>
          <h4>Worst answers</h4>
          <p class="muted small"><mark class="answer-predicted">the model's answer</mark> and <mark class="answer-gold">the gold one</mark> in each passage.</p>
          <div data-testid="answer-mistakes">
            {wrong.map((w) => (
              <div class="card answer-mistake" data-f1={w.f1.toFixed(3)}>
                <p><strong>{w.text}</strong> <span class="muted small">gold “{w.label}” · predicted “{w.predicted}” · F1 {w.f1.toFixed(2)} · {(100 * w.score).toFixed(1)}%</span></p>
                <MarkedPassage text={w.text_pair ?? ""} gold={w.gold_start != null ? [w.gold_start, w.gold_start + Array.from(w.label as string).length] : null} predicted={[w.start, w.end]} />
              </div>
            ))}
          </div>
        </>
      )}
    </>
  );
}

type Entity = { kind: string; start: number; end: number };

/** Words with their entities (word spans from the report) highlighted, type as a badge. */
function Tagged(props: { tokens: string[]; entities: Entity[]; other: Entity[] }) {
  const key = (e: Entity) => `${e.kind}:${e.start}:${e.end}`;
  const otherKeys = new Set(props.other.map(key));
  const parts: any[] = [];
  let i = 0;
  for (const { kind, start, end } of props.entities) {
    if (i < start) parts.push(props.tokens.slice(i, start).join(" ") + " ");
    const agrees = otherKeys.has(key({ kind, start, end }));
    parts.push(<mark class={`entity${agrees ? "" : " differs"}`} title={agrees ? kind : `${kind} (the other side differs)`}>{props.tokens.slice(start, end).join(" ")} <b>{kind}</b></mark>, " ");
    i = end;
  }
  parts.push(props.tokens.slice(i).join(" "));
  return <span>{parts}</span>;
}

function EntityReportView(props: { report: any; step?: number; best: boolean }) {
  const r = props.report;
  return (
    <>
      <h3>{props.best ? "Best validation" : "Latest validation"} (step {props.step}): {summary(r)}</h3>
      <table class="list" data-testid="per-type">
        <thead><tr><th>Entity</th><th class="num">Precision</th><th class="num">Recall</th><th class="num">F1</th><th class="num">Support</th></tr></thead>
        <tbody>{Object.entries(r.per_type ?? {}).map(([kind, c]: [string, any]) => <tr><td>{kind}</td><td class="num">{c.precision.toFixed(3)}</td><td class="num">{c.recall.toFixed(3)}</td><td class="num">{c.f1.toFixed(3)}</td><td class="num">{c.support}</td></tr>)}</tbody>
      </table>
      {(r.worst ?? []).length > 0 && (
        <>
          <h3>Wrongly tagged sentences</h3>
          <table class="list" data-testid="tagging-errors">
            <thead><tr><th>Gold</th><th>Predicted</th></tr></thead>
            <tbody>{r.worst.slice(0, 10).map((w: any) => <tr><td><Tagged tokens={w.tokens} entities={w.gold_entities ?? []} other={w.predicted_entities ?? []} /></td><td><Tagged tokens={w.tokens} entities={w.predicted_entities ?? []} other={w.gold_entities ?? []} /></td></tr>)}</tbody>
          </table>
        </>
      )}
    </>
  );
}

/** The scores the runs ended with, side by side: the split's test part when a run has one,
 * else the best validation. */
function MetricsTable(props: { runs: RunRecord[] }) {
  const scores = props.runs.map((r) => scored(r) ?? {});
  const names = ["accuracy", "macro_f1", "entity_f1", "precision", "recall", "token_accuracy", "map_at_3", "loss"]
    .filter((n) => scores.some((s: any) => typeof s[n] === "number"));
  const best = (n: string) => {
    const values = scores.map((s: any) => s[n]).filter((v: any) => typeof v === "number") as number[];
    return n === "loss" ? Math.min(...values) : Math.max(...values);
  };
  return (
    <table class="list" data-testid="metrics-compare">
      <thead><tr><th>Metric</th>{props.runs.map((r) => <th class="num">run {r.id}</th>)}</tr></thead>
      <tbody>
        {names.map((n) => (
          <tr><td>{n.replace(/_/g, " ")}</td>{scores.map((s: any) => (
            <td class={`num${s[n] === best(n) && props.runs.length > 1 ? " best" : ""}`}>{typeof s[n] === "number" ? s[n].toFixed(4) : "–"}</td>
          ))}</tr>
        ))}
        <tr><td>scored on</td>{props.runs.map((r) => <td class="num small muted">{r.final_metrics?.test ? "test" : r.final_metrics?.best ? "validation" : "–"}</td>)}</tr>
        <tr><td>duration</td>{props.runs.map((r) => <td class="num">{seconds(r) != null ? duration(seconds(r)!) : "–"}</td>)}</tr>
      </tbody>
    </table>
  );
}

/** An ensemble run's members and their scores beside its own, on the validation examples
 * every member held out. */
function EnsembleMembers(props: { run: RunRecord }) {
  const e = props.run.final_metrics?.ensemble;
  const of = props.run.config.ensemble;
  return (
    <div data-testid="ensemble-members">
      <p>Ensemble of runs {of.members.join(", ")} ({of.mean === "logits" ? "mean of logits" : "mean of probabilities"}){e?.examples ? <> · scored on the {e.examples} validation examples every member held out</> : " · the members share no validation examples: score it with hone eval"}.</p>
      {e?.members?.length > 0 && (
        <table class="list">
          <thead><tr><th>Model</th><th>Score</th></tr></thead>
          <tbody>
            {e.members.map((m: any) => <tr data-member={m.run}><td>run {m.run}</td><td>{summary(m.report)}</td></tr>)}
            <tr class="ensemble-row"><td><strong>ensemble</strong></td><td><strong>{summary(props.run.final_metrics?.best)}</strong></td></tr>
          </tbody>
        </table>
      )}
    </div>
  );
}

/** Combines the ticked finished runs into an ensemble folder where the user chooses. */
function EnsembleButton(props: { runs: RunRecord[]; onMade?: () => void }) {
  const [made, setMade] = useState<string | null>(null);
  const [record, setRecord] = useState<EnsembleRecord | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const done = props.runs.filter((r) => r.status === "completed" || r.status === "cancelled");
  const tasks = new Set(props.runs.map((r) => r.config?.task ?? "sequence-classification"));
  const why = done.length < props.runs.length ? "Only finished runs can be ensembled."
    : tasks.has("token-classification") ? "Token classifiers are not ensembled yet."
    : tasks.has("question-answering") ? "Question-answering models are not ensembled yet."
    : tasks.size > 1 ? "The runs are for different tasks." : null;
  const make = async () => {
    setError(null);
    const dest = await api.pick("export_folder");
    if (!dest) return;
    setBusy(true);
    try {
      const [path, , rec] = await api.ensembleCreate(props.runs.map((r) => r.id), dest, `ensemble-${props.runs.map((r) => r.id).join("-")}`);
      setMade(path); setRecord(rec);
      props.onMade?.();
    } catch (e) { setError(errorText(e)); }
    setBusy(false);
  };
  return (
    <div class="row">
      <button id="ensemble" onClick={make} disabled={why != null || busy} title={why ?? "Average the runs' probabilities: one model for hone predict and hone eval"}>Ensemble these runs…</button>
      {why && <span class="muted small">{why}</span>}
      {busy && <span class="muted small" data-testid="ensemble-busy" role="status">Copying the models and scoring the ensemble on the runs' validation examples…</span>}
      {made && <span class="ok small" data-testid="ensemble-made" data-run={record?.run_id ?? ""}>Ensemble written to {made}{record && <> · recorded as run {record.run_id}{record.report ? <>: {summary(record.report)}</> : " (the runs share no validation examples to score it on)"}</>}</span>}
      {error && <span class="field-error" role="alert">{error}</span>}
    </div>
  );
}

function Compare(props: { runs: RunRecord[]; onChanged?: () => void }) {
  const [metrics, setMetrics] = useState<[number, MetricRow[]][]>([]);
  const [onlyDiff, setOnlyDiff] = useState(true);
  const [smoothing, setSmoothing] = useState(0);
  useEffect(() => { api.runsMetrics(props.runs.map((r) => r.id)).then(setMetrics); }, [props.runs.map((r) => r.id).join()]);
  const flat = props.runs.map((r) => flatten(r.config));
  const keys = Array.from(new Set(flat.flatMap((f) => Object.keys(f)))).sort();
  const shown = keys.filter((k) => !onlyDiff || new Set(flat.map((f) => f[k])).size > 1);
  return (
    <article class="card" data-testid="compare">
      <h2>Comparing runs {props.runs.map((r) => r.id).join(", ")}</h2>
      <div class="grid2">
        <Chart title="Training loss" series={metrics.map(([id, rows]) => (({ x, y, label }) => ({ label, x, y: smoothValues(y, smoothing) }))(curveOf(rows, "loss", `run ${id}`)))} />
        <Chart title="Validation F1" series={metrics.map(([id, rows]) => curveOf(rows, rows.some((m) => m.name === "eval_entity_f1") ? "eval_entity_f1" : rows.some((m) => m.name === "eval_map_at_3") ? "eval_map_at_3" : rows.some((m) => m.name === "eval_f1") ? "eval_f1" : "eval_macro_f1", `run ${id}`))} />
      </div>
      <label class="small" title="An exponential moving average of the loss curves, as TensorBoard's slider">Smoothing <input id="compare-smoothing" type="range" min="0" max="0.99" step="0.01" value={smoothing}
        onInput={(e) => setSmoothing(Number((e.target as HTMLInputElement).value))} /> {smoothing.toFixed(2)}</label>
      <MetricsTable runs={props.runs} />
      <EnsembleButton runs={props.runs} onMade={props.onChanged} />
      <label class="small"><input type="checkbox" checked={onlyDiff} onChange={(e) => setOnlyDiff((e.target as HTMLInputElement).checked)} /> differences only</label>
      <table class="list" data-testid="config-diff">
        <thead><tr><th>Setting</th>{props.runs.map((r) => <th>run {r.id}</th>)}</tr></thead>
        <tbody>{shown.map((k) => <tr><td>{k}</td>{flat.map((f) => <td>{f[k] ?? "–"}</td>)}</tr>)}</tbody>
      </table>
    </article>
  );
}

export function RunsPage(props: { open: number | null; nav: Nav }) {
  // null until the first list arrives: "No runs yet" is for an empty list, not a slow one.
  const [loaded, setLoaded] = useState<RunRecord[] | null>(null);
  const runs = loaded ?? [];
  const [filter, setFilter] = useState("");
  const [sort, setSort] = useState<"id" | "f1" | "duration">("id");
  const [selected, setSelected] = useState<number[]>([]);
  const [open, setOpen] = useState<number | null>(props.open);
  const [error, setError] = useState<string | null>(null);
  // Polled for runs other processes start or finish; an unchanged list keeps the same array,
  // so an open run's page (curves, downsampling) is not redrawn every 3 s for nothing.
  const refresh = () =>
    api.runsList()
      .then((next) => setLoaded((prev) => (JSON.stringify(prev) === JSON.stringify(next) ? prev : next)))
      .catch((e) => setError(errorText(e)));
  useEffect(() => { refresh(); const t = setInterval(refresh, 3000); return () => clearInterval(t); }, []);

  const shown = useMemo(() => {
    const q = filter.toLowerCase();
    const list = runs.filter((r) => !q || [r.status, r.name ?? "", modelOf(r), dataOf(r) ?? "", ...(r.tags ?? [])].some((s) => s.toLowerCase().includes(q)));
    const key = (r: RunRecord) => (sort === "f1" ? f1(r) ?? -1 : sort === "duration" ? seconds(r) ?? -1 : r.id);
    return [...list].sort((a, b) => key(b) - key(a));
  }, [runs, filter, sort]);
  const toggle = (id: number) => setSelected((s) => (s.includes(id) ? s.filter((x) => x !== id) : [...s, id]));
  const compared = runs.filter((r) => selected.includes(r.id));
  const sweeps = useMemo(() => sweepNames(runs), [runs]);
  // The trials are read again whenever a run's status or step changes.
  const runsState = runs.map((r) => `${r.id}:${r.status}:${r.step}`).join(",");

  return (
    <section>
      <h1>Runs</h1>
      {error && <div class="error" role="alert">{error}</div>}
      {loaded === null ? (
        <p class="muted small">Loading runs…</p>
      ) : runs.length === 0 ? (
        <p class="muted">No runs yet. <button onClick={() => props.nav("train")}>Start one</button></p>
      ) : (
        <>
          <div class="row">
            <input id="runs-filter" placeholder="Filter by status, name, tag, model or dataset" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
            <select value={sort} onChange={(e) => setSort((e.target as HTMLSelectElement).value as any)} aria-label="Sort">
              <option value="id">newest</option><option value="f1">best score</option><option value="duration">longest</option>
            </select>
            <span class="muted small">Tick two or more runs to compare them.</span>
          </div>
          <table class="list" data-testid="runs">
            <thead><tr><th /><th>Run</th><th>Status</th><th>Model</th><th>Dataset</th><th class="num" title="Macro F1 of text classifiers, entity F1 of token classifiers, MAP@3 of multiple choice, F1 of question answering, the mean over tasks of a multi-task run; on the split's test part when it has one, else on validation">Score</th><th class="num">Duration</th></tr></thead>
            <tbody>
              {shown.map((r) => (
                <tr class={open === r.id ? "selected" : ""} data-run={r.id}>
                  <td><input type="checkbox" checked={selected.includes(r.id)} onChange={() => toggle(r.id)} aria-label={`select run ${r.id}`} /></td>
                  <td><a href="#" onClick={(e) => { e.preventDefault(); setOpen(r.id); setSelected([]); }}>{r.id}{r.name ? ` · ${r.name}` : ""}</a>{(r.tags ?? []).map((t) => <span class="tag" data-tag={t}>{t}</span>)}</td>
                  <td><span class={`run-status ${r.status}`}>{r.status}</span></td>
                  <td>{modelOf(r)}</td><td>{dataOf(r)}</td>
                  <td class="num">{f1(r)?.toFixed(3) ?? "–"}</td>
                  <td class="num">{seconds(r) != null ? duration(seconds(r)!) : "–"}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {sweeps.length > 0 && <SweepView names={sweeps} changed={runsState} onTick={(ids) => { setSelected(ids); setOpen(null); }} />}
          {compared.length >= 2 ? <Compare runs={compared} onChanged={refresh} /> : open != null && <RunPage id={open} nav={props.nav} onChanged={refresh} onDeleted={() => { setOpen(null); refresh(); }} />}
        </>
      )}
    </section>
  );
}
