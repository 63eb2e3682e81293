/**
 * `deno task diff A [B]`: per-run tables and seed statistics for one group of results, or the
 * difference between two groups with a Welch confidence interval, t, p and Cohen's d.
 *
 * A group is whatever one spec (file, directory or glob) names. Pooling runs of different
 * experiments or data, or comparing across them, is refused unless --force: such numbers look
 * meaningful and are not.
 */
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { ExitCode, UsageError } from "./errors.ts";
import type { RunResult, RunStatus } from "./result_schema.ts";
import { type LoadedResult, loadResults } from "./results_io.ts";
import { alignCurves, type CurveRow, type PointStat } from "./curves.ts";
import { metricValue } from "./metric.ts";
import { summarize, type Summary, welch, type WelchResult } from "./stats.ts";
import { formatInterval as interval, formatNumber, formatP, renderTable } from "./table.ts";

export {
  alignCurves,
  type CurveRow,
  formatNumber,
  formatP,
  metricValue,
  type PointStat,
  renderTable,
};

/** Output formats of `diff`. */
export type DiffFormat = "text" | "md" | "json";

/** One run as listed in a group's table. */
export interface RunRow {
  path: string;
  runId: string;
  seed: number;
  status: RunStatus;
  steps: number;
  finalTrain: number | null;
  finalVal: number | null;
  stepsPerSec: number;
  /** The chosen metric; null for runs excluded from the statistics. */
  metric: number | null;
  /** Whether the run counts in the statistics (status "ok"). */
  included: boolean;
}

/** One group of runs with its statistics. */
export interface GroupReport {
  /** "A" or "B". */
  label: string;
  /** The file, directory or glob the group came from. */
  spec: string;
  experiments: string[];
  /** Data sha256 of the runs (null for runs without a corpus). */
  dataSha256: (string | null)[];
  runs: RunRow[];
  /** Statistics of the metric over the included runs; null when none is included. */
  summary: Summary | null;
  /** Mean ± std per eval step, present with --curve. */
  curve?: CurveRow[];
}

/** The comparison of group B with group A. */
export interface Comparison extends WelchResult {
  nA: number;
  nB: number;
  /** p < 0.05 and the 95% CI excludes 0. */
  significant: boolean;
  /** Direction of B relative to A when significant. */
  direction: "lower" | "higher" | null;
  verdict: string;
}

/** Everything `diff` reports, as printed by `--format json`. */
export interface DiffReport {
  metric: string;
  groups: GroupReport[];
  /** Present with two groups once each has at least two included runs. */
  comparison: Comparison | null;
  notes: string[];
}

/** Options of {@link diffGroups}. */
export interface DiffOptions {
  /** Dotted path of a numeric field in the result; default `final.val`. */
  metric?: string;
  /** Also align the loss curves by step. */
  curve?: boolean;
  /** Pool or compare runs of different experiments or data anyway. */
  force?: boolean;
}

const USAGE =
  "usage: deno task diff A [B] [--metric PATH] [--curve] [--format text|md|json] [--force]\n" +
  "  A, B: a result file, a directory of results or a glob (one group each)";

function finite(value: number | null | undefined): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function runRow(loaded: LoadedResult, metric: string): RunRow {
  const { path, result } = loaded;
  const included = result.status === "ok";
  let value: number | null = null;
  if (included) value = metricValue(result, metric, path);
  else {
    // Excluded runs are only listed; a missing metric there (a failed run) is no error.
    try {
      value = metricValue(result, metric, path);
    } catch {
      value = null;
    }
  }
  return {
    path,
    runId: result.runId,
    seed: result.seed,
    status: result.status,
    steps: result.steps,
    finalTrain: finite(result.final.train),
    finalVal: finite(result.final.val),
    stepsPerSec: result.throughput.stepsPerSec,
    metric: value,
    included,
  };
}

function dataKey(r: RunResult): string {
  return r.data ? r.data.sha256 : "none";
}

