// Labeling: one example at a time — keys 1–9 pick a class, Enter or → moves on, ← goes back,
// Ctrl+Z undoes — or many short texts at once in the bulk view. With model help (assist.tsx)
// the queue is a run's suggestions, least sure first, and A or Space accepts the suggestion.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { api, DatasetInfo, errorText, StoredExample, Suggestion } from "../api";
import { typing } from "../keys";
import type { Nav } from "../main";
import { AssistPanel, Queue } from "./assist";
import { NerLabeler } from "./ner";

/** The queue's suggestions as the examples the page labels, in the queue's order. */
function queueItems(q: Queue): StoredExample[] {
  return q.order.map((s, i) => ({ id: s.example_id, position: i, source_line: null, text: s.text, text_pair: s.text_pair, tokens: s.tokens, label: null }));
}

/** Examples fetched at a time; the next page comes before the last one is reached (a
 * setting in localStorage changes it, so a test can page through a small dataset). */
function pageSize(): number {
  return Number(localStorage.getItem("hone.labelingPageSize")) || 500;
}

function percent(p: number): string {
  return `${Math.round(p * 100)}%`;
}

export function LabelingPage(props: { dataset: string | null; nav: Nav }) {
  const [datasets, setDatasets] = useState<DatasetInfo[] | null>(null);
  const [name, setName] = useState<string | null>(props.dataset);
  const [info, setInfo] = useState<DatasetInfo | null>(null);
  const [items, setItems] = useState<StoredExample[]>([]);
  const [index, setIndex] = useState(0);
  const [classes, setClasses] = useState<string[]>([]);
  const [newClass, setNewClass] = useState("");
  const [undo, setUndo] = useState<{ id: number; previous: string | null; index: number }[]>([]);
  const [bulk, setBulk] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [queue, setQueue] = useState<Queue | null>(null);
  const [renaming, setRenaming] = useState<string | null>(null);
  const [newName, setNewName] = useState("");
  // More examples after the loaded ones (another page to fetch), and whether one is coming.
  const [more, setMore] = useState(false);
  const fetching = useRef(false);

  useEffect(() => { api.datasetsList().then((d) => { setDatasets(d); if (!name && d.length) setName(d[0].name); }); }, []);
  const load = async (n: string) => {
    try {
      // Classes: the unlabeled rows. Entities: every sentence (CoNLL files come tagged; this is
      // where tags get corrected).
      const info = (await api.datasetExamples(n, { limit: 1 })).dataset;
      const entities = info.task === "token_classification";
      const page = await api.datasetExamples(n, { labeled: entities ? null : false, limit: pageSize() });
      setInfo(page.dataset);
      setQueue(null);
      setItems(page.examples);
      setMore(page.examples.length === pageSize());
      setIndex(0);
      setClasses(page.dataset.label_names.length ? page.dataset.label_names : Object.keys(page.dataset.label_counts));
    } catch (e) { setError(errorText(e)); }
  };
  useEffect(() => { if (name) load(name); }, [name]);
  // The next page, fetched while a few examples of this one are left. Unlabeled examples are
  // those still unlabeled in position order, so the page after the loaded ones starts after
  // as many of them as are loaded and still unlabeled.
  const loadMore = async () => {
    if (!more || queue || !info || fetching.current) return;
    fetching.current = true;
    const entities = info.task === "token_classification";
    const offset = entities ? items.length : items.filter((x) => x.label === null).length;
    try {
      const page = await api.datasetExamples(info.name, { labeled: entities ? null : false, offset, limit: pageSize() });
      const known = new Set(items.map((x) => x.id));
      const fresh = page.examples.filter((x) => !known.has(x.id));
      const end = items.length;
      setItems((all) => [...all, ...fresh]);
      // At the old last example, already labeled: on to the first new one.
      if (fresh.length > 0) setIndex((i) => (i === end - 1 && items[i]?.label !== null ? end : i));
      setMore(page.examples.length === pageSize());
    } catch (e) { setError(errorText(e)); }
    fetching.current = false;
  };
  useEffect(() => { if (!bulk && index >= items.length - 2) loadMore(); }, [index, items.length, more, queue]);
  const applyQueue = (q: Queue | null) => {
    setQueue(q);
    if (q) { setItems(queueItems(q)); setIndex(0); }
    else if (name) load(name);
  };
  // A class renamed in the store: its examples (those shown too) follow.
  const renameClass = async (old: string, renamed: string) => {
    setRenaming(null);
    const next = renamed.trim();
    if (!info || !next || next === old) return;
    if (!info.label_names.includes(old)) { setClasses((cs) => cs.map((c) => (c === old ? next : c))); return; }
    try {
      const updated = await api.datasetRenameClass(info.name, old, next);
      setInfo(updated);
      setClasses((cs) => cs.map((c) => (c === old ? next : c)));
      setItems((all) => all.map((x) => (x.label === old ? { ...x, label: next } : x)));
    } catch (e) { setError(errorText(e)); }
  };
  const suggestionOf = (x: StoredExample | undefined): Suggestion | undefined => (x ? queue?.byId.get(x.id) : undefined);

  const labelOf = (x: StoredExample) => (typeof x.label === "string" ? x.label : null);
  const labeled = items.filter((x) => labelOf(x) !== null).length;
  const total = info ? info.rows : 0;
  const doneOverall = info ? info.labeled + labeled : 0;

  // The label shows and the card moves on at once (a fast typist's next key labels the next
  // example, not this one again); a failed save puts the old label back and says why.
  const assign = async (i: number, label: string | null) => {
    const x = items[i];
    if (!x) return;
    const previous = labelOf(x);
    setItems((all) => all.map((y, k) => (k === i ? { ...y, label } : y)));
    if (!bulk) setIndex((k) => Math.min(items.length - 1, Math.max(k, i + 1)));
    try {
      await api.setLabel(x.id, label);
      setUndo((u) => [...u, { id: x.id, previous, index: i }]);
    } catch (e) {
      setItems((all) => all.map((y) => (y.id === x.id ? { ...y, label: previous } : y)));
      setError(errorText(e));
    }
  };
  const undoLast = async () => {
    const last = undo[undo.length - 1];
    if (!last) return;
    await api.setLabel(last.id, last.previous);
    setItems((all) => all.map((y) => (y.id === last.id ? { ...y, label: last.previous } : y)));
    setIndex(last.index);
    setUndo((u) => u.slice(0, -1));
  };

  const entities = info?.task === "token_classification";
  // A layout effect: the listener for this render's example is in place before the page shows.
  useLayoutEffect(() => {
    if (bulk || entities) return;
    const onKey = (e: KeyboardEvent) => {
      if (typing(e)) return;
      if ((e.ctrlKey || e.metaKey) && e.key === "z") { e.preventDefault(); undoLast(); return; }
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const n = Number(e.key);
      const suggested = suggestionOf(items[index]);
      if (n >= 1 && n <= 9 && classes[n - 1] !== undefined) { e.preventDefault(); assign(index, classes[n - 1]); }
      else if ((e.key === "a" || e.key === " ") && suggested && typeof suggested.label === "string") { e.preventDefault(); assign(index, suggested.label); }
      else if (e.key === "Enter" || e.key === "ArrowRight") { e.preventDefault(); setIndex((k) => Math.min(items.length - 1, k + 1)); }
      else if (e.key === "ArrowLeft") { e.preventDefault(); setIndex((k) => Math.max(0, k - 1)); }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  });

  const x = items[index];
  const suggestion = suggestionOf(x);
  return (
    <section>
      <h1>Labeling</h1>
      {error && <div class="error" role="alert">{error}</div>}
      {datasets === null ? (
        <p class="muted small">Loading datasets…</p>
      ) : datasets.length === 0 ? (
        <p class="muted">Import a dataset first; rows without a label are waiting here. <button onClick={() => props.nav("datasets")}>Datasets</button></p>
      ) : (
        <>
          <div class="row">
            <select value={name ?? ""} onChange={(e) => setName((e.target as HTMLSelectElement).value)} aria-label="Dataset">
              {datasets.map((d) => <option value={d.name}>{d.name}</option>)}
            </select>
            {!entities && <label class="small"><input type="checkbox" checked={bulk} onChange={(e) => setBulk((e.target as HTMLInputElement).checked)} /> bulk view</label>}
            <span class="small" data-testid="label-progress">{doneOverall} of {total} labeled</span>
            <progress value={doneOverall} max={total || 1} />
          </div>
          {/* The loaded dataset's own name and task: `name` changes before its info arrives. */}
          {info && <AssistPanel dataset={info.name} task={info.task} onQueue={applyQueue} />}
          {!entities && <div class="row small" data-testid="classes">
            Classes: {classes.map((c, i) => renaming === c ? (
              <input class="tag" size={10} value={newName} aria-label={`New name for ${c}`} data-renaming={c} autoFocus
                onInput={(e) => setNewName((e.target as HTMLInputElement).value)}
                onKeyDown={(e) => { if (e.key === "Enter") renameClass(c, newName); if (e.key === "Escape") setRenaming(null); }} />
            ) : (
              <button class="tag" data-class={c} title="Rename this class (its examples follow; new runs export the new name)"
                onClick={() => { setRenaming(c); setNewName(c); }}>{i < 9 && <kbd>{i + 1}</kbd>} {c}</button>
            ))}
            <input placeholder="new class" value={newClass} onInput={(e) => setNewClass((e.target as HTMLInputElement).value)}
              onKeyDown={(e) => { if (e.key === "Enter" && newClass.trim() && !classes.includes(newClass.trim())) { setClasses([...classes, newClass.trim()]); setNewClass(""); } }} />
          </div>}
          {info?.task === "token_classification" ? (
            <NerLabeler info={info} examples={items} onSaved={() => {}} suggested={queue?.byId} onIndex={setIndex} />
          ) : items.length === 0 || (!more && !bulk && labeled === items.length && index === items.length - 1 && labelOf(items[index]) !== null) ? (
            <div class="done-note" data-testid="all-labeled">
              {queue ? "Every example in the queue is labeled: start the next round or re-score." : "Every example of this dataset is labeled."}{" "}
              <button onClick={() => props.nav("train", { dataset: name })}>Train on it</button>{" "}
              {undo.length > 0 && <button class="ghost" onClick={undoLast}>Undo last</button>}
            </div>
          ) : bulk ? (
            <table class="list" data-testid="bulk">
              <tbody>
                {items.map((y, i) => (
                  <tr><td>{y.text}</td><td>
                    <select value={labelOf(y) ?? ""} onChange={(e) => assign(i, (e.target as HTMLSelectElement).value || null)}>
                      <option value="">–</option>
                      {classes.map((c) => <option value={c}>{c}</option>)}
                    </select>
                  </td></tr>
                ))}
              </tbody>
            </table>
          ) : (
            <article class="card label-card" data-testid="label-card" data-example={x?.id}>
              <div class="muted small">
                {queue ? `example ${index + 1} of ${items.length} in the queue` : `example ${index + 1} of ${more && info ? info.rows - info.labeled : items.length} unlabeled · line ${x?.source_line}`}
              </div>
              <p class="big">{x?.text}</p>
              {x?.text_pair && <p class="big muted">{x.text_pair}</p>}
              {suggestion && (
                <p class="suggestion" data-testid="suggestion" data-label={String(suggestion.label)}>
                  Run {queue!.runId} suggests <strong>{String(suggestion.label)}</strong> · {percent(suggestion.confidence)} sure{" "}
                  <button class="ghost" onClick={() => assign(index, String(suggestion.label))}><kbd>A</kbd> accept</button>
                </p>
              )}
              <div class="row">
                {classes.map((c, i) => (
                  <button class={labelOf(x!) === c ? "primary" : suggestion?.label === c ? "suggested" : ""} onClick={() => assign(index, c)}>{i < 9 ? `${i + 1} · ` : ""}{c}</button>
                ))}
              </div>
              <p class="muted small">Keys 1–9 pick a class{suggestion ? " · A or Space accepts the suggestion" : ""} · Enter / → next · ← back · Ctrl+Z undo</p>
            </article>
          )}
        </>
      )}
    </section>
  );
}
