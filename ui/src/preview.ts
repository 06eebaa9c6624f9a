// A file preview that follows its inputs: the Train page's question, answer and conversation
// sources each ask the app to read a picked file and show what it holds.
import { useEffect, useState } from "preact/hooks";
import { errorText } from "./api";

/** Fetches a preview with `load` whenever `deps` change (`load` null clears it); an answer to
 * inputs that have changed since is dropped. `onReady` and `onClear` tell the form. */
export function usePreview<T>(load: (() => Promise<T>) | null, deps: unknown[], onReady: (p: T) => void, onClear: () => void) {
  const [preview, setPreview] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (!load) { setPreview(null); onClear(); return; }
    let stale = false;
    setBusy(true);
    load()
      .then((p) => { if (stale) return; setPreview(p); setError(null); onReady(p); })
      .catch((e) => { if (!stale) { setPreview(null); setError(errorText(e)); onClear(); } })
      .finally(() => { if (!stale) setBusy(false); });
    return () => { stale = true; };
  }, deps);
  return { preview, error, setError, busy };
}
