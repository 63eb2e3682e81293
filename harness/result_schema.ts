/** The results file format (`results/<experiment>/<run-id>.json`), validated before every write. */
import { z } from "zod";

/** Bumped whenever a field changes meaning or disappears. */
export const SCHEMA_VERSION = 1;

/** How a run ended. */
export const RunStatus = z.enum(["ok", "interrupted", "diverged", "failed"]);
/** How a run ended. */
export type RunStatus = z.infer<typeof RunStatus>;

// NaN and Infinity become null in JSON; a diverged run keeps its curve with nulls.
const loss = z.number().nullable();

/** One point of the loss curve: estimated losses at an eval step. */
export const CurvePoint = z.object({
  step: z.number().int().nonnegative(),
  train: loss,
  val: loss.optional(),
  elapsedMs: z.number().nonnegative(),
});
/** One point of the loss curve. */
export type CurvePoint = z.infer<typeof CurvePoint>;

/** Where the text came from and how it was split. */
export const DataInfo = z.object({
  name: z.string(),
  source: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  characters: z.number().int().nonnegative(),
  vocabSize: z.number().int().positive(),
  trainTokens: z.number().int().nonnegative(),
  valTokens: z.number().int().nonnegative(),
});
/** Where the text came from and how it was split. */
export type DataInfo = z.infer<typeof DataInfo>;

/** The WebGPU adapter a run used. */
export const AdapterInfo = z.object({
  vendor: z.string(),
  architecture: z.string(),
  device: z.string(),
  description: z.string(),
  backend: z.string(),
  isFallbackAdapter: z.boolean(),
});

/** The software and hardware a run used. */
export const EnvInfo = z.object({
  deno: z.string(),
  v8: z.string(),
  typescript: z.string(),
  os: z.string(),
  arch: z.string(),
  adapter: AdapterInfo,
  git: z.object({ commit: z.string().nullable(), dirty: z.boolean().nullable() }),
  /** sha256 of the source that computed the run (harness/env.ts codeSha256); null if unknown. */
  codeSha256: z.string().regex(/^[0-9a-f]{64}$/).nullable().optional(),
});
/** The software and hardware a run used. */
export type EnvInfo = z.infer<typeof EnvInfo>;

/** A complete run result. */
export const RunResult = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  experiment: z.string().min(1),
  runId: z.string().min(1),
  status: RunStatus,
  /** Set when status is not ok: what stopped the run. */
  reason: z.string().optional(),
  seed: z.number().int().nonnegative(),
  /** The fully resolved config (defaults + file + --set). */
  config: z.record(z.string(), z.unknown()),
  configSha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Only the `--set` overrides, as given, so a baseline can re-run the same thing. */
  overrides: z.record(z.string(), z.unknown()),
  data: DataInfo.nullable(),
  env: EnvInfo,
  startedAt: z.string(),
  finishedAt: z.string(),
  /** Training steps completed (equals config train.steps when status is ok). */
  steps: z.number().int().nonnegative(),
  curve: z.array(CurvePoint),
  /** Final metrics: train/val loss estimates for language models, error bounds for xbow. */
  final: z.record(z.string(), z.number().nullable()),
  throughput: z.object({ stepsPerSec: z.number(), tokensPerSec: z.number() }),
  /** Which training step ran: the model's fused kernels or the autograd graph (`--graph`). */
  path: z.enum(["graph", "fused"]).optional(),
  wallMs: z.number().nonnegative(),
  sample: z.string(),
  /** sha256 of all parameters' bytes in a fixed order: the determinism fingerprint. */
  paramsSha256: z.string(),
});
/** A complete run result. */
export type RunResult = z.infer<typeof RunResult>;
