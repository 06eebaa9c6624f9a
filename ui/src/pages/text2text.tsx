// The Train page's source for a text-to-text run (T5): a file of source and target texts
// (summaries of dialogues, translations, any task as text), its two columns mapped and its
// first examples shown as the model will read them.
import { useState } from "preact/hooks";
import { api, FilePreview } from "../api";
import { usePreview } from "../preview";
import type { ChoiceData } from "./choices";

/** Column names that usually hold a source and a target. */
const SOURCE_NAMES = ["source", "document", "dialogue", "context", "article", "text", "input", "question", "src"];
const TARGET_NAMES = ["target", "summary", "response", "highlights", "output", "answer", "label", "tgt"];

function guess(columns: string[], names: string[], not?: string): string {
  const lower = columns.map((c) => c.toLowerCase());
  for (const n of names) {
    const i = lower.indexOf(n);
    if (i >= 0 && columns[i] !== not) return columns[i];
  }
  return columns.find((c) => c !== not) ?? "";
}

export function Text2TextSource(props: { prefix: string; onChange: (d: { data: ChoiceData; questions: number } | null) => void }) {
  const [path, setPath] = useState<string | null>(null);
  const [source, setSource] = useState("");
  const [target, setTarget] = useState("");
  const { preview, error, setError, busy } = usePreview<FilePreview>(
    path ? () => api.datasetPreview(path, source && target ? { text: source, label: target } : undefined) : null,
    [path, source, target],
    (p) => {
      const s = source || guess(p.columns, SOURCE_NAMES);
      const t = target || guess(p.columns, TARGET_NAMES, s);
      if (!source) setSource(s);
      if (!target) setTarget(t);
      props.onChange(s && t ? {
        questions: p.rows_counted,
        data: { train: path as string, text_column: s, label_column: t, choice_columns: [], valid_fraction: 0.1 },
      } : null);
    },
    () => props.onChange(null),
  );

  const choose = async () => {
    const picked = await api.pick("data_file");
    if (picked) { setError(null); setSource(""); setTarget(""); setPath(picked); }
  };

  const columns = preview?.columns ?? [];
  return (
    <div class="card" data-testid="text2text-source">
      <div class="row">
        <button id="text2text-file" onClick={choose}>{path ? "Another file…" : "Choose a file of source and target texts…"}</button>
        {path && <span class="small muted" title={path}>{path.split(/[\\/]/).pop()}</span>}
        {busy && <span class="small muted">reading…</span>}
        <span class="small muted">CSV, TSV, JSON or JSON lines with a source and a target column (SAMSum: context, response)</span>
      </div>
      {error && <div class="error" role="alert">{error}</div>}
      {preview && (
        <div data-testid="text2text-preview">
          <div class="row">
            <label>Source <select id="text2text-source-column" value={source} onChange={(e) => setSource((e.target as HTMLSelectElement).value)}>
              {columns.map((c) => <option value={c}>{c}</option>)}
            </select></label>
            <label>Target <select id="text2text-target-column" value={target} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)}>
              {columns.map((c) => <option value={c}>{c}</option>)}
            </select></label>
          </div>
          <p class="small"><strong data-testid="text2text-count">{preview.rows_counted}{preview.complete ? "" : "+"} examples</strong>{preview.unlabeled > 0 && <> · {preview.unlabeled} without a target (left out)</>}</p>
          {preview.warnings.map((w) => <p class="small field-warn">{w}</p>)}
          {preview.rows.slice(0, 3).map((r) => (
            <div class="chat" data-line={r.line}>
              <div class="turn user"><b>source</b><p>{props.prefix}{r.text}</p></div>
              <div class="turn assistant"><b>target</b><p>{r.label ?? ""}</p></div>
            </div>
          ))}
        </div>
      )}
    </div>
  );
}
