/**
 * Recording a run's plans: the training step (the model's fused kernels, or the autograd graph
 * followed by AdamW: `trainPath` decides), the evaluation batches, and sampling. Everything is
 * recorded once here and replayed by the loop in harness/train.ts.
 */
import { adamw } from "../kernels/adamw.ts";
import { sampleBatch } from "../kernels/batch.ts";
import { Counter, createCounters } from "../kernels/counters.ts";
import { contextWindow, sampleNext } from "../kernels/generate.ts";
import { streamKey } from "../kernels/philox.ts";
import { type Plan, Recorder } from "../kernels/program.ts";
import { createTensor, readU32, type Tensor, writeTensor } from "../kernels/tensor.ts";
import type { BatchStep, LanguageModel } from "../experiments/types.ts";
import { Graph } from "../nn/graph.ts";
import { crossEntropyLoss } from "../nn/ops.ts";
import type { PlanSubmitter } from "./submitter.ts";
import type { TrainOptions } from "./train_options.ts";

/** Which training step a run used. */
export type TrainPath = "graph" | "fused";

/** The path `trainLanguageModel` takes for a model under these options. */
export function trainPath(model: LanguageModel, fused: boolean | undefined): TrainPath {
  return model.recordTrainStep && fused !== false ? "fused" : "graph";
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
export async function generate(opts: TrainOptions, submitter: PlanSubmitter): Promise<Uint32Array> {
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
