/**
 * `deno task report RESULTS... --out report.html`: one self-contained HTML page (inline SVG and
 * CSS, no scripts, nothing fetched) with loss curves per group of runs and a final-loss table.
 *
 * A group is the runs that share experiment and configSha256: the same thing trained with
 * different seeds. Each curve is drawn as the mean across seeds with a min–max band, so the
 * seed-to-seed spread is visible next to the effect of a config change.
 */
import { parseCommandArgs } from "./cli.ts";
import { checkOutputFile } from "./output_policy.ts";
import { userPath } from "./paths.ts";
import { writeFileAtomic } from "./atomic.ts";
import { escapeHtml, lineChart, type Series } from "./chart.ts";
import { alignCurves, type CurveRow } from "./curves.ts";
import { ExitCode, UsageError } from "./errors.ts";
import { groupResults, type ReportGroup } from "./report_groups.ts";
import { type LoadedResult, loadResults } from "./results_io.ts";
import { sampleStd } from "./stats.ts";
import { sweepChart, sweptKey } from "./sweep_chart.ts";
import { formatNumber } from "./table.ts";

export { groupResults, type ReportGroup };

const TRAIN_COLOR = "#2563eb";
const VAL_COLOR = "#ea580c";
// Group colours avoid the train/val hues so the comparison chart is not misread as train vs val.
const GROUP_COLORS = ["#0f766e", "#7c3aed", "#be123c", "#b45309", "#0284c7", "#334155", "#a21caf"];

function groupName(g: ReportGroup): string {
  return `${g.label} · config ${g.configSha256.slice(0, 8)}`;
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
svg .whisker { stroke-width: 1.5; stroke-opacity: 0.55; }
svg .seed { fill-opacity: 0.45; }
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
    const withRuns = mine.filter((g) => g.runs.length > 0);
    const swept = sweptKey(withRuns);
    if (swept) charts.push(`<figure>${sweepChart(experiment, swept, withRuns)}</figure>`);
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
  const parsed = parseCommandArgs(args, {
    out: { type: "string", short: "o", default: "report.html" },
  }, USAGE);
  if (parsed.positionals.length === 0) throw new UsageError(`no results given\n${USAGE}`);
  const out = userPath(parsed.values.out);
  await checkOutputFile(out, "--out");
  const results = await loadResults(parsed.positionals.map(userPath));
  const html = renderReport(results);
  try {
    await writeFileAtomic(out, html);
  } catch (e) {
    console.error(`error: could not write the report to ${out}: ${(e as Error).message}`);
    return ExitCode.failure;
  }
  const groups = groupResults(results);
  console.log(
    `wrote ${out}: ${results.length} runs in ${groups.length} group(s) of ${
      new Set(groups.map((g) => g.experiment)).size
    } experiment(s)`,
  );
  return ExitCode.ok;
}
