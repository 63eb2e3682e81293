/**
 * SVG line charts for the report: the mean across seeds as a line over a min–max band, with
 * axes, grid, labels and a legend, drawn with d3's scales and path generators.
 */
import * as d3ScaleUntyped from "d3-scale";
import * as d3ShapeUntyped from "d3-shape";
import type { PointStat } from "./curves.ts";

// d3 ships no type declarations; these are the few members used here, typed once.
export interface LinearScale {
  (value: number): number;
  domain(): number[];
  domain(domain: readonly number[]): LinearScale;
  range(range: readonly number[]): LinearScale;
  nice(count?: number): LinearScale;
  ticks(count?: number): number[];
  tickFormat(count?: number, specifier?: string): (value: number) => string;
}
interface LineGenerator<T> {
  (data: readonly T[]): string | null;
  x(f: (d: T) => number): LineGenerator<T>;
  y(f: (d: T) => number): LineGenerator<T>;
  defined(f: (d: T) => boolean): LineGenerator<T>;
}
interface AreaGenerator<T> {
  (data: readonly T[]): string | null;
  x(f: (d: T) => number): AreaGenerator<T>;
  y0(f: (d: T) => number): AreaGenerator<T>;
  y1(f: (d: T) => number): AreaGenerator<T>;
  defined(f: (d: T) => boolean): AreaGenerator<T>;
}
export const d3Scale = d3ScaleUntyped as { scaleLinear(): LinearScale; scaleLog(): LinearScale };
export const d3Shape = d3ShapeUntyped as {
  line<T>(): LineGenerator<T>;
  area<T>(): AreaGenerator<T>;
};

export const WIDTH = 560;
export const HEIGHT = 340;
export const MARGIN = { top: 52, right: 20, bottom: 46, left: 62 };

/** Escapes text for HTML and SVG content and attributes. */
export function escapeHtml(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}

/** One line of a chart: per-step statistics drawn as a mean line over a min–max band. */
export interface Series {
  name: string;
  color: string;
  /** SVG dash pattern; val is dashed so it stays visible where it lies on top of train. */
  dash?: string;
  points: { step: number; stat: PointStat | null }[];
}

export interface ChartSpec {
  title: string;
  subtitle: string;
  yLabel: string;
  series: Series[];
  /** Legend text for the band swatch. */
  bandLabel: string;
}

export function extent(values: number[]): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

// A one-point curve has an empty extent; widen it so scales do not collapse to a point.
export function widen([lo, hi]: [number, number], pad: number): [number, number] {
  return lo === hi ? [lo - pad, hi + pad] : [lo, hi];
}

/** Shortens text that would overflow its place in a chart; the <title> keeps the full text. */
export function clip(text: string, maxChars: number): string {
  return text.length > maxChars ? `${text.slice(0, maxChars - 1)}…` : text;
}

export const fmt1 = (v: number) => (Math.round(v * 10) / 10).toString();

/** The plot area inside the margins. */
export const PLOT_W = WIDTH - MARGIN.left - MARGIN.right;
export const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom;

/** What every chart has around its data: titles, grid, ticks, frame and axis labels. */
export interface Frame {
  title: string;
  subtitle: string;
  x: LinearScale;
  y: LinearScale;
  xLabel: string;
  yLabel: string;
  /** Tick values and labels; default the scale's own. */
  xTicks?: number[];
  xFormat?: (v: number) => string;
}

/**
 * An SVG chart: the frame, then `body` (drawn in plot coordinates, over the grid), then the
 * closing tags.
 */
export function chartSvg(frame: Frame, body: readonly string[]): string {
  const { x, y } = frame;
  const xTicks = frame.xTicks ?? x.ticks(6);
  const xFormat = frame.xFormat ?? x.tickFormat(6);
  const yFormat = y.tickFormat(6);
  const parts: string[] = [];
  parts.push(
    `<svg class="chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${
      escapeHtml(frame.title)
    }">`,
    `<title>${escapeHtml(`${frame.title} — ${frame.subtitle}`)}</title>`,
    `<text class="title" x="${MARGIN.left}" y="22">${escapeHtml(clip(frame.title, 56))}</text>`,
    `<text class="subtitle" x="${MARGIN.left}" y="40">${
      escapeHtml(clip(frame.subtitle, 76))
    }</text>`,
    `<g transform="translate(${MARGIN.left},${MARGIN.top})">`,
  );
  // Grid and ticks first so the data draws over them.
  parts.push(`<g class="axis y-axis">`);
  for (const t of y.ticks(6)) {
    const ty = fmt1(y(t));
    parts.push(
      `<line class="grid" x1="0" x2="${PLOT_W}" y1="${ty}" y2="${ty}"/>`,
      `<text class="tick" x="-8" y="${ty}" dy="0.32em" text-anchor="end">${yFormat(t)}</text>`,
    );
  }
  parts.push(`</g><g class="axis x-axis">`);
  for (const t of xTicks) {
    const tx = fmt1(x(t));
    parts.push(
      `<line class="grid" x1="${tx}" x2="${tx}" y1="0" y2="${PLOT_H}"/>`,
      `<line class="tickmark" x1="${tx}" x2="${tx}" y1="${PLOT_H}" y2="${PLOT_H + 5}"/>`,
      `<text class="tick" x="${tx}" y="${PLOT_H + 18}" text-anchor="middle">${
        escapeHtml(xFormat(t))
      }</text>`,
    );
  }
  parts.push(
    `</g>`,
    `<rect class="frame" x="0" y="0" width="${PLOT_W}" height="${PLOT_H}"/>`,
    `<text class="axis-label" x="${PLOT_W / 2}" y="${PLOT_H + 38}" text-anchor="middle">${
      escapeHtml(frame.xLabel)
    }</text>`,
    `<text class="axis-label" transform="translate(-46,${
      PLOT_H / 2
    }) rotate(-90)" text-anchor="middle">${escapeHtml(frame.yLabel)}</text>`,
    ...body,
    `</g></svg>`,
  );
  return parts.join("\n");
}

