/**
 * The training loop for language-model experiments. Everything a step needs is captured once
 * as a Plan and replayed in chunks of many steps per submit; the host only reads the per-step
 * losses back once per chunk, double-buffered so the wait overlaps the next chunk's work.
 * A model may supply fused step kernels (`recordTrainStep`); the loop then records those
 * instead of the autograd graph.
 */
import { adamw } from "../kernels/adamw.ts";
import { sampleBatch } from "../kernels/batch.ts";
import { Counter, createCounters } from "../kernels/counters.ts";
import type { Gpu } from "../kernels/device.ts";
import { contextWindow, sampleNext } from "../kernels/generate.ts";
import { streamKey } from "../kernels/philox.ts";
import { type Plan, Recorder, runOnce } from "../kernels/program.ts";
import { createTensor, readBytes, readU32, type Tensor, writeTensor } from "../kernels/tensor.ts";
import type { BatchStep, LanguageModel, LanguageModelConfig } from "../experiments/types.ts";
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
  /** Called every `saveEvery` steps and at the end (`final`), with the state to checkpoint. */
  saveEvery?: number;
  onCheckpoint?: (state: TrainState, final: boolean) => Promise<void>;
  /** Steps per submit (a readback per chunk); tests use small values. */
  chunkSteps?: number;
  /**
   * Use the model's fused step and eval kernels when it has them (default true); false records
   * the autograd graph, for comparisons.
   */
  fused?: boolean;
  /** Encodes and submits replays (default: one compute pass per submit); --profile times them. */
  submitter?: PlanSubmitter;
}

/** Encodes replays of plans into one command buffer and submits it. */
export interface PlanSubmitter {
  /**
   * Submits each plan `times` times, in order, as one submission; `then` may append commands
   * (a readback copy) to the same command buffer.
   */
  submit(
    replays: readonly Replay[],
    then?: (encoder: GPUCommandEncoder) => void,
  ): void;
}

/** A plan to replay `times` times; `role` marks the training step (what --profile measures). */
export interface Replay {
  plan: Plan;
  times: number;
  role?: "step";
}

/** The default submitter: every replay in one compute pass of one command buffer. */
export function plainSubmitter(gpu: Gpu): PlanSubmitter {
  return {
    submit(replays, then) {
      const encoder = gpu.device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      for (const { plan, times } of replays) {
        for (let i = 0; i < times; i++) plan.encodeInto(pass);
      }
      pass.end();
      then?.(encoder);
      gpu.device.queue.submit([encoder.finish()]);
    },
  };
}

/** Which training step a run used. */
export type TrainPath = "graph" | "fused";

/** The path `trainLanguageModel` takes for a model under these options. */
export function trainPath(model: LanguageModel, fused: boolean | undefined): TrainPath {
  return model.recordTrainStep && fused !== false ? "fused" : "graph";
}

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

/**
 * Allocates a run's device buffers and records its step and estimate plans, running nothing:
 * a size the device cannot take throws its LimitError here, before any compute.
 */
export async function buildRun(opts: TrainOptions) {
  const { gpu } = opts;
  const trainTokens = createTensor(gpu, [opts.trainTokens.length], "u32", "tokens.train");
  writeTensor(trainTokens, opts.trainTokens);
  const valTokens = createTensor(gpu, [opts.valTokens.length], "u32", "tokens.val");
  writeTensor(valTokens, opts.valTokens);
  const counters = createCounters(gpu);
  const trainLosses = createTensor(gpu, [opts.config.train.steps], "f32", "losses.train");
  const evalLosses = createTensor(gpu, [2 * opts.config.eval.iters], "f32", "losses.eval");
  return {
    counters,
    trainLosses,
    evalLosses,
    stepPlan: await recordStep(opts, trainTokens, counters, trainLosses),
    evalTrain: await recordEval(opts, trainTokens, counters, evalLosses),
    evalVal: await recordEval(opts, valTokens, counters, evalLosses),
  };
}

function meanOf(values: Float32Array, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += values[i];
  return sum / (to - from);
}

/** The batch a step or an estimate draws from `tokens` on the stream of `counterIndex`. */
function batchStep(
  opts: TrainOptions,
  rec: Recorder,
  tokens: Tensor,
  counters: Tensor,
  losses: Tensor,
  counterIndex: number,
): BatchStep {
  const { batchSize, blockSize } = opts.config.train;
  const stream = counterIndex === Counter.trainBatch ? "train" : "eval";
  return {
    rec,
    seed: opts.seed,
    tokens,
    counters,
    counterIndex,
    key: streamKey(opts.seed, stream),
    batchSize,
    blockSize,
    losses,
  };
}

