// The Train page's source for a causal-LM run: a file of instruction or chat data (Alpaca
// instruction/input/output, chat `messages`, ShareGPT conversations, prompt/completion or
// plain text), previewed with how the chosen model's chat template reads it.
import { useState } from "preact/hooks";
import { api, ChatTurn } from "../api";
import { usePreview } from "../preview";
import type { ChoiceData } from "./choices";

/** What a conversation file holds (`hone_app::conversations::ConversationPreview`). */
export type ConversationPreview = {
  conversations: number; plain_texts: number; assistant_turns: number; samples: ChatTurn[][];
  model_has_template: boolean | null; rendered: string | null; warnings: string[];
};

export function ConversationSource(props: { model: string; onChange: (d: { data: ChoiceData; questions: number } | null) => void }) {
  const [path, setPath] = useState<string | null>(null);
  const { preview, error, setError, busy } = usePreview<ConversationPreview>(
    path ? () => api.conversationPreview(path, props.model || null) : null,
    [path, props.model],
    (p) => props.onChange({
      questions: p.conversations,
      data: { train: path as string, text_column: "text", label_column: "label", choice_columns: [], valid_fraction: 0.1 },
    }),
    () => props.onChange(null),
  );

  const choose = async () => {
    const picked = await api.pick("data_file");
    if (picked) { setError(null); setPath(picked); }
  };

  const sample = preview?.samples[0];
  return (
    <div class="card" data-testid="conversation-source">
      <div class="row">
        <button id="conversation-file" onClick={choose}>{path ? "Another file…" : "Choose a file of conversations…"}</button>
        {path && <span class="small muted" title={path}>{path.split(/[\\/]/).pop()}</span>}
        {busy && <span class="small muted">reading…</span>}
        <span class="small muted">JSON or JSON lines: Alpaca (instruction, input, output), chat messages, ShareGPT, prompt/completion or text</span>
      </div>
      {error && <div class="error" role="alert">{error}</div>}
      {preview && (
        <div data-testid="conversation-preview">
          <p class="small">
            <strong data-testid="conversation-count">{preview.conversations} conversations</strong> · {preview.assistant_turns} assistant turns to learn
            {preview.plain_texts > 0 && <> · {preview.plain_texts} plain texts (learned whole)</>}
          </p>
          {preview.model_has_template === false && <p class="small field-warn">This model has no chat template: conversations are written as Alpaca prompts (### Instruction / ### Response), and chats with it should use the same.</p>}
          {preview.warnings.map((w) => <p class="small field-warn">{w}</p>)}
          {sample && (
            <div class="chat">
              {sample.map((t) => <div class={`turn ${t.role}`} data-role={t.role}><b>{t.role}</b><p>{t.content}</p></div>)}
            </div>
          )}
          {preview.rendered && <details><summary class="small">As the model reads it (its chat template)</summary><pre class="config" data-testid="conversation-rendered">{preview.rendered}</pre></details>}
        </div>
      )}
    </div>
  );
}
