// Multiple choice on the Train page: a file of questions (CSV, TSV, JSON lines…), which columns
// hold the question, an optional passage, the options and the answer, and a preview of what
// the run will read — the first question with its options, the right one marked, how the
// answers spread over the letters and how long each (question, option) pair is in tokens.
import { useEffect, useState } from "preact/hooks";
import { api, errorText, type ChoiceColumns, type ChoicePreview } from "../api";

/** The run's `[data]` table for a file of questions. */
export type ChoiceData = {
  train: string; text_column: string; label_column: string; choice_columns: string[];
  context_column?: string; shuffle_choices?: number; valid_fraction: number;
};

/** Guesses: a column named like a question, like an answer, and like options (A–E, option…). */
function guess(columns: string[]): { question: string; answer: string; options: string[] } {
  const find = (re: RegExp) => columns.find((c) => re.test(c)) ?? "";
  const letters = columns.filter((c) => /^[A-Ea-e]$/.test(c));
  const listed = columns.filter((c) => /^(option|choice|ending|distractor)s?[ _-]?\d*$/i.test(c) || /^(options|choices|endings)$/i.test(c));
  return {
    question: find(/^(question|prompt|query|stem|sent1)$/i) || columns[0] || "",
    answer: find(/^(answer|label|correct|correct_answer|target|key)$/i),
    options: letters.length >= 2 ? letters : listed,
  };
}

export function ChoiceSource(props: { model: string; maxLength: number; onChange: (d: { data: ChoiceData; questions: number } | null) => void }) {
  const [path, setPath] = useState<string | null>(null);
  const [columns, setColumns] = useState<string[]>([]);
  const [question, setQuestion] = useState("");
  const [context, setContext] = useState("");
  const [options, setOptions] = useState<string[]>([]);
  const [answer, setAnswer] = useState("");
  const [shuffle, setShuffle] = useState(false);
  const [preview, setPreview] = useState<ChoicePreview | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const choose = async () => {
    const picked = await api.pick("data_file");
    if (!picked) return;
    setError(null); setPreview(null);
    try {
      const p = await api.datasetPreview(picked);
      if (p.error) { setError(p.error); return; }
      const g = guess(p.columns);
      setPath(picked); setColumns(p.columns); setQuestion(g.question); setAnswer(g.answer); setOptions(g.options); setContext("");
    } catch (e) { setError(errorText(e)); }
  };

  const cols: ChoiceColumns | null = path && question && answer && options.length > 0
    ? { question, context: context || null, choices: options, answer, shuffle_seed: shuffle ? 42 : null } : null;
  useEffect(() => {
    if (!path || !cols) { setPreview(null); props.onChange(null); return; }
    let stale = false;
    setBusy(true);
    api.choicePreview(path, cols, props.model || null, props.maxLength)
      .then((p) => {
        if (stale) return;
        setPreview(p); setError(null);
        props.onChange({
          questions: p.questions,
          data: {
            train: path, text_column: question, label_column: answer, choice_columns: options,
            ...(context ? { context_column: context } : {}), ...(shuffle ? { shuffle_choices: 42 } : {}), valid_fraction: 0.1,
          },
        });
      })
      .catch((e) => { if (!stale) { setPreview(null); setError(errorText(e)); props.onChange(null); } })
      .finally(() => { if (!stale) setBusy(false); });
    return () => { stale = true; };
  }, [path, question, context, options.join("\u0000"), answer, shuffle, props.model, props.maxLength]);

  const toggle = (c: string) => setOptions((o) => (o.includes(c) ? o.filter((x) => x !== c) : [...o, c]));
  const sample = preview?.samples[0];
  const total = preview ? preview.answers.reduce((a, [, n]) => a + n, 0) : 0;
  return (
    <div class="card" data-testid="choice-source">
      <div class="row">
        <button id="choice-file" onClick={choose}>{path ? "Another file…" : "Choose a file of questions…"}</button>
        {path && <span class="small muted" title={path}>{path.split(/[\\/]/).pop()}</span>}
        {busy && <span class="small muted">reading…</span>}
      </div>
      {error && <div class="error" role="alert">{error}</div>}
      {columns.length > 0 && (
        <div class="row">
          <label>Question <select id="choice-question" value={question} onChange={(e) => setQuestion((e.target as HTMLSelectElement).value)}>
            {columns.map((c) => <option value={c}>{c}</option>)}
          </select></label>
          <label title="A passage the question is about; it goes before the question">Passage <select id="choice-context" value={context} onChange={(e) => setContext((e.target as HTMLSelectElement).value)}>
            <option value="">none</option>{columns.map((c) => <option value={c}>{c}</option>)}
          </select></label>
          <label title="A letter (A, B, …), a 0-based index or the option's own text">Answer <select id="choice-answer" value={answer} onChange={(e) => setAnswer((e.target as HTMLSelectElement).value)}>
            <option value="">choose…</option>{columns.map((c) => <option value={c}>{c}</option>)}
          </select></label>
          <fieldset class="options" title="One column per option, in order, or one column holding a list">
            <legend>Options</legend>
            {columns.map((c) => (
              <label class="chip"><input type="checkbox" data-option={c} checked={options.includes(c)} onChange={() => toggle(c)} /> {c}</label>
            ))}
          </fieldset>
          <label class="small" title="For files that always put the right answer in the same column (SciQ's correct_answer)"><input id="choice-shuffle" type="checkbox" checked={shuffle} onChange={(e) => setShuffle((e.target as HTMLInputElement).checked)} /> shuffle options (seed 42)</label>
        </div>
      )}
      {preview && (
        <div data-testid="choice-preview">
          <p class="small">
            <strong data-testid="choice-count">{preview.questions} questions</strong> of {preview.options} options
            {total > 0 && <> · right answer {preview.answers.map(([l, n]) => `${l} ${Math.round((100 * n) / total)}%`).join(", ")}</>}
            {preview.longest > 0 && <> · each becomes {preview.options} (question, option) pairs of up to {preview.longest} tokens</>}
            {preview.truncated > 0 && <span class="field-warn"> · {preview.truncated} questions have a pair cut at {preview.max_length} tokens</span>}
          </p>
          {preview.warnings.map((w) => <p class="small field-warn">{w}</p>)}
          {sample && (
            <div class="choice-sample">
              {sample.context && <p class="small muted">{sample.context}</p>}
              <p><strong>{sample.question}</strong></p>
              <ol type="A">
                {sample.options.map((o, i) => (
                  <li class={i === sample.answer ? "right" : ""}>{o}{i === sample.answer && " ✓"}{sample.lengths[i] != null && <span class="muted small"> · {sample.lengths[i]} tokens</span>}</li>
                ))}
              </ol>
            </div>
          )}
        </div>
      )}
    </div>
  );
}
