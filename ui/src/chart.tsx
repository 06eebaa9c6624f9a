// Line charts on uPlot (canvas, fast). Series longer than the chart is wide are reduced to a
// min/max pair per pixel column, so 100k points per curve draw as fast as 2k and spikes stay.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { downsample } from "./downsample.js";
import { STEP_INCREMENTS, tickLabels } from "./ticks.js";

export type Series = { label: string; x: number[]; y: number[] };
/** A vertical line across a chart at `x` (a step where something changed), labelled. */
export type Mark = { x: number; label: string };

/** The shortest time between two redraws of a chart with new data. */
const REDRAW_MS = 1000;

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

/** Draws `marks` as dashed vertical lines with their labels (a uPlot draw hook). */
function drawMarks(u: uPlot, marks: Mark[], color: string) {
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  ctx.save();
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.setLineDash([4 * devicePixelRatio, 4 * devicePixelRatio]);
  ctx.font = `${11 * devicePixelRatio}px sans-serif`;
  for (const m of marks) {
    const x = u.valToPos(m.x, "x", true);
    if (!(x >= left && x <= left + width)) continue;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    ctx.fillText(m.label, x + 3 * devicePixelRatio, top + 12 * devicePixelRatio);
  }
  ctx.restore();
}

/** A line chart of `series` over training steps (or `xLabel`); `yLabel` names the vertical axis (the single
 * series' name when not given); `marks` are drawn as labelled vertical lines; `logX` puts the
 * horizontal axis on a log scale (learning rates). */
export function Chart(props: { title: string; series: Series[]; height?: number; log?: boolean; logX?: boolean; testId?: string; yLabel?: string; xLabel?: string; marks?: Mark[] }) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = props.series.map((s) => s.label).join("|");
  // Read by the draw hook, so new marks need no new chart.
  const marks = useRef<Mark[]>(props.marks ?? []);
  marks.current = props.marks ?? [];

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
      scales: { x: props.logX ? { time: false, distr: 3 } : { time: false }, y: props.log ? { distr: 3 } : {} },
      series: [{ label: props.xLabel ?? "step" }, ...props.series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true }))],
      axes: [
        props.logX
          ? { stroke: muted, grid: { stroke: grid }, ticks: { stroke: grid }, label: props.xLabel ?? "step", labelSize: 18,
            values: (_u, splits) => splits.map((v) => (v == null ? "" : Number(v).toExponential(0))) }
          : { stroke: muted, grid: { stroke: grid }, ticks: { stroke: grid }, label: props.xLabel ?? "step", labelSize: 18, incrs: STEP_INCREMENTS,
            values: (_u, splits, _axis, _space, incr) => tickLabels(splits, incr) },
        { stroke: muted, grid: { stroke: grid }, ticks: { stroke: grid }, size: 64, label: yLabel, labelSize: 18,
          values: (_u, splits, _axis, _space, incr) => tickLabels(splits, incr) },
      ],
      // Series names only: uPlot's live values read "step: -- accuracy: --" until hovered.
      legend: { show: props.series.length > 1, live: false },
      // Marks the chart drawn (uPlot paints after creation), for tests and screenshots.
      hooks: { draw: [(u) => { drawMarks(u, marks.current, muted); el.dataset.drawn = "true"; }] },
    };
    delete el.dataset.drawn;
    plot.current = new uPlot(opts, align(props.series, width), el);
    const observer = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(300, el.clientWidth), height: props.height ?? 220 }));
    observer.observe(el);
    return () => { observer.disconnect(); plot.current?.destroy(); plot.current = null; };
  }, [shape, props.title, props.log, props.logX, props.yLabel, props.xLabel, document.documentElement.dataset.theme]);

  // New data redraws at most once a second (the last data always gets drawn): a live run's
  // curves gain nothing from more, and each redraw reduces and repaints every series.
  const latest = useRef(props.series);
  latest.current = props.series;
  const lastDraw = useRef(0);
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => {
    const draw = () => {
      pending.current = null;
      lastDraw.current = performance.now();
      const el = host.current;
      if (el) plot.current?.setData(align(latest.current, Math.max(300, el.clientWidth || 500)));
    };
    const wait = REDRAW_MS - (performance.now() - lastDraw.current);
    if (wait <= 0) draw();
    else if (pending.current === null) pending.current = setTimeout(draw, wait);
  }, [props.series, props.marks]);
  useEffect(() => () => { if (pending.current !== null) clearTimeout(pending.current); }, []);

  const points = props.series.reduce((n, s) => n + s.x.length, 0);
  // The first step drawn: a resumed run's chart starts where the run did, not at its checkpoint.
  const first = props.series[0]?.x[0];
  return <div class="chart" ref={host} data-testid={props.testId} data-points={points} data-first={first} data-marks={marks.current.length} />;
}
