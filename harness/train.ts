/**
 * The training loop for language-model experiments. Everything a step needs is captured once
 * as a Plan and replayed in chunks of many steps per submit; the host only reads the per-step
 * losses back once per chunk, double-buffered so the wait overlaps the next chunk's work.
 */
import { adamw } from "../kernels/adamw.ts";
import { sampleBatch } from "../kernels/batch.ts";
import { Counter, createCounters } from "../kernels/counters.ts";
import type { Gpu } from "../kernels/device.ts";
import { contextWindow, sampleNext } from "../kernels/generate.ts";
import { streamKey } from "../kernels/philox.ts";
import { type Plan, Recorder, runOnce } from "../kernels/program.ts";
import { createTensor, readBytes, readU32, type Tensor, writeTensor } from "../kernels/tensor.ts";
import type { LanguageModel, LanguageModelConfig } from "../experiments/types.ts";
import { Graph } from "../nn/graph.ts";
import { crossEntropyLoss } from "../nn/ops.ts";
import type { ParamStore } from "../nn/params.ts";
import type { CurvePoint, RunStatus } from "./result_schema.ts";
import type { Progress } from "./progress.ts";

/** Model state that a checkpoint restores (params, AdamW moments, counters, curve so far). */
export interface TrainState {
  step: number;
  params: Map<string, Float32Array>;
  adamM: Map<string, Float32Array>;
  adamV: Map<string, Float32Array>;
  counters: Uint32Array;
  curve: CurvePoint[];
}

/** Inputs of one training run. */
export interface TrainOptions {
  gpu: Gpu;
  config: LanguageModelConfig;
  seed: number;
  model: LanguageModel;
  store: ParamStore;
  trainTokens: Uint32Array;
  valTokens: Uint32Array;
  progress: Progress;
  /** Polled between chunks; true stops the run with status `interrupted`. */
  interrupted: () => boolean;
  /** Continue from this state (`--resume`); parameters only for `--init-from`. */
  resume?: TrainState;
  initParams?: Map<string, Float32Array>;
  /** Called every `saveEvery` steps and at the end, with the state to checkpoint. */
  saveEvery?: number;
  onCheckpoint?: (state: TrainState) => Promise<void>;
  /** Steps per submit (a readback per chunk); tests use small values. */
  chunkSteps?: number;
}

/** What a training run produced. */
export interface TrainOutcome {
  status: RunStatus;
  reason?: string;
  steps: number;
  curve: CurvePoint[];
  final: { train: number | null; val: number | null };
  trainMs: number;
  stepsTrained: number;
  sample: Uint32Array;
  paramsSha256: string;
  state: TrainState;
}

const DEFAULT_CHUNK = 100;

