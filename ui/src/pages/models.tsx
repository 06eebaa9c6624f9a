// Models: search the Hub, read a model's page with the fit verdict, download with progress,
// cancel and resume; models in the cache and imported folders.
import { useEffect, useState } from "preact/hooks";
import { api, bytes, count, errorText, FitLine, KnownModel, ModelPage, SearchHit, SpeedEstimate } from "../api";
import type { Nav } from "../main";

/** "≈ 4 min", "≈ 1.5 h": a rough duration. */
export function roughDuration(seconds: number): string {
  if (seconds < 90) return `≈ ${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 90 * 60) return `≈ ${Math.round(seconds / 60)} min`;
  const hours = seconds / 3600;
  return `≈ ${hours < 10 ? hours.toFixed(1) : Math.round(hours)} h`;
}

/** Speed of one variant, and the time for the planned run when the caller knows it. */
function speedText(speed: SpeedEstimate, plan?: { examples: number; epochs: number }): string {
  const rate = speed.samples_per_second;
  const perSecond = `≈ ${rate >= 10 ? Math.round(rate) : rate.toFixed(1)} samples/s`;
  if (!plan || plan.examples <= 0) return perSecond;
  const steps = Math.ceil(plan.examples / speed.work.batch_size) * plan.epochs;
  return `${perSecond} · ${roughDuration(steps * speed.step_seconds)} of training for ${plan.epochs} epoch${plan.epochs === 1 ? "" : "s"}`;
}

/** A parameter count as people say it: 22.7M, 148k. */
export function params(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(1)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${Math.round(n / 1e3)}k` : String(n);
}

