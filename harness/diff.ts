/**
 * `deno task diff A [B]`: per-run tables and seed statistics for one group of results, or the
 * difference between two groups with a Welch confidence interval, t, p and Cohen's d.
 *
 * A group is whatever one spec (file, directory or glob) names. Pooling runs of different
 * experiments or data, or comparing across them, is refused unless --force: such numbers look
 * meaningful and are not.
 */
import { basename } from "node:path";
import { parseCommandArgs } from "./cli.ts";
import { userPath } from "./paths.ts";
import { ExitCode, UsageError } from "./errors.ts";
import { type LoadedResult, loadResults } from "./results_io.ts";
import { alignCurves, type CurveRow, type PointStat } from "./curves.ts";
import { metricValue } from "./metric.ts";
import { groupByConfig, mixedWithin } from "./grouping.ts";
import { powerOfOne, powerOfTwo, type PowerReport } from "./power.ts";
import { type Better, rankGroups } from "./ranking.ts";
import { sampleStd, summarize, welch, type WelchResult } from "./stats.ts";
import { formatNumber, formatP, renderTable } from "./table.ts";
import { formatDiff } from "./diff_format.ts";
import { checkAcross, checkGroup } from "./diff_pooling.ts";
import type {
  Comparison,
  DiffFormat,
  DiffOptions,
  DiffReport,
  GroupReport,
  RunRow,
} from "./diff_types.ts";

export {
  alignCurves,
  type CurveRow,
  formatNumber,
  formatP,
  metricValue,
  type PointStat,
  renderTable,
};
export { formatDiff };
export type * from "./diff_types.ts";

const USAGE = "usage: deno task diff A [B] [--by KEY[,KEY]] [--metric PATH] [--curve]\n" +
  "       [--format text|md|json] [--better lower|higher] [--alpha 0.05] [--power 0.8] [--force]\n" +
  "  A, B: a result file, a directory of results or a glob (one group each); a directory\n" +
  "  holding several configs, or any results with --by KEY, is grouped by config and ranked";

const DEFAULT_ALPHA = 0.05;
const DEFAULT_POWER = 0.8;

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

/** One group's rows and statistics; notes what it leaves out. */
function groupReport(
  label: string,
  spec: string,
  loaded: readonly LoadedResult[],
  options: DiffOptions,
  notes: string[],
): GroupReport {
  const metric = options.metric ?? "final.val";
  const runs = loaded.map((r) => runRow(r, metric)).sort((x, y) =>
    x.seed - y.seed || x.runId.localeCompare(y.runId)
  );
  const values = includedValues(runs);
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
    spec,
    experiments: [...new Set(loaded.map((r) => r.result.experiment))],
    dataSha256: [...new Set(loaded.map((r) => r.result.data?.sha256 ?? null))],
    runs,
    summary: values.length > 0 ? summarize(values) : null,
  };
  if (options.curve) {
    report.curve = alignCurves(
      loaded.filter((r) => r.result.status === "ok").map((r) => r.result),
    );
  }
  return report;
}

function includedValues(runs: readonly RunRow[]): number[] {
  return runs.filter((x) => x.included).map((x) => x.metric as number);
}

/** The power figure: seeds per group for two groups, the detectable difference for one. */
function powerOf(groups: readonly number[][], options: DiffOptions): PowerReport | null {
  const alpha = options.alpha ?? DEFAULT_ALPHA;
  const power = options.power ?? DEFAULT_POWER;
  if (groups.length === 2 && groups.every((g) => g.length >= 2)) {
    return powerOfTwo(groups[0], groups[1], alpha, power, sampleStd);
  }
  if (groups.length === 1 && groups[0].length >= 2) {
    return powerOfOne(groups[0].length, sampleStd(groups[0]), alpha, power);
  }
  return null;
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

  const reports = groups.map((g, i) => groupReport(labels[i], g.spec, g.runs, options, notes));
  const values = reports.map((r) => includedValues(r.runs));
  let comparison: Comparison | null = null;
  if (reports.length === 2) {
    const [a, b] = values;
    if (a.length >= 2 && b.length >= 2) {
      const w = welch(a, b);
      comparison = { ...w, nA: a.length, nB: b.length, ...verdictOf(w, a.length, b.length) };
    } else {
      notes.push(
        `no comparison: Welch's test needs at least 2 ok runs per group (n = ${a.length} vs ${b.length})`,
      );
    }
  }
  return { metric, groups: reports, comparison, power: powerOf(values, options), notes };
}

/**
 * Groups every run of `specs` by config (`options.by` keys, else configSha256) and ranks the
 * groups. Runs of different experiments or data are refused unless --force, and so is a --by
 * group whose runs differ in another config key.
 */
