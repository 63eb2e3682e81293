/**
 * seedlab checkpoints: one safetensors file holding everything a run needs to resume bit for
 * bit, or to initialise a new run from trained weights.
 *
 * Layout (`results/<experiment>/<run-id>.safetensors`):
 *
 * | tensor           | dtype | shape            | contents                                    |
 * | ---------------- | ----- | ---------------- | ------------------------------------------- |
 * | `param.<name>`   | F32   | the parameter's  | one per model parameter (`param.lm_head.weight`) |
 * | `adam.m.<name>`  | F32   | same as param    | AdamW first moment of that parameter        |
 * | `adam.v.<name>`  | F32   | same as param    | AdamW second moment of that parameter       |
 * | `counters`       | U32   | [8]              | the device counters (kernels/counters.ts)   |
 *
 * `counters` slots: 0 training batches drawn (= optimizer steps started, AdamW's t),
 * 1 evaluation batches drawn, 2 last generated token position, 3–7 reserved (0).
 *
 * Tensors are written in parameter order: every `param.*`, then every `adam.m.*`, then every
 * `adam.v.*`, then `counters`, so the same state always gives the same bytes.
 *
 * | metadata key           | value                                                |
 * | ---------------------- | ---------------------------------------------------- |
 * | `seedlab.format`       | `seedlab-checkpoint-1`                               |
 * | `seedlab.experiment`   | experiment name, e.g. `bigram`                       |
 * | `seedlab.configSha256` | sha256 of the resolved config (64 hex digits)        |
 * | `seedlab.seed`         | run seed, decimal                                    |
 * | `seedlab.step`         | optimizer steps completed, decimal                   |
 * | `seedlab.curve`        | optional: the loss curve so far, JSON (results schema) |
 * | `seedlab.overrides`    | optional: the run's `--set` overrides, JSON object   |
 * | `seedlab.initFrom`     | optional: the `--init-from` weights, JSON {path, paramsSha256} |
 *
 * Any safetensors reader (e.g. Python's `safetensors.numpy.load_file`) can open the file.
 */
import { z } from "zod";
import { UsageError } from "./errors.ts";
import { paramsSha256 } from "../nn/params.ts";
import { CurvePoint, InitFrom } from "./result_schema.ts";
import {
  loadSafetensors,
  type SafeTensor,
  type SafetensorsFile,
  saveSafetensors,
} from "./safetensors.ts";

/** The format tag stored under `seedlab.format`; bumped when the layout changes meaning. */
export const CHECKPOINT_FORMAT = "seedlab-checkpoint-1";

/** Number of u32 device counters a checkpoint stores (kernels/counters.ts COUNTER_SLOTS). */
export const CHECKPOINT_COUNTERS = 8;

/** A named F32 tensor of a checkpoint: a parameter or one of its AdamW moments. */
export interface CheckpointTensor {
  shape: number[];
  data: Float32Array;
}

/** Everything a checkpoint holds: run identity, parameters, AdamW moments, device counters. */
export interface Checkpoint {
  experiment: string;
  configSha256: string;
  seed: number;
  /** Optimizer steps completed. */
  step: number;
  params: Record<string, CheckpointTensor>;
  adamM: Record<string, CheckpointTensor>;
  adamV: Record<string, CheckpointTensor>;
  counters: Uint32Array;
  /** The loss curve up to `step`, so a resumed run's result has the whole curve. */
  curve?: CurvePoint[];
  /** The run's `--set` overrides, so `--resume` re-creates its config without repeating them. */
  overrides?: Record<string, unknown>;
  /** The weights the run started from (`--init-from`), so a resumed run keeps its run id. */
  initFrom?: InitFrom;
}

const PARAM = "param.";
const ADAM_M = "adam.m.";
const ADAM_V = "adam.v.";
const COUNTERS = "counters";

const META = {
  format: "seedlab.format",
  experiment: "seedlab.experiment",
  configSha256: "seedlab.configSha256",
  seed: "seedlab.seed",
  step: "seedlab.step",
  curve: "seedlab.curve",
  overrides: "seedlab.overrides",
  initFrom: "seedlab.initFrom",
} as const;

const fmtShape = (shape: readonly number[]) => `[${shape.join(", ")}]`;
const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

function isCount(x: number): boolean {
  return Number.isSafeInteger(x) && x >= 0;
}

