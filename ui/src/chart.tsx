// Line charts on uPlot (canvas, fast). Series longer than the chart is wide are reduced to a
// min/max pair per pixel column, so 100k points per curve draw as fast as 2k and spikes stay.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { downsample } from "./downsample.js";
import { STEP_INCREMENTS, tickLabels } from "./ticks.js";

export type Series = { label: string; x: number[]; y: number[] };

const COLORS = ["#2f6fde", "#e0622b", "#2aa876", "#b0429e", "#c9a227", "#5b6abf"];

/** Aligns several series on the union of their x values (uPlot's data layout). */
function align(series: Series[], buckets: number): uPlot.AlignedData {
  const reduced = series.map((s) => downsample(s.x, s.y, buckets));
  const xs = Array.from(new Set(reduced.flatMap(([x]) => x))).sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = reduced.map(([x, y]) => {
    const col: (number | null)[] = new Array(xs.length).fill(null);
    x.forEach((xv, i) => (col[index.get(xv)!] = y[i]));
    return col;
  });
  return [xs, ...ys] as uPlot.AlignedData;
}

/** A line chart of `series` over training steps (or `xLabel`); `yLabel` names the vertical axis (the single
 * series' name when not given). */
export function Chart(props: { title: string; series: Series[]; height?: number; log?: boolean; testId?: string; yLabel?: string; xLabel?: string }) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = props.series.map((s) => s.label).join("|");

  useEffect(() => {
    const el = host.current!;
    const width = Math.max(300, el.clientWidth || 500);
    // Canvas colours cannot be CSS variables: read the theme's values.
    const css = getComputedStyle(document.documentElement);
    const muted = css.getPropertyValue("--muted").trim() || "#667085";
    const grid = css.getPropertyValue("--grid").trim() || "#eceff3";
    const yLabel = props.yLabel ?? (props.series.length === 1 ? props.series[0].label : "");
    const opts: uPlot.Options = {
      title: props.title,
      width,
      height: props.height ?? 220,
      scales: { x: { time: false }, y: props.log ? { distr: 3 } : {} },
      series: [{ label: props.xLabel ?? "step" }, ...props.series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true }))],
      axes: [
        { stroke: muted, grid: { stroke: grid }, ticks: { stroke: grid }, label: props.xLabel ?? "step", labelSize: 18, incrs: STEP_INCREMENTS,
          values: (_u, splits, _axis, _space, incr) => tickLabels(splits, incr) },
        { stroke: muted, grid: { stroke: grid }, ticks: { stroke: grid }, size: 64, label: yLabel, labelSize: 18,
          values: (_u, splits, _axis, _space, incr) => tickLabels(splits, incr) },
      ],
      // Series names only: uPlot's live values read "step: -- accuracy: --" until hovered.
      legend: { show: props.series.length > 1, live: false },
      // Marks the chart drawn (uPlot paints after creation), for tests and screenshots.
      hooks: { draw: [() => { el.dataset.drawn = "true"; }] },
    };
    delete el.dataset.drawn;
    plot.current = new uPlot(opts, align(props.series, width), el);
    const observer = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(300, el.clientWidth), height: props.height ?? 220 }));
    observer.observe(el);
    return () => { observer.disconnect(); plot.current?.destroy(); plot.current = null; };
  }, [shape, props.title, props.log, props.yLabel, props.xLabel, document.documentElement.dataset.theme]);

  useEffect(() => {
    const el = host.current!;
    plot.current?.setData(align(props.series, Math.max(300, el.clientWidth || 500)));
  }, [props.series]);

  const points = props.series.reduce((n, s) => n + s.x.length, 0);
  // The first step drawn: a resumed run's chart starts where the run did, not at its checkpoint.
  const first = props.series[0]?.x[0];
  return <div class="chart" ref={host} data-testid={props.testId} data-points={points} data-first={first} />;
}
