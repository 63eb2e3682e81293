/**
 * The training loop for language-model experiments. Everything a step needs is captured once
 * as a Plan and replayed in chunks of many steps per submit; the host only reads the per-step
 * losses back once per chunk, double-buffered so the wait overlaps the next chunk's work.
 * A model may supply fused step kernels (`recordTrainStep`); harness/train_plans.ts then
 * records those instead of the autograd graph.
 */
import { runOnce } from "../kernels/program.ts";
import { readBytes, readU32, writeTensor } from "../kernels/tensor.ts";
import { LossReadback } from "./loss_readback.ts";
import type { CurvePoint, RunStatus } from "./result_schema.ts";
import { plainSubmitter } from "./submitter.ts";
import type { TrainOptions, TrainState } from "./train_options.ts";
import { buildRun, generate, type TrainPath, trainPath } from "./train_plans.ts";

export type { TrainOptions, TrainState } from "./train_options.ts";
export type { TrainPath } from "./train_plans.ts";

/** Where a run's host time went, in milliseconds (measured with performance.now()). */
export interface TrainTiming {
  /** The whole of trainLanguageModel: uploads and plan recording to the final fingerprint. */
  totalMs: number;
  /** Uploads, parameter init, recording the plans, the step-0 estimate. */
  setupMs: number;
  /** Host work in the step loop: encoding and submitting the step replays. */
  encodeSubmitMs: number;
  /** Step loop time spent awaiting loss readbacks (the device is still working then). */
  readbackWaitMs: number;
  /** Estimates at eval intervals: encode, submit and wait. */
  evalMs: number;
  /** Generating the sample, reading the final state and hashing it. */
  finishMs: number;
}

/** What a training run produced. */
export interface TrainOutcome {
  status: RunStatus;
  /** Which step ran: the model's fused kernels or the autograd graph. */
  path: TrainPath;
  reason?: string;
  steps: number;
  curve: CurvePoint[];
  final: { train: number | null; val: number | null };
  trainMs: number;
  stepsTrained: number;
  sample: Uint32Array;
  paramsSha256: string;
  state: TrainState;
  /** Host-time breakdown (for --profile and the benchmarks). */
  timing: TrainTiming;
}

const DEFAULT_CHUNK = 100;