// Problems shared by save (a caller bug → Error) and load (a bad file → UsageError).
function momentProblems(ckpt: Pick<Checkpoint, "params" | "adamM" | "adamV">): string[] {
  const problems: string[] = [];
  for (const [label, moments] of [["adam.m", ckpt.adamM], ["adam.v", ckpt.adamV]] as const) {
    for (const [name, p] of Object.entries(ckpt.params)) {
      const m = Object.hasOwn(moments, name) ? moments[name] : undefined;
      if (!m) problems.push(`param ${name} has no ${label}`);
      else if (!sameShape(m.shape, p.shape)) {
        problems.push(
          `${label} ${name}: shape ${fmtShape(m.shape)} differs from the param's ${
            fmtShape(p.shape)
          }`,
        );
      }
    }
    for (const name of Object.keys(moments)) {
      if (!Object.hasOwn(ckpt.params, name)) {
        problems.push(`${label} ${name} has no matching param`);
      }
    }
  }
  return problems;
}

/** Writes a checkpoint atomically; an inconsistent checkpoint (caller bug) throws before writing. */
export async function saveCheckpoint(path: string, ckpt: Checkpoint): Promise<void> {
  const problems = momentProblems(ckpt);
  if (ckpt.counters.length !== CHECKPOINT_COUNTERS) {
    problems.push(`counters has ${ckpt.counters.length} slots, expected ${CHECKPOINT_COUNTERS}`);
  }
  if (!isCount(ckpt.seed)) problems.push(`seed ${ckpt.seed} is not a non-negative integer`);
  if (!isCount(ckpt.step)) problems.push(`step ${ckpt.step} is not a non-negative integer`);
  if (problems.length > 0) {
    throw new Error(`cannot save checkpoint ${path}: ${problems.join("; ")}`);
  }
  const tensors: Record<string, SafeTensor> = {};
  const names = Object.keys(ckpt.params);
  for (
    const [prefix, group] of [[PARAM, ckpt.params], [ADAM_M, ckpt.adamM], [
      ADAM_V,
      ckpt.adamV,
    ]] as const
  ) {
    for (const name of names) {
      tensors[prefix + name] = { dtype: "F32", shape: group[name].shape, data: group[name].data };
    }
  }
  tensors[COUNTERS] = { dtype: "U32", shape: [CHECKPOINT_COUNTERS], data: ckpt.counters };
  const metadata: Record<string, string> = {
    [META.format]: CHECKPOINT_FORMAT,
    [META.experiment]: ckpt.experiment,
    [META.configSha256]: ckpt.configSha256,
    [META.seed]: String(ckpt.seed),
    [META.step]: String(ckpt.step),
  };
  // NaN losses of a diverged curve become null, which the results schema allows.
  if (ckpt.curve) metadata[META.curve] = JSON.stringify(ckpt.curve);
  if (ckpt.overrides) metadata[META.overrides] = JSON.stringify(ckpt.overrides);
  if (ckpt.initFrom) metadata[META.initFrom] = JSON.stringify(ckpt.initFrom);
  await saveSafetensors(path, tensors, metadata);
}

/** Reads and validates a checkpoint; a missing, corrupt or inconsistent file is a UsageError. */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  return checkpointFromFile(path, await loadSafetensors(path));
}

/** Whether a safetensors file says it is a seedlab checkpoint (rather than a plain state dict). */
export function isSeedlabCheckpoint(file: SafetensorsFile): boolean {
  return file.metadata[META.format] !== undefined;
}

