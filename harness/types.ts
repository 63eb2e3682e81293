/**
 * The `harness` namespace of seedlab's public API (mod.ts), types only: what a run's result
 * file holds and what the training loop takes and returns. The harness itself is driven from
 * the command line (harness/main.ts).
 */
export type {
  CurvePoint,
  DataInfo,
  EnvInfo,
  InitFrom,
  RunResult,
  RunStatus,
} from "./result_schema.ts";
export type { TrainOutcome, TrainTiming } from "./train.ts";
export type { TrainOptions, TrainState } from "./train_options.ts";
export type { TrainPath } from "./train_plans.ts";
export type { PlanSubmitter, Replay } from "./submitter.ts";