/** Trains a language model per its config and returns the losses, sample and fingerprint. */
export async function trainLanguageModel(opts: TrainOptions): Promise<TrainOutcome> {
  const { gpu, config, seed, store, progress } = opts;
  const totalSteps = config.train.steps;
  const evalIters = config.eval.iters;
  const started = performance.now();

  const { counters, trainLosses, evalLosses, stepPlan, evalTrain, evalVal } = await buildRun(opts);
  await runOnce(gpu, (rec) => store.recordInit(rec, seed));
  let step = 0;
  let curve: CurvePoint[] = [];
  if (opts.resume) {
    store.write(opts.resume.params);
    store.write(opts.resume.adamM, "m");
    store.write(opts.resume.adamV, "v");
    writeTensor(counters, opts.resume.counters);
    step = opts.resume.step;
    curve = [...opts.resume.curve];
  } else if (opts.initParams) {
    store.write(opts.initParams);
  }

  const submitter = opts.submitter ?? plainSubmitter(gpu);

  const estimate = async (): Promise<{ train: number; val: number }> => {
    submitter.submit([{ plan: evalTrain, times: evalIters }, { plan: evalVal, times: evalIters }]);
    const losses = new Float32Array(await readBytes(gpu, evalLosses.buffer, 0, 8 * evalIters));
    return { train: meanOf(losses, 0, evalIters), val: meanOf(losses, evalIters, 2 * evalIters) };
  };

  let evalMs = 0;
  const evaluateAt = async (at: number) => {
    const t0 = performance.now();
    const e = await estimate();
    evalMs += performance.now() - t0;
    curve.push({ step: at, train: e.train, val: e.val, elapsedMs: performance.now() - started });
    progress.line(`step ${at}: train loss ${e.train.toFixed(4)}, val loss ${e.val.toFixed(4)}`);
    return e;
  };

  const state = async (): Promise<TrainState> => ({
    step,
    params: await store.read(),
    adamM: await store.read("m"),
    adamV: await store.read("v"),
    counters: await readU32(counters) as Uint32Array,
    curve: [...curve],
  });

  // A resumed run already has the points up to its step; evaluating again would consume eval
  // batches and shift every later estimate away from the uninterrupted run's.
  if (step === 0) await evaluateAt(0);
  // The step-0 estimate belongs to setup (setupMs below covers it); counting it in evalMs too
  // would subtract it from the training time and overstate steps/s.
  evalMs = 0;

  const chunkSteps = opts.chunkSteps ?? DEFAULT_CHUNK;
  const interval = config.eval.interval;
  const saveEvery = opts.saveEvery ?? 0;
  const readback = new LossReadback(gpu, trainLosses);
  // Widened on purpose: checkChunk (a closure) may set it to "diverged".
  let status = "ok" as RunStatus;
  let reason: string | undefined;
  let divergedAt = 0;
  const loopStart = performance.now();
  const setupMs = loopStart - started;
  let encodeSubmitMs = 0;
  let readbackWaitMs = 0;
  const nextLosses = async () => {
    const t0 = performance.now();
    const chunk = await readback.next();
    readbackWaitMs += performance.now() - t0;
    return chunk;
  };
  const firstStep = step;
  let lastLoss = NaN;

  const checkChunk = (from: number, losses: Float32Array): boolean => {
    for (let i = 0; i < losses.length; i++) {
      if (!Number.isFinite(losses[i])) {
        status = "diverged";
        divergedAt = from + i + 1;
        reason = `training loss became ${losses[i]} at step ${divergedAt}`;
        return false;
      }
    }
    lastLoss = losses[losses.length - 1];
    const rate = (from + losses.length - firstStep) /
      Math.max(1e-9, (performance.now() - loopStart - evalMs) / 1000);
    progress.step(from + losses.length, totalSteps, lastLoss, rate);
    return true;
  };

  while (step < totalSteps && status === "ok") {
    if (opts.interrupted()) {
      status = "interrupted";
      reason = `interrupted at step ${step}`;
      break;
    }
    const nextEval = Math.min(totalSteps, (Math.floor(step / interval) + 1) * interval);
    const nextSave = saveEvery > 0 ? (Math.floor(step / saveEvery) + 1) * saveEvery : Infinity;
    const n = Math.min(chunkSteps, nextEval - step, nextSave - step);
    const t0 = performance.now();
    submitter.submit([{ plan: stepPlan, times: n, role: "step" }], readback.request(step, n));
    encodeSubmitMs += performance.now() - t0;
    step += n;
    // Keep one chunk in flight: the previous chunk's readback overlaps the one just submitted.
    while (readback.pending > 1 && status === "ok") {
      const { from, losses } = await nextLosses();
      if (!checkChunk(from, losses)) break;
    }
    if (status === "ok" && step !== nextEval && step !== nextSave) {
      // mapAsync returns once this chunk is done; the map resolves at Deno's next poll, about
      // 11 ms later, by which time the next chunk (submitted right after) keeps the device busy.
      const t1 = performance.now();
      readback.startMaps();
      readbackWaitMs += performance.now() - t1;
    }
    if (step === nextEval || step === nextSave) {
      while (readback.pending > 0 && status === "ok") {
        const { from, losses } = await nextLosses();
        if (!checkChunk(from, losses)) break;
      }
      if (status !== "ok") break;
      if (step === nextEval) await evaluateAt(step);
      if (step === nextSave && step < totalSteps && opts.onCheckpoint) {
        await opts.onCheckpoint(await state(), false);
      }
    }
  }
  while (readback.pending > 0) {
    const { from, losses } = await nextLosses();
    if (status === "ok") checkChunk(from, losses);
  }
  const loopEnd = performance.now();
  const trainMs = loopEnd - loopStart - evalMs;
  progress.done();

  const last = curve[curve.length - 1];
  const final = status === "ok" && last?.step === step
    ? { train: last.train, val: last.val ?? null }
    : { train: null, val: null };
  const sample = status === "diverged" ? new Uint32Array(0) : await generate(opts, submitter);
  const endState = await state();
  if (opts.onCheckpoint && status !== "diverged") await opts.onCheckpoint(endState, true);
  const paramsSha256 = await store.sha256();
  const finished = performance.now();
  return {
    status,
    path: trainPath(opts.model, opts.fused),
    reason,
    // A diverged run reports the step whose loss was not finite, not the end of its chunk.
    steps: status === "diverged" ? divergedAt : step,
    curve,
    final,
    trainMs,
    stepsTrained: step - firstStep,
    sample,
    paramsSha256,
    state: endState,
    timing: {
      totalMs: finished - started,
      setupMs,
      encodeSubmitMs,
      readbackWaitMs,
      evalMs,
      finishMs: finished - loopEnd,
    },
  };
}

function meanOf(values: Float32Array, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += values[i];
  return sum / (to - from);
}
