/**
 * Configs too large for the device (buffer bindings, llvmpipe's loop limit) or for host
 * memory: a usage error (exit 2) naming the config key, the limit it hit, and the largest value
 * of that key that fits, instead of a stack trace. The largest value is found by bisection over
 * a probe that builds the run at that size; a probe that must compute (a check experiment) may
 * be slow, so bisection stops after PROBE_BUDGET_MS and then names the bracket it reached.
 */
import type { Gpu } from "../kernels/device.ts";
import { LimitError } from "../kernels/tensor.ts";
import type { LanguageModelConfig, LanguageModelExperiment } from "../experiments/types.ts";
import { ParamStore } from "../nn/params.ts";
import { UsageError } from "./errors.ts";
import { buildRun } from "./train_plans.ts";

/** Whether an error says a size does not fit the device or host memory. */
export function isSizeLimit(e: unknown): e is Error {
  if (e instanceof LimitError) return true;
  return e instanceof RangeError &&
    /allocation failed|Invalid typed array length|Invalid array length|too large/i.test(e.message);
}

/** Bytes one binding may hold: every per-step buffer must fit it. */
function bindingLimit(gpu: Gpu): number {
  return Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
}

/**
 * The loss history holds one f32 per training step on the device, so `train.steps` is bounded
 * by the largest storage binding; checked before anything is built.
 */
export function checkStepLimit(config: LanguageModelConfig, gpu: Gpu): void {
  const limit = bindingLimit(gpu);
  const largest = Math.floor(limit / 4);
  if (config.train.steps > largest) {
    throw new UsageError(
      `train.steps=${config.train.steps} does not fit the device: the loss history takes 4 ` +
        `bytes per step and one buffer holds at most ${limit} bytes; the largest train.steps ` +
        `that fits is ${largest}`,
    );
  }
}

/** Whether a config (and vocabulary size) fits; false only for a size limit. */
export type FitProbe = (config: Record<string, unknown>, vocabSize: number) => Promise<boolean>;

function withKey(config: Record<string, unknown>, key: string, value: number) {
  const copy = structuredClone(config);
  const parts = key.split(".");
  let cur = copy;
  for (const part of parts.slice(0, -1)) cur = cur[part] as Record<string, unknown>;
  cur[parts[parts.length - 1]] = value;
  return copy;
}

/** How long bisection may probe before it settles for a bracket. */
const PROBE_BUDGET_MS = 20_000;

/**
 * The largest integer in [lo, hi) for which `fits` holds, given fits(lo) and !fits(hi), as
 * "N"; or "at least lo and below hi" when the probing budget ran out first.
 */
async function bisect(lo: number, hi: number, fits: (v: number) => Promise<boolean>) {
  const deadline = performance.now() + PROBE_BUDGET_MS;
  while (hi - lo > 1) {
    if (performance.now() > deadline) return `at least ${lo} and below ${hi}`;
    const mid = Math.floor((lo + hi) / 2);
    if (await fits(mid)) lo = mid;
    else hi = mid;
  }
  return String(lo);
}

/** Where the size came from when it was not a config key: the corpus's vocabulary. */
export interface VocabularySource {
  name: string;
  size: number;
}

/**
 * Turns a size-limit error into a UsageError naming the key responsible and the largest value
 * of it that fits. Candidates are the integer keys set above their defaults, each tried alone
 * (the others at their defaults), then the corpus's vocabulary.
 */
export async function explainSizeLimit(
  error: Error,
  run: {
    config: Record<string, unknown>;
    overrides: Record<string, unknown>;
    defaults: Record<string, unknown>;
    vocabulary?: VocabularySource;
    /** Undefined when no cheap probe exists: the keys set above their defaults are named. */
    fits?: FitProbe;
  },
): Promise<UsageError> {
  const vocabSize = run.vocabulary?.size ?? 0;
  const raised = Object.entries(run.overrides).filter(([key, value]) =>
    Number.isSafeInteger(value) && typeof run.defaults[key] === "number" &&
    (value as number) > (run.defaults[key] as number)
  ) as [string, number][];
  const fits = run.fits;
  if (!fits) {
    const named = raised.map(([key, value]) => `${key}=${value}`).join(", ");
    return new UsageError(
      `the config does not fit: ${error.message}` +
        (named
          ? `; lower ${named} (set above the defaults ${
            raised.map(([key]) => `${key}=${run.defaults[key]}`).join(", ")
          })`
          : ""),
    );
  }
  for (const [key, value] of raised) {
    let base = run.config;
    for (const [other] of raised) {
      if (other !== key) base = withKey(base, other, run.defaults[other] as number);
    }
    const fitsAt = (v: number) => fits(withKey(base, key, v), vocabSize);
    const floor = run.defaults[key] as number;
    if (!(await fitsAt(floor)) || await fitsAt(value)) continue;
    const largest = await bisect(floor, value, fitsAt);
    return new UsageError(
      `${key}=${value} does not fit: ${error.message}; the largest ${key} that fits ` +
        `(the other keys as given) is ${largest}`,
    );
  }
  const vocab = run.vocabulary;
  if (vocab && !(await fits(run.config, vocab.size)) && await fits(run.config, 2)) {
    const largest = await bisect(2, vocab.size, (v) => fits(run.config, v));
    return new UsageError(
      `data ${vocab.name} has ${vocab.size} distinct characters, too many for this model on ` +
        `this device: ${error.message}; the largest vocabulary that fits is ${largest}`,
    );
  }
  return new UsageError(`the config does not fit the device: ${error.message}`);
}

/**
 * A probe for a language model: builds the model, its buffers and its plans at the given size
 * (on a token stream of zeros) and runs nothing.
 */
export function languageModelProbe(gpu: Gpu, experiment: LanguageModelExperiment): FitProbe {
  return async (raw, vocabSize) => {
    const config = structuredClone(raw) as unknown as LanguageModelConfig;
    config.train.steps = 1;
    config.eval.iters = 1;
    config.sample.tokens = 0;
    const tokens = new Uint32Array(config.train.blockSize + 1);
    try {
      const store = new ParamStore(gpu);
      const model = experiment.createModel(store, config, vocabSize);
      store.finalize();
      await buildRun({
        gpu,
        config,
        seed: 0,
        model,
        store,
        trainTokens: tokens,
        valTokens: tokens,
        progress: { step() {}, line() {}, done() {} },
        interrupted: () => true,
      });
      return true;
    } catch (e) {
      if (isSizeLimit(e)) return false;
      throw e;
    }
  };
}
