import type { Series } from "./chart";
// Evaluation reports of any task, read generically: a classification report (accuracy,
// macro F1, per class, confusion matrix), an entity report (entity F1, precision, recall,
// token accuracy, per entity type, worst sentences), a multiple-choice report (accuracy,
// MAP@3), a question-answering report (exact match, F1), a language model's report
// (perplexity, next-token accuracy) or a text-to-text report (ROUGE, exact match).

/** True for a text-to-text report (ROUGE of greedy generations, exact match, length). */
export const isGenerationReport = (r: any): boolean => r != null && typeof r.rouge1 === "number";

/** True for a multi-task report: one report per task, `{tasks: [{name, task, report}]}`. */
export const isTasksReport = (r: any): boolean => r != null && Array.isArray(r.tasks);

/** True for a token-classification (entity) report. */
export const isEntityReport = (r: any): boolean => r != null && typeof r.entity_f1 === "number";

/** True for a multiple-choice report. */
export const isChoiceReport = (r: any): boolean => r != null && typeof r.map_at_3 === "number";

/** True for a question-answering report (SQuAD exact match and F1). */
export const isAnswerReport = (r: any): boolean => r != null && typeof r.exact_match === "number" && !isGenerationReport(r);

/** True for a causal language model's report (loss, perplexity, next-token accuracy). */
export const isLanguageReport = (r: any): boolean => r != null && typeof r.perplexity === "number";

/** The headline numbers of a report, as [label, value, is a share]. */
export function headline(r: any): [string, number, boolean][] {
  if (!r) return [];
  if (isGenerationReport(r)) return [["ROUGE-1", r.rouge1, false], ["ROUGE-2", r.rouge2, false], ["ROUGE-L", r.rougeL, false], ["exact match", r.exact_match, true], ["loss", r.loss, false]];
  if (isAnswerReport(r)) return [["exact match", r.exact_match, true], ["F1", r.f1, false], ["loss", r.loss, false]];
  if (isEntityReport(r)) {
    return [["entity F1", r.entity_f1, false], ["precision", r.precision, false], ["recall", r.recall, false], ["token accuracy", r.token_accuracy, true], ["loss", r.loss, false]];
  }
  if (isChoiceReport(r)) return [["accuracy", r.accuracy, true], ["MAP@3", r.map_at_3, false], ["loss", r.loss, false]];
  if (isLanguageReport(r)) return [["perplexity", r.perplexity, false], ["next-token accuracy", r.token_accuracy, true], ["loss", r.loss, false]];
  return [["accuracy", r.accuracy, true], ["macro F1", r.macro_f1, false], ["loss", r.loss, false]];
}

/** One line: "entity F1 0.812 · precision 0.80 · … · loss 0.0712". */
export function summary(r: any): string {
  if (isTasksReport(r)) return r.tasks.map((t: any) => `${t.name}: ${summary(t.report)}`).join(" | ");
  return headline(r)
    .filter(([, v]) => typeof v === "number")
    .map(([k, v, share]) => `${k} ${share ? `${(100 * v).toFixed(1)}%` : v.toFixed(k === "loss" ? 4 : 3)}`)
    .join(" · ");
}

/** How a report field reads in a chart's legend ("map_at_3" → "MAP@3"). */
export const metricLabel = (key: string): string =>
  ({ exact_match: "exact match", f1: "F1", map_at_3: "MAP@3", macro_f1: "macro F1", entity_f1: "entity F1", token_accuracy: "token accuracy", rouge1: "ROUGE-1", rouge2: "ROUGE-2", rougeL: "ROUGE-L", rougeLsum: "ROUGE-Lsum" } as Record<string, string>)[key] ?? key.replace(/_/g, " ");

/** The report fields charted during training, by task. */
export const chartedKeys = (r: any): string[] =>
  isGenerationReport(r) ? ["rouge1", "rouge2", "rougeL"] : isEntityReport(r) ? ["entity_f1", "token_accuracy"] : isLanguageReport(r) ? ["token_accuracy", "perplexity"] : isAnswerReport(r) ? ["exact_match", "f1"] : isChoiceReport(r) ? ["accuracy", "map_at_3"] : ["accuracy", "macro_f1"];

/** The values charted during training as [key, legend, value]: a report's charted fields, or
 * for a multi-task report each task's headline score ("sst2/accuracy", "sst2 accuracy"). */
export function chartedValues(r: any): [string, string, number][] {
  if (isTasksReport(r)) {
    return r.tasks.map((t: any) => {
      const k = chartedKeys(t.report)[0];
      return [`${t.name}/${k}`, `${t.name} ${metricLabel(k)}`, t.report[k]] as [string, string, number];
    });
  }
  return chartedKeys(r).map((k) => [k, metricLabel(k), r[k]]);
}

/** One stored metric as a chart series, in the rows' order. */
export function curveOf(rows: { step: number; name: string; value: number }[], name: string, label: string): Series {
  const picked = rows.filter((m) => m.name === name);
  return { label, x: picked.map((m) => m.step), y: picked.map((m) => m.value) };
}

/** A multi-task run's training loss per task (`loss/<task>` rows), by task; empty otherwise. */
export function taskLossCurves(rows: { step: number; name: string; value: number }[]): Record<string, Series> {
  const names = [...new Set(rows.filter((m) => m.name.startsWith("loss/")).map((m) => m.name))];
  return Object.fromEntries(names.map((n) => [n.slice(5), curveOf(rows, n, `${n.slice(5)} loss`)]));
}

/** A chart mark where the trained parameters changed: "1.2M trainable" at that step. */
export function phaseMark(step: number, trainable: number): { x: number; label: string } {
  const n = trainable >= 1e6 ? `${(trainable / 1e6).toFixed(1)}M` : trainable >= 1e3 ? `${(trainable / 1e3).toFixed(0)}k` : String(trainable);
  return { x: step, label: `${n} trainable` };
}

/** The phase marks of a run's stored metrics (`params_trainable` rows). */
export function phaseMarks(rows: { step: number; name: string; value: number }[]): { x: number; label: string }[] {
  return rows.filter((m) => m.name === "params_trainable").map((m) => phaseMark(m.step, m.value));
}

/** The stored metric names of the validation chart, given which ones a run has. */
export function validationSeries(names: Set<string>): [string, string][] {
  // A multi-task run: each task's headline score (`eval_<task>/<metric>`).
  const perTask = [...names].filter((n) => /^eval_[^/]+\//.test(n));
  if (perTask.length > 0) {
    const tasks = [...new Set(perTask.map((n) => n.slice(5, n.indexOf("/"))))];
    return tasks.flatMap((t): [string, string][] => {
      const own = new Set([...names].filter((n) => n.startsWith(`eval_${t}/`)).map((n) => `eval_${n.slice(6 + t.length)}`));
      const [first] = validationSeries(own);
      return first ? [[`eval_${t}/${first[0].slice(5)}`, `${t} ${first[1]}`]] : [];
    });
  }
  if (names.has("eval_entity_f1")) return [["eval_entity_f1", "entity F1"], ["eval_precision", "precision"], ["eval_recall", "recall"]];
  if (names.has("eval_exact_match")) return [["eval_exact_match", "exact match"], ["eval_f1", "F1"]];
  if (names.has("eval_map_at_3")) return [["eval_accuracy", "accuracy"], ["eval_map_at_3", "MAP@3"]];
  return [["eval_accuracy", "accuracy"], ["eval_macro_f1", "macro F1"]];
}
