/**
 * `exp --verify RESULT.json`: the stored result must be self-consistent before it is re-run
 * (its config hashes to its configSha256, its run id follows from them), and the re-run must
 * match it in everything that is deterministic: status, steps, curve, final, sample, data and
 * parameters.
 */
import { createHash } from "node:crypto";
import type { z } from "zod";
import { canonicalJson, listConfigKeys } from "./config.ts";
import { ExitCode, UsageError } from "./errors.ts";
import type { RunResult } from "./result_schema.ts";
import { readResult, runId } from "./results_io.ts";
import { firstCurveDifference } from "./run_output.ts";
import { type InitWeights, loadInitFrom } from "./state_dict.ts";

function valueAt(config: Record<string, unknown>, key: string): unknown {
  let value: unknown = config;
  for (const part of key.split(".")) {
    value = value !== null && typeof value === "object"
      ? (value as Record<string, unknown>)[part]
      : undefined;
  }
  return value;
}

/**
 * Refuses (UsageError, exit 2) a result whose fields disagree with each other: a config that
 * does not hash to its configSha256, a run id that does not follow from config, seed and init
 * weights, overrides that are not in its config. Such a file was edited after it was written.
 */
export function checkResultConsistency(path: string, stored: RunResult): void {
  const problems: string[] = [];
  const sha = createHash("sha256").update(canonicalJson(stored.config)).digest("hex");
  if (sha !== stored.configSha256) {
    problems.push(
      `its config hashes to ${sha.slice(0, 12)}…, not to its configSha256 ` +
        `${stored.configSha256.slice(0, 12)}…`,
    );
  }
  const expectedId = runId(
    stored.configSha256,
    stored.seed,
    stored.initFrom?.paramsSha256,
    stored.forcedGraph === true,
  );
  if (stored.runId !== expectedId) {
    problems.push(`its runId ${stored.runId} should be ${expectedId}`);
  }
  for (const [key, value] of Object.entries(stored.overrides)) {
    if (canonicalJson(valueAt(stored.config, key)) !== canonicalJson(value)) {
      problems.push(`override ${key}=${JSON.stringify(value)} is not what its config holds`);
    }
  }
  if (problems.length > 0) {
    throw new UsageError(
      `${path} is not consistent (was it edited?): ${problems.join("; ")}; refusing to verify it`,
    );
  }
}

/**
 * What verifying a result that did not end ok means, said before anything runs. An interrupted
 * run stopped at a moment no re-run can reproduce: a UsageError. A diverged or failed one is
 * re-run to check that it ends the same way.
 */
export function describeVerification(path: string, stored: RunResult): string | null {
  if (stored.status === "interrupted") {
    throw new UsageError(
      `${path} is an interrupted run (stopped at step ${stored.steps}): an interruption cannot ` +
        "be re-run bit for bit. Finish it with --resume on its checkpoint, then verify the result",
    );
  }
  if (stored.status === "ok") return null;
  return `verify: ${path} ended ${stored.status} at step ${stored.steps}` +
    (stored.reason ? ` (${stored.reason})` : "") + `; checking that the re-run ends the same way`;
}

const shown = (x: unknown) => x === undefined ? "(none)" : JSON.stringify(x);

/** Compares a re-run with the stored result bit for bit; returns the exit code. */
export function reportVerification(stored: RunResult, fresh: RunResult): number {
  const fail = (message: string) => {
    console.error(`verify: ${message}`);
    return ExitCode.failure;
  };
  if (stored.status !== fresh.status) {
    return fail(`status differs: stored ${stored.status}, re-run ${fresh.status}`);
  }
  if (stored.data?.sha256 !== fresh.data?.sha256) {
    return fail(
      `data sha256 differs: stored ${stored.data?.sha256}, re-run ${fresh.data?.sha256}`,
    );
  }
  const differs = firstCurveDifference(stored, fresh);
  if (differs) {
    const { a, b } = differs;
    const point = (p: typeof a) =>
      p ? `train ${shown(p.train)} val ${shown(p.val)}` : "has no point there";
    return fail(
      `the curve differs first at step ${differs.step}: stored ${point(a)}, re-run ${point(b)}`,
    );
  }
  if (stored.steps !== fresh.steps) {
    return fail(`steps differ: stored ${stored.steps}, re-run ${fresh.steps}`);
  }
  for (const key of new Set([...Object.keys(stored.final), ...Object.keys(fresh.final)])) {
    if (stored.final[key] !== fresh.final[key]) {
      return fail(
        `final.${key} differs: ${shown(stored.final[key])} vs ${shown(fresh.final[key])}`,
      );
    }
  }
  if (stored.sample !== fresh.sample) {
    return fail(
      `the sample differs: stored ${JSON.stringify(stored.sample.slice(0, 40))}…, re-run ` +
        `${JSON.stringify(fresh.sample.slice(0, 40))}…`,
    );
  }
  if (stored.paramsSha256 !== fresh.paramsSha256) {
    return fail(
      `params sha256 differs: stored ${stored.paramsSha256}, re-run ${fresh.paramsSha256}`,
    );
  }
  console.log(
    `verified: ${stored.runId} reproduces bit for bit (status, curve, final, sample, ` +
      "params sha256)",
  );
  return ExitCode.ok;
}

/** Every settable key of the experiment's schema with its value in a stored config. */
export function everyKey(
  schema: z.ZodType,
  config: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key } of listConfigKeys(schema as never)) {
    let value: unknown = config;
    for (const part of key.split(".")) {
      value = value !== null && typeof value === "object"
        ? (value as Record<string, unknown>)[part]
        : undefined;
    }
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** The init weights (checkpoint or state dict) a stored result names, checked to hold the same weights. */
async function initForVerify(
  path: string,
  stored: RunResult,
): Promise<InitWeights | undefined> {
  if (!stored.initFrom) return undefined;
  const where = stored.initFrom.path;
  let init;
  try {
    init = await loadInitFrom(where);
  } catch (e) {
    throw new UsageError(
      `${path} started from ${where} (--init-from), which cannot be loaded: ` +
        `${(e as Error).message}`,
    );
  }
  if (init.record.paramsSha256 !== stored.initFrom.paramsSha256) {
    throw new UsageError(
      `${path} started from ${where} (--init-from), which has changed since: its parameters ` +
        `hash to ${init.record.paramsSha256.slice(0, 12)}…, the result recorded ` +
        `${stored.initFrom.paramsSha256.slice(0, 12)}…`,
    );
  }
  return init.weights;
}

/**
 * Reads the result to verify and refuses, before anything runs, one of another experiment, an
 * edited one, an interrupted one, or one whose --init-from weights are gone or changed.
 */
export async function prepareVerification(
  path: string,
  experiment: string,
): Promise<{ stored: RunResult; init?: InitWeights }> {
  const stored = await readResult(path);
  if (stored.experiment !== experiment) {
    throw new UsageError(`${path} is a result of '${stored.experiment}', not '${experiment}'`);
  }
  checkResultConsistency(path, stored);
  const note = describeVerification(path, stored);
  if (note) console.log(note);
  return { stored, init: await initForVerify(path, stored) };
}
