/** What an experiment file provides: a config schema with defaults, and a model or a check. */
import { z } from "zod";
import type { Gpu } from "../kernels/device.ts";
import type { DeviceBatch } from "../kernels/batch.ts";
import type { Recorder } from "../kernels/program.ts";
import type { Graph, Var } from "../nn/graph.ts";
import type { LossSink } from "../nn/ops.ts";
import type { Arenas, ParamStore } from "../nn/params.ts";

/** The config sections every language-model experiment shares (defaults: the lecture's). */
export function languageModelSchema(defaults: {
  steps: number;
  batchSize: number;
  blockSize: number;
  lr: number;
  evalInterval: number;
  evalIters: number;
}) {
  return {
    train: z.object({
      steps: z.number().int().positive().default(defaults.steps),
      batchSize: z.number().int().positive().default(defaults.batchSize),
      blockSize: z.number().int().positive().default(defaults.blockSize),
      lr: z.number().positive().default(defaults.lr),
      weightDecay: z.number().nonnegative().default(0.01),
    }).prefault({}),
    eval: z.object({
      interval: z.number().int().positive().default(defaults.evalInterval),
      iters: z.number().int().positive().default(defaults.evalIters),
    }).prefault({}),
    sample: z.object({
      tokens: z.number().int().nonnegative().default(500),
    }).prefault({}),
    data: z.string().min(1).default("mobydick"),
  };
}

/** The resolved shared sections of a language-model config. */
export interface LanguageModelConfig {
  train: { steps: number; batchSize: number; blockSize: number; lr: number; weightDecay: number };
  eval: { interval: number; iters: number };
  sample: { tokens: number };
  data: string;
}

/** One batch drawn on the device, as the harness's loop records it for a step or an estimate. */
export interface BatchStep extends DeviceBatch {
  rec: Recorder;
  /** The run seed (a fused step with dropout draws from `streamKey(seed, "dropout")`). */
  seed: number;
}

/** A training step: a batch plus the AdamW update of every parameter in the store's arenas. */
export interface TrainStep extends BatchStep {
  arenas: Arenas;
  lr: number;
  weightDecay: number;
}

/** A model: token ids [B,T] → logits [B,T,V]. */
export interface LanguageModel {
  /**
   * Records the forward pass. `g.training` says whether this is a training step (dropout on,
   * backward recorded); `g.randomSite()` gives a dropout site the run's seed, device counters
   * and a call index of its own (see the Dropout module).
   */
  forward(g: Graph, idx: Var): Var;
  /**
   * Optional: records the logits and their mean cross-entropy against `targets` into `sink`
   * together (e.g. Linear.loss, one fused classifier pass). The harness then uses it for the
   * training and evaluation batches instead of `forward` + crossEntropyLoss; generation still
   * uses `forward`. Must compute the same loss.
   */
  forwardLoss?(g: Graph, idx: Var, targets: Var, sink: LossSink): void;
  /**
   * Optional fused training step (batch → loss → backward → AdamW) that records fewer
   * dispatches than the autograd graph; the harness uses it when present (TrainOptions.fused
   * false forces the graph). It must draw the same batches and be deterministic (same seed ⇒
   * bit-identical losses and parameters), and it must match the graph path within a tolerance
   * its test states: summing in another order is allowed, nothing else. The bigram's matches
   * bit for bit; attention_head's to about one f32 ulp per parameter over 20 steps
   * (tests/fused_attention_head_test.ts).
   */
  recordTrainStep?(step: TrainStep): void;
  /** Optional fused evaluation batch (loss only), under the same contract as `recordTrainStep`. */
  recordEvalStep?(step: BatchStep): void;
}

/** An experiment trained by the harness's loop. */
export interface LanguageModelExperiment<C extends LanguageModelConfig = LanguageModelConfig> {
  kind: "language-model";
  name: string;
  summary: string;
  schema: z.ZodType<C>;
  /** Registers parameters in `store` and returns the model. */
  createModel(store: ParamStore, config: C, vocabSize: number): LanguageModel;
}

/** What a check experiment reports. */
export interface CheckOutcome {
  final: Record<string, number>;
  /** Bounds that were exceeded, as sentences; empty means pass. */
  failures: string[];
}

/** An experiment that computes and checks something instead of training. */
export interface CheckExperiment<C = Record<string, unknown>> {
  kind: "check";
  name: string;
  summary: string;
  schema: z.ZodType<C>;
  run(gpu: Gpu, config: C, seed: number): Promise<CheckOutcome>;
}

/** Any experiment. */
export type Experiment = LanguageModelExperiment | CheckExperiment;
