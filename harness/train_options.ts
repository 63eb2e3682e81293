/** What a training run takes (harness/train.ts) and the state a checkpoint restores. */
import type { Gpu } from "../kernels/device.ts";
import type { LanguageModel, LanguageModelConfig } from "../experiments/types.ts";
import type { ParamStore } from "../nn/params.ts";
import type { Progress } from "./progress.ts";
import type { CurvePoint } from "./result_schema.ts";
import type { PlanSubmitter } from "./submitter.ts";

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
