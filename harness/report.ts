/**
 * `deno task report RESULTS... --out report.html`: one self-contained HTML page (inline SVG and
 * CSS, no scripts, nothing fetched) with loss curves per group of runs and a final-loss table.
 *
 * A group is the runs that share experiment and configSha256: the same thing trained with
 * different seeds. Each curve is drawn as the mean across seeds with a min–max band, so the
 * seed-to-seed spread is visible next to the effect of a config change.
 */
import { parseArgs } from "node:util";
import * as d3ScaleUntyped from "d3-scale";
import * as d3ShapeUntyped from "d3-shape";
import { writeFileAtomic } from "./atomic.ts";
import { alignCurves, type CurveRow, type PointStat } from "./curves.ts";
import { formatNumber } from "./table.ts";
import { ExitCode, UsageError } from "./errors.ts";
import { type LoadedResult, loadResults } from "./results_io.ts";
import { sampleStd } from "./stats.ts";

// d3 ships no type declarations; these are the few members used here, typed once.
interface LinearScale {
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
const d3Scale = d3ScaleUntyped as { scaleLinear(): LinearScale };
const d3Shape = d3ShapeUntyped as {
  line<T>(): LineGenerator<T>;
  area<T>(): AreaGenerator<T>;
};

/** Runs of one experiment sharing one resolved config, i.e. differing only by seed. */
export interface ReportGroup {
  experiment: string;
  configSha256: string;
  /** The --set overrides of the group's runs. */
  overrides: Record<string, unknown>;
  /** The overrides that tell this group apart from the experiment's others, or "defaults". */
  label: string;
  /** Overrides every group of the experiment shares; empty when there are none. */
  shared: string;
  /** Runs with status "ok": the ones drawn and summarized. */
  runs: LoadedResult[];
  /** Runs with any other status: listed only. */
  excluded: LoadedResult[];
}

const TRAIN_COLOR = "#2563eb";
const VAL_COLOR = "#ea580c";
// Group colours avoid the train/val hues so the comparison chart is not misread as train vs val.
const GROUP_COLORS = ["#0f766e", "#7c3aed", "#be123c", "#b45309", "#0284c7", "#334155", "#a21caf"];

const WIDTH = 560;
const HEIGHT = 340;
const MARGIN = { top: 52, right: 20, bottom: 46, left: 62 };

function escapeHtml(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function showValue(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

function overridesText(overrides: Record<string, unknown>, keys: readonly string[]): string {
  return keys.filter((k) => k in overrides).map((k) => `${k}=${showValue(overrides[k])}`).join(
    " ",
  );
}

/**
 * Labels the groups of one experiment by the overrides that tell them apart ("train.lr=0.03"),
 * since settings every group shares (say train.steps=1500) would only make labels long.
 */
function labelGroups(groups: ReportGroup[]): void {
  const keys = [...new Set(groups.flatMap((g) => Object.keys(g.overrides)))].sort(byCodeUnits);
  const value = (g: ReportGroup, k: string) =>
    k in g.overrides ? showValue(g.overrides[k]) : undefined;
  const distinct = groups.length < 2
    ? []
    : keys.filter((k) => new Set(groups.map((g) => value(g, k) ?? "\0")).size > 1);
  const shared = keys.filter((k) => !distinct.includes(k));
  for (const g of groups) {
    const own = distinct.filter((k) => value(g, k) !== undefined);
    g.label = distinct.length > 0
      ? own.map((k) => `${k}=${value(g, k)}`).join(" ") || "defaults"
      : overridesText(g.overrides, keys) || "defaults";
    g.shared = distinct.length > 0 ? overridesText(g.overrides, shared) : "";
  }
  // Same overrides yet different configs (a config file or --data changed): the hash decides.
  const counts = new Map<string, number>();
  for (const g of groups) counts.set(g.label, (counts.get(g.label) ?? 0) + 1);
  for (const g of groups) {
    if ((counts.get(g.label) ?? 0) > 1) g.label += ` (${g.configSha256.slice(0, 8)})`;
  }
}

/** Splits results into groups by experiment + configSha256, sorted by experiment then label. */
export function groupResults(results: readonly LoadedResult[]): ReportGroup[] {
  const groups = new Map<string, ReportGroup>();
  for (const loaded of results) {
    const r = loaded.result;
    const key = `${r.experiment}\0${r.configSha256}`;
    let g = groups.get(key);
    if (!g) {
      g = {
        experiment: r.experiment,
        configSha256: r.configSha256,
        overrides: r.overrides,
        label: "",
        shared: "",
        runs: [],
        excluded: [],
      };
      groups.set(key, g);
    }
    (r.status === "ok" ? g.runs : g.excluded).push(loaded);
  }
  const all = [...groups.values()];
  for (const g of all) g.runs.sort((a, b) => a.result.seed - b.result.seed);
  for (const experiment of new Set(all.map((g) => g.experiment))) {
    labelGroups(all.filter((g) => g.experiment === experiment));
  }
  return all.sort((a, b) =>
    byCodeUnits(a.experiment, b.experiment) || byCodeUnits(a.label, b.label) ||
    byCodeUnits(a.configSha256, b.configSha256)
  );
}

function groupName(g: ReportGroup): string {
  return `${g.label} · config ${g.configSha256.slice(0, 8)}`;
}

/** One line of a chart: per-step statistics drawn as a mean line over a min–max band. */
interface Series {
  name: string;
  color: string;
  /** SVG dash pattern; val is dashed so it stays visible where it lies on top of train. */
  dash?: string;
  points: { step: number; stat: PointStat | null }[];
}

interface ChartSpec {
  title: string;
  subtitle: string;
  yLabel: string;
  series: Series[];
  /** Legend text for the band swatch. */
  bandLabel: string;
}

function extent(values: number[]): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

// A one-point curve has an empty extent; widen it so scales do not collapse to a point.
function widen([lo, hi]: [number, number], pad: number): [number, number] {
  return lo === hi ? [lo - pad, hi + pad] : [lo, hi];
}

/** Shortens text that would overflow its place in a chart; the <title> keeps the full text. */
function clip(text: string, maxChars: number): string {
  return text.length > maxChars ? `${text.slice(0, maxChars - 1)}…` : text;
}

const fmt1 = (v: number) => (Math.round(v * 10) / 10).toString();

function lineChart(spec: ChartSpec): string {
  const steps: number[] = [];
  const losses: number[] = [];
  for (const s of spec.series) {
    for (const p of s.points) {
      if (!p.stat) continue;
      steps.push(p.step);
      losses.push(p.stat.min, p.stat.max);
    }
  }
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const [y0, y1] = extent(losses);
  const x = d3Scale.scaleLinear().domain(widen(extent(steps), 1)).range([0, plotW]).nice(6);
  const yPad = (y1 - y0) * 0.04 || Math.abs(y0) * 0.05 || 1;
  const y = d3Scale.scaleLinear().domain([y0 - yPad, y1 + yPad]).range([plotH, 0]).nice(6);
  const xTicks = x.ticks(6);
  const yTicks = y.ticks(6);
  const xFormat = x.tickFormat(6);
  const yFormat = y.tickFormat(6);

  type P = { step: number; stat: PointStat | null };
  const has = (p: P) => p.stat !== null;
  const mean = d3Shape.line<P>().defined(has).x((p) => x(p.step)).y((p) => y(p.stat!.mean));
  const band = d3Shape.area<P>().defined(has).x((p) => x(p.step))
    .y0((p) => y(p.stat!.min)).y1((p) => y(p.stat!.max));

  const parts: string[] = [];
  parts.push(
    `<svg class="chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${
      escapeHtml(spec.title)
    }">`,
    `<title>${escapeHtml(`${spec.title} — ${spec.subtitle}`)}</title>`,
    `<text class="title" x="${MARGIN.left}" y="22">${escapeHtml(clip(spec.title, 56))}</text>`,
    `<text class="subtitle" x="${MARGIN.left}" y="40">${
      escapeHtml(clip(spec.subtitle, 76))
    }</text>`,
    `<g transform="translate(${MARGIN.left},${MARGIN.top})">`,
  );
  // Grid and ticks first so the data draws over them.
  parts.push(`<g class="axis y-axis">`);
  for (const t of yTicks) {
    const ty = fmt1(y(t));
    parts.push(
      `<line class="grid" x1="0" x2="${plotW}" y1="${ty}" y2="${ty}"/>`,
      `<text class="tick" x="-8" y="${ty}" dy="0.32em" text-anchor="end">${yFormat(t)}</text>`,
    );
  }
  parts.push(`</g><g class="axis x-axis">`);
  for (const t of xTicks) {
    const tx = fmt1(x(t));
    parts.push(
      `<line class="grid" x1="${tx}" x2="${tx}" y1="0" y2="${plotH}"/>`,
      `<line class="tickmark" x1="${tx}" x2="${tx}" y1="${plotH}" y2="${plotH + 5}"/>`,
      `<text class="tick" x="${tx}" y="${plotH + 18}" text-anchor="middle">${xFormat(t)}</text>`,
    );
  }
  parts.push(
    `</g>`,
    `<rect class="frame" x="0" y="0" width="${plotW}" height="${plotH}"/>`,
    `<text class="axis-label" x="${plotW / 2}" y="${plotH + 38}" text-anchor="middle">step</text>`,
    `<text class="axis-label" transform="translate(-46,${
      plotH / 2
    }) rotate(-90)" text-anchor="middle">${escapeHtml(spec.yLabel)}</text>`,
  );
  for (const s of spec.series) {
    const d = band(s.points);
    if (d) {
      parts.push(
        `<path class="band" data-series="${escapeHtml(s.name)}" d="${d}" fill="${s.color}"/>`,
      );
    }
  }
  for (const s of spec.series) {
    const d = mean(s.points);
    if (d) {
      parts.push(
        `<path class="mean" data-series="${escapeHtml(s.name)}" d="${d}" stroke="${s.color}"${
          s.dash ? ` stroke-dasharray="${s.dash}"` : ""
        }/>`,
      );
    }
  }
  parts.push(legend(spec, plotW));
  parts.push(`</g></svg>`);
  return parts.join("\n");
}

function legend(spec: ChartSpec, plotW: number): string {
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

function seedsText(n: number): string {
  return n === 1 ? "1 seed" : `${n} seeds`;
}

function groupChart(g: ReportGroup): string {
  const rows = alignCurves(g.runs.map((r) => r.result));
  const series: Series[] = [
    {
      name: "train",
      color: TRAIN_COLOR,
      points: rows.map((r) => ({ step: r.step, stat: r.train })),
    },
  ];
  if (rows.some((r) => r.val !== null)) {
    series.push({
      name: "val",
      color: VAL_COLOR,
      dash: "7 4",
      points: rows.map((r) => ({ step: r.step, stat: r.val })),
    });
  }
  return lineChart({
    title: `${g.experiment} — ${g.label}`,
    subtitle: [`config ${g.configSha256.slice(0, 8)}`, seedsText(g.runs.length), g.shared]
      .filter((part) => part !== "").join(" · "),
    yLabel: "loss",
    series,
    bandLabel: "min–max across seeds",
  });
}

function comparisonChart(experiment: string, groups: ReportGroup[]): string {
  const aligned = groups.map((g) => alignCurves(g.runs.map((r) => r.result)));
  // Compare on validation loss where every group has it: that is what generalizes.
  const useVal = aligned.every((rows) => rows.some((r) => r.val !== null));
  const which = useVal ? "val" : "train";
  const series = groups.map((g, i): Series => ({
    name: g.label,
    color: GROUP_COLORS[i % GROUP_COLORS.length],
    points: aligned[i].map((r: CurveRow) => ({ step: r.step, stat: useVal ? r.val : r.train })),
  }));
  return lineChart({
    title: `${experiment} — ${which} loss by group`,
    subtitle: [`${groups.length} configs, each the mean across its seeds`, groups[0].shared]
      .filter((part) => part !== "").join(" · "),
    yLabel: `${which} loss`,
    series,
    bandLabel: "min–max across seeds",
  });
}

function meanStd(values: number[], format: (v: number) => string = formatNumber): string {
  if (values.length === 0) return "—";
  const m = values.reduce((s, v) => s + v, 0) / values.length;
  return values.length === 1 ? format(m) : `${format(m)} ± ${format(sampleStd(values))}`;
}

function finalKeys(groups: ReportGroup[]): string[] {
  const keys = new Set<string>();
  for (const g of groups) {
    for (const r of g.runs) Object.keys(r.result.final).forEach((k) => keys.add(k));
  }
  const order = (k: string) => (k === "train" ? 0 : k === "val" ? 1 : 2);
  return [...keys].sort((a, b) => order(a) - order(b) || (a < b ? -1 : a > b ? 1 : 0));
}

function finalTable(groups: ReportGroup[]): string {
  const keys = finalKeys(groups);
  const head = ["group", "n", ...keys.map((k) => `final ${k} (mean ± std)`), "steps/s"];
  const rows = groups.map((g) => {
    const cells = [
      `<td class="label">${escapeHtml(groupName(g))}</td>`,
      `<td>${g.runs.length}</td>`,
    ];
    for (const k of keys) {
      const values = g.runs.map((r) => r.result.final[k]).filter((v): v is number =>
        typeof v === "number" && Number.isFinite(v)
      );
      cells.push(`<td>${meanStd(values)}</td>`);
    }
    cells.push(
      `<td>${
        meanStd(g.runs.map((r) => r.result.throughput.stepsPerSec), (v) => v.toFixed(1))
      }</td>`,
    );
    return `<tr>${cells.join("")}</tr>`;
  });
  return [
    `<table class="final">`,
    `<thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr></thead>`,
    `<tbody>`,
    ...rows,
    `</tbody></table>`,
  ].join("\n");
}

const CSS = `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: #1f2937; background: #f8fafc; margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 24px 40px; }
h1 { font-size: 22px; margin: 0 0 2px; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #e2e8f0; }
.meta { color: #64748b; margin: 0 0 8px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); gap: 16px; }
figure { margin: 0; background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 6px; }
svg.chart { display: block; width: 100%; height: auto; font-family: inherit; }
svg .title { font-size: 15px; font-weight: 600; fill: #0f172a; }
svg .subtitle { font-size: 12px; fill: #64748b; }
svg .grid { stroke: #eef2f7; }
svg .tickmark { stroke: #94a3b8; }
svg .frame { fill: none; stroke: #cbd5e1; }
svg .tick { font-size: 11px; fill: #475569; font-variant-numeric: tabular-nums; }
svg .axis-label { font-size: 12px; fill: #334155; }
svg .band { fill-opacity: 0.18; stroke: none; }
svg .mean { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
svg .legend-box { fill: #fff; fill-opacity: 0.92; stroke: #e2e8f0; }
svg .legend-text { font-size: 12px; fill: #334155; }
svg .legend-band { fill: #64748b; fill-opacity: 0.22; }
table.final { border-collapse: collapse; margin-top: 14px; background: #fff; font-variant-numeric: tabular-nums; }
table.final th, table.final td { border: 1px solid #e2e8f0; padding: 5px 10px; text-align: right; }
table.final th { background: #f1f5f9; font-weight: 600; }
table.final td.label, table.final th:first-child { text-align: left; }
.note { color: #92400e; background: #fffbeb; border: 1px solid #fde68a; border-radius: 6px;
  padding: 6px 10px; margin: 10px 0 0; }
.empty { color: #64748b; font-style: italic; padding: 12px; }
`.trim();

/** Renders loaded results as one self-contained HTML page of loss charts and final tables. */
export function renderReport(results: ReadonlyArray<LoadedResult>): string {
  const groups = groupResults(results);
  const experiments = [...new Set(groups.map((g) => g.experiment))];
  const body: string[] = [];
  for (const experiment of experiments) {
    const mine = groups.filter((g) => g.experiment === experiment);
    body.push(`<section class="experiment">`, `<h2>${escapeHtml(experiment)}</h2>`);
    const charts: string[] = [];
    const drawable = mine.filter((g) => g.runs.some((r) => r.result.curve.length > 0));
    for (const g of mine) {
      if (drawable.includes(g)) charts.push(`<figure>${groupChart(g)}</figure>`);
      else {
        charts.push(
          `<figure><div class="empty">${
            escapeHtml(`${experiment} — ${groupName(g)}`)
          }: no loss curve recorded</div></figure>`,
        );
      }
    }
    if (drawable.length > 1) {
      charts.push(`<figure>${comparisonChart(experiment, drawable)}</figure>`);
    }
    body.push(`<div class="charts">`, ...charts, `</div>`);
    body.push(finalTable(mine));
    for (const g of mine) {
      if (g.excluded.length === 0) continue;
      const list = g.excluded.map((r) => `${r.path} (${r.result.status})`).join(", ");
      body.push(
        `<p class="note">${escapeHtml(groupName(g))}: ${g.excluded.length} run(s) not ok, ` +
          `excluded from curves and table: ${escapeHtml(list)}</p>`,
      );
    }
    body.push(`</section>`);
  }
  const okRuns = groups.reduce((n, g) => n + g.runs.length, 0);
  return [
    `<!doctype html>`,
    `<html lang="en"><head><meta charset="utf-8">`,
    `<meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<title>seedlab report</title>`,
    `<style>\n${CSS}\n</style></head>`,
    `<body><main>`,
    `<h1>seedlab report</h1>`,
    `<p class="meta">${results.length} runs (${okRuns} ok) · ${experiments.length} experiment(s) · ${groups.length} group(s). ` +
    `Lines are the mean across seeds; shaded bands span the min and max.</p>`,
    ...body,
    `</main></body></html>`,
    ``,
  ].join("\n");
}

const USAGE = "usage: deno task report RESULTS... [--out report.html]\n" +
  "  RESULTS: result files, directories of results or globs";

/** `deno task report`: writes the HTML report atomically and returns the exit code. */
export async function runReport(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        out: { type: "string", short: "o", default: "report.html" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  if (parsed.values.help) {
    console.log(USAGE);
    return ExitCode.ok;
  }
  if (parsed.positionals.length === 0) throw new UsageError(`no results given\n${USAGE}`);
  const results = await loadResults(parsed.positionals);
  const html = renderReport(results);
  await writeFileAtomic(parsed.values.out, html);
  const groups = groupResults(results);
  console.log(
    `wrote ${parsed.values.out}: ${results.length} runs in ${groups.length} group(s) of ${
      new Set(groups.map((g) => g.experiment)).size
    } experiment(s)`,
  );
  return ExitCode.ok;
}