function shortData(key: string): string {
  return key === "none" ? "no data" : `data ${key.slice(0, 12)}`;
}

/** Groups file names by a key, for messages such as "bigram (a.json, b.json)". */
function partition(runs: readonly LoadedResult[], key: (r: RunResult) => string) {
  const parts = new Map<string, string[]>();
  for (const { path, result } of runs) {
    const k = key(result);
    parts.set(k, [...(parts.get(k) ?? []), path]);
  }
  return parts;
}

function describe(parts: Map<string, string[]>, show: (k: string) => string): string {
  return [...parts.entries()].map(([k, files]) => `${show(k)} (${files.join(", ")})`).join(
    " vs ",
  );
}

/** What runs must share to be pooled or compared: [what, key of a run, how to show a key]. */
const POOLING_CHECKS: [string, (r: RunResult) => string, (k: string) => string][] = [
  ["experiments", (r) => r.experiment, (k) => k],
  ["data", dataKey, shortData],
];

function checkGroup(
  label: string,
  runs: readonly LoadedResult[],
  force: boolean,
  notes: string[],
): void {
  for (const [what, key, show] of POOLING_CHECKS) {
    const parts = partition(runs, key);
    if (parts.size <= 1) continue;
    const message = `group ${label} pools runs of different ${what}: ${describe(parts, show)}`;
    if (!force) throw new UsageError(`${message}; pass --force to pool them anyway`);
    notes.push(`--force: ${message}`);
  }
  const configs = partition(runs, (r) => r.configSha256);
  if (configs.size > 1) {
    notes.push(`group ${label} mixes ${configs.size} different configs (configSha256)`);
  }
}

function checkAcross(
  a: readonly LoadedResult[],
  b: readonly LoadedResult[],
  force: boolean,
  notes: string[],
): void {
  for (const [what, key, show] of POOLING_CHECKS) {
    const ka = new Set(a.map((x) => key(x.result)));
    const kb = new Set(b.map((x) => key(x.result)));
    const same = ka.size === kb.size && [...ka].every((k) => kb.has(k));
    if (same) continue;
    const message = `A and B are runs of different ${what}: A is ${
      describe(partition(a, key), show)
    }, B is ${describe(partition(b, key), show)}`;
    if (!force) throw new UsageError(`${message}; pass --force to compare them anyway`);
    notes.push(`--force: ${message}`);
  }
}

/** The one-line verdict for a Welch comparison of B against A. */
export function verdictOf(w: WelchResult, nA: number, nB: number): {
  significant: boolean;
  direction: "lower" | "higher" | null;
  verdict: string;
} {
  const excludesZero = w.ci95[0] > 0 || w.ci95[1] < 0;
  if (!(w.p < 0.05 && excludesZero)) {
    return {
      significant: false,
      direction: null,
      verdict: `no detectable difference at n = ${nA} vs ${nB} (${formatP(w.p)})`,
    };
  }
  const direction = w.diff < 0 ? "lower" : "higher";
  const half = (w.ci95[1] - w.ci95[0]) / 2;
  // Round the half-width to two significant digits and the difference to the same decimals,
  // so "0.041 ± 0.012" never claims more precision than the interval has.
  const ref = half > 0 ? half : Math.abs(w.diff);
  const decimals = ref > 0 ? Math.min(12, Math.max(0, 1 - Math.floor(Math.log10(ref)))) : 4;
  return {
    significant: true,
    direction,
    verdict: `B is ${direction} by ${Math.abs(w.diff).toFixed(decimals)} ± ${
      half.toFixed(decimals)
    } (95% CI), ${formatP(w.p)}`,
  };
}

