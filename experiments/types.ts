/** What an experiment file provides: a config schema with defaults, and a model or a check. */
import { z } from "zod";
import type { Gpu } from "../kernels/device.ts";
import type { Graph, Var } from "../nn/graph.ts";
import type { ParamStore } from "../nn/params.ts";

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

/** A model: token ids [B,T] → logits [B,T,V]. */
export interface LanguageModel {
  forward(g: Graph, idx: Var): Var;
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
