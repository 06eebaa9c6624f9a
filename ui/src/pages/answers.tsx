// Question answering on the Train page: a SQuAD JSON or JSON lines file (question, context,
// answers), and a preview of what the run will read — how many questions and passages, the
// first question with its answer marked in the passage, and how many windows the passages make
// at the maximum length and document stride.
import { useState } from "preact/hooks";
import { api, type AnswerPreview } from "../api";
import { usePreview } from "../preview";
import type { ChoiceData } from "./choices";

export function AnswerSource(props: { model: string; maxLength: number; stride: number; onChange: (d: { data: ChoiceData; questions: number } | null) => void }) {
  const [path, setPath] = useState<string | null>(null);
  const { preview, error, setError, busy } = usePreview<AnswerPreview>(
    path ? () => api.answerPreview(path, props.model || null, props.maxLength, props.stride) : null,
    [path, props.model, props.maxLength, props.stride],
    (p) => props.onChange({
      questions: p.windows || p.questions,
      data: { train: path as string, text_column: "question", label_column: "answers", choice_columns: [], valid_fraction: 0.1 },
    }),
    () => props.onChange(null),
  );

  const choose = async () => {
    const picked = await api.pick("data_file");
    if (picked) { setError(null); setPath(picked); }
  };

  const sample = preview?.samples[0];
  const marked = (context: string, answer: [string, number] | null) => {
    if (!answer) return <>{context}</>;
    const chars = Array.from(context), [text, start] = answer, end = start + Array.from(text).length;
    return <>{chars.slice(0, start).join("")}<mark>{chars.slice(start, end).join("")}</mark>{chars.slice(end).join("")}</>;
  };
  return (
    <div class="card" data-testid="answer-source">
      <div class="row">
        <button id="answer-file" onClick={choose}>{path ? "Another file…" : "Choose a SQuAD file…"}</button>
        {path && <span class="small muted" title={path}>{path.split(/[\\/]/).pop()}</span>}
        {busy && <span class="small muted">reading…</span>}
        <span class="small muted">SQuAD v1.1 JSON, or JSON lines with question, context and answers {"{text, answer_start}"}</span>
      </div>
      {error && <div class="error" role="alert">{error}</div>}
      {preview && (
        <div data-testid="answer-preview">
          <p class="small">
            <strong data-testid="answer-count">{preview.questions} questions</strong> on {preview.passages} passages
            {preview.answered < preview.questions && <span class="field-warn"> · {preview.questions - preview.answered} without an answer (training needs one for each)</span>}
            {preview.windows > 0 && <> · <span data-testid="answer-windows">{preview.windows} windows</span> of {preview.max_length} tokens sharing {preview.stride} (up to {preview.most_windows} for one passage)</>}
          </p>
          {preview.warnings.map((w) => <p class="small field-warn">{w}</p>)}
          {sample && (
            <div class="choice-sample">
              <p><strong>{sample.question}</strong>{sample.windows > 0 && <span class="muted small"> · {sample.windows} window{sample.windows === 1 ? "" : "s"}</span>}</p>
              <p class="small passage">{marked(sample.context, sample.answer)}</p>
            </div>
          )}
        </div>
      )}
    </div>
  );
}