/** One training step: batch → forward → loss → backward → AdamW, all on the device. */
function recordStep(
  opts: TrainOptions,
  tokens: Tensor,
  counters: Tensor,
  losses: Tensor,
): Promise<Plan> {
  const { gpu, config, model, store } = opts;
  const rec = new Recorder(gpu);
  const step = batchStep(opts, rec, tokens, counters, losses, Counter.trainBatch);
  if (model.recordTrainStep && trainPath(model, opts.fused) === "fused") {
    model.recordTrainStep({
      ...step,
      arenas: store.arenas,
      lr: config.train.lr,
      weightDecay: config.train.weightDecay,
    });
    return rec.finish();
  }
  recordBatchLoss(model, step, true).backward();
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
  const { gpu, model } = opts;
  const rec = new Recorder(gpu);
  const step = batchStep(opts, rec, tokens, counters, losses, Counter.evalBatch);
  if (model.recordEvalStep && opts.fused !== false) model.recordEvalStep(step);
  else recordBatchLoss(model, step, false);
  return rec.finish();
}

/** The graph path: batch → forward → cross-entropy into the loss history; returns the graph. */
function recordBatchLoss(model: LanguageModel, step: BatchStep, training: boolean): Graph {
  const { rec, batchSize: B, blockSize: T, counters, counterIndex } = step;
  const prefix = training ? "batch" : "eval";
  const inputs = createTensor(rec.gpu, [B, T], "u32", `${prefix}.inputs`);
  const targets = createTensor(rec.gpu, [B, T], "u32", `${prefix}.targets`);
  sampleBatch(rec, { tokens: step.tokens, counters, counterIndex, key: step.key, inputs, targets });
  // Dropout draws from the seed's dropout stream at this step's counter; evaluation runs none.
  const graph = new Graph(rec, training, { seed: step.seed, counters, counterIndex });
  const sink = { losses: step.losses, counters, counterIndex };
  if (model.forwardLoss) {
    model.forwardLoss(graph, graph.constant(inputs), graph.constant(targets), sink);
  } else {
    const logits = model.forward(graph, graph.constant(inputs));
    crossEntropyLoss(graph, logits, graph.constant(targets), sink);
  }
  return graph;
}

/** Generates `sample.tokens` tokens after a start token 0, entirely on the device. */
async function generate(opts: TrainOptions, submitter: PlanSubmitter): Promise<Uint32Array> {
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
  if (n > 0) submitter.submit([{ plan, times: n }]);
  return await readU32(generated);
}

/**
 * Readback of per-step losses, one staging buffer per chunk, copied at the end of the chunk's
 * own command buffer. On Deno's WebGPU (measured on llvmpipe) a submit and a mapAsync call both
 * block until the work already submitted is done, and a map resolves only at the next poll
 * (~11 ms later); the loop therefore maps a chunk right after submitting it and awaits the
 * result only after submitting the next one.
 */
class LossReadback {
  readonly #queue: { from: number; n: number; staging: GPUBuffer; mapped?: Promise<void> }[] = [];
  constructor(readonly gpu: Gpu, readonly losses: Tensor) {}

  get pending(): number {
    return this.#queue.length;
  }

  /** Returns the encoder step that copies steps [from, from + n) of the chunk it ends. */
  request(from: number, n: number): (encoder: GPUCommandEncoder) => void {
    const bytes = n * 4;
    const staging = this.gpu.device.createBuffer({
      label: "losses.readback",
      size: Math.max(4, bytes),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.#queue.push({ from, n, staging });
    return (encoder) =>
      encoder.copyBufferToBuffer(
        this.losses.buffer,
        this.losses.byteOffset + from * 4,
        staging,
        0,
        bytes,
      );
  }

  /** Requests the maps of every chunk submitted so far (blocks until the device is done). */
  startMaps(): void {
    for (const entry of this.#queue) entry.mapped ??= entry.staging.mapAsync(GPUMapMode.READ);
  }

  /** The oldest chunk's losses (maps its staging buffer if not yet requested). */
  async next(): Promise<{ from: number; losses: Float32Array }> {
    const head = this.#queue.shift();
    if (!head) throw new Error("no readback pending");
    await (head.mapped ?? head.staging.mapAsync(GPUMapMode.READ));
    const losses = new Float32Array(head.staging.getMappedRange().slice(0, head.n * 4));
    head.staging.unmap();
    head.staging.destroy();
    return { from: head.from, losses };
  }
}
