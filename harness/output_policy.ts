/**
 * Where a run may write, decided before it trains. One rule covers the result and the
 * checkpoint beside it: a run writes both where it may write its result, or neither.
 *
 * - No result at the target, or one that did not end `ok`: the run writes there; the first
 *   file it writes removes the stale other one, so a pair on disk always comes from one run.
 * - An `ok` result of this very run (experiment, config, seed, data, init weights): the run
 *   only checks that it reproduces it and writes nothing.
 * - An `ok` result of anything else under that run id: refused before training.
 *
 * The output directory is created and probed for writability first, so a long run is never
 * lost for want of a place to put it.
 */
import { dirname, join, resolve } from "node:path";
import { UsageError } from "./errors.ts";
import type { RunResult } from "./result_schema.ts";
import { readResult, resultPath, runId } from "./results_io.ts";

/** What a run is, as far as the files it may replace are concerned. */
export interface RunIdentity {
  experiment: string;
  runId: string;
  configSha256: string;
  seed: number;
  /** sha256 of the corpus; undefined for experiments without data. */
  dataSha256?: string;
  /** sha256 of the `--init-from` parameters, if any. */
  initParamsSha256?: string;
  /** `--graph` forced the autograd graph (part of the run id). */
  forcedGraph?: boolean;
}

/** The decision for one run. */
export type OutputPlan =
  | {
    mode: "write";
    resultPath: string;
    checkpointPath: string;
    /** The non-ok result this run replaces, if any. */
    replaces?: RunResult;
  }
  | { mode: "reproduce"; resultPath: string; existing: RunResult }
  | { mode: "refuse"; resultPath: string; reason: string };

/** The checkpoint beside a result. */
export function checkpointPathOf(resultFile: string): string {
  return resultFile.replace(/\.json$/, ".safetensors");
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Proves that files can be created in `dir`, creating nothing: its nearest existing ancestor
 * must be a directory that takes a probe file (removed at once). Problems are UsageErrors
 * starting with `label`.
 */
async function probeWritableDir(dir: string, label: string): Promise<void> {
  let at = resolve(dir);
  for (;;) {
    try {
      const info = await Deno.stat(at);
      if (!info.isDirectory) throw new UsageError(`${label}: ${at} is a file, not a directory`);
      break;
    } catch (e) {
      if (e instanceof UsageError) throw e;
      const missing = e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory;
      if (!missing || dirname(at) === at) throw new UsageError(`${label}: ${errorText(e)}`);
      at = dirname(at);
    }
  }
  const probe = join(at, `.seedlab-probe-${Deno.pid}`);
  try {
    await Deno.writeTextFile(probe, "", { createNew: true });
  } catch (e) {
    throw new UsageError(
      `${label}: cannot write into ${at} (${errorText(e)}); give a writable location`,
    );
  }
  await Deno.remove(probe).catch(() => {});
}

/** Proves that `<outDir>/<experiment>` can be written (a UsageError naming --out otherwise). */
export async function ensureOutputDir(outDir: string, experiment: string): Promise<void> {
  await probeWritableDir(join(outDir, experiment), `--out ${outDir}`);
}

/** Proves that the file `path` (e.g. `report --out`) can be written: not a directory, writable. */
export async function checkOutputFile(path: string, option: string): Promise<void> {
  try {
    if ((await Deno.stat(path)).isDirectory) {
      throw new UsageError(`${option} ${path} is a directory; give a file name`);
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
  }
  await probeWritableDir(dirname(resolve(path)), `${option} ${path}`);
}

/** How an existing ok result differs from the run about to start; null when it is this run. */
function identityDifference(existing: RunResult, id: RunIdentity): string | null {
  if (existing.experiment !== id.experiment) return `experiment '${existing.experiment}'`;
  if (existing.configSha256 !== id.configSha256) return "another config";
  if (existing.seed !== id.seed) return `seed ${existing.seed}`;
  const data = existing.data?.sha256;
  if (data !== id.dataSha256) {
    return `other data (sha256 ${data?.slice(0, 12) ?? "none"}… vs ` +
      `${id.dataSha256?.slice(0, 12) ?? "none"}…)`;
  }
  const init = existing.initFrom?.paramsSha256;
  if (init !== id.initParamsSha256) return "other initial weights (--init-from)";
  return null;
}

/** Decides, before training, what this run may write (see the module comment). */
export async function planOutput(outDir: string, id: RunIdentity): Promise<OutputPlan> {
  const path = resultPath(outDir, id.experiment, id.runId);
  let existing: RunResult | undefined;
  try {
    await Deno.lstat(path);
    try {
      existing = await readResult(path);
    } catch (e) {
      throw new UsageError(
        `${errorText(e)}; it is in the way of run ${id.runId}: move it away or pass --out DIR`,
      );
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (!existing || existing.status !== "ok") {
    return {
      mode: "write",
      resultPath: path,
      checkpointPath: checkpointPathOf(path),
      replaces: existing,
    };
  }
  const difference = identityDifference(existing, id);
  if (difference !== null) {
    return {
      mode: "refuse",
      resultPath: path,
      reason: `refusing to run seed ${id.seed}: ${path} holds an ok run of ${difference} under ` +
        `the same run id; nothing was trained or written. Move it away or pass --out DIR.`,
    };
  }
  return { mode: "reproduce", resultPath: path, existing };
}

/**
 * Checks `--out` and plans every seed's run before the first trains; refusals go to stderr now
 * (before any compute), and so does a note for each run that will only check reproduction.
 */
export async function planRuns(
  outDir: string,
  runs: Omit<RunIdentity, "runId" | "seed"> & { seeds: readonly number[] },
  quiet: boolean,
): Promise<Map<number, OutputPlan>> {
  await ensureOutputDir(outDir, runs.experiment);
  const plans = new Map<number, OutputPlan>();
  for (const seed of runs.seeds) {
    const { seeds: _, ...identity } = runs;
    const plan = await planOutput(outDir, {
      ...identity,
      seed,
      runId: runId(runs.configSha256, seed, runs.initParamsSha256, runs.forcedGraph),
    });
    if (plan.mode === "refuse") console.error(plan.reason);
    else if (plan.mode === "reproduce" && !quiet) {
      console.log(
        `${plan.resultPath} holds this run (ok): re-running to check that it reproduces; ` +
          "nothing will be written (pass --out DIR to keep a separate copy)",
      );
    }
    plans.set(seed, plan);
  }
  return plans;
}
