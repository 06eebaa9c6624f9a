import { useState } from "preact/hooks";

/** One answer of a causal-LM run to one of its sample prompts. */
export type SampleAnswer = { prompt: string; answer: string };

/** A causal-LM run's answers to its sample prompts at one validation step. */
export function SampleAnswers(props: { step: number; samples: SampleAnswer[] }) {
  return (
    <div data-testid="samples" data-step={props.step}>
      <h3>Sample answers <span class="muted small">at step {props.step}, greedy</span></h3>
      {props.samples.map((s) => (
        <div class="card sample">
          <p class="small"><strong>{s.prompt}</strong></p>
          <pre class="sample-answer">{s.answer || "(nothing: the end token came first)"}</pre>
        </div>
      ))}
    </div>
  );
}

/** A stored run's sample answers with a choice of the validation step (the latest first). */
export function SampleHistory(props: { samples: { step: number; prompt: string; answer: string }[] }) {
  const steps = [...new Set(props.samples.map((s) => s.step))].sort((a, b) => b - a);
  const [step, setStep] = useState<number | null>(null);
  if (steps.length === 0) return null;
  const shown = step != null && steps.includes(step) ? step : steps[0];
  return (
    <>
      {steps.length > 1 && (
        <label class="small">Step <select id="sample-step" value={shown} onChange={(e) => setStep(Number((e.target as HTMLSelectElement).value))}>
          {steps.map((s) => <option value={s}>{s}</option>)}
        </select></label>
      )}
      <SampleAnswers step={shown} samples={props.samples.filter((s) => s.step === shown)} />
    </>
  );
}
