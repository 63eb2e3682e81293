/**
 * `deno task check`: the CI regression guard. Each baseline file names an experiment, its
 * overrides, seeds and metric, with the expected mean and std. Missing runs are trained (runs
 * already on disk with the same config, seed and code are reused), and the mean is compared:
 * worse by more than max(sigmas·σ/√n, absolute) is a regression (exit 1).
 */
import { basename, join } from "node:path";
import { z } from "zod";
import { experiments } from "../experiments/mod.ts";
import type { Experiment } from "../experiments/types.ts";
import { writeFileAtomic } from "./atomic.ts";
import { parseCommandArgs } from "./cli.ts";
import { resolveConfig } from "./config.ts";
import { codeSha256 } from "./env.ts";
import { ExitCode, UsageError } from "./errors.ts";
import { runExperiment } from "./exp.ts";
import { userPath } from "./paths.ts";
import type { RunResult } from "./result_schema.ts";
import { readResult, resultPath, runId } from "./results_io.ts";
import { summarize } from "./stats.ts";

/** A committed baseline (results/baselines/*.json). */
export const Baseline = z.object({
  experiment: z.string(),
  description: z.string().optional(),
  overrides: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  seeds: z.array(z.number().int().nonnegative()).min(1),
  metric: z.string().default("final.val"),
  /** Whether a lower metric is better (losses) or a higher one. */
  better: z.enum(["lower", "higher"]).default("lower"),
  expected: z.object({ mean: z.number(), std: z.number().nonnegative() }),
  tolerance: z.object({
    sigmas: z.number().positive().default(3),
    absolute: z.number().nonnegative(),
  }),
});
/** A committed baseline. */
export type Baseline = z.infer<typeof Baseline>;

/** The outcome of comparing fresh runs with one baseline. */
export interface CheckRow {
  name: string;
  baseline: Baseline;
  values: number[];
  mean: number;
  std: number;
  delta: number;
  threshold: number;
  verdict: "pass" | "better" | "regression";
}

/** Compares fresh metric values with a baseline. */
export function judge(name: string, baseline: Baseline, values: number[]): CheckRow {
  const s = summarize(values);
  const n = values.length;
  const threshold = Math.max(
    baseline.tolerance.sigmas * baseline.expected.std / Math.sqrt(n),
    baseline.tolerance.absolute,
  );
  const delta = s.mean - baseline.expected.mean;
  const worse = baseline.better === "lower" ? delta : -delta;
  const verdict = worse > threshold ? "regression" : worse < -threshold ? "better" : "pass";
  return { name, baseline, values, mean: s.mean, std: s.std, delta, threshold, verdict };
}

/** Reads a dotted numeric path such as `final.val` out of a result. */
export function metricOf(result: RunResult, path: string): number {
  let value: unknown = result;
  for (const part of path.split(".")) {
    value = value !== null && typeof value === "object"
      ? (value as Record<string, unknown>)[part]
      : undefined;
  }
  if (typeof value !== "number") {
    throw new UsageError(`${result.runId}: metric ${path} is not a number (${value})`);
  }
  return value;
}

/** Numeric fields every result has, whatever its experiment. */
const COMMON_METRICS = [
  "steps",
  "wallMs",
  "seed",
  "throughput.stepsPerSec",
  "throughput.tokensPerSec",
];
/** Numeric fields of language-model results. */
const LM_METRICS = [
  "final.train",
  "final.val",
  "data.characters",
  "data.vocabSize",
  "data.trainTokens",
  "data.valTokens",
];

/**
 * Why `metric` can never be a number in a result of `experiment`, or null when it can. A check
 * experiment's `final` keys are its own, so any `final.<key>` is accepted for it.
 */
export function metricPathProblem(experiment: Experiment, metric: string): string | null {
  const known = experiment.kind === "language-model"
    ? [...LM_METRICS, ...COMMON_METRICS]
    : ["final.<key>", ...COMMON_METRICS];
  if (known.includes(metric)) return null;
  if (experiment.kind === "check" && /^final\.[^.]+$/.test(metric)) return null;
  return `metric '${metric}' is not a numeric field of a ${experiment.name} result; ` +
    `use one of ${known.join(", ")}`;
}