/** Builds the structured report for one or two groups of loaded results. */
export function diffGroups(
  groups: ReadonlyArray<{ spec: string; runs: readonly LoadedResult[] }>,
  options: DiffOptions = {},
): DiffReport {
  if (groups.length < 1 || groups.length > 2) {
    throw new UsageError(`diff takes one or two groups, got ${groups.length}`);
  }
  const metric = options.metric ?? "final.val";
  const force = options.force ?? false;
  const notes: string[] = [];
  const labels = ["A", "B"];
  groups.forEach((g, i) => {
    if (g.runs.length === 0) throw new UsageError(`group ${labels[i]}: no results in ${g.spec}`);
    checkGroup(labels[i], g.runs, force, notes);
  });
  if (groups.length === 2) checkAcross(groups[0].runs, groups[1].runs, force, notes);

  const reports: GroupReport[] = groups.map((g, i) => {
    const label = labels[i];
    const runs = g.runs.map((r) => runRow(r, metric)).sort((x, y) =>
      x.seed - y.seed || x.runId.localeCompare(y.runId)
    );
    const values = runs.filter((r) => r.included).map((r) => r.metric as number);
    const excluded = runs.filter((r) => !r.included);
    if (excluded.length > 0) {
      const list = excluded.map((r) => `${basename(r.path)} (${r.status})`).join(", ");
      notes.push(
        `group ${label}: ${excluded.length} run(s) not ok, listed but excluded from statistics: ${list}`,
      );
    }
    if (values.length === 0) notes.push(`group ${label}: no ok runs, no statistics`);
    else if (values.length === 1) {
      notes.push(`group ${label}: n = 1, so no std and no confidence interval`);
    }
    const report: GroupReport = {
      label,
      spec: g.spec,
      experiments: [...new Set(g.runs.map((r) => r.result.experiment))],
      dataSha256: [...new Set(g.runs.map((r) => r.result.data?.sha256 ?? null))],
      runs,
      summary: values.length > 0 ? summarize(values) : null,
    };
    if (options.curve) {
      report.curve = alignCurves(
        g.runs.filter((r) => r.result.status === "ok").map((r) => r.result),
      );
    }
    return report;
  });

  let comparison: Comparison | null = null;
  if (reports.length === 2) {
    const [a, b] = reports.map((r) =>
      r.runs.filter((x) => x.included).map((x) => x.metric as number)
    );
    if (a.length >= 2 && b.length >= 2) {
      const w = welch(a, b);
      comparison = { ...w, nA: a.length, nB: b.length, ...verdictOf(w, a.length, b.length) };
    } else {
      notes.push(
        `no comparison: Welch's test needs at least 2 ok runs per group (n = ${a.length} vs ${b.length})`,
      );
    }
  }
  return { metric, groups: reports, comparison, notes };
}

function pm(s: PointStat | null): string {
  if (!s) return "—";
  return s.std === null ? formatNumber(s.mean) : `${formatNumber(s.mean)} ± ${formatNumber(s.std)}`;
}

const STANDARD_COLUMNS = new Set(["final.train", "final.val", "throughput.stepsPerSec"]);

