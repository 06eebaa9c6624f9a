// A run's Test tab: behavioral tests (CheckList's minimum-functionality, invariance and
// directional tests) of a finished text classifier, from a suite the user edits here (the same
// TOML `hone test --suite` reads), on the run's held-out examples, with accuracy per slice.
import { useEffect, useState } from "preact/hooks";
import { api, BehaviorResult, errorText, RunRecord, SuiteReport } from "../api";

const KIND_NAMES: Record<BehaviorResult["kind"], string> = {
  mft: "minimum functionality",
  invariance: "invariance",
  directional: "directional",
};

/** Where a run's edited suite and slices are kept between visits. */
const storageKey = (runId: number, what: string) => `hone.behavior.${runId}.${what}`;

function percent(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

function ResultRow(props: { t: BehaviorResult }) {
  const t = props.t;
  const [open, setOpen] = useState(false);
  const level = t.failures === 0 ? "ok" : t.failure_rate > 0.2 ? "bad" : "warn";
  return (
    <>
      <tr data-test={t.name} data-failures={t.failures}>
        <td>{t.name}</td>
        <td class="muted">{KIND_NAMES[t.kind]}</td>
        <td class="num">{t.examples}</td>
        <td class={`num rate ${level}`}>{t.examples === 0 ? "—" : percent(t.failure_rate)}</td>
        <td>
          {t.failing.length > 0 && (
            <button class="link" aria-expanded={open} onClick={() => setOpen(!open)}>
              {open ? "Hide" : `Show ${t.failing.length === t.failures ? "" : "first "}${t.failing.length}`}
            </button>
          )}
        </td>
      </tr>
      {open && (
        <tr class="failing">
          <td colSpan={5}>
            <ul>
              {t.failing.map((f) => (
                <li>
                  <span>{f.text}</span>
                  {f.changed != null && <> → <span>{f.changed}</span></>}
                  <span class="muted small"> — expected {f.expected}, got {f.got}</span>
                </li>
              ))}
            </ul>
          </td>
        </tr>
      )}
    </>
  );
}

/** The Test tab of a finished text-classification run. */
export function BehaviorTests(props: { run: RunRecord }) {
  const id = props.run.id;
  const [suite, setSuite] = useState<string>(() => localStorage.getItem(storageKey(id, "suite")) ?? "");
  const [slices, setSlices] = useState<string>(() => localStorage.getItem(storageKey(id, "slices")) ?? "");
  const [report, setReport] = useState<SuiteReport | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (suite.trim() !== "") return;
    api.behaviorStarter(id).then(setSuite).catch((e) => setError(errorText(e)));
  }, [id]);
  const keep = (what: string, value: string) => localStorage.setItem(storageKey(id, what), value);
  const run = async () => {
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      setReport(await api.behaviorRun(id, suite, slices.split("\n")));
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  const starter = async () => {
    try {
      const text = await api.behaviorStarter(id);
      setSuite(text);
      keep("suite", text);
    } catch (e) {
      setError(errorText(e));
    }
  };
  const runOnCtrlEnter = (e: KeyboardEvent) => {
    if (e.key === "Enter" && e.ctrlKey) { e.preventDefault(); run(); }
  };
  return (
    <section class="behavior" data-testid="behavior">
      <h3>Test: how the model fails</h3>
      <p class="muted small">
        Behavioral tests on this run's held-out examples: <b>invariance</b> (a typo, other punctuation, another
        name or place must not change the class), <b>minimum functionality</b> (texts, or a template
        with <code>{"{placeholders}"}</code>, that must get a class) and <b>directional</b> (an added sentence must
        not move a class's probability the wrong way). Edit the suite below; <kbd>Ctrl</kbd>+<kbd>Enter</kbd> runs it.
        The same file runs from the command line: <code>hone test --suite FILE</code>.
      </p>
      <div class="grid2">
        <label class="stack">
          <span>Suite (TOML)</span>
          <textarea id="behavior-suite" rows={12} spellcheck={false} class="mono" value={suite}
            onInput={(e) => { const v = (e.target as HTMLTextAreaElement).value; setSuite(v); keep("suite", v); }}
            onKeyDown={runOnCtrlEnter} />
        </label>
        <label class="stack">
          <span>Slices: accuracy per group, one <code>NAME=REGEX</code> per line (optional)</span>
          <textarea id="behavior-slices" rows={4} spellcheck={false} class="mono" value={slices}
            placeholder={"short=^\\S+( \\S+){0,4}$\nnegation=\\b(not|never|no)\\b"}
            onInput={(e) => { const v = (e.target as HTMLTextAreaElement).value; setSlices(v); keep("slices", v); }}
            onKeyDown={runOnCtrlEnter} />
        </label>
      </div>
      <div class="row">
        <button id="behavior-run" class="primary" disabled={busy || suite.trim() === ""} onClick={run}>
          {busy ? "Testing…" : "Run tests"}
        </button>
        <button onClick={starter} disabled={busy} title="Replace the suite with the starter suite for this model's classes">Starter suite</button>
        {busy && <progress aria-label="Running the tests" />}
        {error && <span class="field-error" role="alert">{error}</span>}
      </div>
      {report && (
        <div data-testid="behavior-report">
          {report.robustness != null && (
            <p data-testid="robustness">
              Robustness: <strong>{percent(report.robustness)}</strong>{" "}
              <span class="muted small">of perturbed texts kept their class (every invariance test together)</span>
            </p>
          )}
          <table class="list" data-testid="behavior-results">
            <thead><tr><th>Test</th><th>Kind</th><th class="num">Examples</th><th class="num">Failure rate</th><th>Failing examples</th></tr></thead>
            <tbody>{report.tests.map((t) => <ResultRow t={t} />)}</tbody>
          </table>
          {report.slices.length > 0 && (
            <>
              <h4>Accuracy per slice</h4>
              <table class="list" data-testid="behavior-slices">
                <thead><tr><th>Slice</th><th class="num">Examples</th><th class="num">Accuracy</th></tr></thead>
                <tbody>{report.slices.map((s) => (
                  <tr data-slice={s.name}><td>{s.name}</td><td class="num">{s.examples}</td>
                    <td class="num">{s.accuracy == null ? <span class="muted">no examples</span> : percent(s.accuracy)}</td></tr>
                ))}</tbody>
              </table>
            </>
          )}
        </div>
      )}
    </section>
  );
}