/** A y scale over [lo, hi] with a little headroom, so extremes do not sit on the frame. */
export function paddedY(lo: number, hi: number): LinearScale {
  const pad = (hi - lo) * 0.04 || Math.abs(lo) * 0.05 || 1;
  return d3Scale.scaleLinear().domain([lo - pad, hi + pad]).range([PLOT_H, 0]).nice(6);
}

/** Loss curves: each series' mean across seeds as a line over its min–max band. */
export function lineChart(spec: ChartSpec): string {
  const steps: number[] = [];
  const losses: number[] = [];
  for (const s of spec.series) {
    for (const p of s.points) {
      if (!p.stat) continue;
      steps.push(p.step);
      losses.push(p.stat.min, p.stat.max);
    }
  }
  const x = d3Scale.scaleLinear().domain(widen(extent(steps), 1)).range([0, PLOT_W]).nice(6);
  const y = paddedY(...extent(losses));

  type P = { step: number; stat: PointStat | null };
  const has = (p: P) => p.stat !== null;
  const mean = d3Shape.line<P>().defined(has).x((p) => x(p.step)).y((p) => y(p.stat!.mean));
  const band = d3Shape.area<P>().defined(has).x((p) => x(p.step))
    .y0((p) => y(p.stat!.min)).y1((p) => y(p.stat!.max));

  const body: string[] = [];
  for (const s of spec.series) {
    const d = band(s.points);
    if (d) {
      body.push(
        `<path class="band" data-series="${escapeHtml(s.name)}" d="${d}" fill="${s.color}"/>`,
      );
    }
  }
  for (const s of spec.series) {
    const d = mean(s.points);
    if (d) {
      body.push(
        `<path class="mean" data-series="${escapeHtml(s.name)}" d="${d}" stroke="${s.color}"${
          s.dash ? ` stroke-dasharray="${s.dash}"` : ""
        }/>`,
      );
    }
  }
  body.push(legend(spec, PLOT_W));
  return chartSvg({ ...spec, x, y, xLabel: "step" }, body);
}

/** The legend box, top right of the plot: one row per series and one for the band. */
export function legend(spec: ChartSpec, plotW: number): string {
  // Top right: loss curves fall from the upper left, so that corner is nearly always empty.
  const rowH = 18;
  const entries = spec.series.map((s) => ({
    label: clip(s.name, 44),
    color: s.color,
    dash: s.dash,
  }));
  const longest = Math.max(spec.bandLabel.length, ...entries.map((e) => e.label.length));
  const w = Math.min(plotW - 20, 50 + longest * 7);
  const h = rowH * (entries.length + 1) + 10;
  const x0 = plotW - w - 8;
  const parts = [
    `<g class="legend" transform="translate(${fmt1(x0)},8)">`,
    `<rect class="legend-box" width="${fmt1(w)}" height="${h}" rx="4"/>`,
  ];
  entries.forEach((e, i) => {
    const cy = 14 + i * rowH;
    parts.push(
      `<line x1="10" x2="32" y1="${cy}" y2="${cy}" stroke="${e.color}" stroke-width="2.5"${
        e.dash ? ` stroke-dasharray="${e.dash}"` : ""
      }/>`,
      `<text class="legend-text" x="40" y="${cy}" dy="0.32em">${escapeHtml(e.label)}</text>`,
    );
  });
  const by = 14 + entries.length * rowH;
  parts.push(
    `<rect class="legend-band" x="10" y="${by - 6}" width="22" height="12"/>`,
    `<text class="legend-text" x="40" y="${by}" dy="0.32em">${escapeHtml(spec.bandLabel)}</text>`,
    `</g>`,
  );
  return parts.join("\n");
}