function groupTitle(g: GroupReport, md: boolean): string {
  const data = g.dataSha256.map((d) => d === null ? "no data" : `data ${d.slice(0, 12)}`);
  return `${g.label}: ${md ? `\`${g.spec}\`` : g.spec} — ${g.experiments.join(", ")}, ${
    data.join(", ")
  }, ${g.runs.length} run(s)`;
}

/** Renders a report as aligned text, markdown tables or JSON. */
export function formatDiff(report: DiffReport, format: DiffFormat): string {
  if (format === "json") return JSON.stringify(report, null, 2);
  const md = format === "md";
  const heading = (s: string) => md ? `### ${s}` : s;
  const out: string[] = [];
  const extra = !STANDARD_COLUMNS.has(report.metric);

  for (const g of report.groups) {
    out.push(heading(groupTitle(g, md)), "");
    const header = ["seed", "run", "status", "steps", "final train", "final val", "steps/s"];
    if (extra) header.push(report.metric);
    const rows = g.runs.map((r) => {
      const row = [
        String(r.seed),
        r.runId,
        r.included ? r.status : `${r.status} (excluded)`,
        String(r.steps),
        formatNumber(r.finalTrain),
        formatNumber(r.finalVal),
        r.stepsPerSec.toFixed(1),
      ];
      if (extra) row.push(formatNumber(r.metric));
      return row;
    });
    const right = header.map((_, i) => i !== 1 && i !== 2);
    out.push(renderTable(header, rows, format === "md" ? "md" : "text", right), "");
    if (g.curve) {
      out.push(heading(`${g.label}: loss curve (mean ± std across runs)`), "");
      const curveRows = g.curve.map((c) => [
        String(c.step),
        String(Math.max(c.train?.n ?? 0, c.val?.n ?? 0)),
        pm(c.train),
        pm(c.val),
      ]);
      out.push(
        renderTable(["step", "n", "train", "val"], curveRows, md ? "md" : "text", [
          true,
          true,
          true,
          true,
        ]),
        "",
      );
    }
  }

  out.push(heading(`${report.metric} across seeds`), "");
  const summaryRows = report.groups.map((g) => {
    const s = g.summary;
    return [
      g.label,
      String(s?.n ?? 0),
      formatNumber(s?.mean),
      s && s.n > 1 ? formatNumber(s.std) : "—",
      interval(s?.ci95 ?? null),
      formatNumber(s?.min),
      formatNumber(s?.max),
    ];
  });
  out.push(
    renderTable(
      ["group", "n", "mean", "std", "95% CI", "min", "max"],
      summaryRows,
      md ? "md" : "text",
    ),
    "",
  );

  const c = report.comparison;
  if (c) {
    const rows = [
      ["B − A", formatNumber(c.diff)],
      ["95% CI (Welch)", interval(c.ci95)],
      ["Welch t", c.t.toFixed(3)],
      ["df", c.df.toFixed(2)],
      ["p (two-sided)", c.p < 0.001 ? c.p.toExponential(2) : c.p.toFixed(4)],
      ["Cohen's d", Number.isFinite(c.cohenD) ? c.cohenD.toFixed(2) : formatNumber(c.cohenD)],
    ];
    out.push(heading(`B vs A on ${report.metric}`), "");
    out.push(renderTable(["statistic", "value"], rows, md ? "md" : "text", [false, true]), "");
    out.push(md ? `**${c.verdict}**` : c.verdict, "");
  }
  for (const note of report.notes) out.push(md ? `- note: ${note}` : `note: ${note}`);
  return out.join("\n").trimEnd();
}

function parseDiffArgs(args: string[]) {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        metric: { type: "string", default: "final.val" },
        curve: { type: "boolean", default: false },
        format: { type: "string", default: "text" },
        force: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  const format = values.format;
  if (format !== "text" && format !== "md" && format !== "json") {
    throw new UsageError(`--format must be text, md or json, not '${format}'`);
  }
  if (!values.help && (positionals.length < 1 || positionals.length > 2)) {
    throw new UsageError(`give one or two groups of results\n${USAGE}`);
  }
  if (values.metric.trim() === "" || values.metric.split(".").some((k) => k === "")) {
    throw new UsageError(
      `--metric must be a dotted path such as final.val, not '${values.metric}'`,
    );
  }
  return {
    specs: positionals,
    metric: values.metric,
    curve: values.curve,
    force: values.force,
    help: values.help,
    format: format as DiffFormat,
  };
}

/** `deno task diff`: prints the comparison and returns the exit code (usage errors throw). */
export async function runDiff(args: string[]): Promise<number> {
  const opts = parseDiffArgs(args);
  if (opts.help) {
    console.log(USAGE);
    return ExitCode.ok;
  }
  const groups = [];
  for (const spec of opts.specs) groups.push({ spec, runs: await loadResults([spec]) });
  const report = diffGroups(groups, opts);
  console.log(formatDiff(report, opts.format));
  return ExitCode.ok;
}
