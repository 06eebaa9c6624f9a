// A button for something that cannot be undone: it asks once more in place (Escape or "Keep"
// backs out) and shows the action's error where the user is looking.
import { useState } from "preact/hooks";
import { errorText } from "./api";

export function ConfirmButton(props: {
  id: string; label: string; question: string; confirm: string; disabled?: boolean; title?: string;
  onConfirm: () => Promise<void>;
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (!asking) {
    return (
      <span>
        <button id={props.id} class="danger" disabled={props.disabled} title={props.title} onClick={() => { setError(null); setAsking(true); }}>{props.label}</button>
        {error && <span class="field-error" role="alert"> {error}</span>}
      </span>
    );
  }
  const go = async () => {
    setBusy(true);
    try { await props.onConfirm(); } catch (e) { setError(errorText(e)); }
    setBusy(false); setAsking(false);
  };
  return (
    <span class="confirm" role="alertdialog" aria-label={props.question}
      onKeyDown={(e) => { if (e.key === "Escape") { e.stopPropagation(); setAsking(false); } }}>
      {props.question}{" "}
      <button id={`${props.id}-confirm`} class="danger" disabled={busy} onClick={go}>{props.confirm}</button>{" "}
      <button autoFocus disabled={busy} onClick={() => setAsking(false)}>Keep</button>
    </span>
  );
}