async function loadBaselines(
  dir: string,
): Promise<{ name: string; path: string; baseline: Baseline }[]> {
  const entries: { name: string; path: string; baseline: Baseline }[] = [];
  let names: string[];
  try {
    names = [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith(".json"))
      .map((e) => e.name).sort();
  } catch {
    throw new UsageError(`no baselines directory at ${dir}`);
  }
  if (names.length === 0) throw new UsageError(`no baseline files (*.json) in ${dir}`);
  for (const file of names) {
    const path = join(dir, file);
    let json: unknown;
    try {
      json = JSON.parse(await Deno.readTextFile(path));
    } catch (e) {
      throw new UsageError(`${path}: not valid JSON (${(e as Error).message})`);
    }
    const parsed = Baseline.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues.slice(0, 3).map((i) =>
        `${i.path.join(".")}: ${i.message}`
      );
      throw new UsageError(`${path}: not a baseline (${issues.join("; ")})`);
    }
    const experiment = experiments.get(parsed.data.experiment);
    if (!experiment) {
      throw new UsageError(`${path}: unknown experiment '${parsed.data.experiment}'`);
    }
    const problem = metricPathProblem(experiment, parsed.data.metric);
    if (problem) throw new UsageError(`${path}: ${problem}`);
    // Resolved now so a bad override fails before any baseline trains.
    try {
      await resolveConfig(experiment.schema as never, { sets: setsOf(parsed.data) });
    } catch (e) {
      if (e instanceof UsageError) throw new UsageError(`${path}: overrides: ${e.message}`);
      throw e;
    }
    entries.push({ name: basename(file, ".json"), path, baseline: parsed.data });
  }
  return entries;
}

function setsOf(baseline: Baseline): string[] {
  return Object.entries(baseline.overrides).map(([k, v]) => `${k}=${v}`);
}

