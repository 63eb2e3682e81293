/** Fixtures shared by tests that build synthetic results. */
import { type CurvePoint, RunResult, type RunStatus } from "../harness/result_schema.ts";
import type { LoadedResult } from "../harness/results_io.ts";

/** The `env` of a synthetic result: a plausible llvmpipe machine, no git checkout. */
export const SYNTHETIC_ENV = {
  deno: "2.9.6",
  v8: "15",
  typescript: "6",
  os: "linux",
  arch: "x86_64",
  adapter: {
    vendor: "mesa",
    architecture: "",
    device: "",
    description: "llvmpipe",
    backend: "vulkan",
    isFallbackAdapter: false,
  },
  git: { commit: null, dirty: null },
} as const;

export const STEPS = [0, 100, 200, 300, 400];

/** A decaying loss curve, shifted per seed so the min–max band has width. */
export function curveFor(seed: number, floor: number): CurvePoint[] {
  return STEPS.map((step) => {
    const train = floor + 1.8 * Math.exp(-step / 120) + 0.05 * (seed - 1);
    return { step, train, val: train + 0.04, elapsedMs: step * 5 };
  });
}

/** `{"train.lr": 1}` → `{train: {lr: 1}}`. */
export function nest(flat: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flat)) {
    const parts = key.split(".");
    let at = out;
    for (const p of parts.slice(0, -1)) at = (at[p] ??= {}) as Record<string, unknown>;
    at[parts.at(-1)!] = value;
  }
  return out;
}

export function fakeResult(opts: {
  seed: number;
  configSha256: string;
  overrides?: Record<string, unknown>;
  floor?: number;
  status?: RunStatus;
  experiment?: string;
  curve?: CurvePoint[];
  /** The stored config; default: the overrides, nested (as `--set` would store them). */
  config?: Record<string, unknown>;
}): RunResult {
  const curve = opts.curve ?? curveFor(opts.seed, opts.floor ?? 2.4);
  const last = curve.at(-1);
  return RunResult.parse({
    schemaVersion: 1,
    experiment: opts.experiment ?? "bigram",
    runId: `${opts.configSha256.slice(0, 8)}-s${opts.seed}`,
    status: opts.status ?? "ok",
    seed: opts.seed,
    config: opts.config ?? nest(opts.overrides ?? {}),
    configSha256: opts.configSha256,
    overrides: opts.overrides ?? {},
    data: null,
    env: SYNTHETIC_ENV,
    startedAt: "2025-01-01T00:00:00.000Z",
    finishedAt: "2025-01-01T00:00:02.000Z",
    steps: 400,
    curve,
    final: { train: last?.train ?? 2.4, val: last?.val ?? 2.44 },
    throughput: { stepsPerSec: 200 + opts.seed, tokensPerSec: 6400 },
    wallMs: 2000,
    sample: "",
    paramsSha256: "",
  });
}

export const SHA_A = "a".repeat(64);
export const SHA_B = "b".repeat(64);

/** Two groups of three seeds (defaults and a lower-loss lr), plus one diverged run. */
export function sampleResults(withCurves = true): LoadedResult[] {
  const out: LoadedResult[] = [];
  for (const seed of [0, 1, 2]) {
    const a = fakeResult({ seed, configSha256: SHA_A, ...(withCurves ? {} : { curve: [] }) });
    const b = fakeResult({
      seed,
      configSha256: SHA_B,
      overrides: { "train.lr": 0.003, "model.note": "<b>&" },
      floor: 2.0,
      ...(withCurves ? {} : { curve: [] }),
    });
    out.push({ path: `a/${a.runId}.json`, result: a }, { path: `b/${b.runId}.json`, result: b });
  }
  const bad = fakeResult({ seed: 7, configSha256: SHA_A, status: "diverged" });
  out.push({ path: `a/${bad.runId}.json`, result: bad });
  return out;
}

/** Three groups of three seeds sweeping one key; lower loss for larger values. */
export function sweepResults(key: string, values: unknown[]): LoadedResult[] {
  return values.flatMap((value, i) =>
    [0, 1, 2].map((seed) => {
      const r = fakeResult({
        seed,
        configSha256: String(i + 1).repeat(64),
        overrides: { [key]: value },
        floor: 2.6 - 0.2 * i,
      });
      return { path: `${i}/${r.runId}.json`, result: r };
    })
  );
}
