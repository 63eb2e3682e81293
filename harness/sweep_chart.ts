/**
 * The report's sweep chart: when an experiment's groups differ in exactly one numeric config key
 * (a `--set train.lr=1e-3,3e-3,1e-2` sweep), final loss against that key's value — each seed a
 * dot, each group's mean a point on a line, its min–max a whisker. The x axis is logarithmic
 * when the values span more than a factor of 10 (learning rates, weight decays).
 */
import {
  chartSvg,
  d3Scale,
  escapeHtml,
  extent,
  fmt1,
  type LinearScale,
  paddedY,
  PLOT_W,
  widen,
} from "./chart.ts";
import type { ReportGroup } from "./report_groups.ts";

/** The swept key and each group's value of it, or null when the groups are no such sweep. */
export function sweptKey(groups: readonly ReportGroup[]): string | null {
  if (groups.length < 2) return null;
  const keys = groups[0].keys;
  if (keys.length !== 1) return null;
  const key = keys[0];
  return groups.every((g) => typeof g.config.get(key) === "number" && g.runs.length > 0)
    ? key
    : null;
}

/** Whether values this far apart read better on a log axis (all positive, max/min > 10). */
export function wantsLogAxis(values: readonly number[]): boolean {
  const [lo, hi] = extent([...values]);
  return lo > 0 && hi / lo > 10;
}

function finalLoss(g: ReportGroup, which: "val" | "train"): number[] {
  return g.runs.map((r) => r.result.final[which])
    .filter((v): v is number => typeof v === "number" && Number.isFinite(v));
}

const LINE_COLOR = "#0f766e";

/** The chart for `sweptKey(groups)` (call only when it is not null). */
export function sweepChart(
  experiment: string,
  key: string,
  groups: readonly ReportGroup[],
): string {
  const which = groups.every((g) => finalLoss(g, "val").length > 0) ? "val" : "train";
  const points = groups.map((g) => {
    const losses = finalLoss(g, which);
    const mean = losses.reduce((s, v) => s + v, 0) / Math.max(1, losses.length);
    return { value: g.config.get(key) as number, losses, mean };
  }).filter((p) => p.losses.length > 0).sort((a, b) => a.value - b.value);
  const values = points.map((p) => p.value);
  const log = wantsLogAxis(values);
  let x: LinearScale;
  let xTicks: number[] | undefined;
  if (log) {
    const [lo, hi] = extent(values);
    // Half a decade of room each side so the end points are not on the frame.
    x = d3Scale.scaleLog().domain([lo / 10 ** 0.25, hi * 10 ** 0.25]).range([0, PLOT_W]);
    // The swept values themselves as ticks: a log axis's own ticks crowd its labels.
    xTicks = values;
  } else {
    const [lo, hi] = widen(extent(values), Math.abs(values[0]) * 0.1 || 1);
    const pad = (hi - lo) * 0.08;
    x = d3Scale.scaleLinear().domain([lo - pad, hi + pad]).range([0, PLOT_W]).nice(6);
  }
  const all = points.flatMap((p) => p.losses);
  const y = paddedY(...extent(all));
  const body: string[] = [];
  for (const p of points) {
    const px = fmt1(x(p.value));
    body.push(
      `<line class="whisker" x1="${px}" x2="${px}" y1="${fmt1(y(Math.min(...p.losses)))}" y2="${
        fmt1(y(Math.max(...p.losses)))
      }" stroke="${LINE_COLOR}"/>`,
    );
    for (const loss of p.losses) {
      body.push(
        `<circle class="seed" cx="${px}" cy="${fmt1(y(loss))}" r="2.5" fill="${LINE_COLOR}"/>`,
      );
    }
  }
  const path = points.map((p, i) => `${i === 0 ? "M" : "L"}${fmt1(x(p.value))},${fmt1(y(p.mean))}`)
    .join("");
  body.push(`<path class="mean" data-series="mean" d="${path}" stroke="${LINE_COLOR}"/>`);
  for (const p of points) {
    body.push(
      `<circle class="mean-point" data-value="${p.value}" cx="${fmt1(x(p.value))}" cy="${
        fmt1(y(p.mean))
      }" r="4.5" fill="${LINE_COLOR}"><title>${
        escapeHtml(`${key}=${p.value}: mean ${p.mean.toFixed(4)} over ${p.losses.length} seed(s)`)
      }</title></circle>`,
    );
  }
  return chartSvg({
    title: `${experiment} — final ${which} loss vs ${key}`,
    subtitle: `mean (line) and each seed (dots) per value${log ? "; log scale" : ""}`,
    x,
    y,
    xTicks,
    xFormat: (v) => String(+v.toPrecision(6)),
    xLabel: log ? `${key} (log scale)` : key,
    yLabel: `final ${which} loss`,
  }, body);
}