/** Reads a result, or undefined when there is none (or it is unreadable). */
async function tryRead(path: string): Promise<RunResult | undefined> {
  try {
    return await readResult(path);
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Where a baseline's values came from. */
interface FreshValues {
  values: number[];
  reused: number;
  trained: number;
}

/**
 * Finds or trains the runs a baseline needs; returns their metric values in seed order.
 * A stored run is reused only when its config, seed and code (env.codeSha256) are today's and
 * it ended ok. Runs missing from `resultsDir` are trained into it; when a stale result is in
 * the way (other code), the fresh runs go to a scratch directory, so nothing is overwritten.
 */
async function freshValues(
  baseline: Baseline,
  resultsDir: string,
  quiet: boolean,
  code: string | null,
): Promise<FreshValues> {
  const experiment = experiments.get(baseline.experiment)!;
  const { sha256 } = await resolveConfig(experiment.schema as never, { sets: setsOf(baseline) });
  const pathIn = (dir: string, seed: number) =>
    resultPath(dir, baseline.experiment, runId(sha256, seed));
  const usable = (r: RunResult | undefined, seed: number): r is RunResult =>
    r !== undefined && r.configSha256 === sha256 && r.seed === seed && r.status === "ok";

  const found = new Map<number, RunResult>();
  const missing: number[] = [];
  let stale = false;
  for (const seed of baseline.seeds) {
    const r = await tryRead(pathIn(resultsDir, seed));
    if (usable(r, seed) && code !== null && r.env.codeSha256 === code) found.set(seed, r);
    else {
      missing.push(seed);
      if (await exists(pathIn(resultsDir, seed))) stale = true;
    }
  }
  const reused = found.size;
  if (missing.length > 0) {
    const outDir = stale ? await Deno.makeTempDir({ prefix: "seedlab-check-" }) : resultsDir;
    if (stale) {
      console.log(
        `${baseline.experiment}: results in ${resultsDir} for these seeds come from other code ` +
          "or did not end ok; training afresh in a scratch directory (stored results kept)",
      );
    }
    try {
      const { exit, results } = await runExperiment({
        name: baseline.experiment,
        seeds: missing,
        sets: setsOf(baseline),
        out: outDir,
        quiet,
        profile: false,
        graph: false,
      });
      if (exit !== ExitCode.ok) {
        throw new CheckFailure(
          `training the runs for the ${baseline.experiment} baseline failed (exit ${exit})`,
        );
      }
      for (const seed of missing) {
        const r = results.find((result) => result.seed === seed);
        if (!usable(r, seed)) {
          throw new CheckFailure(`the run for seed ${seed} is missing from ${outDir}`);
        }
        found.set(seed, r);
      }
    } finally {
      if (stale) await Deno.remove(outDir, { recursive: true });
    }
  }
  return {
    values: baseline.seeds.map((seed) => metricOf(found.get(seed)!, baseline.metric)),
    reused,
    trained: missing.length,
  };
}

/** A baseline whose runs could not be produced: exit 1, like a regression. */
class CheckFailure extends Error {}

function table(rows: CheckRow[]): string {
  const header = ["baseline", "metric", "n", "expected", "now", "delta", "allowed", "verdict"];
  const lines = rows.map((r) => [
    r.name,
    r.baseline.metric,
    String(r.values.length),
    `${r.baseline.expected.mean.toFixed(4)} ± ${r.baseline.expected.std.toFixed(4)}`,
    `${r.mean.toFixed(4)} ± ${r.std.toFixed(4)}`,
    (r.delta >= 0 ? "+" : "") + r.delta.toFixed(4),
    `±${r.threshold.toFixed(4)}`,
    r.verdict === "regression" ? "REGRESSION" : r.verdict,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [fmt(header), ...lines.map(fmt)].join("\n");
}

const USAGE =
  "usage: deno task check [--baselines DIR] [--results DIR] [--update [--accept-regression]] " +
  "[--quiet] [--help]";

/** Runs the `check` command; returns the exit code (0 pass, 1 regression, 2 usage). */
export async function runCheck(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, {
    baselines: { type: "string", default: "results/baselines" },
    results: { type: "string", default: "results" },
    update: { type: "boolean", default: false },
    "accept-regression": { type: "boolean", default: false },
    quiet: { type: "boolean", default: false },
  }, USAGE);
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument '${positionals[0]}'\n${USAGE}`);
  }
  if (values["accept-regression"] && !values.update) {
    throw new UsageError(`--accept-regression only applies with --update\n${USAGE}`);
  }
  const baselinesDir = userPath(values.baselines);
  const resultsDir = userPath(values.results);
  const baselines = await loadBaselines(baselinesDir);
  const code = await codeSha256();
  const rows: CheckRow[] = [];
  let reused = 0, trained = 0;
  for (const { name, baseline } of baselines) {
    let fresh: FreshValues;
    try {
      fresh = await freshValues(baseline, resultsDir, values.quiet, code);
    } catch (e) {
      if (!(e instanceof CheckFailure)) throw e;
      console.error(`error: ${name}: ${e.message}`);
      return ExitCode.failure;
    }
    console.log(
      `${name}: ${fresh.reused} run(s) reused from ${resultsDir}, ${fresh.trained} trained`,
    );
    reused += fresh.reused;
    trained += fresh.trained;
    rows.push(judge(name, baseline, fresh.values));
  }
  console.log(table(rows));
  const regressions = rows.filter((r) => r.verdict === "regression");
  const regressed = regressions.map((r) => r.name).join(", ");
  if (values.update) {
    if (regressions.length > 0 && !values["accept-regression"]) {
      console.error(
        `refusing to update: ${regressed} regressed; the baselines are unchanged. Pass ` +
          "--accept-regression with --update to record worse figures on purpose",
      );
      return ExitCode.failure;
    }
    for (const row of rows) {
      const { path } = baselines.find((b) => b.name === row.name)!;
      const updated = { ...row.baseline, expected: { mean: row.mean, std: row.std } };
      await writeFileAtomic(path, JSON.stringify(updated, null, 2) + "\n");
    }
    const source = trained === 0
      ? `${reused} reused run(s)`
      : reused === 0
      ? `${trained} freshly trained run(s)`
      : `${reused} reused and ${trained} freshly trained run(s)`;
    console.log(
      `updated ${rows.length} baseline(s) in ${baselinesDir} from ${source}` +
        (regressions.length > 0 ? ` (regression accepted: ${regressed})` : ""),
    );
    return ExitCode.ok;
  }
  const better = rows.filter((r) => r.verdict === "better");
  if (better.length > 0) {
    console.log(
      `${better.map((r) => r.name).join(", ")}: clearly better than the baseline; ` +
        "run `deno task check --update` to record the new figures",
    );
  }
  if (regressions.length > 0) {
    console.log(`regression: ${regressed}`);
    return ExitCode.failure;
  }
  console.log(`check passed: ${rows.length} baseline(s)`);
  return ExitCode.ok;
}
