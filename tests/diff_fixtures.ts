/** Synthetic results for the diff tests: schema-valid, with chosen seeds, losses and configs. */
import { join } from "node:path";
import { type CurvePoint, RunResult, type RunStatus } from "../harness/result_schema.ts";
import { SYNTHETIC_ENV } from "./fixtures.ts";

export const SHA_A = "a".repeat(64);
export const SHA_B = "b".repeat(64);
export const DATA_1 = "1".repeat(64);
export const DATA_2 = "2".repeat(64);

export interface Fake {
  seed: number;
  val: number;
  train?: number;
  experiment?: string;
  status?: RunStatus;
  configSha256?: string;
  data?: string;
  curve?: CurvePoint[];
  stepsPerSec?: number;
  /** The stored config (default: train.steps 200, train.lr 0.01). */
  config?: Record<string, unknown>;
}

/** A complete, schema-valid result with the given seed and final losses. */
export function fakeResult(f: Fake): RunResult {
  const experiment = f.experiment ?? "bigram";
  const configSha256 = f.configSha256 ?? SHA_A;
  return RunResult.parse({
    schemaVersion: 1,
    experiment,
    runId: `${configSha256.slice(0, 8)}-s${f.seed}`,
    status: f.status ?? "ok",
    ...(f.status && f.status !== "ok" ? { reason: "synthetic" } : {}),
    seed: f.seed,
    config: f.config ?? { train: { steps: 200, lr: 0.01 } },
    configSha256,
    overrides: {},
    data: {
      name: "mobydick",
      source: "embedded",
      sha256: f.data ?? DATA_1,
      characters: 1000,
      vocabSize: 65,
      trainTokens: 900,
      valTokens: 100,
    },
    env: SYNTHETIC_ENV,
    startedAt: "2025-01-01T00:00:00.000Z",
    finishedAt: "2025-01-01T00:00:10.000Z",
    steps: 200,
    curve: f.curve ?? [
      { step: 0, train: 4.2, val: 4.2, elapsedMs: 0 },
      { step: 200, train: f.train ?? f.val - 0.02, val: f.val, elapsedMs: 10000 },
    ],
    final: { train: f.train ?? f.val - 0.02, val: f.val },
    throughput: { stepsPerSec: f.stepsPerSec ?? 20, tokensPerSec: 20 * 32 * 8 },
    wallMs: 10000,
    sample: "call me",
    paramsSha256: "c".repeat(64),
  });
}

/** Writes results as `<dir>/<name>/<runId>.json`; returns the group directory. */
export async function writeGroup(
  root: string,
  name: string,
  results: RunResult[],
): Promise<string> {
  const dir = join(root, name);
  await Deno.mkdir(dir, { recursive: true });
  for (const r of results) {
    await Deno.writeTextFile(join(dir, `${r.runId}.json`), JSON.stringify(r, null, 2));
  }
  return dir;
}

export async function captureStdout(
  fn: () => Promise<number>,
): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  try {
    const code = await fn();
    return { code, out: lines.join("\n") };
  } finally {
    console.log = original;
  }
}

export async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "seedlab-diff-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