/** Trains a language model per its config and returns the losses, sample and fingerprint. */
export async function trainLanguageModel(opts: TrainOptions): Promise<TrainOutcome> {
  const { gpu, config, seed, store, progress } = opts;
  const totalSteps = config.train.steps;
  const evalIters = config.eval.iters;
  const started = performance.now();

  const trainTokens = createTensor(gpu, [opts.trainTokens.length], "u32", "tokens.train");
  writeTensor(trainTokens, opts.trainTokens);
  const valTokens = createTensor(gpu, [opts.valTokens.length], "u32", "tokens.val");
  writeTensor(valTokens, opts.valTokens);
  const counters = createCounters(gpu);
  const trainLosses = createTensor(gpu, [totalSteps], "f32", "losses.train");
  const evalLosses = createTensor(gpu, [2 * evalIters], "f32", "losses.eval");

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

  const stepPlan = await recordStep(opts, trainTokens, counters, trainLosses);
  const evalTrain = await recordEval(opts, trainTokens, counters, evalLosses);
  const evalVal = await recordEval(opts, valTokens, counters, evalLosses);

  const estimate = async (): Promise<{ train: number; val: number }> => {
    const encoder = gpu.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    for (let i = 0; i < evalIters; i++) evalTrain.encodeInto(pass);
    for (let i = 0; i < evalIters; i++) evalVal.encodeInto(pass);
    pass.end();
    gpu.device.queue.submit([encoder.finish()]);
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

  const chunkSteps = opts.chunkSteps ?? DEFAULT_CHUNK;
  const interval = config.eval.interval;
  const saveEvery = opts.saveEvery ?? 0;
  const readback = new LossReadback(gpu, trainLosses);
  // Widened on purpose: checkChunk (a closure) may set it to "diverged".
  let status = "ok" as RunStatus;
  let reason: string | undefined;
  const loopStart = performance.now();
  const firstStep = step;
  let lastLoss = NaN;

  const checkChunk = (from: number, losses: Float32Array): boolean => {
    for (let i = 0; i < losses.length; i++) {
      if (!Number.isFinite(losses[i])) {
        status = "diverged";
        reason = `training loss became ${losses[i]} at step ${from + i + 1}`;
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
    stepPlan.submit(n);
    readback.request(step, n);
    step += n;
    // Keep one chunk in flight: its readback wait overlaps the device work just submitted.
    while (readback.pending > 1 && status === "ok") {
      const { from, losses } = await readback.next();
      if (!checkChunk(from, losses)) break;
    }
    if (step === nextEval || step === nextSave) {
      while (readback.pending > 0 && status === "ok") {
        const { from, losses } = await readback.next();
        if (!checkChunk(from, losses)) break;
      }
      if (status !== "ok") break;
      if (step === nextEval) await evaluateAt(step);
      if (step === nextSave && step < totalSteps && opts.onCheckpoint) {
        await opts.onCheckpoint(await state());
      }
    }
  }
  while (readback.pending > 0) {
    const { from, losses } = await readback.next();
    if (status === "ok") checkChunk(from, losses);
  }
  const trainMs = performance.now() - loopStart - evalMs;
  progress.done();

  const last = curve[curve.length - 1];
  const final = status === "ok" && last?.step === step
    ? { train: last.train, val: last.val ?? null }
    : { train: null, val: null };
  const sample = status === "diverged" ? new Uint32Array(0) : await generate(opts);
  const endState = await state();
  if (opts.onCheckpoint && status !== "diverged") await opts.onCheckpoint(endState);
  return {
    status,
    reason,
    steps: step,
    curve,
    final,
    trainMs,
    stepsTrained: step - firstStep,
    sample,
    paramsSha256: await store.sha256(),
    state: endState,
  };
}

function meanOf(values: Float32Array, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += values[i];
  return sum / (to - from);
}

/** One training step: batch → forward → loss → backward → AdamW, all on the device. */
function recordStep(
  opts: TrainOptions,
  tokens: Tensor,
  counters: Tensor,
  losses: Tensor,
): Promise<Plan> {
  const { gpu, config, seed, model, store } = opts;
  const { batchSize: B, blockSize: T } = config.train;
  const rec = new Recorder(gpu);
  const inputs = createTensor(gpu, [B, T], "u32", "batch.inputs");
  const targets = createTensor(gpu, [B, T], "u32", "batch.targets");
  sampleBatch(rec, {
    tokens,
    counters,
    counterIndex: Counter.trainBatch,
    key: streamKey(seed, "train"),
    inputs,
    targets,
  });
  const g = new Graph(rec, true);
  const logits = model.forward(g, g.constant(inputs));
  crossEntropyLoss(g, logits, g.constant(targets), {
    losses,
    counters,
    counterIndex: Counter.trainBatch,
  });
  g.backward();
  adamw(rec, {
    ...store.arenas,
    counters,
    lr: config.train.lr,
    weightDecay: config.train.weightDecay,
  });
  return rec.finish();
}

/** One evaluation batch from the eval stream (never the training stream), loss only. */
function recordEval(
  opts: TrainOptions,
  tokens: Tensor,
  counters: Tensor,
  losses: Tensor,
): Promise<Plan> {
  const { gpu, config, seed, model } = opts;
  const { batchSize: B, blockSize: T } = config.train;
  const rec = new Recorder(gpu);
  const inputs = createTensor(gpu, [B, T], "u32", "eval.inputs");
  const targets = createTensor(gpu, [B, T], "u32", "eval.targets");
  sampleBatch(rec, {
    tokens,
    counters,
    counterIndex: Counter.evalBatch,
    key: streamKey(seed, "eval"),
    inputs,
    targets,
  });
  const g = new Graph(rec, false);
  const logits = model.forward(g, g.constant(inputs));
  crossEntropyLoss(g, logits, g.constant(targets), {
    losses,
    counters,
    counterIndex: Counter.evalBatch,
  });
  return rec.finish();
}

/** Generates `sample.tokens` tokens after a start token 0, entirely on the device. */
async function generate(opts: TrainOptions): Promise<Uint32Array> {
  const { gpu, config, seed, model } = opts;
  const n = config.sample.tokens;
  const T = config.train.blockSize;
  const generated = createTensor(gpu, [n + 1], "u32", "generated");
  const counters = createCounters(gpu);
  const rec = new Recorder(gpu);
  const idx = createTensor(gpu, [1, T], "u32", "generate.idx");
  contextWindow(rec, { generated, counters, idx });
  const g = new Graph(rec, false);
  const logits = model.forward(g, g.constant(idx));
  sampleNext(rec, { logits: logits.data, counters, key: streamKey(seed, "sample"), generated });
  const plan = await rec.finish();
  if (n > 0) plan.submit(n);
  return await readU32(generated);
}

/** Double-buffered readback of per-step losses. */
class LossReadback {
  readonly #queue: { from: number; promise: Promise<Float32Array> }[] = [];
  constructor(readonly gpu: Gpu, readonly losses: Tensor) {}

  get pending(): number {
    return this.#queue.length;
  }

  request(from: number, n: number): void {
    const promise = readBytes(
      this.gpu,
      this.losses.buffer,
      this.losses.byteOffset + from * 4,
      n * 4,
    )
      .then((b) => new Float32Array(b));
    this.#queue.push({ from, promise });
  }

  async next(): Promise<{ from: number; losses: Float32Array }> {
    const head = this.#queue.shift();
    if (!head) throw new Error("no readback pending");
    return { from: head.from, losses: await head.promise };
  }
}
