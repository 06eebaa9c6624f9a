// Entity labeling for token-classification datasets: select a span of tokens with the mouse
// (click, shift-click or drag) or the keyboard (← → move, Shift+← → extend), press 1–9 to tag
// it with an entity type (B- on the first token, I- on the rest), 0 or Backspace to clear it,
// Enter to save and move on, Ctrl+Z to undo the last save.
import { useEffect, useLayoutEffect, useState } from "preact/hooks";
import { api, DatasetInfo, errorText, StoredExample } from "../api";
import { typing } from "../keys";

/** Entity types from BIO tag names (B-PER, I-PER → PER). */
export function entityTypes(names: string[]): string[] {
  const types = new Set<string>();
  for (const n of names) {
    const m = n.match(/^[BIES]-(.+)$/);
    if (m) types.add(m[1]);
  }
  return Array.from(types).sort();
}

/** Tags `tags[from..=to]` as one `type` entity (or clears them with `null`), fixing the tag
 * that follows so it does not continue a cut entity. */
export function tagSpan(tags: string[], from: number, to: number, type: string | null): string[] {
  const out = [...tags];
  const [a, b] = from <= to ? [from, to] : [to, from];
  for (let i = a; i <= b; i++) out[i] = type ? (i === a ? `B-${type}` : `I-${type}`) : "O";
  const after = out[b + 1];
  if (after && after.startsWith("I-")) out[b + 1] = `B-${after.slice(2)}`;
  return out;
}

const COLORS = ["#2f6fde", "#e0622b", "#2aa876", "#b0429e", "#c9a227", "#5b6abf", "#d04a4a", "#3a9fb0", "#7a7a2a"];

export function NerLabeler(props: { info: DatasetInfo; examples: StoredExample[]; onSaved: () => void; suggested?: Map<number, { label: string | string[]; confidence: number }>; onIndex?: (i: number) => void }) {
  const types = entityTypes(props.info.label_names);
  const [index, setIndex] = useState(0);
  const [tags, setTags] = useState<string[]>([]);
  const [anchor, setAnchor] = useState(0);
  const [cursor, setCursor] = useState(0);
  const [dragging, setDragging] = useState(false);
  const [history, setHistory] = useState<{ index: number; id: number; previous: string[] | null }[]>([]);
  const [saved, setSaved] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const x = props.examples[index];
  const tokens = x?.tokens ?? [];
  // The page fetches the next sentences as this one nears the end of those loaded.
  useEffect(() => { props.onIndex?.(index); }, [index]);

  // Layout effects run in the same commit as the render, so the card never shows (to a person
  // or a test) before its tags and key listener are in place.
  useLayoutEffect(() => {
    // An unlabeled sentence starts from the model's tags when it has suggestions.
    const suggestion = x ? props.suggested?.get(x.id)?.label : undefined;
    const current = Array.isArray(x?.label) ? (x!.label as string[]) : Array.isArray(suggestion) && suggestion.length === tokens.length ? suggestion : tokens.map(() => "O");
    setTags(current);
    setAnchor(0);
    setCursor(0);
  }, [index, x?.id]);

  const save = async (next: number) => {
    if (!x) return;
    try {
      await api.setLabel(x.id, tags);
      setHistory((h) => [...h, { index, id: x.id, previous: Array.isArray(x.label) ? (x.label as string[]) : null }]);
      x.label = tags;
      setSaved((n) => n + 1);
      props.onSaved();
      setIndex(Math.min(props.examples.length - 1, Math.max(0, next)));
    } catch (e) { setError(errorText(e)); }
  };
  const undo = async () => {
    const last = history[history.length - 1];
    if (!last) return;
    await api.setLabel(last.id, last.previous);
    const ex = props.examples[last.index];
    if (ex) ex.label = last.previous;
    setHistory((h) => h.slice(0, -1));
    setIndex(last.index);
    setTags(last.previous ?? (ex?.tokens ?? []).map(() => "O"));
  };

  useLayoutEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (typing(e)) return;
      if ((e.ctrlKey || e.metaKey) && e.key === "z") { e.preventDefault(); undo(); return; }
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const last = tokens.length - 1;
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        e.preventDefault();
        const c = Math.max(0, Math.min(last, cursor + (e.key === "ArrowRight" ? 1 : -1)));
        setCursor(c);
        if (!e.shiftKey) setAnchor(c);
      } else if (/^[1-9]$/.test(e.key) && types[Number(e.key) - 1]) {
        e.preventDefault();
        setTags((t) => tagSpan(t, anchor, cursor, types[Number(e.key) - 1]));
      } else if (e.key === "0" || e.key === "Backspace" || e.key === "Delete") {
        e.preventDefault();
        setTags((t) => tagSpan(t, anchor, cursor, null));
      } else if (e.key === "Enter") {
        e.preventDefault();
        save(index + 1);
      } else if (e.key === "PageUp") {
        e.preventDefault();
        setIndex((i) => Math.max(0, i - 1));
      } else if (e.key === "PageDown") {
        e.preventDefault();
        setIndex((i) => Math.min(props.examples.length - 1, i + 1));
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  });

  if (!x) return <p class="muted">No examples.</p>;
  const suggested = Array.isArray(x.label) ? undefined : props.suggested?.get(x.id);
  const [lo, hi] = anchor <= cursor ? [anchor, cursor] : [cursor, anchor];
  return (
    <article class="card label-card" data-testid="ner-card" data-example={x.id}>
      {error && <div class="error">{error}</div>}
      <div class="muted small">sentence {index + 1} of {props.examples.length}{x.source_line ? ` · line ${x.source_line}` : ""} · {saved} saved this session</div>
      {suggested && <p class="suggestion small" data-testid="suggestion">Tagged by the model ({Math.round(suggested.confidence * 100)}% sure of its least certain word): fix what is wrong, Enter accepts.</p>}
      <div class="row small">
        {types.map((t, i) => <span class="tag" style={{ borderColor: COLORS[i % COLORS.length] }}><kbd>{i + 1}</kbd> {t}</span>)}
        <span class="tag"><kbd>0</kbd> none</span>
      </div>
      <p class="tokens" onMouseUp={() => setDragging(false)} onMouseLeave={() => setDragging(false)}>
        {tokens.map((tok, i) => {
          const tag = tags[i] ?? "O";
          const type = tag === "O" ? null : tag.slice(2);
          const color = type ? COLORS[types.indexOf(type) % COLORS.length] : undefined;
          const selected = i >= lo && i <= hi;
          return (
            <span
              class={`token${selected ? " selected" : ""}${i === cursor ? " cursor" : ""}${tag.startsWith("B-") ? " begin" : ""}`}
              style={color ? { background: `color-mix(in srgb, ${color} 22%, transparent)`, borderColor: color } : undefined}
              data-tag={tag}
              onMouseDown={(e) => { setDragging(true); setCursor(i); if (!e.shiftKey) setAnchor(i); }}
              onMouseEnter={() => dragging && setCursor(i)}
            >
              {tok}
              {tag.startsWith("B-") && <sub>{type}</sub>}
            </span>
          );
        })}
      </p>
      <div class="row">
        <button onClick={() => setIndex((i) => Math.max(0, i - 1))}>Previous</button>
        <button class="primary" onClick={() => save(index + 1)}>Save and next</button>
        <button class="ghost" onClick={undo} disabled={history.length === 0}>Undo last save</button>
      </div>
      <p class="muted small">Select tokens with the mouse (drag or shift-click) or ← → (Shift extends) · 1–9 tag · 0 clear · Enter save · PageUp/PageDown move · Ctrl+Z undo</p>
    </article>
  );
}
