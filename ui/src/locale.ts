// WebKitGTK reports the POSIX locale ("C") as navigator.language when LANG is unset or C, and
// Intl rejects it; uPlot formats numbers with it when its module loads. Fall back to en-US
// before anything else runs (this module is imported first).
try {
  new Intl.NumberFormat(navigator.language);
} catch {
  Object.defineProperty(navigator, "language", { value: "en-US", configurable: true });
  Object.defineProperty(navigator, "languages", { value: ["en-US"], configurable: true });
}
