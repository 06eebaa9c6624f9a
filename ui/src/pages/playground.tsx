// Playground & Export: type text, see what any finished run's model makes of it (a text
// classifier's class and probabilities; a token classifier's entities highlighted inline with
// their type and score; a multiple-choice model's options ranked); export the run's model
// (Hugging Face format with its model card).
import { useEffect, useState } from "preact/hooks";
import { AnswerPrediction, api, ChatTurn, ChoicePrediction, EntityPrediction, errorText, Generation, Prediction, Predictions, RunRecord, TokenPrediction } from "../api";
import type { Nav } from "../main";

/** Hues of the usual CoNLL types, far apart; other types get a hue from their name. */
const TYPE_HUES: Record<string, number> = { PER: 210, ORG: 28, LOC: 135, MISC: 285 };

/** A stable hue per entity type, so PER is the same colour in every text. */
function hue(kind: string): number {
  if (kind in TYPE_HUES) return TYPE_HUES[kind];
  let h = 0;
  for (const c of kind) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

/** The text with its entities marked (character offsets), type and score as a badge. */
function EntityText(props: { text: string; entities: EntityPrediction[] }) {
  const chars = Array.from(props.text);
  const parts: any[] = [];
  let at = 0;
  for (const e of props.entities) {
    if (e.start < at) continue;
    parts.push(chars.slice(at, e.start).join(""));
    parts.push(
      <mark class="entity" data-type={e.type} style={{ background: `hsl(${hue(e.type)} 70% 50% / 0.22)` }}
        title={`${e.type} · ${(100 * e.score).toFixed(1)}%`}>
        {chars.slice(e.start, e.end).join("")} <b>{e.type}</b> <small class="muted">{(100 * e.score).toFixed(0)}%</small>
      </mark>,
    );
    at = e.end;
  }
  parts.push(chars.slice(at).join(""));
  return <p class="entity-text">{parts}</p>;
}

function TokenPredictionCard(props: { p: TokenPrediction }) {
  const p = props.p;
  return (
    <div class="card prediction" data-testid="entity-prediction">
      <EntityText text={p.text} entities={p.entities} />
      {p.entities.length === 0
        ? <p class="muted small">No entities found in this text.</p>
        : (
          <table class="list small">
            <thead><tr><th>Entity</th><th>Type</th><th class="num">Score</th><th class="num">Characters</th></tr></thead>
            <tbody>{p.entities.map((e) => (
              <tr><td>{e.text}</td><td>{e.type}</td><td class="num">{(100 * e.score).toFixed(1)}%</td><td class="num">{e.start}–{e.end}</td></tr>
            ))}</tbody>
          </table>
        )}
      {p.truncated && <p class="muted small">The text was longer than the model's length; words past the cut were not tagged.</p>}
    </div>
  );
}

function ClassPredictionCard(props: { p: Prediction }) {
  const p = props.p;
  return (
    <div class="card prediction">
      <div><strong class="predicted">{p.label}</strong> · <span class="muted">{p.text}</span></div>
      {p.labels.map((l, i) => (
        <div class="bar-row"><span class="bar-label">{l}</span><span class="bar" style={{ width: `${100 * p.probabilities[i]}%` }} /><span class="num small">{(100 * p.probabilities[i]).toFixed(1)}%</span></div>
      ))}
    </div>
  );
}

function ChoicePredictionCard(props: { p: ChoicePrediction }) {
  const p = props.p;
  return (
    <div class="card prediction choices" data-testid="choice-prediction">
      <div><strong>{p.question}</strong></div>
      {p.ranking.map((i, rank) => (
        <div class={`bar-row${rank === 0 ? " best" : ""}`} data-rank={rank + 1} data-option={p.options[i]}>
          <span class="bar-label">{String.fromCharCode(65 + i)}. {p.options[i]}</span>
          <span class="bar" style={{ width: `${100 * p.probabilities[i]}%` }} />
          <span class="num small">{(100 * p.probabilities[i]).toFixed(1)}%</span>
        </div>
      ))}
      {p.truncated && <p class="muted small">A (question, option) pair was longer than the model's length and was cut.</p>}
    </div>
  );
}

/** The passage with the answer highlighted, its probability and how many windows were read. */
function AnswerCard(props: { p: AnswerPrediction }) {
  const p = props.p;
  const chars = Array.from(p.context);
  const before = chars.slice(0, p.start).join(""), answer = chars.slice(p.start, p.end).join(""), after = chars.slice(p.end).join("");
  return (
    <div class="card" data-answer={p.answer} data-start={p.start} data-end={p.end}>
      <p><strong>{p.answer || "(no answer found)"}</strong> <span class="muted small">{(100 * p.score).toFixed(1)}% · characters {p.start}–{p.end} · {p.windows} window{p.windows === 1 ? "" : "s"}</span></p>
      <p class="passage">{before}<mark>{answer}</mark>{after}</p>
    </div>
  );
}

/** Why an answer ended, in words. */
const STOP_TEXT: Record<Generation["stop"], string> = {
  end_token: "ended by the model", stop_string: "ended at a stop text", length: "stopped at the length limit",
  context: "stopped: the model's context is full", cancelled: "stopped by you",
};

/** A chat with a language model run: the answer streams in as it is written; Enter sends,
 * Shift+Enter starts a new line, Escape stops the answer (what it has stays). A text-to-text
 * run answers each message as its source, and can search beams (its text comes when the
 * search ends). */
function Chat(props: { run: number; textToText: boolean }) {
  const [turns, setTurns] = useState<ChatTurn[]>([]);
  const [draft, setDraft] = useState("");
  const [system, setSystem] = useState("");
  const [temperature, setTemperature] = useState(0.7);
  const [maxNew, setMaxNew] = useState(256);
  const [beams, setBeams] = useState(1);
  const [noRepeat, setNoRepeat] = useState(0);
  const [lengthPenalty, setLengthPenalty] = useState(1);
  const [writing, setWriting] = useState(false);
  const [last, setLast] = useState<Generation | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => { setTurns([]); setLast(null); setError(null); }, [props.run]);

  const send = async () => {
    const text = draft.trim();
    if (!text || writing) return;
    const history: ChatTurn[] = [...turns, { role: "user", content: text }];
    setTurns([...history, { role: "assistant", content: "" }]);
    setDraft(""); setWriting(true); setError(null); setLast(null);
    const messages: ChatTurn[] = system.trim() ? [{ role: "system", content: system.trim() }, ...history] : history;
    let answer = "";
    try {
      const search = props.textToText ? { num_beams: beams, length_penalty: lengthPenalty, early_stopping: beams > 1, no_repeat_ngram_size: noRepeat } : undefined;
      const done = await api.chat(props.run, messages, {
        temperature, max_new_tokens: maxNew, top_p: temperature > 0 ? 0.9 : 1,
      }, (piece) => { answer += piece; setTurns([...history, { role: "assistant", content: answer }]); }, search);
      setTurns([...history, { role: "assistant", content: done.text }]);
      setLast(done);
    } catch (e) {
      setError(errorText(e));
      setTurns(turns);
      setDraft(text);
    }
    setWriting(false);
  };

  return (
    <div class="chat-box">
      {error && <div class="error" role="alert">{error}</div>}
      <div class="chat" data-testid="chat" aria-live="polite">
        {turns.length === 0 && <p class="muted small">{props.textToText
          ? "Write a source text; the model writes its target (the run's task prefix goes before it, as in training)."
          : "Ask the model something; it answers through its chat template, as it was trained."}</p>}
        {turns.map((t, i) => (
          <div class={`turn ${t.role}`} data-role={t.role}>
            <b>{t.role === "user" ? "You" : "Model"}</b>
            <p>{t.content || (writing && i === turns.length - 1
              ? (props.textToText && beams > 1 ? `searching ${beams} beams…` : "…")
              : t.role === "assistant" ? <span class="muted" data-testid="empty-answer">(an empty answer)</span> : "")}</p>
          </div>
        ))}
      </div>
      {last && <p class="muted small" data-testid="chat-stats">{last.new_tokens} token{last.new_tokens === 1 ? "" : "s"} after a {last.prompt_tokens}-token {props.textToText ? "source" : "prompt"} · {last.tokens_per_second.toFixed(1)} tokens/s · {STOP_TEXT[last.stop]}</p>}
      <textarea id="chat-input" rows={3} placeholder="Message (Enter sends, Shift+Enter for a new line, Escape stops the answer)" value={draft}
        onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); }
          if (e.key === "Escape" && writing) { e.preventDefault(); api.chatStop(); }
        }} />
      <div class="row">
        <button id="chat-send" class="primary" onClick={send} disabled={writing || !draft.trim()}>Send</button>
        {writing && <button id="chat-stop" onClick={() => api.chatStop()}>Stop</button>}
        <button id="chat-clear" onClick={() => { setTurns([]); setLast(null); }} disabled={writing || turns.length === 0}>New chat</button>
      </div>
      <details>
        <summary>Settings</summary>
        {!props.textToText && <label>System prompt <textarea id="chat-system" rows={2} placeholder="Empty: the template's own (if it has one)" value={system} onInput={(e) => setSystem((e.target as HTMLTextAreaElement).value)} /></label>}
        <div class="row">
          <label title={beams > 1 ? "Beam search does not sample" : "0 always takes the most likely token"}>Temperature <input id="chat-temperature" type="number" min={0} max={2} step={0.1} value={temperature}
            disabled={props.textToText && beams > 1}
            onInput={(e) => setTemperature(Math.max(0, Number((e.target as HTMLInputElement).value) || 0))} /></label>
          {props.textToText && <>
            <label title="More beams find likelier targets, slower; the answer appears when the search ends">Beams <input id="chat-beams" type="number" min={1} max={16} value={beams}
              onInput={(e) => setBeams(Math.min(16, Math.max(1, Math.round(Number((e.target as HTMLInputElement).value) || 1))))} /></label>
            <label title="Above 1 favours longer targets in beam search, below 1 shorter">Length penalty <input id="chat-length-penalty" type="number" step={0.1} value={lengthPenalty}
              disabled={beams === 1}
              onInput={(e) => setLengthPenalty(Number((e.target as HTMLInputElement).value) || 0)} /></label>
            <label title="No run of this many tokens appears twice (0: no rule)">No repeated n-grams <input id="chat-no-repeat" type="number" min={0} max={10} value={noRepeat}
              onInput={(e) => setNoRepeat(Math.max(0, Math.round(Number((e.target as HTMLInputElement).value) || 0)))} /></label>
          </>}
          <label>Longest answer (tokens) <input id="chat-max-tokens" type="number" min={1} max={4096} value={maxNew}
            onInput={(e) => setMaxNew(Math.max(1, Math.round(Number((e.target as HTMLInputElement).value) || 1)))} /></label>
        </div>
      </details>
    </div>
  );
}

