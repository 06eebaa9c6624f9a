// Datasets: pick a file, check the preview and the column mapping (nothing is written yet),
// import with progress; browse, filter, label distribution, splits.
import { useEffect, useState } from "preact/hooks";
import { api, DatasetInfo, errorText, FilePreview, SourceSpec, StoredExample } from "../api";
import type { Nav } from "../main";

/** Rows of a dataset shown at a time; the pager goes through all of them. */
const PAGE = 200;
import { ConfirmButton } from "../confirm";

export function LabelBars(props: { counts: Record<string, number> }) {
  const entries = Object.entries(props.counts);
  const max = Math.max(1, ...entries.map(([, n]) => n));
  if (entries.length === 0) return <p class="muted small">No labels yet.</p>;
  return (
    <div class="bars" data-testid="label-bars">
      {entries.map(([label, n]) => (
        <div class="bar-row">
          <span class="bar-label">{label}</span>
          <span class="bar" style={{ width: `${(100 * n) / max}%` }} />
          <span class="num small">{n}</span>
        </div>
      ))}
    </div>
  );
}

export function DatasetsPage(props: { nav: Nav }) {
  const [datasets, setDatasets] = useState<DatasetInfo[]>([]);
  // The empty state waits for the list (an empty list, not a slow one).
  const [listed, setListed] = useState(false);
  const [path, setPath] = useState<string | null>(null);
  const [preview, setPreview] = useState<FilePreview | null>(null);
  const [classNames, setClassNames] = useState<Record<string, string>>({});
  const [spec, setSpec] = useState<SourceSpec>({});
  const [name, setName] = useState("");
  const [progress, setProgress] = useState<{ done: number; total: number } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [examples, setExamples] = useState<StoredExample[]>([]);
  const [filter, setFilter] = useState("");
  const [onlyUnlabeled, setOnlyUnlabeled] = useState(false);
  // Browsing: the page of rows shown (PAGE at a time) and how many match the filter.
  const [offset, setOffset] = useState(0);
  const [total, setTotal] = useState(0);
  const [split, setSplit] = useState({ valid: 0.1, test: 0.1, seed: 42 });

  const refresh = () => api.datasetsList().then((d) => { setDatasets(d); setListed(true); }).catch((e) => setError(errorText(e)));
  useEffect(() => { refresh(); }, []);
  const current = datasets.find((d) => d.name === selected) ?? null;
  // A new dataset or filter starts at its first row.
  useEffect(() => { setOffset(0); }, [selected, filter, onlyUnlabeled]);
  useEffect(() => {
    if (!selected) return;
    let stale = false;
    api.datasetExamples(selected, { text_contains: filter, labeled: onlyUnlabeled ? false : null, offset, limit: PAGE })
      .then((p) => {
        if (stale) return;
        setExamples(p.examples); setTotal(p.total);
        // Fewer rows than before (labeling with "only unlabeled" on): back to the last page.
        if (offset > 0 && offset >= p.total) setOffset(Math.max(0, Math.floor((p.total - 1) / PAGE) * PAGE));
      })
      .catch((e) => setError(errorText(e)));
    return () => { stale = true; };
  }, [selected, filter, onlyUnlabeled, datasets, offset]);
  const last = Math.max(0, Math.floor((total - 1) / PAGE) * PAGE);
  const pager = total > PAGE && (
    <div class="row small pager" data-testid="pager" data-offset={offset} data-total={total}>
      <button onClick={() => setOffset(0)} disabled={offset === 0} title="First rows">⏮</button>
      <button id="rows-previous" onClick={() => setOffset(Math.max(0, offset - PAGE))} disabled={offset === 0}>Previous {PAGE}</button>
      <span>rows {(offset + 1).toLocaleString()}–{Math.min(offset + PAGE, total).toLocaleString()} of {total.toLocaleString()}{filter || onlyUnlabeled ? " matching" : ""}</span>
      <button id="rows-next" onClick={() => setOffset(Math.min(last, offset + PAGE))} disabled={offset >= last}>Next {PAGE}</button>
      <button onClick={() => setOffset(last)} disabled={offset >= last} title="Last rows">⏭</button>
    </div>
  );

  const pickFile = async () => {
    setError(null);
    const p = await api.pick("data_file");
    if (!p) return;
    setPath(p);
    setName(p.split(/[\\/]/).pop()!.replace(/\.[^.]+$/, ""));
    try { const pv = await api.datasetPreview(p); setPreview(pv); setSpec(pv.spec); setClassNames({}); } catch (e) { setError(errorText(e)); }
  };
  const remap = async (change: Partial<SourceSpec>) => {
    const next = { ...spec, ...change };
    setSpec(next);
    if (path) try { setPreview(await api.datasetPreview(path, next)); } catch (e) { setError(errorText(e)); }
  };
  const doImport = async () => {
    if (!path) return;
    setError(null); setProgress({ done: 0, total: 1 });
    try {
      const renames = Object.fromEntries(Object.entries(classNames).map(([k, v]) => [k, v.trim()]).filter(([k, v]) => v && v !== k));
      await api.datasetImport(path, name.trim(), spec, Object.keys(renames).length ? renames : null, setProgress);
      setPreview(null); setPath(null); setSelected(name.trim());
      await refresh();
    } catch (e) { setError(errorText(e)); }
    setProgress(null);
  };
  const makeSplit = async () => {
    if (!current) return;
    try { await api.datasetSplit(current.name, "default", split.valid, split.test, split.seed); await refresh(); } catch (e) { setError(errorText(e)); }
  };
  const column = (label: string, key: keyof SourceSpec, optional: boolean) => (
    <label>
      {label}{" "}
      <select value={(spec[key] as string) ?? ""} onChange={(e) => remap({ [key]: (e.target as HTMLSelectElement).value || null })} data-column={key}>
        {optional && <option value="">(none)</option>}
        {preview!.columns.map((c) => <option value={c}>{c}</option>)}
      </select>
    </label>
  );

  return (
    <section>
      <h1>Datasets</h1>
      {error && <div class="error" role="alert">{error}</div>}
      <div class="row">
        <button id="import-file" onClick={pickFile}>Import a file…</button>
        <span class="muted small">CSV, TSV, JSONL, JSON, Parquet, CoNLL or “LABEL text” lines. Rows without a label can be labeled here.</span>
      </div>
      {preview && (
        <article class="card" data-testid="preview">
          <h2>Preview of {path}</h2>
          {preview.columns.length > 0 && (
            <div class="row">
              {column("Text", "text", false)}
              {column("Second text", "text_pair", true)}
              {column("Label", "label", true)}
            </div>
          )}
          {preview.format !== "parquet" && (
            <div class="row small">
              <label>Encoding <select id="encoding" value={spec.encoding ?? ""} onChange={(e) => remap({ encoding: (e.target as HTMLSelectElement).value || null })}>
                <option value="">detect (UTF-8, else Windows-1252)</option>
                <option value="utf-8">UTF-8</option>
                <option value="latin1">Windows-1252 / Latin-1</option>
                <option value="utf-16le">UTF-16 LE</option>
                <option value="utf-16be">UTF-16 BE</option>
              </select></label>
            </div>
          )}
          {preview.error && <div class="error">{preview.error}</div>}
          {preview.warnings.map((w) => <div class="notice">{w}</div>)}
          {preview.rows_counted > 0 && (
            <div data-testid="preview-counts">
              <p class="small">
                {preview.complete ? `${preview.rows_counted.toLocaleString()} rows` : `at least ${preview.rows_counted.toLocaleString()} rows (counted so far)`}
                {" · "}{preview.unlabeled > 0 ? `${preview.unlabeled.toLocaleString()} without a label (to label after import)` : "every row labeled"}
              </p>
              {Object.keys(preview.label_counts).length > 0 && <LabelBars counts={preview.label_counts} />}
              {Object.keys(preview.label_counts).length > 0 && Object.keys(preview.label_counts).length <= 20 && (
                <div class="row small" data-testid="class-names">
                  Class names:
                  {Object.keys(preview.label_counts).map((label) => (
                    <label>{label} → <input size={10} data-label={label} placeholder={label} value={classNames[label] ?? ""}
                      onInput={(e) => setClassNames({ ...classNames, [label]: (e.target as HTMLInputElement).value })} /></label>
                  ))}
                  <span class="muted">(optional: names shown everywhere and written into exported models)</span>
                </div>
              )}
            </div>
          )}
          <table class="list">
            <thead><tr><th>Line</th><th>Text</th>{spec.text_pair && <th>Second text</th>}<th>Label</th></tr></thead>
            <tbody>
              {preview.rows.slice(0, 10).map((r) => (
                <tr><td class="num">{r.line}</td><td>{r.text}</td>{spec.text_pair && <td>{r.text_pair}</td>}<td>{r.label ?? <span class="muted">unlabeled</span>}</td></tr>
              ))}
            </tbody>
          </table>
          <div class="row">
            <label>Name <input id="dataset-name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} /></label>
            <button id="do-import" class="primary" disabled={!name.trim() || !!progress || !!preview.error} onClick={doImport}>Import</button>
            <button class="ghost" onClick={() => { setPreview(null); setPath(null); }}>Cancel</button>
            {progress && <progress value={progress.done} max={progress.total || 1} />}
          </div>
        </article>
      )}
      {!listed ? null : datasets.length === 0 ? (
        !preview && <p class="muted">No datasets yet. Import a labeled file to start; SST-2 style TSV with sentence and label columns works as is.</p>
      ) : (
        <div class="columns">
          <div class="col narrow">
            <table class="list" data-testid="datasets">
              <thead><tr><th>Dataset</th><th class="num">Rows</th><th class="num">Labeled</th></tr></thead>
              <tbody>
                {datasets.map((d) => (
                  <tr class={d.name === selected ? "selected" : ""} data-dataset={d.name} tabIndex={0} onClick={() => setSelected(d.name)} onKeyDown={(e) => e.key === "Enter" && setSelected(d.name)}>
                    <td>{d.name}</td><td class="num">{d.rows}</td><td class="num">{d.labeled}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {current && (
            <div class="col">
              <h2>{current.name}</h2>
              <p class="muted small">{current.task} · {current.format} · {current.source}</p>
              {current.warnings.length > 0 && (
                <div class="notice" data-testid="import-warnings">
                  What the import noticed:
                  <ul>{current.warnings.map((w) => <li>{w}</li>)}</ul>
                </div>
              )}
              <LabelBars counts={current.label_counts} />
              <div class="row">
                <button onClick={() => props.nav("labeling", current.name)} disabled={current.labeled === current.rows && current.label_names.length === 0}>
                  {current.task === "token_classification" ? "Tag entities" : `Label (${current.rows - current.labeled} unlabeled)`}
                </button>
                <button onClick={() => props.nav("train", { dataset: current.name })}>Train on it</button>
                <ConfirmButton id="delete-dataset" label="Delete dataset" confirm="Delete"
                  question={`Delete “${current.name}” with its ${current.rows} examples and labels? Runs trained on it stay.`}
                  onConfirm={async () => { await api.datasetDelete(current.name); setSelected(null); await refresh(); }} />
              </div>
              <div class="row small">
                Split: validation <input type="number" step="0.05" min="0" max="0.9" value={split.valid} onChange={(e) => setSplit({ ...split, valid: Number((e.target as HTMLInputElement).value) })} />
                test <input type="number" step="0.05" min="0" max="0.9" value={split.test} onChange={(e) => setSplit({ ...split, test: Number((e.target as HTMLInputElement).value) })} />
                seed <input type="number" value={split.seed} onChange={(e) => setSplit({ ...split, seed: Number((e.target as HTMLInputElement).value) })} />
                <button onClick={makeSplit}>Make split “default”</button>
                <span class="muted">{current.splits.length ? `splits: ${current.splits.join(", ")}` : "no split yet (training then holds out 10%)"}</span>
              </div>
              <div class="row">
                <input placeholder="Filter by text" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
                <label class="small"><input type="checkbox" checked={onlyUnlabeled} onChange={(e) => setOnlyUnlabeled((e.target as HTMLInputElement).checked)} /> only unlabeled</label>
                <span class="muted small" data-testid="rows-shown">{total <= PAGE ? `${total.toLocaleString()} ${filter || onlyUnlabeled ? "matching " : ""}rows` : ""}</span>
              </div>
              {pager}
              <table class="list">
                <thead><tr><th>Line</th><th>Text</th><th>Label</th></tr></thead>
                <tbody>
                  {examples.map((x) => (
                    <tr><td class="num">{x.source_line}</td><td>{x.text}{x.text_pair && <div class="muted">{x.text_pair}</div>}</td><td>{Array.isArray(x.label) ? x.label.join(" ") : x.label ?? <span class="muted">–</span>}</td></tr>
                  ))}
                </tbody>
              </table>
              {pager}
            </div>
          )}
        </div>
      )}
    </section>
  );
}