/** Validates the contents of a safetensors file read from `path` as a seedlab checkpoint. */
export function checkpointFromFile(path: string, file: SafetensorsFile): Checkpoint {
  const { tensors, metadata } = file;
  const bad = (what: string) => new UsageError(`${path}: not a seedlab checkpoint: ${what}`);

  const format = metadata[META.format];
  if (format === undefined) throw bad(`metadata has no ${META.format}`);
  if (format !== CHECKPOINT_FORMAT) {
    throw bad(`${META.format} is "${format}", this seedlab reads "${CHECKPOINT_FORMAT}"`);
  }
  const text = (key: string): string => {
    const v = metadata[key];
    if (v === undefined) throw bad(`metadata has no ${key}`);
    return v;
  };
  const count = (key: string): number => {
    const v = text(key);
    // Decimal digits only: Number("") is 0 and Number("1e3") is 1000, neither is meant.
    if (!/^(0|[1-9][0-9]*)$/.test(v) || !isCount(Number(v))) {
      throw bad(`${key} is "${v}", not a non-negative integer`);
    }
    return Number(v);
  };
  const experiment = text(META.experiment);
  const configSha256 = text(META.configSha256);
  const seed = count(META.seed);
  const step = count(META.step);
  let curve: CurvePoint[] | undefined;
  if (metadata[META.curve] !== undefined) {
    let raw: unknown;
    try {
      raw = JSON.parse(metadata[META.curve]);
    } catch {
      throw bad(`${META.curve} is not valid JSON`);
    }
    const parsed = z.array(CurvePoint).safeParse(raw);
    if (!parsed.success) throw bad(`${META.curve} is not a loss curve`);
    curve = parsed.data;
  }
  let overrides: Record<string, unknown> | undefined;
  if (metadata[META.overrides] !== undefined) {
    let raw: unknown;
    try {
      raw = JSON.parse(metadata[META.overrides]);
    } catch {
      throw bad(`${META.overrides} is not valid JSON`);
    }
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      throw bad(`${META.overrides} is not a JSON object of overrides`);
    }
    overrides = raw as Record<string, unknown>;
  }
  let initFrom: InitFrom | undefined;
  if (metadata[META.initFrom] !== undefined) {
    let raw: unknown;
    try {
      raw = JSON.parse(metadata[META.initFrom]);
    } catch {
      throw bad(`${META.initFrom} is not valid JSON`);
    }
    const parsed = InitFrom.safeParse(raw);
    if (!parsed.success) throw bad(`${META.initFrom} is not {path, paramsSha256}`);
    initFrom = parsed.data;
  }

  const params: Record<string, CheckpointTensor> = {};
  const adamM: Record<string, CheckpointTensor> = {};
  const adamV: Record<string, CheckpointTensor> = {};
  let counters: Uint32Array | undefined;
  for (const [key, t] of Object.entries(tensors)) {
    if (key === COUNTERS) {
      if (t.dtype !== "U32" || !sameShape(t.shape, [CHECKPOINT_COUNTERS])) {
        throw bad(`counters is ${t.dtype} ${fmtShape(t.shape)}, expected U32 [8]`);
      }
      counters = t.data;
      continue;
    }
    const prefix = [PARAM, ADAM_M, ADAM_V].find((p) => key.startsWith(p));
    if (!prefix) throw bad(`unexpected tensor ${key}`);
    if (t.dtype !== "F32") throw bad(`tensor ${key} is ${t.dtype}, expected F32`);
    const group = prefix === PARAM ? params : prefix === ADAM_M ? adamM : adamV;
    // defineProperty keeps a parameter called "__proto__" an ordinary key.
    Object.defineProperty(group, key.slice(prefix.length), {
      value: { shape: t.shape, data: t.data },
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  if (!counters) throw bad("no counters tensor");
  const problems = momentProblems({ params, adamM, adamV });
  if (problems.length > 0) throw bad(problems.join("; "));
  const ckpt: Checkpoint = {
    experiment,
    configSha256,
    seed,
    step,
    params,
    adamM,
    adamV,
    counters,
  };
  if (curve) ckpt.curve = curve;
  if (overrides) ckpt.overrides = overrides;
  if (initFrom) ckpt.initFrom = initFrom;
  return ckpt;
}

/** Parameters from a file, and how a message names that file. */
export interface ParamSource {
  params: Record<string, { shape: number[] }>;
  /** e.g. "checkpoint of 'bigram' (step 100)"; default from `experiment` and `step`. */
  description?: string;
  experiment?: string;
  step?: number;
}

/**
 * Checks that a checkpoint's parameters are exactly the model's (same names, same shapes);
 * throws one UsageError listing every missing, unexpected and mismatched parameter.
 */
export function checkInitCompatible(
  expected: Record<string, { shape: number[] }>,
  ckpt: ParamSource,
): void {
  const missing = Object.keys(expected).filter((n) => !Object.hasOwn(ckpt.params, n));
  const unexpected = Object.keys(ckpt.params).filter((n) => !Object.hasOwn(expected, n));
  const mismatched = Object.entries(expected)
    .filter(([n, e]) => Object.hasOwn(ckpt.params, n) && !sameShape(ckpt.params[n].shape, e.shape))
    .map(([n, e]) =>
      `param ${n}: checkpoint has ${fmtShape(ckpt.params[n].shape)}, model expects ${
        fmtShape(e.shape)
      }`
    );
  const lines = [
    ...(missing.length > 0 ? [`missing from the checkpoint: ${missing.join(", ")}`] : []),
    ...(unexpected.length > 0 ? [`not in the model: ${unexpected.join(", ")}`] : []),
    ...mismatched,
  ];
  if (lines.length > 0) {
    throw new UsageError(
      `${
        ckpt.description ?? `checkpoint of '${ckpt.experiment}' (step ${ckpt.step})`
      } does not fit the model:\n  ` +
        lines.join("\n  "),
    );
  }
}

/**
 * sha256 over a checkpoint's parameters in file order (= the model's registration order), the
 * same bytes ParamStore.sha256 hashes: a checkpoint written at the end of a run hashes to that
 * run's `paramsSha256`.
 */
export async function checkpointParamsSha256(ckpt: Pick<Checkpoint, "params">): Promise<string> {
  return await paramsSha256(Object.values(ckpt.params).map((t) => t.data));
}