export function diffByConfig(
  specs: ReadonlyArray<{ spec: string; runs: readonly LoadedResult[] }>,
  options: DiffOptions = {},
): DiffReport {
  const metric = options.metric ?? "final.val";
  const force = options.force ?? false;
  const spec = specs.map((s) => s.spec).join(" ");
  const runs = specs.flatMap((s) => s.runs);
  if (runs.length === 0) throw new UsageError(`no results in ${spec}`);
  const notes: string[] = [];
  checkGroup("A", runs, force, notes, false);
  const by = options.by ?? [];
  const groups = groupByConfig(runs, by);
  for (const m of mixedWithin(groups)) {
    const message = `group ${m.label} pools runs whose ${m.keys.join(", ")} differ`;
    if (!force) {
      throw new UsageError(`${message}; add those keys to --by, or pass --force to pool them`);
    }
    notes.push(`--force: ${message}`);
  }
  const reports = groups.map((g) => groupReport(g.label, spec, g.runs, options, notes));
  const better = options.better ?? "lower";
  const alpha = options.alpha ?? DEFAULT_ALPHA;
  const power = options.power ?? DEFAULT_POWER;
  const ranked = rankGroups(
    reports.map((r, i) => ({
      label: r.label,
      values: groups[i].values,
      metric: includedValues(r.runs),
    })),
    { better, alpha, power },
  );
  const keys = by.length > 0 ? [...by] : [...new Set(groups.flatMap((g) => Object.keys(g.values)))];
  // Best first, like the ranking.
  const byRank = ranked.map((r) => reports.find((g) => g.label === r.label)!);
  // Two groups: the seeds that detect their difference; one: the difference its n detects.
  const ordered = byRank.map((g) => includedValues(g.runs));
  return {
    metric,
    groups: byRank,
    comparison: null,
    ranking: { by: keys, better, alpha, power, groups: ranked },
    power: powerOf(ordered.length <= 2 ? ordered : [], options),
    notes,
  };
}

/**
 * The report for `diff SPEC...`: one group per spec, except that --by, or a single spec
 * holding several configs (without --force), groups by config and ranks.
 */
export function buildDiff(
  specs: ReadonlyArray<{ spec: string; runs: readonly LoadedResult[] }>,
  options: DiffOptions = {},
): DiffReport {
  const mixed = specs.length === 1 &&
    new Set(specs[0].runs.map((r) => r.result.configSha256)).size > 1;
  if ((options.by?.length ?? 0) > 0 || (mixed && !options.force)) {
    return diffByConfig(specs, options);
  }
  return diffGroups(specs, options);
}

function unitInterval(name: string, text: string): number {
  const x = Number(text);
  if (!/^\s*[0-9.eE+-]+\s*$/.test(text) || !(x > 0 && x < 1)) {
    throw new UsageError(`--${name} must be a number between 0 and 1, not '${text}'`);
  }
  return x;
}

function parseDiffArgs(args: string[]) {
  const { values, positionals } = parseCommandArgs(args, {
    metric: { type: "string", default: "final.val" },
    curve: { type: "boolean", default: false },
    format: { type: "string", default: "text" },
    force: { type: "boolean", default: false },
    by: { type: "string", multiple: true },
    better: { type: "string", default: "lower" },
    alpha: { type: "string", default: String(DEFAULT_ALPHA) },
    power: { type: "string", default: String(DEFAULT_POWER) },
  }, USAGE);
  const format = values.format;
  if (format !== "text" && format !== "md" && format !== "json") {
    throw new UsageError(`--format must be text, md or json, not '${format}'`);
  }
  const by = (values.by ?? []).flatMap((b) => b.split(",")).map((b) => b.trim());
  if (by.some((k) => k === "" || k.split(".").some((part) => part === ""))) {
    throw new UsageError(`--by takes dotted config keys such as train.lr, not '${values.by}'`);
  }
  if (positionals.length < 1 || (positionals.length > 2 && by.length === 0)) {
    throw new UsageError(`give one or two groups of results (or several with --by)\n${USAGE}`);
  }
  if (values.metric.trim() === "" || values.metric.split(".").some((k) => k === "")) {
    throw new UsageError(
      `--metric must be a dotted path such as final.val, not '${values.metric}'`,
    );
  }
  if (values.better !== "lower" && values.better !== "higher") {
    throw new UsageError(`--better must be lower or higher, not '${values.better}'`);
  }
  const alpha = unitInterval("alpha", values.alpha);
  const power = unitInterval("power", values.power);
  if (power <= alpha) {
    throw new UsageError(`--power (${power}) must exceed --alpha (${alpha})`);
  }
  return {
    specs: positionals,
    metric: values.metric,
    curve: values.curve,
    force: values.force,
    by,
    better: values.better as Better,
    alpha,
    power,
    format: format as DiffFormat,
  };
}

/** `deno task diff`: prints the comparison and returns the exit code (usage errors throw). */
export async function runDiff(args: string[]): Promise<number> {
  const opts = parseDiffArgs(args);
  const groups = [];
  for (const spec of opts.specs) groups.push({ spec, runs: await loadResults([userPath(spec)]) });
  const report = buildDiff(groups, opts);
  console.log(formatDiff(report, opts.format));
  return ExitCode.ok;
}
