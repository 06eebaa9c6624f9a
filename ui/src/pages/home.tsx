// The first page: what to do first, and where you are.
import type { Nav } from "../main";

export function HomePage(props: { info: any; nav: Nav }) {
  const i = props.info;
  const step = (done: boolean, n: number, text: string, action: string, go: () => void) => (
    <li class={done ? "done" : ""}>
      <span class="num">{done ? "✓" : n}</span> {text}{" "}
      <button onClick={go}>{action}</button>
    </li>
  );
  return (
    <section>
      <h1>Fine-tune a model on your own data</h1>
      <p class="muted">Four steps, all on this machine. Nothing leaves it except model downloads from the Hugging Face Hub.</p>
      {i && i.recovered.length > 0 && (
        <div class="notice">
          {i.recovered.length} run(s) stopped before they finished (their process ended). They can continue where they left off.{" "}
          <button onClick={() => props.nav("runs")}>Show runs</button>
        </div>
      )}
      <ol class="steps" data-testid="steps" data-done={i ? [i.models > 0, i.datasets > 0, i.runs > 0, i.exports > 0].filter(Boolean).length : 0}>
        {step(!!i && i.models > 0, 1, "Choose a pretrained model from the Hub, or import a folder.", "Models", () => props.nav("models"))}
        {step(!!i && i.datasets > 0, 2, "Import a labeled file (CSV, TSV, JSONL, Parquet, CoNLL).", "Datasets", () => props.nav("datasets"))}
        {step(!!i && i.runs > 0, 3, "Start a training run with a preset and watch it learn.", "Train", () => props.nav("train"))}
        {step(!!i && i.exports > 0, 4, "Try the model and export it for transformers.", "Playground", () => props.nav("playground"))}
      </ol>
    </section>
  );
}