export function PlaygroundPage(props: { run: number | null; nav: Nav }) {
  const [runs, setRuns] = useState<RunRecord[]>([]);
  const [run, setRun] = useState<number | null>(props.run);
  const [text, setText] = useState("");
  const [predictions, setPredictions] = useState<Predictions | null>(null);
  const [exportName, setExportName] = useState("");
  const [onnxInt8, setOnnxInt8] = useState(true);
  const [exportingOnnx, setExportingOnnx] = useState(false);
  const [ggufType, setGgufType] = useState<"f16" | "q8_0">("q8_0");
  const [exported, setExported] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // Multiple-choice runs take a question, an optional passage and options (one per line).
  const [question, setQuestion] = useState("");
  const [passage, setPassage] = useState("");
  const chosen = runs.find((r) => r.id === run);
  const isChoice = chosen?.config?.task === "multiple-choice";
  // Question-answering runs take a question and the passage that holds its answer.
  const isAnswer = chosen?.config?.task === "question-answering";
  // Language model runs get a chat (a text-to-text model answers each message as its source).
  const isLanguage = chosen?.config?.task === "causal-lm" || chosen?.config?.task === "text2text";
  const isTextToText = chosen?.config?.task === "text2text";

  useEffect(() => {
    api.runsList().then((all) => {
      const done = all.filter((r) => r.status === "completed" || r.status === "cancelled");
      setRuns(done);
      if (run == null && done.length) setRun(done[0].id);
    }).catch((e) => setError(errorText(e)));
  }, []);
  useEffect(() => { if (run != null) setExportName(`hone-run-${run}`); setPredictions(null); setExported(null); }, [run]);

  // Predict with the linear layers in int8 (Hone's own dynamic quantization).
  const [int8, setInt8] = useState(false);
  const predict = async () => {
    if (run == null) return;
    setBusy(true); setError(null);
    try {
      setPredictions(isAnswer
        ? await api.predictAnswer(run, question, text, int8)
        : isChoice
        ? await api.predictChoices(run, question, passage.trim() || null, text.split("\n").filter((o) => o.trim()), int8)
        : await api.predict(run, text.split("\n"), int8));
    } catch (e) { setError(errorText(e)); }
    setBusy(false);
  };
  const isLora = chosen?.config?.training?.peft === "lora";
  const isPrefix = chosen?.config?.training?.peft === "prefix";
  const doExport = async (merge: boolean) => {
    if (run == null) return;
    setError(null);
    const dest = await api.pick("export_folder");
    if (!dest) return;
    try { setExported(await api.exportRun(run, dest, merge ? `${exportName}-merged` : exportName, merge)); } catch (e) { setError(errorText(e)); }
  };
  const doExportGguf = async () => {
    if (run == null) return;
    setError(null);
    const dest = await api.pick("export_folder");
    if (!dest) return;
    setExportingOnnx(true);
    try { setExported(await api.exportRunGguf(run, dest, `${exportName}-${ggufType}.gguf`, ggufType)); } catch (e) { setError(errorText(e)); }
    setExportingOnnx(false);
  };
  const doExportOnnx = async () => {
    if (run == null) return;
    setError(null);
    const dest = await api.pick("export_folder");
    if (!dest) return;
    setExportingOnnx(true);
    try { setExported(await api.exportRunOnnx(run, dest, `${exportName}-onnx`, onnxInt8)); } catch (e) { setError(errorText(e)); }
    setExportingOnnx(false);
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
          {isLanguage && run != null && <Chat run={run} textToText={isTextToText} />}
          {!isLanguage && <>
          {(isChoice || isAnswer) && <>
            <input id="play-question" placeholder="The question" value={question} onInput={(e) => setQuestion((e.target as HTMLInputElement).value)} />
            {isChoice && <textarea id="play-passage" rows={2} placeholder="A passage the question is about (optional)" value={passage} onInput={(e) => setPassage((e.target as HTMLTextAreaElement).value)} />}
          </>}
          <textarea id="play-text" rows={4} placeholder={isAnswer ? "The passage that holds the answer; Ctrl+Enter finds it" : isChoice ? "The options, one per line; Ctrl+Enter ranks them" : "Type a text (one per line) and press Ctrl+Enter"} value={text}
            onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
            onKeyDown={(e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); predict(); } }} />
          <button id="play-predict" class="primary" onClick={predict} disabled={busy || !text.trim() || ((isChoice || isAnswer) && !question.trim())}>{isAnswer ? "Find the answer" : isChoice ? "Rank options" : "Predict"}</button>
          <label class="small" title="Runs the model's linear layers in 8-bit integers (weights per output feature, each token's activations as it runs), as an int8 deployment would: the scores change a little. The model on disk is unchanged.">
            <input type="checkbox" id="play-int8" checked={int8} onChange={(e) => setInt8((e.target as HTMLInputElement).checked)} /> int8 (as a quantized model predicts)
          </label>
          <div data-testid="predictions">
            {predictions?.task === "token-classification" && predictions.predictions.map((p) => <TokenPredictionCard p={p} />)}
            {predictions?.task === "sequence-classification" && predictions.predictions.map((p) => <ClassPredictionCard p={p} />)}
            {predictions?.task === "multiple-choice" && predictions.predictions.map((p) => <ChoicePredictionCard p={p} />)}
            {predictions?.task === "question-answering" && predictions.predictions.map((p) => <AnswerCard p={p} />)}
          </div>
          </>}
          <h2>Export</h2>
          {isLora
            ? <p class="muted small" data-testid="export-lora">A LoRA run: export the adapter in PEFT's format (adapter_config.json, adapter_model.safetensors, the labels in head_config.json, the tokenizer and a model card; PeftModel.from_pretrained loads it on the base model), or the adapter merged into the base model's weights: a full folder plain transformers loads.</p>
            : isPrefix
            ? <p class="muted small" data-testid="export-prefix">A prefix-tuning run: export the prefix in PEFT's format (adapter_config.json with PREFIX_TUNING, adapter_model.safetensors, the tokenizer and a model card; PeftModel.from_pretrained loads it on the base model). A prefix is extra keys and values in every attention layer, not a change of weights: it has no merged form.</p>
            : isTextToText
            ? <p class="muted small" data-testid="export-text2text">A Hugging Face folder: config.json (with the task prefix), generation_config.json, model.safetensors, the tokenizer and a model card. transformers' T5ForConditionalGeneration loads it; its greedy generate writes what the Playground writes. (ONNX and GGUF do not take T5 yet.)</p>
            : isLanguage
            ? <p class="muted small">A Hugging Face folder: config.json, model.safetensors, the tokenizer with its chat template and a model card. transformers' text-generation pipeline loads it as is.</p>
            : <p class="muted small">A Hugging Face folder: config.json with the labels, model.safetensors, the tokenizer and a model card. transformers loads it as is.</p>}
          <div class="row">
            <label>Folder name <input id="export-name" value={exportName} onInput={(e) => setExportName((e.target as HTMLInputElement).value)} /></label>
            <button id="export" onClick={() => doExport(false)}>{isLora || isPrefix ? "Export adapter (PEFT) to…" : "Export to…"}</button>
            {isLora && <button id="export-merged" onClick={() => doExport(true)}>Export merged model to…</button>}
          </div>
          {isLanguage && !isTextToText && !isPrefix && <>
            <p class="muted small" data-testid="export-gguf-help">GGUF: one file for llama.cpp, Ollama and LM Studio (transformers loads it too) with the tokenizer and chat template inside; q8_0 is about half of f16's size.{isLora ? " The LoRA adapter is merged into the weights first." : ""}</p>
            <div class="row">
              <label>Weights <select id="export-gguf-type" value={ggufType} onChange={(e) => setGgufType((e.target as HTMLSelectElement).value as "f16" | "q8_0")}>
                <option value="q8_0">q8_0 (8-bit)</option>
                <option value="f16">f16</option>
              </select></label>
              <button id="export-gguf" disabled={exportingOnnx} onClick={doExportGguf}>{exportingOnnx ? "Exporting GGUF…" : "Export GGUF to…"}</button>
            </div>
          </>}
          {!isLanguage && !isPrefix && <>
            <p class="muted small" data-testid="export-onnx-help">ONNX: the model with its head as one graph (opset 17, dynamic batch and length) in <code>onnx/model.onnx</code>, with the config and tokenizer beside it; ONNX Runtime, Optimum (<code>ORTModelFor…</code>) and Transformers.js load the folder. int8 adds <code>onnx/model_quantized.onnx</code>: about a quarter of the size, labels nearly always the same.{isLora ? " The LoRA adapter is merged into the weights first." : ""}</p>
            <div class="row">
              <label><input type="checkbox" id="export-onnx-int8" checked={onnxInt8} onChange={(e) => setOnnxInt8((e.target as HTMLInputElement).checked)} /> also int8</label>
              <button id="export-onnx" disabled={exportingOnnx} onClick={doExportOnnx}>{exportingOnnx ? "Exporting ONNX…" : "Export ONNX to…"}</button>
            </div>
          </>}
          {exported && <p class="ok" data-testid="exported">Exported to {exported}</p>}
        </>
      )}
    </section>
  );
}