export function FitTable(props: { fit: ModelPage["check"]["fit"]; plan?: { examples: number; epochs: number } }) {
  const fit = props.fit;
  if (!fit) return null;
  const s = fit.full.estimate.settings;
  const row = (name: string, l: FitLine) => (
    <tr>
      <td>{name}</td>
      <td class="num">{bytes(l.estimate.total)}</td>
      <td><span class={`verdict ${l.verdict}`}>{l.verdict.replace(/-/g, " ")}</span></td>
      <td class="num" data-testid="speed" data-length={l.speed?.work.length}
        title={`Training speed on this machine's CPU, from the model's size and the measured matrix speed, ${s.typical_length ? `with texts of the dataset's mean length (${l.speed?.work.length} tokens; the CPU path skips padding)` : "with every text at full length (shorter texts train faster)"}; validation and checkpoints not counted`}>
        {l.speed ? speedText(l.speed, props.plan) : "–"}</td>
      <td class="muted small">
        trains {params(l.estimate.trainable_parameters)} · weights {bytes(l.estimate.weights)} · gradients {bytes(l.estimate.gradients)} · AdamW {bytes(l.estimate.optimizer)} ·
        activations {bytes(l.estimate.activations)} · runtime {bytes(l.estimate.runtime + l.estimate.checkpoint)}
      </td>
    </tr>
  );
  return (
    <div class="fit" data-testid="fit">
      <div class="muted small">
        Memory at batch {s.batch_size} × {s.max_length} tokens, against {fit.compared_with}{fit.total > 0 && ` (${bytes(fit.available)} free of ${bytes(fit.total)})`}
        {fit.host && <span data-testid="fit-host"> · and {bytes(fit.host.needed)} of RAM ({bytes(fit.host.available)} free of {bytes(fit.host.total)}) to read the weights and hold the program and data: <span class={`verdict ${fit.host.verdict}`}>{fit.host.verdict.replace(/-/g, " ")}</span></span>}
      </div>
      <table>
        <tbody>
          {row("Full fine-tuning", fit.full)}
          {row("Frozen embeddings", fit.frozen_embeddings)}
          {fit.lora && row(`LoRA (rank ${fit.lora.estimate.settings.lora_rank ?? 8})`, fit.lora)}
        </tbody>
      </table>
    </div>
  );
}

/** The search, its results and the open model card, kept while the user visits other pages. */
const kept: {
  text: string; task: string; sort: string; results: SearchHit[] | null; onlyTrainable: boolean;
  next: string | null; page: ModelPage | null;
} = { text: "", task: "", sort: "downloads", results: null, onlyTrainable: true, next: null, page: null };

/** How a known model is listed: a Hub repo id as it is, an imported folder by its name (the
 * whole path is its tooltip). */
export function modelName(m: KnownModel): string {
  const absolute = m.reference.startsWith("/") || /^[A-Za-z]:[\\/]/.test(m.reference);
  return absolute ? m.reference.split(/[\\/]/).filter(Boolean).pop() ?? m.reference : m.reference;
}

export function ModelsPage(props: { nav: Nav }) {
  const [text, setText] = useState(kept.text);
  const [task, setTask] = useState(kept.task);
  const [sort, setSort] = useState(kept.sort);
  const [results, setResults] = useState<SearchHit[] | null>(kept.results);
  const [onlyTrainable, setOnlyTrainable] = useState(kept.onlyTrainable);
  const [next, setNext] = useState<string | null>(kept.next);
  const [page, setPage] = useState<ModelPage | null>(kept.page);
  useEffect(() => { Object.assign(kept, { text, task, sort, results, onlyTrainable, next, page }); }, [text, task, sort, results, onlyTrainable, next, page]);
  // null until the list has loaded: the empty state is for an empty list, not a slow one.
  const [known, setKnown] = useState<KnownModel[] | null>(null);
  const [busy, setBusy] = useState(false);
  const [importing, setImporting] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [download, setDownload] = useState<{ repo: string; done: number; total: number; file: string } | null>(null);
  const [batch, setBatch] = useState(16);
  const [length, setLength] = useState(128);

  const shown = (results ?? []).filter((m) => !onlyTrainable || m.family !== null);
  const hidden = (results?.length ?? 0) - shown.length;

  const refresh = () => api.modelsList().then(setKnown).catch((e) => setError(errorText(e)));
  useEffect(() => { refresh(); }, []);

  const search = async (more = false) => {
    setBusy(true); setError(null);
    try {
      const r = await api.hubSearch({ text, task: task || null, library: null, sort, limit: 20 }, more ? next : null);
      setResults(more && results ? [...results, ...r.models] : r.models);
      setNext(r.next);
    } catch (e) { setError(errorText(e)); }
    setBusy(false);
  };
  const open = async (repo: string) => {
    setBusy(true); setError(null);
    try { setPage(await api.hubInfo(repo, { batch_size: batch, max_length: length })); } catch (e) { setError(errorText(e)); }
    setBusy(false);
  };
  useEffect(() => { if (page) open(page.info.id); }, [batch, length]);

  const startDownload = async (repo: string) => {
    setError(null);
    setDownload({ repo, done: 0, total: 0, file: "" });
    try {
      await api.hubDownload(repo, (e) => {
        setDownload((d) => {
          if (!d) return d;
          if (e.kind === "planned") return { ...d, done: e.done_bytes, total: e.total_bytes };
          if (e.kind === "progress") return { ...d, done: e.done_bytes, total: e.total_bytes, file: e.name };
          if (e.kind === "file_started") return { ...d, file: e.name };
          return d;
        });
      });
      await refresh();
      if (page?.info.id === repo) setPage({ ...page, cached: true });
    } catch (e) {
      setError(errorText(e));
    }
    setDownload(null);
  };
  const importFolder = async () => {
    setError(null);
    const dir = await api.pick("model_folder");
    if (!dir) return;
    setImporting(true);
    try { await api.modelImport(dir); await refresh(); } catch (e) { setError(errorText(e)); }
    setImporting(false);
  };
  const remove = async (reference: string) => {
    if (!confirm(`Remove ${reference}?`)) return;
    try { await api.modelRemove(reference); await refresh(); } catch (e) { setError(errorText(e)); }
  };

  return (
    <section>
      <h1>Models</h1>
      {error && <div class="error" role="alert">{error}</div>}
      <div class="columns">
        <div class="col">
          <form class="row" onSubmit={(e) => { e.preventDefault(); search(); }}>
            <input id="hub-query" placeholder="Search the Hugging Face Hub (e.g. bert, minilm)" value={text} onInput={(e) => setText((e.target as HTMLInputElement).value)} />
            <select value={task} onChange={(e) => setTask((e.target as HTMLSelectElement).value)} aria-label="Task">
              <option value="">any task</option>
              <option value="text-classification">text classification</option>
              <option value="fill-mask">fill mask (base models)</option>
              <option value="sentence-similarity">sentence similarity</option>
              <option value="token-classification">token classification</option>
              <option value="feature-extraction">feature extraction</option>
              <option value="text-generation">text generation</option>
            </select>
            <select value={sort} onChange={(e) => setSort((e.target as HTMLSelectElement).value)} aria-label="Sort">
              <option value="downloads">most downloaded</option>
              <option value="likes">most liked</option>
              <option value="updated">recently updated</option>
            </select>
            <button type="submit" id="hub-search" disabled={busy}>Search</button>
          </form>
          <label class="check small">
            <input type="checkbox" id="only-trainable" checked={onlyTrainable} onChange={(e) => setOnlyTrainable((e.target as HTMLInputElement).checked)} />
            Only models Hone can fine-tune (BERT, DistilBERT, RoBERTa and DeBERTa-v2/v3 encoders; Llama, Mistral and Qwen2 decoders)
          </label>
          {results && results.length === 0 && <p class="muted">No models match. Try fewer words or another task.</p>}
          {results && results.length > 0 && shown.length === 0 && (
            <p class="muted">None of these {results.length} results is a family Hone trains. <button class="link" onClick={() => setOnlyTrainable(false)}>Show them anyway</button></p>
          )}
          {shown.length > 0 && (
            <table class="list" data-testid="hub-results">
              <thead><tr><th>Model</th><th>Family</th><th>Task</th><th class="num">Downloads</th><th class="num">Likes</th></tr></thead>
              <tbody>
                {shown.map((m) => (
                  <tr class={page?.info.id === m.id ? "selected" : ""} tabIndex={0} onClick={() => open(m.id)} onKeyDown={(e) => e.key === "Enter" && open(m.id)}>
                    <td>{m.id}{m.gated && <span class="tag">gated</span>}{m.private && <span class="tag">private</span>}</td>
                    <td title={m.family ? "Hone trains this family" : "No tag names a family Hone trains; open it to check its config"}>{m.family ?? "–"}</td>
                    <td>{m.task ?? "–"}</td>
                    <td class="num">{m.downloads.toLocaleString()}</td>
                    <td class="num">{m.likes}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {hidden > 0 && shown.length > 0 && (
            <p class="muted small">{hidden} other {hidden === 1 ? "result is" : "results are"} hidden: no tag of a family Hone trains. <button class="link" onClick={() => setOnlyTrainable(false)}>Show all</button></p>
          )}
          {next && <button onClick={() => search(true)} disabled={busy}>More results</button>}
          <h2>On this machine</h2>
          {known === null ? (
            <p class="muted small">Looking at the cache…</p>
          ) : known.length === 0 ? (
            <p class="muted">No models yet. Download one from the Hub, or import a folder with config.json, weights and a tokenizer.</p>
          ) : (
            <table class="list" data-testid="known-models">
              <thead><tr><th>Model</th><th>Source</th><th>Type</th><th class="num">Size</th><th /></tr></thead>
              <tbody>
                {known.map((m) => (
                  <tr data-model={m.reference}>
                    <td title={m.path}>{modelName(m)}</td><td>{m.source}</td><td>{m.model_type ?? "–"}</td><td class="num">{bytes(m.size_bytes)}</td>
                    <td class="actions"><button onClick={() => props.nav("train", { model: m.reference })}>Train</button> <button class="ghost" onClick={() => remove(m.reference)}>Remove</button></td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <button id="import-model" onClick={importFolder} disabled={importing}>{importing ? "Importing…" : "Import a model folder…"}</button>
        </div>
        <div class="col">
          {!page && <p class="muted">Pick a search result to see whether Hone can train it and whether it fits this machine.</p>}
          {page && (
            <article class="card" data-testid="model-page">
              <h2>{page.info.id}</h2>
              {page.offline && <div class="notice" data-testid="offline-notice">Offline: {page.offline}</div>}
              <p class="muted small">
                {page.offline ? "from the cache" : `${page.info.task ?? "no task"} · ${page.info.license ?? "no license given"} · ${page.info.downloads.toLocaleString()} downloads`} ·{" "}
                {page.info.parameters || page.check.parameters ? `${count(page.info.parameters ?? page.check.parameters ?? 0)} parameters` : ""}
              </p>
              {page.info.gated && <div class="notice">Gated: accept its terms on the Hub and set HF_TOKEN before downloading.</div>}
              {page.check.trainable ? (
                <p class="ok">Hone can fine-tune this {page.check.family} model for {page.check.tasks.join(", ")}.</p>
              ) : (
                <div class="error">Hone cannot fine-tune this model: {page.check.problems.join("; ")}</div>
              )}
              <div class="row small">
                <label>Batch <input type="number" min={1} value={batch} onChange={(e) => setBatch(Number((e.target as HTMLInputElement).value) || 16)} /></label>
                <label>Tokens <input type="number" min={8} value={length} onChange={(e) => setLength(Number((e.target as HTMLInputElement).value) || 128)} /></label>
              </div>
              <FitTable fit={page.check.fit} />
              {!page.offline && <p class="small">A fine-tune downloads {bytes(page.download_bytes)} ({page.info.files.length} files in the repository).</p>}
              {download?.repo === page.info.id ? (
                <div class="download">
                  <progress value={download.done} max={download.total || 1} />
                  <span class="small">{bytes(download.done)} / {bytes(download.total)} {download.file}</span>
                  <button onClick={() => api.hubCancelDownload(page.info.id)}>Cancel</button>
                </div>
              ) : page.cached ? (
                <p><span class="ok">Downloaded.</span> <button onClick={() => props.nav("train", { model: page.info.id })}>Train with it</button></p>
              ) : (
                <button id="download" disabled={!page.check.trainable || !!download} onClick={() => startDownload(page.info.id)}>Download</button>
              )}
              {/* Rendered and cleaned in Rust (no raw HTML, web links only); a link shows its
                  target on hover but does not take the window away from Hone. */}
              {page.card_html && (
                <div class="card-md" data-testid="model-card" dangerouslySetInnerHTML={{ __html: page.card_html }}
                  onClick={(e) => { if ((e.target as HTMLElement).closest("a")) e.preventDefault(); }} />
              )}
            </article>
          )}
        </div>
      </div>
    </section>
  );
}
