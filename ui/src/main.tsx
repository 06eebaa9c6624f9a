// The Hone window: a sidebar of pages, a status bar, keyboard shortcuts (Ctrl+1…7 switch
// pages, ? lists them all), light and dark themes.
import { Component, ComponentChildren, render } from "preact";
import "./locale";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import "./styles.css";
import { api, bytes } from "./api";
import { typing } from "./keys";
import { ModelsPage } from "./pages/models";
import { DatasetsPage } from "./pages/datasets";
import { LabelingPage } from "./pages/labeling";
import { TrainPage } from "./pages/train";
import { RunsPage } from "./pages/runs";
import { PlaygroundPage } from "./pages/playground";
import { HomePage } from "./pages/home";

export type PageName = "home" | "models" | "datasets" | "labeling" | "train" | "runs" | "playground";
export type Nav = (page: PageName, arg?: any) => void;

const PAGES: [PageName, string][] = [
  ["home", "Start"],
  ["models", "Models"],
  ["datasets", "Datasets"],
  ["labeling", "Labeling"],
  ["train", "Train"],
  ["runs", "Runs"],
  ["playground", "Playground & Export"],
];

/** Shows a page's error instead of a blank window; switching pages clears it. */
class PageBoundary extends Component<{ page: string; children: ComponentChildren }, { error: string | null }> {
  state = { error: null as string | null };
  componentDidCatch(error: unknown) {
    this.setState({ error: String(error instanceof Error ? `${error.message}\n${error.stack ?? ""}` : error) });
  }
  componentDidUpdate(previous: { page: string }) {
    if (previous.page !== this.props.page && this.state.error) this.setState({ error: null });
  }
  render() {
    if (this.state.error)
      return (
        <div class="error" role="alert">
          This page hit a problem: <pre>{this.state.error}</pre>
          <button onClick={() => this.setState({ error: null })}>Try again</button>
        </div>
      );
    return this.props.children;
  }
}

/** Every keyboard shortcut, by where it works. */
const SHORTCUTS: [string, [string, string][]][] = [
  ["Anywhere", [["Ctrl+1 … Ctrl+7", "Switch page (Start … Playground)"], ["?", "Show or hide this list"], ["Esc", "Close this list"]]],
  ["Labeling", [["1 … 9", "Give the example that class"], ["Enter or →", "Next example"], ["←", "Previous example"], ["A or Space", "Accept the model's suggestion"], ["Ctrl+Z", "Undo the last label"]]],
  ["Entities (NER)", [["← →", "Move over the tokens"], ["Shift+← →", "Extend the selection"], ["1 … 9", "Tag the selection"], ["0, Backspace", "Clear its tag"], ["Enter", "Save and go to the next sentence"], ["Page Up / Down", "Previous / next sentence, unsaved"], ["Ctrl+Z", "Undo the last save"]]],
  ["Run page", [["← → (on a tab)", "Results, Test, Configuration"], ["Ctrl+Enter (in Test)", "Run the tests"]]],
  ["Playground", [["Ctrl+Enter", "Predict"]]],
  ["Lists", [["Tab, Enter", "Reach a row and open it"]]],
];

function ShortcutHelp(props: { close: () => void }) {
  return (
    <div class="overlay" role="dialog" aria-modal="true" aria-label="Keyboard shortcuts" onClick={props.close}>
      <div class="card shortcuts" data-testid="shortcuts" onClick={(e) => e.stopPropagation()}>
        <h2>Keyboard shortcuts</h2>
        <div class="groups">
          {SHORTCUTS.map(([where, keys]) => (
            <table>
              <caption>{where}</caption>
              <tbody>{keys.map(([k, what]) => <tr><td><kbd>{k}</kbd></td><td>{what}</td></tr>)}</tbody>
            </table>
          ))}
        </div>
        <button class="primary" onClick={props.close} autoFocus>Close</button>
      </div>
    </div>
  );
}

