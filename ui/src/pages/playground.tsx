// Playground & Export: type text, see the prediction and the probabilities of any finished
// run; export the run's model (Hugging Face format with its model card) to a chosen folder.
import { useEffect, useState } from "preact/hooks";
import { api, errorText, Prediction, RunRecord } from "../api";
import type { Nav } from "../main";

export function PlaygroundPage(props: { run: number | null; nav: Nav }) {
  const [runs, setRuns] = useState<RunRecord[]>([]);
  const [run, setRun] = useState<number | null>(props.run);
  const [text, setText] = useState("");
  const [predictions, setPredictions] = useState<Prediction[]>([]);
  const [exportName, setExportName] = useState("");
  const [exported, setExported] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api.runsList().then((all) => {
      const done = all.filter((r) => r.status === "completed" || r.status === "cancelled");
      setRuns(done);
      if (run == null && done.length) setRun(done[0].id);
    }).catch((e) => setError(errorText(e)));
  }, []);
  useEffect(() => { if (run != null) setExportName(`hone-run-${run}`); setPredictions([]); setExported(null); }, [run]);

  const predict = async () => {
    if (run == null) return;
    setBusy(true); setError(null);
    try { setPredictions(await api.predict(run, text.split("\n"))); } catch (e) { setError(errorText(e)); }
    setBusy(false);
  };
  const doExport = async () => {
    if (run == null) return;
    setError(null);
    const dest = await api.pick("export_folder");
    if (!dest) return;
    try { setExported(await api.exportRun(run, dest, exportName)); } catch (e) { setError(errorText(e)); }
  };

  return (
    <section>
      <h1>Playground & Export</h1>
      {error && <div class="error" role="alert">{error}</div>}
      {runs.length === 0 ? (
        <p class="muted">No finished runs yet. <button onClick={() => props.nav("train")}>Train a model</button></p>
      ) : (
        <>
          <label>Run <select id="play-run" value={run ?? ""} onChange={(e) => setRun(Number((e.target as HTMLSelectElement).value))}>
            {runs.map((r) => <option value={r.id}>run {r.id}{r.name ? ` · ${r.name}` : ""}</option>)}
          </select></label>
          <textarea id="play-text" rows={4} placeholder="Type a text (one per line) and press Ctrl+Enter" value={text}
            onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
            onKeyDown={(e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); predict(); } }} />
          <button id="play-predict" class="primary" onClick={predict} disabled={busy || !text.trim()}>Predict</button>
          <div data-testid="predictions">
            {predictions.map((p) => (
              <div class="card prediction">
                <div><strong class="predicted">{p.label}</strong> · <span class="muted">{p.text}</span></div>
                {p.labels.map((l, i) => (
                  <div class="bar-row"><span class="bar-label">{l}</span><span class="bar" style={{ width: `${100 * p.probabilities[i]}%` }} /><span class="num small">{(100 * p.probabilities[i]).toFixed(1)}%</span></div>
                ))}
              </div>
            ))}
          </div>
          <h2>Export</h2>
          <p class="muted small">A Hugging Face folder: config.json with the labels, model.safetensors, the tokenizer and a model card. transformers loads it as is.</p>
          <div class="row">
            <label>Folder name <input id="export-name" value={exportName} onInput={(e) => setExportName((e.target as HTMLInputElement).value)} /></label>
            <button id="export" onClick={doExport}>Export to…</button>
          </div>
          {exported && <p class="ok" data-testid="exported">Exported to {exported}</p>}
        </>
      )}
    </section>
  );
}