function App() {
  const [help, setHelp] = useState(false);
  const [page, setPage] = useState<PageName>("home");
  const [arg, setArg] = useState<any>(null);
  const [info, setInfo] = useState<any>(null);
  const [theme, setTheme] = useState<string>(localStorage.getItem("theme") ?? "auto");
  const nav: Nav = (p, a) => { setArg(a ?? null); setPage(p); };

  // The counts on Start and the status bar: read at start and on returning to Start, not on
  // every page switch (it lists the Hub cache).
  useEffect(() => { if (page === "home") api.appInfo().then(setInfo).catch(() => {}); }, [page === "home"]);
  // While the list is open no key reaches the page behind it (Labeling would take Enter and the
  // digits): one capture listener, registered once, opens it on ?, closes it on Esc or ?, lets
  // Ctrl+1…7 through and stops the rest. The open state is also kept in a ref, set at once, so a
  // key pressed right after ? is held back even before the list has rendered.
  const helpOpen = useRef(false);
  const showHelp = (open: boolean) => { helpOpen.current = open; setHelp(open); };
  // Layout effects: the keys work from the first frame the window shows.
  useLayoutEffect(() => {
    const trap = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && /^[1-9]$/.test(e.key)) return;
      if (!helpOpen.current) {
        if (e.key === "?" && !typing(e)) { e.preventDefault(); e.stopPropagation(); showHelp(true); }
        return;
      }
      if (e.key === "Escape" || e.key === "?") { e.preventDefault(); showHelp(false); }
      e.stopPropagation();
    };
    window.addEventListener("keydown", trap, true);
    return () => window.removeEventListener("keydown", trap, true);
  }, []);
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem("theme", theme);
  }, [theme]);
  useLayoutEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && e.key >= "1" && e.key <= String(PAGES.length)) {
        e.preventDefault();
        showHelp(false);
        nav(PAGES[Number(e.key) - 1][0]);
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  return (
    <div class="shell">
      <nav class="sidebar" aria-label="Pages">
        <div class="brand">Hone</div>
        {PAGES.map(([name, label], i) => (
          <button class={page === name ? "nav active" : "nav"} data-page={name} onClick={() => nav(name)} title={`Ctrl+${i + 1}`}>
            {label}
          </button>
        ))}
        <div class="grow" />
        <label class="theme">
          Theme{" "}
          <select value={theme} onChange={(e) => setTheme((e.target as HTMLSelectElement).value)}>
            <option value="auto">System</option>
            <option value="light">Light</option>
            <option value="dark">Dark</option>
          </select>
        </label>
      </nav>
      <main class="page" data-current={page}>
        <PageBoundary page={page}>
        {page === "home" && <HomePage info={info} nav={nav} />}
        {page === "models" && <ModelsPage nav={nav} />}
        {page === "datasets" && <DatasetsPage nav={nav} />}
        {page === "labeling" && <LabelingPage dataset={arg} nav={nav} />}
        {page === "train" && <TrainPage preset={arg} nav={nav} />}
        {page === "runs" && <RunsPage open={arg} nav={nav} />}
        {page === "playground" && <PlaygroundPage run={arg} nav={nav} />}
        </PageBoundary>
      </main>
      <footer class="statusbar">
        {info ? (
          <>
            <span>Hone {info.version}</span>
            <span title={info.db}>database {info.db}</span>
            <span>RAM {bytes(info.machine.ram_available)} free of {bytes(info.machine.ram_total)}</span>
            {(info.machine.gpus ?? []).map((g: any) => (
              <span key={g.index} title={`train on it with --device ${info.machine.gpu_backend}:${g.index} (the Train form's device option)`} data-testid="gpu">
                {info.machine.gpu_backend}:{g.index} {g.name} · {bytes(g.free)} free of {bytes(g.total)}
              </span>
            ))}
            <span>{info.threads} CPU threads</span>
          </>
        ) : (
          <span>starting…</span>
        )}
        <span class="grow" />
        <button class="link" id="show-shortcuts" onClick={() => showHelp(true)}>? Keyboard shortcuts</button>
      </footer>
      {help && <ShortcutHelp close={() => showHelp(false)} />}
    </div>
  );
}

render(<App />, document.getElementById("app")!);
